/* engine/cuda/cuda_util.h: small device helpers of the cuda backend (prefix cku_): dtype
 * conversion, seeded random fill, and generic (slow, any head_dim) paged KV write and attention
 * for the shapes outside the fast kernels' compiled list (the tiny parity models: head_dim 2..32).
 * Launchers return 0 or a gpu_* code (kernels/cuda/cuda_ops.h) with gpu_last_error() set. */
#ifndef CK_CUDA_UTIL_H
#define CK_CUDA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

int cku_from_f32(gpu_dtype dt, void *dst /* [n] */, const float *src /* [n] device */, size_t n, cudaStream_t stream);
int cku_to_f32(gpu_dtype dt, float *dst /* [n] device */, const void *src /* [n] */, size_t n, cudaStream_t stream);

/* dst[i] = mean + std * sqrt(3) * u_i, u_i uniform in [-1, 1) from a hash of (seed, i): the same
 * seed gives the same values on any launch configuration. */
int cku_fill_random(gpu_dtype dt, void *dst, size_t n, uint64_t seed, float mean, float std, cudaStream_t stream);

/* As gpu_kv_write with dense rows (k_stride = v_stride = n_kv_heads * head_dim), any head_dim. */
int cku_kv_write_any(gpu_dtype dt, const gpu_paged_kv *kv, const void *k, const void *v, const int32_t *seq_start,
                     const int32_t *pos, int n_seqs, int n_tokens, cudaStream_t stream);

/* As gpu_attention (dense q and out rows), any head_dim <= 1024, one block per (token, head),
 * float32 softmax in three passes over the keys. Rows with pos < 0 (padding) get zeros. */
int cku_attention_any(gpu_dtype dt, void *out, const void *q, const gpu_paged_kv *kv, const int32_t *seq_start,
                      const int32_t *pos, int n_seqs, int n_tokens, int n_heads, int window, float scale,
                      cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
