/* Parity with transformers: tiny random models of every supported architecture and feature,
 * with transformers' float32 outputs (tools/reference/make_fixtures.py) as the reference.
 *   logits at the last prompt position within 1e-4 relative L2,
 *   32 greedy tokens identical (incremental decoding through the paged KV cache),
 *   perplexity of a fixed text within 1e-4 relative.
 * Plus batching invariants against the same model: a varlen batch of two sequences of different
 * lengths gives each the logits it gets alone, and chunked prefill matches one-shot prefill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "forward.h"
#include "generate.h"
#include "model.h"
#include "ref_util.h"

static const char *const k_fixtures[] = {
    "llama2_mha_f32",         "llama2_mqa_f16_sharded", "llama3_gqa_headdim_rope3_bf16",
    "mistral_sliding_f16",    "qwen2_bias_bf16",        "llama2_rope_linear_f16",
    "llama2_rope_yarn_f16",   "llama2_rope_dynamic_f16", "llama2_biases_f16",
};

typedef struct fixture {
    char dir[1024];
    be_backend *be;
    mdl_model *model;
    cJSON *ref;
} fixture;

static void fixture_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/tests/fixtures/models/%s", CHASKI_SOURCE_DIR, name);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    fixture_dir(f->dir, sizeof f->dir, (const char *)*state);
    ck_error err = {0};
    assert_int_equal(be_cpu_create(&f->be, &err), CK_OK);
    ck_status st = mdl_load(f->dir, f->be, NULL, NULL, &f->model, &err);
    if (st != CK_OK)
        fail_msg("%s: %s", f->dir, err.msg);
    f->ref = read_reference(f->dir);
    assert_non_null(f->ref);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cJSON_Delete(f->ref);
    mdl_destroy(f->model);
    be_destroy(f->be);
    free(f);
    return 0;
}

/* Last-position logits of one prompt, prefilled in chunks of `chunk` tokens. */
static float *prompt_logits(const mdl_model *m, const int32_t *ids, int n, int chunk)
{
    ck_error err = {0};
    kv_cache *kv;
    fwd_workspace *ws;
    kv_seq seq;
    kv_seq_init(&seq);
    assert_int_equal(kv_cache_create(m->be, &m->cfg, 4, 64, &kv, &err), CK_OK);
    assert_int_equal(fwd_workspace_create(m, chunk, 1, &ws, &err), CK_OK);
    assert_int_equal(kv_seq_reserve(kv, &seq, n, &err), CK_OK);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    kv_seq *seqs[1] = {&seq};
    for (int at = 0; at < n; at += chunk) {
        int len = n - at < chunk ? n - at : chunk;
        int32_t starts[2] = {0, len};
        fwd_batch b = {1, seqs, ids + at, starts, NULL};
        ck_status st = fwd_run(m, kv, ws, &b, logits, &err);
        if (st != CK_OK)
            fail_msg("fwd_run: %s", err.msg);
    }
    assert_int_equal(seq.n_tokens, n);
    kv_seq_release(kv, &seq);
    assert_int_equal(kv->n_free, kv->n_pages);
    fwd_workspace_destroy(ws);
    kv_cache_destroy(kv);
    return logits;
}

static void logits_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(f->ref, "prompts"))
    {
        int n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(p, "ids"), &n);
        size_t V = (size_t)f->model->cfg.vocab_size;
        float *want = read_f32(f->dir, cJSON_GetObjectItem(p, "logits_file")->valuestring, V);
        assert_non_null(want);
        float *got = prompt_logits(f->model, ids, n, 512);
        double rel = rel_l2(got, want, V);
        print_message("  %s: %d prompt tokens, logits rel L2 %.3g\n", f->dir + strlen(CHASKI_SOURCE_DIR) + 1, n, rel);
        assert_true(rel <= 1e-4);
        free(got);
        free(want);
        free(ids);
    }
}

static void greedy_tokens_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(f->ref, "prompts"))
    {
        int n, n_want;
        int32_t *ids = json_ids(cJSON_GetObjectItem(p, "ids"), &n);
        int32_t *want = json_ids(cJSON_GetObjectItem(p, "greedy"), &n_want);
        gen_params gp;
        gen_params_default(&gp);
        gp.max_new_tokens = n_want;
        gp.stop_at_eos = 0;
        gp.prefill_chunk = 7; /* odd chunks: prefill crosses chunk boundaries too */
        int32_t got[64];
        int n_got = 0;
        ck_error err = {0};
        ck_status st = gen_generate(f->model, ids, n, &gp, NULL, NULL, got, 64, &n_got, &err);
        if (st != CK_OK)
            fail_msg("gen_generate: %s", err.msg);
        assert_int_equal(n_got, n_want);
        for (int i = 0; i < n_want; i++)
            if (got[i] != want[i])
                fail_msg("greedy token %d: got %d, transformers %d", i, got[i], want[i]);
        free(ids);
        free(want);
    }
}

static void perplexity_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *pp = cJSON_GetObjectItem(f->ref, "perplexity");
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(pp, "ids"), &n);
    double want = cJSON_GetObjectItem(pp, "ppl")->valuedouble, got = 0.0;
    int scored = 0;
    ck_error err = {0};
    ck_status st = gen_perplexity(f->model, ids, n, (int)cJSON_GetObjectItem(pp, "window")->valuedouble,
                                  (int)cJSON_GetObjectItem(pp, "bos")->valuedouble, &got, NULL, &scored, &err);
    if (st != CK_OK)
        fail_msg("gen_perplexity: %s", err.msg);
    assert_int_equal(scored, (int)cJSON_GetObjectItem(pp, "n_scored")->valuedouble);
    print_message("  perplexity %.6f (transformers %.6f)\n", got, want);
    assert_true(fabs(got - want) / want <= 1e-4);
    free(ids);
}

/* Two sequences of different lengths in one varlen batch: each gets the logits it gets alone. */
static void varlen_batch_should_equal_separate_runs(void **state)
{
    fixture *f = *state;
    const mdl_model *m = f->model;
    int n0, n1;
    int32_t *a = json_ids(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(f->ref, "prompts"), 0), "ids"), &n0);
    int32_t *b = json_ids(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(f->ref, "prompts"), 1), "ids"), &n1);
    n1 = n1 > 5 ? n1 - 5 : n1; /* make the lengths differ for sure */
    assert_int_not_equal(n0, n1);
    size_t V = (size_t)m->cfg.vocab_size;
    float *alone0 = prompt_logits(m, a, n0, 512), *alone1 = prompt_logits(m, b, n1, 512);

    ck_error err = {0};
    kv_cache *kv;
    fwd_workspace *ws;
    kv_seq s0, s1;
    kv_seq_init(&s0);
    kv_seq_init(&s1);
    assert_int_equal(kv_cache_create(m->be, &m->cfg, 6, 16, &kv, &err), CK_OK); /* small pages: many of them */
    assert_int_equal(fwd_workspace_create(m, n0 + n1 + 2, 2, &ws, &err), CK_OK);
    assert_int_equal(kv_seq_reserve(kv, &s1, n1 + 1, &err), CK_OK); /* interleaved page ownership */
    assert_int_equal(kv_seq_reserve(kv, &s0, n0 + 1, &err), CK_OK);
    int32_t *tokens = malloc((size_t)(n0 + n1) * sizeof *tokens);
    memcpy(tokens, a, (size_t)n0 * sizeof *tokens);
    memcpy(tokens + n0, b, (size_t)n1 * sizeof *tokens);
    int32_t starts[3] = {0, n0, n0 + n1};
    kv_seq *seqs[2] = {&s0, &s1};
    fwd_batch batch = {2, seqs, tokens, starts, NULL};
    float *both = malloc(2 * V * sizeof *both);
    assert_int_equal(fwd_run(m, kv, ws, &batch, both, &err), CK_OK);
    assert_int_equal(fwd_logit_rows(&batch), 2);
    assert_true(rel_l2(both, alone0, V) <= 1e-6);
    assert_true(rel_l2(both + V, alone1, V) <= 1e-6);

    /* one decode step for both at once continues each as it would alone */
    int32_t next[2] = {a[1], b[1]}, starts2[3] = {0, 1, 2};
    fwd_batch step = {2, seqs, next, starts2, NULL};
    assert_int_equal(fwd_run(m, kv, ws, &step, both, &err), CK_OK);
    int32_t *a2 = malloc((size_t)(n0 + 1) * sizeof *a2);
    memcpy(a2, a, (size_t)n0 * sizeof *a2);
    a2[n0] = a[1];
    float *alone0b = prompt_logits(m, a2, n0 + 1, 512);
    assert_true(rel_l2(both, alone0b, V) <= 1e-6);

    kv_seq_release(kv, &s0);
    kv_seq_release(kv, &s1);
    assert_int_equal(kv->n_free, kv->n_pages);
    fwd_workspace_destroy(ws);
    kv_cache_destroy(kv);
    free(alone0);
    free(alone1);
    free(alone0b);
    free(a2);
    free(both);
    free(tokens);
    free(a);
    free(b);
}

static void chunked_prefill_should_equal_one_shot(void **state)
{
    fixture *f = *state;
    int n;
    int32_t *a = json_ids(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(f->ref, "prompts"), 0), "ids"), &n);
    size_t V = (size_t)f->model->cfg.vocab_size;
    float *one = prompt_logits(f->model, a, n, 512), *chunked = prompt_logits(f->model, a, n, 3);
    assert_true(rel_l2(chunked, one, V) <= 1e-5);
    free(one);
    free(chunked);
    free(a);
}

int main(void)
{
    struct CMUnitTest tests[sizeof k_fixtures / sizeof k_fixtures[0] * 4 + 1];
    size_t n = 0, present = 0;
    for (size_t i = 0; i < sizeof k_fixtures / sizeof k_fixtures[0]; i++) {
        char dir[1024], ref[1100];
        struct stat sb;
        fixture_dir(dir, sizeof dir, k_fixtures[i]);
        snprintf(ref, sizeof ref, "%s/reference.json", dir);
        if (stat(ref, &sb) != 0)
            continue;
        present++;
        void *name = (void *)k_fixtures[i];
        tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(logits_should_match_transformers,
                                                                               setup, teardown, name);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
            greedy_tokens_should_match_transformers, setup, teardown, name);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
            perplexity_should_match_transformers, setup, teardown, name);
        if (i == 0 || i == 3)
            tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
                varlen_batch_should_equal_separate_runs, setup, teardown, name);
        if (i == 0)
            tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
                chunked_prefill_should_equal_one_shot, setup, teardown, name);
    }
    if (present != sizeof k_fixtures / sizeof k_fixtures[0]) {
        fprintf(stderr, "parity fixtures missing (%zu of %zu present): run tools/reference/make_fixtures.py\n",
                present, sizeof k_fixtures / sizeof k_fixtures[0]);
        if (present == 0)
            return 77;
        return 1;
    }
    return _cmocka_run_group_tests("parity", tests, n, NULL, NULL);
}
