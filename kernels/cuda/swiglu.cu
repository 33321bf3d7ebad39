/* kernels/cuda/swiglu.cu: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)), float32 math.
 * Supports: FP16/BF16, any n, f; gate/up rows in_stride apart (fused [gate | up] buffers: 2f).
 * Configurations: 16-byte path (f % 8 == 0, in_stride % 8 == 0, 16-byte aligned pointers), grid-stride
 * over n * f / 8 vectors; scalar path otherwise. Bytes: 3 * n * f * sizeof(T). */
#include "common.cuh"

template <typename T>
static __global__ void swiglu_vec_kernel(uint4 *out, const uint4 *gate, const uint4 *up, int f8, int stride8,
                                         long long total) {
    GDC_LAUNCH_DEPENDENTS();
    gdc_wait(); /* launched with PDL (gpu_launch_pdl): the previous kernel's writes are visible from here */
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long r = idx / f8, c = idx - r * f8;
        vec8<T> g, u, o;
        g.u = gate[r * stride8 + c];
        u.u = up[r * stride8 + c];
        float gf[8], uf[8];
        g.to_float(gf);
        u.to_float(uf);
#pragma unroll
        for (int e = 0; e < 8; e++) gf[e] = gf[e] / (1.0f + __expf(-gf[e])) * uf[e];
        o.from_float(gf);
        out[idx] = o.u;
    }
}

template <typename T>
static __global__ void swiglu_scalar_kernel(T *out, const T *gate, const T *up, int f, int stride, long long total) {
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long r = idx / f, c = idx - r * f;
        const float g = dt_traits<T>::to_f(gate[r * stride + c]), u = dt_traits<T>::to_f(up[r * stride + c]);
        out[idx] = dt_traits<T>::from_f(g / (1.0f + __expf(-g)) * u);
    }
}

template <typename T>
static int swiglu_launch(void *out, const void *gate, const void *up, int n, int f, int in_stride, cudaStream_t stream) {
    if (n < 0 || f < 1 || in_stride < f) return GPU_FAIL(GPU_UNSUPPORTED, "swiglu: n=%d f=%d in_stride=%d", n, f, in_stride);
    if (n == 0) return GPU_OK;
    const bool vec = f % 8 == 0 && in_stride % 8 == 0 && gpu_aligned16(out) && gpu_aligned16(gate) && gpu_aligned16(up);
    const long long total = (long long)n * (vec ? f / 8 : f);
    const int threads = 256;
    long long blocks = (total + threads - 1) / threads;
    if (blocks > 132 * 32) blocks = 132 * 32; /* grid-stride beyond a few waves */
    if (vec) {
        GPU_CHECK(gpu_launch_pdl(swiglu_vec_kernel<T>, dim3((unsigned)blocks), dim3(threads), 0, stream, (uint4 *)out,
                                 (const uint4 *)gate, (const uint4 *)up, f / 8, in_stride / 8, total));
        GPU_CHECK_LAUNCH("swiglu_vec_kernel");
    } else {
        swiglu_scalar_kernel<T><<<(unsigned)blocks, threads, 0, stream>>>((T *)out, (const T *)gate, (const T *)up, f,
                                                                           in_stride, total);
        GPU_CHECK_LAUNCH("swiglu_scalar_kernel");
    }
    return GPU_OK;
}

extern "C" int gpu_swiglu(gpu_dtype dt, void *out, const void *gate, const void *up, int n, int f, int in_stride,
                          cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, swiglu_launch, out, gate, up, n, f, in_stride, stream);
}
