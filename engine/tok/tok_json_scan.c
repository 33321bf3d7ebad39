/* tok_json_scan.c: one strict pass over tokenizer.json that validates the whole text
 * and extracts the two big members, model.vocab and model.merges, without a cJSON
 * tree (a Llama 3 file holds 128k vocabulary entries and 280k merges; a tree of
 * ~700k nodes was most of the load time). The rest of the file is small and is
 * parsed by cJSON in tok_load.c, with these two values cut out (tok_json_scan_cut).
 *
 * Grammar: RFC 8259, strictly (no trailing commas, no leading zeros or '+', no raw
 * control characters in strings, four hex digits after \u, surrogates in pairs, no
 * text after the top-level value); a UTF-8 BOM at the start is skipped, as cJSON
 * does. Nesting deeper than TOK_JSON_MAX_DEPTH is refused before it is followed, so
 * the recursion here (and cJSON's afterwards) is bounded.
 *
 * Which members are extracted is decided as cJSON_GetObjectItemCaseSensitive decides:
 * the first "model" key of the top-level object, the first "vocab" and "merges" keys
 * of that object, keys compared after unescaping; a "\u0000" escape ends a string
 * (cJSON's strings are NUL-terminated), for keys and values alike. A value of another
 * type than expected (vocab not an object, merges not an array) is left in the text
 * for tok_load.c to refuse with its usual message.
 */
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

typedef struct scanner {
    const unsigned char *s;
    size_t n, i;
    const char *what;
    ck_error *err;
    tok_buf key;        /* the current member key, unescaped */
    tok_json_scan *out;
    int seen_model;
} scanner;

static ck_status bad(scanner *p, const char *why)
{
    return ck_fail(p->err, CK_E_FORMAT, "%s: malformed JSON near byte %zu: %s", p->what, p->i, why);
}

static ck_status oom(scanner *p) { return ck_fail(p->err, CK_E_OUT_OF_MEMORY, "%s: out of memory", p->what); }

static void ws_slow(scanner *p)
{
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->i++;
    }
}

/* Skip whitespace (often none: checked inline first). */
static inline void ws(scanner *p)
{
    if (p->i < p->n && p->s[p->i] > ' ') return;
    ws_slow(p);
}

/* Bytes that end a run of plain string content: '"', '\\' and control characters. */
static const unsigned char STOP[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static int hex4(const unsigned char *h, unsigned *v)
{
    unsigned x = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = h[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        x = x * 16 + d;
    }
    *v = x;
    return 1;
}

/* A string at s[i] == '"'. Appends its unescaped bytes to out (when not NULL), up to a
 * "\u0000" escape, after which the rest is validated but not kept. */
static ck_status scan_string(scanner *p, tok_buf *out)
{
    const unsigned char *s = p->s;
    size_t i = p->i + 1, n = p->n;
    int keep = out != NULL;
    for (;;) {
        size_t run = i;
        while (i < n && !STOP[s[i]]) i++;
        if (keep && i > run && tok_buf_put(out, s + run, i - run)) return oom(p);
        if (i >= n) {
            p->i = i;
            return bad(p, "unterminated string");
        }
        if (s[i] == '"') break;
        if (s[i] < 0x20) {
            p->i = i;
            return bad(p, "raw control character in a string");
        }
        if (i + 1 >= n) {
            p->i = i;
            return bad(p, "unterminated string");
        }
        char c;
        switch (s[i + 1]) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            unsigned hi, lo;
            if (n - i < 6 || !hex4(s + i + 2, &hi)) {
                p->i = i;
                return bad(p, "\\u needs four hex digits");
            }
            uint32_t cp = hi;
            if (hi >= 0xDC00 && hi <= 0xDFFF) {
                p->i = i;
                return bad(p, "\\u escape of a lone low surrogate");
            }
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                if (n - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' || !hex4(s + i + 8, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF) {
                    p->i = i;
                    return bad(p, "\\u escape of a high surrogate without a low one");
                }
                cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            i += 6;
            if (cp == 0) keep = 0;
            if (keep) {
                char u[4];
                if (tok_buf_put(out, u, tok_utf8_encode(cp, u))) return oom(p);
            }
            continue;
        }
        default:
            p->i = i;
            return bad(p, "unknown escape in a string");
        }
        if (keep && tok_buf_put(out, &c, 1)) return oom(p);
        i += 2;
    }
    p->i = i + 1;
    return CK_OK;
}

/* A number (strict grammar) at s[i]; its span is [*beg, p->i). */
static ck_status scan_number(scanner *p, size_t *beg)
{
    const unsigned char *s = p->s;
    size_t i = p->i, n = p->n;
    *beg = i;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    else {
        p->i = i;
        return bad(p, "bad number");
    }
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) {
            p->i = i;
            return bad(p, "bad number (no digit after '.')");
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) {
            p->i = i;
            return bad(p, "bad number (no digit in the exponent)");
        }
    }
    p->i = i;
    return CK_OK;
}

/* The value of the number s[beg..end), as cJSON's strtod would give it. */
static double number_value(const unsigned char *s, size_t beg, size_t end)
{
    if (end - beg <= 9) { /* plain digits: exact without strtod */
        uint32_t v = 0;
        size_t i = beg;
        while (i < end && s[i] >= '0' && s[i] <= '9') v = v * 10 + (uint32_t)(s[i++] - '0');
        if (i == end) return (double)v;
    }
    char tmp[64];
    size_t k = end - beg < sizeof tmp - 1 ? end - beg : sizeof tmp - 1; /* longer: a huge value anyway */
    memcpy(tmp, s + beg, k);
    tmp[k] = 0;
    char *dot = memchr(tmp, '.', k), dp = localeconv()->decimal_point[0];
    if (dot && dp) *dot = dp;
    return strtod(tmp, NULL);
}

static ck_status scan_value(scanner *p, int depth);

static ck_status enter(scanner *p, int depth)
{
    if (depth > TOK_JSON_MAX_DEPTH)
        return ck_fail(p->err, CK_E_FORMAT, "%s: JSON nested deeper than %d levels (byte %zu)", p->what,
                       TOK_JSON_MAX_DEPTH, p->i);
    p->i++; /* past '[' or '{' */
    ws(p);
    return CK_OK;
}

/* After an element: ',' (1, more follow) or the closing bracket (0, consumed). */
static ck_status next_or_close(scanner *p, unsigned char close, int *more)
{
    ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        ws(p);
        *more = 1;
        return CK_OK;
    }
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        *more = 0;
        return CK_OK;
    }
    return bad(p, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
}

static ck_status scan_array(scanner *p, int depth)
{
    ck_status st = enter(p, depth);
    if (st) return st;
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return CK_OK;
    }
    for (int more = 1; more;) {
        if ((st = scan_value(p, depth)) || (st = next_or_close(p, ']', &more))) return st;
    }
    return CK_OK;
}

/* A member key (into p->key) and the ':' after it. */
static ck_status scan_key(scanner *p)
{
    if (p->i >= p->n || p->s[p->i] != '"') return bad(p, "expected a string key");
    p->key.len = 0;
    ck_status st = scan_string(p, &p->key);
    if (st) return st;
    ws(p);
    if (p->i >= p->n || p->s[p->i] != ':') return bad(p, "expected ':'");
    p->i++;
    ws(p);
    return CK_OK;
}

static int key_is(const scanner *p, const char *name)
{
    size_t l = strlen(name);
    return p->key.len == l && !memcmp(p->key.p, name, l);
}

/* model.vocab: {"token": id, ...}. Keys go to out->vocab_str (NUL-terminated). */
static ck_status scan_vocab(scanner *p, int depth)
{
    tok_json_scan *o = p->out;
    o->has_vocab = 1;
    o->vocab_beg = p->i;
    if (tok_buf_reserve(&o->vocab_str, 64)) return oom(p); /* never a NULL base (p + 0 is undefined) */
    ck_status st = enter(p, depth);
    if (st) return st;
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        o->vocab_end = p->i;
        return CK_OK;
    }
    size_t cap = 0;
    for (int more = 1; more;) {
        if (p->i >= p->n || p->s[p->i] != '"') return bad(p, "expected a string key");
        size_t off = o->vocab_str.len;
        if ((st = scan_string(p, &o->vocab_str))) return st;
        size_t len = o->vocab_str.len - off;
        if (tok_buf_put(&o->vocab_str, "", 1)) return oom(p);
        ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return bad(p, "expected ':'");
        p->i++;
        ws(p);
        if (o->n_vocab == cap) {
            cap = cap ? cap * 2 : 1024;
            tok_json_vocab_entry *e = realloc(o->vocab, cap * sizeof *e);
            if (!e) return oom(p);
            o->vocab = e;
        }
        tok_json_vocab_entry *e = &o->vocab[o->n_vocab++];
        e->off = (uint32_t)off;
        e->len = (uint32_t)len;
        e->is_number = 0;
        e->id = -1;
        if (p->i < p->n && (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))) {
            size_t beg;
            if ((st = scan_number(p, &beg))) return st;
            e->is_number = 1;
            e->id = number_value(p->s, beg, p->i);
        } else if ((st = scan_value(p, depth))) /* refused later, with the key named */
            return st;
        if ((st = next_or_close(p, '}', &more))) return st;
    }
    o->vocab_end = p->i;
    return CK_OK;
}

/* One merge: "a b" (kept as "ab" with the split), ["a", "b"] (kept as "ab"), else
 * TOK_MERGE_OTHER (validated, refused later). */
static ck_status scan_merge(scanner *p, int depth, tok_json_merge *m)
{
    tok_buf *b = &p->out->merge_str;
    size_t off = b->len, start = p->i;
    ck_status st;
    m->off = (uint32_t)off;
    m->a_len = m->b_len = 0;
    if (p->s[p->i] == '"') {
        if ((st = scan_string(p, b))) return st;
        size_t len = b->len - off;
        char *s = b->p + off, *sp = memchr(s, ' ', len);
        if (sp && !memchr(sp + 1, ' ', len - (size_t)(sp - s) - 1)) {
            m->kind = TOK_MERGE_SPLIT;
            m->a_len = (uint32_t)(sp - s);
            m->b_len = (uint32_t)(len - m->a_len - 1);
            memmove(sp, sp + 1, m->b_len);
            b->len--;
        } else {
            m->kind = TOK_MERGE_BAD_STRING;
            m->a_len = (uint32_t)len;
        }
        return CK_OK;
    }
    if (p->s[p->i] == '[') {
        if (depth + 1 > TOK_JSON_MAX_DEPTH) return enter(p, depth + 1);
        p->i++;
        ws(p);
        if (p->i < p->n && p->s[p->i] == '"') {
            if ((st = scan_string(p, b))) return st;
            size_t al = b->len - off;
            ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                ws(p);
                if (p->i < p->n && p->s[p->i] == '"') {
                    if ((st = scan_string(p, b))) return st;
                    ws(p);
                    if (p->i < p->n && p->s[p->i] == ']') {
                        p->i++;
                        m->kind = TOK_MERGE_PAIR;
                        m->a_len = (uint32_t)al;
                        m->b_len = (uint32_t)(b->len - off - al);
                        return CK_OK;
                    }
                }
            }
        }
        /* not a pair of strings: validate it as any value */
        b->len = off;
        p->i = start;
    }
    m->kind = TOK_MERGE_OTHER;
    return scan_value(p, depth);
}

/* model.merges: [merge, ...] */
static ck_status scan_merges(scanner *p, int depth)
{
    tok_json_scan *o = p->out;
    o->has_merges = 1;
    o->merges_beg = p->i;
    if (tok_buf_reserve(&o->merge_str, 64)) return oom(p); /* as above */
    ck_status st = enter(p, depth);
    if (st) return st;
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        o->merges_end = p->i;
        return CK_OK;
    }
    size_t cap = 0;
    for (int more = 1; more;) {
        if (p->i >= p->n) return bad(p, "unexpected end of text");
        if (o->n_merges == cap) {
            cap = cap ? cap * 2 : 4096;
            tok_json_merge *m = realloc(o->merges, cap * sizeof *m);
            if (!m) return oom(p);
            o->merges = m;
        }
        if ((st = scan_merge(p, depth, &o->merges[o->n_merges++]))) return st;
        if ((st = next_or_close(p, ']', &more))) return st;
    }
    o->merges_end = p->i;
    return CK_OK;
}

/* role: 0 any object, 1 the top level, 2 the top level's first "model". */
static ck_status scan_object(scanner *p, int depth, int role)
{
    ck_status st = enter(p, depth);
    if (st) return st;
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return CK_OK;
    }
    int seen_vocab = 0, seen_merges = 0;
    for (int more = 1; more;) {
        if ((st = scan_key(p))) return st;
        unsigned char c = p->i < p->n ? p->s[p->i] : 0;
        if (role == 1 && !p->seen_model && key_is(p, "model")) {
            p->seen_model = 1;
            st = c == '{' ? scan_object(p, depth + 1, 2) : scan_value(p, depth);
        } else if (role == 2 && !seen_vocab && key_is(p, "vocab")) {
            seen_vocab = 1;
            st = c == '{' ? scan_vocab(p, depth + 1) : scan_value(p, depth);
        } else if (role == 2 && !seen_merges && key_is(p, "merges")) {
            seen_merges = 1;
            st = c == '[' ? scan_merges(p, depth + 1) : scan_value(p, depth);
        } else
            st = scan_value(p, depth);
        if (st || (st = next_or_close(p, '}', &more))) return st;
    }
    return CK_OK;
}

static ck_status literal(scanner *p, const char *word)
{
    size_t l = strlen(word);
    if (p->n - p->i < l || memcmp(p->s + p->i, word, l)) return bad(p, "unexpected character");
    p->i += l;
    return CK_OK;
}

/* Any value at p->i (after whitespace); depth: the nesting of the enclosing value. */
static ck_status scan_value(scanner *p, int depth)
{
    ws(p);
    if (p->i >= p->n) return bad(p, "unexpected end of text");
    size_t beg;
    switch (p->s[p->i]) {
    case '"': return scan_string(p, NULL);
    case '{': return scan_object(p, depth + 1, 0);
    case '[': return scan_array(p, depth + 1);
    case 't': return literal(p, "true");
    case 'f': return literal(p, "false");
    case 'n': return literal(p, "null");
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return scan_number(p, &beg);
    default: return bad(p, "unexpected character");
    }
}

ck_status tok_json_scan_run(const char *what, const char *text, size_t len, tok_json_scan *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    scanner p = {(const unsigned char *)text, len, 0, what, err, {0}, out, 0};
    if (len > UINT32_MAX) return ck_fail(err, CK_E_UNSUPPORTED, "%s: larger than 4 GiB", what);
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) p.i = 3;
    ws(&p);
    ck_status st;
    if (p.i < p.n && p.s[p.i] == '{') st = scan_object(&p, 1, 1);
    else st = scan_value(&p, 0);
    if (!st) {
        ws(&p);
        if (p.i != p.n) st = bad(&p, "text after the top-level value");
    }
    tok_buf_free(&p.key);
    if (st) tok_json_scan_free(out);
    return st;
}

void tok_json_scan_free(tok_json_scan *sc)
{
    if (!sc) return;
    tok_buf_free(&sc->vocab_str);
    tok_buf_free(&sc->merge_str);
    free(sc->vocab);
    free(sc->merges);
    memset(sc, 0, sizeof *sc);
}

ck_status tok_json_scan_cut(const tok_json_scan *sc, const char *text, size_t len, char **out, size_t *out_len,
                            ck_error *err)
{
    typedef struct span {
        size_t beg, end;
        const char *with;
    } span;
    span cut[2], v = {sc->vocab_beg, sc->vocab_end, "{}"}, m = {sc->merges_beg, sc->merges_end, "[]"};
    size_t k = 0;
    if (sc->has_vocab) cut[k++] = v;
    if (sc->has_merges) cut[k++] = m;
    if (k == 2 && m.beg < v.beg) {
        cut[0] = m;
        cut[1] = v;
    }
    size_t total = len;
    for (size_t j = 0; j < k; j++) total -= cut[j].end - cut[j].beg - 2;
    char *d = malloc(total + 1), *q = d;
    if (!d) return ck_fail(err, CK_E_OUT_OF_MEMORY, "tokenizer.json: out of memory");
    size_t from = 0;
    for (size_t j = 0; j < k; j++) {
        memcpy(q, text + from, cut[j].beg - from);
        q += cut[j].beg - from;
        memcpy(q, cut[j].with, 2);
        q += 2;
        from = cut[j].end;
    }
    memcpy(q, text + from, len - from);
    q += len - from;
    *q = 0;
    *out = d;
    *out_len = total;
    return CK_OK;
}
