/* test_banned_strings.c: banned strings (rewind, ban the first token, resample) and
 * script isolation between concurrent jobs, through the real plugin on a tiny
 * random-weight model (CPU).
 *
 * A greedy job is run once; a piece of its text is then banned and the same job run
 * again: the banned text must never be streamed, the job must still produce its
 * max_new_tokens, and up to where the banned text began it must match the first run
 * token for token (the rewind goes back only to the token where the banned string
 * began). */
#include "abi_test.h"

#define N_CTX 256
#define PAGE 256
#define MAX_NEW 48

static abi_fixture F;

static int setup(void **state)
{
    (void)state;
    abi_fixture_open(&F, 11, N_CTX, PAGE, 4);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    abi_fixture_close(&F);
    return 0;
}

typedef struct run_out {
    int32_t tokens[MAX_NEW + 8];
    int n_tokens;
    int indices_in_order;  /* every TOKEN event's index was the next one */
    size_t tok_off[MAX_NEW + 8]; /* where each token's text begins in text */
    char text[8192];       /* every event's text, concatenated (what a client saw) */
    size_t text_len;
    uint32_t finish;
    chaski_status status;
    char error[1024];
} run_out;

static chaski_job *submit(const chaski_job_params *jp)
{
    chaski_job *job = NULL;
    if (F.api->job_submit(F.model, jp, &job) != CHASKI_OK) {
        char msg[1024];
        F.api->model_last_error(F.model, msg, sizeof msg);
        fail_msg("job_submit: %s", msg);
    }
    return job;
}

static void collect(chaski_job *job, run_out *o)
{
    memset(o, 0, sizeof *o);
    o->indices_in_order = 1;
    chaski_event ev;
    CHASKI_INIT(&ev);
    chaski_status st;
    while ((st = F.api->job_poll(job, &ev, UINT32_MAX)) == CHASKI_OK) {
        if (ev.type == CHASKI_EVENT_TOKEN) {
            if (ev.index != o->n_tokens)
                o->indices_in_order = 0;
            if (o->n_tokens < (int)(sizeof o->tokens / sizeof o->tokens[0])) {
                o->tokens[o->n_tokens] = ev.token;
                o->tok_off[o->n_tokens] = o->text_len;
            }
            o->n_tokens++;
        }
        if (ev.text_len && o->text_len + ev.text_len < sizeof o->text) {
            memcpy(o->text + o->text_len, ev.text, ev.text_len);
            o->text_len += ev.text_len;
        }
        if (ev.type == CHASKI_EVENT_FINISHED) {
            o->finish = ev.finish_reason;
            o->status = ev.status;
        }
    }
    assert_int_equal(st, CHASKI_END);
    o->text[o->text_len] = '\0';
    F.api->job_last_error(job, o->error, sizeof o->error);
    F.api->job_release(job);
}

static void run(const chaski_job_params *jp, run_out *o)
{
    collect(submit(jp), o);
}

static void greedy_params(chaski_job_params *jp, const char *prompt)
{
    CHASKI_INIT(jp);
    F.api->job_params_default(jp);
    jp->prompt = prompt;
    jp->prompt_len = strlen(prompt);
    jp->greedy = 1;
    jp->max_new_tokens = MAX_NEW;
    jp->ignore_eos = 1;
}

static int is_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80 || (unsigned char)p[i] < 0x20)
            return 0;
    return 1;
}

/* A banned string across the boundary of two tokens from around token MAX_NEW * num / den
 * of o: the last `tail` bytes of one token's text and the first byte of the next. */
static int pick_ban(const run_out *o, size_t tail, int num, int den, char *ban)
{
    for (int t = MAX_NEW * num / den; t + 2 < o->n_tokens; t++) {
        size_t a = o->tok_off[t], b = o->tok_off[t + 1], c = o->tok_off[t + 2];
        if (b - a >= tail && c > b && is_ascii(o->text + b - tail, tail + 1)) {
            memcpy(ban, o->text + b - tail, tail + 1);
            ban[tail + 1] = '\0';
            return 1;
        }
    }
    return 0;
}

/* The token of o whose text holds byte pos. */
static int token_at(const run_out *o, size_t pos)
{
    int k = 0;
    while (k + 1 < o->n_tokens && o->tok_off[k + 1] <= pos)
        k++;
    return k;
}

/* cut: the second run ends with the token that completes the banned string. */
static void check_banned_run(const char *prompt, int top_n, size_t tail, int num, int den, int cut)
{
    chaski_job_params jp;
    greedy_params(&jp, prompt);
    jp.top_n_logprobs = top_n;
    static run_out first, second;
    run(&jp, &first);
    assert_int_equal(first.n_tokens, MAX_NEW);
    char ban[32];
    if (!pick_ban(&first, tail, num, den, ban))
        fail_msg("no ASCII token boundary to ban in \"%s\"", first.text);
    size_t occ = (size_t)(strstr(first.text, ban) - first.text);
    int k = token_at(&first, occ); /* where the banned string begins */

    const char *bans[1] = {ban};
    jp.banned_strings = bans;
    jp.n_banned_strings = 1;
    int max_new = MAX_NEW;
    if (cut)
        jp.max_new_tokens = max_new = token_at(&first, occ + strlen(ban) - 1) + 1;
    run(&jp, &second);
    print_message("banned \"%s\": first at byte %zu (token %d) of \"%.60s...\"; now \"%.60s...\"\n", ban, occ,
                  k, first.text, second.text);
    assert_int_equal(second.status, CHASKI_OK);
    assert_int_equal(second.finish, CHASKI_FINISH_LENGTH);
    assert_int_equal(second.n_tokens, max_new);
    assert_true(second.indices_in_order);
    assert_null(strstr(second.text, ban));
    /* the first run's tokens up to where the banned string began, another token there */
    assert_memory_equal(second.tokens, first.tokens, (size_t)k * sizeof first.tokens[0]);
    assert_true(k < max_new);
    assert_int_not_equal(second.tokens[k], first.tokens[k]);
    assert_memory_equal(second.text, first.text, first.tok_off[k]);
}

static void banned_string_should_never_be_streamed_and_the_job_should_reach_max_tokens(void **state)
{
    (void)state;
    check_banned_run("def main():", 0, 3, 1, 2, 0);
}

static void banned_string_early_in_the_output_should_rewind_to_the_first_token(void **state)
{
    (void)state;
    check_banned_run("The capital of France", 3, 1, 0, 1, 0);
}

static void banned_string_completed_by_the_last_token_should_still_rewind(void **state)
{
    (void)state;
    check_banned_run("def main():", 2, 2, 0, 1, 1);
}

static void several_banned_strings_should_all_stay_out_of_the_text(void **state)
{
    (void)state;
    chaski_job_params jp;
    greedy_params(&jp, "The capital of France");
    static run_out first, second;
    run(&jp, &first);
    /* ban a piece, see what replaced it, ban a piece of that too, and so on */
    char bans_buf[4][8];
    const char *bans[4];
    size_t n_bans = 0;
    const run_out *cur = &first;
    for (int round = 0; round < 4; round++) {
        if (!pick_ban(cur, 1, round + 1, 5, bans_buf[n_bans]))
            break;
        bans[n_bans] = bans_buf[n_bans];
        n_bans++;
        jp.banned_strings = bans;
        jp.n_banned_strings = n_bans;
        run(&jp, &second);
        if (second.status != CHASKI_OK) /* the model may be left with nothing allowed */
            assert_non_null(strstr(second.error, "banned strings"));
        else
            assert_int_equal(second.n_tokens, MAX_NEW);
        for (size_t i = 0; i < n_bans; i++)
            assert_null(strstr(second.text, bans[i]));
        cur = &second;
    }
    assert_true(n_bans >= 2);
}

/* ---- a failing script in one job leaves a concurrent job's tokens as they are alone ---- */

static const char *k_bad_scripts[] = {
    "return { sample = function(ctx) while true do end end }",
    "local function f(n) return f(n + 1) + 1 end return { sample = function(ctx) return f(1) end }",
    "return { sample = function(ctx) local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end end }",
    "return { sample = function(ctx) local s = 'x' while true do s = s .. s end end }",
    "return { sample = function(ctx) error('boom') end }",
    "return { sample = function(ctx) return 0/0 end }",
    "return { sample = function(ctx) return -5 end }",
};

static void failing_script_job_should_not_change_a_concurrent_jobs_tokens(void **state)
{
    (void)state;
    chaski_job_params good;
    greedy_params(&good, "The capital of France");
    good.max_new_tokens = 24;
    good.ignore_eos = 1;
    good.temperature = 0.9f; /* a seeded draw, not greedy: the sampler state matters too */
    good.greedy = 0;
    good.seed = 1234;
    static run_out alone, mixed, bad;
    run(&good, &alone);
    assert_int_equal(alone.n_tokens, 24);
    for (size_t i = 0; i < sizeof k_bad_scripts / sizeof k_bad_scripts[0]; i++) {
        chaski_job_params bp;
        greedy_params(&bp, "Once upon a time");
        bp.greedy = 0;
        bp.max_new_tokens = 24;
        bp.sampler_script = k_bad_scripts[i];
        bp.sampler_script_len = strlen(k_bad_scripts[i]);
        bp.sampler_script_name = "bad.lua";
        chaski_job *b = submit(&bp), *g = submit(&good);
        collect(g, &mixed);
        collect(b, &bad);
        print_message("bad script %zu: %s\n", i, bad.error);
        assert_int_equal(bad.finish, CHASKI_FINISH_ERROR);
        assert_non_null(strstr(bad.error, "bad.lua"));
        assert_int_equal(mixed.status, CHASKI_OK);
        assert_int_equal(mixed.n_tokens, alone.n_tokens);
        assert_memory_equal(mixed.tokens, alone.tokens, sizeof alone.tokens[0] * (size_t)alone.n_tokens);
        assert_string_equal(mixed.text, alone.text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(banned_string_should_never_be_streamed_and_the_job_should_reach_max_tokens),
        cmocka_unit_test(banned_string_early_in_the_output_should_rewind_to_the_first_token),
        cmocka_unit_test(banned_string_completed_by_the_last_token_should_still_rewind),
        cmocka_unit_test(several_banned_strings_should_all_stay_out_of_the_text),
        cmocka_unit_test(failing_script_job_should_not_change_a_concurrent_jobs_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
