/* tok_load.c: build a tok_tokenizer from tokenizer.json (+ tokenizer_config.json).
 * The only file of engine/tok that sees cJSON: typed getters check cJSON_Is*, copy
 * values out, and the tree is deleted before returning. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tok_impl.h"

#define TJ "tokenizer.json"
#define TC "tokenizer_config.json"

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int get_bool(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = get(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *get_str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A cJSON string's byte length (cJSON strings are NUL-terminated; a "\u0000" escape
 * would truncate: such tokens are refused at the call sites that care). */
static size_t slen(const char *s) { return strlen(s); }

#define OOM(where) ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", where)

/* ---- components ----------------------------------------------------------------------- */
static ck_status parse_pattern(const cJSON *pat, const char *what, char **str, size_t *str_len,
                               tok_regex **re, ck_error *err)
{
    const char *s;
    if ((s = get_str(pat, "String"))) {
        *str = dup_n(s, slen(s));
        *str_len = slen(s);
        if (!*str) return OOM(what);
        if (!*str_len) return ck_fail(err, CK_E_FORMAT, "%s: empty String pattern", what);
        return CK_OK;
    }
    if ((s = get_str(pat, "Regex"))) return tok_regex_compile(s, slen(s), what, re, err);
    return ck_fail(err, CK_E_FORMAT, "%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", what);
}

static ck_status add_norm(tok_tokenizer *t, const cJSON *n, int depth, ck_error *err)
{
    if (cJSON_IsNull(n) || !n) return CK_OK;
    if (depth > 16) return ck_fail(err, CK_E_FORMAT, TJ ": normalizer: Sequences nested too deep");
    const char *type = get_str(n, "type");
    if (!type) return ck_fail(err, CK_E_FORMAT, TJ ": normalizer: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = get(n, "normalizers"), *it;
        if (!cJSON_IsArray(arr)) return ck_fail(err, CK_E_FORMAT, TJ ": normalizer Sequence: \"normalizers\" is not an array");
        cJSON_ArrayForEach(it, arr) {
            ck_status st = add_norm(t, it, depth + 1, err);
            if (st) return st;
        }
        return CK_OK;
    }
    tok_norm_step s;
    memset(&s, 0, sizeof s);
    if (!strcmp(type, "Prepend")) {
        const char *p = get_str(n, "prepend");
        if (!p) return ck_fail(err, CK_E_FORMAT, TJ ": normalizer Prepend: missing \"prepend\"");
        s.kind = TN_PREPEND;
        s.a = dup_n(p, slen(p));
        s.a_len = slen(p);
        if (!s.a) return OOM(TJ);
    } else if (!strcmp(type, "Replace")) {
        const char *c = get_str(n, "content");
        if (!c) return ck_fail(err, CK_E_FORMAT, TJ ": normalizer Replace: missing \"content\"");
        s.b = dup_n(c, slen(c));
        s.b_len = slen(c);
        if (!s.b) return OOM(TJ);
        ck_status st = parse_pattern(get(n, "pattern"), TJ ": normalizer Replace", &s.a, &s.a_len, &s.re, err);
        if (st) {
            free(s.b);
            free(s.a);
            return st;
        }
        s.kind = s.re ? TN_REPLACE_RE : TN_REPLACE_STR;
    } else if (!strcmp(type, "NFC")) s.kind = TN_NFC;
    else if (!strcmp(type, "NFKC")) s.kind = TN_NFKC;
    else if (!strcmp(type, "NFD")) s.kind = TN_NFD;
    else if (!strcmp(type, "NFKD")) s.kind = TN_NFKD;
    else if (!strcmp(type, "Strip")) {
        s.kind = TN_STRIP;
        s.left = get_bool(n, "strip_left", 1);
        s.right = get_bool(n, "strip_right", 1);
    } else
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": normalizer type \"%s\" is not supported", type);
    tok_norm_step *p = realloc(t->norm, (t->n_norm + 1) * sizeof *p);
    if (!p) {
        free(s.a);
        free(s.b);
        tok_regex_free(s.re);
        return OOM(TJ);
    }
    t->norm = p;
    t->norm[t->n_norm++] = s;
    return CK_OK;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static ck_status add_pre(tok_tokenizer *t, const cJSON *n, int depth, ck_error *err)
{
    if (cJSON_IsNull(n) || !n) return CK_OK;
    if (depth > 16) return ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer: Sequences nested too deep");
    const char *type = get_str(n, "type");
    if (!type) return ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = get(n, "pretokenizers"), *it;
        if (!cJSON_IsArray(arr)) return ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer Sequence: \"pretokenizers\" is not an array");
        cJSON_ArrayForEach(it, arr) {
            ck_status st = add_pre(t, it, depth + 1, err);
            if (st) return st;
        }
        return CK_OK;
    }
    tok_pre_step s;
    memset(&s, 0, sizeof s);
    ck_status st = CK_OK;
    if (!strcmp(type, "Split")) {
        s.kind = TP_SPLIT;
        const char *b = get_str(n, "behavior");
        if (!b) return ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer Split: missing \"behavior\"");
        if (!strcmp(b, "Removed")) s.behavior = TS_REMOVED;
        else if (!strcmp(b, "Isolated")) s.behavior = TS_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) s.behavior = TS_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) s.behavior = TS_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) s.behavior = TS_CONTIGUOUS;
        else return ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer Split: unknown behavior \"%s\"", b);
        s.invert = get_bool(n, "invert", 0);
        for (size_t i = 0; i < t->n_pre; i++)
            if (t->pre[i].kind == TP_BYTELEVEL || t->pre[i].kind == TP_METASPACE)
                return ck_fail(err, CK_E_UNSUPPORTED, TJ ": pre_tokenizer Split after ByteLevel/Metaspace is not supported");
        st = parse_pattern(get(n, "pattern"), TJ ": pre_tokenizer Split", &s.str, &s.str_len, &s.re, err);
    } else if (!strcmp(type, "ByteLevel")) {
        s.kind = TP_BYTELEVEL;
        s.add_prefix_space = get_bool(n, "add_prefix_space", 1);
        if (get_bool(n, "use_regex", 1))
            st = tok_regex_compile(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, TJ ": pre_tokenizer ByteLevel", &s.re, err);
    } else if (!strcmp(type, "Metaspace")) {
        s.kind = TP_METASPACE;
        const char *r = get_str(n, "replacement");
        if (!r) r = "\xE2\x96\x81";
        s.str = dup_n(r, slen(r));
        s.str_len = slen(r);
        if (!s.str) return OOM(TJ);
        s.split = get_bool(n, "split", 1);
        const char *ps = get_str(n, "prepend_scheme");
        if (ps) {
            if (!strcmp(ps, "always")) s.scheme = TPS_ALWAYS;
            else if (!strcmp(ps, "first")) s.scheme = TPS_FIRST;
            else if (!strcmp(ps, "never")) s.scheme = TPS_NEVER;
            else st = ck_fail(err, CK_E_FORMAT, TJ ": pre_tokenizer Metaspace: unknown prepend_scheme \"%s\"", ps);
        } else
            s.scheme = get_bool(n, "add_prefix_space", 1) ? TPS_ALWAYS : TPS_NEVER;
    } else if (!strcmp(type, "Digits")) {
        s.kind = TP_DIGITS;
        s.individual_digits = get_bool(n, "individual_digits", 0);
    } else
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": pre_tokenizer type \"%s\" is not supported", type);
    tok_pre_step *p = st ? NULL : realloc(t->pre, (t->n_pre + 1) * sizeof *p);
    if (!p) {
        free(s.str);
        tok_regex_free(s.re);
        return st ? st : OOM(TJ);
    }
    t->pre = p;
    t->pre[t->n_pre++] = s;
    return CK_OK;
}

static ck_status add_dec(tok_tokenizer *t, const cJSON *n, int depth, ck_error *err)
{
    if (cJSON_IsNull(n) || !n) return CK_OK;
    if (depth > 16) return ck_fail(err, CK_E_FORMAT, TJ ": decoder: Sequences nested too deep");
    const char *type = get_str(n, "type");
    if (!type) return ck_fail(err, CK_E_FORMAT, TJ ": decoder: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = get(n, "decoders"), *it;
        if (!cJSON_IsArray(arr)) return ck_fail(err, CK_E_FORMAT, TJ ": decoder Sequence: \"decoders\" is not an array");
        cJSON_ArrayForEach(it, arr) {
            ck_status st = add_dec(t, it, depth + 1, err);
            if (st) return st;
        }
        return CK_OK;
    }
    tok_dec_step s;
    memset(&s, 0, sizeof s);
    if (!strcmp(type, "ByteLevel")) s.kind = TD_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) s.kind = TD_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) s.kind = TD_FUSE;
    else if (!strcmp(type, "Strip")) {
        s.kind = TD_STRIP;
        const char *c = get_str(n, "content");
        const cJSON *a = get(n, "start"), *b = get(n, "stop");
        if (!c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || b->valuedouble < 0)
            return ck_fail(err, CK_E_FORMAT, TJ ": decoder Strip: needs \"content\", \"start\", \"stop\"");
        s.start = a->valuedouble > 1e6 ? 1000000 : (int)a->valuedouble;
        s.stop = b->valuedouble > 1e6 ? 1000000 : (int)b->valuedouble;
        s.a = dup_n(c, slen(c));
        s.a_len = slen(c);
        if (!s.a) return OOM(TJ);
    } else if (!strcmp(type, "Replace")) {
        s.kind = TD_REPLACE;
        const char *c = get_str(n, "content"), *p = get_str(get(n, "pattern"), "String");
        if (!c || !p || !*p)
            return ck_fail(err, CK_E_UNSUPPORTED, TJ ": decoder Replace: only non-empty String patterns are supported");
        s.a = dup_n(p, slen(p));
        s.a_len = slen(p);
        s.b = dup_n(c, slen(c));
        s.b_len = slen(c);
        if (!s.a || !s.b) {
            free(s.a);
            free(s.b);
            return OOM(TJ);
        }
    } else if (!strcmp(type, "Metaspace")) {
        s.kind = TD_METASPACE;
        const char *r = get_str(n, "replacement");
        if (!r) r = "\xE2\x96\x81";
        s.a = dup_n(r, slen(r));
        s.a_len = slen(r);
        if (!s.a) return OOM(TJ);
        const char *ps = get_str(n, "prepend_scheme");
        s.prepend = ps ? strcmp(ps, "never") != 0 : get_bool(n, "add_prefix_space", 1);
    } else
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": decoder type \"%s\" is not supported", type);
    tok_dec_step *p = realloc(t->dec, (t->n_dec + 1) * sizeof *p);
    if (!p) {
        free(s.a);
        free(s.b);
        return OOM(TJ);
    }
    t->dec = p;
    t->dec[t->n_dec++] = s;
    return CK_OK;
}

static ck_status append_ids(int32_t **arr, size_t *n, const int32_t *ids, size_t k, int front)
{
    int32_t *p = realloc(*arr, (*n + k + 1) * sizeof *p);
    if (!p) return CK_E_OUT_OF_MEMORY;
    *arr = p;
    if (!k) return CK_OK;
    if (front) {
        if (*n) memmove(p + k, p, *n * sizeof *p);
        memcpy(p, ids, k * sizeof *p);
    } else
        memcpy(p + *n, ids, k * sizeof *p);
    *n += k;
    return CK_OK;
}

/* Look a token string up: id, or -1. */
static int32_t lookup(const tok_tokenizer *t, const char *s)
{
    return s ? tok_strmap_get(&t->vocab, s, slen(s)) : -1;
}

static ck_status add_post(tok_tokenizer *t, const cJSON *n, int depth, ck_error *err)
{
    if (cJSON_IsNull(n) || !n) return CK_OK;
    if (depth > 16) return ck_fail(err, CK_E_FORMAT, TJ ": post_processor: Sequences nested too deep");
    const char *type = get_str(n, "type");
    if (!type) return ck_fail(err, CK_E_FORMAT, TJ ": post_processor: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = get(n, "processors"), *it;
        if (!cJSON_IsArray(arr)) return ck_fail(err, CK_E_FORMAT, TJ ": post_processor Sequence: \"processors\" is not an array");
        cJSON_ArrayForEach(it, arr) {
            ck_status st = add_post(t, it, depth + 1, err);
            if (st) return st;
        }
        return CK_OK;
    }
    if (!strcmp(type, "ByteLevel")) return CK_OK; /* offsets only */
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = get(n, "cls"), *sep = get(n, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si) || ci->valuedouble < 0 || si->valuedouble < 0)
            return ck_fail(err, CK_E_FORMAT, TJ ": post_processor %s: \"cls\"/\"sep\" must be [token, id]", type);
        int32_t c = (int32_t)ci->valuedouble, s = (int32_t)si->valuedouble;
        if (append_ids(&t->post_prefix, &t->n_post_prefix, &c, 1, 1) ||
            append_ids(&t->post_suffix, &t->n_post_suffix, &s, 1, 0))
            return OOM(TJ);
        return CK_OK;
    }
    if (strcmp(type, "TemplateProcessing"))
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": post_processor type \"%s\" is not supported", type);
    const cJSON *single = get(n, "single"), *specials = get(n, "special_tokens"), *it;
    if (!cJSON_IsArray(single)) return ck_fail(err, CK_E_FORMAT, TJ ": post_processor TemplateProcessing: \"single\" is not an array");
    int32_t *pre = NULL, *suf = NULL;
    size_t n_pre = 0, n_suf = 0;
    int seen_a = 0;
    ck_status st = CK_OK;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = get(it, "SpecialToken"), *sq = get(it, "Sequence");
        if (sq) {
            const char *id = get_str(sq, "id");
            if (!id || strcmp(id, "A") || seen_a) {
                st = ck_fail(err, CK_E_UNSUPPORTED, TJ ": post_processor TemplateProcessing: \"single\" must hold one Sequence A");
                break;
            }
            seen_a = 1;
            continue;
        }
        const char *name = get_str(sp, "id");
        const cJSON *def = name ? get(specials, name) : NULL, *ids = get(def, "ids"), *x;
        if (!cJSON_IsArray(ids)) {
            st = ck_fail(err, CK_E_FORMAT, TJ ": post_processor TemplateProcessing: special token \"%s\" has no \"ids\" in special_tokens",
                         name ? name : "?");
            break;
        }
        cJSON_ArrayForEach(x, ids) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2147483647.0) {
                st = ck_fail(err, CK_E_FORMAT, TJ ": post_processor TemplateProcessing: bad id for \"%s\"", name);
                break;
            }
            int32_t v = (int32_t)x->valuedouble;
            if (append_ids(seen_a ? &suf : &pre, seen_a ? &n_suf : &n_pre, &v, 1, 0)) {
                st = OOM(TJ);
                break;
            }
        }
        if (st) break;
    }
    if (!st && !seen_a) st = ck_fail(err, CK_E_FORMAT, TJ ": post_processor TemplateProcessing: \"single\" lacks Sequence A");
    if (!st && (append_ids(&t->post_prefix, &t->n_post_prefix, pre, n_pre, 1) ||
                append_ids(&t->post_suffix, &t->n_post_suffix, suf, n_suf, 0)))
        st = OOM(TJ);
    free(pre);
    free(suf);
    return st;
}

/* ---- model ------------------------------------------------------------------------------ */
static ck_status ensure_vocab(tok_tokenizer *t, int32_t n)
{
    if (n <= t->n_vocab) return CK_OK;
    char **tk = realloc(t->tokens, (size_t)n * sizeof *tk);
    if (tk) t->tokens = tk;
    uint32_t *tl = realloc(t->token_len, (size_t)n * sizeof *tl);
    if (tl) t->token_len = tl;
    uint8_t *fl = realloc(t->flags, (size_t)n);
    if (fl) t->flags = fl;
    if (!tk || !tl || !fl) return CK_E_OUT_OF_MEMORY;
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->tokens[i] = NULL;
        t->token_len[i] = 0;
        t->flags[i] = 0;
    }
    t->n_vocab = n;
    return CK_OK;
}

/* Convert a byte-level vocabulary string to raw bytes; -1 if a char is unmapped. */
static long unmap_bytes(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int b = k ? tok_cp_to_byte(cp) : -1;
        if (b < 0) return -1;
        out[o++] = (char)b;
        i += k;
    }
    return (long)o;
}

enum { BLOCK = 32 }; /* keys hashed and prefetched at a time when building the maps */

static int in_vocab_store(const tok_tokenizer *t, const char *p)
{
    uintptr_t x = (uintptr_t)p, lo = (uintptr_t)t->vocab_store;
    return t->vocab_store && x >= lo && x < lo + t->vocab_store_len;
}

/* model.vocab and model.merges come from the scanner (sc: tok_json_scan.c); the cJSON
 * tree holds {} and [] in their place. */
static ck_status parse_model(tok_tokenizer *t, const cJSON *model, tok_json_scan *sc, ck_error *err)
{
    const char *type = get_str(model, "type");
    if (!cJSON_IsObject(model)) return ck_fail(err, CK_E_MISSING, TJ ": \"model\" is missing or not an object");
    if (type && strcmp(type, "BPE"))
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": model type \"%s\" is not supported (only BPE)", type);
    const cJSON *vocab = get(model, "vocab"), *merges = get(model, "merges");
    if (!cJSON_IsObject(vocab)) return ck_fail(err, CK_E_FORMAT, TJ ": model.vocab is missing or not an object");
    if (!cJSON_IsArray(merges)) return ck_fail(err, CK_E_FORMAT, TJ ": model.merges is missing or not an array");
    if (!sc->has_vocab || !sc->has_merges) /* the scanner and cJSON disagree: a bug, not the file's fault */
        return ck_fail(err, CK_E_INTERNAL, TJ ": model.vocab / model.merges not found by the scanner");
    const cJSON *dropout = get(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": model.dropout %g is not supported", dropout->valuedouble);
    const char *cs = get_str(model, "continuing_subword_prefix"), *ew = get_str(model, "end_of_word_suffix");
    if ((cs && *cs) || (ew && *ew))
        return ck_fail(err, CK_E_UNSUPPORTED, TJ ": model.continuing_subword_prefix / end_of_word_suffix are not supported");
    t->byte_fallback = get_bool(model, "byte_fallback", 0);
    t->fuse_unk = get_bool(model, "fuse_unk", 0);
    t->ignore_merges = get_bool(model, "ignore_merges", 0);

    int32_t max_id = -1;
    for (size_t i = 0; i < sc->n_vocab; i++) {
        const tok_json_vocab_entry *e = &sc->vocab[i];
        if (!e->is_number || e->id < 0 || e->id > 16777216.0 || e->id != (double)(int32_t)e->id)
            return ck_fail(err, CK_E_FORMAT, TJ ": model.vocab[\"%.64s\"]: id must be an integer in [0, 2^24]",
                           sc->vocab_str.p + e->off);
        if ((int32_t)e->id > max_id) max_id = (int32_t)e->id;
    }
    if (ensure_vocab(t, max_id + 1)) return OOM(TJ);
    if (tok_strmap_init(&t->vocab, sc->n_vocab + 1024)) return OOM(TJ);
    /* the strings stay where the scanner unescaped them: the store is taken over */
    t->vocab_store = sc->vocab_str.p;
    t->vocab_store_len = sc->vocab_str.len;
    sc->vocab_str.p = NULL;
    sc->vocab_str.len = sc->vocab_str.cap = 0;
    size_t sym_total = 0;
    for (size_t i = 0; i < sc->n_vocab; i++) {
        const tok_json_vocab_entry *e = &sc->vocab[i];
        int32_t id = (int32_t)e->id;
        if (t->tokens[id]) continue; /* two strings for one id: the first wins */
        t->tokens[id] = t->vocab_store + e->off;
        t->token_len[id] = e->len;
        sym_total += e->len;
    }
    /* vocab map: added tokens are put first by the caller; here the model's. In blocks:
       hash, prefetch the slots, then insert (see tok_strmap_prefetch). */
    uint64_t h[3 * BLOCK];
    for (int32_t id0 = 0; id0 < t->n_vocab; id0 += BLOCK) {
        int32_t end = id0 + BLOCK < t->n_vocab ? id0 + BLOCK : t->n_vocab;
        for (int32_t id = id0; id < end; id++)
            if (t->tokens[id]) tok_strmap_prefetch(&t->vocab, h[id - id0] = tok_hash_bytes(t->tokens[id], t->token_len[id]));
        for (int32_t id = id0; id < end; id++)
            if (t->tokens[id] && tok_strmap_put_h(&t->vocab, t->tokens[id], t->token_len[id], h[id - id0], id) < 0)
                return OOM(TJ);
    }

    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    if (t->byte_level) {
        if (!(t->sym_store = malloc(sym_total + 1))) return OOM(TJ);
        if (tok_strmap_init(&t->symbols, sc->n_vocab)) return OOM(TJ);
        size_t off = 0;
        for (int32_t id0 = 0; id0 < t->n_vocab; id0 += BLOCK) {
            int32_t end = id0 + BLOCK < t->n_vocab ? id0 + BLOCK : t->n_vocab, sid[BLOCK];
            size_t soff[BLOCK], slen_[BLOCK], ns = 0;
            for (int32_t id = id0; id < end; id++) {
                if (!t->tokens[id]) continue;
                long k = unmap_bytes(t->tokens[id], t->token_len[id], t->sym_store + off);
                if (k <= 0) continue;
                sid[ns] = id;
                soff[ns] = off;
                slen_[ns] = (size_t)k;
                tok_strmap_prefetch(&t->symbols, h[ns] = tok_hash_bytes(t->sym_store + off, (size_t)k));
                ns++;
                if (k == 1 && t->byte_ids[(unsigned char)t->sym_store[off]] < 0)
                    t->byte_ids[(unsigned char)t->sym_store[off]] = id;
                off += (size_t)k;
            }
            for (size_t j = 0; j < ns; j++)
                if (tok_strmap_put_h(&t->symbols, t->sym_store + soff[j], slen_[j], h[j], sid[j]) < 0) return OOM(TJ);
        }
    } else {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            int32_t id = tok_strmap_get(&t->vocab, name, 6);
            if (id >= 0) {
                t->byte_ids[b] = id;
                t->flags[id] |= TOKF_BYTE;
            }
        }
    }

    const char *unk = get_str(model, "unk_token");
    t->unk_id = unk ? tok_strmap_get(&t->vocab, unk, slen(unk)) : -1;
    if (unk && t->unk_id < 0)
        return ck_fail(err, CK_E_FORMAT, TJ ": model.unk_token \"%.64s\" is not in the vocabulary", unk);

    if (tok_pairmap_init(&t->merges, sc->n_merges + 16)) return OOM(TJ);
    for (size_t r0 = 0; r0 < sc->n_merges; r0 += BLOCK) {
        size_t end = r0 + BLOCK < sc->n_merges ? r0 + BLOCK : sc->n_merges;
        int32_t ia[BLOCK], ib[BLOCK], im[BLOCK];
        for (size_t r = r0; r < end; r++) { /* hash a, b and a+b; prefetch their slots */
            const tok_json_merge *m = &sc->merges[r];
            if (m->kind != TOK_MERGE_SPLIT && m->kind != TOK_MERGE_PAIR) continue;
            const char *a = sc->merge_str.p + m->off;
            uint64_t *hr = &h[3 * (r - r0)];
            tok_strmap_prefetch(&t->vocab, hr[0] = tok_hash_bytes(a, m->a_len));
            tok_strmap_prefetch(&t->vocab, hr[1] = tok_hash_bytes(a + m->a_len, m->b_len));
            tok_strmap_prefetch(&t->vocab, hr[2] = tok_hash_bytes(a, m->a_len + m->b_len));
        }
        for (size_t r = r0; r < end; r++) { /* look them up, in order, so the first bad merge is named */
            const tok_json_merge *m = &sc->merges[r];
            const char *a = sc->merge_str.p + m->off, *b = a + m->a_len;
            size_t al = m->a_len, bl = m->b_len, j = r - r0;
            if (m->kind == TOK_MERGE_BAD_STRING)
                return ck_fail(err, CK_E_FORMAT, TJ ": model.merges[%d]: \"%.*s\" is not two tokens separated by one space",
                               (int)r, (int)(al > 64 ? 64 : al), a);
            if (m->kind == TOK_MERGE_OTHER)
                return ck_fail(err, CK_E_FORMAT, TJ ": model.merges[%d]: neither \"a b\" nor [\"a\", \"b\"]", (int)r);
            /* a and b lie side by side: the merged token is a[0 .. al + bl) */
            ia[j] = tok_strmap_get_h(&t->vocab, a, al, h[3 * j]);
            ib[j] = tok_strmap_get_h(&t->vocab, b, bl, h[3 * j + 1]);
            im[j] = tok_strmap_get_h(&t->vocab, a, al + bl, h[3 * j + 2]);
            if (ia[j] < 0 || ib[j] < 0 || im[j] < 0)
                return ck_fail(err, CK_E_FORMAT, TJ ": model.merges[%d]: \"%.*s\" + \"%.*s\": %s is not in the vocabulary",
                               (int)r, (int)(al > 64 ? 64 : al), a, (int)(bl > 64 ? 64 : bl), b,
                               ia[j] < 0 ? "the left token" : ib[j] < 0 ? "the right token" : "the merged token");
            tok_pairmap_prefetch(&t->merges, h[3 * j] = tok_pair_hash(ia[j], ib[j]));
        }
        for (size_t r = r0; r < end; r++) { /* a repeated pair keeps its first (lowest) rank */
            size_t j = r - r0;
            if (tok_pairmap_put_h(&t->merges, ia[j], ib[j], h[3 * j], (int32_t)r, im[j]) < 0) return OOM(TJ);
        }
    }
    return CK_OK;
}

static ck_status parse_added(tok_tokenizer *t, const cJSON *arr, ck_error *err)
{
    if (!arr || cJSON_IsNull(arr)) return CK_OK;
    if (!cJSON_IsArray(arr)) return ck_fail(err, CK_E_FORMAT, TJ ": \"added_tokens\" is not an array");
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    if (!n) return CK_OK;
    if (!(t->added = calloc(n, sizeof *t->added))) return OOM(TJ);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *idv = get(it, "id");
        const char *c = get_str(it, "content");
        if (!cJSON_IsNumber(idv) || idv->valuedouble < 0 || idv->valuedouble > 16777216.0 || !c || !*c)
            return ck_fail(err, CK_E_FORMAT, TJ ": added_tokens[%zu]: needs an integer \"id\" and a non-empty \"content\"", i);
        tok_added *a = &t->added[i];
        a->id = (int32_t)idv->valuedouble;
        a->len = slen(c);
        if (!(a->content = dup_n(c, a->len))) return OOM(TJ);
        a->special = (uint8_t)get_bool(it, "special", 0);
        a->lstrip = (uint8_t)get_bool(it, "lstrip", 0);
        a->rstrip = (uint8_t)get_bool(it, "rstrip", 0);
        a->single_word = (uint8_t)get_bool(it, "single_word", 0);
        a->normalized = (uint8_t)get_bool(it, "normalized", !a->special);
        t->n_added = ++i;
        if (ensure_vocab(t, a->id + 1)) return OOM(TJ);
        if (!t->tokens[a->id] || t->token_len[a->id] != a->len || memcmp(t->tokens[a->id], c, a->len)) {
            char *d = dup_n(c, a->len);
            if (!d) return OOM(TJ);
            if (t->tokens[a->id] && !in_vocab_store(t, t->tokens[a->id])) { /* the vocab map still points at it */
                char **o = realloc(t->orphans, (t->n_orphans + 1) * sizeof *o);
                if (!o) {
                    free(d);
                    return OOM(TJ);
                }
                t->orphans = o;
                t->orphans[t->n_orphans++] = t->tokens[a->id];
            }
            t->tokens[a->id] = d;
            t->token_len[a->id] = (uint32_t)a->len;
        }
        t->flags[a->id] |= TOKF_ADDED | (a->special ? TOKF_SPECIAL : 0);
        if (a->normalized) t->has_normalized_added = 1;
    }
    return CK_OK;
}

static int by_length_desc(const void *x, const void *y)
{
    const tok_added *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- tokenizer_config.json ---------------------------------------------------------------- */
static const char *token_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return v->valuestring;
    return get_str(v, "content");
}

/* Mark a token that transformers counts among all_special_ids (TOKF_NAMED). */
static void mark_named(tok_tokenizer *t, const cJSON *v)
{
    const char *name = token_name(v);
    int32_t id = lookup(t, name);
    if (id >= 0) t->flags[id] |= TOKF_NAMED;
}

/* transformers 5's tokenizer classes pass their named special tokens to the backend as
 * special tokens, so decode(skip_special_tokens=True) drops them even where tokenizer.json
 * says "special": false. The names: tokenizer_config.json's (else special_tokens_map.json's)
 * *_token fields, additional_special_tokens and extra_special_tokens; a *_token field absent
 * from both takes the class's __init__ default (transformers 5.17 source). */
static void mark_named_specials(tok_tokenizer *t, const cJSON *cfg, const cJSON *stm, const char *cls)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
    static const struct {
        const char *cls, *key, *value;
    } defaults[] = {
        /* models/gemma/tokenization_gemma.py: GemmaTokenizer(TokenizersBackend).__init__ */
        {"GemmaTokenizer", "unk_token", "<unk>"}, {"GemmaTokenizer", "bos_token", "<bos>"},
        {"GemmaTokenizer", "eos_token", "<eos>"}, {"GemmaTokenizer", "pad_token", "<pad>"},
        {"GemmaTokenizer", "mask_token", "<mask>"},
    };
    size_t cl = cls ? strlen(cls) : 0;
    if (cl > 4 && !strcmp(cls + cl - 4, "Fast")) cl -= 4; /* transformers 5: XFast is X */
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = get(cfg, keys[k]);
        if (!v) v = get(stm, keys[k]);
        if (v) {
            mark_named(t, v);
            continue;
        }
        for (size_t d = 0; d < sizeof defaults / sizeof *defaults; d++)
            if (cls && strlen(defaults[d].cls) == cl && !strncmp(cls, defaults[d].cls, cl) &&
                !strcmp(defaults[d].key, keys[k])) {
                int32_t id = lookup(t, defaults[d].value);
                if (id >= 0) t->flags[id] |= TOKF_NAMED;
            }
    }
    static const char *const lists[] = {"additional_special_tokens", "extra_special_tokens"};
    for (size_t k = 0; k < 2; k++) {
        const cJSON *v = get(cfg, lists[k]), *it;
        if (!v) v = get(stm, lists[k]);
        if (cJSON_IsArray(v) || (cJSON_IsObject(v) && !get(v, "content"))) {
            cJSON_ArrayForEach(it, v) mark_named(t, it); /* a list, or a {name: token} map */
        } else if (v)
            mark_named(t, v);
    }
}

static ck_status parse_config(tok_tokenizer *t, const cJSON *cfg, const cJSON *stm, ck_error *err)
{
    const char *bos = token_name(get(cfg, "bos_token")), *eos = token_name(get(cfg, "eos_token"));
    if (!bos && !get(cfg, "bos_token")) bos = token_name(get(stm, "bos_token"));
    if (!eos && !get(cfg, "eos_token")) eos = token_name(get(stm, "eos_token"));
    t->bos_id = lookup(t, bos);
    t->eos_id = lookup(t, eos);
    t->clean_up_spaces = get_bool(cfg, "clean_up_tokenization_spaces", 0);

    const cJSON *ct = get(cfg, "chat_template");
    const char *tmpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, ct) {
            const char *name = get_str(it, "name"), *tt = get_str(it, "template");
            if (tt && (!tmpl || (name && !strcmp(name, "default")))) tmpl = tt;
        }
    }
    if (tmpl && !(t->chat_template = dup_n(tmpl, slen(tmpl)))) return OOM(TC);

    /* transformers' Llama-family tokenizer classes rebuild the post-processor from
     * add_bos_token / add_eos_token (defaults: true / false). */
    const char *cls = get_str(cfg, "tokenizer_class");
    if (cfg) mark_named_specials(t, cfg, stm, cls);
    static const char *const llama_like[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                             "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
    int override = 0;
    for (size_t i = 0; cls && i < sizeof llama_like / sizeof *llama_like; i++) override |= !strcmp(cls, llama_like[i]);
    if (override && t->n_pre == 0 && t->n_norm == 2 && t->norm[0].kind == TN_PREPEND &&
        t->norm[0].a_len == 3 && !memcmp(t->norm[0].a, "\xE2\x96\x81", 3) && t->norm[1].kind == TN_REPLACE_STR &&
        t->norm[1].a_len == 1 && t->norm[1].a[0] == ' ' && t->norm[1].b_len == 3 &&
        !memcmp(t->norm[1].b, "\xE2\x96\x81", 3)) {
        /* transformers 5 builds Llama tokenizers with a Metaspace pre-tokenizer
         * (prepend_scheme "always", no split) in place of the legacy Prepend + Replace
         * normalizer of older tokenizer.json files: " Hello" -> "▁Hello", not "▁▁Hello". */
        tok_pre_step *p = calloc(1, sizeof *p);
        if (!p) return OOM(TC);
        p->kind = TP_METASPACE;
        p->scheme = TPS_ALWAYS;
        p->split = 0;
        p->str = t->norm[1].b; /* "▁", taken over */
        p->str_len = 3;
        t->norm[1].b = NULL;
        for (size_t i = 0; i < t->n_norm; i++) {
            free(t->norm[i].a);
            free(t->norm[i].b);
        }
        free(t->norm);
        t->norm = NULL;
        t->n_norm = 0;
        t->pre = p;
        t->n_pre = 1;
    }
    if (override) {
        int add_bos = get_bool(cfg, "add_bos_token", 1), add_eos = get_bool(cfg, "add_eos_token", 0);
        t->n_post_prefix = t->n_post_suffix = 0;
        if (add_bos && t->bos_id < 0) return ck_fail(err, CK_E_CONFIG, TC ": add_bos_token is set but bos_token is unknown");
        if (add_eos && t->eos_id < 0) return ck_fail(err, CK_E_CONFIG, TC ": add_eos_token is set but eos_token is unknown");
        if ((add_bos && append_ids(&t->post_prefix, &t->n_post_prefix, &t->bos_id, 1, 0)) ||
            (add_eos && append_ids(&t->post_suffix, &t->n_post_suffix, &t->eos_id, 1, 0)))
            return OOM(TC);
    }
    return CK_OK;
}

static ck_status parse_json(const char *what, const char *s, size_t n, cJSON **out, ck_error *err)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!*out) {
        size_t off = end ? (size_t)(end - s) : 0;
        return ck_fail(err, CK_E_FORMAT, "%s: malformed JSON near byte %zu", what, off);
    }
    return CK_OK;
}

/* cJSON recurses per nesting level: refuse deep nesting before parsing. */
static ck_status check_depth(const char *what, const char *s, size_t n, ck_error *err)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > 64) return ck_fail(err, CK_E_FORMAT, "%s: JSON nested deeper than 64 levels (byte %zu)", what, i);
        } else if (c == ']' || c == '}')
            depth--;
    }
    return CK_OK;
}

/* Group added[] (already longest first) by first byte pair / single byte, stable, so
   that find_added tries only the tokens that can match at a position. */
static int index_added(tok_tokenizer *t)
{
    size_t n = t->n_added;
    t->added_idx1 = malloc((n + 1) * sizeof *t->added_idx1);
    t->added_idx2 = malloc((n + 1) * sizeof *t->added_idx2);
    t->added_start2 = calloc(65537, sizeof *t->added_start2);
    if (!t->added_idx1 || !t->added_idx2 || !t->added_start2) return -1;
    memset(t->added_start1, 0, sizeof t->added_start1);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *c = (const unsigned char *)t->added[i].content;
        if (t->added[i].len >= 2) t->added_start2[(size_t)c[0] * 256 + c[1] + 1]++;
        else t->added_start1[c[0] + 1]++;
    }
    for (size_t k = 0; k < 65536; k++) t->added_start2[k + 1] += t->added_start2[k];
    for (size_t k = 0; k < 256; k++) t->added_start1[k + 1] += t->added_start1[k];
    uint32_t *fill2 = malloc(65536 * sizeof *fill2), fill1[256];
    if (!fill2) return -1;
    memcpy(fill2, t->added_start2, 65536 * sizeof *fill2);
    memcpy(fill1, t->added_start1, sizeof fill1);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *c = (const unsigned char *)t->added[i].content;
        if (t->added[i].len >= 2) t->added_idx2[fill2[(size_t)c[0] * 256 + c[1]]++] = (uint32_t)i;
        else t->added_idx1[fill1[c[0]]++] = (uint32_t)i;
    }
    free(fill2);
    return 0;
}

ck_status tok_create_from_json3(const char *tj, size_t len, const char *cfg_json, size_t cfg_len,
                                const char *stm_json, size_t stm_len, tok_tokenizer **out, ck_error *err);

ck_status tok_create_from_json3(const char *tj, size_t len, const char *cfg_json, size_t cfg_len,
                                const char *stm_json, size_t stm_len, tok_tokenizer **out, ck_error *err)
{
    if (!out || !tj) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_create_from_json: NULL argument");
    *out = NULL;
    cJSON *root = NULL, *cfg = NULL, *stm = NULL;
    tok_json_scan sc;
    char *rest = NULL; /* tokenizer.json without model.vocab / model.merges, for cJSON */
    size_t rest_len = 0;
    ck_status st = tok_json_scan_run(TJ, tj, len, &sc, err);
    if (!st && (sc.has_vocab || sc.has_merges)) st = tok_json_scan_cut(&sc, tj, len, &rest, &rest_len, err);
    if (!st) st = parse_json(TJ, rest ? rest : tj, rest ? rest_len : len, &root, err);
    free(rest);
    if (!st && cfg_json) st = check_depth(TC, cfg_json, cfg_len, err);
    if (!st && cfg_json) st = parse_json(TC, cfg_json, cfg_len, &cfg, err);
    if (!st && stm_json && !check_depth("special_tokens_map.json", stm_json, stm_len, err))
        st = parse_json("special_tokens_map.json", stm_json, stm_len, &stm, err);
    if (st) goto done;
    if (!cJSON_IsObject(root)) {
        st = ck_fail(err, CK_E_FORMAT, TJ ": the top level is not an object");
        goto done;
    }
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        st = OOM(TJ);
        goto done;
    }
    t->bos_id = t->eos_id = t->unk_id = -1;
    if (!(st = add_norm(t, get(root, "normalizer"), 0, err)) && !(st = add_pre(t, get(root, "pre_tokenizer"), 0, err)) &&
        !(st = add_dec(t, get(root, "decoder"), 0, err))) {
        for (size_t i = 0; i < t->n_pre; i++) t->byte_level |= t->pre[i].kind == TP_BYTELEVEL;
        st = parse_model(t, get(root, "model"), &sc, err);
    }
    if (!st) st = parse_added(t, get(root, "added_tokens"), err);
    if (!st) {
        /* added contents resolve to their ids first (tokens[] already holds them) */
        for (size_t i = 0; i < t->n_added; i++) {
            tok_added *a = &t->added[i];
            int32_t old = tok_strmap_get(&t->vocab, a->content, a->len);
            if (old < 0) {
                if (tok_strmap_put(&t->vocab, a->content, a->len, a->id) < 0) st = OOM(TJ);
            }
        }
        if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, by_length_desc);
        for (size_t i = 0; i < t->n_added; i++) t->added_first[(unsigned char)t->added[i].content[0]] = 1;
        if (!st && index_added(t)) st = OOM(TJ);
    }
    if (!st) st = add_post(t, get(root, "post_processor"), 0, err);
    if (!st) st = parse_config(t, cfg, stm, err);
    if (st) tok_destroy(t);
    else *out = t;
done:
    tok_json_scan_free(&sc);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    return st;
}

ck_status tok_create_from_json(const char *tokenizer_json, size_t len, const char *tokenizer_config_json,
                               size_t cfg_len, tok_tokenizer **out, ck_error *err)
{
    return tok_create_from_json3(tokenizer_json, len, tokenizer_config_json, cfg_len, NULL, 0, out, err);
}

/* Read a whole file; *data NULL and CK_OK when optional and absent. */
static ck_status read_file(const char *dir, const char *name, int optional, char **data, size_t *len, ck_error *err)
{
    *data = NULL;
    *len = 0;
    size_t dl = strlen(dir), nl = strlen(name);
    char *path = malloc(dl + nl + 2);
    if (!path) return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", name);
    memcpy(path, dir, dl);
    path[dl] = '/';
    memcpy(path + dl + 1, name, nl + 1);
    FILE *f = fopen(path, "rb");
    ck_status st = CK_OK;
    if (!f) {
        if (!optional) st = ck_fail(err, CK_E_MISSING, "%s: cannot open", path);
        free(path);
        return st;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1; /* a hint: the loop reads to EOF anyway */
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) cap = (size_t)size + 1;
    else rewind(f);
    for (;;) {
        if (!buf || n == cap) {
            if (buf || !cap) cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, cap);
            if (!p) {
                st = ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", path);
                break;
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) st = ck_fail(err, CK_E_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    free(path);
    if (st) {
        free(buf);
        return st;
    }
    *data = buf;
    *len = n;
    return CK_OK;
}

/* tokenizer.json mapped read-only (it is large: 9-33 MB; a mapping of the page cache costs
 * less than a fresh buffer's page faults plus the copy). *data NULL when it cannot be
 * mapped (then read_file is used). */
static void map_file(const char *dir, const char *name, const char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            *data = m;
            *len = (size_t)sb.st_size;
        }
    }
    close(fd);
}

ck_status tok_create_from_dir(const char *model_dir, tok_tokenizer **out, ck_error *err)
{
    if (!model_dir || !out) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_create_from_dir: NULL argument");
    *out = NULL;
    char *tj = NULL, *cfg = NULL, *stm = NULL;
    const char *mapped = NULL;
    size_t tl = 0, cl, sl, ml = 0;
    map_file(model_dir, TJ, &mapped, &ml);
    ck_status st = mapped ? CK_OK : read_file(model_dir, TJ, 0, &tj, &tl, err);
    if (!st) st = read_file(model_dir, TC, 1, &cfg, &cl, err);
    if (!st) st = read_file(model_dir, "special_tokens_map.json", 1, &stm, &sl, err);
    if (!st) st = tok_create_from_json3(mapped ? mapped : tj, mapped ? ml : tl, cfg, cl, stm, sl, out, err);
    if (st) ck_error_prefix(err, "%s", model_dir);
    if (mapped) munmap((void *)(uintptr_t)mapped, ml);
    free(tj);
    free(cfg);
    free(stm);
    return st;
}

void tok_destroy(tok_tokenizer *t)
{
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (!in_vocab_store(t, t->tokens[i])) free(t->tokens[i]);
    free(t->vocab_store);
    free(t->tokens);
    for (size_t i = 0; i < t->n_orphans; i++) free(t->orphans[i]);
    free(t->orphans);
    free(t->token_len);
    free(t->flags);
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->symbols);
    tok_pairmap_free(&t->merges);
    free(t->sym_store);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        tok_regex_free(t->norm[i].re);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++) {
        free(t->pre[i].str);
        tok_regex_free(t->pre[i].re);
    }
    free(t->pre);
    for (size_t i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    free(t->post_prefix);
    free(t->post_suffix);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->added_idx1);
    free(t->added_idx2);
    free(t->added_start2);
    free(t->chat_template);
    free(t);
}
