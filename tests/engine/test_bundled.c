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

#include "config.h"
#include "generate.h"
#include "model.h"

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
    char *text;
    size_t len;
    assert_int_equal(cfg_read_file(MODEL_DIR "/reference.json", 64u << 20, &text, &len, &err), CK_OK);
    f->ref = cJSON_ParseWithLength(text, len);
    free(text);
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

static int32_t *ids_of(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc((size_t)*n * sizeof *ids);
    for (int i = 0; i < *n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return ids;
}

static void greedy_64_tokens_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *cases = cJSON_GetObjectItem(cJSON_GetObjectItem(f->ref, "greedy"), "cases"), *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases)
    {
        int n_prompt, n_want;
        int32_t *prompt = ids_of(cJSON_GetObjectItem(c, "prompt_ids"), &n_prompt);
        int32_t *want = ids_of(cJSON_GetObjectItem(c, "generated_ids"), &n_want);
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
    int32_t *ids = ids_of(cJSON_GetObjectItem(p, "eval_token_ids"), &n);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_64_tokens_should_match_transformers),
        cmocka_unit_test(heldout_perplexity_should_match_transformers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
