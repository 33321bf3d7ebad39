/* test_templates.c: the shipped chat templates against reference renderings.
 *
 * argv[1] is tests/lua/fixtures/templates.json, written by
 * tools/reference/templates/make_template_fixtures.py (HF transformers'
 * apply_chat_template, or jinja2 in the same environment). For each tokenizer in
 * it, the template picked by scr_template_pick from its chat_template must be the
 * expected one, and must render every conversation byte for byte as the reference
 * did. Without the fixture the test exits 77 (skipped). Templates without a
 * reference chat_template here (llama2, mistral) are checked on hand-written
 * renderings of their published definitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script.h"

static cJSON *fixture;

static const char *expected_template(const char *tokenizer)
{
    if (strcmp(tokenizer, "llama3") == 0) return "templates/llama3";
    if (strcmp(tokenizer, "llama3_1") == 0) return "templates/llama3_1";
    if (strcmp(tokenizer, "qwen3") == 0) return "templates/qwen3";
    if (strcmp(tokenizer, "gemma3") == 0) return "templates/gemma3";
    if (strcmp(tokenizer, "deepseek_v3") == 0) return "templates/deepseek_v3";
    if (strcmp(tokenizer, "llama2") == 0) return "templates/llama2";
    return NULL;
}

static const char *str_or_null(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void templates_should_be_picked_from_the_hf_chat_template(void **st)
{
    (void)st;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(fixture, "tokenizers");
    assert_true(cJSON_IsObject(toks));
    int n = 0;
    for (const cJSON *t = toks->child; t; t = t->next, n++) {
        const char *tmpl = str_or_null(t, "chat_template");
        assert_non_null(tmpl);
        char name[64];
        int found = 0;
        ck_error err = {0};
        assert_int_equal(scr_template_pick(NULL, tmpl, strlen(tmpl), NULL, name, sizeof name, &found, &err), CK_OK);
        assert_true(found);
        assert_string_equal(name, expected_template(t->string));
    }
    assert_true(n >= 2);
}

static void templates_should_render_byte_for_byte_like_the_reference(void **st)
{
    (void)st;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(fixture, "tokenizers");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fixture, "cases");
    assert_true(cJSON_IsArray(cases));
    int n = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *tok = str_or_null(c, "tokenizer");
        const cJSON *tinfo = cJSON_GetObjectItemCaseSensitive(toks, tok);
        scr_state *s = NULL;
        ck_error err = {0};
        if (scr_create_named(SCR_TEMPLATE, NULL, expected_template(tok), NULL, &s, &err) != CK_OK)
            fail_msg("%s", err.msg);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages");
        size_t nm = (size_t)cJSON_GetArraySize(msgs);
        scr_message *m = calloc(nm ? nm : 1, sizeof *m);
        size_t i = 0;
        const cJSON *msg;
        cJSON_ArrayForEach(msg, msgs) {
            m[i].role = str_or_null(msg, "role");
            m[i].content = str_or_null(msg, "content");
            m[i].content_len = strlen(m[i].content);
            i++;
        }
        scr_template_opts o = {
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
            str_or_null(tinfo, "bos_token"), str_or_null(tinfo, "eos_token"),
        };
        char *out = NULL;
        size_t len = 0;
        if (scr_template_render(s, m, nm, &o, &out, &len, &err) != CK_OK)
            fail_msg("%s/%s: %s", tok, str_or_null(c, "conversation"), err.msg);
        const char *want = str_or_null(c, "expected");
        if (len != strlen(want) || memcmp(out, want, len) != 0) {
            print_error("%s/%s (add_generation_prompt %d):\n--- want\n%s\n--- got\n%s\n", tok,
                        str_or_null(c, "conversation"), o.add_generation_prompt, want, out);
            failed++;
        }
        free(out);
        free(m);
        scr_destroy(s);
        n++;
    }
    print_message("%d reference renderings compared (%s)\n", n,
                  str_or_null(fixture, "renderer") ? str_or_null(fixture, "renderer") : "?");
    assert_int_equal(failed, 0);
    assert_true(n >= 24 * 5);
}

/* Picking is by the first match in name order, so a script that matched a template
 * it does not render would be hidden behind the right one: ask every shipped
 * template about every real chat_template; only the expected one may say yes. */
static void only_the_expected_template_should_match_each_hf_chat_template(void **st)
{
    (void)st;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(fixture, "tokenizers");
    int n_checked = 0;
    for (size_t i = 0; i < scr_builtin_count(); i++) {
        const char *name = NULL, *text = NULL;
        size_t len = 0;
        scr_builtin_at(i, &name, &text, &len);
        if (strncmp(name, "templates/", 10) != 0)
            continue;
        scr_state *s = NULL;
        ck_error err = {0};
        if (scr_create_named(SCR_TEMPLATE, NULL, name, NULL, &s, &err) != CK_OK)
            fail_msg("%s", err.msg);
        for (const cJSON *t = toks->child; t; t = t->next) {
            const char *tmpl = str_or_null(t, "chat_template");
            int match = 0;
            assert_int_equal(scr_template_match(s, tmpl, strlen(tmpl), &match, &err), CK_OK);
            const char *want = expected_template(t->string);
            int should = want && strcmp(want, name) == 0;
            if (match != should)
                fail_msg("%s: match(%s's chat_template) is %d, expected %d", name, t->string, match, should);
            n_checked++;
        }
        scr_destroy(s);
    }
    assert_true(n_checked >= 5 * 5);
}

/* Hand-written renderings from the published template definitions. */
static char *render(const char *name, const scr_message *m, size_t n, int agp, const char *bos,
                    const char *eos, ck_status *st, ck_error *err)
{
    scr_state *s = NULL;
    if (scr_create_named(SCR_TEMPLATE, NULL, name, NULL, &s, err) != CK_OK)
        fail_msg("%s", err->msg);
    scr_template_opts o = {agp, bos, eos};
    char *out = NULL;
    *st = scr_template_render(s, m, n, &o, &out, NULL, err);
    scr_destroy(s);
    return out;
}

#define MSG(r, c) {r, c, sizeof(c) - 1}

static void llama2_mistral_and_chatml_should_render_their_published_formats(void **st)
{
    (void)st;
    const scr_message conv[] = {
        MSG("system", "Be brief."), MSG("user", " Hi "), MSG("assistant", "Hello."),
        MSG("user", "Bye"),
    };
    ck_status s;
    ck_error err = {0};
    char *out = render("templates/llama2", conv, 4, 0, "<s>", "</s>", &s, &err);
    assert_int_equal(s, CK_OK);
    assert_string_equal(out, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] Bye [/INST]"); /* strip() is of the whole content */
    free(out);
    out = render("templates/mistral_v1", conv + 1, 3, 0, "<s>", "</s>", &s, &err);
    assert_int_equal(s, CK_OK);
    assert_string_equal(out, "<s>[INST]  Hi  [/INST]Hello.</s>[INST] Bye [/INST]");
    free(out);
    out = render("templates/mistral_v3", conv, 4, 0, "<s>", "</s>", &s, &err);
    assert_int_equal(s, CK_OK);
    assert_string_equal(out, "<s>[INST]  Hi [/INST] Hello.</s>[INST] Be brief.\n\nBye[/INST]");
    free(out);
    out = render("templates/chatml", conv, 4, 1, NULL, NULL, &s, &err);
    assert_int_equal(s, CK_OK);
    assert_string_equal(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
                             "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                             "<|im_start|>assistant\n");
    free(out);
    /* roles that do not alternate fail the render with the template's message */
    const scr_message bad[] = {MSG("user", "a"), MSG("user", "b")};
    out = render("templates/llama2", bad, 2, 0, "<s>", "</s>", &s, &err);
    assert_int_equal(s, CK_E_SCRIPT);
    assert_null(out);
    assert_non_null(strstr(err.msg, "alternate"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_templates FIXTURE.json\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "test_templates: %s absent: run "
                        "python3 tools/reference/templates/make_template_fixtures.py (skipped)\n", argv[1]);
        return 77;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)n) {
        free(buf);
        fprintf(stderr, "test_templates: cannot read %s\n", argv[1]);
        return 1;
    }
    buf[n] = '\0';
    fixture = cJSON_Parse(buf);
    free(buf);
    if (!fixture) {
        fprintf(stderr, "test_templates: %s is not JSON\n", argv[1]);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(templates_should_be_picked_from_the_hf_chat_template),
        cmocka_unit_test(only_the_expected_template_should_match_each_hf_chat_template),
        cmocka_unit_test(templates_should_render_byte_for_byte_like_the_reference),
        cmocka_unit_test(llama2_mistral_and_chatml_should_render_their_published_formats),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cJSON_Delete(fixture);
    return rc;
}
