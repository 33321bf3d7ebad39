/* forward.c: the Llama-family forward pass (Llama, Mistral, Qwen2), written against the op table.
 *
 * Per layer, for the T new tokens of the batch:
 *   xn = rmsnorm(x) ; q,k,v = xn Wq^T (+bq), xn Wk^T (+bk), xn Wv^T (+bv) ; rope(q), rope(k)
 *   cache <- k, v ; a = attention(q, cache) ; x += a Wo^T (+bo)
 *   xn = rmsnorm(x) ; x += (silu(xn Wg^T) * (xn Wu^T)) Wd^T
 * then logits = rmsnorm(x[rows]) Wlm^T for the rows asked. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fwd_workspace {
    be_backend *be;
    int max_tokens, max_seqs;
    be_buf *x;        /* [T, H] residual stream */
    be_buf *xn;       /* [T, H] normalised */
    be_buf *q;        /* [T, nh * hd] */
    be_buf *k, *v;    /* [T, nkv * hd] */
    be_buf *attn;     /* [T, nh * hd] */
    be_buf *o;        /* [T, H] */
    be_buf *gate;     /* [T, I] */
    be_buf *up;       /* [T, I] */
    be_buf *logits;   /* [T, V] */
    int32_t *pos;     /* [T] absolute positions */
    int32_t *rows;    /* [T] rows that produce logits */
    float *inv_freq;  /* [rot / 2] */
    int32_t *page_table; /* [max_seqs, page_cap] */
    int page_cap;
};

ck_status fwd_workspace_create(const mdl_model *m, int max_tokens, int max_seqs, fwd_workspace **out, ck_error *err)
{
    return fwd_workspace_create_paged(m, max_tokens, max_seqs, KV_DEFAULT_PAGE_SIZE, out, err);
}

ck_status fwd_workspace_create_paged(const mdl_model *m, int max_tokens, int max_seqs, int page_size,
                                     fwd_workspace **out, ck_error *err)
{
    *out = NULL;
    const cfg_config *c = &m->cfg;
    if (page_size <= 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "workspace for pages of %d tokens", page_size);
    if (max_tokens <= 0 || max_seqs <= 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "workspace for %d tokens and %d sequences", max_tokens, max_seqs);
    fwd_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    ws->be = m->be;
    ws->max_tokens = max_tokens;
    ws->max_seqs = max_seqs;
    size_t T = (size_t)max_tokens, H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    struct { be_buf **b; size_t n; } bufs[] = {
        {&ws->x, T * H}, {&ws->xn, T * H}, {&ws->q, T * Q}, {&ws->k, T * KV}, {&ws->v, T * KV},
        {&ws->attn, T * Q}, {&ws->o, T * H}, {&ws->gate, T * I}, {&ws->up, T * I},
        {&ws->logits, T * (size_t)c->vocab_size},
    };
    ck_status st = CK_OK;
    /* a backend with its own float32 lm_head keeps the logits itself */
    size_t n_bufs = sizeof bufs / sizeof bufs[0] - (m->be->ops->lm_head && m->be->ops->step_end ? 1 : 0);
    for (size_t i = 0; i < n_bufs && st == CK_OK; i++)
        st = m->be->ops->alloc(m->be, bufs[i].n, bufs[i].b, err);
    ws->page_cap = (cfg_context_length(c) + page_size - 1) / page_size + 1; /* page-table row per sequence */
    if (st == CK_OK && m->be->ops->prepare) {
        be_prep prep = {max_tokens, max_seqs, ws->page_cap, c->vocab_size, c->n_heads, c->n_kv_heads, c->head_dim,
                        cfg_context_length(c)};
        st = m->be->ops->prepare(m->be, &prep, err);
    }
    ws->pos = malloc(T * sizeof *ws->pos);
    ws->rows = malloc(T * sizeof *ws->rows);
    ws->inv_freq = malloc(((size_t)c->head_dim / 2 + 1) * sizeof *ws->inv_freq);
    ws->page_table = malloc((size_t)max_seqs * ws->page_cap * sizeof *ws->page_table);
    if (st == CK_OK && (!ws->pos || !ws->rows || !ws->inv_freq || !ws->page_table))
        st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    if (st != CK_OK) {
        fwd_workspace_destroy(ws);
        return st;
    }
    *out = ws;
    return CK_OK;
}

void fwd_workspace_destroy(fwd_workspace *ws)
{
    if (!ws)
        return;
    if (ws->be->ops->invalidate)
        ws->be->ops->invalidate(ws->be);
    be_buf *bufs[] = {ws->x, ws->xn, ws->q, ws->k, ws->v, ws->attn, ws->o, ws->gate, ws->up, ws->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            ws->be->ops->free(ws->be, bufs[i]);
    free(ws->pos);
    free(ws->rows);
    free(ws->inv_freq);
    free(ws->page_table);
    free(ws);
}

int fwd_workspace_max_tokens(const fwd_workspace *ws)
{
    return ws->max_tokens;
}

int fwd_logit_rows(const fwd_batch *b)
{
    int n = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int len = b->seq_start[s + 1] - b->seq_start[s];
        n += (b->all_logits && b->all_logits[s]) ? len : (len > 0);
    }
    return n;
}

/* Check the batch against the workspace, the cache and the context; fill positions, rows, page table. */
static ck_status prepare(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, int *n_rows,
                         int *max_len, int *max_q_len, ck_error *err)
{
    if (b->n_seqs <= 0 || b->n_seqs > ws->max_seqs || b->seq_start[0] != 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "batch of %d sequences (workspace: %d)", b->n_seqs, ws->max_seqs);
    int T = b->seq_start[b->n_seqs];
    if (T <= 0 || T > ws->max_tokens)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "batch of %d tokens (workspace: %d)", T, ws->max_tokens);
    int rows = 0;
    *max_len = 0;
    *max_q_len = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const kv_seq *q = b->seqs[s];
        int a = b->seq_start[s], e = b->seq_start[s + 1];
        if (e < a)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "seq_start is not monotonic at sequence %d", s);
        int total = q->n_tokens + (e - a);
        if (total > cfg_context_length(&m->cfg))
            return ck_fail(err, CK_E_CONTEXT_OVERFLOW, "sequence %d would hold %d tokens; the context is %d", s,
                           total, cfg_context_length(&m->cfg));
        if (total > q->n_pages * kv->page_size)
            return ck_fail(err, CK_E_INTERNAL, "sequence %d: pages for %d tokens reserved, %d needed", s,
                           q->n_pages * kv->page_size, total);
        if (q->n_pages > ws->page_cap)
            return ck_fail(err, CK_E_INTERNAL, "sequence %d: %d pages exceed the table (%d)", s, q->n_pages,
                           ws->page_cap);
        if (total > *max_len)
            *max_len = total;
        if (e - a > *max_q_len)
            *max_q_len = e - a;
        for (int t = a; t < e; t++) {
            if (b->tokens[t] < 0 || b->tokens[t] >= m->cfg.vocab_size)
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "token %d at batch row %d is outside the vocabulary "
                               "[0, %d)", b->tokens[t], t, m->cfg.vocab_size);
            ws->pos[t] = q->n_tokens + (t - a);
            if ((b->all_logits && b->all_logits[s]) || t == e - 1)
                ws->rows[rows++] = t;
        }
        memcpy(ws->page_table + (size_t)s * ws->page_cap, q->pages, (size_t)q->n_pages * sizeof(int32_t));
    }
    *n_rows = rows;
    return CK_OK;
}

static ck_status run_ops(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, int T, int n_seqs,
                         int n_rows, float mscale, ck_error *err);

/* One step; the logits go to `logits` (every row), or per row as `rows` says (step_end_rows). */
static ck_status run_step(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, float *logits,
                          const be_step_out *rows, ck_error *err)
{
    const cfg_config *c = &m->cfg;
    const be_ops *op = m->be->ops;
    be_backend *be = m->be;
    int n_rows = 0, max_len = 0, max_q_len = 0;
    ck_status st = prepare(m, kv, ws, b, &n_rows, &max_len, &max_q_len, err);
    if (st != CK_OK)
        return st;
    int T = b->seq_start[b->n_seqs];
    int n_seqs = b->n_seqs;
    int rot = cfg_rotary_dims(c);
    /* Dynamic NTK rope depends on the sequence length: the longest in the batch is used. */
    float mscale = cfg_rope_inv_freq(c, max_len, ws->inv_freq);

    /* A backend with step hooks uploads the step's metadata once, and may pad a decode batch to a
     * captured graph's size (then the graph replays and the ops below are skipped). */
    int stepping = op->step_begin != NULL;
    be_step_plan plan = {T, n_seqs, n_rows, 0, 0};
    for (int attempt = 0; attempt < 2; attempt++) {
        if (stepping) {
            be_step s = {ws, kv, b->seq_start[b->n_seqs], b->n_seqs, fwd_logit_rows(b), ws->max_tokens,
                         ws->max_seqs, b->tokens, ws->pos, b->seq_start, ws->rows, ws->page_table, ws->page_cap,
                         ws->inv_freq, rot / 2, max_len, max_q_len};
            if ((st = op->step_begin(be, &s, &plan, err)) != CK_OK)
                return st;
            T = plan.n_tokens;
            n_seqs = plan.n_seqs;
            n_rows = plan.n_rows;
        }
        if (!plan.skip_ops)
            st = run_ops(m, kv, ws, b, T, n_seqs, n_rows, mscale, err);
        if (stepping) {
            ck_error end_err;
            ck_status end = rows ? op->step_end_rows(be, st == CK_OK, rows, st == CK_OK ? err : &end_err)
                                 : op->step_end(be, st == CK_OK, logits, fwd_logit_rows(b), c->vocab_size,
                                                st == CK_OK ? err : &end_err);
            if (st == CK_OK)
                st = end;
        } else if (st == CK_OK) {
            st = op->read(be, ws->logits, 0, logits, (size_t)n_rows * c->vocab_size, err);
        }
        if (st == CK_OK || !plan.capturing)
            break; /* a failed graph capture: the backend has turned graphs off; run it once more */
    }
    if (st != CK_OK)
        return st;
    for (int s = 0; s < b->n_seqs; s++)
        b->seqs[s]->n_tokens += b->seq_start[s + 1] - b->seq_start[s];
    return CK_OK;
}

ck_status fwd_run(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, float *logits,
                  ck_error *err)
{
    return run_step(m, kv, ws, b, logits, NULL, err);
}

int fwd_can_end_rows(const mdl_model *m)
{
    const be_ops *op = m->be->ops;
    return op->step_begin && op->lm_head && op->step_end_rows;
}

ck_status fwd_run_rows(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b,
                       const be_step_out *out, ck_error *err)
{
    if (!fwd_can_end_rows(m))
        return ck_fail(err, CK_E_UNSUPPORTED, "backend '%s' has no per-row step end (device sampling)",
                       m->be->ops->name);
    if (!out || !out->mode || out->n_rows != fwd_logit_rows(b) || out->vocab != m->cfg.vocab_size)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "fwd_run_rows: %d rows of vocab %d for a step of %d rows (vocab %d)",
                       out ? out->n_rows : 0, out ? out->vocab : 0, fwd_logit_rows(b), m->cfg.vocab_size);
    for (int r = 0; r < out->n_rows; r++)
        if ((out->mode[r] == BE_ROW_SAMPLE && (!out->sample || !out->tokens)) ||
            (out->mode[r] == BE_ROW_LOGITS && !out->logits) || out->mode[r] > BE_ROW_SAMPLE)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "fwd_run_rows: row %d: mode %d without its buffer", r,
                           (int)out->mode[r]);
    return run_step(m, kv, ws, b, NULL, out, err);
}

/* x += in w^T (+ bias), then xn = rmsnorm(x) * nw: the backend's one op, or matmul into o and add_rmsnorm */
static ck_status matmul_add_rmsnorm(const be_ops *op, be_backend *be, fwd_workspace *ws, const be_buf *in,
                                    const be_buf *w, const be_buf *bias, const be_buf *nw, int T, int k, int H,
                                    float eps, ck_error *err)
{
    if (op->matmul_add_rmsnorm)
        return op->matmul_add_rmsnorm(be, ws->xn, ws->x, ws->o, in, w, bias, nw, T, k, H, eps, err);
    ck_status st = op->matmul(be, ws->o, in, w, bias, T, k, H, err);
    return st != CK_OK ? st : op->add_rmsnorm(be, ws->xn, ws->x, ws->o, nw, T, H, eps, err);
}

/* The ops of one step over T rows (n_seqs sequences, n_rows logit rows). */
static ck_status run_ops(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, int T, int n_seqs,
                         int n_rows, float mscale, ck_error *err)
{
    const cfg_config *c = &m->cfg;
    const be_ops *op = m->be->ops;
    be_backend *be = m->be;
    ck_status st;
    int H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim;
    int Q = c->n_heads * hd, KV = c->n_kv_heads * hd;
    int rot = cfg_rotary_dims(c);
    float eps = (float)c->rms_norm_eps;
    float scale = 1.0f / sqrtf((float)hd);

#define TRY(call)                                                                                              \
    do {                                                                                                       \
        if ((st = (call)) != CK_OK)                                                                            \
            return st;                                                                                         \
    } while (0)

    TRY(op->embed(be, ws->x, m->embed, b->tokens, T, H, c->vocab_size, err));
    /* be_ops.order_for: each producer of a projection's input told which weight reads it (its q, o, gate or down) */
#define ORDER_FOR(buf, w)                                                                                      \
    do {                                                                                                       \
        if (op->order_for)                                                                                     \
            op->order_for(be, (buf), (w));                                                                     \
    } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        const mdl_layer *L = &m->layers[l];
        be_kv_view view = {kv->k_pool[l], kv->v_pool[l], ws->page_table, ws->page_cap, kv->n_pages,
                           kv->page_size, c->n_kv_heads, hd};
        if (l == 0) {
            ORDER_FOR(ws->xn, L->wqkv ? L->wqkv : L->wq); /* q's weight (q, k and v read one order) */
            TRY(op->rmsnorm(be, ws->xn, ws->x, L->attn_norm, T, H, eps, err));
        }
        if (L->wqkv) { /* fused by mdl_fuse: one pass over [wq; wk; wv] */
            be_buf *qkv[3] = {ws->q, ws->k, ws->v};
            const int ms[3] = {Q, KV, KV};
            TRY(op->matmul_split(be, qkv, ms, 3, ws->xn, L->wqkv, L->bqkv, T, H, err));
        } else if (op->matmul_many) { /* weights fuse_rows could not join (quantized): one launch if it can */
            be_buf *qkv[3] = {ws->q, ws->k, ws->v};
            const be_buf *w3[3] = {L->wq, L->wk, L->wv}, *b3[3] = {L->bq, L->bk, L->bv};
            const int ms[3] = {Q, KV, KV};
            TRY(op->matmul_many(be, qkv, ms, 3, ws->xn, w3, b3, T, H, err));
        } else {
            TRY(op->matmul(be, ws->q, ws->xn, L->wq, L->bq, T, H, Q, err));
            TRY(op->matmul(be, ws->k, ws->xn, L->wk, L->bk, T, H, KV, err));
            TRY(op->matmul(be, ws->v, ws->xn, L->wv, L->bv, T, H, KV, err));
        }
        if (op->rope_kv) { /* rope of q and k and the cache write in one op */
            TRY(op->rope_kv(be, ws->q, c->n_heads, ws->k, ws->v, &view, b->seq_start, ws->pos, ws->inv_freq, n_seqs, T,
                            hd, rot, mscale, err));
        } else {
            TRY(op->rope(be, ws->q, ws->pos, ws->inv_freq, T, c->n_heads, hd, rot, mscale, err));
            TRY(op->rope(be, ws->k, ws->pos, ws->inv_freq, T, c->n_kv_heads, hd, rot, mscale, err));
            TRY(op->kv_write(be, &view, ws->k, ws->v, b->seq_start, ws->pos, n_seqs, err));
        }
        ORDER_FOR(ws->attn, L->wo);
        TRY(op->attention(be, ws->attn, ws->q, &view, b->seq_start, ws->pos, n_seqs, c->n_heads,
                          c->sliding_window, scale, err));
        ORDER_FOR(ws->xn, L->w_gu ? L->w_gu : L->w_gate);
        TRY(matmul_add_rmsnorm(op, be, ws, ws->attn, L->wo, L->bo, L->mlp_norm, T, Q, H, eps, err));
        if (L->w_gu) { /* fused by mdl_fuse: gate and up in one pass, SwiGLU in its epilogue */
            TRY(op->matmul_swiglu(be, ws->gate, ws->up, ws->xn, L->w_gu, L->b_gu, T, H, I, err));
        } else if (op->matmul2_swiglu) { /* gate and up not joined (quantized): SwiGLU in their launch if it can */
            ORDER_FOR(ws->gate, L->w_down);
            TRY(op->matmul2_swiglu(be, ws->gate, ws->up, ws->xn, L->w_gate, L->w_up, L->b_gate, L->b_up, T, H, I,
                                   err));
        } else {
            if (op->matmul_many) {
                be_buf *gu[2] = {ws->gate, ws->up};
                const be_buf *w2[2] = {L->w_gate, L->w_up}, *b2[2] = {L->b_gate, L->b_up};
                const int ms[2] = {I, I};
                TRY(op->matmul_many(be, gu, ms, 2, ws->xn, w2, b2, T, H, err));
            } else {
                TRY(op->matmul(be, ws->gate, ws->xn, L->w_gate, L->b_gate, T, H, I, err));
                TRY(op->matmul(be, ws->up, ws->xn, L->w_up, L->b_up, T, H, I, err));
            }
            TRY(op->swiglu(be, ws->gate, ws->gate, ws->up, T, I, err));
        }
        /* residual add, then the next layer's input norm (or the final norm) */
        const mdl_layer *N = l + 1 < c->n_layers ? &m->layers[l + 1] : NULL;
        ORDER_FOR(ws->xn, N ? (N->wqkv ? N->wqkv : N->wq) : NULL);
        TRY(matmul_add_rmsnorm(op, be, ws, ws->gate, L->w_down, L->b_down, N ? N->attn_norm : m->final_norm, T, I, H,
                               eps, err));
    }
    /* xn now holds the final-normed hidden states; keep only the rows that need logits (into o) */
    TRY(op->gather_rows(be, ws->o, ws->xn, ws->rows, n_rows, H, err));
    if (op->lm_head && op->step_end)
        TRY(op->lm_head(be, ws->o, m->lm_head, n_rows, H, c->vocab_size, err));
    else
        TRY(op->matmul(be, ws->logits, ws->o, m->lm_head, NULL, n_rows, H, c->vocab_size, err));
#undef ORDER_FOR
#undef TRY
    return CK_OK;
}
