/* test_script.c: the sandbox, the limits, errors, the sampler ctx (against the C
 * chain), stop scripts, params, the built-in catalogue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "script.h"

#define NV 5000

static float logits[NV];

static void fill_logits(uint64_t seed)
{
    uint64_t x = seed * 2654435761ULL + 1;
    for (size_t i = 0; i < NV; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        logits[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 12.0 - 6.0);
    }
}

static scr_state *load(scr_kind kind, const char *name, const char *src, const scr_limits *lim)
{
    scr_state *s = NULL;
    ck_error err = {0};
    ck_status st = scr_create(kind, name, src, strlen(src), lim, &s, &err);
    if (st != CK_OK)
        fail_msg("load %s: %s", name, err.msg);
    return s;
}

static smp_state *sampler(const smp_params *p)
{
    smp_state *s = NULL;
    ck_error err = {0};
    assert_int_equal(smp_state_create(p, NV, &s, &err), CK_OK);
    return s;
}

/* Run one sample step of a script expected to fail; return the message. */
static ck_status sample_err(scr_state *s, ck_error *err)
{
    smp_params p;
    smp_params_default(&p);
    smp_state *smp = sampler(&p);
    int32_t tok = -1;
    ck_status st = scr_sample(s, smp, logits, NULL, 0, 0, &tok, err);
    smp_state_destroy(smp);
    return st;
}

/* ---- sandbox --------------------------------------------------------------------- */

static void sandbox_should_hide_io_os_require_debug_dofile_loadfile_and_dump(void **st)
{
    (void)st;
    const char *src =
        "return { sample = function(ctx)\n"
        "  local hidden = { io = io, os = os, require = require, debug = debug, package = package,\n"
        "    dofile = dofile, loadfile = loadfile, print = print, collectgarbage = collectgarbage,\n"
        "    dump = string.dump, sdump = ('').dump, loadstring = loadstring }\n"
        "  for k, v in pairs(hidden) do error('visible: ' .. k) end\n"
        "  assert(string and table and math and utf8 and coroutine and pcall)\n"
        "  return 0 end }";
    scr_state *s = load(SCR_SAMPLER, "sandbox", src, NULL);
    ck_error err = {0};
    if (sample_err(s, &err) != CK_OK)
        fail_msg("%s", err.msg);
    scr_destroy(s);
}

static void sandbox_should_refuse_binary_chunks(void **st)
{
    (void)st;
    /* a binary chunk given to scr_create */
    const char bin[] = "\x1bLua\x54\x00\x19\x93\r\n\x1a\n";
    scr_state *s = NULL;
    ck_error err = {0};
    assert_int_equal(scr_create(SCR_SAMPLER, "bin", bin, sizeof bin - 1, NULL, &s, &err), CK_E_SCRIPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "binary"));
    /* and through load() inside a script, whatever the mode asked */
    const char *src =
        "return { sample = function(ctx)\n"
        "  local f, e = load('\\27Lua', 'x', 'b'); assert(f == nil, 'mode b loaded')\n"
        "  f, e = load('\\27Lua', 'x', 'bt'); assert(f == nil, 'mode bt loaded')\n"
        "  f, e = load('\\27LuaT\\0'); assert(f == nil and e:find('binary'), tostring(e))\n"
        "  assert(load('return 7')() == 7)\n"
        "  return 0 end }";
    s = load(SCR_SAMPLER, "load", src, NULL);
    if (sample_err(s, &err) != CK_OK)
        fail_msg("%s", err.msg);
    scr_destroy(s);
}

static void infinite_loop_should_stop_at_the_instruction_budget(void **st)
{
    (void)st;
    scr_limits lim;
    scr_limits_default(&lim);
    lim.instructions = 2000000;
    lim.deadline_ms = 60000;
    scr_state *s = load(SCR_SAMPLER, "loop", "return { sample = function(ctx) while true do end end }", &lim);
    ck_error err = {0};
    int64_t t0 = scr_now_ns();
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    int64_t t1 = scr_now_ns();
    if (!strstr(err.msg, "instruction budget exceeded") || !strstr(err.msg, "loop.lua:1:"))
        fail_msg("%s", err.msg);
    print_message("infinite loop stopped by a budget of 2M instructions after %.2f ms\n",
                  (double)(t1 - t0) / 1e6);
    /* the state survives: a later call fails the same way, not worse */
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    scr_destroy(s);
}

static void infinite_loop_inside_pcall_should_still_stop(void **st)
{
    (void)st;
    scr_limits lim;
    scr_limits_default(&lim);
    lim.instructions = 1000000;
    const char *src =
        "return { sample = function(ctx)\n"
        "  while true do pcall(function() while true do end end) end\n"
        "end }";
    scr_state *s = load(SCR_SAMPLER, "pcall_loop", src, &lim);
    ck_error err = {0};
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    assert_non_null(strstr(err.msg, "instruction budget exceeded"));
    scr_destroy(s);
    /* and inside a coroutine */
    const char *co =
        "return { sample = function(ctx)\n"
        "  local c = coroutine.wrap(function() while true do end end)\n"
        "  while true do pcall(c) end\n"
        "end }";
    s = load(SCR_SAMPLER, "co_loop", co, &lim);
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    scr_destroy(s);
}

static void infinite_loop_should_stop_at_the_deadline(void **st)
{
    (void)st;
    scr_limits lim;
    scr_limits_default(&lim);
    lim.instructions = UINT64_MAX / 2;
    lim.deadline_ms = 50;
    scr_state *s = load(SCR_SAMPLER, "slow", "return { sample = function(ctx) while true do end end }", &lim);
    ck_error err = {0};
    int64_t t0 = scr_now_ns();
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    double ms = (double)(scr_now_ns() - t0) / 1e6;
    assert_non_null(strstr(err.msg, "deadline exceeded (50 ms)"));
    print_message("infinite loop stopped by a 50 ms deadline after %.2f ms\n", ms);
    assert_true(ms >= 50.0);
    scr_destroy(s);
}

static void memory_bomb_should_stop_at_the_cap_and_memory_should_come_back(void **st)
{
    (void)st;
    scr_limits lim;
    scr_limits_default(&lim);
    lim.memory_bytes = 4u << 20;
    const char *bombs[] = {
        "return { sample = function(ctx) local s = 'x' while true do s = s .. s end end }",
        "return { sample = function(ctx) return #string.rep('x', 1 << 30) end }",
        "return { sample = function(ctx) local t = {} for i = 1, 1e9 do t[i] = {i} end end }",
        "local function f(n) return f(n + 1) + 1 end\n"
        "return { sample = function(ctx) return f(1) end }",
    };
    for (size_t i = 0; i < sizeof bombs / sizeof *bombs; i++) {
        scr_state *s = load(SCR_SAMPLER, "bomb", bombs[i], &lim);
        size_t before = scr_memory_used(s);
        ck_error err = {0};
        assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
        assert_true(strstr(err.msg, "memory") || strstr(err.msg, "stack overflow"));
        assert_true(scr_memory_used(s) <= lim.memory_bytes);
        if (scr_memory_used(s) >= before + (256u << 10)) /* collected after the failure */
            fail_msg("bomb %zu: %zu bytes before, %zu after", i, before, scr_memory_used(s));
        scr_destroy(s);
    }
}

static void script_error_should_name_the_script_line_and_traceback(void **st)
{
    (void)st;
    const char *src =
        "local function inner(x)\n"
        "  return x.field.missing\n"   /* line 2 */
        "end\n"
        "return { sample = function(ctx)\n"
        "  local v = inner({})\n"
        "  return v\n"
        "end }";
    scr_state *s = load(SCR_SAMPLER, "samplers/broken", src, NULL);
    ck_error err = {0};
    assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
    assert_non_null(strstr(err.msg, "sampler 'samplers/broken'"));
    assert_non_null(strstr(err.msg, "samplers/broken.lua:2:"));
    assert_non_null(strstr(err.msg, "stack traceback"));
    assert_non_null(strstr(err.msg, "inner"));
    scr_destroy(s);
    /* a syntax error names the line too */
    s = NULL;
    assert_int_equal(scr_create(SCR_SAMPLER, "syn", "return {\n sample = function( end }", 35, NULL, &s, &err),
                     CK_E_SCRIPT);
    assert_non_null(strstr(err.msg, "syn.lua:2:"));
    /* a chunk without sample() */
    assert_int_equal(scr_create(SCR_SAMPLER, "nosample", "return {}", 9, NULL, &s, &err), CK_E_SCRIPT);
    assert_non_null(strstr(err.msg, "sample"));
}

static void bad_results_should_fail_with_a_clear_message(void **st)
{
    (void)st;
    const struct { const char *src, *want; } cases[] = {
        {"return { sample = function(ctx) return ctx.n_vocab end }", "outside the vocabulary"},
        {"return { sample = function(ctx) return -1 end }", "outside the vocabulary"},
        {"return { sample = function(ctx) return 0/0 end }", "NaN"},
        {"return { sample = function(ctx) return 1.5 end }", "non-integer"},
        {"return { sample = function(ctx) return 'x' end }", "string"},
        {"return { sample = function(ctx) return nil end }", "nil"},
        {"return { sample = function(ctx) ctx:set_logit(0, 0/0) return 0 end }", "NaN"},
        {"return { sample = function(ctx) ctx:set_logit(ctx.n_vocab, 1) return 0 end }", "outside"},
        {"return { sample = function(ctx) ctx:ban({-3}) return 0 end }", "token id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        scr_state *s = load(SCR_SAMPLER, "bad", cases[i].src, NULL);
        ck_error err = {0};
        assert_int_equal(sample_err(s, &err), CK_E_SCRIPT);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
        scr_destroy(s);
    }
}

static void ctx_methods_outside_sample_should_fail(void **st)
{
    (void)st;
    const char *src = "local saved\n"
                      "return { sample = function(ctx) if saved then return saved:greedy() end saved = ctx return 0 end }";
    /* ctx is the same object each step, but its sampler binding only lives during the call */
    scr_state *s = load(SCR_SAMPLER, "saved", src, NULL);
    ck_error err = {0};
    assert_int_equal(sample_err(s, &err), CK_OK);
    assert_int_equal(sample_err(s, &err), CK_OK);
    scr_destroy(s);
    const char *chunk = "local ok, e = pcall(function() end)\n"
                        "return { sample = function(ctx) return 0 end }";
    s = load(SCR_SAMPLER, "ok", chunk, NULL);
    scr_destroy(s);
}

/* ---- the sampler ctx against the C chain ---------------------------------------------- */

static void lua_default_chain_should_pick_the_same_tokens_as_the_c_chain(void **st)
{
    (void)st;
    smp_params p;
    smp_params_default(&p);
    p.seed = 2024;
    p.temperature = 0.7f;
    p.top_k = 200;
    p.top_p = 0.9f;
    p.min_p = 0.02f;
    p.repetition_penalty = 1.1f;
    p.frequency_penalty = 0.05f;
    p.dry_multiplier = 0.8f;
    p.xtc_probability = 0.3f;
    int32_t hist[64];
    for (int i = 0; i < 64; i++) hist[i] = (i * 37) % 50;
    char *text = NULL;
    size_t len = 0;
    ck_error err = {0};
    assert_int_equal(scr_script_text(NULL, "samplers/default", &text, &len, &err), CK_OK);
    scr_state *s = load(SCR_SAMPLER, "samplers/default", text, NULL);
    free(text);
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) p.mirostat = 2;
        if (variant == 2) { p.mirostat = 0; p.temperature = 0.0f; }
        smp_state *a = sampler(&p), *b = sampler(&p);
        for (uint64_t step = 0; step < 40; step++) {
            fill_logits(step);
            int32_t ta, tb;
            assert_int_equal(smp_sample(a, logits, hist, 64, step, &ta, &err), CK_OK);
            if (scr_sample(s, b, logits, hist, 64, step, &tb, &err) != CK_OK)
                fail_msg("%s", err.msg);
            assert_int_equal(ta, tb);
        }
        assert_float_equal(smp_state_mirostat_mu(a), smp_state_mirostat_mu(b), 0);
        smp_state_destroy(a);
        smp_state_destroy(b);
    }
    scr_destroy(s);
}

static void lua_primitives_should_equal_the_same_c_calls(void **st)
{
    (void)st;
    const char *src =
        "return { sample = function(ctx)\n"
        "  ctx:penalties(1.3, 0.1, 0.2, 32, 0.01)\n"
        "  ctx:top_k(500) ctx:smoothing(0.2, 1.5) ctx:top_n_sigma(2.5) ctx:typical(0.95)\n"
        "  ctx:tfs(0.97) ctx:top_a(0.01) ctx:min_p(0.01) ctx:dynatemp(1.0, 0.3, 1.2)\n"
        "  ctx:top_p(0.95)\n"
        "  return ctx:sample(0.2)\n"
        "end }";
    scr_state *s = load(SCR_SAMPLER, "prims", src, NULL);
    smp_params p;
    smp_params_default(&p);
    p.seed = 77;
    smp_state *a = sampler(&p), *b = sampler(&p);
    int32_t hist[40];
    for (int i = 0; i < 40; i++) hist[i] = i % 13;
    ck_error err = {0};
    for (uint64_t step = 0; step < 30; step++) {
        fill_logits(100 + step);
        assert_int_equal(smp_begin(a, logits, hist, 40, step, &err), CK_OK);
        smp_penalties(a, 1.3f, 0.1f, 0.2f, 32, 0.01f);
        smp_top_k(a, 500); smp_smoothing(a, 0.2f, 1.5f); smp_top_n_sigma(a, 2.5f); smp_typical(a, 0.95f);
        smp_tfs(a, 0.97f); smp_top_a(a, 0.01f); smp_min_p(a, 0.01f); smp_dynatemp(a, 1.0f, 0.3f, 1.2f);
        smp_top_p(a, 0.95f);
        int32_t ta = smp_draw(a, 0.2f), tb;
        if (scr_sample(s, b, logits, hist, 40, step, &tb, &err) != CK_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(ta, tb);
    }
    smp_state_destroy(a);
    smp_state_destroy(b);
    scr_destroy(s);
}

static void candidates_should_be_sorted_by_logit_with_ids_and_history_visible(void **st)
{
    (void)st;
    const char *src =
        "return { sample = function(ctx)\n"
        "  local c = ctx:candidates(10)\n"
        "  assert(#c == 10)\n"
        "  for i = 2, #c do assert(c[i - 1].logit >= c[i].logit) end\n"
        "  assert(#ctx.history == 3 and ctx.history[1] == 7 and ctx.history[3] == 9)\n"
        "  assert(ctx.history[4] == nil and ctx.step == 5)\n"
        "  assert(ctx.params.k == 3 and ctx.params.name == 'x' and ctx.params.list[2] == 20)\n"
        "  ctx:set_logit(c[10].id, c[1].logit + 100)\n"
        "  assert(ctx:candidates(1)[1].id == c[10].id)\n"
        "  return ctx:greedy()\n"
        "end }";
    scr_state *s = load(SCR_SAMPLER, "cands", src, NULL);
    ck_error err = {0};
    const char *json = "{\"k\": 3, \"name\": \"x\", \"list\": [10, 20]}";
    assert_int_equal(scr_set_params_json(s, json, strlen(json), &err), CK_OK);
    assert_int_equal(scr_set_params_json(s, "[1]", 3, &err), CK_E_INVALID_ARGUMENT);
    assert_int_equal(scr_set_params_json(s, "{bad", 4, &err), CK_E_INVALID_ARGUMENT);
    smp_params p;
    smp_params_default(&p);
    smp_state *smp = sampler(&p);
    fill_logits(5);
    int32_t hist[3] = {7, 8, 9}, tok = -1;
    if (scr_sample(s, smp, logits, hist, 3, 5, &tok, &err) != CK_OK)
        fail_msg("%s", err.msg);
    /* the 10th best token, found independently */
    float sorted[NV];
    memcpy(sorted, logits, sizeof sorted);
    for (int i = 0; i < 10; i++)
        for (int j = i + 1; j < NV; j++)
            if (sorted[j] > sorted[i]) { float t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
    assert_float_equal(logits[tok], sorted[9], 0);
    smp_state_destroy(smp);
    scr_destroy(s);
}

static void pure_lua_top_k_should_draw_reproducibly_from_the_k_best(void **st)
{
    (void)st;
    char *text;
    size_t len;
    ck_error err = {0};
    assert_int_equal(scr_script_text(NULL, "samplers/top_k_lua", &text, &len, &err), CK_OK);
    scr_state *s = load(SCR_SAMPLER, "samplers/top_k_lua", text, NULL);
    scr_state *s2 = load(SCR_SAMPLER, "samplers/top_k_lua", text, NULL);
    free(text);
    assert_int_equal(scr_set_param_number(s, "k", 5, &err), CK_OK);
    assert_int_equal(scr_set_param_number(s2, "k", 5, &err), CK_OK);
    smp_params p;
    smp_params_default(&p);
    p.seed = 3;
    smp_state *smp = sampler(&p);
    fill_logits(9);
    float sorted[NV];
    memcpy(sorted, logits, sizeof sorted);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < NV; j++)
            if (sorted[j] > sorted[i]) { float t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
    for (uint64_t step = 0; step < 50; step++) {
        int32_t t1, t2;
        assert_int_equal(scr_sample(s, smp, logits, NULL, 0, step, &t1, &err), CK_OK);
        assert_int_equal(scr_sample(s2, smp, logits, NULL, 0, step, &t2, &err), CK_OK);
        assert_int_equal(t1, t2);
        assert_true(logits[t1] >= sorted[4]);
    }
    smp_state_destroy(smp);
    scr_destroy(s);
    scr_destroy(s2);
}

static void a_failing_job_should_not_change_another_jobs_tokens(void **st)
{
    (void)st;
    char *text;
    size_t len;
    ck_error err = {0};
    assert_int_equal(scr_script_text(NULL, "samplers/default", &text, &len, &err), CK_OK);
    smp_params p;
    smp_params_default(&p);
    p.seed = 11;
    p.top_p = 0.8f;
    int32_t alone[20], mixed[20];
    for (int run = 0; run < 2; run++) {
        scr_state *good = load(SCR_SAMPLER, "samplers/default", text, NULL);
        scr_state *bad = load(SCR_SAMPLER, "bomb",
                              "G = 0 return { sample = function(ctx) G = G + 1 "
                              "local s = 'x' while true do s = s .. s end end }", NULL);
        smp_state *smp = sampler(&p), *smp_bad = sampler(&p);
        for (uint64_t step = 0; step < 20; step++) {
            fill_logits(step);
            if (run == 1) {
                int32_t t;
                assert_int_equal(scr_sample(bad, smp_bad, logits, NULL, 0, step, &t, &err), CK_E_SCRIPT);
            }
            assert_int_equal(scr_sample(good, smp, logits, NULL, 0, step, run ? &mixed[step] : &alone[step], &err),
                             CK_OK);
        }
        smp_state_destroy(smp);
        smp_state_destroy(smp_bad);
        scr_destroy(good);
        scr_destroy(bad);
    }
    assert_memory_equal(alone, mixed, sizeof alone);
    free(text);
}

/* ---- stop scripts ----------------------------------------------------------------- */

static void stop_script_should_return_its_reason(void **st)
{
    (void)st;
    const char *src =
        "return { check = function(ctx)\n"
        "  if ctx.text:find('END', 1, true) then return 'saw END at step ' .. ctx.step end\n"
        "  if ctx.token == 42 then return 'token 42' end\n"
        "end }";
    scr_state *s = load(SCR_STOP, "stops/test", src, NULL);
    ck_error err = {0};
    int stop = -1;
    char reason[64];
    assert_int_equal(scr_stop_check(s, "abc", 3, 1, 1, &stop, reason, sizeof reason, &err), CK_OK);
    assert_int_equal(stop, 0);
    assert_int_equal(scr_stop_check(s, "abc END", 7, 1, 9, &stop, reason, sizeof reason, &err), CK_OK);
    assert_int_equal(stop, 1);
    assert_string_equal(reason, "saw END at step 9");
    assert_int_equal(scr_stop_check(s, "x", 1, 42, 2, &stop, reason, 6, &err), CK_OK);
    assert_string_equal(reason, "token");
    scr_destroy(s);
    s = load(SCR_STOP, "stops/bad", "return { check = function(ctx) return 5 end }", NULL);
    assert_int_equal(scr_stop_check(s, "x", 1, 0, 0, &stop, reason, sizeof reason, &err), CK_E_SCRIPT);
    assert_non_null(strstr(err.msg, "number"));
    scr_destroy(s);
}

static void shipped_stop_script_max_lines_should_stop_after_n_lines(void **st)
{
    (void)st;
    scr_state *s = NULL;
    ck_error err = {0};
    assert_int_equal(scr_create_named(SCR_STOP, NULL, "stops/max_lines", NULL, &s, &err), CK_OK);
    assert_int_equal(scr_set_param_number(s, "max_lines", 2, &err), CK_OK);
    int stop;
    char reason[32];
    assert_int_equal(scr_stop_check(s, "a\nb", 3, 0, 2, &stop, reason, sizeof reason, &err), CK_OK);
    assert_int_equal(stop, 0);
    assert_int_equal(scr_stop_check(s, "a\nb\n", 4, 0, 3, &stop, reason, sizeof reason, &err), CK_OK);
    assert_int_equal(stop, 1);
    assert_string_equal(reason, "max_lines");
    scr_destroy(s);
}

/* ---- catalogue --------------------------------------------------------------------- */

static void every_shipped_script_should_load_with_its_kind(void **st)
{
    (void)st;
    size_t n = scr_builtin_count();
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        const char *name, *text;
        size_t len;
        scr_builtin_at(i, &name, &text, &len);
        if (i > 0) {
            const char *prev, *pt;
            size_t pl;
            scr_builtin_at(i - 1, &prev, &pt, &pl);
            assert_true(strcmp(prev, name) < 0);
        }
        scr_kind kind = strncmp(name, "samplers/", 9) == 0 ? SCR_SAMPLER
                      : strncmp(name, "stops/", 6) == 0    ? SCR_STOP
                                                           : SCR_TEMPLATE;
        scr_state *s = NULL;
        ck_error err = {0};
        if (scr_create(kind, name, text, len, NULL, &s, &err) != CK_OK)
            fail_msg("%s", err.msg);
        scr_destroy(s);
    }
    char *t;
    size_t l;
    ck_error err = {0};
    assert_int_equal(scr_script_text(NULL, "samplers/nope", &t, &l, &err), CK_E_MISSING);
}

static void script_dir_should_override_a_builtin(void **st)
{
    (void)st;
    char dir[] = "/tmp/chaski_scrXXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256], path[300];
    snprintf(sub, sizeof sub, "%s/samplers", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/greedy.lua", sub);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("return { sample = function(ctx) return 3 end }", f);
    fclose(f);
    scr_state *s = NULL;
    ck_error err = {0};
    assert_int_equal(scr_create_named(SCR_SAMPLER, dir, "samplers/greedy", NULL, &s, &err), CK_OK);
    smp_params p;
    smp_params_default(&p);
    smp_state *smp = sampler(&p);
    int32_t tok;
    fill_logits(1);
    assert_int_equal(scr_sample(s, smp, logits, NULL, 0, 0, &tok, &err), CK_OK);
    assert_int_equal(tok, 3);
    scr_destroy(s);
    /* a file path works as a name too */
    assert_int_equal(scr_create_named(SCR_SAMPLER, NULL, path, NULL, &s, &err), CK_OK);
    scr_destroy(s);
    smp_state_destroy(smp);
    remove(path);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sandbox_should_hide_io_os_require_debug_dofile_loadfile_and_dump),
        cmocka_unit_test(sandbox_should_refuse_binary_chunks),
        cmocka_unit_test(infinite_loop_should_stop_at_the_instruction_budget),
        cmocka_unit_test(infinite_loop_inside_pcall_should_still_stop),
        cmocka_unit_test(infinite_loop_should_stop_at_the_deadline),
        cmocka_unit_test(memory_bomb_should_stop_at_the_cap_and_memory_should_come_back),
        cmocka_unit_test(script_error_should_name_the_script_line_and_traceback),
        cmocka_unit_test(bad_results_should_fail_with_a_clear_message),
        cmocka_unit_test(ctx_methods_outside_sample_should_fail),
        cmocka_unit_test(lua_default_chain_should_pick_the_same_tokens_as_the_c_chain),
        cmocka_unit_test(lua_primitives_should_equal_the_same_c_calls),
        cmocka_unit_test(candidates_should_be_sorted_by_logit_with_ids_and_history_visible),
        cmocka_unit_test(pure_lua_top_k_should_draw_reproducibly_from_the_k_best),
        cmocka_unit_test(a_failing_job_should_not_change_another_jobs_tokens),
        cmocka_unit_test(stop_script_should_return_its_reason),
        cmocka_unit_test(shipped_stop_script_max_lines_should_stop_after_n_lines),
        cmocka_unit_test(every_shipped_script_should_load_with_its_kind),
        cmocka_unit_test(script_dir_should_override_a_builtin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
