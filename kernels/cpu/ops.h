/* kernels/cpu/ops.h: the plain-C reference implementation of every op of the forward pass.
 *
 * Contract for every function here:
 * - float32 math on float32 buffers, row-major; shapes in the comments beside each pointer;
 * - raw pointers in, nothing allocated, no knowledge of the engine;
 * - `out` never aliases an input unless the comment says so;
 * - returns 0, or a negative value for arguments it does not support (never a wrong answer).
 * These are the oracle that every faster kernel (kernels/cuda/) is checked against.
 */
#ifndef CK_KERNELS_CPU_OPS_H
#define CK_KERNELS_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Number of worker threads used by cpu_matmul (default: online CPUs, at most 16). */
void cpu_set_threads(int n_threads);
int cpu_get_threads(void);

/* out[n, d] = table[ids[i], :]; ids must be in [0, n_vocab). */
int cpu_embed(float *out, const float *table /* [n_vocab, d] */, const int32_t *ids /* [n] */,
              int n, int d, int n_vocab);

/* out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w[:]. out may alias x. */
int cpu_rmsnorm(float *out, const float *x /* [n, d] */, const float *w /* [d] */, int n, int d, float eps);

/* Fused residual add + RMSNorm: resid += delta (in place), then out = rmsnorm(resid) * w. */
int cpu_add_rmsnorm(float *out /* [n, d] */, float *resid /* [n, d] */, const float *delta /* [n, d] */,
                    const float *w /* [d] */, int n, int d, float eps);

/* out[n, m] = x[n, k] @ w[m, k]^T (+ bias[m] if not NULL). Threads over m. */
int cpu_matmul(float *out, const float *x, const float *w, const float *bias, int n, int k, int m);

/* Rotary embedding in place, "rotate half" (NeoX) pairing: dim i pairs with i + rot/2,
 * angle = pos * inv_freq[i], for i < rot/2; cos and sin are multiplied by `mscale`
 * (1 except for YaRN). Dims past `rot` (= head_dim for Llama) are left alone. */
int cpu_rope(float *x /* [n, n_heads, head_dim] */, const int32_t *pos /* [n] */,
             const float *inv_freq /* [rot / 2] */, int n, int n_heads, int head_dim, int rot, float mscale);

/* out[n, f] = silu(gate) * up. out may alias gate. */
int cpu_swiglu(float *out, const float *gate /* [n, f] */, const float *up /* [n, f] */, int n, int f);

/* x[n, d] += y[n, d]. */
int cpu_add(float *x, const float *y, int n, int d);

/* Paged KV cache layout, per layer: a pool of pages, each [page_size, n_kv_heads, head_dim];
 * a sequence's position p lives in page page_table[p / page_size], row p % page_size. */
typedef struct cpu_paged_kv {
    float *k_pool;            /* [n_pages, page_size, n_kv_heads, head_dim] */
    float *v_pool;            /* [n_pages, page_size, n_kv_heads, head_dim] */
    const int32_t *page_table; /* [n_seqs, max_pages]: page ids per sequence */
    int max_pages;            /* row stride of page_table */
    int n_pages;              /* pages in the pool (bounds check) */
    int page_size;
    int n_kv_heads;
    int head_dim;
} cpu_paged_kv;

/* Varlen batch: tokens [seq_start[s], seq_start[s+1]) belong to sequence s (row s of page_table);
 * token t is at absolute position pos[t]. */

/* Write the new tokens' keys and values into the cache at their positions. */
int cpu_kv_write(const cpu_paged_kv *kv, const float *k /* [n, n_kv_heads, head_dim] */,
                 const float *v /* [n, n_kv_heads, head_dim] */, const int32_t *seq_start /* [n_seqs + 1] */,
                 const int32_t *pos /* [n] */, int n_seqs);

/* Causal attention over the paged cache (which already holds the new tokens): query t of sequence s
 * attends to that sequence's positions j with j <= pos[t] and, when window > 0, pos[t] - j < window.
 * GQA: query head h reads kv head h / (n_heads / n_kv_heads). Online softmax: no score matrix is
 * ever materialised, only one running maximum, sum and output row per (token, head). */
int cpu_attention_paged(float *out /* [n, n_heads, head_dim] */, const float *q /* [n, n_heads, head_dim] */,
                        const cpu_paged_kv *kv, const int32_t *seq_start /* [n_seqs + 1] */,
                        const int32_t *pos /* [n] */, int n_seqs, int n_heads, int window, float scale);

#endif
