/* kernels/cuda/norm.cu: RMSNorm and fused residual-add + RMSNorm.
 *   rmsnorm:     out = x / sqrt(mean(x^2) + eps) * w          (out may alias x)
 *   add_rmsnorm: resid += delta (rounded to T); out = rmsnorm(resid) * w
 * Supports: FP16/BF16, d % 8 == 0, 8 <= d <= 16384, 16-byte aligned pointers; one block per row,
 * 16-byte loads; the row is kept in registers (up to VPT 16-byte vectors per thread, VPT in
 * {1, 2, 4, 8} chosen from d) so x is read from memory once. Float32 sum of squares.
 * Bytes: rmsnorm 2*n*d*sizeof(T) (+ d for w); add_rmsnorm 4*n*d*sizeof(T) (read resid, delta;
 * write resid, out).
 * The _x forms (XP) also write each output row in a quantized weight's packed order, xp[j] = out[xperm[j]]
 * (cuda_ops.h): the row is staged in shared memory and gathered from there, so xp gets 16-byte stores (a first
 * form scattered 2-byte stores to xp[pos[j]]: at one row, one block, one L2 request per value, 4096 of them per
 * 8B row: the 8B EXL2 step ran 2% slower than with the gather launches). n*d*(sizeof(T) + 4) bytes more; xperm is
 * read before the wait, as w. */
#include "common.cuh"

template <typename T, int VPT, bool ADD, bool XP>
static __global__ void __launch_bounds__(256)
rmsnorm_kernel(uint4 *out, uint4 *resid, const uint4 *x_or_delta, const uint4 *w, int d8, float eps, float inv_d,
               T *xp, const int4 *xperm) {
    GDC_LAUNCH_DEPENDENTS();
    /* launched with PDL (gpu_launch_pdl): the weights (which no kernel writes) are requested before gdc_wait, x and
     * the residual (earlier kernels' output) after it */
    uint4 wreg[VPT];
#pragma unroll
    for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        wreg[j] = i < d8 ? __ldg(w + i) : make_uint4(0u, 0u, 0u, 0u);
    }
    int4 preg[XP ? VPT : 1][2]; /* XP: the source positions of this thread's 8-value groups of xp */
#pragma unroll
    for (int j = 0; j < (XP ? VPT : 0); j++) {
        const int i = threadIdx.x + j * blockDim.x;
        preg[j][0] = i < d8 ? __ldg(xperm + 2 * i) : make_int4(0, 0, 0, 0);
        preg[j][1] = i < d8 ? __ldg(xperm + 2 * i + 1) : make_int4(0, 0, 0, 0);
    }
    extern __shared__ uint4 staged[]; /* XP: the output row, d8 vectors */
    gdc_wait();
    const size_t row = blockIdx.x;
    const uint4 *xin = x_or_delta + row * d8;
    uint4 *rrow = ADD ? resid + row * d8 : nullptr;
    float v[VPT][8];
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < d8) {
            vec8<T> a;
            a.u = xin[i];
            a.to_float(v[j]);
            if (ADD) {
                vec8<T> r;
                r.u = rrow[i];
                float rf[8];
                r.to_float(rf);
#pragma unroll
                for (int e = 0; e < 8; e++) rf[e] += v[j][e];
                r.from_float(rf);  /* round to T: the stored residual is what gets normalised */
                rrow[i] = r.u;
                r.to_float(v[j]);
            }
#pragma unroll
            for (int e = 0; e < 8; e++) ss += v[j][e] * v[j][e];
        }
    }
    __shared__ float red[32];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float t = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        t = warp_sum(t);
        if (threadIdx.x == 0) red[0] = t;
    }
    __syncthreads();
    const float r = rsqrtf(red[0] * inv_d + eps);
    uint4 *orow = out + row * d8;
#pragma unroll
    for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < d8) {
            vec8<T> wv;
            wv.u = wreg[j];
            float wf[8];
            wv.to_float(wf);
#pragma unroll
            for (int e = 0; e < 8; e++) wf[e] *= v[j][e] * r;
            vec8<T> o;
            o.from_float(wf);
            orow[i] = o.u;
            if constexpr (XP) staged[i] = o.u;
        }
    }
    if constexpr (XP) {
        __syncthreads();
        const T *srow = reinterpret_cast<const T *>(staged);
        uint4 *xrow = reinterpret_cast<uint4 *>(xp) + row * d8;
#pragma unroll
        for (int j = 0; j < VPT; j++) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < d8) {
                const int at[8] = {preg[j][0].x, preg[j][0].y, preg[j][0].z, preg[j][0].w,
                                   preg[j][1].x, preg[j][1].y, preg[j][1].z, preg[j][1].w};
                alignas(16) T g[8];
#pragma unroll
                for (int e = 0; e < 8; e++) g[e] = srow[at[e]];
                xrow[i] = *reinterpret_cast<const uint4 *>(g);
            }
        }
    }
}

template <typename T, bool ADD>
static int rmsnorm_launch(void *out, void *resid, const void *x, const void *w, int n, int d, float eps, void *xp,
                          const int32_t *xperm, cudaStream_t stream) {
    if (n < 0 || d < 8 || d % 8 != 0 || d > 16384 || !gpu_aligned16(out) || !gpu_aligned16(x) ||
        !gpu_aligned16(w) || (ADD && !gpu_aligned16(resid)) ||
        (xp && (!xperm || !gpu_aligned16(xperm) || !gpu_aligned16(xp) || d > GPU_NORM_X_MAX_D)))
        return GPU_FAIL(GPU_UNSUPPORTED, "rmsnorm: n=%d d=%d (need d %% 8 == 0, 8..16384, 16-byte aligned)", n, d);
    if (n == 0) return GPU_OK;
    const int d8 = d / 8;
    const float inv_d = 1.0f / (float)d;
    /* threads * VPT >= d8, threads a multiple of 32 and <= 256 */
    int vpt = d8 <= 256 ? 1 : d8 <= 512 ? 2 : d8 <= 1024 ? 4 : 8;
    int threads = (d8 + vpt - 1) / vpt;
    threads = ((threads + 31) / 32) * 32;
    if (threads > 256) return GPU_FAIL(GPU_UNSUPPORTED, "rmsnorm: d=%d too large", d); /* __launch_bounds__(256) */
#define LAUNCH_NORM(V, X)                                                                                \
    GPU_CHECK(gpu_launch_pdl(rmsnorm_kernel<T, V, ADD, X>, dim3(n), dim3(threads), X ? (size_t)d * sizeof(T) : 0, \
                             stream, (uint4 *)out, (uint4 *)resid, (const uint4 *)x, (const uint4 *)w, d8, eps, inv_d, \
                             (T *)xp, (const int4 *)xperm))
    if (xp) {
        switch (vpt) {
        case 1: LAUNCH_NORM(1, true); break;
        case 2: LAUNCH_NORM(2, true); break;
        case 4: LAUNCH_NORM(4, true); break;
        default: LAUNCH_NORM(8, true); break;
        }
    } else {
        switch (vpt) {
        case 1: LAUNCH_NORM(1, false); break;
        case 2: LAUNCH_NORM(2, false); break;
        case 4: LAUNCH_NORM(4, false); break;
        default: LAUNCH_NORM(8, false); break;
        }
    }
#undef LAUNCH_NORM
    GPU_CHECK_LAUNCH("rmsnorm_kernel");
    return GPU_OK;
}

template <typename T>
static int rmsnorm_only(void *out, const void *x, const void *w, int n, int d, float eps, void *xp,
                        const int32_t *xperm, cudaStream_t s) {
    return rmsnorm_launch<T, false>(out, nullptr, x, w, n, d, eps, xp, xperm, s);
}
template <typename T>
static int add_rmsnorm(void *out, void *resid, const void *delta, const void *w, int n, int d, float eps, void *xp,
                       const int32_t *xperm, cudaStream_t s) {
    return rmsnorm_launch<T, true>(out, resid, delta, w, n, d, eps, xp, xperm, s);
}

extern "C" int gpu_rmsnorm(gpu_dtype dt, void *out, const void *x, const void *w, int n, int d, float eps,
                           cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, rmsnorm_only, out, x, w, n, d, eps, nullptr, nullptr, stream);
}

extern "C" int gpu_add_rmsnorm(gpu_dtype dt, void *out, void *resid, const void *delta, const void *w, int n, int d,
                               float eps, cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, add_rmsnorm, out, resid, delta, w, n, d, eps, nullptr, nullptr, stream);
}

extern "C" int gpu_rmsnorm_x(gpu_dtype dt, void *out, const void *x, const void *w, int n, int d, float eps, void *xp,
                             const int32_t *xperm, cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, rmsnorm_only, out, x, w, n, d, eps, xp, xperm, stream);
}

extern "C" int gpu_add_rmsnorm_x(gpu_dtype dt, void *out, void *resid, const void *delta, const void *w, int n, int d,
                                 float eps, void *xp, const int32_t *xperm, cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, add_rmsnorm, out, resid, delta, w, n, d, eps, xp, xperm, stream);
}

/* gpu_rms_settle: rows r < n of out (and of xp, when set) times rsqrt(sum_t ss[r * tiles + t] / d + eps) 2^shift
 * (inv_d and eps come times 2^-2 shift), in place:
 * a block per row, the sums by its first warp */
template <typename T>
static __global__ void __launch_bounds__(256)
rms_settle_kernel(uint4 *out, uint4 *xp, const float *ss, int tiles, int d8, float inv_d, float eps) {
    GDC_LAUNCH_DEPENDENTS();
    gdc_wait(); /* out, xp and ss are the previous kernel's output */
    __shared__ float rs;
    const size_t row = blockIdx.x;
    if (threadIdx.x < 32) {
        float v = 0.0f;
        for (int t = threadIdx.x; t < tiles; t += 32) v += ss[row * tiles + t];
        v = warp_sum(v);
        if (threadIdx.x == 0) rs = rsqrtf(v * inv_d + eps);
    }
    __syncthreads();
    const float r = rs;
    for (int i = threadIdx.x; i < d8; i += blockDim.x) {
        uint4 *rows[2] = {out + row * d8 + i, xp ? xp + row * d8 + i : nullptr};
        for (int j = 0; j < 2 && rows[j]; j++) {
            vec8<T> a;
            a.u = *rows[j];
            float f[8];
            a.to_float(f);
#pragma unroll
            for (int e = 0; e < 8; e++) f[e] *= r;
            a.from_float(f);
            *rows[j] = a.u;
        }
    }
}

template <typename T>
static int rms_settle(void *out, void *xp, const float *ss, int tiles, int n, int d, float eps, int shift,
                      cudaStream_t s) {
    if (n < 0 || d < 8 || d % 8 != 0 || tiles < 1 || !ss || !gpu_aligned16(out) || (xp && !gpu_aligned16(xp)) ||
        shift < -30 || shift > 30)
        return GPU_FAIL(GPU_UNSUPPORTED,
                        "rms_settle: n=%d d=%d tiles=%d shift=%d (need d %% 8 == 0, 16-byte aligned, shift -30..30)",
                        n, d, tiles, shift);
    if (n == 0) return GPU_OK;
    GPU_CHECK(gpu_launch_pdl(rms_settle_kernel<T>, dim3(n), dim3(256), 0, s, (uint4 *)out, (uint4 *)xp, ss, tiles,
                             d / 8, ldexpf(1.0f / (float)d, -2 * shift), ldexpf(eps, -2 * shift)));
    GPU_CHECK_LAUNCH("rms_settle_kernel");
    return GPU_OK;
}

extern "C" int gpu_rms_settle(gpu_dtype dt, void *out, void *xp, const float *ss, int tiles, int n, int d, float eps,
                              int shift, cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, rms_settle, out, xp, ss, tiles, n, d, eps, shift, stream);
}
