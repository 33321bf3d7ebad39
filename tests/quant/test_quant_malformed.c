/* Malformed quantized checkpoints (tools/reference/quant/make_quant_malformed.py): each breaks one rule of
 * FORMATS.md and must be refused with the manifest's typed status and a message naming the tensor or field;
 * the controls must load. Loaded through the production loader, mdl_load. Under ASan/UBSan in CI: no
 * out-of-bounds read. */
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
#include "model.h"

#define CORPUS CHASKI_SOURCE_DIR "/tests/fixtures/quant_malformed"

static int check(const char *how, ck_status st, const char *want, const cJSON *words, const ck_error *err,
                 const char *name)
{
    int ok = !strcmp(ck_status_name(st), want);
    const cJSON *w;
    cJSON_ArrayForEach(w, words) ok = ok && strstr(err->msg, w->valuestring);
    if (st != CK_OK)
        ok = ok && err->msg[0];
    print_message("  %-8s %-34s %-12s %s\n", how, name, ck_status_name(st), st == CK_OK ? "(loaded)" : err->msg);
    if (!ok)
        print_error("  ^ expected status '%s' and the manifest's message words\n", want);
    return ok;
}

static void every_malformed_quantized_model_should_be_refused_with_a_typed_error(void **state)
{
    ck_error err = {0};
    char *text;
    size_t len;
    assert_int_equal(cfg_read_file(CORPUS "/manifest.json", 1u << 20, &text, &len, &err), CK_OK);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    assert_non_null(root);
    be_backend *be;
    assert_int_equal(be_cpu_create(&be, &err), CK_OK);
    mdl_model *m = NULL;
    const cJSON *c;
    int n = 0, failures = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "case")->valuestring;
        const char *want = cJSON_GetObjectItem(c, "status")->valuestring;
        const cJSON *words = cJSON_GetObjectItem(c, "message_contains");
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", CORPUS, name);
        m = NULL;
        ck_error_clear(&err);
        ck_status st = mdl_load(dir, be, NULL, NULL, &m, &err);
        failures += !check("mdl_load", st, want, words, &err, name) || (st == CK_OK) != (m != NULL);
        mdl_destroy(m);
        n++;
    }
    be_destroy(be);
    cJSON_Delete(root);
    assert_true(n >= 30);
    assert_int_equal(failures, 0);
}

int main(void)
{
    struct stat sb;
    if (stat(CORPUS "/manifest.json", &sb) != 0) {
        fprintf(stderr, "corpus absent: python3 tools/reference/quant/make_quant_malformed.py %s\n", CORPUS);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_malformed_quantized_model_should_be_refused_with_a_typed_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
