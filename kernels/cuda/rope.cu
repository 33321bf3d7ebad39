/* kernels/cuda/rope.cu: rotary position embedding, NeoX "rotate half" pairing, in place on q and k.
 *   for i < rot/2: a = pos * inv_freq[i] (product and range reduction in double, as the CPU reference:
 *   positions up to 1e6 keep float precision),
 *   (x[i], x[i + rot/2]) <- (x[i] c - x[i + rot/2] s, x[i + rot/2] c + x[i] s), c = cos(a) * mscale,
 *   s = sin(a) * mscale; dims >= rot untouched.
 * Every rope type (default, linear, dynamic NTK, YaRN, llama3) is an inv_freq table plus mscale,
 * precomputed by the engine. Supports: FP16/BF16, even head_dim <= 512, even rot <= head_dim, row
 * strides for a fused QKV buffer. Blocks of (token, group of heads): a group is as many heads as 256 threads
 * cover at one pair each, so a decode step's 40 heads spread over 10 blocks and every thread has one load round
 * trip (one block per token, the earlier form, took 7.6 us at n = 1 on the 8B shape: ten dependent round trips per
 * thread); cos/sin computed per block in shared memory (accurate sincosf, not the fast intrinsic).
 * Bytes: 2 * n * (n_q + n_k) * rot * sizeof(T). */
#include "common.cuh"
#include "rope_math.cuh"

/* The paged-cache write that gpu_rope_kv folds into the rope launch: k (rotated) and v of token t go to page
 * page_table[s * max_pages + pos / page_size], row pos % page_size, as gpu_kv_write (positions or page ids out of
 * range are skipped). k_pool == NULL: plain rope. */
struct rope_cache {
    void *k_pool, *v_pool;
    const int32_t *page_table;
    int max_pages, n_pages, page_size;
    const void *v;
    int v_stride;
    const int32_t *seq_start;
    int n_seqs;
};

template <typename T>
static __global__ void rope_kernel(T *q, int n_q_heads, int q_stride, T *k, int n_k_heads, int k_stride,
                                   const int32_t *pos, const float *inv_freq, int head_dim, int half, float mscale,
                                   int heads_per_block, const rope_cache kc) {
    GDC_LAUNCH_DEPENDENTS();
    /* launched with PDL (gpu_launch_pdl): cos, sin and the cache row come from the step's metadata (pos, inv_freq,
     * seq_start, the page table: copied before the step's first kernel, written by none), so they are computed
     * before gdc_wait; q, k and v (the previous kernel's output) after it */
    __shared__ float cs[256], sn[256];
    const int t = blockIdx.x;
    const int pt = pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x)
        rope_cs(pt, inv_freq[i], mscale, &cs[i], &sn[i]);
    /* the cache row of token t (kc.k_pool set): the sequence is the last s with seq_start[s] <= t */
    T *kd = nullptr, *vd = nullptr;
    if (kc.k_pool) {
        int lo = 0, hi = kc.n_seqs - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) >> 1;
            if (kc.seq_start[mid] <= t) lo = mid; else hi = mid - 1;
        }
        if (pt >= 0 && pt / kc.page_size < kc.max_pages) {
            const int page = kc.page_table[(size_t)lo * kc.max_pages + pt / kc.page_size];
            if (page >= 0 && page < kc.n_pages) {
                const size_t row = ((size_t)page * kc.page_size + pt % kc.page_size) * n_k_heads * head_dim;
                kd = static_cast<T *>(kc.k_pool) + row;
                vd = static_cast<T *>(kc.v_pool) + row;
            }
        }
    }
    gdc_wait();
    __syncthreads();
    /* heads: q (rotated), k (rotated; and to the cache), then with a cache v (copied to it); a thread takes the pair
     * (i, i + half) of one head and, past the rotated dims, dims rot + i, rot + i + half, ... */
    const int heads = n_q_heads + n_k_heads * (kc.k_pool ? 2 : 1);
    const int h0 = blockIdx.y * heads_per_block;
    const int h1 = min(heads, h0 + heads_per_block);
    const int total = (h1 - h0) * half;
    for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
        const int h = h0 + idx / half, i = idx % half;
        if (h >= n_q_heads + n_k_heads) { /* a v head: copied to the cache */
            const int hv = h - n_q_heads - n_k_heads;
            if (vd) {
                const T *src = static_cast<const T *>(kc.v) + (size_t)t * kc.v_stride + (size_t)hv * head_dim;
                T *dst = vd + (size_t)hv * head_dim;
                for (int j = i; j < head_dim; j += half)
                    dst[j] = src[j];
            }
            continue;
        }
        T *row = h < n_q_heads ? q + (size_t)t * q_stride + (size_t)h * head_dim
                               : k + (size_t)t * k_stride + (size_t)(h - n_q_heads) * head_dim;
        const float x0 = dt_traits<T>::to_f(row[i]), x1 = dt_traits<T>::to_f(row[i + half]);
        const T y0 = dt_traits<T>::from_f(rope_lo(x0, x1, cs[i], sn[i]));
        const T y1 = dt_traits<T>::from_f(rope_hi(x0, x1, cs[i], sn[i]));
        row[i] = y0;
        row[i + half] = y1;
        if (h >= n_q_heads && kd) {
            T *dst = kd + (size_t)(h - n_q_heads) * head_dim;
            dst[i] = y0;
            dst[i + half] = y1;
            for (int j = 2 * half + i; j < head_dim; j += half)
                dst[j] = row[j];
        }
    }
}

template <typename T>
static int rope_launch(void *q, int n_q_heads, int q_stride, void *k, int n_k_heads, int k_stride, const int32_t *pos,
                       const float *inv_freq, int n, int head_dim, int rot, float mscale, const rope_cache &kc,
                       cudaStream_t stream) {
    if (!k) n_k_heads = 0;
    if (n < 0 || head_dim < 2 || head_dim > 512 || head_dim % 2 || rot < 2 || rot % 2 || rot > head_dim ||
        n_q_heads < 0 || n_k_heads < 0 || q_stride < n_q_heads * head_dim || (k && k_stride < n_k_heads * head_dim))
        return GPU_FAIL(GPU_UNSUPPORTED, "rope: head_dim=%d rot=%d n_q_heads=%d q_stride=%d n_k_heads=%d k_stride=%d",
                        head_dim, rot, n_q_heads, q_stride, n_k_heads, k_stride);
    if (n == 0 || n_q_heads + n_k_heads == 0) return GPU_OK;
    const int half = rot / 2, heads = n_q_heads + n_k_heads * (kc.k_pool ? 2 : 1);
    const int hpb = half >= 256 ? 1 : (heads < 256 / half ? heads : 256 / half); /* heads per block: a pair each */
    const int groups = (heads + hpb - 1) / hpb;
    if (groups > 65535)
        return GPU_FAIL(GPU_UNSUPPORTED, "rope: %d heads", heads);
    int threads = hpb * half >= 256 ? 256 : ((hpb * half + 31) / 32) * 32;
    if (threads < 128 && half > threads) threads = 128;
    GPU_CHECK(gpu_launch_pdl(rope_kernel<T>, dim3(n, groups), dim3(threads), 0, stream, (T *)q, n_q_heads, q_stride,
                             (T *)k, n_k_heads, k_stride, pos, inv_freq, head_dim, half, mscale, hpb, kc));
    GPU_CHECK_LAUNCH("rope_kernel");
    return GPU_OK;
}

extern "C" int gpu_rope(gpu_dtype dt, void *q, int n_q_heads, int q_stride, void *k, int n_k_heads, int k_stride,
                        const int32_t *pos, const float *inv_freq, int n, int head_dim, int rot, float mscale,
                        cudaStream_t stream) {
    const rope_cache none = {};
    return GPU_DISPATCH_DT(dt, rope_launch, q, n_q_heads, q_stride, k, n_k_heads, k_stride, pos, inv_freq, n, head_dim,
                           rot, mscale, none, stream);
}

extern "C" int gpu_rope_kv(gpu_dtype dt, void *q, int n_q_heads, int q_stride, void *k, int k_stride, const void *v,
                           int v_stride, const gpu_paged_kv *kv, const int32_t *seq_start, int n_seqs,
                           const int32_t *pos, const float *inv_freq, int n, int rot, float mscale,
                           cudaStream_t stream) {
    if (!kv || !k || !v || !kv->k_pool || !kv->v_pool || kv->page_size < 1 || n_seqs < 1 ||
        v_stride < kv->n_kv_heads * kv->head_dim)
        return GPU_FAIL(GPU_UNSUPPORTED, "rope_kv: no cache, k or v, or n_seqs %d", n_seqs);
    const rope_cache kc = {kv->k_pool, kv->v_pool, kv->page_table, kv->max_pages, kv->n_pages, kv->page_size, v,
                           v_stride, seq_start, n_seqs};
    return GPU_DISPATCH_DT(dt, rope_launch, q, n_q_heads, q_stride, k, kv->n_kv_heads, k_stride, pos, inv_freq, n,
                           kv->head_dim, rot, mscale, kc, stream);
}
