/* sched.h: the job scheduler with continuous batching (prefix sched_).
 *
 * One scheduler per loaded model runs one engine thread. Each step it
 *   1. retires cancelled jobs (their KV pages go back to the pool at once),
 *   2. admits queued jobs in FIFO order while a batch slot and enough free KV pages exist
 *      (a job reserves pages for its prompt plus its max_new_tokens when admitted, so a
 *      running job never runs out of pages),
 *   3. builds one fwd_batch: every generating job's last token, then prefill chunks of the
 *      admitted jobs' prompts within the step's token budget,
 *   4. runs the forward pass, samples each job whose prompt is done, detokenizes
 *      incrementally (only complete UTF-8), applies banned strings (tokens and their text held
 *      back while one could still form; a hit truncates the job's KV cache to where it began,
 *      bans that first token at that step and samples it again at the next step), stop
 *      tokens, stop strings (held back until they cannot become a stop) and the stop hook,
 *      and emits events.
 *
 * Threads: sched_submit, sched_job_cancel, sched_job_stats, sched_stats, sched_job_wait and
 * sched_run_task may be called from any thread. Events are emitted on the engine thread with
 * no scheduler lock held, so an emit callback may call sched_job_cancel / sched_job_stats /
 * sched_stats (never sched_job_release, sched_job_wait or sched_destroy).
 * Nothing here calls exit() or abort().
 */
#ifndef CK_SCHED_H
#define CK_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
#include "model.h"
#include "sample.h"
#include "tok/tok.h"

typedef struct sched sched;
typedef struct sched_job sched_job;

typedef struct sched_params {
    int n_ctx;              /* tokens per sequence (prompt + generated) */
    int max_seqs;           /* sequences in one step */
    int max_batch_tokens;   /* tokens in one step (decode tokens + prefill chunks) */
    int kv_pages;           /* pages in the pool */
    int kv_page_size;       /* tokens per page */
} sched_params;

typedef enum sched_finish {
    SCHED_FINISH_NONE = 0,
    SCHED_FINISH_STOP,
    SCHED_FINISH_LENGTH,
    SCHED_FINISH_CANCELLED,
    SCHED_FINISH_ERROR,
} sched_finish;

typedef enum sched_state {
    SCHED_JOB_QUEUED = 1,
    SCHED_JOB_PREFILL,
    SCHED_JOB_GENERATING,
    SCHED_JOB_FINISHED,
} sched_state;

typedef enum sched_event_type { SCHED_EV_TOKEN = 1, SCHED_EV_FINISHED = 2 } sched_event_type;

typedef struct sched_event {
    sched_event_type type;
    int32_t token;               /* TOKEN: the id; FINISHED: -1 */
    int index;                   /* TOKEN: 0 for the first generated token */
    float logprob;               /* TOKEN: log_softmax of the raw row */
    const char *text;            /* newly complete text (valid during the emit call only) */
    size_t text_len;
    const smp_logprob *top;      /* TOKEN: top-N alternatives, best first */
    size_t n_top;
    sched_finish finish;         /* FINISHED */
    ck_status status;            /* FINISHED: CK_OK or the job's error */
    const char *error;           /* FINISHED with an error: the message */
} sched_event;

/* [engine thread] Must return quickly; see the thread rules above. */
typedef void (*sched_emit_fn)(void *user_data, sched_job *job, const sched_event *ev);

/* A custom sampler (the Lua one): pick *out_token from logits[n_vocab]. st is the job's
 * smp_state (for the built-in primitives). Return CK_OK or an error (the job fails with it). */
typedef ck_status (*sched_sample_fn)(void *hook_data, smp_state *st, const float *logits, int n_vocab,
                                     const int32_t *history, size_t n_history, uint64_t step,
                                     int32_t *out_token, ck_error *err);
/* A custom stop check over the whole generated text so far; *out_stop = 1 stops the job. */
typedef ck_status (*sched_stop_fn)(void *hook_data, const char *text, size_t text_len, int n_generated,
                                   int32_t last_token, int *out_stop, ck_error *err);

typedef struct sched_job_spec {
    const int32_t *prompt;             /* copied */
    size_t n_prompt;
    int max_new_tokens;                /* clamped to the context and the pool */
    int min_new_tokens;
    const smp_params *sampling;        /* copied (smp_state_create) */
    const char *const *stop_strings;   /* copied */
    size_t n_stop_strings;
    const int32_t *stop_tokens;        /* copied */
    size_t n_stop_tokens;
    int ignore_eos;
    const char *const *banned_strings; /* copied: never in the output; a job whose text begins one
                                          rewinds to the token where it began, bans that token
                                          there and resamples (events wait meanwhile) */
    size_t n_banned_strings;
    int top_n;                         /* alternatives per token event (0..64) */
    sched_emit_fn emit;
    void *user_data;
    sched_sample_fn sample_hook;       /* NULL = smp_sample */
    sched_stop_fn stop_hook;           /* NULL = none */
    void *hook_data;                   /* owned by the job from a successful submit on */
    void (*hook_free)(void *hook_data);
} sched_job_spec;

typedef struct sched_job_stats {
    sched_state state;
    sched_finish finish;
    int n_prompt;
    int n_generated;
    double queued_ms, prefill_ms, ttft_ms, generate_ms, total_ms;
} sched_job_stats;

typedef struct sched_stats {
    int kv_pages_total, kv_pages_free, kv_page_size;
    size_t kv_bytes;
    int jobs_active, jobs_queued;
    uint64_t jobs_finished, prompt_tokens, generated_tokens, steps;
    double generate_tokens_per_s;
} sched_stats;

/* Create the KV cache and workspace for m (which must outlive the scheduler) and start the
 * engine thread. t (the tokenizer) must outlive it too. */
ck_status sched_create(const mdl_model *m, const tok_tokenizer *t, const sched_params *p, sched **out,
                       ck_error *err);
/* Cancel every job (each gets FINISHED/CANCELLED), fail pending tasks with CK_E_CANCELLED, join
 * the engine thread, free the cache. Jobs not yet released stay valid (finished). NULL ok. */
void sched_destroy(sched *s);

/* Queue a job. Checks now: prompt non-empty, ids inside the vocabulary, the prompt leaves room
 * for one token in the context (CK_E_CONTEXT_OVERFLOW) and in the pool (CK_E_OUT_OF_MEMORY),
 * sampler settings (CK_E_INVALID_ARGUMENT). On failure the hooks stay the caller's.
 * The caller holds a reference on *out until sched_job_release. [any thread] */
ck_status sched_submit(sched *s, const sched_job_spec *spec, sched_job **out, ck_error *err);
/* Ask the job to stop; the engine thread frees its pages at its next step. [any thread] */
void sched_job_cancel(sched_job *j);
/* Wait until the job's FINISHED event has been emitted; timeout_ms < 0 waits forever.
 * Returns 1 when finished, 0 on timeout. [any thread but the engine thread] */
int sched_job_wait(sched_job *j, long timeout_ms);
/* Cancel, wait until finished, drop the caller's reference. NULL ok. [not the engine thread] */
void sched_job_release(sched_job *j);
void sched_job_get_stats(sched_job *j, sched_job_stats *out);
/* The job's error message ("" if none); copies into buf. */
void sched_job_error(sched_job *j, char *buf, size_t cap);

void sched_get_stats(sched *s, sched_stats *out);

/* Run fn on the engine thread between two steps (other jobs pause meanwhile) and wait for it.
 * The function gets the model and the caller's data. Returns what fn returned, or
 * CK_E_CANCELLED when the scheduler was being destroyed. [not the engine thread] */
typedef ck_status (*sched_task_fn)(void *task_data, const mdl_model *m, ck_error *err);
ck_status sched_run_task(sched *s, sched_task_fn fn, void *task_data, ck_error *err);

/* Pages a job of n_tokens needs. */
int sched_pages_for(const sched *s, int n_tokens);

#endif
