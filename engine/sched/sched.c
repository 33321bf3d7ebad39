/* sched.c: the engine thread, admission, batching and job lifetime (see sched.h). */
#include "sched.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "kv_cache.h"
#include "sched_dev.h"
#include "sched_text.h"

/* Device token-history ids (be_sample_row.hist_id): unique in the process, since the backend's copies
 * are shared by every scheduler (model) of a runtime. */
static _Atomic uint64_t g_hist_next;

/* A generated token whose event is held back (banned strings). */
typedef struct held_tok {
    int32_t tok;
    float logprob;
    size_t n_top;
    size_t text_len;             /* bytes of its piece in the ban gate */
    int is_stop;                 /* a stop token: the job finishes when it is released */
} held_tok;

/* "Do not sample tok at step" (a banned string began with it there). */
typedef struct step_ban {
    int step;
    int32_t tok;
} step_ban;

/* Rewinds a job may take before it fails, in all and at one step. */
enum { MAX_REWINDS = 1024, MAX_BANS_PER_STEP = 64 };

struct sched_job {
    sched *s;
    int refs;                    /* caller + scheduler; guarded by s->mu */
    int cancel_requested;        /* guarded by s->mu */
    int finished;                /* FINISHED emitted; guarded by s->mu */
    sched_state state;           /* guarded by s->mu */
    sched_finish finish;         /* guarded by s->mu */
    ck_error error;              /* written by the engine thread before finish; read after */
    sched_job *next;             /* inbox / waiting / active list link (engine thread) */

    /* engine-thread state */
    kv_seq seq;
    int32_t *tokens;             /* [n_prompt + max_new] prompt then generated */
    int n_prompt, n_generated, max_new, min_new, n_prefilled;
    smp_state *smp;
    tok_stream *detok;
    sched_text text;             /* held-back text: banned and stop strings */
    /* banned strings: generated tokens whose events wait until their text is released */
    held_tok *held;              /* [n_held] the last n_held generated tokens, oldest first */
    smp_logprob *held_top;       /* [cap_held, top_n] their alternatives */
    size_t n_held, cap_held;
    step_ban *bans;              /* [n_bans] token ids banned at a step by a rewind */
    size_t n_bans, cap_bans;
    int n_rewinds;
    int32_t *stop_tokens;
    size_t n_stop_tokens;
    int ignore_eos, top_n;
    smp_logprob *top;            /* [top_n] */
    sched_emit_fn emit;
    void *user_data;
    sched_sample_fn sample_hook;
    sched_stop_fn stop_hook;
    void *hook_data;
    /* device sampling (sched_dev.h) */
    int dev_chain_ok;            /* the chain is the GPU chain's */
    uint64_t hist_id;            /* the device's copy of tokens[]; 0: none yet (a rewind drops it) */
    int32_t *bias_ids;           /* [n_logit_bias] the logit bias as two arrays */
    float *bias_vals;
    void (*hook_free)(void *);

    /* timings (seconds, monotonic); guarded by s->mu when read from other threads */
    double t_submit, t_admit, t_first, t_last, t_end;
};

typedef struct sched_task {
    sched_task_fn fn;
    void *data;
    ck_status status;
    ck_error *err;
    int done;
    struct sched_task *next;
} sched_task;

struct sched {
    const mdl_model *m;
    const tok_tokenizer *tok;
    sched_params p;
    kv_cache *kv;
    fwd_workspace *ws;
    int n_vocab;

    int refs;                    /* the owner + one per unfreed job; guarded by mu */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t work;         /* engine thread waits here */
    pthread_cond_t done;         /* job finished / task done */
    int stopping;
    sched_job *inbox, *inbox_tail;  /* submitted, not yet seen by the engine thread */
    sched_task *tasks;
    sched_stats st;              /* guarded by mu */
    double busy_s, busy_tokens;  /* recent window for tokens/s */

    /* engine-thread state */
    sched_job *waiting, *waiting_tail;
    sched_job **active;          /* [max_seqs] */
    int n_active;
    /* step buffers */
    int32_t *b_tokens;           /* [max_batch_tokens] */
    int32_t *b_start;            /* [max_seqs + 1] */
    kv_seq **b_seqs;             /* [max_seqs] */
    sched_job **b_jobs;          /* [max_seqs] */
    float *logits;               /* [max_seqs, n_vocab] */
    float *row;                  /* [n_vocab] scratch copy of a logits row for sampling */
    /* device sampling (fwd_run_rows): per row of a step */
    int dev;                     /* the backend samples on the device */
    uint8_t *row_mode;           /* [max_seqs] BE_ROW_* */
    be_sample_row *row_smp;      /* [max_seqs] */
    int32_t *row_tok;            /* [max_seqs] */
    float *row_lp;               /* [max_seqs] */
    char *piece;                 /* detokenizer output scratch */
    size_t piece_cap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sched_pages_for(const sched *s, int n_tokens)
{
    return (n_tokens + s->p.kv_page_size - 1) / s->p.kv_page_size;
}

/* ---- job lifetime ---------------------------------------------------------------------- */

/* The scheduler's mutex and conditions outlive sched_destroy while jobs hold references. */
static void sched_unref(sched *s)
{
    pthread_mutex_lock(&s->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last)
        return;
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void job_free(sched_job *j)
{
    if (!j)
        return;
    sched *s = j->s;
    smp_state_destroy(j->smp);
    tok_stream_destroy(j->detok);
    sched_text_free(&j->text);
    if (j->hook_free)
        j->hook_free(j->hook_data);
    free(j->tokens);
    free(j->stop_tokens);
    free(j->top);
    free(j->held);
    free(j->held_top);
    free(j->bans);
    free(j->bias_ids);
    free(j->bias_vals);
    free(j);
    if (s)
        sched_unref(s);
}

/* Drop one reference; s->mu held. Returns the job if it must be freed (outside the lock). */
static sched_job *job_unref_locked(sched_job *j)
{
    return --j->refs == 0 ? j : NULL;
}

/* ---- submit ---------------------------------------------------------------------------- */

ck_status sched_submit(sched *s, const sched_job_spec *spec, sched_job **out, ck_error *err)
{
    *out = NULL;
    if (!spec || !spec->emit)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: no event function");
    if (spec->n_prompt == 0 || !spec->prompt)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: the prompt is empty (at least one token is needed)");
    if (spec->n_prompt + 1 > (size_t)s->p.n_ctx)
        return ck_fail(err, CK_E_CONTEXT_OVERFLOW,
                       "job: prompt of %zu tokens leaves no room in a context of %d tokens (at most %d)",
                       spec->n_prompt, s->p.n_ctx, s->p.n_ctx - 1);
    for (size_t i = 0; i < spec->n_prompt; i++)
        if (spec->prompt[i] < 0 || spec->prompt[i] >= s->n_vocab)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: prompt token %zu is %d, outside the vocabulary [0, %d)",
                           i, (int)spec->prompt[i], s->n_vocab);
    int n_prompt = (int)spec->n_prompt;
    if (sched_pages_for(s, n_prompt + 1) > s->p.kv_pages)
        return ck_fail(err, CK_E_OUT_OF_MEMORY,
                       "job: prompt of %d tokens needs %d KV pages of %d tokens, the pool has %d", n_prompt,
                       sched_pages_for(s, n_prompt + 1), s->p.kv_page_size, s->p.kv_pages);
    if (spec->max_new_tokens < 1)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: max_new_tokens is %d, must be >= 1", spec->max_new_tokens);
    if (spec->top_n < 0 || spec->top_n > 64)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: top_n is %d, must be in [0, 64]", spec->top_n);
    for (size_t i = 0; i < spec->n_stop_tokens; i++)
        if (spec->stop_tokens[i] < 0 || spec->stop_tokens[i] >= s->n_vocab)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "job: stop token %d is outside the vocabulary [0, %d)",
                           (int)spec->stop_tokens[i], s->n_vocab);

    int max_new = spec->max_new_tokens;
    if (max_new > s->p.n_ctx - n_prompt)
        max_new = s->p.n_ctx - n_prompt;
    int pool_tokens = s->p.kv_pages * s->p.kv_page_size;
    if (max_new > pool_tokens - n_prompt)
        max_new = pool_tokens - n_prompt;

    sched_job *j = calloc(1, sizeof *j);
    if (!j)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "job: out of memory");
    j->refs = 2;
    j->state = SCHED_JOB_QUEUED;
    kv_seq_init(&j->seq);
    j->n_prompt = n_prompt;
    j->max_new = max_new;
    j->min_new = spec->min_new_tokens > 0 ? spec->min_new_tokens : 0;
    j->ignore_eos = spec->ignore_eos;
    j->top_n = spec->top_n;
    j->emit = spec->emit;
    j->user_data = spec->user_data;
    j->tokens = malloc((size_t)(n_prompt + max_new) * sizeof *j->tokens);
    j->top = malloc((size_t)(spec->top_n > 0 ? spec->top_n : 1) * sizeof *j->top);
    if (spec->n_stop_tokens) {
        j->stop_tokens = malloc(spec->n_stop_tokens * sizeof *j->stop_tokens);
        if (j->stop_tokens)
            memcpy(j->stop_tokens, spec->stop_tokens, spec->n_stop_tokens * sizeof *j->stop_tokens);
    }
    j->n_stop_tokens = spec->n_stop_tokens;
    if (!j->tokens || !j->top || (spec->n_stop_tokens && !j->stop_tokens)) {
        job_free(j);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "job: out of memory");
    }
    memcpy(j->tokens, spec->prompt, (size_t)n_prompt * sizeof *j->tokens);

    smp_params defaults;
    smp_params_default(&defaults);
    ck_status st = smp_state_create(spec->sampling ? spec->sampling : &defaults, (size_t)s->n_vocab, &j->smp, err);
    if (st == CK_OK) {
        const smp_params *sp = smp_state_params(j->smp);
        j->dev_chain_ok = sched_dev_chain_ok(sp, NULL);
        if (sp->n_logit_bias) {
            j->bias_ids = malloc(sp->n_logit_bias * sizeof *j->bias_ids);
            j->bias_vals = malloc(sp->n_logit_bias * sizeof *j->bias_vals);
            if (!j->bias_ids || !j->bias_vals)
                st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
            else
                sched_dev_split_bias(sp, j->bias_ids, j->bias_vals);
        }
    }
    if (st == CK_OK)
        st = tok_stream_create(s->tok, 1, &j->detok, err);
    if (st == CK_OK)
        st = sched_text_init(&j->text, spec->stop_strings, spec->n_stop_strings, spec->banned_strings,
                             spec->n_banned_strings, err);
    if (st != CK_OK) {
        ck_error_prefix(err, "job");
        job_free(j);
        return st;
    }
    /* from here on the job owns the hooks */
    j->sample_hook = spec->sample_hook;
    j->stop_hook = spec->stop_hook;
    j->hook_data = spec->hook_data;
    j->hook_free = spec->hook_free;
    j->t_submit = now_s();

    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        j->hook_free = NULL; /* failure: the hooks stay the caller's */
        job_free(j);
        return ck_fail(err, CK_E_CANCELLED, "job: the model is being unloaded");
    }
    j->s = s;
    s->refs++;
    if (s->inbox_tail)
        s->inbox_tail->next = j;
    else
        s->inbox = j;
    s->inbox_tail = j;
    s->st.jobs_queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    *out = j;
    return CK_OK;
}

void sched_job_cancel(sched_job *j)
{
    if (!j)
        return;
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    if (!j->finished) {
        j->cancel_requested = 1;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
}

static int cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *mu, const struct timespec *deadline)
{
    if (!deadline)
        return pthread_cond_wait(c, mu);
    return pthread_cond_timedwait(c, mu, deadline);
}

static struct timespec deadline_after(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int sched_job_wait(sched_job *j, long timeout_ms)
{
    sched *s = j->s;
    struct timespec dl;
    if (timeout_ms >= 0)
        dl = deadline_after(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!j->finished) {
        if (cond_wait_ms(&s->done, &s->mu, timeout_ms >= 0 ? &dl : NULL) == ETIMEDOUT)
            break;
    }
    int fin = j->finished;
    pthread_mutex_unlock(&s->mu);
    return fin;
}

void sched_job_release(sched_job *j)
{
    if (!j)
        return;
    sched_job_cancel(j);
    sched_job_wait(j, -1);
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    sched_job *dead = job_unref_locked(j);
    pthread_mutex_unlock(&s->mu);
    job_free(dead);
}

void sched_job_get_stats(sched_job *j, sched_job_stats *out)
{
    sched *s = j->s;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    double t = j->finished ? j->t_end : now_s();
    out->state = j->state;
    out->finish = j->finish;
    out->n_prompt = j->n_prompt;
    out->n_generated = j->n_generated;
    out->total_ms = (t - j->t_submit) * 1e3;
    if (j->t_admit > 0)
        out->queued_ms = (j->t_admit - j->t_submit) * 1e3;
    else
        out->queued_ms = out->total_ms;
    if (j->t_first > 0) {
        out->prefill_ms = (j->t_first - j->t_admit) * 1e3;
        out->ttft_ms = (j->t_first - j->t_submit) * 1e3;
        out->generate_ms = (j->t_last - j->t_first) * 1e3;
    }
    pthread_mutex_unlock(&s->mu);
}

void sched_job_error(sched_job *j, char *buf, size_t cap)
{
    if (!cap)
        return;
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    const char *msg = j->finished && j->error.status != CK_OK ? j->error.msg : "";
    size_t n = strlen(msg);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    pthread_mutex_unlock(&s->mu);
}

void sched_get_stats(sched *s, sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

ck_status sched_run_task(sched *s, sched_task_fn fn, void *task_data, ck_error *err)
{
    sched_task t = {.fn = fn, .data = task_data, .status = CK_OK, .err = err};
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return ck_fail(err, CK_E_CANCELLED, "the model is being unloaded");
    }
    t.next = s->tasks;
    s->tasks = &t;
    pthread_cond_signal(&s->work);
    while (!t.done)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return t.status;
}

/* ---- engine thread --------------------------------------------------------------------- */

/* Emit FINISHED and retire the job from the engine's lists (the caller removed it). */
static void finish_job(sched *s, sched_job *j, sched_finish why, const char *tail, size_t tail_len)
{
    kv_seq_release(s->kv, &j->seq);
    double t = now_s();
    pthread_mutex_lock(&s->mu);
    if (j->state == SCHED_JOB_QUEUED)
        s->st.jobs_queued--;
    else
        s->st.jobs_active--;
    j->state = SCHED_JOB_FINISHED;
    j->finish = why;
    j->t_end = t;
    if (j->t_first > 0 && j->t_last == 0)
        j->t_last = t;
    pthread_mutex_unlock(&s->mu);

    sched_event ev = {.type = SCHED_EV_FINISHED, .token = -1, .index = j->n_generated, .text = tail ? tail : "",
                      .text_len = tail ? tail_len : 0, .finish = why, .status = j->error.status,
                      .error = j->error.status != CK_OK ? j->error.msg : NULL};
    j->emit(j->user_data, j, &ev);

    pthread_mutex_lock(&s->mu);
    j->finished = 1;
    s->st.jobs_finished++;
    s->st.kv_pages_free = s->kv->n_free;
    sched_job *dead = job_unref_locked(j);
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->mu);
    job_free(dead);
}

static void fail_job(sched *s, sched_job *j)
{
    finish_job(s, j, SCHED_FINISH_ERROR, NULL, 0);
}

static void remove_active(sched *s, int i)
{
    memmove(&s->active[i], &s->active[i + 1], (size_t)(s->n_active - i - 1) * sizeof *s->active);
    s->n_active--;
}

/* Flush the detokenizer and the held-back text into one tail string (in s->piece). */
static size_t flush_tail(sched *s, sched_job *j, const char **out)
{
    size_t len = 0;
    ck_error e;
    tok_stream_flush(j->detok, NULL, 0, &len, &e);
    if (len + 1 > s->piece_cap) {
        char *p = realloc(s->piece, len + 1);
        if (p) {
            s->piece = p;
            s->piece_cap = len + 1;
        }
    }
    size_t got = 0;
    if (tok_stream_flush(j->detok, s->piece, s->piece_cap, &got, &e) != CK_OK || got > s->piece_cap)
        got = 0;
    *out = sched_text_finish(&j->text, s->piece, got, &len);
    return len;
}

/* Push one token through the detokenizer; returns the new bytes in s->piece. */
static ck_status detok_push(sched *s, sched_job *j, int32_t tok, size_t *len, ck_error *err)
{
    for (int tries = 0; tries < 2; tries++) {
        ck_status st = tok_stream_push(j->detok, tok, s->piece, s->piece_cap, len, err);
        if (st == CK_OK)
            return CK_OK;
        if (*len <= s->piece_cap)
            return st;
        char *p = realloc(s->piece, *len + 1);
        if (!p)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "detokenizer: out of memory");
        s->piece = p;
        s->piece_cap = *len + 1;
    }
    return ck_fail(err, CK_E_INTERNAL, "detokenizer: buffer sizing did not converge");
}

static int is_stop_token(const sched *s, const sched_job *j, int32_t tok)
{
    if (!j->ignore_eos && (cfg_is_eos(&s->m->cfg, tok) || tok == tok_eos_id(s->tok)))
        return 1;
    for (size_t i = 0; i < j->n_stop_tokens; i++)
        if (j->stop_tokens[i] == tok)
            return 1;
    return 0;
}

/* Pick a token from row (which may be modified), without the ids a rewind banned at this step. */
static ck_status pick_token(sched *s, sched_job *j, float *row, int32_t *out, ck_error *err)
{
    size_t n_hist = (size_t)(j->n_prompt + j->n_generated);
    uint64_t step = (uint64_t)j->n_generated;
    for (size_t i = 0; i < j->n_bans; i++)
        if (j->bans[i].step == j->n_generated)
            row[j->bans[i].tok] = -INFINITY;
    ck_status st = j->sample_hook ? j->sample_hook(j->hook_data, j->smp, row, s->n_vocab, j->tokens, n_hist, step,
                                                   out, err)
                                  : smp_sample(j->smp, row, j->tokens, n_hist, step, out, err);
    if (st != CK_OK)
        return st;
    if (*out < 0 || *out >= s->n_vocab)
        return ck_fail(err, CK_E_SCRIPT, "sampler returned token %d, outside the vocabulary [0, %d)", (int)*out,
                       s->n_vocab);
    return CK_OK;
}

/* ---- banned strings: hold back, rewind, resample --------------------------------------- */

/* Rewind job j to generated token k: forget tokens k.. (their KV, their held text and
 * events, the detokenizer's view of them), and ban token k's id at step k. The next step
 * feeds token k-1 again (or the last prompt token) to get the logits for step k back.
 * Returns CK_OK or an error for the job. */
static ck_status rewind_job(sched *s, sched_job *j, int k, ck_error *err)
{
    int32_t first = j->tokens[j->n_prompt + k];
    if (++j->n_rewinds > MAX_REWINDS)
        return ck_fail(err, CK_E_INVALID_ARGUMENT,
                       "banned strings: gave up after %d rewinds (the model keeps producing them)", MAX_REWINDS);
    size_t n = 0, at_k = 0;
    for (size_t i = 0; i < j->n_bans; i++) /* bans at later steps were for a prefix that is gone */
        if (j->bans[i].step <= k) {
            at_k += j->bans[i].step == k;
            j->bans[n++] = j->bans[i];
        }
    j->n_bans = n;
    if (at_k >= MAX_BANS_PER_STEP)
        return ck_fail(err, CK_E_INVALID_ARGUMENT,
                       "banned strings: %d tokens banned at output token %d and every choice still begins one",
                       MAX_BANS_PER_STEP, k);
    if (j->n_bans == j->cap_bans) {
        size_t cap = j->cap_bans ? 2 * j->cap_bans : 16;
        step_ban *b = realloc(j->bans, cap * sizeof *b);
        if (!b)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "banned strings: out of memory");
        j->bans = b;
        j->cap_bans = cap;
    }
    j->bans[j->n_bans++] = (step_ban){k, first};

    size_t n_drop = (size_t)(j->n_generated - k);
    if (n_drop > j->n_held)
        return ck_fail(err, CK_E_INTERNAL, "banned strings: rewind to token %d behind released text", k);
    j->n_held -= n_drop;
    j->hist_id = 0; /* the history no longer only grows: the device copy is stale */
    sched_text_ban_rewind(&j->text, k);
    pthread_mutex_lock(&s->mu);
    j->n_generated = k;
    pthread_mutex_unlock(&s->mu);

    /* the KV cache holds every token before the newest sampled one; keep those before k-1,
     * then take back the pages truncation returned (the job's reservation stands) */
    kv_seq_truncate(s->kv, &j->seq, j->n_prompt + k - 1);
    ck_status st = kv_seq_reserve(s->kv, &j->seq, j->n_prompt + j->max_new, err);
    if (st != CK_OK)
        return st;

    /* the detokenizer again from the start of the output, tokens 0..k-1 replayed */
    tok_stream_destroy(j->detok);
    j->detok = NULL;
    st = tok_stream_create(s->tok, 1, &j->detok, err);
    for (int i = 0; st == CK_OK && i < k; i++) {
        size_t len = 0;
        st = detok_push(s, j, j->tokens[j->n_prompt + i], &len, err);
    }
    return st;
}

/* Make room for one more held token. */
static int held_grow(sched_job *j)
{
    if (j->n_held < j->cap_held)
        return 1;
    size_t cap = j->cap_held ? 2 * j->cap_held : 16;
    size_t tn = (size_t)(j->top_n > 0 ? j->top_n : 1);
    held_tok *h = realloc(j->held, cap * sizeof *h);
    if (!h)
        return 0;
    j->held = h;
    smp_logprob *t = realloc(j->held_top, cap * tn * sizeof *t);
    if (!t)
        return 0;
    j->held_top = t;
    j->cap_held = cap;
    return 1;
}

/* Emit the first n held tokens, whose pieces are text[0, text_len) in order, through the
 * stop strings and the stop hook. Returns 1 if the job finished (a stop). */
static int release_held(sched *s, sched_job *j, size_t n, const char *text, size_t text_len)
{
    size_t off = 0, tn = (size_t)(j->top_n > 0 ? j->top_n : 1);
    int first_index = j->n_generated - (int)j->n_held;
    for (size_t i = 0; i < n; i++) {
        const held_tok *h = &j->held[i];
        int index = first_index + (int)i;
        size_t plen = h->text_len <= text_len - off ? h->text_len : text_len - off;
        const char *out = "";
        size_t out_len = 0;
        int hit = 0, stop = h->is_stop;
        if (plen || !stop) {
            out = sched_text_push(&j->text, text + off, plen, &out_len, &hit);
            if (!out) {
                ck_fail(&j->error, CK_E_OUT_OF_MEMORY, "stop strings: out of memory");
                fail_job(s, j);
                return 1;
            }
        }
        off += plen;
        if (hit)
            stop = 1;
        else if (!stop && j->stop_hook) {
            int want = 0;
            size_t all_len = 0;
            const char *all = sched_text_all(&j->text, &all_len);
            if (j->stop_hook(j->hook_data, all, all_len, index + 1, h->tok, &want, &j->error) != CK_OK) {
                fail_job(s, j);
                return 1;
            }
            stop = want && index + 1 > j->min_new;
        }
        sched_event ev = {.type = SCHED_EV_TOKEN, .token = h->tok, .index = index, .logprob = h->logprob,
                          .text = out, .text_len = out_len, .top = j->held_top + i * tn, .n_top = h->n_top};
        j->emit(j->user_data, j, &ev);
        if (stop) {
            /* tokens generated after this one were never shown: the output ends here */
            pthread_mutex_lock(&s->mu);
            j->n_generated = index + 1;
            pthread_mutex_unlock(&s->mu);
            const char *tail = NULL;
            size_t tail_len = 0;
            if (!sched_text_stopped(&j->text))
                tail = sched_text_finish(&j->text, NULL, 0, &tail_len);
            finish_job(s, j, SCHED_FINISH_STOP, tail, tail_len);
            return 1;
        }
    }
    memmove(j->held, j->held + n, (j->n_held - n) * sizeof *j->held);
    memmove(j->held_top, j->held_top + n * tn, (j->n_held - n) * tn * sizeof *j->held_top);
    j->n_held -= n;
    return 0;
}

/* Release the held tokens whose pieces make up released text of text_len bytes: whole
 * pieces in order, with the empty pieces right after them (a rewind only ever goes back to
 * a token with text, and that one is still held). Returns 1 if the job finished. */
static int release_text(sched *s, sched_job *j, const char *text, size_t text_len)
{
    size_t n = 0, sum = 0;
    while (n < j->n_held && !j->held[n].is_stop && sum + j->held[n].text_len <= text_len)
        sum += j->held[n++].text_len;
    return n ? release_held(s, j, n, text, text_len) : 0;
}

/* Append the detokenizer's last bytes to s->piece[0, *len). */
static ck_status detok_flush_append(sched *s, sched_job *j, size_t *len, ck_error *err)
{
    size_t more = 0;
    ck_error e;
    tok_stream_flush(j->detok, NULL, 0, &more, &e);
    if (*len + more + 1 > s->piece_cap) {
        char *p = realloc(s->piece, *len + more + 1);
        if (!p)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "detokenizer: out of memory");
        s->piece = p;
        s->piece_cap = *len + more + 1;
    }
    size_t got = 0;
    if (tok_stream_flush(j->detok, s->piece + *len, s->piece_cap - *len, &got, &e) == CK_OK &&
        got <= s->piece_cap - *len)
        *len += got;
    return CK_OK;
}

/* advance_job with banned strings, for the newest token (already in j->tokens and the last
 * held one): its piece goes to the ban gate; the tokens whose text the gate releases are
 * emitted; a banned string rewinds the job. Returns 1 if the job finished. */
static int advance_banned(sched *s, sched_job *j, int stop)
{
    held_tok *h = &j->held[j->n_held - 1];
    int at_end = stop || j->n_generated >= j->max_new;
    size_t len = 0;
    ck_status st = CK_OK;
    if (!stop)
        st = detok_push(s, j, h->tok, &len, &j->error);
    if (st == CK_OK && at_end)
        st = detok_flush_append(s, j, &len, &j->error); /* no more tokens: the last bytes join */
    const char *txt = "";
    size_t txt_len = 0;
    int64_t rewind = -1;
    if (st == CK_OK) {
        h->text_len = len;
        st = sched_text_ban_feed(&j->text, s->piece, len, j->n_generated - 1, &txt, &txt_len, &rewind,
                                 &j->error);
    }
    if (st == CK_OK && rewind >= 0)
        st = rewind_job(s, j, (int)rewind, &j->error);
    if (st != CK_OK) {
        fail_job(s, j);
        return 1;
    }
    if (rewind >= 0)
        return 0;
    if (release_text(s, j, txt, txt_len))
        return 1;
    if (!at_end)
        return 0;
    sched_text_ban_flush(&j->text, &txt, &txt_len);
    if (release_held(s, j, j->n_held, txt, txt_len))
        return 1; /* a stop token, a stop string or the stop hook */
    const char *tail = NULL;
    size_t tail_len = 0;
    if (!sched_text_stopped(&j->text))
        tail = sched_text_finish(&j->text, NULL, 0, &tail_len);
    finish_job(s, j, SCHED_FINISH_LENGTH, tail, tail_len);
    return 1;
}

static int emit_token(sched *s, sched_job *j, int32_t tok, float lp, size_t n_top);

/* Sample and emit for job j from its logits row. Returns 1 if the job finished. */
static int advance_job(sched *s, sched_job *j, const float *logits)
{
    memcpy(s->row, logits, (size_t)s->n_vocab * sizeof *s->row);
    int32_t tok = -1;
    if (pick_token(s, j, s->row, &tok, &j->error) != CK_OK) {
        fail_job(s, j);
        return 1;
    }
    float lp = 0;
    size_t n_top = 0;
    ck_error e;
    if (smp_logprobs(logits, (size_t)s->n_vocab, tok, (size_t)j->top_n, &lp, j->top, &n_top, &e) != CK_OK)
        n_top = 0;
    return emit_token(s, j, tok, lp, n_top);
}

/* Emit token tok (sampled on the host or the device) with its logprob and n_top alternatives in
 * j->top. Returns 1 if the job finished. */
static int emit_token(sched *s, sched_job *j, int32_t tok, float lp, size_t n_top)
{

    double t = now_s();
    pthread_mutex_lock(&s->mu);
    if (j->n_generated == 0) {
        j->t_first = t;
        j->state = SCHED_JOB_GENERATING;
    }
    j->t_last = t;
    j->tokens[j->n_prompt + j->n_generated] = tok;
    j->n_generated++;
    s->st.generated_tokens++;
    pthread_mutex_unlock(&s->mu);

    int stop = j->n_generated > j->min_new && is_stop_token(s, j, tok);
    if (sched_text_has_bans(&j->text)) {
        if (!held_grow(j)) {
            ck_fail(&j->error, CK_E_OUT_OF_MEMORY, "banned strings: out of memory");
            fail_job(s, j);
            return 1;
        }
        size_t tn = (size_t)(j->top_n > 0 ? j->top_n : 1);
        memcpy(j->held_top + j->n_held * tn, j->top, n_top * sizeof *j->top);
        j->held[j->n_held++] = (held_tok){.tok = tok, .logprob = lp, .n_top = n_top, .is_stop = stop};
        return advance_banned(s, j, stop);
    }
    const char *text = "";
    size_t text_len = 0;
    if (!stop) {
        size_t len = 0;
        if (detok_push(s, j, tok, &len, &j->error) != CK_OK) {
            fail_job(s, j);
            return 1;
        }
        int hit = 0;
        text = sched_text_push(&j->text, s->piece, len, &text_len, &hit);
        if (!text) {
            ck_fail(&j->error, CK_E_OUT_OF_MEMORY, "stop strings: out of memory");
            fail_job(s, j);
            return 1;
        }
        if (hit)
            stop = 1;
        else if (j->stop_hook) {
            int want = 0;
            size_t all_len = 0;
            const char *all = sched_text_all(&j->text, &all_len);
            if (j->stop_hook(j->hook_data, all, all_len, j->n_generated, tok, &want, &j->error) != CK_OK) {
                fail_job(s, j);
                return 1;
            }
            stop = want && j->n_generated > j->min_new;
        }
    }
    sched_event ev = {.type = SCHED_EV_TOKEN, .token = tok, .index = j->n_generated - 1, .logprob = lp,
                      .text = text, .text_len = text_len, .top = j->top, .n_top = n_top};
    j->emit(j->user_data, j, &ev);

    if (stop) {
        /* a stop string drops the held text from the stop on; a stop token leaves the rest */
        const char *tail = NULL;
        size_t tail_len = 0;
        if (!sched_text_stopped(&j->text))
            tail_len = flush_tail(s, j, &tail);
        finish_job(s, j, SCHED_FINISH_STOP, tail, tail_len);
        return 1;
    }
    if (j->n_generated >= j->max_new) {
        const char *tail = NULL;
        size_t tail_len = flush_tail(s, j, &tail);
        finish_job(s, j, SCHED_FINISH_LENGTH, tail, tail_len);
        return 1;
    }
    return 0;
}

static void cancel_all(sched *s, sched_job *list)
{
    while (list) {
        sched_job *next = list->next;
        finish_job(s, list, SCHED_FINISH_CANCELLED, NULL, 0);
        list = next;
    }
}

/* One step over the active jobs. */
static void run_step(sched *s)
{
    int n_tok = 0, n_seqs = 0;
    int budget = s->p.max_batch_tokens;
    s->b_start[0] = 0;
    /* generating jobs first: one token each */
    for (int i = 0; i < s->n_active && budget > 0; i++) {
        sched_job *j = s->active[i];
        if (j->n_prefilled < j->n_prompt)
            continue;
        s->b_tokens[n_tok++] = j->tokens[j->n_prompt + j->n_generated - 1];
        budget--;
        s->b_jobs[n_seqs] = j;
        s->b_seqs[n_seqs] = &j->seq;
        s->b_start[++n_seqs] = n_tok;
    }
    /* then prefill chunks in admission order */
    for (int i = 0; i < s->n_active && budget > 0; i++) {
        sched_job *j = s->active[i];
        if (j->n_prefilled >= j->n_prompt)
            continue;
        int chunk = j->n_prompt - j->n_prefilled;
        if (chunk > budget)
            chunk = budget;
        memcpy(&s->b_tokens[n_tok], &j->tokens[j->n_prefilled], (size_t)chunk * sizeof *s->b_tokens);
        n_tok += chunk;
        budget -= chunk;
        s->b_jobs[n_seqs] = j;
        s->b_seqs[n_seqs] = &j->seq;
        s->b_start[++n_seqs] = n_tok;
    }
    if (n_seqs == 0)
        return;
    fwd_batch b = {.n_seqs = n_seqs, .seqs = s->b_seqs, .tokens = s->b_tokens, .seq_start = s->b_start,
                   .all_logits = NULL};
    double t0 = now_s();
    ck_error err;
    ck_error_clear(&err);
    ck_status st;
    if (s->dev) {
        /* one row per sequence: sampled on the device, or its logits copied, or dropped */
        for (int r = 0; r < n_seqs; r++) {
            sched_job *j = s->b_jobs[r];
            int n_new = s->b_start[r + 1] - s->b_start[r];
            int wants = j->n_prefilled >= j->n_prompt || j->n_prefilled + n_new >= j->n_prompt;
            int bans = 0;
            for (size_t i = 0; i < j->n_bans && !bans; i++)
                bans = j->bans[i].step == j->n_generated;
            s->row_mode[r] = sched_dev_row_mode(wants, j->dev_chain_ok, j->sample_hook != NULL, bans, j->top_n);
            if (s->row_mode[r] != BE_ROW_SAMPLE)
                continue;
            if (j->hist_id == 0)
                j->hist_id = atomic_fetch_add(&g_hist_next, 1) + 1;
            sched_dev_fill_row(&s->row_smp[r], smp_state_params(j->smp), j->bias_ids, j->bias_vals, j->tokens,
                               j->n_prompt + j->n_generated, j->hist_id, (uint64_t)j->n_generated);
        }
        be_step_out out = {.n_rows = n_seqs, .vocab = s->n_vocab, .mode = s->row_mode, .sample = s->row_smp,
                           .logits = s->logits, .tokens = s->row_tok, .logprobs = s->row_lp};
        st = fwd_run_rows(s->m, s->kv, s->ws, &b, &out, &err);
    } else {
        st = fwd_run(s->m, s->kv, s->ws, &b, s->logits, &err);
    }
    if (st != CK_OK) {
        /* the step failed: every job in it fails with the message */
        for (int r = 0; r < n_seqs; r++) {
            sched_job *j = s->b_jobs[r];
            for (int i = 0; i < s->n_active; i++)
                if (s->active[i] == j) {
                    remove_active(s, i);
                    break;
                }
            j->error = err;
            ck_error_prefix(&j->error, "forward pass");
            fail_job(s, j);
        }
        return;
    }
    int n_generated = 0;
    for (int r = 0; r < n_seqs; r++) {
        sched_job *j = s->b_jobs[r];
        int n_new = s->b_start[r + 1] - s->b_start[r];
        if (j->n_prefilled < j->n_prompt) {
            j->n_prefilled += n_new;
            pthread_mutex_lock(&s->mu);
            s->st.prompt_tokens += (uint64_t)n_new;
            pthread_mutex_unlock(&s->mu);
            if (j->n_prefilled < j->n_prompt)
                continue;
        }
        n_generated++;
        int done = s->dev && s->row_mode[r] == BE_ROW_SAMPLE
                       ? emit_token(s, j, s->row_tok[r], s->row_lp[r], 0)
                       : advance_job(s, j, s->logits + (size_t)r * (size_t)s->n_vocab);
        if (done) {
            for (int i = 0; i < s->n_active; i++)
                if (s->active[i] == j) {
                    remove_active(s, i);
                    break;
                }
        }
    }
    double dt = now_s() - t0;
    pthread_mutex_lock(&s->mu);
    s->st.steps++;
    /* exponential window over roughly the last 64 steps */
    s->busy_s = s->busy_s * (63.0 / 64.0) + dt;
    s->busy_tokens = s->busy_tokens * (63.0 / 64.0) + n_generated;
    s->st.generate_tokens_per_s = s->busy_s > 0 ? s->busy_tokens / s->busy_s : 0;
    pthread_mutex_unlock(&s->mu);
}

/* Admit waiting jobs while slots and pages allow (FIFO: a job that does not fit blocks the
 * ones behind it, so big jobs are not starved). */
static void admit(sched *s)
{
    while (s->waiting && s->n_active < s->p.max_seqs) {
        sched_job *j = s->waiting;
        ck_error e;
        if (kv_seq_reserve(s->kv, &j->seq, j->n_prompt + j->max_new, &e) != CK_OK)
            break;
        s->waiting = j->next;
        if (!s->waiting)
            s->waiting_tail = NULL;
        j->next = NULL;
        s->active[s->n_active++] = j;
        double t = now_s();
        pthread_mutex_lock(&s->mu);
        j->state = SCHED_JOB_PREFILL;
        j->t_admit = t;
        s->st.jobs_queued--;
        s->st.jobs_active++;
        pthread_mutex_unlock(&s->mu);
    }
}

static void *engine_main(void *arg)
{
    sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->inbox && !s->tasks && s->n_active == 0 &&
               !(s->waiting && s->n_active < s->p.max_seqs))
            pthread_cond_wait(&s->work, &s->mu);
        /* move the inbox to the waiting list */
        if (s->inbox) {
            if (s->waiting_tail)
                s->waiting_tail->next = s->inbox;
            else
                s->waiting = s->inbox;
            s->waiting_tail = s->inbox_tail;
            s->inbox = s->inbox_tail = NULL;
        }
        int stopping = s->stopping;
        sched_task *tasks = s->tasks;
        s->tasks = NULL;
        /* collect cancellations */
        sched_job *cancelled = NULL;
        for (int i = 0; i < s->n_active;) {
            sched_job *j = s->active[i];
            if (j->cancel_requested || stopping) {
                remove_active(s, i);
                j->next = cancelled;
                cancelled = j;
            } else {
                i++;
            }
        }
        sched_job **pp = &s->waiting;
        s->waiting_tail = NULL;
        while (*pp) {
            sched_job *j = *pp;
            if (j->cancel_requested || stopping) {
                *pp = j->next;
                j->next = cancelled;
                cancelled = j;
            } else {
                s->waiting_tail = j;
                pp = &j->next;
            }
        }
        pthread_mutex_unlock(&s->mu);

        cancel_all(s, cancelled); /* pages return to the pool here */

        while (tasks) {
            sched_task *t = tasks;
            tasks = t->next;
            ck_status st = stopping ? ck_fail(t->err, CK_E_CANCELLED, "the model is being unloaded")
                                    : t->fn(t->data, s->m, t->err);
            pthread_mutex_lock(&s->mu);
            t->status = st;
            t->done = 1;
            pthread_cond_broadcast(&s->done);
            pthread_mutex_unlock(&s->mu);
        }
        if (stopping)
            break;

        admit(s);
        run_step(s);

        pthread_mutex_lock(&s->mu);
        s->st.kv_pages_free = s->kv->n_free;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- create / destroy ------------------------------------------------------------------ */

ck_status sched_create(const mdl_model *m, const tok_tokenizer *t, const sched_params *p, sched **out,
                       ck_error *err)
{
    *out = NULL;
    if (p->n_ctx < 2 || p->max_seqs < 1 || p->kv_pages < 1 || p->kv_page_size < 1 || p->max_batch_tokens < 1)
        return ck_fail(err, CK_E_INVALID_ARGUMENT,
                       "scheduler: n_ctx %d, max_seqs %d, kv_pages %d, page_size %d, max_batch_tokens %d: each "
                       "must be positive (n_ctx >= 2)",
                       p->n_ctx, p->max_seqs, p->kv_pages, p->kv_page_size, p->max_batch_tokens);
    sched *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "scheduler: out of memory");
    s->m = m;
    s->tok = t;
    s->p = *p;
    if (s->p.max_batch_tokens <= s->p.max_seqs)
        s->p.max_batch_tokens = s->p.max_seqs + 1; /* room for a prefill chunk beside full decode */
    s->n_vocab = m->cfg.vocab_size;
    s->refs = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);

    ck_status st = kv_cache_create(m->be, &m->cfg, p->kv_pages, p->kv_page_size, &s->kv, err);
    if (st == CK_OK)
        st = fwd_workspace_create_paged(m, s->p.max_batch_tokens, s->p.max_seqs, s->p.kv_page_size, &s->ws, err);
    if (st == CK_OK) {
        int ms = s->p.max_seqs;
        s->active = calloc((size_t)ms, sizeof *s->active);
        s->b_tokens = malloc((size_t)s->p.max_batch_tokens * sizeof *s->b_tokens);
        s->b_start = malloc((size_t)(ms + 1) * sizeof *s->b_start);
        s->b_seqs = malloc((size_t)ms * sizeof *s->b_seqs);
        s->b_jobs = malloc((size_t)ms * sizeof *s->b_jobs);
        s->logits = malloc((size_t)ms * (size_t)s->n_vocab * sizeof *s->logits);
        s->row = malloc((size_t)s->n_vocab * sizeof *s->row);
        s->row_mode = calloc((size_t)ms, sizeof *s->row_mode);
        s->row_smp = calloc((size_t)ms, sizeof *s->row_smp);
        s->row_tok = calloc((size_t)ms, sizeof *s->row_tok);
        s->row_lp = calloc((size_t)ms, sizeof *s->row_lp);
        const char *dev_env = getenv("CHASKI_DEVICE_SAMPLING");
        s->dev = fwd_can_end_rows(m) && !(dev_env && strcmp(dev_env, "0") == 0);
        s->piece_cap = 256;
        s->piece = malloc(s->piece_cap);
        if (!s->active || !s->b_tokens || !s->b_start || !s->b_seqs || !s->b_jobs || !s->logits || !s->row ||
            !s->piece || !s->row_mode || !s->row_smp || !s->row_tok || !s->row_lp)
            st = ck_fail(err, CK_E_OUT_OF_MEMORY, "scheduler: out of memory for step buffers (%d x %d logits)", ms,
                         s->n_vocab);
    }
    if (st == CK_OK) {
        s->st.kv_pages_total = p->kv_pages;
        s->st.kv_pages_free = s->kv->n_free;
        s->st.kv_page_size = p->kv_page_size;
        s->st.kv_bytes = (size_t)p->kv_pages * kv_page_bytes(&m->cfg, p->kv_page_size, sizeof(float));
        if (pthread_create(&s->thread, NULL, engine_main, s) != 0)
            st = ck_fail(err, CK_E_INTERNAL, "scheduler: could not start the engine thread");
        else
            s->thread_started = 1;
    }
    if (st != CK_OK) {
        sched_destroy(s);
        return st;
    }
    *out = s;
    return CK_OK;
}

void sched_destroy(sched *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    fwd_workspace_destroy(s->ws);
    kv_cache_destroy(s->kv);
    free(s->active);
    free(s->b_tokens);
    free(s->b_start);
    free(s->b_seqs);
    free(s->b_jobs);
    free(s->logits);
    free(s->row);
    free(s->row_mode);
    free(s->row_smp);
    free(s->row_tok);
    free(s->row_lp);
    free(s->piece);
    s->ws = NULL;
    s->kv = NULL;
    sched_unref(s);
}
