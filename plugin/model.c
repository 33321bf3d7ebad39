/* model.c: memory estimate, load, unload, info, stats, scoring. */
#include "internal.h"
#include "plan.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "kv_cache.h"

#define DEFAULT_N_CTX_CAP 4096
#define DEFAULT_MAX_JOBS 8
#define DEFAULT_BATCH_TOKENS 512
#define DEFAULT_KV_MAX_BYTES (2ull << 30)

void md_params_default(chaski_model_params *p)
{
    if (!p)
        return;
    chaski_model_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.n_ctx = 0;
    d.max_jobs = DEFAULT_MAX_JOBS;
    d.max_batch_tokens = DEFAULT_BATCH_TOKENS;
    d.kv_page_size = KV_DEFAULT_PAGE_SIZE;
    d.kv_pages = 0;
    d.kv_max_bytes = DEFAULT_KV_MAX_BYTES;
    versioned_out(p, &d, sizeof d);
}

/* Bytes per element of weights and KV on a backend. */
static size_t elem_bytes(const chaski_runtime *rt)
{
    return strcmp(rt->backend, "cpu") == 0 ? sizeof(float) : 2;
}

/* Read the host params over defaults and derive the plan's numbers from cfg. */
static chaski_status plan(chaski_runtime *rt, const chaski_model_params *hp, const cfg_config *cfg,
                          chaski_model_params *p, sched_params *sp)
{
    md_params_default(p);
    if (!versioned_in(p, sizeof *p, hp))
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "model params: struct_size is %u",
                          (unsigned)hp->struct_size);
    int n_ctx = p->n_ctx;
    if (n_ctx <= 0)
        n_ctx = cfg->max_position_embeddings < DEFAULT_N_CTX_CAP ? cfg->max_position_embeddings : DEFAULT_N_CTX_CAP;
    if (n_ctx > cfg->max_position_embeddings)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT,
                          "model params: n_ctx %d exceeds the model's max_position_embeddings %d", n_ctx,
                          cfg->max_position_embeddings);
    if (n_ctx < 2)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "model params: n_ctx %d, must be >= 2", n_ctx);
    if (p->max_jobs < 1 || p->max_jobs > 4096 || p->max_batch_tokens < 1 || p->kv_page_size < 1 ||
        p->kv_pages < 0)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT,
                          "model params: max_jobs %d (1..4096), max_batch_tokens %d (>= 1), kv_page_size %d "
                          "(>= 1), kv_pages %d (>= 0)",
                          p->max_jobs, p->max_batch_tokens, p->kv_page_size, p->kv_pages);
    int per_ctx = (n_ctx + p->kv_page_size - 1) / p->kv_page_size;
    size_t page_bytes = kv_page_bytes(cfg, p->kv_page_size, elem_bytes(rt));
    long pages = p->kv_pages;
    if (pages == 0) {
        pages = (long)per_ctx * p->max_jobs;
        if (page_bytes && (uint64_t)pages * page_bytes > p->kv_max_bytes) {
            pages = (long)(p->kv_max_bytes / page_bytes);
            if (pages < per_ctx)
                pages = per_ctx;
        }
    }
    sp->n_ctx = n_ctx;
    sp->max_seqs = p->max_jobs;
    sp->max_batch_tokens = p->max_batch_tokens;
    sp->kv_page_size = p->kv_page_size;
    sp->kv_pages = (int)pages;
    return CHASKI_OK;
}

chaski_status md_estimate(chaski_runtime *rt, const chaski_model_params *hp, chaski_memory_estimate *out)
{
    if (!rt)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!hp || !hp->path || !out)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "model_estimate: params, params->path and out are required");
    ck_error err;
    ck_error_clear(&err);
    cfg_config cfg;
    st_set *ws = NULL;
    uint64_t n_params = 0;
    ck_status st = cfg_load_dir(hp->path, &cfg, &err);
    if (st == CK_OK)
        st = st_set_open_dir(hp->path, &ws, &err);
    if (st == CK_OK)
        st = mdl_check_weights(&cfg, ws, &n_params, &err);
    const st_tensor *emb = st == CK_OK ? st_set_find(ws, "model.embed_tokens.weight") : NULL;
    st_dtype dtype = emb ? emb->dtype : ST_BF16;
    st_set_close(ws);
    if (st != CK_OK)
        return lerr_fail(&rt->err, &err);
    chaski_model_params p;
    sched_params sp;
    chaski_status cs = plan(rt, hp, &cfg, &p, &sp);
    if (cs != CHASKI_OK)
        return cs;
    /* the same planner mdl_load refuses a model with, so the estimate and the load agree */
    pl_request req = {sp.max_batch_tokens, sp.max_seqs, sp.kv_pages, sp.kv_page_size}, wr;
    pl_load_request(&req, &wr); /* the EXL2 widening is chosen against it, as mdl_load_for does */
    pl_plan pp;
    pl_make_for(rt->be, &cfg, dtype, &req, &pp);
    st_set *qs = NULL; /* quantized linears: the bytes the backend will hold for them */
    qnt_config qc;
    qnt_model_sizes_t *qz = calloc(1, sizeof *qz);
    if (!qz)
        return lerr_failf(&rt->err, CHASKI_E_OUT_OF_MEMORY, "model_estimate: out of memory");
    if ((st = st_set_open_dir(hp->path, &qs, &err)) == CK_OK && (st = qnt_detect(hp->path, qs, &qc, &err)) == CK_OK &&
        (st = pl_choose_exl2_widen(rt->be, &cfg, qs, &qc, dtype, &wr, &err)) == CK_OK &&
        (st = pl_add_quant(rt->be, &cfg, qs, &qc, dtype, &req, &pp, &err)) == CK_OK)
        st = qnt_model_sizes(&qc, qs, &cfg, qz, &err);
    st_set_close(qs);
    if (st != CK_OK) {
        free(qz);
        return lerr_fail(&rt->err, &err);
    }
    chaski_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.quant_params = qz->weights;
    e.quant_bytes = qz->file_bytes;
    e.quant_bits_per_weight = qz->weights ? 8.0 * (double)qz->file_bytes / (double)qz->weights : 0.0;
    e.head_bits_per_weight = qz->head_weights ? 8.0 * (double)qz->head_file_bytes / (double)qz->head_weights : 0.0;
    e.n_layer_bits = cfg.n_layers < CHASKI_MAX_LAYER_BITS ? cfg.n_layers : CHASKI_MAX_LAYER_BITS;
    for (int l = 0; l < e.n_layer_bits && qz->weights; l++)
        e.layer_bits_per_weight[l] =
            qz->layer_weights[l] ? (float)(8.0 * (double)qz->layer_file_bytes[l] / (double)qz->layer_weights[l]) : 0.0f;
    free(qz);
    e.struct_size = sizeof e;
    e.n_params = n_params;
    e.weights_bytes = pp.weights;
    e.kv_pages = sp.kv_pages;
    e.kv_bytes = pp.kv;
    e.activations_bytes = pp.activations + pp.workspace + pp.reserve;
    e.total_bytes = pp.total;
    chaski_device_info d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    rt_device_info(rt, 0, &d);
    e.device_free_bytes = d.free_bytes;
    e.fits = e.total_bytes <= e.device_free_bytes;
    if (!versioned_out(out, &e, sizeof e))
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "model_estimate: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}

typedef struct progress_ctx {
    chaski_progress_fn fn;
    void *user_data;
} progress_ctx;

static int on_progress(void *ud, float frac)
{
    progress_ctx *pc = ud;
    return pc->fn ? pc->fn(pc->user_data, frac) : 0;
}

static chaski_status load_vocab_only(chaski_runtime *rt, const chaski_model_params *hp, chaski_model **out)
{
    ck_error err;
    ck_error_clear(&err);
    chaski_model *model = calloc(1, sizeof *model);
    if (!model)
        return lerr_failf(&rt->err, CHASKI_E_OUT_OF_MEMORY, "model_load: out of memory");
    model->rt = rt;
    snprintf(model->dir, sizeof model->dir, "%s", hp->path);
    lerr_init(&model->err);
    ck_status st = tok_create_from_dir(hp->path, &model->tok, &err);
    if (st != CK_OK) {
        md_unload(model);
        return lerr_fail(&rt->err, &err);
    }
    ck_error cerr;
    model->has_cfg = cfg_load_dir(hp->path, &model->cfg, &cerr) == CK_OK; /* optional here */
    pthread_mutex_lock(&rt->mu);
    model->next = rt->models;
    rt->models = model;
    pthread_mutex_unlock(&rt->mu);
    *out = model;
    return CHASKI_OK;
}

chaski_status md_load(chaski_runtime *rt, const chaski_model_params *hp, chaski_model **out)
{
    if (!rt)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!out || !hp || !hp->path)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "model_load: params, params->path and out are required");
    *out = NULL;
    if (hp->struct_size >= offsetof(chaski_model_params, vocab_only) + sizeof hp->vocab_only && hp->vocab_only)
        return load_vocab_only(rt, hp, out);
    ck_error err;
    ck_error_clear(&err);
    cfg_config cfg;
    ck_status st = cfg_load_dir(hp->path, &cfg, &err);
    if (st != CK_OK)
        return lerr_fail(&rt->err, &err);
    chaski_model_params p;
    sched_params sp;
    chaski_status cs = plan(rt, hp, &cfg, &p, &sp);
    if (cs != CHASKI_OK)
        return cs;
    chaski_model *model = calloc(1, sizeof *model);
    if (!model)
        return lerr_failf(&rt->err, CHASKI_E_OUT_OF_MEMORY, "model_load: out of memory");
    model->rt = rt;
    model->sp = sp;
    model->n_ctx = sp.n_ctx;
    model->cfg = cfg;
    model->has_cfg = 1;
    snprintf(model->dir, sizeof model->dir, "%s", hp->path);
    lerr_init(&model->err);
    /* the tokenizer first: it is cheap, and a model without one is useless to a host */
    st = tok_create_from_dir(hp->path, &model->tok, &err);
    progress_ctx pc = {p.progress, p.progress_user_data};
    pl_request need = {sp.max_batch_tokens, sp.max_seqs, sp.kv_pages, sp.kv_page_size}; /* as md_estimate's */
    if (st == CK_OK)
        st = mdl_load_for(hp->path, rt->be, &need, on_progress, &pc, &model->m, &err);
    if (st == CK_OK && tok_vocab_size(model->tok) > model->m->cfg.vocab_size)
        st = ck_fail(&err, CK_E_CONFIG, "%s: the tokenizer has %d tokens, the model's vocab_size is %d", hp->path,
                     (int)tok_vocab_size(model->tok), model->m->cfg.vocab_size);
    if (st == CK_OK)
        st = sched_create(model->m, model->tok, &sp, &model->sch, &err);
    if (st != CK_OK) {
        md_unload(model);
        return lerr_fail(&rt->err, &err);
    }
    pthread_mutex_lock(&rt->mu);
    model->next = rt->models;
    rt->models = model;
    pthread_mutex_unlock(&rt->mu);
    *out = model;
    return CHASKI_OK;
}

void md_unload(chaski_model *model)
{
    if (!model)
        return;
    chaski_runtime *rt = model->rt;
    pthread_mutex_lock(&rt->mu);
    for (chaski_model **pp = &rt->models; *pp; pp = &(*pp)->next)
        if (*pp == model) {
            *pp = model->next;
            break;
        }
    pthread_mutex_unlock(&rt->mu);
    sched_destroy(model->sch); /* cancels the jobs and joins the engine thread */
    mdl_destroy(model->m);
    tok_destroy(model->tok);
    lerr_destroy(&model->err);
    free(model);
}

size_t md_last_error(chaski_model *model, char *buf, size_t cap)
{
    if (!model) {
        if (buf && cap)
            buf[0] = '\0';
        return 0;
    }
    return lerr_get(&model->err, buf, cap);
}

chaski_status md_info(chaski_model *model, chaski_model_info *out)
{
    if (!model || !out)
        return CHASKI_E_INVALID_ARGUMENT;
    const cfg_config *c = &model->cfg;
    chaski_model_info i;
    memset(&i, 0, sizeof i);
    i.struct_size = sizeof i;
    snprintf(i.backend, sizeof i.backend, "%s", model->m ? model->rt->backend : "none");
    snprintf(i.quantization, sizeof i.quantization, "%s", model->m ? model->m->quantization : "none");
    /* EXL2 held at 4/8 bits (QNT_WIDEN_4_8), or with mixed linears at 8 (QNT_WIDEN_8): pl_choose_exl2_widen */
    const int lv = model->m ? model->m->exl2_widened : QNT_WIDEN_NONE;
    const char *wide = lv == QNT_WIDEN_4_8 ? " widened" : lv == QNT_WIDEN_8 ? " widened8" : "";
    const size_t qn = strlen(i.quantization), wn = strlen(wide);
    if (qn + wn < sizeof i.quantization)
        memcpy(i.quantization + qn, wide, wn + 1);
    if (!model->m) { /* vocab-only: the format from config.json and the safetensors headers */
        st_set *ws = NULL;
        qnt_config q;
        ck_error qerr;
        if (st_set_open_dir(model->dir, &ws, &qerr) == CK_OK && qnt_detect(model->dir, ws, &q, &qerr) == CK_OK)
            qnt_describe(&q, i.quantization, sizeof i.quantization);
        st_set_close(ws);
    }
    i.bos_id = tok_bos_id(model->tok);
    i.vocab_size = tok_vocab_size(model->tok);
    if (model->has_cfg) {
        snprintf(i.architecture, sizeof i.architecture, "%s", c->arch_name);
        snprintf(i.dtype, sizeof i.dtype, "%s", c->dtype);
        i.n_ctx_train = c->max_position_embeddings;
        i.vocab_size = c->vocab_size;
        if (c->bos_token_id >= 0)
            i.bos_id = c->bos_token_id;
        for (int k = 0; k < c->n_eos && i.n_eos < CHASKI_MAX_EOS; k++)
            i.eos_ids[i.n_eos++] = c->eos_ids[k];
        i.n_layers = c->n_layers;
        i.hidden_size = c->hidden_size;
        i.n_heads = c->n_heads;
        i.n_kv_heads = c->n_kv_heads;
        i.head_dim = c->head_dim;
    }
    if (i.n_eos == 0 && tok_eos_id(model->tok) >= 0)
        i.eos_ids[i.n_eos++] = tok_eos_id(model->tok);
    i.eos_id = i.n_eos ? i.eos_ids[0] : -1;
    i.n_params = model->m ? model->m->n_params : 0;
    i.n_ctx = model->n_ctx;
    i.has_chat_template = tok_chat_template(model->tok) != NULL;
    if (!versioned_out(out, &i, sizeof i))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "model_info: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}

chaski_status md_chat_template(chaski_model *model, char *out, size_t cap, size_t *out_len)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    const char *t = tok_chat_template(model->tok);
    chaski_status st = copy_out(t ? t : "", t ? strlen(t) : 0, out, cap, out_len);
    if (st != CHASKI_OK)
        lerr_failf(&model->err, st, "model_chat_template: the buffer of %zu bytes is too small", cap);
    return st;
}

chaski_status md_stats(chaski_model *model, chaski_model_stats *out)
{
    if (!model || !out)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!model->sch)
        return lerr_failf(&model->err, CHASKI_E_STATE, "model_stats: %s was loaded vocab-only", model->dir);
    sched_stats ss;
    sched_get_stats(model->sch, &ss);
    chaski_model_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.weights_bytes = model->m->n_params * elem_bytes(model->rt);
    s.kv_bytes = (uint64_t)model->sp.kv_pages * kv_page_bytes(&model->m->cfg, model->sp.kv_page_size,
                                                              elem_bytes(model->rt));
    s.kv_page_size = ss.kv_page_size;
    s.kv_pages_total = ss.kv_pages_total;
    s.kv_pages_free = ss.kv_pages_free;
    s.jobs_active = ss.jobs_active;
    s.jobs_queued = ss.jobs_queued;
    s.jobs_finished = ss.jobs_finished;
    s.prompt_tokens_total = ss.prompt_tokens;
    s.generated_tokens_total = ss.generated_tokens;
    s.steps = ss.steps;
    s.generate_tokens_per_s = ss.generate_tokens_per_s;
    if (!versioned_out(out, &s, sizeof s))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "model_stats: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}

void md_score_params_default(chaski_score_params *p)
{
    if (!p)
        return;
    chaski_score_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.window = 0;
    d.bos_id = -2;
    versioned_out(p, &d, sizeof d);
}

typedef struct score_task {
    const int32_t *ids;
    int n, window, bos;
    double ppl, nll;
    int n_scored;
} score_task;

static ck_status run_score(void *data, const mdl_model *m, ck_error *err)
{
    score_task *t = data;
    return gen_perplexity(m, t->ids, t->n, t->window, t->bos, &t->ppl, &t->nll, &t->n_scored, err);
}

chaski_status md_score(chaski_model *model, const int32_t *ids, size_t n_ids, const chaski_score_params *hp,
                       chaski_score_result *out)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!ids || !out)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "score: ids and out are required");
    if (!model->sch)
        return lerr_failf(&model->err, CHASKI_E_STATE, "score: %s was loaded vocab-only", model->dir);
    chaski_score_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    md_score_params_default(&p);
    if (hp && !versioned_in(&p, sizeof p, hp))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "score: params->struct_size is %u",
                          (unsigned)hp->struct_size);
    int bos = p.bos_id;
    if (bos == -2)
        bos = model->m->cfg.bos_token_id >= 0 ? model->m->cfg.bos_token_id : tok_bos_id(model->tok);
    if (bos < -1 || bos >= model->m->cfg.vocab_size)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "score: bos_id %d is outside the vocabulary [0, %d)",
                          bos, model->m->cfg.vocab_size);
    int extra = bos >= 0;
    int window = p.window > 0 ? p.window : model->n_ctx - extra;
    if (window + extra > model->n_ctx)
        return lerr_failf(&model->err, CHASKI_E_CONTEXT_OVERFLOW,
                          "score: a window of %d tokens%s exceeds the context of %d tokens", window,
                          extra ? " plus BOS" : "", model->n_ctx);
    if (n_ids > (size_t)INT32_MAX)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "score: %zu tokens is too many", n_ids);
    if (n_ids < (size_t)window)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT,
                          "score: %zu tokens are fewer than one window of %d tokens", n_ids, window);
    score_task t = {.ids = ids, .n = (int)n_ids, .window = window, .bos = bos};
    ck_error err;
    ck_error_clear(&err);
    ck_status st = sched_run_task(model->sch, run_score, &t, &err);
    if (st != CK_OK)
        return lerr_fail(&model->err, &err);
    chaski_score_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.perplexity = t.ppl;
    r.total_nll = t.nll;
    r.n_scored = t.n_scored;
    r.n_windows = (int64_t)(n_ids / (size_t)window);
    if (!versioned_out(out, &r, sizeof r))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "score: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}
