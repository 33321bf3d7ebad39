/* backend_cpu.c: the reference backend. Buffers are float32 host arrays; ops call kernels/cpu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/ops.h"

struct be_buf {
    float *data;
    size_t n;
};

static ck_status cpu_alloc(be_backend *be, size_t n, be_buf **out, ck_error *err)
{
    be_buf *b = malloc(sizeof *b);
    float *d = malloc((n ? n : 1) * sizeof(float));
    if (!b || !d) {
        free(b);
        free(d);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu floats", n);
    }
    b->data = d;
    b->n = n;
    *out = b;
    return CK_OK;
}

static void cpu_free(be_backend *be, be_buf *b)
{
    if (b) {
        free(b->data);
        free(b);
    }
}

static ck_status cpu_upload(be_backend *be, const st_tensor *t, be_buf **out, ck_error *err)
{
    ck_status st = cpu_alloc(be, (size_t)t->n_elems, out, err);
    if (st == CK_OK && (st = st_to_f32(t, 0, t->n_elems, (*out)->data, err)) != CK_OK) {
        cpu_free(be, *out);
        *out = NULL;
    }
    return st;
}

static ck_status cpu_write(be_backend *be, be_buf *dst, size_t off, const float *src, size_t n, ck_error *err)
{
    if (off > dst->n || n > dst->n - off)
        return ck_fail(err, CK_E_INTERNAL, "cpu backend: write of %zu at %zu past a buffer of %zu", n, off, dst->n);
    memcpy(dst->data + off, src, n * sizeof(float));
    return CK_OK;
}

static ck_status cpu_read(be_backend *be, const be_buf *src, size_t off, float *dst, size_t n, ck_error *err)
{
    if (off > src->n || n > src->n - off)
        return ck_fail(err, CK_E_INTERNAL, "cpu backend: read of %zu at %zu past a buffer of %zu", n, off, src->n);
    memcpy(dst, src->data + off, n * sizeof(float));
    return CK_OK;
}

static ck_status status_of(int rc, const char *op, ck_error *err)
{
    return rc == 0 ? CK_OK : ck_fail(err, CK_E_INTERNAL, "cpu backend: %s rejected its arguments (%d)", op, rc);
}

static ck_status op_embed(be_backend *be, be_buf *out, const be_buf *table, const int32_t *ids, int n, int d,
                          int n_vocab, ck_error *err)
{
    if (cpu_embed(out->data, table->data, ids, n, d, n_vocab) != 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "token id outside the vocabulary [0, %d)", n_vocab);
    return CK_OK;
}

static ck_status op_rmsnorm(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, int n, int d, float eps,
                            ck_error *err)
{
    return status_of(cpu_rmsnorm(out->data, x->data, w->data, n, d, eps), "rmsnorm", err);
}

static ck_status op_add_rmsnorm(be_backend *be, be_buf *out, be_buf *resid, const be_buf *delta, const be_buf *w,
                                int n, int d, float eps, ck_error *err)
{
    return status_of(cpu_add_rmsnorm(out->data, resid->data, delta->data, w->data, n, d, eps), "add_rmsnorm", err);
}

static ck_status op_matmul(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, const be_buf *bias, int n,
                           int k, int m, ck_error *err)
{
    return status_of(cpu_matmul(out->data, x->data, w->data, bias ? bias->data : NULL, n, k, m), "matmul", err);
}

static ck_status op_rope(be_backend *be, be_buf *x, const int32_t *pos, const float *inv_freq, int n, int n_heads,
                         int head_dim, int rot, float mscale, ck_error *err)
{
    return status_of(cpu_rope(x->data, pos, inv_freq, n, n_heads, head_dim, rot, mscale), "rope", err);
}

static ck_status op_swiglu(be_backend *be, be_buf *out, const be_buf *gate, const be_buf *up, int n, int f,
                           ck_error *err)
{
    return status_of(cpu_swiglu(out->data, gate->data, up->data, n, f), "swiglu", err);
}

static cpu_paged_kv kv_of(const be_kv_view *v, int layer_unused)
{
    (void)layer_unused;
    return (cpu_paged_kv){v->k_pool->data, v->v_pool->data, v->page_table, v->max_pages, v->n_pages,
                          v->page_size, v->n_kv_heads, v->head_dim};
}

static ck_status op_kv_write(be_backend *be, const be_kv_view *v, const be_buf *k, const be_buf *vv,
                             const int32_t *seq_start, const int32_t *pos, int n_seqs, ck_error *err)
{
    cpu_paged_kv kv = kv_of(v, 0);
    return status_of(cpu_kv_write(&kv, k->data, vv->data, seq_start, pos, n_seqs), "kv_write", err);
}

static ck_status op_attention(be_backend *be, be_buf *out, const be_buf *q, const be_kv_view *v,
                              const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_heads, int window,
                              float scale, ck_error *err)
{
    cpu_paged_kv kv = kv_of(v, 0);
    return status_of(cpu_attention_paged(out->data, q->data, &kv, seq_start, pos, n_seqs, n_heads, window, scale),
                     "attention", err);
}

static ck_status op_gather_rows(be_backend *be, be_buf *out, const be_buf *x, const int32_t *rows, int n, int d,
                                ck_error *err)
{
    for (int i = 0; i < n; i++)
        memmove(out->data + (size_t)i * d, x->data + (size_t)rows[i] * d, sizeof(float) * (size_t)d);
    return CK_OK;
}

/* MemAvailable from /proc/meminfo; unsupported where that file is absent. */
static ck_status cpu_mem_info(be_backend *be, size_t *free_bytes, size_t *total_bytes, ck_error *err)
{
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp)
        return ck_fail(err, CK_E_UNSUPPORTED, "cpu backend: /proc/meminfo is not readable");
    char line[256];
    unsigned long long avail = 0, total = 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            avail = kb * 1024ull;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            total = kb * 1024ull;
    }
    fclose(fp);
    if (!avail || !total)
        return ck_fail(err, CK_E_UNSUPPORTED, "cpu backend: no MemAvailable in /proc/meminfo");
    *free_bytes = (size_t)avail;
    *total_bytes = (size_t)total;
    return CK_OK;
}

static size_t cpu_weight_elem_size(be_backend *be, st_dtype dtype)
{
    return sizeof(float);
}

static size_t cpu_act_elem_size(be_backend *be)
{
    return sizeof(float);
}

static void cpu_destroy(be_backend *be)
{
    free(be);
}

static const be_ops k_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .write = cpu_write,
    .read = cpu_read,
    .embed = op_embed,
    .rmsnorm = op_rmsnorm,
    .add_rmsnorm = op_add_rmsnorm,
    .matmul = op_matmul,
    .rope = op_rope,
    .swiglu = op_swiglu,
    .kv_write = op_kv_write,
    .attention = op_attention,
    .gather_rows = op_gather_rows,
    .destroy = cpu_destroy,
    .mem_info = cpu_mem_info,
    .weight_elem_size = cpu_weight_elem_size,
    .act_elem_size = cpu_act_elem_size,
};

ck_status be_cpu_create(be_backend **out, ck_error *err)
{
    be_backend *be = malloc(sizeof *be);
    if (!be)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cpu backend: out of memory");
    be->ops = &k_cpu_ops;
    *out = be;
    return CK_OK;
}

ck_status be_create(const char *name, be_backend **out, ck_error *err)
{
    *out = NULL;
    if (!name || !strcmp(name, "cpu"))
        return be_cpu_create(out, err);
#ifdef CHASKI_HAVE_CUDA
    if (!strncmp(name, "cuda", 4))
        return be_cuda_create(name, out, err);
    return ck_fail(err, CK_E_UNSUPPORTED, "backend '%s' is not available in this build (available: cpu, cuda)",
                   name);
#else
    return ck_fail(err, CK_E_UNSUPPORTED, "backend '%s' is not available in this build (available: cpu)", name);
#endif
}

void be_destroy(be_backend *be)
{
    if (be)
        be->ops->destroy(be);
}
