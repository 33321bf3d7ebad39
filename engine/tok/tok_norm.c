/* tok_norm.c: normalizers (Prepend, Replace, Strip, NFC/NFKC/NFD/NFKD).
 *
 * Unicode normalization follows UAX #15: full decomposition (tables generated from
 * Python's unicodedata into tok_unicode_tables.h; Hangul algorithmically), canonical
 * ordering by combining class, then canonical composition for NFC/NFKC.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"
#include "tok_unicode_tables.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21,
       TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static unsigned ccc_of(uint32_t cp)
{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = COUNT(tok_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_ccc[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < COUNT(tok_ccc) && tok_ccc[lo].cp == cp ? tok_ccc[lo].ccc : 0;
}

static const tok_decomp_row *find_decomp(const tok_decomp_row *rows, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rows[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && rows[lo].cp == cp ? &rows[lo] : NULL;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = COUNT(tok_comp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_comp[mid].pair < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < COUNT(tok_comp) && tok_comp[lo].pair == key ? tok_comp[lo].cp : 0;
}

typedef struct cpvec {
    uint32_t *p;
    size_t len, cap;
} cpvec;

static int cp_push(cpvec *v, uint32_t cp)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len++] = cp;
    return 0;
}

static int decompose(uint32_t cp, int compat, cpvec *v)
{
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        if (cp_push(v, LBASE + s / NCOUNT) || cp_push(v, VBASE + (s % NCOUNT) / TCOUNT)) return -1;
        if (s % TCOUNT && cp_push(v, TBASE + s % TCOUNT)) return -1;
        return 0;
    }
    if (cp >= 0xA0) {
        const tok_decomp_row *r = compat ? find_decomp(tok_nfkd, COUNT(tok_nfkd), cp) : NULL;
        if (!r) r = find_decomp(tok_nfd, COUNT(tok_nfd), cp);
        if (r) {
            for (unsigned i = 0; i < r->len; i++)
                if (cp_push(v, tok_decomp_data[r->off + i])) return -1;
            return 0;
        }
    }
    return cp_push(v, cp);
}

int tok_unicode_normalize(tok_norm_kind form, const char *s, size_t n, tok_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && u[i] < 0x80) i++;
    if (i == n) return tok_buf_put(out, s, n); /* ASCII is invariant under every form */

    int compat = form == TN_NFKC || form == TN_NFKD;
    int comp = form == TN_NFC || form == TN_NFKC;
    cpvec v = {0};
    int rc = -1;
    for (i = 0; i < n;) {
        uint32_t cp;
        size_t k = tok_utf8_decode(u + i, n - i, &cp);
        if (!k) { /* callers pass valid UTF-8; be safe anyway */
            cp = 0xFFFD;
            k = 1;
        }
        if (decompose(cp, compat, &v)) goto done;
        i += k;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters */
    for (size_t a = 0; a < v.len; a++) {
        unsigned ca = ccc_of(v.p[a]);
        if (!ca) continue;
        size_t b = a;
        while (b > 0) {
            unsigned cb = ccc_of(v.p[b - 1]);
            if (!cb || cb <= ca) break;
            uint32_t tmp = v.p[b];
            v.p[b] = v.p[b - 1];
            v.p[b - 1] = tmp;
            b--;
        }
    }
    if (comp && v.len) {
        size_t starter = 0, w = 1;
        uint32_t starter_cp = v.p[0];
        unsigned last = ccc_of(starter_cp) ? 256 : 0;
        for (size_t r = 1; r < v.len; r++) {
            uint32_t ch = v.p[r];
            unsigned cc = ccc_of(ch);
            uint32_t c = (last < cc || last == 0) ? compose(starter_cp, ch) : 0;
            if (c) {
                v.p[starter] = c;
                starter_cp = c;
                continue;
            }
            if (cc == 0) {
                starter = w;
                starter_cp = ch;
            }
            last = cc;
            v.p[w++] = ch;
        }
        v.len = w;
    }
    if (tok_buf_reserve(out, v.len * 4)) goto done;
    for (size_t a = 0; a < v.len; a++) out->len += tok_utf8_encode(v.p[a], out->p + out->len);
    rc = 0;
done:
    free(v.p);
    return rc;
}

/* Replace every occurrence of pat in s with rep (pat non-empty). */
static int replace_str(const char *s, size_t n, const char *pat, size_t pl, const char *rep, size_t rl,
                       tok_buf *out)
{
    size_t i = 0, run = 0;
    while (i + pl <= n) {
        if (s[i] == pat[0] && memcmp(s + i, pat, pl) == 0) {
            if (tok_buf_put(out, s + run, i - run) || tok_buf_put(out, rep, rl)) return -1;
            i += pl;
            run = i;
        } else
            i++;
    }
    return tok_buf_put(out, s + run, n - run);
}

static ck_status apply_step(const tok_norm_step *st, tok_match *m, const char *s, size_t n, tok_buf *out,
                            ck_error *err)
{
    int rc = 0;
    switch (st->kind) {
    case TN_PREPEND:
        if (n) rc = tok_buf_put(out, st->a, st->a_len);
        if (!rc) rc = tok_buf_put(out, s, n);
        break;
    case TN_REPLACE_STR:
        rc = replace_str(s, n, st->a, st->a_len, st->b, st->b_len, out);
        break;
    case TN_REPLACE_RE: {
        size_t pos = 0, run = 0;
        while (pos <= n) {
            size_t ms, me;
            int f = tok_regex_find(st->re, m, s, n, pos, &ms, &me);
            if (f < 0) return ck_fail(err, CK_E_UNSUPPORTED, "normalizer Replace: regex match limit hit");
            if (f == 0) break;
            if (me == ms) { /* empty match: step over one character */
                pos = ms + 1;
                while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
                continue;
            }
            if (tok_buf_put(out, s + run, ms - run) || tok_buf_put(out, st->b, st->b_len)) rc = -1;
            run = pos = me;
        }
        if (!rc) rc = tok_buf_put(out, s + run, n - run);
        break;
    }
    case TN_NFC: case TN_NFKC: case TN_NFD: case TN_NFKD:
        rc = tok_unicode_normalize(st->kind, s, n, out);
        break;
    case TN_STRIP: {
        const unsigned char *u = (const unsigned char *)s;
        size_t a = 0, b = n;
        uint32_t cp;
        size_t k;
        while (st->left && a < b && (k = tok_utf8_decode(u + a, b - a, &cp)) && tok_is_white_space(cp)) a += k;
        while (st->right && b > a) {
            size_t c = b - 1;
            while (c > a && (u[c] & 0xC0) == 0x80) c--;
            if (!(k = tok_utf8_decode(u + c, b - c, &cp)) || !tok_is_white_space(cp)) break;
            b = c;
        }
        rc = tok_buf_put(out, s + a, b - a);
        break;
    }
    }
    if (rc) return ck_fail(err, CK_E_OUT_OF_MEMORY, "normalizer: out of memory");
    return CK_OK;
}

ck_status tok_normalize(const tok_tokenizer *t, tok_match *m, const char *s, size_t n, tok_buf *out,
                        tok_buf *tmp, ck_error *err)
{
    out->len = 0;
    if (t->n_norm == 0) {
        if (tok_buf_put(out, s, n)) return ck_fail(err, CK_E_OUT_OF_MEMORY, "normalizer: out of memory");
        return CK_OK;
    }
    /* ping-pong between out and tmp so that the result ends in out */
    tok_buf *src = NULL, *dst = (t->n_norm % 2) ? out : tmp;
    for (size_t i = 0; i < t->n_norm; i++) {
        dst->len = 0;
        ck_status st = src ? apply_step(&t->norm[i], m, src->p, src->len, dst, err)
                           : apply_step(&t->norm[i], m, s, n, dst, err);
        if (st) return st;
        src = dst;
        dst = (dst == out) ? tmp : out;
    }
    return CK_OK;
}
