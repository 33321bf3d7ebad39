/* tok_regex.c: tokenizer.json regexes on PCRE2.
 *
 * tokenizer.json patterns are written for Oniguruma (what the reference links).
 * They compile as PCRE2 with PCRE2_UTF | PCRE2_UCP after one rewrite: \s and \S
 * are spelled out as Unicode White_Space (Oniguruma's meaning; PCRE2 10.42 also
 * counts U+180E). Every match runs under a match limit and a depth limit, so a
 * hostile pattern or input fails with an error instead of backtracking forever.
 * The compiled code and match context are shared read-only between threads; each
 * thread brings its own tok_match.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

#define MATCH_LIMIT 10000000u /* backtracking steps per match attempt */
#define DEPTH_LIMIT 100000u

struct tok_regex {
    pcre2_code *code;
    pcre2_match_context *mctx;
    int jit;
};

struct tok_match {
    pcre2_match_data *md;
};

#define WS_CLASS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* Rewrite \s / \S (outside and inside classes). Returns 0 or -1 (oom). */
static int rewrite(const char *p, size_t n, tok_buf *out)
{
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 's') {
                if (in_class ? tok_buf_put(out, WS_CLASS, strlen(WS_CLASS))
                             : tok_buf_put(out, "[" WS_CLASS "]", strlen(WS_CLASS) + 2))
                    return -1;
            } else if (d == 'S' && !in_class) {
                if (tok_buf_put(out, "[^" WS_CLASS "]", strlen(WS_CLASS) + 3)) return -1;
            } else if (tok_buf_put(out, p + i, 2))
                return -1;
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            if (tok_buf_put(out, p + i, 1)) return -1;
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && p[i + 1] == '^') {
                if (tok_buf_put(out, "^", 1)) return -1;
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                if (tok_buf_put(out, "]", 1)) return -1;
                i++;
            }
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        if (tok_buf_put(out, &c, 1)) return -1;
    }
    return 0;
}

ck_status tok_regex_compile(const char *pattern, size_t len, const char *what, tok_regex **out,
                            ck_error *err)
{
    *out = NULL;
    tok_buf pat = {0};
    if (rewrite(pattern, len, &pat)) {
        tok_buf_free(&pat);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    tok_regex *re = calloc(1, sizeof *re);
    if (!re) {
        tok_buf_free(&pat);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    int ec;
    PCRE2_SIZE eo;
    re->code = pcre2_compile((PCRE2_SPTR)(pat.p ? pat.p : ""), pat.len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    tok_buf_free(&pat);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        free(re);
        return ck_fail(err, CK_E_FORMAT, "%s: regex does not compile: %s (near offset %zu of the rewritten pattern)",
                       what, (const char *)msg, (size_t)eo);
    }
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->mctx) {
        tok_regex_free(re);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    pcre2_set_match_limit(re->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, DEPTH_LIMIT);
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return CK_OK;
}

void tok_regex_free(tok_regex *re)
{
    if (!re) return;
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    free(re);
}

tok_match *tok_match_create(void)
{
    tok_match *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->md = pcre2_match_data_create(1, NULL);
    if (!m->md) {
        free(m);
        return NULL;
    }
    return m;
}

void tok_match_free(tok_match *m)
{
    if (!m) return;
    pcre2_match_data_free(m->md);
    free(m);
}

int tok_regex_find(const tok_regex *re, tok_match *m, const char *s, size_t n, size_t start,
                   size_t *ms, size_t *me)
{
    uint32_t opts = PCRE2_NO_UTF_CHECK; /* callers pass valid UTF-8 */
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, opts, m->md, re->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, opts | PCRE2_NO_JIT, m->md, re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}
