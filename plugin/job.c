/* job.c: job submit, events (callback or polling), cancel, release, stats. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CHASKI_HAVE_SCRIPT
#include "script.h"
#endif

#define MAX_TOP_N 20

/* One queued event (polling mode) with its own copies of text and alternatives. */
typedef struct qevent {
    chaski_event ev;
    char *text;
    chaski_top_logprob *top;
    struct qevent *next;
} qevent;

struct chaski_job {
    pthread_mutex_t mu;            /* guards everything below */
    pthread_cond_t cv;
    sched_job *sj;                 /* set once job_submit has queued it */
    int cancel_pending;            /* cancel before sj was set */
    chaski_event_fn on_event;
    void *user_data;
    qevent *head, *tail;           /* undelivered events */
    qevent *cur;                   /* the event the last job_poll returned */
    int end;                       /* FINISHED delivered by job_poll */
    int cb_running;                /* a callback of this job runs on cb_thread */
    pthread_t cb_thread;
    last_error err;
};

/* The Lua scripts of one job (owned by the scheduler's job through hook_data). */
typedef struct job_scripts {
#ifdef CHASKI_HAVE_SCRIPT
    scr_state *sampler;
    scr_state *stop;
#else
    int unused;
#endif
} job_scripts;

void jb_params_default(chaski_job_params *p)
{
    if (!p)
        return;
    chaski_job_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.add_special = 1;
    d.parse_special = 0;
    d.max_new_tokens = 256;
    d.min_new_tokens = 0;
    d.seed = 0;
    d.greedy = 0;
    d.temperature = 0.8f;
    d.top_k = 40;
    d.top_p = 0.95f;
    d.min_p = 0.05f;
    d.typical_p = 1.0f;
    d.repetition_penalty = 1.0f;
    d.presence_penalty = 0.0f;
    d.frequency_penalty = 0.0f;
    d.penalty_last_n = 64;
    d.top_n_logprobs = 0;
    versioned_out(p, &d, sizeof d);
}

/* ---- events --------------------------------------------------------------------------------- */

static uint32_t finish_code(sched_finish f)
{
    switch (f) {
    case SCHED_FINISH_STOP: return CHASKI_FINISH_STOP;
    case SCHED_FINISH_LENGTH: return CHASKI_FINISH_LENGTH;
    case SCHED_FINISH_CANCELLED: return CHASKI_FINISH_CANCELLED;
    case SCHED_FINISH_ERROR: return CHASKI_FINISH_ERROR;
    default: return CHASKI_FINISH_NONE;
    }
}

static void to_event(const sched_event *se, chaski_event *ev, chaski_top_logprob *top)
{
    memset(ev, 0, sizeof *ev);
    ev->struct_size = sizeof *ev;
    ev->type = se->type == SCHED_EV_TOKEN ? CHASKI_EVENT_TOKEN : CHASKI_EVENT_FINISHED;
    ev->token = se->token;
    ev->index = se->index;
    ev->logprob = se->logprob;
    ev->text = se->text ? se->text : "";
    ev->text_len = se->text_len;
    size_t n = se->n_top < MAX_TOP_N ? se->n_top : MAX_TOP_N;
    for (size_t i = 0; i < n; i++) {
        top[i].token = se->top[i].id;
        top[i].logprob = se->top[i].logprob;
    }
    ev->top = n ? top : NULL;
    ev->n_top = (uint32_t)n;
    ev->finish_reason = se->type == SCHED_EV_FINISHED ? finish_code(se->finish) : CHASKI_FINISH_NONE;
    ev->status = se->type == SCHED_EV_FINISHED ? (chaski_status)se->status : CHASKI_OK;
}

static void qevent_free(qevent *q)
{
    if (q) {
        free(q->text);
        free(q->top);
        free(q);
    }
}

/* [engine thread] */
static void on_sched_event(void *user_data, sched_job *sj, const sched_event *se)
{
    chaski_job *job = user_data;
    (void)sj;
    if (se->type == SCHED_EV_FINISHED && se->error)
        lerr_set(&job->err, se->error);
    chaski_top_logprob top[MAX_TOP_N];
    if (job->on_event) {
        chaski_event ev;
        to_event(se, &ev, top);
        pthread_mutex_lock(&job->mu);
        job->cb_running = 1;
        job->cb_thread = pthread_self();
        pthread_mutex_unlock(&job->mu);
        job->on_event(job->user_data, job, &ev);
        pthread_mutex_lock(&job->mu);
        job->cb_running = 0;
        pthread_mutex_unlock(&job->mu);
        return;
    }
    qevent *q = calloc(1, sizeof *q);
    if (q) {
        to_event(se, &q->ev, top);
        q->text = malloc(q->ev.text_len + 1);
        q->top = q->ev.n_top ? malloc(q->ev.n_top * sizeof *q->top) : NULL;
        if (!q->text || (q->ev.n_top && !q->top)) {
            /* keep the event without its payload rather than lose a FINISHED */
            free(q->text);
            free(q->top);
            q->text = NULL;
            q->top = NULL;
            q->ev.text_len = 0;
            q->ev.n_top = 0;
        }
        if (q->text) {
            memcpy(q->text, q->ev.text, q->ev.text_len);
            q->text[q->ev.text_len] = '\0';
        }
        if (q->top)
            memcpy(q->top, top, q->ev.n_top * sizeof *q->top);
        q->ev.text = q->text ? q->text : "";
        q->ev.top = q->top;
    }
    pthread_mutex_lock(&job->mu);
    if (q) {
        if (job->tail)
            job->tail->next = q;
        else
            job->head = q;
        job->tail = q;
    }
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

/* ---- script hooks ----------------------------------------------------------------------------- */

#ifdef CHASKI_HAVE_SCRIPT
static ck_status hook_sample(void *data, smp_state *st, const float *logits, int n_vocab, const int32_t *history,
                             size_t n_history, uint64_t step, int32_t *out_token, ck_error *err)
{
    job_scripts *js = data;
    (void)n_vocab;
    if (!js->sampler)
        return smp_sample(st, logits, history, n_history, step, out_token, err);
    return scr_sample(js->sampler, st, logits, history, n_history, step, out_token, err);
}

static ck_status hook_stop(void *data, const char *text, size_t text_len, int n_generated, int32_t last_token,
                           int *out_stop, ck_error *err)
{
    job_scripts *js = data;
    *out_stop = 0;
    if (!js->stop)
        return CK_OK;
    char reason[128];
    return scr_stop_check(js->stop, text, text_len, last_token, (uint64_t)n_generated, out_stop, reason,
                          sizeof reason, err);
}
#endif

static void scripts_free(void *data)
{
    job_scripts *js = data;
    if (!js)
        return;
#ifdef CHASKI_HAVE_SCRIPT
    scr_destroy(js->sampler);
    scr_destroy(js->stop);
#endif
    free(js);
}

/* ---- submit --------------------------------------------------------------------------------- */

static void job_free(chaski_job *job)
{
    qevent_free(job->cur);
    while (job->head) {
        qevent *q = job->head;
        job->head = q->next;
        qevent_free(q);
    }
    lerr_destroy(&job->err);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    free(job);
}

static int finite_in(float v, float lo, float hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

chaski_status jb_submit(chaski_model *model, const chaski_job_params *hp, chaski_job **out)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!hp || !out)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: params and out are required");
    *out = NULL;
    if (!model->sch)
        return lerr_failf(&model->err, CHASKI_E_STATE, "job_submit: %s was loaded vocab-only", model->dir);
    chaski_job_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    jb_params_default(&p);
    if (!versioned_in(&p, sizeof p, hp))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT,
                          "job_submit: params->struct_size is %u (use job_params_default)", (unsigned)hp->struct_size);
    if (p.top_n_logprobs < 0 || p.top_n_logprobs > MAX_TOP_N)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: top_n_logprobs is %d, must be 0..%d",
                          (int)p.top_n_logprobs, MAX_TOP_N);
    if (p.max_new_tokens < 1 || p.min_new_tokens < 0)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT,
                          "job_submit: max_new_tokens %d (>= 1), min_new_tokens %d (>= 0)", (int)p.max_new_tokens,
                          (int)p.min_new_tokens);
    if (!finite_in(p.temperature, -1e30f, 1e30f) || !finite_in(p.top_p, 0, 1) || !finite_in(p.min_p, 0, 1) ||
        !finite_in(p.typical_p, 0, 1) || !finite_in(p.repetition_penalty, 0, 1e30f) ||
        !isfinite(p.presence_penalty) || !isfinite(p.frequency_penalty) || p.top_k < 0)
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT,
                          "job_submit: sampler settings out of range (temperature %g, top_k %d, top_p %g, min_p %g, "
                          "typical_p %g, repetition_penalty %g; probabilities must be in [0, 1])",
                          (double)p.temperature, (int)p.top_k, (double)p.top_p, (double)p.min_p, (double)p.typical_p,
                          (double)p.repetition_penalty);
    if ((p.n_stop_strings && !p.stop_strings) || (p.n_stop_tokens && !p.stop_tokens) ||
        (p.n_logit_bias && !p.logit_bias) || (p.n_banned_strings && !p.banned_strings))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: a list has a count but no pointer");
    for (size_t i = 0; i < p.n_stop_strings; i++)
        if (!p.stop_strings[i] || !p.stop_strings[i][0])
            return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: stop string %zu is empty", i);

    /* the prompt */
    ck_error err;
    ck_error_clear(&err);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (p.n_prompt_tokens > 0) {
        if (!p.prompt_tokens)
            return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: prompt_tokens is NULL");
        ids = malloc(p.n_prompt_tokens * sizeof *ids);
        if (!ids)
            return lerr_failf(&model->err, CHASKI_E_OUT_OF_MEMORY, "job_submit: out of memory");
        memcpy(ids, p.prompt_tokens, p.n_prompt_tokens * sizeof *ids);
        n_ids = p.n_prompt_tokens;
    } else {
        if (!p.prompt && p.prompt_len)
            return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "job_submit: prompt is NULL");
        tok_encode_opts o = tok_encode_opts_default();
        o.add_special = p.add_special != 0;
        o.parse_special = p.parse_special != 0;
        const char *text = p.prompt ? p.prompt : "";
        ck_status st = tok_encode(model->tok, text, p.prompt_len, &o, NULL, 0, &n_ids, &err);
        if (st == CK_OK) {
            ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
            if (!ids)
                st = ck_fail(&err, CK_E_OUT_OF_MEMORY, "job_submit: out of memory");
        }
        if (st == CK_OK)
            st = tok_encode(model->tok, text, p.prompt_len, &o, ids, n_ids, &n_ids, &err);
        if (st != CK_OK) {
            free(ids);
            ck_error_prefix(&err, "job_submit: tokenizing the prompt");
            return lerr_fail(&model->err, &err);
        }
    }

    /* sampling */
    smp_params sp;
    smp_params_default(&sp);
    sp.seed = p.seed;
    sp.temperature = p.greedy ? 0.0f : p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p <= 0 ? 1.0f : p.top_p;
    sp.min_p = p.min_p;
    sp.typical_p = p.typical_p <= 0 ? 1.0f : p.typical_p;
    sp.repetition_penalty = p.repetition_penalty <= 0 ? 1.0f : p.repetition_penalty;
    sp.presence_penalty = p.presence_penalty;
    sp.frequency_penalty = p.frequency_penalty;
    sp.penalty_range = p.penalty_last_n > 0 ? p.penalty_last_n : 0;
    smp_logit_bias *bias = NULL;
    if (p.n_logit_bias) {
        bias = malloc(p.n_logit_bias * sizeof *bias);
        if (!bias) {
            free(ids);
            return lerr_failf(&model->err, CHASKI_E_OUT_OF_MEMORY, "job_submit: out of memory");
        }
        for (size_t i = 0; i < p.n_logit_bias; i++) {
            bias[i].id = p.logit_bias[i].token;
            bias[i].bias = p.logit_bias[i].bias;
        }
        sp.logit_bias = bias;
        sp.n_logit_bias = p.n_logit_bias;
    }
    ck_status vst = smp_params_validate(&sp, (size_t)model->m->cfg.vocab_size, &err);
    if (vst != CK_OK) {
        free(ids);
        free(bias);
        ck_error_prefix(&err, "job_submit: sampler settings");
        return lerr_fail(&model->err, &err);
    }

    /* scripts */
    job_scripts *js = NULL;
    if (p.sampler_script || p.stop_script) {
#ifdef CHASKI_HAVE_SCRIPT
        js = calloc(1, sizeof *js);
        ck_status st = js ? CK_OK : ck_fail(&err, CK_E_OUT_OF_MEMORY, "job_submit: out of memory");
        if (st == CK_OK && p.sampler_script)
            st = scr_create(SCR_SAMPLER, p.sampler_script_name ? p.sampler_script_name : "sampler script",
                            p.sampler_script, p.sampler_script_len, NULL, &js->sampler, &err);
        if (st == CK_OK && p.stop_script)
            st = scr_create(SCR_STOP, "stop script", p.stop_script, p.stop_script_len, NULL, &js->stop, &err);
        if (st != CK_OK) {
            scripts_free(js);
            free(ids);
            free(bias);
            ck_error_prefix(&err, "job_submit");
            return lerr_fail(&model->err, &err);
        }
#else
        free(ids);
        free(bias);
        return lerr_failf(&model->err, CHASKI_E_UNSUPPORTED, "job_submit: this plugin was built without Lua scripts");
#endif
    }

    chaski_job *job = calloc(1, sizeof *job);
    if (!job) {
        scripts_free(js);
        free(ids);
        free(bias);
        return lerr_failf(&model->err, CHASKI_E_OUT_OF_MEMORY, "job_submit: out of memory");
    }
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    lerr_init(&job->err);
    job->on_event = p.on_event;
    job->user_data = p.user_data;

    sched_job_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.prompt = ids;
    spec.n_prompt = n_ids;
    spec.max_new_tokens = p.max_new_tokens;
    spec.min_new_tokens = p.min_new_tokens;
    spec.sampling = &sp;
    spec.stop_strings = p.stop_strings;
    spec.n_stop_strings = p.n_stop_strings;
    spec.stop_tokens = p.stop_tokens;
    spec.n_stop_tokens = p.n_stop_tokens;
    spec.ignore_eos = p.ignore_eos;
    spec.banned_strings = p.banned_strings;
    spec.n_banned_strings = p.n_banned_strings;
    spec.top_n = p.top_n_logprobs;
    spec.emit = on_sched_event;
    spec.user_data = job;
#ifdef CHASKI_HAVE_SCRIPT
    if (js) {
        spec.sample_hook = js->sampler ? hook_sample : NULL;
        spec.stop_hook = js->stop ? hook_stop : NULL;
        spec.hook_data = js;
        spec.hook_free = scripts_free;
    }
#endif
    /* hold job->mu so an early callback's job_cancel waits for sj */
    pthread_mutex_lock(&job->mu);
    sched_job *sj = NULL;
    ck_status st = sched_submit(model->sch, &spec, &sj, &err);
    job->sj = sj;
    pthread_mutex_unlock(&job->mu);
    free(ids);
    free(bias);
    if (st != CK_OK) {
        scripts_free(js);
        job_free(job);
        return lerr_fail(&model->err, &err);
    }
    *out = job;
    return CHASKI_OK;
}

/* ---- polling, waiting, cancelling ------------------------------------------------------------ */

static struct timespec deadline_after(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

chaski_status jb_poll(chaski_job *job, chaski_event *out, uint32_t timeout_ms)
{
    if (!job || !out)
        return CHASKI_E_INVALID_ARGUMENT;
    if (job->on_event)
        return lerr_failf(&job->err, CHASKI_E_STATE, "job_poll: the job delivers its events to on_event");
    if (out->struct_size < sizeof(uint32_t))
        return lerr_failf(&job->err, CHASKI_E_INVALID_ARGUMENT, "job_poll: out->struct_size is %u",
                          (unsigned)out->struct_size);
    struct timespec dl = deadline_after(timeout_ms);
    pthread_mutex_lock(&job->mu);
    qevent_free(job->cur);
    job->cur = NULL;
    while (!job->head && !job->end && timeout_ms != 0) {
        int rc = timeout_ms == UINT32_MAX ? pthread_cond_wait(&job->cv, &job->mu)
                                          : pthread_cond_timedwait(&job->cv, &job->mu, &dl);
        if (rc == ETIMEDOUT)
            break;
    }
    chaski_status st;
    if (job->head) {
        qevent *q = job->head;
        job->head = q->next;
        if (!job->head)
            job->tail = NULL;
        job->cur = q;
        if (q->ev.type == CHASKI_EVENT_FINISHED)
            job->end = 1;
        versioned_out(out, &q->ev, sizeof q->ev);
        st = CHASKI_OK;
    } else {
        st = job->end ? CHASKI_END : CHASKI_NO_EVENT;
    }
    pthread_mutex_unlock(&job->mu);
    return st;
}

chaski_status jb_wait(chaski_job *job, uint32_t timeout_ms)
{
    if (!job)
        return CHASKI_E_INVALID_ARGUMENT;
    pthread_mutex_lock(&job->mu);
    sched_job *sj = job->sj;
    pthread_mutex_unlock(&job->mu);
    return sched_job_wait(sj, timeout_ms == UINT32_MAX ? -1 : (long)timeout_ms) ? CHASKI_OK : CHASKI_NO_EVENT;
}

chaski_status jb_cancel(chaski_job *job)
{
    if (!job)
        return CHASKI_E_INVALID_ARGUMENT;
    pthread_mutex_lock(&job->mu);
    if (job->sj)
        sched_job_cancel(job->sj);
    pthread_mutex_unlock(&job->mu);
    return CHASKI_OK;
}

void jb_release(chaski_job *job)
{
    if (!job)
        return;
    pthread_mutex_lock(&job->mu);
    int own_callback = job->cb_running && pthread_equal(job->cb_thread, pthread_self());
    sched_job *sj = job->sj;
    pthread_mutex_unlock(&job->mu);
    if (own_callback) {
        /* the contract forbids it; refuse instead of deadlocking */
        lerr_set(&job->err, "job_release: called from the job's own callback (ignored)");
        return;
    }
    sched_job_release(sj); /* cancels, waits for the last callback, drops the reference */
    job_free(job);
}

chaski_status jb_stats(chaski_job *job, chaski_job_stats *out)
{
    if (!job || !out)
        return CHASKI_E_INVALID_ARGUMENT;
    pthread_mutex_lock(&job->mu);
    sched_job *sj = job->sj;
    pthread_mutex_unlock(&job->mu);
    chaski_job_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.state = CHASKI_JOB_QUEUED;
    if (sj) {
        sched_job_stats ss;
        sched_job_get_stats(sj, &ss);
        s.state = (uint32_t)ss.state;
        s.finish_reason = finish_code(ss.finish);
        s.n_prompt_tokens = ss.n_prompt;
        s.n_generated_tokens = ss.n_generated;
        s.queued_ms = ss.queued_ms;
        s.prefill_ms = ss.prefill_ms;
        s.time_to_first_token_ms = ss.ttft_ms;
        s.generate_ms = ss.generate_ms;
        s.total_ms = ss.total_ms;
        s.prefill_tokens_per_s = ss.prefill_ms > 0 ? ss.n_prompt / (ss.prefill_ms * 1e-3) : 0;
        s.generate_tokens_per_s = ss.generate_ms > 0 && ss.n_generated > 1
                                      ? (ss.n_generated - 1) / (ss.generate_ms * 1e-3)
                                      : 0;
    }
    if (!versioned_out(out, &s, sizeof s))
        return lerr_failf(&job->err, CHASKI_E_INVALID_ARGUMENT, "job_stats: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}

size_t jb_last_error(chaski_job *job, char *buf, size_t cap)
{
    if (!job) {
        if (buf && cap)
            buf[0] = '\0';
        return 0;
    }
    return lerr_get(&job->err, buf, cap);
}
