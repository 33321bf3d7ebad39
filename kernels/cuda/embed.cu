/* kernels/cuda/embed.cu: embedding gather, out[i, :] = table[ids[i], :].
 * Supports: FP16/BF16, any n >= 0, d >= 1, n_vocab >= 1. Two configurations: a 16-byte vector
 * path (d % 8 == 0, 16-byte aligned pointers) and a scalar path (anything else).
 * Invariant: an id outside [0, n_vocab) yields a zero row (kernels cannot fail).
 * Bytes: 2 * n * d * sizeof(T) (each row read once, written once). */
#include "common.cuh"

template <typename T>
static __global__ void embed_vec_kernel(uint4 *out, const uint4 *table, const int32_t *ids, int d8, int n_vocab) {
    GDC_LAUNCH_DEPENDENTS();
    gdc_wait(); /* launched with PDL (gpu_launch_pdl): the previous kernel's writes are visible from here */
    const int row = blockIdx.x;
    const int32_t id = ids[row];
    const bool ok = id >= 0 && id < n_vocab;
    const uint4 *src = table + (size_t)(ok ? id : 0) * d8;
    uint4 *dst = out + (size_t)row * d8;
    for (int i = threadIdx.x; i < d8; i += blockDim.x) dst[i] = ok ? __ldg(src + i) : make_uint4(0, 0, 0, 0);
}

template <typename T>
static __global__ void embed_scalar_kernel(T *out, const T *table, const int32_t *ids, int d, int n_vocab) {
    const int row = blockIdx.x;
    const int32_t id = ids[row];
    const bool ok = id >= 0 && id < n_vocab;
    const T *src = table + (size_t)(ok ? id : 0) * d;
    T *dst = out + (size_t)row * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = ok ? src[i] : dt_traits<T>::from_f(0.0f);
}

template <typename T>
static int embed_launch(void *out, const void *table, const int32_t *ids, int n, int d, int n_vocab,
                        cudaStream_t stream) {
    if (n < 0 || d < 1 || n_vocab < 1) return GPU_FAIL(GPU_UNSUPPORTED, "embed: n=%d d=%d n_vocab=%d", n, d, n_vocab);
    if (n == 0) return GPU_OK;
    if (d % 8 == 0 && gpu_aligned16(out) && gpu_aligned16(table)) {
        int d8 = d / 8;
        int threads = d8 >= 256 ? 256 : ((d8 + 31) / 32) * 32;
        GPU_CHECK(gpu_launch_pdl(embed_vec_kernel<T>, dim3(n), dim3(threads), 0, stream, (uint4 *)out,
                                 (const uint4 *)table, ids, d8, n_vocab));
        GPU_CHECK_LAUNCH("embed_vec_kernel");
    } else {
        int threads = d >= 256 ? 256 : ((d + 31) / 32) * 32;
        embed_scalar_kernel<T><<<n, threads, 0, stream>>>((T *)out, (const T *)table, ids, d, n_vocab);
        GPU_CHECK_LAUNCH("embed_scalar_kernel");
    }
    return GPU_OK;
}

extern "C" int gpu_embed(gpu_dtype dt, void *out, const void *table, const int32_t *ids, int n, int d, int n_vocab,
                         cudaStream_t stream) {
    return GPU_DISPATCH_DT(dt, embed_launch, out, table, ids, n, d, n_vocab, stream);
}
