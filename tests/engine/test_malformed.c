/* Malformed model directories (tools/fixtures/make_malformed.py): each breaks one rule and must be
 * refused with the typed status the manifest names and a message that names the file, tensor or
 * field and what was expected. The unbroken control must load. Run under ASan/UBSan in CI: no
 * crash, no out-of-bounds read, no leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model.h"

#define CORPUS CHASKI_SOURCE_DIR "/tests/fixtures/malformed"

static void every_malformed_model_should_be_refused_with_a_typed_error(void **state)
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
    const cJSON *c;
    int n = 0, failures = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "case")->valuestring;
        const char *want = cJSON_GetObjectItem(c, "status")->valuestring;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", CORPUS, name);
        mdl_model *m = NULL;
        ck_error_clear(&err);
        ck_status st = mdl_load(dir, be, NULL, NULL, &m, &err);
        int ok = !strcmp(ck_status_name(st), want);
        const cJSON *w;
        cJSON_ArrayForEach(w, cJSON_GetObjectItem(c, "message_contains")) ok = ok && strstr(err.msg, w->valuestring);
        if (st == CK_OK)
            ok = ok && m != NULL;
        else
            ok = ok && m == NULL && err.msg[0];
        print_message("  %-40s %-12s %s\n", name, ck_status_name(st), st == CK_OK ? "(loaded)" : err.msg);
        if (!ok) {
            print_error("  ^ expected status '%s' and message words of the manifest\n", want);
            failures++;
        }
        mdl_destroy(m);
        n++;
    }
    be_destroy(be);
    cJSON_Delete(root);
    assert_true(n >= 26);
    assert_int_equal(failures, 0);
}

/* The same files through st_open_memory on every prefix of a valid image: truncation anywhere is a
 * typed error, never a crash or an out-of-bounds read. */
static void every_truncation_of_a_valid_file_should_be_refused(void **state)
{
    FILE *f = fopen(CORPUS "/valid_control/model.safetensors", "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (long cut = 0; cut < size; cut += (cut < 4096 ? 1 : 97)) {
        uint8_t *copy = malloc(cut ? (size_t)cut : 1); /* exact-size copy: ASan catches any overread */
        memcpy(copy, buf, (size_t)cut);
        st_file *sf = NULL;
        ck_error err = {0};
        ck_status st = st_open_memory(copy, (size_t)cut, "cut.safetensors", &sf, &err);
        assert_int_equal(st, CK_E_FORMAT);
        assert_null(sf);
        free(copy);
    }
    st_file *sf = NULL;
    ck_error err = {0};
    assert_int_equal(st_open_memory(buf, (size_t)size, "whole.safetensors", &sf, &err), CK_OK);
    assert_true(st_count(sf) > 0);
    st_close(sf);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_malformed_model_should_be_refused_with_a_typed_error),
        cmocka_unit_test(every_truncation_of_a_valid_file_should_be_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
