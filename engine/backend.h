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
} be_ops;

struct be_backend {
    const be_ops *ops;
};

/* Backends by name: "cpu" always; "cuda" when built with CUDA and a device is present. */
ck_status be_create(const char *name, be_backend **out, ck_error *err);
void be_destroy(be_backend *be);
ck_status be_cpu_create(be_backend **out, ck_error *err);

#endif
