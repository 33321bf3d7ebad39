/* kernels/cuda/kv_write.cu: write new keys/values into the paged KV cache.
 * Token t (of sequence s: seq_start[s] <= t < seq_start[s+1]) at position p = pos[t] goes to page
 * page_table[s * max_pages + p / page_size], row p % page_size. A page id outside [0, n_pages), or a
 * p / page_size >= max_pages, is skipped. Supports: FP16/BF16, head_dim % 8 == 0, k/v row strides
 * % 8 == 0, 16-byte aligned pointers; one block per token, 16-byte copies.
 * Bytes: 4 * n_tokens * n_kv_heads * head_dim * sizeof(T) (read k, v; write both). */
#include "common.cuh"

static __global__ void kv_write_kernel(uint4 *k_pool, uint4 *v_pool, const int32_t *page_table, int max_pages,
                                       int n_pages, int page_size, int row8, const uint4 *k, int k_stride8,
                                       const uint4 *v, int v_stride8, const int32_t *seq_start, const int32_t *pos,
                                       int n_seqs) {
    GDC_LAUNCH_DEPENDENTS();
    /* launched with PDL (gpu_launch_pdl): the row is found from the step's metadata (seq_start, pos, the page
     * table: copied before the step's first kernel) before gdc_wait; k and v are read after it */
    const int t = blockIdx.x;
    /* the sequence of token t: the last s with seq_start[s] <= t (binary search) */
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (seq_start[mid] <= t) lo = mid; else hi = mid - 1;
    }
    const int p = pos[t];
    const int page = p >= 0 && p / page_size < max_pages ? page_table[(size_t)lo * max_pages + p / page_size] : -1;
    gdc_wait(); /* skipped rows wait too: this grid never completes before the previous one */
    if (page < 0 || page >= n_pages) return;
    const size_t dst = ((size_t)page * page_size + p % page_size) * row8;
    for (int i = threadIdx.x; i < row8; i += blockDim.x) {
        k_pool[dst + i] = k[(size_t)t * k_stride8 + i];
        v_pool[dst + i] = v[(size_t)t * v_stride8 + i];
    }
}

extern "C" int gpu_kv_write(gpu_dtype dt, const gpu_paged_kv *kv, const void *k, int k_stride, const void *v,
                            int v_stride, const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens,
                            cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "kv_write: dtype %d", (int)dt);
    const int row = kv->n_kv_heads * kv->head_dim;
    if (n_tokens < 0 || n_seqs < 1 || kv->head_dim % 8 || k_stride % 8 || v_stride % 8 || k_stride < row ||
        v_stride < row || kv->page_size < 1 || !gpu_aligned16(kv->k_pool) || !gpu_aligned16(kv->v_pool) ||
        !gpu_aligned16(k) || !gpu_aligned16(v))
        return GPU_FAIL(GPU_UNSUPPORTED, "kv_write: head_dim=%d k_stride=%d v_stride=%d n_seqs=%d", kv->head_dim,
                        k_stride, v_stride, n_seqs);
    if (n_tokens == 0) return GPU_OK;
    const int row8 = row / 8;
    const int threads = row8 >= 256 ? 256 : ((row8 + 31) / 32) * 32;
    GPU_CHECK(gpu_launch_pdl(kv_write_kernel, dim3(n_tokens), dim3(threads), 0, stream, (uint4 *)kv->k_pool,
                             (uint4 *)kv->v_pool, kv->page_table, kv->max_pages, kv->n_pages, kv->page_size, row8,
                             (const uint4 *)k, k_stride / 8, (const uint4 *)v, v_stride / 8, seq_start, pos, n_seqs));
    GPU_CHECK_LAUNCH("kv_write_kernel");
    return GPU_OK;
}
