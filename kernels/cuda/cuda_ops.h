/* kernels/cuda/cuda_ops.h: the C launch API of the CUDA kernels.
 *
 * Contract for every launcher here (DESIGN.md "Kernels"):
 * - raw device pointers in, row-major, shapes in the comment beside each pointer;
 * - nothing is allocated (scratch comes from a caller-owned workspace whose size a *_workspace_size
 *   function gives), nothing is synchronised: the work is queued on `stream`;
 * - returns GPU_OK (0), GPU_UNSUPPORTED for shapes/dtypes outside the compiled list (never a wrong
 *   answer), or another negative code for a launch or library error; gpu_last_error() then says
 *   what failed, with file and line;
 * - activations, weights and the KV cache are all of one dtype per call, FP16 or BF16 (`gpu_dtype`),
 *   with float32 accumulation; logits and the sampling state are float32;
 * - the CPU reference of each op is in kernels/cpu/ops.h; the checks in tests/kernels/ hold the two
 *   to |gpu - cpu| <= atol + rtol * |cpu|.
 * Threading: every launcher may be called from any thread; a gpu_blas handle is used by one thread
 * at a time.
 */
#ifndef CK_KERNELS_CUDA_OPS_H
#define CK_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gpu_dtype { GPU_F16 = 0, GPU_BF16 = 1 } gpu_dtype;

enum {
    GPU_OK = 0,
    GPU_UNSUPPORTED = -1,  /* shape, dtype or alignment outside the compiled list */
    GPU_ELAUNCH = -2,      /* a CUDA runtime call or kernel launch failed */
    GPU_EBLAS = -3,        /* cuBLASLt failed or found no algorithm */
    GPU_EWORKSPACE = -4    /* the workspace given is smaller than *_workspace_size() */
};

/* Message of the last failure on this thread ("" if none). Valid until the next failing call. */
const char *gpu_last_error(void);

/* ---- embedding ---------------------------------------------------------------------------
 * out[i, :] = table[ids[i], :]. ids outside [0, n_vocab) give a row of zeros (a kernel cannot
 * fail; the engine validates ids on the host). Any d; 16-byte path when d % 8 == 0 and the
 * pointers are 16-byte aligned. */
int gpu_embed(gpu_dtype dt, void *out /* [n, d] */, const void *table /* [n_vocab, d] */,
              const int32_t *ids /* [n] */, int n, int d, int n_vocab, cudaStream_t stream);

/* ---- RMSNorm -----------------------------------------------------------------------------
 * out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w[:]; out may alias x. Requires
 * d % 8 == 0, d <= 16384 (one block of at most 256 threads per row; was documented as 65536, which launched more
 * threads than the kernel's bounds allow and failed at launch), 16-byte aligned pointers. */
int gpu_rmsnorm(gpu_dtype dt, void *out /* [n, d] */, const void *x /* [n, d] */, const void *w /* [d] */,
                int n, int d, float eps, cudaStream_t stream);

/* resid += delta (rounded to dt, in place), then out = rmsnorm(resid) * w. Same limits as above.
 * out may not alias resid or delta. */
int gpu_add_rmsnorm(gpu_dtype dt, void *out /* [n, d] */, void *resid /* [n, d] */,
                    const void *delta /* [n, d] */, const void *w /* [d] */, int n, int d, float eps,
                    cudaStream_t stream);
/* As gpu_rmsnorm / gpu_add_rmsnorm, and each output row also written in another order: xp[i, j] = out[i, xperm[j]],
 * where xperm (int32 [d], device, 16-byte aligned) is a permutation of [0, d): a permuted quantized weight's
 * gpu_qweight.perm, so that weight's decode kernel reads xp in its packed order instead of gathering out (quant_ops.h,
 * gpu_qx). xp NULL: the functions above. xp 16-byte aligned, not aliasing out, resid or x; d <= GPU_NORM_X_MAX_D
 * (the row is staged in shared memory). */
#define GPU_NORM_X_MAX_D 16384
int gpu_rmsnorm_x(gpu_dtype dt, void *out, const void *x, const void *w, int n, int d, float eps, void *xp /* [n, d] */,
                  const int32_t *xperm /* [d] */, cudaStream_t stream);
int gpu_add_rmsnorm_x(gpu_dtype dt, void *out, void *resid, const void *delta, const void *w, int n, int d, float eps,
                      void *xp /* [n, d] */, const int32_t *xperm /* [d] */, cudaStream_t stream);
/* The end of an RMSNorm whose numerators a decode launch wrote (quant_ops.h, gpu_qx.resid) where no launch took its
 * sums (ss_in): out[r, :] (and xp[r, :], its copy in another order, when not NULL) times rsqrt(sum_t ss[r * tiles +
 * t] / d + eps) 2^shift (the numerators' gpu_qx.ss_shift, -30..30), in place, for r < n. d % 8 == 0; out and xp
 * 16-byte aligned. */
int gpu_rms_settle(gpu_dtype dt, void *out /* [n, d] */, void *xp /* [n, d] or NULL */,
                   const float *ss /* [n, tiles] */, int tiles, int n, int d, float eps, int shift,
                   cudaStream_t stream);

/* ---- RoPE (NeoX "rotate half" pairing) ---------------------------------------------------
 * In place on q (and k when not NULL): for i < rot/2, dims i and i + rot/2 rotate by
 * pos[t] * inv_freq[i]; cos and sin are multiplied by mscale. Dims past rot are left alone.
 * inv_freq is a device float array [rot/2] that the engine precomputes per rope type (default,
 * linear, dynamic NTK, YaRN, llama3). Row strides (elements between consecutive tokens) allow a
 * fused QKV buffer: q_stride >= n_q_heads * head_dim. Requires head_dim even, rot even, rot <= head_dim
 * <= 512. */
int gpu_rope(gpu_dtype dt, void *q /* [n, q_stride] */, int n_q_heads, int q_stride,
             void *k /* [n, k_stride] or NULL */, int n_k_heads, int k_stride,
             const int32_t *pos /* [n] */, const float *inv_freq /* [rot/2] */, int n, int head_dim,
             int rot, float mscale, cudaStream_t stream);

/* ---- SwiGLU ------------------------------------------------------------------------------
 * out[i, j] = silu(gate[i, j]) * up[i, j]; gate and up rows are in_stride elements apart (in_stride
 * = f for separate buffers, 2 * f for a fused [gate | up] buffer); out rows are f apart. out may
 * alias gate when in_stride == f. Any f; 16-byte path when f and in_stride are multiples of 8. */
int gpu_swiglu(gpu_dtype dt, void *out /* [n, f] */, const void *gate, const void *up, int n, int f,
               int in_stride, cudaStream_t stream);

/* ---- linear ------------------------------------------------------------------------------
 * out[n, m] = x[n, k] @ w[m, k]^T (+ bias[m]). A gpu_blas handle holds the cuBLASLt context
 * (host memory only). Paths: GEMV (a bandwidth-bound kernel, 16-byte loads of w, for 1 <= n <= 8,
 * k % 8 == 0) and cuBLASLt (any shape). GPU_LINEAR_AUTO picks GEMV when it applies. The workspace
 * is for cuBLASLt (32 MiB is plenty; 0 works, maybe slower). */
typedef struct gpu_blas gpu_blas;
int gpu_blas_create(gpu_blas **out_blas);
void gpu_blas_destroy(gpu_blas *blas); /* accepts NULL */

enum { GPU_LINEAR_AUTO = 0, GPU_LINEAR_GEMV = 1, GPU_LINEAR_BLASLT = 2 };
int gpu_linear(gpu_blas *blas, gpu_dtype dt, void *out /* [n, m] */, const void *x /* [n, k] */,
               const void *w /* [m, k] */, const void *bias /* [m] or NULL */, int n, int k, int m,
               int path, void *workspace, size_t workspace_size, cudaStream_t stream);

/* A fused weight w = [w_0; w_1; ...] ([sum ms, k], up to 3 parts, bias likewise or NULL): outs[i][n, ms[i]]
 * = x @ w_i^T (+ bias_i). The GEMV path reads w once in one launch; the cuBLASLt path runs one GEMM per
 * part on its slice. Same paths and limits as gpu_linear. */
int gpu_linear_split(gpu_blas *blas, gpu_dtype dt, void *const *outs, const int *ms, int n_out,
                     const void *x /* [n, k] */, const void *w /* [sum ms, k] */, const void *bias, int n, int k,
                     int path, void *workspace, size_t workspace_size, cudaStream_t stream);

/* w = [w_gate; w_up] ([2f, k], bias [2f] or NULL): out[n, f] = silu(x w_gate^T) * (x w_up^T), gate and up
 * rounded to dt first as the unfused ops do. The GEMV path computes gate row j and up row j in one
 * block and writes only out; the cuBLASLt path uses out and scratch_up ([n, f]) then gpu_swiglu. */
int gpu_linear_swiglu(gpu_blas *blas, gpu_dtype dt, void *out /* [n, f] */, void *scratch_up /* [n, f] */,
                      const void *x /* [n, k] */, const void *w /* [2f, k] */, const void *bias, int n, int k, int f,
                      int path, void *workspace, size_t workspace_size, cudaStream_t stream);

/* out[n, m] = x[n, k] @ w[m, k]^T in float32 (the lm_head's logits) by the GEMV: 1 <= n <= 8, k % 8 == 0. */
int gpu_linear_f32out(gpu_dtype dt, float *out /* [n, m] */, const void *x, const void *w, int n, int k, int m,
                      cudaStream_t stream);
/* Bench knobs, process-wide. The one-row GEMV's (rows per block, loads in flight): 0 default ((8, 2),
 * (2, 2) for SwiGLU); 1 (2, 4); 2 (2, 8); 3 (4, 2); 4 (4, 4); 5 (8, 2); 6 (2, 16); 7 (2, 2). Programmatic
 * dependent launch on sm_90 (default on; gpu_linear_pdl(0) or CHASKI_PDL=0 turns it off) of the GEMVs and of
 * the small kernels of a decode step (norms, RoPE, the KV write, decode attention, SwiGLU, the embedding
 * gather, the quantized GEMVs): a kernel so launched starts while the one before it on the stream runs, and
 * before it waits for that one it reads what no kernel of the step may write: weights, positions, sequence
 * starts, page tables, rope frequencies, and KV-cache rows of positions before a decode token's own. A
 * caller that computes any of those with a kernel must put a plain launch or a synchronisation between. */
void gpu_linear_gemv_tuning(int variant);
void gpu_linear_pdl(int on);

/* ---- paged KV cache (layout as kernels/cpu/ops.h cpu_paged_kv, in dt) ----------------------- */
typedef struct gpu_paged_kv {
    void *k_pool;              /* [n_pages, page_size, n_kv_heads, head_dim] */
    void *v_pool;              /* [n_pages, page_size, n_kv_heads, head_dim] */
    const int32_t *page_table; /* device [n_seqs, max_pages] */
    int max_pages;
    int n_pages;
    int page_size;
    int n_kv_heads;
    int head_dim;
} gpu_paged_kv;

/* Writes the n_tokens new keys/values at their positions (token t of sequence s, per seq_start, at
 * pos[t]). k and v rows are k_stride / v_stride elements apart (fused QKV). A position whose page id
 * is outside [0, n_pages) is skipped. Requires head_dim % 8 == 0, strides % 8 == 0. */
int gpu_kv_write(gpu_dtype dt, const gpu_paged_kv *kv, const void *k /* [n_tokens, k_stride] */, int k_stride,
                 const void *v /* [n_tokens, v_stride] */, int v_stride, const int32_t *seq_start /* [n_seqs+1] */,
                 const int32_t *pos /* [n_tokens] */, int n_seqs, int n_tokens, cudaStream_t stream);
/* gpu_rope of q (n_q_heads) and k (kv->n_kv_heads, head_dim kv->head_dim) and gpu_kv_write of the rotated k and of
 * v, in one launch (the decode step's rope and cache write). Any head_dim gpu_rope takes; strides in elements. */
int gpu_rope_kv(gpu_dtype dt, void *q /* [n, q_stride] */, int n_q_heads, int q_stride, void *k /* [n, k_stride] */,
                int k_stride, const void *v /* [n, v_stride] */, int v_stride, const gpu_paged_kv *kv,
                const int32_t *seq_start /* [n_seqs+1] */, int n_seqs, const int32_t *pos /* [n] */,
                const float *inv_freq /* [rot/2] */, int n, int rot, float mscale, cudaStream_t stream);

/* ---- paged attention ---------------------------------------------------------------------
 * Causal attention over the paged cache (which already holds the new tokens), as cpu_attention_paged:
 * query t of sequence s attends to positions j <= pos[t] (and pos[t] - j < window when window > 0);
 * GQA/MQA: query head h reads kv head h / (n_heads / n_kv_heads). The cache holds every position
 * 0..pos[last token] of each sequence. Each sequence of the batch has at least one token.
 * Row strides (elements between tokens) allow a fused QKV buffer for q.
 *   decode (n_tokens == n_seqs, one query per sequence): flash-decoding, the context split across
 *     blocks (n_splits; 0 = chosen from the device's SM count; fewer for a short context), the splits merged by
 *     the last of them to finish (one kernel);
 *   prefill (otherwise): flash-attention tiles of 64 queries x 64 keys on tensor cores (mma.sync,
 *     sm_80+), online softmax, the score matrix never materialised.
 * max_q_len: the most tokens of any one sequence in the batch; max_ctx: the largest pos[t] + 1.
 * Supported: head_dim 64 or 128; n_heads % n_kv_heads == 0; q_stride, out rows dense or strided by
 * multiples of 8. Workspace (decode only; 0 bytes for prefill) from gpu_attention_workspace_size, which sizes it for
 * every call of those n_seqs and heads whose max_ctx is at most the one given (one workspace for all of a backend's
 * graph buckets): its first
 * GPU_ATTENTION_WS_ZERO_BYTES bytes (split arrival counters) must be zero before its first use (zeroed once after
 * allocating it, ordered before the first call: cudaMemsetAsync on the stream the calls use); each call leaves them
 * zero. One workspace serves one stream at a time; 16-byte aligned. */
#define GPU_ATTENTION_WS_ZERO_BYTES 65536
/* Bench knob: decode kernel variant (0 default = 4 for GQA groups of 4, 2 at contexts of at most 256 keys; 1 = 4 keys
 * in flight per lane group, 2 = 4 pipelined, 3 = 8, 4 = 8 pipelined; for groups of 8 heads, 7 = 2 keys not pipelined,
 * the default 2 pipelined) and the blocks per SM the split count aims at
 * (0 default: 2 for GQA groups of 4, else 8).
 * Process-wide; set it before sizing workspaces. */
void gpu_attention_decode_tuning(int variant, int blocks_per_sm);
size_t gpu_attention_workspace_size(int n_seqs, int n_tokens, int n_heads, int n_kv_heads, int head_dim, int max_ctx,
                                    int n_splits);
int gpu_attention(gpu_dtype dt, void *out /* [n_tokens, n_heads, head_dim] */,
                  const void *q /* [n_tokens, q_stride] */, int q_stride, const gpu_paged_kv *kv,
                  const int32_t *seq_start /* [n_seqs+1] */, const int32_t *pos /* [n_tokens] */,
                  int n_seqs, int n_tokens, int n_heads, int max_q_len, int max_ctx, int window, float scale,
                  int n_splits, void *workspace, size_t workspace_size, cudaStream_t stream);
/* As gpu_attention, and each output row also scattered in another order: xp[t, xpos[j]] = out[t, j] for j <
 * n_heads * head_dim (xpos a permutation, int32, device: the o projection's gpu_qweight.pos when its rows are
 * permuted; see gpu_rmsnorm_x). Decode only (n_tokens == n_seqs) when xp is not NULL; GPU_UNSUPPORTED otherwise. */
int gpu_attention_x(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                    const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads, int max_q_len,
                    int max_ctx, int window, float scale, int n_splits, void *workspace, size_t workspace_size,
                    void *xp /* [n_tokens, n_heads * head_dim] */, const int32_t *xpos, cudaStream_t stream);
/* A decode step's gpu_rope_kv (rot = head_dim) and gpu_attention_x in one launch: q and k as the projections wrote
 * them (not rotated), v the new values; the kernel rotates q and the new key in registers (the same arithmetic as
 * gpu_rope: the same bits), writes the rotated key and v to the cache at pos[s] (skipped where gpu_kv_write would
 * skip it) and attends. Unlike the two launches it leaves q and k in memory unrotated. One token per sequence
 * (n_tokens == n_seqs); head_dim 64 or 128; k_stride, v_stride multiples of 8, k and v 16-byte aligned; the other
 * arguments as gpu_attention_x. GPU_UNSUPPORTED otherwise (the caller then takes the two launches). */
int gpu_attention_rope_x(gpu_dtype dt, void *out, const void *q, int q_stride, const void *k /* [n_seqs, k_stride] */,
                         int k_stride, const void *v /* [n_seqs, v_stride] */, int v_stride,
                         const float *inv_freq /* [head_dim / 2] */, float mscale, const gpu_paged_kv *kv,
                         const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_heads, int max_ctx, int window,
                         float scale, int n_splits, void *workspace, size_t workspace_size, void *xp,
                         const int32_t *xpos, cudaStream_t stream);

/* ---- sampling ------------------------------------------------------------------------------
 * One float32 logits row per sequence -> one token id (and its logprob). Order of the chain (that
 * of engine/sample's smp_sample in its default order, "temperature last"):
 *   1. penalties over the row's token history (each distinct token once, with its count c):
 *      repetition (l > 0 ? l / r : l * r), then l -= frequency * c + presence;
 *   2. l += bias (sparse list per row);
 *   3. logprob: log_softmax of the MODEL's row (before 1 and 2) at the chosen token (smp_logprobs);
 *   4. temperature <= 0: greedy (argmax of l, lowest id on ties); else
 *   5. on the untempered l: top-k (keep l >= the k-th largest l), top-p over what top-k kept (keep
 *      l >= the largest threshold whose kept mass >= top_p of the total), min-p (keep l >= max +
 *      log(min_p));
 *   6. draw: u = gpu_sample_uniform(seed, counter); the token is the first id (ascending) whose
 *      cumulative kept weight exp((l - max) / temperature) exceeds u * (total kept weight).
 * Any vocab >= 1, up to 65535 rows (GPU_UNSUPPORTED above). Workspace from gpu_sample_workspace_size. */
typedef struct gpu_sample_params {
    float temperature;         /* <= 0: greedy */
    float top_p;               /* >= 1: off */
    float min_p;               /* <= 0: off */
    float repetition_penalty;  /* 1: off */
    float frequency_penalty;   /* 0: off */
    float presence_penalty;    /* 0: off */
    int32_t top_k;             /* <= 0 or >= vocab: off */
    int32_t n_history;         /* history tokens of this row */
    int64_t history_offset;    /* into the history array */
    int32_t n_bias;            /* logit-bias entries of this row */
    int32_t pad_;
    int64_t bias_offset;       /* into bias_ids / bias_values */
    uint64_t seed;
    uint64_t counter;          /* draw index: the engine advances it per step */
} gpu_sample_params;

/* The counter-based uniform [0, 1) draw used by the sampler (splitmix64 of seed and counter). */
static inline uint64_t gpu_sample_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* = smp_uniform(seed, counter, 0) of engine/sample (53 bits). */
static inline double gpu_sample_uniform(uint64_t seed, uint64_t counter) {
    uint64_t r = gpu_sample_mix64(gpu_sample_mix64(gpu_sample_mix64(seed) ^ counter));
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

size_t gpu_sample_workspace_size(int n_rows, int vocab);
int gpu_sample(int32_t *out_tokens /* [n_rows] */, float *out_logprobs /* [n_rows] or NULL */,
               const float *logits /* [n_rows, logits_stride] */, int64_t logits_stride, int n_rows, int vocab,
               const gpu_sample_params *params /* device [n_rows] */,
               const int32_t *history /* device, indexed by params */, const int32_t *bias_ids,
               const float *bias_values, void *workspace, size_t workspace_size, cudaStream_t stream);

/* The kernel timeline trace of a -DCHASKI_KTRACE=1 build (common.cuh, ktrace.cu): init reads CHASKI_KTRACE (the
 * output path) and allocates the ring, dump writes it; without that build or variable both return GPU_OK at once. */
int gpu_ktrace_init(void);
int gpu_ktrace_dump(void);

#ifdef __cplusplus
}
#endif
#endif
