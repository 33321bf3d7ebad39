/* engine/cuda/backend_cuda.c: the cuda backend: the op table on kernels/cuda.
 *
 * Memory: weights, activations and the KV cache in one dtype (BF16, or FP16 for F16 checkpoints or
 * "cuda:f16"), float32 accumulation inside the kernels, float32 logits (cuBLAS, float32 output)
 * copied to pinned host memory. One compute stream, and a copy stream for uploads and the per-step
 * metadata.
 *
 * Steps (be_ops.step_begin/step_end): the step's metadata (token ids, positions, sequence starts,
 * logit rows, page tables, rope inverse frequencies) is packed into a pinned buffer and sent with ONE
 * host-to-device copy into fixed device buffers that the ops read. A decode step (one new token per
 * sequence) is padded to a batch-size bucket (1, 2, 4, ..., 256; padding rows have position -1, which
 * the KV write skips and attention answers with zeros) and captured as a CUDA graph per (workspace,
 * cache, bucket, context bucket); later steps of the same key replay it. The context bucket (a power
 * of two >= 256) fixes the attention split count baked into the graph; the kernels read each
 * sequence's true length from the positions.
 *
 * No cudaMalloc/cudaFree after the buffers are sized (prepare): every allocation goes through
 * dmalloc/dfree, which count (be_cuda_counters), and tests/gpu checks that decode steps add none.
 * Every CUDA call is checked and turned into a ck_status with file and line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "backend_cuda.h"
#include "backend_cuda_internal.h"
#include "backend_cuda_quant.h"
#include "cuda_ops.h"
#include "cuda_util.h"

#define BLAS_WS_BYTES (32u << 20)
#define STAGE_ELEMS ((size_t)4 << 20) /* float32 staging for converting uploads */
#define MAX_BUCKET 256

static cuda_be *cb(be_backend *be)
{
    return (cuda_be *)be;
}

/* ---- error boundary ---------------------------------------------------------------------- */

static ck_status cu_fail(ck_error *err, cudaError_t e, const char *what, const char *file, int line)
{
    return ck_fail(err, e == cudaErrorMemoryAllocation ? CK_E_OUT_OF_MEMORY : CK_E_DEVICE, "%s:%d: %s: %s (%s)",
                   file, line, what, cudaGetErrorString(e), cudaGetErrorName(e));
}
#define CU(call)                                                                                               \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess)                                                                                 \
            return cu_fail(err, e_, #call, __FILE__, __LINE__);                                                \
    } while (0)

static ck_status gpu_status(int rc, const char *what, const char *file, int line, ck_error *err)
{
    if (rc == GPU_OK)
        return CK_OK;
    return ck_fail(err, rc == GPU_UNSUPPORTED ? CK_E_UNSUPPORTED : CK_E_DEVICE, "%s:%d: cuda backend: %s: %s", file,
                   line, what, gpu_last_error());
}
#define GPU(call, what)                                                                                        \
    do {                                                                                                       \
        ck_status s_ = gpu_status((call), (what), __FILE__, __LINE__, err);                                    \
        if (s_ != CK_OK)                                                                                       \
            return s_;                                                                                         \
    } while (0)
/* An op that may read a buffer whose RMSNorm a decode launch left unfinished (op_matmul_add_rmsnorm) finishes it
 * first (cq_settle; nothing when none is pending). Every op but the quantized matmuls, which take it themselves.
 * SETTLE also launches a rope and cache write op_rope_kv left pending (rope_settle); the quantized matmuls do that
 * with ROPE_SETTLE, op_attention takes it into its own launch. */
#define SETTLE(c)                                                                                              \
    do {                                                                                                       \
        ck_status s_ = rope_settle((c), err);                                                                  \
        if (s_ == CK_OK)                                                                                       \
            s_ = cq_settle((c)->quant, (c)->dt, (c)->stream, err);                                             \
        if (s_ != CK_OK)                                                                                       \
            return s_;                                                                                         \
    } while (0)
/* The same for a pending rope alone (the quantized matmuls, which take a pending norm themselves). */
#define ROPE_SETTLE(c)                                                                                         \
    do {                                                                                                       \
        ck_status s_ = rope_settle((c), err);                                                                  \
        if (s_ != CK_OK)                                                                                       \
            return s_;                                                                                         \
    } while (0)
static ck_status rope_settle(cuda_be *c, ck_error *err);

static const char *cublas_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "alloc failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "arch mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    default: return "error";
    }
}
#define CUBLAS(call)                                                                                           \
    do {                                                                                                       \
        cublasStatus_t s_ = (call);                                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                       \
            return ck_fail(err, CK_E_DEVICE, "%s:%d: %s: cuBLAS %s (%d)", __FILE__, __LINE__, #call,           \
                           cublas_name(s_), (int)s_);                                                          \
    } while (0)

/* ---- counted allocation -------------------------------------------------------------------- */

static ck_status dmalloc(cuda_be *c, void **p, size_t bytes, const char *what, ck_error *err)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        (void)cudaMemGetInfo(&fr, &tot);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: cannot allocate %zu bytes for %s (%zu of %zu free): %s",
                       bytes, what, fr, tot, cudaGetErrorString(e));
    }
    c->cnt.device_allocs++;
    return CK_OK;
}

static void dfree(cuda_be *c, void *p)
{
    if (p) {
        (void)cudaFree(p);
        c->cnt.device_frees++;
    }
}

static ck_status hmalloc(cuda_be *c, void **p, size_t bytes, const char *what, ck_error *err)
{
    cudaError_t e = cudaMallocHost(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: cannot allocate %zu pinned bytes for %s: %s", bytes,
                       what, cudaGetErrorString(e));
    }
    c->cnt.host_allocs++;
    return CK_OK;
}

static void hfree(cuda_be *c, void *p)
{
    if (p) {
        (void)cudaFreeHost(p);
        c->cnt.host_frees++;
    }
}

static size_t esize(const cuda_be *c)
{
    return 2; /* FP16 and BF16 */
}

/* ---- graphs -------------------------------------------------------------------------------- */

static void drop_graphs(cuda_be *c)
{
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].exec)
            (void)cudaGraphExecDestroy(c->graphs[i].exec);
    c->n_graphs = 0;
}

static graph_entry *find_graph(cuda_be *c, const void *owner, const void *kv, int B, int C)
{
    for (int i = 0; i < c->n_graphs; i++) {
        graph_entry *g = &c->graphs[i];
        if (g->owner == owner && g->kv == kv && g->B == B && g->C == C)
            return g;
    }
    return NULL;
}

static graph_entry *new_graph_slot(cuda_be *c)
{
    if (c->n_graphs < MAX_GRAPHS)
        return &c->graphs[c->n_graphs++];
    graph_entry *old = &c->graphs[0];
    for (int i = 1; i < c->n_graphs; i++)
        if (c->graphs[i].last_use < old->last_use)
            old = &c->graphs[i];
    if (old->exec)
        (void)cudaGraphExecDestroy(old->exec);
    old->exec = NULL;
    return old;
}

static void cuda_invalidate(be_backend *be)
{
    drop_graphs(cb(be));
    cuda_smp_forget(cb(be)); /* history ids restart with a new scheduler; never trust an old copy */
}

/* ---- memory ops ---------------------------------------------------------------------------- */

static void lock_dtype(cuda_be *c, gpu_dtype dt)
{
    if (!c->dt_locked) {
        c->dt = dt;
        c->dt_locked = 1;
    }
}

static ck_status cuda_alloc(be_backend *be, size_t n, be_buf **out, ck_error *err)
{
    cuda_be *c = cb(be);
    lock_dtype(c, c->dt);
    be_buf *b = calloc(1, sizeof *b);
    if (!b)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    b->n = n;
    b->absmax = INFINITY;
    b->bytes = (n ? n : 1) * esize(c);
    ck_status st = dmalloc(c, &b->p, b->bytes, "a buffer", err);
    if (st != CK_OK) {
        free(b);
        return st;
    }
    *out = b;
    return CK_OK;
}

static void cuda_free(be_backend *be, be_buf *b)
{
    if (b) {
        if (b->p)
            cq_forget(cb(be)->quant, b->p); /* no pending norm left on freed memory (NULL would mean all) */
        dfree(cb(be), b->p);
        cq_free_weight(cb(be)->quant, b->q);
        free(b);
    }
}

static ck_status ensure_stage(cuda_be *c, ck_error *err)
{
    ck_status st = CK_OK;
    if (!c->h_stage)
        st = hmalloc(c, (void **)&c->h_stage, STAGE_ELEMS * sizeof(float), "upload staging", err);
    if (st == CK_OK && !c->d_stage)
        st = dmalloc(c, (void **)&c->d_stage, STAGE_ELEMS * sizeof(float), "upload staging", err);
    return st;
}

static float absmax_f32(const float *v, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            return INFINITY; /* unknown (fmaxf would drop it) */
        m = fmaxf(m, fabsf(v[i]));
    }
    return m;
}

/* the largest buffer whose largest |element| is noted (norm weights, biases) */
#define ABSMAX_MAX_ELEMS 65536

/* b->absmax from t's host data: 1-D tensors (norm weights, biases) of up to 64k elements, for FP16 activations
 * (BF16 never reads it); others stay unknown. Plain host memory: a load of raw copies allocates no staging. */
static ck_status note_absmax(cuda_be *c, const st_tensor *t, be_buf *b, ck_error *err)
{
    if (t->n_dims != 1 || t->n_elems > ABSMAX_MAX_ELEMS || (c->dt_locked && c->dt == GPU_BF16))
        return CK_OK;
    float *v = malloc((size_t)t->n_elems * sizeof *v + 1);
    if (!v)
        return CK_OK; /* the largest element stays unknown: FP16 then keeps the norm's two steps */
    ck_status st = st_to_f32(t, 0, t->n_elems, v, err);
    if (st == CK_OK)
        b->absmax = absmax_f32(v, (size_t)t->n_elems);
    free(v);
    return st;
}

static ck_status cuda_upload(be_backend *be, const st_tensor *t, be_buf **out, ck_error *err)
{
    cuda_be *c = cb(be);
    if (!c->dt_locked && t->n_dims == 2)
        lock_dtype(c, t->dtype == ST_F16 ? GPU_F16 : GPU_BF16);
    ck_status st = cuda_alloc(be, (size_t)t->n_elems, out, err);
    if (st != CK_OK)
        return st;
    be_buf *b = *out;
    int raw = (t->dtype == ST_F16 && c->dt == GPU_F16) || (t->dtype == ST_BF16 && c->dt == GPU_BF16);
    if (raw) {
        cudaError_t e = cudaMemcpyAsync(b->p, t->data, (size_t)t->n_bytes, cudaMemcpyHostToDevice, c->copy_stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->copy_stream);
        if (e != cudaSuccess) {
            cuda_free(be, b);
            *out = NULL;
            return cu_fail(err, e, "upload of a weight", __FILE__, __LINE__);
        }
        if ((st = note_absmax(c, t, b, err)) != CK_OK) {
            cuda_free(be, b);
            *out = NULL;
        }
        return st;
    }
    if ((st = ensure_stage(c, err)) != CK_OK) {
        cuda_free(be, b);
        *out = NULL;
        return st;
    }
    for (uint64_t at = 0; at < t->n_elems && st == CK_OK; at += STAGE_ELEMS) {
        uint64_t n = t->n_elems - at < STAGE_ELEMS ? t->n_elems - at : STAGE_ELEMS;
        st = st_to_f32(t, at, n, c->h_stage, err);
        if (st != CK_OK)
            break;
        cudaError_t e = cudaMemcpyAsync(c->d_stage, c->h_stage, n * sizeof(float), cudaMemcpyHostToDevice,
                                        c->copy_stream);
        if (e != cudaSuccess) {
            st = cu_fail(err, e, "upload of a weight", __FILE__, __LINE__);
            break;
        }
        st = gpu_status(cku_from_f32(c->dt, (char *)b->p + at * esize(c), c->d_stage, n, c->copy_stream),
                        "convert a weight", __FILE__, __LINE__, err);
        if (st == CK_OK && (e = cudaStreamSynchronize(c->copy_stream)) != cudaSuccess)
            st = cu_fail(err, e, "upload of a weight", __FILE__, __LINE__);
    }
    if (st == CK_OK)
        st = note_absmax(c, t, b, err);
    if (st != CK_OK) {
        cuda_free(be, b);
        *out = NULL;
    }
    return st;
}

/* float32 host <-> dtype buffer (tests and tools; not on the step path) */
static ck_status cuda_write(be_backend *be, be_buf *dst, size_t off, const float *src, size_t n, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    if (off > dst->n || n > dst->n - off)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: write of %zu at %zu past a buffer of %zu", n, off, dst->n);
    /* a whole write says the buffer's largest |element|; a part of one leaves it unknown */
    dst->absmax = off == 0 && n == dst->n ? absmax_f32(src, n) : INFINITY;
    ck_status st = ensure_stage(c, err);
    for (size_t at = 0; at < n && st == CK_OK; at += STAGE_ELEMS) {
        size_t k = n - at < STAGE_ELEMS ? n - at : STAGE_ELEMS;
        memcpy(c->h_stage, src + at, k * sizeof(float));
        CU(cudaMemcpyAsync(c->d_stage, c->h_stage, k * sizeof(float), cudaMemcpyHostToDevice, c->stream));
        GPU(cku_from_f32(c->dt, (char *)dst->p + (off + at) * esize(c), c->d_stage, k, c->stream), "write");
        CU(cudaStreamSynchronize(c->stream));
    }
    return st;
}

static ck_status cuda_read(be_backend *be, const be_buf *src, size_t off, float *dst, size_t n, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    if (off > src->n || n > src->n - off)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: read of %zu at %zu past a buffer of %zu", n, off, src->n);
    ck_status st = ensure_stage(c, err);
    for (size_t at = 0; at < n && st == CK_OK; at += STAGE_ELEMS) {
        size_t k = n - at < STAGE_ELEMS ? n - at : STAGE_ELEMS;
        GPU(cku_to_f32(c->dt, c->d_stage, (const char *)src->p + (off + at) * esize(c), k, c->stream), "read");
        CU(cudaMemcpyAsync(c->h_stage, c->d_stage, k * sizeof(float), cudaMemcpyDeviceToHost, c->stream));
        CU(cudaStreamSynchronize(c->stream));
        memcpy(dst + at, c->h_stage, k * sizeof(float));
    }
    return st;
}

/* ---- per-step buffers ------------------------------------------------------------------------ */

static size_t round4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

static int bucket_of(int n)
{
    int b = 1;
    while (b < n)
        b *= 2;
    return b;
}

static ck_status cuda_prepare(be_backend *be, const be_prep *p, ck_error *err)
{
    cuda_be *c = cb(be);
    if (c->in_step)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: prepare during a step");
    /* decode batches are padded up to a bucket: room for bucket_of(max_seqs) sequences */
    int T = p->max_tokens, S = bucket_of(p->max_seqs);
    if (S > MAX_BUCKET)
        S = p->max_seqs > MAX_BUCKET ? p->max_seqs : MAX_BUCKET;
    int inv = p->head_dim / 2 + 1;
    int grow = T > c->Tcap || S > c->Scap || p->page_cap > c->page_cap || inv > c->inv_cap;
    if (grow) {
        int Tn = T > c->Tcap ? T : c->Tcap, Sn = S > c->Scap ? S : c->Scap;
        int Pn = p->page_cap > c->page_cap ? p->page_cap : c->page_cap, In = inv > c->inv_cap ? inv : c->inv_cap;
        int TS = Tn > Sn ? Tn : Sn;
        size_t off = 0;
        c->off_tokens = off, off += round4((size_t)TS);
        c->off_pos = off, off += round4((size_t)TS);
        c->off_seq = off, off += round4((size_t)Sn + 1);
        c->off_rows = off, off += round4((size_t)TS);
        c->off_inv = off, off += round4((size_t)In);
        c->off_pt = off, off += (size_t)Sn * Pn;
        drop_graphs(c);
        hfree(c, c->h_meta);
        dfree(c, c->d_meta);
        c->h_meta = NULL;
        c->d_meta = NULL;
        c->meta_ints = off;
        ck_status st = hmalloc(c, (void **)&c->h_meta, off * sizeof(int32_t), "step metadata", err);
        if (st == CK_OK)
            st = dmalloc(c, (void **)&c->d_meta, off * sizeof(int32_t), "step metadata", err);
        if (st != CK_OK) {
            c->Tcap = c->Scap = c->page_cap = c->inv_cap = 0;
            return st;
        }
        c->Tcap = TS;
        c->Scap = Sn;
        c->page_cap = Pn;
        c->inv_cap = In;
    }
    /* split-K partials of decode attention: the largest over the batch sizes it may see */
    size_t need = 0;
    for (int s = 1; s <= c->Scap; s = s < 8 ? s + 1 : s * 2) {
        size_t w = gpu_attention_workspace_size(s, s, p->n_heads, p->n_kv_heads, p->head_dim, p->max_ctx, 0);
        if (w > need)
            need = w;
    }
    size_t w = gpu_attention_workspace_size(c->Scap, c->Scap, p->n_heads, p->n_kv_heads, p->head_dim, p->max_ctx, 0);
    if (w > need)
        need = w;
    if (need > c->attn_ws_size) {
        drop_graphs(c);
        dfree(c, c->attn_ws);
        c->attn_ws = NULL;
        c->attn_ws_size = 0;
        ck_status st = dmalloc(c, &c->attn_ws, need, "attention workspace", err);
        if (st != CK_OK)
            return st;
        /* the split arrival counters start at zero, ordered before the kernels on the compute stream (a
         * non-blocking stream: a legacy-stream cudaMemset would not be) */
        cudaError_t e = cudaMemsetAsync(c->attn_ws, 0, need, c->stream);
        if (e != cudaSuccess)
            return cu_fail(err, e, "attention workspace", __FILE__, __LINE__);
        c->attn_ws_size = need;
    }
    size_t rows = (size_t)(c->Tcap > c->Scap ? c->Tcap : c->Scap);
    size_t lg = rows * (size_t)p->vocab;
    if (lg > c->logits_cap) {
        drop_graphs(c);
        dfree(c, c->d_logits);
        hfree(c, c->h_logits);
        c->d_logits = NULL;
        c->h_logits = NULL;
        c->logits_cap = 0;
        ck_status st = dmalloc(c, (void **)&c->d_logits, lg * sizeof(float), "float32 logits", err);
        if (st == CK_OK)
            st = hmalloc(c, (void **)&c->h_logits, lg * sizeof(float), "float32 logits", err);
        if (st != CK_OK)
            return st;
        c->logits_cap = lg;
    }
    int q_grew = 0; /* quantized linears: workspace for the largest at `rows` rows */
    ck_status qst = cq_prepare(c->quant, (int)rows, p->vocab, &q_grew, err);
    if (q_grew)
        drop_graphs(c);
    if (qst != CK_OK)
        return qst;
    return cuda_smp_prepare(c, (int)rows, p->vocab, p->max_ctx, err); /* sampling: outside the graphs */
}

static const int32_t *dmeta(const cuda_be *c, size_t off)
{
    return c->d_meta + off;
}

static ck_status cuda_step_begin(be_backend *be, const be_step *s, be_step_plan *plan, ck_error *err)
{
    cuda_be *c = cb(be);
    if (!c->d_meta || s->n_tokens > c->Tcap || s->n_seqs > c->Scap || s->page_cap > c->page_cap ||
        s->n_inv > c->inv_cap)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: step of %d tokens / %d sequences beyond the prepared "
                       "%d / %d (fwd_workspace_create prepares them)", s->n_tokens, s->n_seqs, c->Tcap, c->Scap);
    cq_order_for(c->quant, NULL, NULL); /* no permuted copy of an earlier step's activations is read */
    int n = s->n_seqs, T = s->n_tokens, R = s->n_rows;
    int decode = T == n && R == n && c->graphs_on;
    int B = n, C = s->max_len;
    if (decode) {
        int b2 = bucket_of(n); /* padded rows must fit the workspace's activations */
        if (b2 <= MAX_BUCKET && b2 <= s->max_tokens && b2 <= c->Scap && b2 <= c->Tcap)
            B = b2;
        C = bucket_of(s->max_len < 256 ? 256 : s->max_len);
        T = R = B;
    }
    /* pack the metadata (padding rows: token 0, position -1, empty page table) */
    int32_t *h = c->h_meta;
    memcpy(h + c->off_tokens, s->tokens, (size_t)s->n_tokens * sizeof(int32_t));
    memcpy(h + c->off_pos, s->pos, (size_t)s->n_tokens * sizeof(int32_t));
    memcpy(h + c->off_seq, s->seq_start, (size_t)(n + 1) * sizeof(int32_t));
    memcpy(h + c->off_rows, s->rows, (size_t)s->n_rows * sizeof(int32_t));
    for (int i = s->n_tokens; i < T; i++) {
        h[c->off_tokens + i] = 0;
        h[c->off_pos + i] = -1;
    }
    for (int i = n + 1; i <= B && decode; i++)
        h[c->off_seq + i] = i;
    for (int i = s->n_rows; i < R; i++)
        h[c->off_rows + i] = i;
    memcpy(h + c->off_inv, s->inv_freq, (size_t)s->n_inv * sizeof(float));
    for (int q = 0; q < n; q++)
        memcpy(h + c->off_pt + (size_t)q * c->page_cap, s->page_table + (size_t)q * s->page_cap,
               (size_t)s->page_cap * sizeof(int32_t));
    for (int q = n; q < B; q++)
        memset(h + c->off_pt + (size_t)q * c->page_cap, 0, (size_t)c->page_cap * sizeof(int32_t));
    size_t bytes = (c->off_pt + (size_t)(B > n ? B : n) * c->page_cap) * sizeof(int32_t);
    CU(cudaMemcpyAsync(c->d_meta, h, bytes, cudaMemcpyHostToDevice, c->copy_stream));
    CU(cudaEventRecord(c->meta_ready, c->copy_stream));
    CU(cudaStreamWaitEvent(c->stream, c->meta_ready, 0));
    c->cnt.meta_uploads++;

    c->T = T;
    c->S = decode ? B : n;
    c->R = R;
    c->max_ctx = C;
    c->max_q_len = decode ? 1 : s->max_q_len;
    c->in_step = 1;
    c->capturing = 0;
    plan->n_tokens = T;
    plan->n_seqs = c->S;
    plan->n_rows = R;
    plan->skip_ops = 0;
    plan->capturing = 0;
    if (decode) {
        graph_entry *g = find_graph(c, s->owner, s->kv, B, C);
        if (g) {
            g->last_use = ++c->clock;
            CU(cudaGraphLaunch(g->exec, c->stream));
            c->cnt.graph_replays++;
            plan->skip_ops = 1;
        } else {
            CU(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
            c->capturing = 1;
            plan->capturing = 1;
            c->cur_owner = s->owner;
            c->cur_kv = s->kv;
            c->cur_B = B;
            c->cur_C = C;
        }
    } else {
        c->cnt.eager_steps++;
    }
    return CK_OK;
}

/* A capture that failed turns graphs off for good (the step then runs again eagerly, forward.c). */
static void graphs_failed(cuda_be *c, const char *why)
{
    c->graphs_on = 0;
    c->cnt.graph_failures++;
    snprintf(c->graph_error, sizeof c->graph_error, "%s", why);
}

/* The graph part of a step's end: end a capture (instantiate and launch it), or drain a failed
 * step. The logits are then on the device (d_logits); nothing is copied or synchronised here. */
ck_status cuda_step_finish(cuda_be *c, int ok, ck_error *err)
{
    if (ok && c->rope_pend.on) { /* no attention took it (forward.c always has one): launched before the end */
        const ck_status st = rope_settle(c, err);
        ok = st == CK_OK;
    }
    c->rope_pend.on = 0;
    c->in_step = 0;
    if (!ok)
        cq_forget(c->quant, NULL); /* a failed step's pending norm: its buffers' values are discarded anyway */
    if (c->capturing) {
        cudaGraph_t graph = NULL;
        cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
        c->capturing = 0;
        if (!ok || e != cudaSuccess) {
            if (graph)
                (void)cudaGraphDestroy(graph);
            (void)cudaGetLastError();
            graphs_failed(c, e != cudaSuccess ? cudaGetErrorString(e) : "an op failed while capturing");
            return e != cudaSuccess ? cu_fail(err, e, "cudaStreamEndCapture (decode graph)", __FILE__, __LINE__)
                                    : CK_E_DEVICE;
        }
        cudaGraphExec_t exec = NULL;
        e = cudaGraphInstantiate(&exec, graph, 0);
        (void)cudaGraphDestroy(graph);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            graphs_failed(c, cudaGetErrorString(e));
            return cu_fail(err, e, "cudaGraphInstantiate (decode graph)", __FILE__, __LINE__);
        }
        graph_entry *g = new_graph_slot(c);
        *g = (graph_entry){c->cur_owner, c->cur_kv, c->cur_B, c->cur_C, exec, ++c->clock};
        c->cnt.graph_captures++;
        CU(cudaGraphLaunch(exec, c->stream));
    }
    if (!ok) {
        (void)cudaStreamSynchronize(c->stream);
        (void)cudaGetLastError();
        return CK_E_INTERNAL;
    }
    return CK_OK;
}

static ck_status cuda_step_end(be_backend *be, int ok, float *out, int n_rows, int vocab, ck_error *err)
{
    cuda_be *c = cb(be);
    ck_status st = cuda_step_finish(c, ok, err);
    if (st != CK_OK)
        return st;
    if ((size_t)n_rows * (size_t)vocab > c->logits_cap)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: %d logit rows beyond the prepared buffer", n_rows);
    /* every row to the host: after the graph (the copy is not part of it) */
    size_t bytes = (size_t)n_rows * (size_t)vocab * sizeof(float);
    CU(cudaMemcpyAsync(c->h_logits, c->d_logits, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU(cudaStreamSynchronize(c->stream));
    c->cnt.logit_bytes_to_host += bytes;
    memcpy(out, c->h_logits, bytes);
    return CK_OK;
}

/* ---- ops ----------------------------------------------------------------------------------- */

#define NEED_STEP(c, what)                                                                                     \
    do {                                                                                                       \
        if (!(c)->in_step)                                                                                     \
            return ck_fail(err, CK_E_INTERNAL, "cuda backend: %s outside a step (fwd_run drives the ops)", what); \
    } while (0)

static ck_status op_embed(be_backend *be, be_buf *out, const be_buf *table, const int32_t *ids, int n, int d,
                          int n_vocab, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    NEED_STEP(c, "embed");
    GPU(gpu_embed(c->dt, out->p, table->p, dmeta(c, c->off_tokens), n, d, n_vocab, c->stream), "embed");
    return CK_OK;
}

/* Which producers write the permuted copies (benches): CHASKI_QXP, a mask of 1 the norms, 2 the decode attention,
 * 4 gate, up + SwiGLU (default 7, all; 0: none, each permuted weight's decode launch gathers its activations). */
enum { QXP_NORM = 1, QXP_ATTN = 2, QXP_SWIGLU = 4 };
static int qxp_mask(void)
{
    static int m = -1;
    if (m < 0) {
        const char *e = getenv("CHASKI_QXP");
        m = e ? atoi(e) & 7 : 7;
    }
    return m;
}

/* be_ops.order_for: the next op that writes `buf` also writes it in the packed order of the quantized weight w
 * (cq_order_for), when w's rows are permuted and that op can (rmsnorm, add_rmsnorm, decode attention, gate, up +
 * SwiGLU; at most GPU_QLINEAR_MAX_FUSED_ROWS rows). */
static void op_order_for(be_backend *be, const be_buf *buf, const be_buf *w)
{
    cq_order_for(cb(be)->quant, buf->p, w ? w->q : NULL);
}

static ck_status op_rmsnorm(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, int n, int d, float eps,
                            ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    const gpu_qweight *to;
    void *xp = d <= GPU_NORM_X_MAX_D && (qxp_mask() & QXP_NORM) ? cq_produce(c->quant, out->p, n, d, &to) : NULL;
    if (!xp)
        cq_wrote(c->quant, out->p);
    GPU(gpu_rmsnorm_x(c->dt, out->p, x->p, w->p, n, d, eps, xp, xp ? to->perm : NULL, c->stream), "rmsnorm");
    if (xp)
        cq_produced(c->quant, out->p, n);
    return CK_OK;
}

static ck_status op_add_rmsnorm(be_backend *be, be_buf *out, be_buf *resid, const be_buf *delta, const be_buf *w,
                                int n, int d, float eps, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    const gpu_qweight *to;
    void *xp = d <= GPU_NORM_X_MAX_D && (qxp_mask() & QXP_NORM) ? cq_produce(c->quant, out->p, n, d, &to) : NULL;
    if (!xp)
        cq_wrote(c->quant, out->p);
    GPU(gpu_add_rmsnorm_x(c->dt, out->p, resid->p, delta->p, w->p, n, d, eps, xp, xp ? to->perm : NULL, c->stream),
        "add_rmsnorm");
    if (xp)
        cq_produced(c->quant, out->p, n);
    return CK_OK;
}

static ck_status op_matmul(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, const be_buf *bias, int n,
                           int k, int m, ck_error *err);

/* be_ops.matmul_add_rmsnorm. Quantized decode steps of 1 to GPU_QLINEAR_NORM_ROWS rows: the o or down projection's
 * launch adds its product to the residual and writes the norm's numerators and sums, and the launch of the weight
 * that reads xn next (be_ops.order_for) scales by the norm (cq_matmul_add_norm): add_rmsnorm's launch and its two
 * kernel boundaries gone. The numerators are not divided by the row's rms, so in FP16 a |resid * w| over 65504 would
 * overflow where the normalized values do not: FP16 numerators are resid * w * 2^-s with 2^s >= max |w| (nw->absmax,
 * noted at upload), never larger than the residual, and the consumer scales by 2^s (gpu_qx.ss_shift); a norm weight
 * whose largest element is not known (nw->absmax INFINITY) keeps the two steps in FP16, and so does one whose
 * shift would pass NORM_MAX_SHIFT: the numerators lose precision below FP16's smallest normal (and the one-row
 * 4-bit kernels' odd rows, stored over 16, below 2^-10) s binary places earlier. Norm weights whose largest
 * element is at most 1/2 shift the other way (s < 0, down to -30), gaining those places. BF16 needs no shift.
 * CHASKI_NORM_SPLIT=0: never split (matmul, then add_rmsnorm); 2: FP16 always, unshifted (the twenty-third run's
 * opt-in, for A/B). */
#define NORM_MAX_SHIFT 4
static int norm_shift(float absmax)
{
    int e = 0;
    if (absmax > 0.0f && frexpf(absmax, &e) == 0.5f)
        e--; /* absmax = 2^(e-1) exactly */
    return e < -30 ? -30 : e; /* the least e with absmax <= 2^e (at least -30); 0 for 0 */
}

static ck_status op_matmul_add_rmsnorm(be_backend *be, be_buf *out, be_buf *resid, be_buf *scratch, const be_buf *x,
                                       const be_buf *w, const be_buf *bias, const be_buf *nw, int n, int k, int m,
                                       float eps, ck_error *err)
{
    cuda_be *c = cb(be);
    ROPE_SETTLE(c);
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("CHASKI_NORM_SPLIT");
        on = e ? atoi(e) : 1;
    }
    const int f16 = c->dt == GPU_F16, known = isfinite(nw->absmax);
    const int shift = f16 && known && on == 1 ? norm_shift(nw->absmax) : 0;
    if (on >= 1 && (!f16 || on >= 2 || (known && shift <= NORM_MAX_SHIFT)) && w->q &&
        m <= GPU_NORM_X_MAX_D) {
        const ck_status st =
            cq_matmul_add_norm(c->quant, c->dt, out->p, resid->p, x->p, w->q, bias ? bias->p : NULL, nw->p, shift, n,
                               k, m, eps, (qxp_mask() & QXP_NORM) != 0, c->stream, err);
        if (st != CK_E_UNSUPPORTED)
            return st;
    }
    ck_status st = op_matmul(be, scratch, x, w, bias, n, k, m, err);
    return st != CK_OK ? st : op_add_rmsnorm(be, out, resid, scratch, nw, n, m, eps, err);
}

static ck_status op_matmul(be_backend *be, be_buf *out, const be_buf *x, const be_buf *w, const be_buf *bias, int n,
                           int k, int m, ck_error *err)
{
    cuda_be *c = cb(be);
    ROPE_SETTLE(c);
    if (w->q)
        return cq_matmul(c->quant, c->blas, c->dt, out->p, x->p, w->q, bias ? bias->p : NULL, n, k, m, c->stream, err);
    SETTLE(c);
    /* measured (tests/kernels bench, H200): the GEMV wins up to 4 rows, cuBLASLt from 8 */
    int path = n <= 4 ? GPU_LINEAR_AUTO : GPU_LINEAR_BLASLT;
    GPU(gpu_linear(c->blas, c->dt, out->p, x->p, w->p, bias ? bias->p : NULL, n, k, m, path, c->blas_ws,
                   BLAS_WS_BYTES, c->stream),
        "matmul");
    return CK_OK;
}

static ck_status op_rope(be_backend *be, be_buf *x, const int32_t *pos, const float *inv_freq, int n, int n_heads,
                         int head_dim, int rot, float mscale, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    NEED_STEP(c, "rope");
    GPU(gpu_rope(c->dt, x->p, n_heads, n_heads * head_dim, NULL, 0, 0, dmeta(c, c->off_pos),
                 (const float *)dmeta(c, c->off_inv), n, head_dim, rot, mscale, c->stream),
        "rope");
    return CK_OK;
}

static ck_status op_swiglu(be_backend *be, be_buf *out, const be_buf *gate, const be_buf *up, int n, int f,
                           ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    cq_wrote(c->quant, out->p);
    GPU(gpu_swiglu(c->dt, out->p, gate->p, up->p, n, f, f, c->stream), "swiglu");
    return CK_OK;
}

/* ---- fused weights (QKV, gate|up) ------------------------------------------------------------ */

static ck_status cuda_fuse_rows(be_backend *be, const be_buf *const *parts, const int *rows, int n_parts, int k,
                                be_buf **out, ck_error *err)
{
    cuda_be *c = cb(be);
    *out = NULL;
    size_t total = 0;
    for (int i = 0; i < n_parts; i++) {
        if (!parts[i] || rows[i] < 1 || (be->ops->is_quant && be->ops->is_quant(be, parts[i])))
            return ck_fail(err, CK_E_UNSUPPORTED, "cuda backend: part %d cannot be fused", i);
        if (parts[i]->n != (size_t)rows[i] * (size_t)k)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "cuda backend: fuse: part %d holds %zu elements, not %d x %d",
                           i, parts[i]->n, rows[i], k);
        total += parts[i]->n;
    }
    be_buf *b = NULL;
    ck_status st = cuda_alloc(be, total, &b, err);
    if (st != CK_OK)
        return st;
    b->absmax = 0.0f;
    for (int i = 0; i < n_parts; i++)
        b->absmax = fmaxf(b->absmax, parts[i]->absmax);
    size_t off = 0;
    for (int i = 0; i < n_parts; i++) {
        cudaError_t e = cudaMemcpyAsync((char *)b->p + off, parts[i]->p, parts[i]->n * esize(c),
                                        cudaMemcpyDeviceToDevice, c->stream);
        if (e == cudaSuccess && i == n_parts - 1)
            e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) {
            cuda_free(be, b);
            return cu_fail(err, e, "fuse weights", __FILE__, __LINE__);
        }
        off += parts[i]->n * esize(c);
    }
    *out = b;
    return CK_OK;
}

/* the same GEMV / cuBLASLt choice as op_matmul */
static int linear_path(int n)
{
    return n <= 4 ? GPU_LINEAR_AUTO : GPU_LINEAR_BLASLT;
}

static ck_status op_matmul_split(be_backend *be, be_buf *const *outs, const int *ms, int n_out, const be_buf *x,
                                 const be_buf *w, const be_buf *bias, int n, int k, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    void *o[3] = {NULL, NULL, NULL};
    if (n_out < 1 || n_out > 3)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "matmul_split: %d outputs", n_out);
    for (int i = 0; i < n_out; i++)
        o[i] = outs[i]->p;
    GPU(gpu_linear_split(c->blas, c->dt, o, ms, n_out, x->p, w->p, bias ? bias->p : NULL, n, k, linear_path(n),
                         c->blas_ws, BLAS_WS_BYTES, c->stream),
        "matmul (fused split)");
    return CK_OK;
}

static ck_status op_matmul_swiglu(be_backend *be, be_buf *out, be_buf *scratch, const be_buf *x, const be_buf *w,
                                  const be_buf *bias, int n, int k, int f, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    GPU(gpu_linear_swiglu(c->blas, c->dt, out->p, scratch ? scratch->p : NULL, x->p, w->p, bias ? bias->p : NULL, n,
                          k, f, linear_path(n), c->blas_ws, BLAS_WS_BYTES, c->stream),
        "matmul (fused gate|up + SwiGLU)");
    return CK_OK;
}

static ck_status op_matmul_many(be_backend *be, be_buf *const *outs, const int *ms, int n_w, const be_buf *x,
                                const be_buf *const *ws, const be_buf *const *biases, int n, int k, ck_error *err)
{
    cuda_be *c = cb(be);
    ROPE_SETTLE(c);
    int all_quant = n_w >= 1 && n_w <= 3;
    for (int i = 0; i < n_w && all_quant; i++)
        all_quant = ws[i]->q != NULL;
    if (all_quant) {
        void *o[3];
        const gpu_qweight *q[3];
        const void *b[3];
        for (int i = 0; i < n_w; i++) {
            o[i] = outs[i]->p;
            q[i] = ws[i]->q;
            b[i] = biases && biases[i] ? biases[i]->p : NULL;
        }
        return cq_matmul_many(c->quant, c->blas, c->dt, o, ms, x->p, q, b, n_w, n, k, c->stream, err);
    }
    for (int i = 0; i < n_w; i++) {
        ck_status st = op_matmul(be, outs[i], x, ws[i], biases ? biases[i] : NULL, n, k, ms[i], err);
        if (st != CK_OK)
            return st;
    }
    return CK_OK;
}

/* gate, up and SwiGLU in one launch for quantized pairs at 1-8 rows, and at 9-16 for pairs under QSWIGLU16_TILES
 * column tiles; the two-step path otherwise. At 9-16 rows the one launch cannot split k; with the activation slice
 * (16 rows: 128 KB at k = 4096, one block per SM) it measured slower (8B gptq4-g128 batch 16: 26.5% of the roofline
 * against 27.2%, an early run; again in the twenty-third run, -8%), without it (XG) faster on the 8B (batch 16 +1.5%
 * GPTQ FP16, +5.8% EXL2 BF16) and slower on the 70B (-3%, 1792 tiles), so the rule is the tiles (docs/PERFORMANCE.md,
 * twenty-third run). CHASKI_QSWIGLU=0: the two-step path always; CHASKI_QSWIGLU_ROWS=R: the one launch up to R rows
 * (benches). */
enum { QSWIGLU16_TILES = 1024 };
static ck_status op_matmul2_swiglu(be_backend *be, be_buf *out, be_buf *scratch, const be_buf *x,
                                   const be_buf *w_gate, const be_buf *w_up, const be_buf *b_gate,
                                   const be_buf *b_up, int n, int k, int f, ck_error *err)
{
    cuda_be *c = cb(be);
    ROPE_SETTLE(c);
    static int on = -1, rows = 16;
    if (on < 0) {
        const char *e = getenv("CHASKI_QSWIGLU"), *r = getenv("CHASKI_QSWIGLU_ROWS");
        on = e ? atoi(e) != 0 : 1;
        rows = r && atoi(r) >= 1 ? atoi(r) : 16;
    }
    /* 9-16 rows: 4-bit pairs (XG's) under QSWIGLU16_TILES column tiles (gate's and up's), on the decode kernel's
     * variant without the activation slice (qmv_kernel's XG); the 70B's pair (1792 tiles) lost 3% there and keeps the
     * two steps. Where XG does not take the launch (CHASKI_QV_XG=0 or CHASKI_QV_XG_SWIGLU=0) the slice variant does,
     * slower; CHASKI_QSWIGLU_ROWS=8 restores the two steps at 9-16 rows */
    const int xg16 = w_gate->q && w_up->q && w_gate->q->chunk_bits == 4 && w_up->q->chunk_bits == 4 &&
                     2 * ((w_gate->q->m + 31) / 32) < QSWIGLU16_TILES;
    if (on && (n <= 8 || (n <= rows && xg16)) && w_gate->q && w_up->q) {
        if (!(qxp_mask() & QXP_SWIGLU))
            cq_order_for(c->quant, out->p, NULL); /* no copy of the output (the input's, if any, is still read) */
        const ck_status st = cq_swiglu(c->quant, c->dt, out->p, x->p, w_gate->q, w_up->q, b_gate ? b_gate->p : NULL,
                                       b_up ? b_up->p : NULL, n, k, f, c->stream, err);
        if (st != CK_E_UNSUPPORTED)
            return st;
    }
    be_buf *gu[2] = {out, scratch};
    const be_buf *w2[2] = {w_gate, w_up}, *b2[2] = {b_gate, b_up};
    const int ms[2] = {f, f};
    ck_status st = op_matmul_many(be, gu, ms, 2, x, w2, b2, n, k, err);
    return st != CK_OK ? st : op_swiglu(be, out, out, scratch, n, f, err);
}

static gpu_paged_kv kv_of(const cuda_be *c, const be_kv_view *v)
{
    return (gpu_paged_kv){v->k_pool->p, v->v_pool->p, dmeta(c, c->off_pt), c->page_cap, v->n_pages,
                          v->page_size, v->n_kv_heads, v->head_dim};
}

/* Whether a decode step of n_seqs sequences takes its rope and cache write into the attention launch
 * (gpu_attention_rope_x): at one sequence by default. H200 (docs/PERFORMANCE.md, twenty-seventh run), against the
 * two launches: the 8B's tg32 / batch 1 +1.5 / +1.9% (gptq4-g128 FP16), +1.0 / +2.3% (exl2-4.0 BF16); batches 2-16
 * -1.1 to +1.1%, the 70B's batch 1 and 16 -0.3 / -1.2% (one round), so not there. CHASKI_ROPE_FUSE=0: never; 2: every
 * decode step (tests) */
static int rope_fuse_on(int n_seqs)
{
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("CHASKI_ROPE_FUSE");
        mode = e ? atoi(e) : 1;
    }
    return mode >= 2 || (mode == 1 && n_seqs == 1);
}

/* The rope and cache write op_rope_kv left pending, launched as it would have been (nothing when none is). */
static ck_status rope_settle(cuda_be *c, ck_error *err)
{
    if (!c->rope_pend.on)
        return CK_OK;
    c->rope_pend.on = 0;
    const int row = c->rope_pend.row;
    GPU(gpu_rope_kv(c->dt, c->rope_pend.q, c->rope_pend.n_q_heads, c->rope_pend.n_q_heads * c->rope_pend.kv.head_dim,
                    c->rope_pend.k, row, c->rope_pend.v, row, &c->rope_pend.kv, dmeta(c, c->off_seq), c->S,
                    dmeta(c, c->off_pos), (const float *)dmeta(c, c->off_inv), c->T, c->rope_pend.rot,
                    c->rope_pend.mscale, c->stream),
        "rope and cache write");
    return CK_OK;
}

static ck_status op_rope_kv(be_backend *be, be_buf *q, int n_q_heads, be_buf *k, const be_buf *v, const be_kv_view *kv,
                            const int32_t *seq_start, const int32_t *pos, const float *inv_freq, int n_seqs, int n,
                            int head_dim, int rot, float mscale, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    (void)seq_start;
    (void)pos;
    (void)inv_freq; /* the step's own, uploaded by step_begin */
    (void)n_seqs;   /* the step's sequence count (c->S), as kv_write */
    NEED_STEP(c, "rope_kv");
    gpu_paged_kv g = kv_of(c, kv);
    const int row = kv->n_kv_heads * head_dim;
    if (rope_fuse_on(c->S) && c->T == c->S && rot == head_dim && (head_dim == 64 || head_dim == 128)) {
        /* a decode step: op_attention, next, rotates and writes in its own launch */
        c->rope_pend.on = 1;
        c->rope_pend.q = q->p;
        c->rope_pend.k = k->p;
        c->rope_pend.v = v->p;
        c->rope_pend.n_q_heads = n_q_heads;
        c->rope_pend.row = row;
        c->rope_pend.rot = rot;
        c->rope_pend.mscale = mscale;
        c->rope_pend.kv = g;
        return CK_OK;
    }
    GPU(gpu_rope_kv(c->dt, q->p, n_q_heads, n_q_heads * head_dim, k->p, row, v->p, row, &g, dmeta(c, c->off_seq), c->S,
                    dmeta(c, c->off_pos), (const float *)dmeta(c, c->off_inv), n, rot, mscale, c->stream),
        "rope and cache write");
    return CK_OK;
}

static ck_status op_kv_write(be_backend *be, const be_kv_view *v, const be_buf *k, const be_buf *vv,
                             const int32_t *seq_start, const int32_t *pos, int n_seqs, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    NEED_STEP(c, "kv_write");
    gpu_paged_kv kv = kv_of(c, v);
    int row = v->n_kv_heads * v->head_dim;
    if (v->head_dim % 8 == 0)
        GPU(gpu_kv_write(c->dt, &kv, k->p, row, vv->p, row, dmeta(c, c->off_seq), dmeta(c, c->off_pos), c->S, c->T,
                         c->stream),
            "kv_write");
    else
        GPU(cku_kv_write_any(c->dt, &kv, k->p, vv->p, dmeta(c, c->off_seq), dmeta(c, c->off_pos), c->S, c->T,
                             c->stream),
            "kv_write (generic)");
    return CK_OK;
}

static ck_status op_attention(be_backend *be, be_buf *out, const be_buf *q, const be_kv_view *v,
                              const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_heads, int window,
                              float scale, ck_error *err)
{
    cuda_be *c = cb(be);
    gpu_paged_kv kv = kv_of(c, v);
    /* the rope and cache write op_rope_kv left for this launch: of this q, into this cache */
    const int take = c->rope_pend.on && c->rope_pend.q == q->p && c->rope_pend.kv.k_pool == kv.k_pool &&
                     c->rope_pend.kv.head_dim == v->head_dim && c->T == c->S;
    if (take)
        c->rope_pend.on = 0;
    SETTLE(c);
    NEED_STEP(c, "attention");
    const gpu_qweight *to;
    void *xp = cq_produce(c->quant, out->p, c->T, n_heads * v->head_dim, &to);
    if (c->T != c->S || (v->head_dim != 64 && v->head_dim != 128) || !(qxp_mask() & QXP_ATTN))
        xp = NULL; /* the decode kernel writes the copy; prefill and the generic kernel do not */
    if (take) {
        const int rc = gpu_attention_rope_x(c->dt, out->p, q->p, n_heads * v->head_dim, c->rope_pend.k,
                                            c->rope_pend.row, c->rope_pend.v, c->rope_pend.row,
                                            (const float *)dmeta(c, c->off_inv), c->rope_pend.mscale, &kv,
                                            dmeta(c, c->off_seq), dmeta(c, c->off_pos), c->S, n_heads, c->max_ctx,
                                            window, scale, 0, c->attn_ws, c->attn_ws_size, xp,
                                            xp ? to->pos : NULL, c->stream);
        if (rc != GPU_UNSUPPORTED) {
            GPU(rc, "attention with rope and cache write");
            if (xp)
                cq_produced(c->quant, out->p, c->T);
            return CK_OK;
        }
        c->rope_pend.on = 1; /* not this shape: the two launches */
        ck_status st = rope_settle(c, err);
        if (st != CK_OK)
            return st;
    }
    if (v->head_dim == 64 || v->head_dim == 128) {
        GPU(gpu_attention_x(c->dt, out->p, q->p, n_heads * v->head_dim, &kv, dmeta(c, c->off_seq),
                            dmeta(c, c->off_pos), c->S, c->T, n_heads, c->max_q_len, c->max_ctx, window, scale, 0,
                            c->attn_ws, c->attn_ws_size, xp, xp ? to->pos : NULL, c->stream),
            "attention");
        if (xp)
            cq_produced(c->quant, out->p, c->T);
    } else
        GPU(cku_attention_any(c->dt, out->p, q->p, &kv, dmeta(c, c->off_seq), dmeta(c, c->off_pos), c->S, c->T,
                              n_heads, window, scale, c->stream),
            "attention (generic)");
    return CK_OK;
}

static ck_status op_gather_rows(be_backend *be, be_buf *out, const be_buf *x, const int32_t *rows, int n, int d,
                                ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    NEED_STEP(c, "gather_rows");
    if (out == x)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: gather_rows in place");
    GPU(gpu_embed(c->dt, out->p, x->p, dmeta(c, c->off_rows), n, d, c->T, c->stream), "gather_rows");
    return CK_OK;
}

/* CHASKI_LM_HEAD_GEMV=0 sends every lm_head to cuBLAS (for benches comparing the two). */
static int lm_head_gemv(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("CHASKI_LM_HEAD_GEMV");
        v = !(e && e[0] == '0');
    }
    return v;
}

static ck_status op_lm_head(be_backend *be, const be_buf *x, const be_buf *w, int n, int k, int m, ck_error *err)
{
    cuda_be *c = cb(be);
    SETTLE(c);
    NEED_STEP(c, "lm_head");
    if ((size_t)n * (size_t)m > c->logits_cap)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: %d logit rows beyond the prepared buffer", n);
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = c->dt == GPU_F16 ? CUDA_R_16F : CUDA_R_16BF;
    ck_status qst = w->q ? cq_logits(c->quant, c->blas, c->dt, c->d_logits, x->p, w->q, n, k, m, c->stream, err) : CK_OK;
    if (qst != CK_OK)
        return qst;
    if (!w->q && n <= 4 && k % 8 == 0 && lm_head_gemv()) {
        /* few rows: the bandwidth-bound GEMV with float32 output (the head is the largest matrix) */
        GPU(gpu_linear_f32out(c->dt, c->d_logits, x->p, w->p, n, k, m, c->stream), "lm_head (GEMV)");
        return CK_OK;
    }
    /* column-major: logits^T [m, n] = W^T-view ([k, m] col-major, transposed) x X-view ([k, n]) */
    if (!w->q)
        CUBLAS(cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w->p, t, k, x->p, t, k, &zero,
                            c->d_logits, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return CK_OK; /* step_end / step_end_rows copy what the host needs, after the graph */
}

static ck_status cuda_mem_info(be_backend *be, size_t *free_bytes, size_t *total_bytes, ck_error *err)
{
    cuda_be *c = cb(be);
    CU(cudaMemGetInfo(free_bytes, total_bytes));
    if (c->fake_free && c->fake_free < *free_bytes)
        *free_bytes = c->fake_free;
    return CK_OK;
}

static size_t cuda_weight_elem_size(be_backend *be, st_dtype dtype)
{
    return 2;
}

static size_t cuda_act_elem_size(be_backend *be)
{
    return 2;
}

/* a validated GPTQ/EXL2 linear, kept quantized (backend_cuda_quant.c) */
static ck_status cuda_upload_quant(be_backend *be, const char *name, const struct qnt_host_linear *l, be_buf **out,
                                   ck_error *err)
{
    be_buf *b = calloc(1, sizeof *b);
    if (!b)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    b->absmax = INFINITY;
    ck_status st = cq_upload(cb(be)->quant, name, l, &b->q, err);
    if (st != CK_OK) {
        free(b);
        return st;
    }
    b->bytes = b->q->bytes; /* n = 0: read and write refuse it */
    *out = b;
    return CK_OK;
}

static int cuda_is_quant(be_backend *be, const be_buf *b)
{
    return b && b->q;
}

static void cuda_destroy(be_backend *be)
{
    cuda_be *c = cb(be);
    if (!c)
        return;
    if (c->stream)
        (void)cudaStreamSynchronize(c->stream);
    (void)gpu_ktrace_dump(); /* nothing unless a -DCHASKI_KTRACE=1 build traced */
    drop_graphs(c);
    cq_destroy(c->quant);
    hfree(c, c->h_meta);
    dfree(c, c->d_meta);
    dfree(c, c->attn_ws);
    dfree(c, c->d_logits);
    hfree(c, c->h_logits);
    cuda_smp_destroy(c);
    hfree(c, c->h_stage);
    dfree(c, c->d_stage);
    dfree(c, c->blas_ws);
    if (c->cublas)
        (void)cublasDestroy(c->cublas);
    gpu_blas_destroy(c->blas);
    if (c->meta_ready)
        (void)cudaEventDestroy(c->meta_ready);
    if (c->copy_stream)
        (void)cudaStreamDestroy(c->copy_stream);
    if (c->stream)
        (void)cudaStreamDestroy(c->stream);
    free(c);
}

static const be_ops k_cuda_ops = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .write = cuda_write,
    .read = cuda_read,
    .embed = op_embed,
    .rmsnorm = op_rmsnorm,
    .add_rmsnorm = op_add_rmsnorm,
    .matmul = op_matmul,
    .rope = op_rope,
    .swiglu = op_swiglu,
    .kv_write = op_kv_write,
    .attention = op_attention,
    .gather_rows = op_gather_rows,
    .destroy = cuda_destroy,
    .prepare = cuda_prepare,
    .step_begin = cuda_step_begin,
    .lm_head = op_lm_head,
    .step_end = cuda_step_end,
    .step_end_rows = cuda_step_end_rows,
    .invalidate = cuda_invalidate,
    .fuse_rows = cuda_fuse_rows,
    .matmul_many = op_matmul_many,
    .matmul_split = op_matmul_split,
    .matmul_swiglu = op_matmul_swiglu,
    .rope_kv = op_rope_kv,
    .matmul2_swiglu = op_matmul2_swiglu,
    .order_for = op_order_for,
    .matmul_add_rmsnorm = op_matmul_add_rmsnorm,
    .mem_info = cuda_mem_info,
    .weight_elem_size = cuda_weight_elem_size,
    .act_elem_size = cuda_act_elem_size,
    .upload_quant = cuda_upload_quant,
    .is_quant = cuda_is_quant,
};

static ck_status init(cuda_be *c, const char *name, ck_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return ck_fail(err, CK_E_UNSUPPORTED, "backend 'cuda': no CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    const char *dev = getenv("CHASKI_CUDA_DEVICE");
    c->device = dev ? atoi(dev) : 0;
    if (c->device < 0 || c->device >= n)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "CHASKI_CUDA_DEVICE=%s: %d devices", dev, n);
    CU(cudaSetDevice(c->device));
    if (gpu_ktrace_init() != GPU_OK) /* a -DCHASKI_KTRACE=1 build with CHASKI_KTRACE set only (ktrace.cu) */
        return ck_fail(err, CK_E_DEVICE, "cuda backend: kernel trace: %s", gpu_last_error());
    ck_status qs = cq_create(&c->quant, err);
    if (qs != CK_OK)
        return qs;
    c->dt = GPU_BF16;
    if (!strcmp(name, "cuda:f16"))
        lock_dtype(c, GPU_F16);
    else if (!strcmp(name, "cuda:bf16"))
        lock_dtype(c, GPU_BF16);
    else if (strcmp(name, "cuda") != 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "backend '%s': expected cuda, cuda:bf16 or cuda:f16", name);
    const char *g = getenv("CHASKI_CUDA_GRAPHS");
    c->graphs_on = !(g && !strcmp(g, "0"));
    CU(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CU(cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking));
    CU(cudaEventCreateWithFlags(&c->meta_ready, cudaEventDisableTiming));
    if (gpu_blas_create(&c->blas) != GPU_OK)
        return ck_fail(err, CK_E_DEVICE, "cuda backend: cuBLASLt: %s", gpu_last_error());
    CUBLAS(cublasCreate(&c->cublas));
    CUBLAS(cublasSetStream(c->cublas, c->stream));
    ck_status st = dmalloc(c, &c->blas_ws, BLAS_WS_BYTES, "cuBLAS workspace", err);
    if (st != CK_OK)
        return st;
    /* a fixed workspace: cuBLAS then allocates nothing inside captured graphs */
    CUBLAS(cublasSetWorkspace(c->cublas, c->blas_ws, BLAS_WS_BYTES));
    CUBLAS(cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH));
    const char *ff = getenv("CHASKI_CUDA_FAKE_FREE");
    if (ff)
        c->fake_free = (size_t)strtoull(ff, NULL, 10);
    return CK_OK;
}

ck_status be_cuda_create(const char *name, be_backend **out, ck_error *err)
{
    *out = NULL;
    cuda_be *c = calloc(1, sizeof *c);
    if (!c)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    c->base.ops = &k_cuda_ops;
    ck_status st = init(c, name ? name : "cuda", err);
    if (st != CK_OK) {
        cuda_destroy(&c->base);
        return st;
    }
    *out = &c->base;
    return CK_OK;
}

/* ---- extras (backend_cuda.h) ------------------------------------------------------------------ */

int be_is_cuda(const be_backend *be)
{
    return be && be->ops == &k_cuda_ops;
}

void be_cuda_counters_get(const be_backend *be, be_cuda_counters *out)
{
    *out = ((const cuda_be *)be)->cnt;
}

void be_cuda_set_graphs(be_backend *be, int on)
{
    cb(be)->graphs_on = on;
}

const char *be_cuda_graph_error(const be_backend *be)
{
    return ((const cuda_be *)be)->graph_error;
}

void be_cuda_set_fake_free(be_backend *be, size_t bytes)
{
    cb(be)->fake_free = bytes;
}

int be_cuda_dtype(const be_backend *be)
{
    return (int)((const cuda_be *)be)->dt;
}

void *be_cuda_stream(const be_backend *be)
{
    return (void *)((const cuda_be *)be)->stream;
}

void *be_cuda_blas(const be_backend *be, void **workspace, size_t *workspace_size)
{
    const cuda_be *c = (const cuda_be *)be;
    if (workspace)
        *workspace = c->blas_ws;
    if (workspace_size)
        *workspace_size = BLAS_WS_BYTES;
    return c->blas;
}

void *be_cuda_ptr(const be_buf *b)
{
    return b->p;
}

void be_cuda_quant_stats(const be_backend *be, cq_stats *out)
{
    cq_stats_get(((const cuda_be *)be)->quant, out);
}

const gpu_qweight *be_cuda_qweight(const be_buf *b)
{
    return b->q;
}

size_t be_cuda_buf_bytes(const be_buf *b)
{
    return b->bytes;
}

ck_status be_cuda_copy_quant(be_backend *be, const be_buf *src, be_buf **out, ck_error *err)
{
    if (!src->q)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "be_cuda_copy_quant: not a quantized buffer");
    be_buf *b = calloc(1, sizeof *b);
    if (!b)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    b->absmax = INFINITY;
    ck_status st = cq_clone(cb(be)->quant, src->q, &b->q, err);
    if (st != CK_OK) {
        free(b);
        return st;
    }
    b->bytes = b->q->bytes;
    *out = b;
    return CK_OK;
}

ck_status be_cuda_fill_random(be_backend *be, be_buf *b, uint64_t seed, float mean, float std, ck_error *err)
{
    cuda_be *c = cb(be);
    GPU(cku_fill_random(c->dt, b->p, b->n, seed, mean, std, c->stream), "fill_random");
    /* the whole buffer is new: its largest |element| as an upload notes it (note_absmax; FP16's split RMSNorm reads
     * it), read back for buffers of up to ABSMAX_MAX_ELEMS elements (the bench's random norm weights); larger ones
     * unknown */
    b->absmax = INFINITY;
    if (b->q || b->n > ABSMAX_MAX_ELEMS)
        return CK_OK;
    float *v = malloc(b->n * sizeof *v + 1);
    if (!v)
        return CK_OK; /* unknown: FP16 keeps the norm's two steps */
    const ck_status st = cuda_read(be, b, 0, v, b->n, err);
    if (st == CK_OK)
        b->absmax = absmax_f32(v, b->n);
    free(v);
    return st;
}

ck_status be_cuda_sync(be_backend *be, ck_error *err)
{
    CU(cudaStreamSynchronize(cb(be)->stream));
    return CK_OK;
}
