/* The bundled model (models/chaski-pd-16m) against transformers' outputs recorded when it was
 * trained (tools/train/train.py -> reference.json): greedy generation identical for 64 tokens on
 * three prompts, and held-out perplexity within 1e-3 relative. Token ids come from the reference
 * tokenizer, so this checks the model path alone; the CLI test checks our tokenizer on top. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "generate.h"
#include "model.h"
#include "tok/tok.h"
#include "ref_util.h"

#define MODEL_DIR CHASKI_SOURCE_DIR "/models/chaski-pd-16m"

typedef struct fixture {
    be_backend *be;
    mdl_model *model;
    cJSON *ref;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ck_error err = {0};
    assert_int_equal(be_cpu_create(&f->be, &err), CK_OK);
    if (mdl_load(MODEL_DIR, f->be, NULL, NULL, &f->model, &err) != CK_OK)
        fail_msg("%s", err.msg);
    f->ref = read_reference(MODEL_DIR);
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

static void greedy_64_tokens_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *cases = cJSON_GetObjectItem(cJSON_GetObjectItem(f->ref, "greedy"), "cases"), *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases)
    {
        int n_prompt, n_want;
        int32_t *prompt = json_ids(cJSON_GetObjectItem(c, "prompt_ids"), &n_prompt);
        int32_t *want = json_ids(cJSON_GetObjectItem(c, "generated_ids"), &n_want);
        assert_int_equal(n_want, 64);
        gen_params gp;
        gen_params_default(&gp);
        gp.max_new_tokens = n_want;
        gp.stop_at_eos = 0;
        int32_t got[64];
        int n_got;
        ck_error err = {0};
        assert_int_equal(gen_generate(f->model, prompt, n_prompt, &gp, NULL, NULL, got, 64, &n_got, &err), CK_OK);
        assert_int_equal(n_got, 64);
        for (int i = 0; i < 64; i++)
            if (got[i] != want[i])
                fail_msg("prompt '%s': token %d is %d, transformers %d",
                         cJSON_GetObjectItem(c, "prompt")->valuestring, i, got[i], want[i]);
        free(prompt);
        free(want);
        n_cases++;
    }
    assert_int_equal(n_cases, 3);
}

static void heldout_perplexity_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *p = cJSON_GetObjectItem(f->ref, "perplexity");
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(p, "eval_token_ids"), &n);
    double want = cJSON_GetObjectItem(p, "ppl")->valuedouble, got;
    int scored;
    ck_error err = {0};
    assert_int_equal(gen_perplexity(f->model, ids, n, (int)cJSON_GetObjectItem(p, "window")->valuedouble,
                                    (int)cJSON_GetObjectItem(p, "bos_id")->valuedouble, &got, NULL, &scored, &err),
                     CK_OK);
    print_message("  held-out perplexity %.6f over %d tokens (transformers %.6f)\n", got, scored, want);
    assert_int_equal(scored, (int)cJSON_GetObjectItem(p, "tokens")->valuedouble);
    assert_true(fabs(got - want) / want <= 1e-3);
    free(ids);
}

/* Our tokenizer on the bundled model's tokenizer.json gives the reference's ids: the held-out text
 * that perplexity is computed on, and the prompts (with BOS); decoding the reference generations
 * gives the reference text. */
static void tokenizer_should_match_the_reference_ids(void **state)
{
    fixture *f = *state;
    ck_error err = {0};
    tok_tokenizer *t;
    if (tok_create_from_dir(MODEL_DIR, &t, &err) != CK_OK)
        fail_msg("%s", err.msg);
    char *text;
    size_t len;
    assert_int_equal(cfg_read_file(MODEL_DIR "/heldout_eval.txt", 1u << 20, &text, &len, &err), CK_OK);
    const cJSON *p = cJSON_GetObjectItem(f->ref, "perplexity");
    int n_want;
    int32_t *want = json_ids(cJSON_GetObjectItem(p, "eval_token_ids"), &n_want);
    tok_encode_opts o = tok_encode_opts_default();
    o.add_special = 0;
    size_t n_got = 0;
    int32_t *got = malloc((size_t)n_want * 2 * sizeof *got);
    assert_int_equal(tok_encode(t, text, len, &o, got, (size_t)n_want * 2, &n_got, &err), CK_OK);
    assert_int_equal(n_got, (size_t)n_want);
    assert_memory_equal(got, want, (size_t)n_want * sizeof *got);
    free(got);
    free(want);
    free(text);

    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(cJSON_GetObjectItem(f->ref, "greedy"), "cases"))
    {
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        int n_p, n_g;
        int32_t *p_want = json_ids(cJSON_GetObjectItem(c, "prompt_ids"), &n_p);
        int32_t p_got[256];
        size_t n_pg;
        assert_int_equal(tok_encode(t, prompt, strlen(prompt), NULL, p_got, 256, &n_pg, &err), CK_OK);
        assert_int_equal(n_pg, (size_t)n_p);
        assert_memory_equal(p_got, p_want, (size_t)n_p * sizeof *p_got);
        int32_t *gen = json_ids(cJSON_GetObjectItem(c, "generated_ids"), &n_g);
        char out[4096];
        size_t out_len;
        assert_int_equal(tok_decode(t, gen, (size_t)n_g, 1, out, sizeof out, &out_len, &err), CK_OK);
        assert_int_equal(out_len, strlen(cJSON_GetObjectItem(c, "text")->valuestring));
        assert_memory_equal(out, cJSON_GetObjectItem(c, "text")->valuestring, out_len);
        free(p_want);
        free(gen);
    }
    tok_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokenizer_should_match_the_reference_ids),
        cmocka_unit_test(greedy_64_tokens_should_match_transformers),
        cmocka_unit_test(heldout_perplexity_should_match_transformers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
