/* plan.c: memory sizes of a model on a backend, and the fit check. */
#include "plan.h"

#include <stdint.h>

#include "kv_cache.h"
#include "quant/quant.h"

size_t pl_weight_elems(const cfg_config *c)
{
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    size_t layer = Q * H + 2 * KV * H + H * Q + 3 * I * H + 2 * H;
    if (c->qkv_bias)
        layer += Q + 2 * KV;
    if (c->o_bias)
        layer += H;
    if (c->mlp_bias)
        layer += 2 * I + H;
    return V * H + (size_t)c->n_layers * layer + H + (c->tie_word_embeddings ? 0 : V * H);
}

void pl_make(const cfg_config *c, size_t weight_elem, size_t act_elem, const pl_request *r, pl_plan *out)
{
    size_t T = (size_t)(r->max_tokens > 0 ? r->max_tokens : 1);
    size_t S = (size_t)(r->max_seqs > 0 ? r->max_seqs : 1);
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    out->weights = pl_weight_elems(c) * weight_elem;
    out->kv = (size_t)r->kv_pages * kv_page_bytes(c, r->page_size, act_elem);
    /* x, xn, q, k, v, attn, o, gate, up (forward.c) */
    out->activations = T * (4 * H + 2 * Q + 2 * KV + 2 * I) * act_elem;
    /* float32 logits rows; step metadata; split-K partials (16 splits); 32 MiB cuBLAS workspace;
       device sampling */
    size_t pages = (size_t)(cfg_context_length(c) / (r->page_size > 0 ? r->page_size : KV_DEFAULT_PAGE_SIZE) + 2);
    size_t rows = T > 256 ? T : 256;
    out->workspace = rows * V * sizeof(float) + (4 * rows + S * pages + S + 64) * sizeof(int32_t) +
                     S * (size_t)c->n_heads * 16 * ((size_t)c->head_dim + 1) * sizeof(float) + (32u << 20) +
                     /* device sampling (backend_cuda_sample.c): 8 bytes per logit of each sequence's
                        sampled row, and every sequence's token history */
                     S * V * 8 + 256 + S * (size_t)cfg_context_length(c) * sizeof(int32_t);
    size_t sub = out->weights + out->kv + out->activations + out->workspace;
    out->reserve = (64u << 20) + sub / 50;
    out->total = sub + out->reserve;
}

void pl_make_for(be_backend *be, const cfg_config *c, st_dtype dtype, const pl_request *r, pl_plan *out)
{
    size_t we = be->ops->weight_elem_size ? be->ops->weight_elem_size(be, dtype) : sizeof(float);
    size_t ae = be->ops->act_elem_size ? be->ops->act_elem_size(be) : sizeof(float);
    pl_make(c, we, ae, r, out);
}

static void totals(pl_plan *p)
{
    size_t sub = p->weights + p->kv + p->activations + p->workspace;
    p->reserve = (64u << 20) + sub / 50;
    p->total = sub + p->reserve;
}

ck_status pl_add_quant(be_backend *be, const cfg_config *c, const st_set *ws, const struct qnt_config *q,
                       st_dtype dtype, const pl_request *r, pl_plan *p, ck_error *err)
{
    qnt_config found;
    if (!q) {
        qnt_detect_set(ws, &found);
        q = &found;
    }
    qnt_model_sizes_t z;
    ck_status st = qnt_model_sizes(q, ws, c, &z, err);
    if (st != CK_OK || !z.n_linears || !be->ops->upload_quant)
        return st; /* none, or dequantized to dense weights the plan already counts */
    size_t we = be->ops->weight_elem_size ? be->ops->weight_elem_size(be, dtype) : sizeof(float);
    size_t dense = (size_t)z.weights * we;
    p->weights = (p->weights > dense ? p->weights - dense : 0) + (size_t)z.device_bytes;
    p->workspace += (size_t)z.workspace;
    /* the dequantize path's gathered activations of a permuted weight: every row of a prefill chunk (and the
     * 17 rows the tile's own figure assumes) at the widest input of a quantized layer linear */
    size_t T = (size_t)(r && r->max_tokens > 0 ? r->max_tokens : 1);
    if (T > 16) {
        size_t ae = be->ops->act_elem_size ? be->ops->act_elem_size(be) : sizeof(float);
        size_t k = (size_t)c->hidden_size, Q = (size_t)c->n_heads * c->head_dim, I = (size_t)c->intermediate_size;
        k = k > Q ? k : Q;
        k = k > I ? k : I;
        p->workspace += ((T + 17) * k * ae + 511) / 256 * 256;
    }
    totals(p);
    return CK_OK;
}

void pl_load_request(const pl_request *need, pl_request *out)
{
    const pl_request least = {512, 1, 1, KV_DEFAULT_PAGE_SIZE};
    *out = need ? *need : least;
    const int ps = out->page_size > 0 ? out->page_size : KV_DEFAULT_PAGE_SIZE;
    const int pages = (KV_DEFAULT_PAGE_SIZE + ps - 1) / ps;
    out->page_size = ps;
    out->max_tokens = out->max_tokens > least.max_tokens ? out->max_tokens : least.max_tokens;
    out->max_seqs = out->max_seqs > least.max_seqs ? out->max_seqs : least.max_seqs;
    out->kv_pages = out->kv_pages > pages ? out->kv_pages : pages;
}

ck_status pl_choose_exl2_widen(be_backend *be, const cfg_config *c, const st_set *ws, struct qnt_config *q,
                               st_dtype dtype, const pl_request *r, ck_error *err)
{
    q->exl2_widen = QNT_WIDEN_NONE;
    const int mode = qnt_exl2_widen_mode();
    if (q->format != QNT_EXL2 || !be->ops->upload_quant || mode == QNT_WIDEN_NONE)
        return CK_OK;
    size_t total[QNT_WIDEN_8 + 1]; /* each level's plan */
    for (int level = QNT_WIDEN_NONE; level <= QNT_WIDEN_8; level++) {
        q->exl2_widen = level;
        pl_plan p;
        pl_make_for(be, c, dtype, r, &p);
        ck_status st = pl_add_quant(be, c, ws, q, dtype, r, &p, err);
        if (st != CK_OK) {
            q->exl2_widen = QNT_WIDEN_NONE;
            return st;
        }
        total[level] = p.total;
    }
    int level = mode > 0 ? mode : QNT_WIDEN_8;
    for (; mode < 0 && level > QNT_WIDEN_NONE; level--) { /* auto: the widest that fits */
        pl_plan p = {0};
        p.total = total[level];
        ck_error ignore;
        if (pl_check(be, &p, "the widened EXL2 model", &ignore) == CK_OK)
            break;
    }
    while (level > QNT_WIDEN_NONE && total[level] == total[level - 1])
        level--; /* a level that widens nothing more is not taken (nor reported) */
    q->exl2_widen = level;
    return CK_OK;
}

static double gib(size_t b)
{
    return (double)b / (double)(1ull << 30);
}

ck_status pl_check(be_backend *be, const pl_plan *p, const char *what, ck_error *err)
{
    size_t free_b = 0, total_b = 0;
    ck_error ignore;
    if (!be->ops->mem_info || be->ops->mem_info(be, &free_b, &total_b, &ignore) != CK_OK)
        return CK_OK; /* the backend cannot tell: allocation failures remain the last line */
    if (p->total <= free_b)
        return CK_OK;
    return ck_fail(err, CK_E_OUT_OF_MEMORY,
                   "%s does not fit on the %s backend: it needs %zu bytes (%.2f GiB: weights %.2f, KV %.2f, "
                   "activations %.2f, workspace %.2f, reserve %.2f GiB); %zu bytes (%.2f GiB) are free of %zu "
                   "(%.2f GiB)",
                   what, be->ops->name, p->total, gib(p->total), gib(p->weights), gib(p->kv), gib(p->activations),
                   gib(p->workspace), gib(p->reserve), free_b, gib(free_b), total_b, gib(total_b));
}

int pl_kv_pages_that_fit(be_backend *be, const cfg_config *c, const pl_plan *p, int page_size)
{
    size_t free_b = 0, total_b = 0;
    ck_error ignore;
    if (!be->ops->mem_info || be->ops->mem_info(be, &free_b, &total_b, &ignore) != CK_OK)
        return 0;
    size_t other = p->total - p->kv;
    if (other >= free_b)
        return 0;
    size_t ae = be->ops->act_elem_size ? be->ops->act_elem_size(be) : sizeof(float);
    size_t per = kv_page_bytes(c, page_size, ae);
    size_t n = per ? (free_b - other) / per : 0;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}
