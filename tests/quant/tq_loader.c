/* tq_loader.c: see tq_loader.h. The tensor list mirrors engine/model.c list_wants(). */
#include "tq_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

typedef struct tq_want {
    char name[128];
    int64_t shape[2];
    int n_dims;
    be_buf **dst;
} tq_want;

static int list(const cfg_config *c, mdl_model *m, tq_want *w)
{
    int n = 0;
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
#define W(fmt, l, d0, d1, nd, dstp)                                                                            \
    do {                                                                                                        \
        snprintf(w[n].name, sizeof w[n].name, fmt, l);                                                          \
        w[n].shape[0] = (d0);                                                                                   \
        w[n].shape[1] = (d1);                                                                                   \
        w[n].n_dims = (nd);                                                                                     \
        w[n].dst = (dstp);                                                                                      \
        n++;                                                                                                    \
    } while (0)
    W("model.embed_tokens.weight%.0d", 0, V, H, 2, &m->embed);
    for (int l = 0; l < c->n_layers; l++) {
        mdl_layer *L = &m->layers[l];
        W("model.layers.%d.input_layernorm.weight", l, H, 0, 1, &L->attn_norm);
        W("model.layers.%d.self_attn.q_proj.weight", l, Q, H, 2, &L->wq);
        W("model.layers.%d.self_attn.k_proj.weight", l, KV, H, 2, &L->wk);
        W("model.layers.%d.self_attn.v_proj.weight", l, KV, H, 2, &L->wv);
        W("model.layers.%d.self_attn.o_proj.weight", l, H, Q, 2, &L->wo);
        if (c->qkv_bias) {
            W("model.layers.%d.self_attn.q_proj.bias", l, Q, 0, 1, &L->bq);
            W("model.layers.%d.self_attn.k_proj.bias", l, KV, 0, 1, &L->bk);
            W("model.layers.%d.self_attn.v_proj.bias", l, KV, 0, 1, &L->bv);
        }
        if (c->o_bias)
            W("model.layers.%d.self_attn.o_proj.bias", l, H, 0, 1, &L->bo);
        W("model.layers.%d.post_attention_layernorm.weight", l, H, 0, 1, &L->mlp_norm);
        W("model.layers.%d.mlp.gate_proj.weight", l, I, H, 2, &L->w_gate);
        W("model.layers.%d.mlp.up_proj.weight", l, I, H, 2, &L->w_up);
        W("model.layers.%d.mlp.down_proj.weight", l, H, I, 2, &L->w_down);
    }
    W("model.norm.weight%.0d", 0, H, 0, 1, &m->final_norm);
    if (!c->tie_word_embeddings)
        W("lm_head.weight%.0d", 0, V, H, 2, &m->lm_head);
#undef W
    return n;
}

static ck_status check_all(const cfg_config *cfg, const qnt_config *q, const st_set *ws, mdl_model *m, tq_want *w,
                           int *n_out, ck_error *err)
{
    int n = list(cfg, m, w);
    *n_out = n;
    for (int i = 0; i < n; i++) {
        bool handled;
        uint64_t ne;
        ck_status st = qnt_model_check_tensor(q, ws, w[i].name, w[i].n_dims, w[i].shape, &handled, &ne, err);
        if (st != CK_OK)
            return st;
        if (handled)
            continue;
        const st_tensor *t = st_set_find(ws, w[i].name);
        if (!t) {
            char pfx[128];
            if (q->format != QNT_NONE && w[i].n_dims == 2 && qnt_weight_prefix(w[i].name, pfx, sizeof pfx)) {
                char names[5][160];
                qnt_linear_expected(q, pfx, &names[0][0], sizeof names[0], 5, NULL);
                return ck_fail(err, CK_E_MISSING, "tensor '%s' is missing (neither '%s' nor a float '%s')", names[0],
                               names[0], w[i].name);
            }
            return ck_fail(err, CK_E_MISSING, "tensor '%s' is missing", w[i].name);
        }
        int ok = t->n_dims == w[i].n_dims && t->shape[0] == w[i].shape[0] &&
                 (w[i].n_dims < 2 || t->shape[1] == w[i].shape[1]);
        if (!ok)
            return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': shape disagrees with config.json", t->file_path, t->name);
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
            return ck_fail(err, CK_E_UNSUPPORTED, "%s: tensor '%s': dtype %s", t->file_path, t->name,
                           st_dtype_name(t->dtype));
    }
    return CK_OK;
}

ck_status tq_load(const char *dir, be_backend *be, mdl_model **out, ck_error *err)
{
    *out = NULL;
    mdl_model *m = calloc(1, sizeof *m);
    if (!m)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    m->be = be;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    st_set *ws = NULL;
    tq_want *w = NULL;
    qnt_config q;
    int n = 0;
    ck_status st = cfg_load_dir(dir, &m->cfg, err);
    if (st == CK_OK)
        st = st_set_open_dir(dir, &ws, err);
    if (st == CK_OK)
        st = qnt_detect(dir, ws, &q, err);
    if (st == CK_OK) {
        m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
        w = calloc((size_t)m->cfg.n_layers * 16 + 8, sizeof *w);
        if (!m->layers || !w)
            st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    if (st == CK_OK)
        st = check_all(&m->cfg, &q, ws, m, w, &n, err);
    for (int i = 0; i < n && st == CK_OK; i++) {
        bool handled;
        st = qnt_model_upload_tensor(be, &q, ws, w[i].name, w[i].n_dims, w[i].shape, w[i].dst, &handled, err);
        if (st == CK_OK && !handled)
            st = be->ops->upload(be, st_set_find(ws, w[i].name), w[i].dst, err);
    }
    if (st == CK_OK && m->cfg.tie_word_embeddings)
        m->lm_head = m->embed;
    free(w);
    st_set_close(ws);
    if (st != CK_OK) {
        mdl_destroy(m);
        return st;
    }
    *out = m;
    return CK_OK;
}
