/* model.c: check a weight set against its config, then upload it to a backend. */
#include "model.h"

#include "quant/quant.h"

#include "kv_cache.h"
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One expected tensor: its name, its shape, and where the loaded buffer goes. */
typedef struct want {
    char name[128];
    int64_t shape[2];
    int n_dims;
    be_buf **dst;
} want;

/* Build the list of tensors the config implies. wants must hold 16 * n_layers + 8 entries. */
static int list_wants(const cfg_config *c, mdl_model *m, want *w)
{
    int n = 0;
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
#define WANT(nm_fmt, layer, d0, d1, nd, dstp)                                                                  \
    do {                                                                                                        \
        snprintf(w[n].name, sizeof w[n].name, nm_fmt, layer);                                                   \
        w[n].shape[0] = (d0);                                                                                   \
        w[n].shape[1] = (d1);                                                                                   \
        w[n].n_dims = (nd);                                                                                     \
        w[n].dst = m ? (dstp) : NULL;                                                                           \
        n++;                                                                                                    \
    } while (0)
    WANT("model.embed_tokens.weight%.0d", 0, V, H, 2, &m->embed);
    for (int l = 0; l < c->n_layers; l++) {
        mdl_layer *L = m ? &m->layers[l] : NULL;
        WANT("model.layers.%d.input_layernorm.weight", l, H, 0, 1, &L->attn_norm);
        WANT("model.layers.%d.self_attn.q_proj.weight", l, Q, H, 2, &L->wq);
        WANT("model.layers.%d.self_attn.k_proj.weight", l, KV, H, 2, &L->wk);
        WANT("model.layers.%d.self_attn.v_proj.weight", l, KV, H, 2, &L->wv);
        WANT("model.layers.%d.self_attn.o_proj.weight", l, H, Q, 2, &L->wo);
        if (c->qkv_bias) {
            WANT("model.layers.%d.self_attn.q_proj.bias", l, Q, 0, 1, &L->bq);
            WANT("model.layers.%d.self_attn.k_proj.bias", l, KV, 0, 1, &L->bk);
            WANT("model.layers.%d.self_attn.v_proj.bias", l, KV, 0, 1, &L->bv);
        }
        if (c->o_bias)
            WANT("model.layers.%d.self_attn.o_proj.bias", l, H, 0, 1, &L->bo);
        WANT("model.layers.%d.post_attention_layernorm.weight", l, H, 0, 1, &L->mlp_norm);
        WANT("model.layers.%d.mlp.gate_proj.weight", l, I, H, 2, &L->w_gate);
        WANT("model.layers.%d.mlp.up_proj.weight", l, I, H, 2, &L->w_up);
        WANT("model.layers.%d.mlp.down_proj.weight", l, H, I, 2, &L->w_down);
        if (c->mlp_bias) {
            WANT("model.layers.%d.mlp.gate_proj.bias", l, I, 0, 1, &L->b_gate);
            WANT("model.layers.%d.mlp.up_proj.bias", l, I, 0, 1, &L->b_up);
            WANT("model.layers.%d.mlp.down_proj.bias", l, H, 0, 1, &L->b_down);
        }
    }
    WANT("model.norm.weight%.0d", 0, H, 0, 1, &m->final_norm);
    if (!c->tie_word_embeddings)
        WANT("lm_head.weight%.0d", 0, V, H, 2, &m->lm_head);
#undef WANT
    return n;
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int n_dims)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n_dims && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
}

static ck_status check_one(const want *w, const st_tensor *t, ck_error *err)
{
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported for this weight (F32, "
                       "F16 or BF16)", t->file_path, t->name, st_dtype_name(t->dtype));
    int ok = t->n_dims == w->n_dims;
    for (int i = 0; ok && i < w->n_dims; i++)
        ok = t->shape[i] == w->shape[i];
    if (!ok) {
        char got[128], exp[64];
        shape_str(got, sizeof got, t->shape, t->n_dims);
        shape_str(exp, sizeof exp, w->shape, w->n_dims);
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': shape %s, config.json implies %s", t->file_path, t->name,
                       got, exp);
    }
    return CK_OK;
}

static want *alloc_wants(const cfg_config *cfg)
{
    return calloc((size_t)cfg->n_layers * 16 + 8, sizeof(want));
}

/* q: the quantization from config.json when known (mdl_load), else read off the tensors. */
static ck_status check_weights(const cfg_config *cfg, const st_set *ws, const qnt_config *q_known,
                               uint64_t *n_params, ck_error *err)
{
    want *w = alloc_wants(cfg);
    if (!w)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    int n = list_wants(cfg, NULL, w);
    uint64_t total = 0;
    ck_status st = CK_OK;
    qnt_config q; /* GPTQ / EXL2 linears are checked by their own rules */
    if (q_known)
        q = *q_known;
    else
        qnt_detect_set(ws, &q);
    for (int i = 0; i < n && st == CK_OK; i++) {
        bool handled = false;
        uint64_t n_elems = 0;
        st = qnt_model_check_tensor(&q, ws, w[i].name, w[i].n_dims, w[i].shape, &handled, &n_elems, err);
        if (st != CK_OK)
            break;
        if (handled) {
            total += n_elems;
            continue;
        }
        const st_tensor *t = st_set_find(ws, w[i].name);
        char prefix[128], qname[160];
        if (!t && q.format != QNT_NONE && w[i].n_dims == 2 && qnt_weight_prefix(w[i].name, prefix, sizeof prefix)) {
            qnt_linear_expected(&q, prefix, qname, sizeof qname, 1, NULL);
            st = ck_fail(err, CK_E_MISSING, "tensor '%s' is missing (neither '%s' nor a float '%s')", qname, qname,
                         w[i].name);
        } else if (!t) {
            st = ck_fail(err, CK_E_MISSING, "tensor '%s' is missing (config.json: %s, %d layers%s)", w[i].name,
                         cfg->arch_name, cfg->n_layers,
                         !strcmp(w[i].name, "lm_head.weight") ? ", tie_word_embeddings false" : "");
        } else if ((st = check_one(&w[i], t, err)) == CK_OK) {
            total += t->n_elems;
        }
    }
    free(w);
    if (n_params)
        *n_params = total;
    return st;
}

ck_status mdl_check_weights(const cfg_config *cfg, const st_set *ws, uint64_t *n_params, ck_error *err)
{
    return check_weights(cfg, ws, NULL, n_params, err);
}

ck_status mdl_load(const char *dir, be_backend *be, mdl_progress_fn progress, void *user_data, mdl_model **out,
                   ck_error *err)
{
    return mdl_load_for(dir, be, NULL, progress, user_data, out, err);
}

ck_status mdl_load_for(const char *dir, be_backend *be, const pl_request *need, mdl_progress_fn progress,
                       void *user_data, mdl_model **out, ck_error *err)
{
    *out = NULL;
    mdl_model *m = calloc(1, sizeof *m);
    if (!m)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    m->be = be;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    st_set *ws = NULL;
    want *w = NULL;
    ck_status st = cfg_load_dir(dir, &m->cfg, err);
    if (st == CK_OK)
        st = st_set_open_dir(dir, &ws, err);
    qnt_config q = {0};
    if (st == CK_OK)
        st = qnt_detect(dir, ws, &q, err);
    qnt_describe(&q, m->quantization, sizeof m->quantization);
    if (st == CK_OK)
        st = check_weights(&m->cfg, ws, &q, &m->n_params, err); /* everything checked before any allocation */
    if (st == CK_OK) {
        /* EXL2 widening chosen against what the caller will allocate; the memory plan: weights plus the least a
         * step needs (one 512-token chunk, one page) */
        const st_tensor *emb = st_set_find(ws, "model.embed_tokens.weight");
        const st_dtype dt = emb ? emb->dtype : ST_F32;
        pl_request req, wr;
        pl_load_request(NULL, &req);
        pl_load_request(need, &wr); /* at least req: widening never refuses a load */
        st = pl_choose_exl2_widen(be, &m->cfg, ws, &q, dt, &wr, err);
        m->exl2_widened = q.exl2_widen;
        pl_plan plan;
        pl_make_for(be, &m->cfg, dt, &req, &plan);
        if (st == CK_OK)
            st = pl_add_quant(be, &m->cfg, ws, &q, dt, &req, &plan, err); /* quantized bytes */
        if (st == CK_OK)
            st = pl_check(be, &plan, dir, err);
    }
    if (st == CK_OK) {
        m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
        w = alloc_wants(&m->cfg);
        if (!m->layers || !w)
            st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    if (st == CK_OK) {
        int n = list_wants(&m->cfg, m, w);
        for (int i = 0; i < n && st == CK_OK; i++) {
            bool handled = false;
            st = qnt_model_upload_tensor(be, &q, ws, w[i].name, w[i].n_dims, w[i].shape, w[i].dst, &handled, err);
            if (st == CK_OK && !handled)
                st = be->ops->upload(be, st_set_find(ws, w[i].name), w[i].dst, err);
            if (st == CK_OK && progress && progress(user_data, (float)(i + 1) / (float)n))
                st = ck_fail(err, CK_E_CANCELLED, "%s: loading cancelled by the caller", dir);
        }
        if (st == CK_OK && m->cfg.tie_word_embeddings)
            m->lm_head = m->embed;
        if (st == CK_OK)
            st = mdl_fuse(m, err);
    }
    free(w);
    st_set_close(ws); /* weights now live in the backend */
    if (st != CK_OK) {
        mdl_destroy(m);
        return st;
    }
    *out = m;
    return CK_OK;
}

/* Fuse parts[0..n-1] (rows[i] x k each) and their biases (all or none) into *w / *b, freeing the
 * parts. Leaves everything as it was when the backend cannot fuse them. */
static ck_status fuse_group(be_backend *be, be_buf **parts, be_buf **biases, const int *rows, int n, int k,
                            be_buf **w, be_buf **b, ck_error *err)
{
    int n_bias = 0;
    for (int i = 0; i < n; i++)
        n_bias += biases[i] != NULL;
    if (n_bias != 0 && n_bias != n)
        return CK_OK; /* some parts have a bias and some not: keep them apart */
    ck_status st = be->ops->fuse_rows(be, (const be_buf *const *)parts, rows, n, k, w, err);
    if (st == CK_E_UNSUPPORTED) {
        ck_error_clear(err);
        return CK_OK;
    }
    if (st == CK_OK && n_bias) {
        st = be->ops->fuse_rows(be, (const be_buf *const *)biases, rows, n, 1, b, err);
        if (st != CK_OK) {
            be->ops->free(be, *w);
            *w = NULL;
            if (st == CK_E_UNSUPPORTED) {
                ck_error_clear(err);
                return CK_OK;
            }
        }
    }
    if (st != CK_OK)
        return st;
    for (int i = 0; i < n; i++) {
        be->ops->free(be, parts[i]);
        parts[i] = NULL;
        if (biases[i]) {
            be->ops->free(be, biases[i]);
            biases[i] = NULL;
        }
    }
    return CK_OK;
}

ck_status mdl_fuse(mdl_model *m, ck_error *err)
{
    be_backend *be = m->be;
    const be_ops *op = be->ops;
    if (!op->fuse_rows)
        return CK_OK;
    const cfg_config *c = &m->cfg;
    const int H = c->hidden_size, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim;
    const int I = c->intermediate_size;
    for (int l = 0; l < c->n_layers; l++) {
        mdl_layer *L = &m->layers[l];
        ck_status st = CK_OK;
        if (op->matmul_split && L->wq && L->wk && L->wv && !L->wqkv) {
            be_buf *parts[3] = {L->wq, L->wk, L->wv}, *biases[3] = {L->bq, L->bk, L->bv};
            const int rows[3] = {Q, KV, KV};
            st = fuse_group(be, parts, biases, rows, 3, H, &L->wqkv, &L->bqkv, err);
            L->wq = parts[0], L->wk = parts[1], L->wv = parts[2];
            L->bq = biases[0], L->bk = biases[1], L->bv = biases[2];
        }
        if (st == CK_OK && op->matmul_swiglu && L->w_gate && L->w_up && !L->w_gu) {
            be_buf *parts[2] = {L->w_gate, L->w_up}, *biases[2] = {L->b_gate, L->b_up};
            const int rows[2] = {I, I};
            st = fuse_group(be, parts, biases, rows, 2, H, &L->w_gu, &L->b_gu, err);
            L->w_gate = parts[0], L->w_up = parts[1];
            L->b_gate = biases[0], L->b_up = biases[1];
        }
        if (st != CK_OK)
            return st;
    }
    return CK_OK;
}

void mdl_destroy(mdl_model *m)
{
    if (!m)
        return;
    be_backend *be = m->be;
    if (be->ops->invalidate)
        be->ops->invalidate(be); /* graphs captured over these weights */
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            be_buf **bufs = (be_buf **)&m->layers[l];
            for (size_t i = 0; i < sizeof(mdl_layer) / sizeof(be_buf *); i++)
                if (bufs[i])
                    be->ops->free(be, bufs[i]);
        }
        free(m->layers);
    }
    if (m->lm_head && m->lm_head != m->embed)
        be->ops->free(be, m->lm_head);
    if (m->embed)
        be->ops->free(be, m->embed);
    if (m->final_norm)
        be->ops->free(be, m->final_norm);
    free(m);
}
