/* test_abi_e2e.c: the real plugin through the host SDK on a tiny random-weight model (CPU). */
#include <math.h>
#include <pthread.h>

#include "abi_test.h"

#define N_CTX 256
#define PAGE 256

static abi_fixture F;

static int setup(void **state)
{
    (void)state;
    abi_fixture_open(&F, 7, N_CTX, PAGE, 8);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    abi_fixture_close(&F);
    return 0;
}

/* Run one job to the end by polling; returns the finish reason; tokens/text optional. */
static uint32_t run_job(const chaski_job_params *jp, int32_t *tokens, int cap, int *n_tokens, char *text,
                        size_t text_cap)
{
    chaski_job *job = NULL;
    chaski_status st = F.api->job_submit(F.model, jp, &job);
    if (st != CHASKI_OK) {
        char msg[1024];
        F.api->model_last_error(F.model, msg, sizeof msg);
        fail_msg("job_submit: %s", msg);
    }
    chaski_event ev;
    CHASKI_INIT(&ev);
    uint32_t finish = 0;
    int n = 0;
    size_t tl = 0;
    while ((st = F.api->job_poll(job, &ev, UINT32_MAX)) == CHASKI_OK) {
        if (ev.type == CHASKI_EVENT_TOKEN && n < cap && tokens)
            tokens[n] = ev.token;
        if (ev.type == CHASKI_EVENT_TOKEN)
            n++;
        if (text && ev.text_len && tl + ev.text_len < text_cap) {
            memcpy(text + tl, ev.text, ev.text_len);
            tl += ev.text_len;
        }
        if (ev.type == CHASKI_EVENT_FINISHED)
            finish = ev.finish_reason;
    }
    assert_int_equal(st, CHASKI_END);
    if (text)
        text[tl] = '\0';
    if (n_tokens)
        *n_tokens = n;
    F.api->job_release(job);
    return finish;
}

static void greedy_params(chaski_job_params *jp, const char *prompt, int max_new)
{
    CHASKI_INIT(jp);
    F.api->job_params_default(jp);
    jp->prompt = prompt;
    jp->prompt_len = strlen(prompt);
    jp->greedy = 1;
    jp->max_new_tokens = max_new;
    jp->ignore_eos = 1;
}

static void model_info_should_describe_the_model(void **state)
{
    (void)state;
    chaski_model_info mi;
    CHASKI_INIT(&mi);
    assert_int_equal(F.api->model_info(F.model, &mi), CHASKI_OK);
    assert_string_equal(mi.architecture, "LlamaForCausalLM");
    assert_int_equal(mi.vocab_size, 32000);
    assert_int_equal(mi.bos_id, 1);
    assert_int_equal(mi.eos_id, 2);
    assert_int_equal(mi.n_ctx, N_CTX);
    assert_int_equal(mi.n_ctx_train, 512);
    assert_int_equal(mi.n_layers, 2);
    assert_true(mi.n_params > 1000000);
}

static void tokenize_should_size_in_two_calls_and_round_trip(void **state)
{
    (void)state;
    const char *text = "Hello world, this is chaski.";
    size_t n = 0;
    assert_int_equal(F.api->tokenize(F.model, text, strlen(text), CHASKI_TOKENIZE_ADD_SPECIAL, NULL, 0, &n),
                     CHASKI_OK);
    assert_true(n > 3);
    int32_t small[2];
    size_t n2 = 0;
    assert_int_equal(F.api->tokenize(F.model, text, strlen(text), CHASKI_TOKENIZE_ADD_SPECIAL, small, 2, &n2),
                     CHASKI_E_BUFFER_TOO_SMALL);
    assert_int_equal(n2, n);
    int32_t ids[64];
    assert_int_equal(F.api->tokenize(F.model, text, strlen(text), CHASKI_TOKENIZE_ADD_SPECIAL, ids, 64, &n2),
                     CHASKI_OK);
    assert_int_equal(ids[0], 1); /* BOS */
    char out[128];
    size_t len = 0;
    assert_int_equal(F.api->detokenize(F.model, ids, n2, CHASKI_DETOKENIZE_SKIP_SPECIAL, out, sizeof out, &len),
                     CHASKI_OK);
    assert_int_equal(len, strlen(text));
    assert_string_equal(out, text);
    /* a bad id is a typed error with a message */
    int32_t bad = 99999;
    assert_int_equal(F.api->detokenize(F.model, &bad, 1, 0, out, sizeof out, &len), CHASKI_E_INVALID_ARGUMENT);
    assert_true(F.api->model_last_error(F.model, out, sizeof out) > 0);
}

/* ---- concurrency ---- */

#define N_THREADS 8
#define GEN 12
static const char *k_prompts[N_THREADS] = {"Once upon a time", "The capital of France", "def main():",
                                           "1, 2, 3, 4,",      "In the beginning",      "Dear Sir or Madam",
                                           "Lorem ipsum dolor", "The quick brown fox"};

typedef struct thread_arg {
    int index;
    int32_t tokens[GEN];
    int n;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    chaski_job_params jp;
    greedy_params(&jp, k_prompts[a->index], GEN);
    run_job(&jp, a->tokens, GEN, &a->n, NULL, 0);
    return NULL;
}

static void greedy_jobs_from_8_threads_should_match_one_at_a_time(void **state)
{
    (void)state;
    thread_arg seq[N_THREADS], par[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        seq[i].index = i;
        thread_main(&seq[i]);
        assert_int_equal(seq[i].n, GEN);
    }
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        par[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &par[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(par[i].n, GEN);
        assert_memory_equal(par[i].tokens, seq[i].tokens, sizeof seq[i].tokens);
    }
    /* and the prompts do not all give the same tokens (the comparison means something) */
    assert_memory_not_equal(seq[0].tokens, seq[1].tokens, sizeof seq[0].tokens);
}

/* ---- callbacks ---- */

typedef struct cb_state {
    pthread_mutex_t mu;
    int32_t tokens[GEN];
    int n;
    uint32_t finish;
} cb_state;

static void on_event(void *user_data, chaski_job *job, const chaski_event *ev)
{
    (void)job;
    cb_state *s = user_data;
    pthread_mutex_lock(&s->mu);
    if (ev->type == CHASKI_EVENT_TOKEN && s->n < GEN)
        s->tokens[s->n++] = ev->token;
    if (ev->type == CHASKI_EVENT_FINISHED)
        s->finish = ev->finish_reason;
    pthread_mutex_unlock(&s->mu);
}

static void callback_events_should_match_polled_events(void **state)
{
    (void)state;
    int32_t polled[GEN];
    int n = 0;
    chaski_job_params jp;
    greedy_params(&jp, k_prompts[3], GEN);
    assert_int_equal(run_job(&jp, polled, GEN, &n, NULL, 0), CHASKI_FINISH_LENGTH);
    cb_state s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    jp.on_event = on_event;
    jp.user_data = &s;
    chaski_job *job = NULL;
    assert_int_equal(F.api->job_submit(F.model, &jp, &job), CHASKI_OK);
    chaski_event ev;
    CHASKI_INIT(&ev);
    assert_int_equal(F.api->job_poll(job, &ev, 0), CHASKI_E_STATE); /* callback jobs do not poll */
    assert_int_equal(F.api->job_wait(job, UINT32_MAX), CHASKI_OK);
    F.api->job_release(job);
    assert_int_equal(s.n, GEN);
    assert_int_equal(s.finish, CHASKI_FINISH_LENGTH);
    assert_memory_equal(s.tokens, polled, sizeof polled);
}

/* ---- cancel ---- */

static void cancel_should_stop_within_one_step_and_return_the_pages(void **state)
{
    (void)state;
    chaski_model_stats ms;
    CHASKI_INIT(&ms);
    assert_int_equal(F.api->model_stats(F.model, &ms), CHASKI_OK);
    int total = ms.kv_pages_total;
    assert_int_equal(ms.kv_pages_free, total);

    chaski_job_params jp;
    greedy_params(&jp, "A long story begins here", 200);
    chaski_job *job = NULL;
    assert_int_equal(F.api->job_submit(F.model, &jp, &job), CHASKI_OK);
    chaski_event ev;
    CHASKI_INIT(&ev);
    int tokens = 0, cancelled = 0, generated_at_cancel = 0;
    uint32_t finish = 0;
    chaski_status st;
    while ((st = F.api->job_poll(job, &ev, UINT32_MAX)) == CHASKI_OK) {
        if (ev.type == CHASKI_EVENT_TOKEN)
            tokens++;
        if (ev.type == CHASKI_EVENT_FINISHED)
            finish = ev.finish_reason;
        if (tokens == 3 && !cancelled) {
            /* while it runs it holds pages for prompt + 200 tokens */
            assert_int_equal(F.api->model_stats(F.model, &ms), CHASKI_OK);
            assert_true(ms.kv_pages_free < total);
            chaski_job_stats js0;
            CHASKI_INIT(&js0);
            assert_int_equal(F.api->job_cancel(job), CHASKI_OK);
            assert_int_equal(F.api->job_stats(job, &js0), CHASKI_OK);
            generated_at_cancel = js0.n_generated_tokens;
            cancelled = 1;
        }
    }
    assert_int_equal(st, CHASKI_END);
    if (finish != CHASKI_FINISH_CANCELLED) {
        char msg[1024];
        F.api->job_last_error(job, msg, sizeof msg);
        fail_msg("finish %u, expected cancelled: %s", finish, msg);
    }
    chaski_job_stats js;
    CHASKI_INIT(&js);
    assert_int_equal(F.api->job_stats(job, &js), CHASKI_OK);
    /* the engine stops within one step of the cancel */
    assert_true(js.n_generated_tokens <= generated_at_cancel + 1);
    assert_int_equal(tokens, js.n_generated_tokens);
    assert_true(tokens < 200);
    assert_int_equal(js.state, CHASKI_JOB_FINISHED);
    assert_int_equal(js.finish_reason, CHASKI_FINISH_CANCELLED);
    F.api->job_release(job);
    assert_int_equal(F.api->model_stats(F.model, &ms), CHASKI_OK);
    assert_int_equal(ms.kv_pages_free, total);
    assert_int_equal(ms.jobs_active, 0);
}

/* ---- bad requests ---- */

static void prompt_longer_than_context_should_fail_typed_and_runtime_keeps_working(void **state)
{
    (void)state;
    int32_t ids[N_CTX + 10];
    for (int i = 0; i < N_CTX + 10; i++)
        ids[i] = 100 + i;
    chaski_job_params jp;
    greedy_params(&jp, "", 4);
    jp.prompt_tokens = ids;
    jp.n_prompt_tokens = N_CTX + 10;
    chaski_job *job = (chaski_job *)&ids; /* must be reset to NULL */
    assert_int_equal(F.api->job_submit(F.model, &jp, &job), CHASKI_E_CONTEXT_OVERFLOW);
    assert_null(job);
    char msg[1024];
    assert_true(F.api->model_last_error(F.model, msg, sizeof msg) > 0);
    assert_non_null(strstr(msg, "context"));
    assert_string_equal(F.api->status_name(CHASKI_E_CONTEXT_OVERFLOW), "context-overflow");
    /* an id outside the vocabulary */
    ids[0] = 40000;
    jp.n_prompt_tokens = 4;
    assert_int_equal(F.api->job_submit(F.model, &jp, &job), CHASKI_E_INVALID_ARGUMENT);
    /* and a good request still runs */
    greedy_params(&jp, "still alive", 4);
    int n = 0;
    assert_int_equal(run_job(&jp, NULL, 0, &n, NULL, 0), CHASKI_FINISH_LENGTH);
    assert_int_equal(n, 4);
}

/* ---- versioned structs ---- */

static void older_smaller_structs_should_be_read_and_written_only_as_far_as_they_go(void **state)
{
    (void)state;
    /* a host from before top_n_logprobs/on_event existed: the plugin uses its defaults for the rest */
    struct {
        chaski_job_params p;
        unsigned char poison[64];
    } old;
    memset(&old, 0xAB, sizeof old);
    CHASKI_INIT(&old.p);
    F.api->job_params_default(&old.p);
    old.p.prompt = "Older host";
    old.p.prompt_len = strlen(old.p.prompt);
    old.p.greedy = 1;
    old.p.max_new_tokens = 5;
    old.p.struct_size = (uint32_t)offsetof(chaski_job_params, top_n_logprobs);
    memset(&old.p.top_n_logprobs, 0xAB, sizeof old.p - offsetof(chaski_job_params, top_n_logprobs));
    int n = 0;
    uint32_t fin = run_job(&old.p, NULL, 0, &n, NULL, 0);
    assert_true(fin == CHASKI_FINISH_LENGTH || fin == CHASKI_FINISH_STOP);
    assert_true(n >= 1 && n <= 5);

    /* an out struct smaller than the plugin's: bytes past its size stay untouched */
    struct {
        chaski_model_info i;
    } small;
    memset(&small, 0xCD, sizeof small);
    small.i.struct_size = (uint32_t)offsetof(chaski_model_info, n_params);
    assert_int_equal(F.api->model_info(F.model, &small.i), CHASKI_OK);
    assert_string_equal(small.i.architecture, "LlamaForCausalLM");
    const unsigned char *tail = (const unsigned char *)&small.i + offsetof(chaski_model_info, n_params);
    for (size_t k = 0; k < sizeof small.i - offsetof(chaski_model_info, n_params); k++)
        assert_int_equal(tail[k], 0xCD);
    assert_int_equal(small.i.struct_size, offsetof(chaski_model_info, n_params));

    /* a zero struct_size is refused, not guessed */
    chaski_model_info zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(F.api->model_info(F.model, &zero), CHASKI_E_INVALID_ARGUMENT);
}

/* ---- stop strings and scoring ---- */

static void stop_string_should_end_the_text_before_it(void **state)
{
    (void)state;
    chaski_job_params jp;
    greedy_params(&jp, "The quick brown fox", 24);
    char text[4096];
    int n = 0;
    run_job(&jp, NULL, 0, &n, text, sizeof text);
    size_t len = strlen(text);
    if (len < 8)
        skip();
    /* stop at a 3-byte piece from the middle of what greedy produced (ASCII only, to stay whole) */
    size_t at = len / 2;
    while (at + 3 < len && ((unsigned char)text[at] >= 0x80 || (unsigned char)text[at + 1] >= 0x80 ||
                            (unsigned char)text[at + 2] >= 0x80))
        at++;
    if (at + 3 >= len)
        skip();
    char stop[4] = {text[at], text[at + 1], text[at + 2], 0};
    char *first = strstr(text, stop);
    size_t expect = (size_t)(first - text);
    const char *stops[1] = {stop};
    jp.stop_strings = stops;
    jp.n_stop_strings = 1;
    char text2[4096];
    uint32_t fin = run_job(&jp, NULL, 0, &n, text2, sizeof text2);
    assert_int_equal(fin, CHASKI_FINISH_STOP);
    assert_int_equal(strlen(text2), expect);
    assert_memory_equal(text2, text, expect);
}

static void score_should_give_a_finite_perplexity_over_whole_windows(void **state)
{
    (void)state;
    int32_t ids[100];
    for (int i = 0; i < 100; i++)
        ids[i] = 300 + (i * 37) % 5000;
    chaski_score_params sp;
    CHASKI_INIT(&sp);
    F.api->score_params_default(&sp);
    sp.window = 32;
    chaski_score_result r;
    CHASKI_INIT(&r);
    assert_int_equal(F.api->score(F.model, ids, 100, &sp, &r), CHASKI_OK);
    assert_int_equal(r.n_windows, 3);
    assert_int_equal(r.n_scored, 96); /* BOS + 32 tokens: 32 scored per window */
    assert_true(isfinite(r.perplexity) && r.perplexity > 1.0);
    assert_true(fabs(exp(r.total_nll / (double)r.n_scored) - r.perplexity) < 1e-6 * r.perplexity);
    sp.window = N_CTX; /* + BOS does not fit */
    assert_int_equal(F.api->score(F.model, ids, 100, &sp, &r), CHASKI_E_CONTEXT_OVERFLOW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_info_should_describe_the_model),
        cmocka_unit_test(tokenize_should_size_in_two_calls_and_round_trip),
        cmocka_unit_test(greedy_jobs_from_8_threads_should_match_one_at_a_time),
        cmocka_unit_test(callback_events_should_match_polled_events),
        cmocka_unit_test(cancel_should_stop_within_one_step_and_return_the_pages),
        cmocka_unit_test(prompt_longer_than_context_should_fail_typed_and_runtime_keeps_working),
        cmocka_unit_test(older_smaller_structs_should_be_read_and_written_only_as_far_as_they_go),
        cmocka_unit_test(stop_string_should_end_the_text_before_it),
        cmocka_unit_test(score_should_give_a_finite_perplexity_over_whole_windows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
