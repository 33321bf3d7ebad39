/* backend.h: the op table that the forward pass is written against (prefix be_).
 *
 * A backend owns device memory (`be_buf`, opaque) and runs ops on it. `cpu` is the reference
 * (kernels/cpu, float32 everywhere); `cuda` implements the same table with kernels/cuda.
 * Buffers hold activations in the backend's activation type; shapes are given per call.
 * No op allocates: workspace and KV pools are sized before the first step. */
#ifndef CK_BACKEND_H
#define CK_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
#include "safetensors.h"

typedef struct be_backend be_backend;
typedef struct be_buf be_buf;
struct be_prep;
struct be_step;
struct be_step_plan;
struct be_step_out;
struct qnt_host_linear;

typedef struct be_kv_view {
    be_buf *k_pool, *v_pool;       /* [n_pages, page_size, n_kv_heads, head_dim] */
    const int32_t *page_table;     /* host array [n_seqs, max_pages] */
    int max_pages, n_pages, page_size, n_kv_heads, head_dim;
} be_kv_view;

typedef struct be_ops {
    const char *name;
    /* memory */
    ck_status (*alloc)(be_backend *be, size_t n_elems, be_buf **out, ck_error *err); /* activations */
    void (*free)(be_backend *be, be_buf *buf);
    /* copy a weight tensor (F32/F16/BF16) into backend memory, as [rows, cols] */
    ck_status (*upload)(be_backend *be, const st_tensor *t, be_buf **out, ck_error *err);
    /* host <-> backend float32 copies of n elements at element offset off */
    ck_status (*write)(be_backend *be, be_buf *dst, size_t off, const float *src, size_t n, ck_error *err);
    ck_status (*read)(be_backend *be, const be_buf *src, size_t off, float *dst, size_t n, ck_error *err);
    /* ops (see kernels/cpu/ops.h for each contract); offsets in elements */
    ck_status (*embed)(be_backend *be, be_buf *out, const be_buf *table, const int32_t *ids, int n, int d,
                       int n_vocab, ck_error *err);
    ck_status (*rmsnorm)(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, int n, int d, float eps,
                         ck_error *err);
    ck_status (*add_rmsnorm)(be_backend *be, be_buf *out, be_buf *resid, const be_buf *delta, const be_buf *w,
                             int n, int d, float eps, ck_error *err);
    ck_status (*matmul)(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, const be_buf *bias, int n,
                        int k, int m, ck_error *err);
    ck_status (*rope)(be_backend *be, be_buf *x, const int32_t *pos, const float *inv_freq, int n, int n_heads,
                      int head_dim, int rot, float mscale, ck_error *err);
    ck_status (*swiglu)(be_backend *be, be_buf *out, const be_buf *gate, const be_buf *up, int n, int f,
                        ck_error *err);
    ck_status (*kv_write)(be_backend *be, const be_kv_view *kv, const be_buf *k, const be_buf *v,
                          const int32_t *seq_start, const int32_t *pos, int n_seqs, ck_error *err);
    ck_status (*attention)(be_backend *be, be_buf *out, const be_buf *q, const be_kv_view *kv,
                           const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_heads, int window,
                           float scale, ck_error *err);
    /* gather rows: out[i, :] = x[rows[i], :] (logit rows) */
    ck_status (*gather_rows)(be_backend *be, be_buf *out, const be_buf *x, const int32_t *rows, int n, int d,
                             ck_error *err);
    void (*destroy)(be_backend *be);

    /* ---- optional hooks (NULL where a backend has no use for them; the cpu backend sets none) ----
     * A step is one fwd_run. Backends with step hooks (cuda) upload the step's metadata once
     * (be_step) and their ops then read those device copies: the host arrays that fwd_run passes to
     * embed, rope, kv_write, attention and gather_rows are always the step's own. */
    /* Size per-step buffers for batches of up to max_tokens tokens, max_seqs sequences and page
     * tables of page_cap pages (called by fwd_workspace_create; buffers only grow). */
    ck_status (*prepare)(be_backend *be, const struct be_prep *p, ck_error *err);
    /* Start a step; plan->n_tokens / n_rows say how many rows the ops must run (a padded decode
     * batch may run more than asked); plan->skip_ops = 1 when the step replays a captured graph
     * and the ops must not be called. */
    ck_status (*step_begin)(be_backend *be, const struct be_step *s, struct be_step_plan *plan, ck_error *err);
    /* logits[n, m] = x[n, k] w[m, k]^T in float32, delivered to the host by step_end. */
    ck_status (*lm_head)(be_backend *be, const be_buf *x, const be_buf *w, int n, int k, int m, ck_error *err);
    /* End a step (ok = 0 after a failed op: discard). Copies n_rows x vocab float32 logits to out. */
    ck_status (*step_end)(be_backend *be, int ok, float *out, int n_rows, int vocab, ck_error *err);
    /* Forget everything cached about buffers (captured graphs): called when a workspace, a KV
     * cache or a model is destroyed. */
    void (*invalidate)(be_backend *be);
    /* Free and total bytes of the backend's memory (the planner's input). */
    ck_status (*mem_info)(be_backend *be, size_t *free_bytes, size_t *total_bytes, ck_error *err);
    /* Bytes per element of a weight of this checkpoint dtype once uploaded, and of activations. */
    size_t (*weight_elem_size)(be_backend *be, st_dtype dtype);
    size_t (*act_elem_size)(be_backend *be);
    /* Quantized linears (NULL: the loader dequantizes them to float32 and calls upload instead).
     * upload_quant: a validated GPTQ/EXL2 linear (engine/quant, file layout in host memory; `name` the
     * linear's prefix, "lm_head" for the head) into backend memory, run by matmul and lm_head with the
     * backend's quantized kernels. is_quant: whether a buffer holds one (not a dense [rows, cols]
     * tensor: never fuse, read or write it). */
    ck_status (*upload_quant)(be_backend *be, const char *name, const struct qnt_host_linear *l, be_buf **out,
                              ck_error *err);
    int (*is_quant)(be_backend *be, const be_buf *buf);
    /* Fused weights and ops (NULL: forward.c runs the separate ops; the cpu backend sets none).
     * fuse_rows: one new buffer holding the rows of parts[0..n_parts-1] ([rows[i], k] each, dense)
     * one after another; the parts are left as they are. CK_E_UNSUPPORTED when a part cannot be fused
     * (quantized): the caller then keeps the parts. Load time only.
     * matmul_split: outs[i][n, ms[i]] = x[n, k] w_i^T (+ bias_i) for w = [w_0; ...] made by fuse_rows
     * (up to 3 parts, the bias fused alike or NULL): a fused QKV projection.
     * matmul_swiglu: out[n, f] = silu(x w_gate^T + b_gate) * (x w_up^T + b_up) for w = [w_gate; w_up]
     * (gate and up rounded to the activation type first, as the separate ops); scratch [n, f] may be
     * overwritten.
     * rope_kv: rope (same contract) of q and k, then kv_write of the rotated k and of v, in one call
     * (optional; the step's own).
     * matmul_many: outs[i][n, ms[i]] = x[n, k] ws[i]^T (+ biases[i], each may be NULL) for up to 3
     * weights that fuse_rows did not join (quantized q, k, v or gate, up), in as few launches as the
     * backend can; the same results as one matmul per weight.
     * matmul2_swiglu: out[n, f] = silu(x w_gate^T + b_gate) * (x w_up^T + b_up) for two weights fuse_rows did
     * not join (quantized gate and up; biases may be NULL); gate and up rounded to the activation type first, as
     * matmul_many followed by swiglu; scratch [n, f] may be overwritten. */
    ck_status (*fuse_rows)(be_backend *be, const be_buf *const *parts, const int *rows, int n_parts, int k,
                           be_buf **out, ck_error *err);
    ck_status (*matmul_split)(be_backend *be, be_buf *const *outs, const int *ms, int n_out, const be_buf *x,
                              const be_buf *w, const be_buf *bias, int n, int k, ck_error *err);
    ck_status (*matmul_swiglu)(be_backend *be, be_buf *out, be_buf *scratch, const be_buf *x, const be_buf *w,
                               const be_buf *bias, int n, int k, int f, ck_error *err);
    ck_status (*matmul_many)(be_backend *be, be_buf *const *outs, const int *ms, int n_w, const be_buf *x,
                             const be_buf *const *ws, const be_buf *const *biases, int n, int k, ck_error *err);
    ck_status (*rope_kv)(be_backend *be, be_buf *q, int n_q_heads, be_buf *k, const be_buf *v, const be_kv_view *kv,
                         const int32_t *seq_start, const int32_t *pos, const float *inv_freq, int n_seqs, int n,
                         int head_dim, int rot, float mscale, ck_error *err);
    ck_status (*matmul2_swiglu)(be_backend *be, be_buf *out, be_buf *scratch, const be_buf *x, const be_buf *w_gate,
                                const be_buf *w_up, const be_buf *b_gate, const be_buf *b_up, int n, int k, int f,
                                ck_error *err);
    /* order_for (optional, a hint; NULL: never called): the next op that writes `buf` may also write it in the order
     * in which the quantized weight w reads its input (EXL2 and act-order GPTQ permute it), so the matmul of w (or of
     * weights of the same permutation) on `buf` that follows reads that copy instead of gathering it. w NULL or not
     * quantized: no copy. Results are the same either way; forward.c calls it before each op whose output feeds a
     * quantized projection. */
    void (*order_for)(be_backend *be, const be_buf *buf, const be_buf *w);
    /* matmul_add_rmsnorm (optional; NULL: forward.c runs matmul into scratch, then add_rmsnorm): resid += x w^T (+
     * bias) with the product rounded to the activation type first, then out = rmsnorm(resid) * nw ([n, m] each;
     * scratch [n, m] may be overwritten). The values of those two ops up to the rounding of out; a backend may leave
     * out's rows unscaled until an op reads them (cuda: the next quantized decode launch scales its products). */
    ck_status (*matmul_add_rmsnorm)(be_backend *be, be_buf *out, be_buf *resid, be_buf *scratch, const be_buf *x,
                                    const be_buf *w, const be_buf *bias, const be_buf *nw, int n, int k, int m,
                                    float eps, ck_error *err);
    /* End a step, per logit row (instead of step_end; optional, requires lm_head): out->mode[r]
     * says whether row r is sampled on the device (tokens[r], logprobs[r] written), copied to the host
     * as float32 logits (logits + r * vocab written; only those rows cross the bus) or dropped.
     * ok = 0 after a failed op, as step_end. No allocation: buffers are sized by prepare. */
    ck_status (*step_end_rows)(be_backend *be, int ok, const struct be_step_out *out, ck_error *err);
} be_ops;

/* What step_end_rows does with each logit row. */
enum { BE_ROW_DROP = 0, BE_ROW_LOGITS = 1, BE_ROW_SAMPLE = 2 };
/* The most logit-bias entries of one sampled row (more: sample that row on the host). */
#define BE_SAMPLE_MAX_BIAS 256

/* The built-in chain of one sampled row, with the order and rules of gpu_sample
 * (kernels/cuda/cuda_ops.h), which are those of smp_sample's default order: penalties over the
 * history, logit bias, top-k, top-p and min-p on the untempered row, then a draw over
 * exp((l - max) / temperature) in id order with u = smp_uniform(seed, counter, 0). */
typedef struct be_sample_row {
    float temperature;            /* <= 0: greedy */
    float top_p, min_p;           /* 1 / 0: off */
    float repetition_penalty, frequency_penalty, presence_penalty;
    int32_t top_k;                /* <= 0: off */
    int32_t penalty_range;        /* the last N history tokens; 0: all */
    const int32_t *bias_ids;      /* [n_bias] host */
    const float *bias_values;     /* [n_bias] */
    int32_t n_bias;
    int32_t n_history;
    /* The history (host, oldest first). The device keeps a copy per hist_id and receives only the
     * tokens past what it already holds: a caller whose history changed other than by appending
     * (a rewind) must pass a new hist_id. hist_id 0: no history (penalties off). */
    uint64_t hist_id;
    const int32_t *history;
    uint64_t seed, counter;
} be_sample_row;

typedef struct be_step_out {
    int n_rows, vocab;
    const uint8_t *mode;          /* [n_rows] BE_ROW_* */
    const be_sample_row *sample;  /* [n_rows], read where mode == BE_ROW_SAMPLE */
    float *logits;                /* [n_rows, vocab] host; only BE_ROW_LOGITS rows are written */
    int32_t *tokens;              /* [n_rows]; written where mode == BE_ROW_SAMPLE */
    float *logprobs;              /* [n_rows] or NULL: log_softmax of the model's row, at the token */
} be_step_out;

/* Sizes for be_ops.prepare. */
typedef struct be_prep {
    int max_tokens, max_seqs, page_cap;
    int vocab, n_heads, n_kv_heads, head_dim, max_ctx;
} be_prep;

/* One forward step's metadata (host arrays, valid during step_begin only). */
typedef struct be_step {
    const void *owner;            /* the fwd_workspace: graphs are cached per workspace and cache */
    const void *kv;               /* the kv_cache */
    int n_tokens, n_seqs, n_rows;
    int max_tokens, max_seqs;     /* the workspace's limits (padding must fit) */
    const int32_t *tokens;        /* [n_tokens] */
    const int32_t *pos;           /* [n_tokens] */
    const int32_t *seq_start;     /* [n_seqs + 1] */
    const int32_t *rows;          /* [n_rows] */
    const int32_t *page_table;    /* [n_seqs, page_cap] */
    int page_cap;
    const float *inv_freq;        /* [n_inv] */
    int n_inv;
    int max_len;                  /* the longest sequence after this step */
    int max_q_len;                /* the most new tokens of one sequence */
} be_step;

typedef struct be_step_plan {
    int n_tokens, n_seqs, n_rows;
    int skip_ops;
    int capturing;   /* the ops are being captured into a graph: if the step fails, the backend turns
                        graphs off and fwd_run runs the step once more without them */
} be_step_plan;

struct be_backend {
    const be_ops *ops;
};

/* Backends by name: "cpu" always; "cuda" when built with CUDA and a device is present. */
ck_status be_create(const char *name, be_backend **out, ck_error *err);
void be_destroy(be_backend *be);
ck_status be_cpu_create(be_backend **out, ck_error *err);
/* "cuda", "cuda:bf16", "cuda:f16" (activation dtype; plain "cuda" picks F16 for F16 checkpoints,
 * BF16 otherwise). Defined in engine/cuda/ when built with CHASKI_CUDA. */
ck_status be_cuda_create(const char *name, be_backend **out, ck_error *err);

#endif
