/* kernels/cuda/attention_internal.cuh: what attention_decode.cu (the gpu_attention dispatcher)
 * needs from attention_prefill.cu. */
#ifndef CK_KERNELS_CUDA_ATTENTION_INTERNAL_CUH
#define CK_KERNELS_CUDA_ATTENTION_INTERNAL_CUH
#include "common.cuh"

#define DEC_MAX_SPLITS 256
#define DEC_MIN_CHUNK 128
/* arrival counters of split decode, one per (sequence, head group), at the start of the workspace */
#define DEC_CNT_BYTES GPU_ATTENTION_WS_ZERO_BYTES
#define DEC_CNT_CAP (DEC_CNT_BYTES / 4)

int decode_splits(int n_seqs, int n_heads, int n_kv_heads, int head_dim, int max_ctx, int n_splits);
int attention_prefill(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                      const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                      int max_q_len, int window, float scale, cudaStream_t stream);
#endif
