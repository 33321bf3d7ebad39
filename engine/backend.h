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
} be_ops;

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
