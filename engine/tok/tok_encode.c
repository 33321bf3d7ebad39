/* tok_encode.c: text -> ids.
 *
 * Pipeline (as the reference runs it): split the raw text on added tokens that are
 * not normalized; normalize each remaining segment; split it on normalized added
 * tokens; pre-tokenize into words; BPE each word; add the post-processor's ids.
 * Everything per call lives in an enc_ctx, so a tokenizer is shared read-only.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

typedef struct span {
    size_t s, e;
    int orig0; /* starts at offset 0 of the original text (Metaspace "first") */
} span;

typedef struct spanvec {
    span *p;
    size_t len, cap;
} spanvec;

typedef struct sym {
    int32_t id, prev, next;
    int alive;
} sym;

typedef struct heap_item {
    int32_t rank, pos, left, right, merged;
} heap_item;

/* Per-call BPE word cache (direct-mapped): BPE of a word depends only on its bytes, so
 * long texts reuse the ids of words seen before. Only for calls on longer texts. */
enum { WC_SLOTS = 4096, WC_KEY = 30, WC_IDS = 8, WC_MIN_TEXT = 2048 };
typedef struct wc_slot {
    uint64_t h;
    uint8_t klen, nids;
    char key[WC_KEY];
    int32_t ids[WC_IDS];
} wc_slot;

typedef struct enc_ctx {
    const tok_tokenizer *t;
    const tok_encode_opts *opts;
    tok_match *m;
    tok_buf valid, norm, tmp, pre_a, pre_b;
    spanvec sp_a, sp_b, pieces;
    sym *syms;
    size_t syms_cap;
    heap_item *heap;
    size_t heap_len, heap_cap;
    tok_ivec out;
    wc_slot *wc; /* NULL: no cache */
    ck_error *err;
} enc_ctx;

#define ENC_OOM(c) ck_fail((c)->err, CK_E_OUT_OF_MEMORY, "tok_encode: out of memory")

static int span_push(spanvec *v, size_t s, size_t e, int orig0)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        span *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len].s = s;
    v->p[v->len].e = e;
    v->p[v->len].orig0 = orig0;
    v->len++;
    return 0;
}

/* ---- BPE -------------------------------------------------------------------------- */
static int heap_less(const heap_item *a, const heap_item *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(enc_ctx *c, heap_item it)
{
    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        heap_item *p = realloc(c->heap, cap * sizeof *p);
        if (!p) return -1;
        c->heap = p;
        c->heap_cap = cap;
    }
    size_t i = c->heap_len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_less(&it, &c->heap[up])) break;
        c->heap[i] = c->heap[up];
        i = up;
    }
    c->heap[i] = it;
    return 0;
}

static heap_item heap_pop(enc_ctx *c)
{
    heap_item top = c->heap[0], last = c->heap[--c->heap_len];
    size_t i = 0, n = c->heap_len;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const heap_item *bi = &last;
        if (l < n && heap_less(&c->heap[l], bi)) {
            best = l;
            bi = &c->heap[l];
        }
        if (l + 1 < n && heap_less(&c->heap[l + 1], bi)) best = l + 1;
        if (best == i) break;
        c->heap[i] = c->heap[best];
        i = best;
    }
    if (n) c->heap[i] = last;
    return top;
}

static int push_pair(enc_ctx *c, int32_t pos)
{
    int32_t nx = c->syms[pos].next, rank, merged;
    if (nx < 0) return 0;
    if (!tok_pairmap_get(&c->t->merges, c->syms[pos].id, c->syms[nx].id, &rank, &merged)) return 0;
    heap_item it = {rank, pos, c->syms[pos].id, c->syms[nx].id, merged};
    return heap_push(c, it);
}

static int add_sym(enc_ctx *c, size_t *n, int32_t id, int is_unk)
{
    const tok_tokenizer *t = c->t;
    if (is_unk && t->fuse_unk && *n > 0 && c->syms[*n - 1].id == t->unk_id) return 0;
    if (*n == c->syms_cap) {
        size_t cap = c->syms_cap ? c->syms_cap * 2 : 64;
        sym *p = realloc(c->syms, cap * sizeof *p);
        if (!p) return -1;
        c->syms = p;
        c->syms_cap = cap;
    }
    c->syms[*n].id = id;
    c->syms[*n].alive = 1;
    (*n)++;
    return 0;
}

static ck_status bpe(enc_ctx *c, const char *w, size_t n)
{
    const tok_tokenizer *t = c->t;
    const tok_strmap *symmap = t->byte_level ? &t->symbols : &t->vocab;
    if (!n) return CK_OK;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(symmap, w, n);
        if (id >= 0) return tok_ivec_push(&c->out, id) ? ENC_OOM(c) : CK_OK;
    }
    wc_slot *slot = NULL;
    size_t out0 = c->out.len;
    if (c->wc && n <= WC_KEY) {
        uint64_t h = 0xCBF29CE484222325ull;
        for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 0x100000001B3ull;
        h ^= h >> 31;
        slot = &c->wc[h & (WC_SLOTS - 1)];
        if (slot->klen == n && slot->h == h && !memcmp(slot->key, w, n)) {
            for (size_t i = 0; i < slot->nids; i++)
                if (tok_ivec_push(&c->out, slot->ids[i])) return ENC_OOM(c);
            return CK_OK;
        }
        slot->klen = 0; /* refilled below if the result fits */
        slot->h = h;
    }
    size_t ns = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_ids[(unsigned char)w[i]];
            if (id < 0 && t->unk_id < 0) continue;
            if (add_sym(c, &ns, id < 0 ? t->unk_id : id, id < 0)) return ENC_OOM(c);
        }
    } else {
        const unsigned char *u = (const unsigned char *)w;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t k = tok_utf8_decode(u + i, n - i, &cp);
            if (!k) k = 1; /* not reached: input is valid UTF-8 */
            int32_t id = tok_strmap_get(symmap, w + i, k);
            if (id >= 0) {
                if (add_sym(c, &ns, id, 0)) return ENC_OOM(c);
            } else {
                int all = t->byte_fallback;
                for (size_t j = 0; all && j < k; j++) all = t->byte_ids[u[i + j]] >= 0;
                if (all) {
                    for (size_t j = 0; j < k; j++)
                        if (add_sym(c, &ns, t->byte_ids[u[i + j]], 0)) return ENC_OOM(c);
                } else if (t->unk_id >= 0 && add_sym(c, &ns, t->unk_id, 1))
                    return ENC_OOM(c);
            }
            i += k;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        c->syms[i].prev = (int32_t)i - 1;
        c->syms[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    c->heap_len = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (push_pair(c, (int32_t)i)) return ENC_OOM(c);
    while (c->heap_len) {
        heap_item it = heap_pop(c);
        sym *a = &c->syms[it.pos];
        if (!a->alive || a->id != it.left || a->next < 0) continue;
        sym *b = &c->syms[a->next];
        if (b->id != it.right) continue;
        a->id = it.merged;
        b->alive = 0;
        a->next = b->next;
        if (a->next >= 0) c->syms[a->next].prev = it.pos;
        if ((a->prev >= 0 && push_pair(c, a->prev)) || push_pair(c, it.pos)) return ENC_OOM(c);
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = c->syms[i].next)
        if (tok_ivec_push(&c->out, c->syms[i].id)) return ENC_OOM(c);
    if (slot && c->out.len - out0 <= WC_IDS) {
        slot->nids = (uint8_t)(c->out.len - out0);
        memcpy(slot->ids, c->out.p + out0, slot->nids * sizeof *slot->ids);
        memcpy(slot->key, w, n);
        slot->klen = (uint8_t)n;
    }
    return CK_OK;
}

/* ---- pre-tokenizers ----------------------------------------------------------------------- */
/* Split one span by the step's pattern, appending the resulting spans to out. */
static ck_status split_span(enc_ctx *c, const tok_pre_step *st, const char *buf, span sp, spanvec *out)
{
    spanvec *pc = &c->pieces; /* (s, e, orig0 = is_match) */
    pc->len = 0;
    const char *s = buf + sp.s;
    size_t n = sp.e - sp.s, pos = 0, prev = 0;
    while (pos < n) {
        size_t ms, me;
        if (st->kind == TP_DIGITS) {
            while (pos < n && !(s[pos] >= '0' && s[pos] <= '9')) pos++;
            if (pos == n) break;
            ms = pos;
            me = pos + 1;
            if (!st->individual_digits)
                while (me < n && s[me] >= '0' && s[me] <= '9') me++;
        } else if (st->re) {
            int f = tok_regex_find(st->re, c->m, s, n, pos, &ms, &me);
            if (f < 0)
                return ck_fail(c->err, CK_E_UNSUPPORTED, "tok_encode: pre-tokenizer regex hit its match limit on this input");
            if (f == 0) break;
            if (me == ms) {
                pos = ms + 1;
                while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
                continue;
            }
        } else {
            const char *hit = NULL;
            for (size_t i = pos; i + st->str_len <= n; i++)
                if (s[i] == st->str[0] && !memcmp(s + i, st->str, st->str_len)) {
                    hit = s + i;
                    break;
                }
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + st->str_len;
        }
        if (ms > prev && span_push(pc, prev, ms, 0)) return ENC_OOM(c);
        if (span_push(pc, ms, me, 1)) return ENC_OOM(c);
        prev = pos = me;
    }
    if (prev < n && span_push(pc, prev, n, 0)) return ENC_OOM(c);
    if (st->invert)
        for (size_t i = 0; i < pc->len; i++) pc->p[i].orig0 = !pc->p[i].orig0;

    /* combine pieces by behavior; out spans are in buf coordinates */
    size_t first_out = out->len;
    int prev_match = 0;
    tok_split_behavior bh = st->kind == TP_SPLIT ? st->behavior : TS_ISOLATED;
    if (bh == TS_MERGED_NEXT) {
        /* walk backwards: a match joins the piece after it unless that one began
         * with a match itself */
        for (size_t k = pc->len; k-- > 0;) {
            span p = pc->p[k];
            int is_match = p.orig0;
            if (is_match && !prev_match && out->len > first_out) out->p[out->len - 1].s = sp.s + p.s;
            else if (span_push(out, sp.s + p.s, sp.s + p.e, 0))
                return ENC_OOM(c);
            prev_match = is_match;
        }
        for (size_t a = first_out, b = out->len; a + 1 < b; a++, b--) {
            span tmp = out->p[a];
            out->p[a] = out->p[b - 1];
            out->p[b - 1] = tmp;
        }
    } else {
        for (size_t k = 0; k < pc->len; k++) {
            span p = pc->p[k];
            int is_match = p.orig0;
            int extend = 0;
            if (bh == TS_REMOVED && is_match) continue;
            if (bh == TS_MERGED_PREV) extend = is_match && !prev_match && out->len > first_out;
            if (bh == TS_CONTIGUOUS) extend = is_match == prev_match && out->len > first_out;
            if (extend) out->p[out->len - 1].e = sp.s + p.e;
            else if (span_push(out, sp.s + p.s, sp.s + p.e, 0))
                return ENC_OOM(c);
            prev_match = is_match;
        }
    }
    for (size_t k = first_out; k < out->len; k++) out->p[k].orig0 = sp.orig0 && out->p[k].s == sp.s;
    return CK_OK;
}

/* Rewrite every span of (*buf, *spans) into a new buffer: Metaspace (replace ' ',
 * prepend the replacement) or ByteLevel add_prefix_space. */
static ck_status rewrite_spans(enc_ctx *c, const tok_pre_step *st, const char **buf, spanvec **spans)
{
    tok_buf *nb = (*buf == c->pre_a.p) ? &c->pre_b : &c->pre_a;
    spanvec *ns = (*spans == &c->sp_a) ? &c->sp_b : &c->sp_a;
    nb->len = 0;
    ns->len = 0;
    for (size_t i = 0; i < (*spans)->len; i++) {
        span sp = (*spans)->p[i];
        const char *s = *buf + sp.s;
        size_t n = sp.e - sp.s, start = nb->len;
        if (st->kind == TP_BYTELEVEL) {
            if (n && s[0] != ' ' && tok_buf_put(nb, " ", 1)) return ENC_OOM(c);
            if (tok_buf_put(nb, s, n)) return ENC_OOM(c);
        } else {
            int starts_with_rep = n >= st->str_len && !memcmp(s, st->str, st->str_len) ? 1 : n && s[0] == ' ';
            int prepend = !starts_with_rep && (st->scheme == TPS_ALWAYS || (st->scheme == TPS_FIRST && sp.orig0));
            if (prepend && tok_buf_put(nb, st->str, st->str_len)) return ENC_OOM(c);
            for (size_t k = 0; k < n; k++) {
                int r = s[k] == ' ' ? tok_buf_put(nb, st->str, st->str_len) : tok_buf_put(nb, s + k, 1);
                if (r) return ENC_OOM(c);
            }
        }
        if (span_push(ns, start, nb->len, sp.orig0)) return ENC_OOM(c);
    }
    *buf = nb->p;
    *spans = ns;
    return CK_OK;
}

static ck_status pretok_and_bpe(enc_ctx *c, const char *s, size_t n, int at_start)
{
    const tok_tokenizer *t = c->t;
    if (!n) return CK_OK;
    if (!t->n_pre) return bpe(c, s, n);
    const char *buf = s;
    spanvec *cur = &c->sp_a;
    cur->len = 0;
    if (span_push(cur, 0, n, at_start)) return ENC_OOM(c);
    for (size_t i = 0; i < t->n_pre; i++) {
        const tok_pre_step *st = &t->pre[i];
        ck_status rc;
        if (st->kind == TP_METASPACE || (st->kind == TP_BYTELEVEL && st->add_prefix_space)) {
            if ((rc = rewrite_spans(c, st, &buf, &cur))) return rc;
        }
        int splits = st->kind == TP_SPLIT || st->kind == TP_DIGITS || (st->kind == TP_BYTELEVEL && st->re) ||
                     (st->kind == TP_METASPACE && st->split);
        if (!splits) continue;
        spanvec *nx = (cur == &c->sp_a) ? &c->sp_b : &c->sp_a;
        nx->len = 0;
        if (st->kind == TP_METASPACE) {
            tok_pre_step ms = *st;
            ms.kind = TP_SPLIT;
            ms.re = NULL;
            ms.behavior = TS_MERGED_NEXT;
            ms.invert = 0;
            for (size_t k = 0; k < cur->len; k++)
                if ((rc = split_span(c, &ms, buf, cur->p[k], nx))) return rc;
        } else {
            for (size_t k = 0; k < cur->len; k++)
                if ((rc = split_span(c, st, buf, cur->p[k], nx))) return rc;
        }
        cur = nx;
    }
    for (size_t k = 0; k < cur->len; k++) {
        ck_status rc = bpe(c, buf + cur->p[k].s, cur->p[k].e - cur->p[k].s);
        if (rc) return rc;
    }
    return CK_OK;
}

/* ---- added tokens --------------------------------------------------------------------------- */
static int is_word_cp(uint32_t cp)
{
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return !tok_is_white_space(cp) && !(cp >= 0x2000 && cp <= 0x206F) && !(cp >= 0x3000 && cp <= 0x303F);
}

static uint32_t cp_before(const char *s, size_t i)
{
    size_t j = i;
    while (j > 0 && ((unsigned char)s[j - 1] & 0xC0) == 0x80) j--;
    if (j > 0) j--;
    uint32_t cp = 0;
    if (!tok_utf8_decode((const unsigned char *)s + j, i - j, &cp)) cp = 0;
    return cp;
}

/* Find the next added-token match in s[from..n): match [*ms, *me) widened by
 * lstrip/rstrip to [*ls, *rs). Returns the id or -1. */
static int32_t find_added(const tok_tokenizer *t, const char *s, size_t n, size_t from, int normalized,
                          int parse_special, size_t *ls, size_t *rs)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[u[i]]) continue;
        /* candidates: 2+-byte tokens starting with u[i] u[i+1], then 1-byte tokens u[i]
           (longest first overall, as added[] is ordered) */
        size_t b2 = i + 1 < n ? (size_t)u[i] * 256 + u[i + 1] : 0;
        size_t k0 = i + 1 < n ? t->added_start2[b2] : 0, k1 = i + 1 < n ? t->added_start2[b2 + 1] : 0;
        size_t n2 = k1 - k0, n1 = t->added_start1[u[i] + 1] - t->added_start1[u[i]];
        for (size_t q = 0; q < n2 + n1; q++) {
            size_t k = q < n2 ? t->added_idx2[k0 + q] : t->added_idx1[t->added_start1[u[i]] + (q - n2)];
            const tok_added *a = &t->added[k];
            if (a->normalized != normalized || (a->special && !parse_special)) continue;
            if (a->len > n - i || (unsigned char)a->content[0] != u[i] || memcmp(s + i, a->content, a->len)) continue;
            size_t me = i + a->len;
            if (a->single_word) {
                uint32_t after = 0;
                int bad = (i > 0 && is_word_cp(cp_before(s, i))) ||
                          (me < n && tok_utf8_decode(u + me, n - me, &after) && is_word_cp(after));
                if (bad) {
                    i = me - 1; /* the reference's matcher has moved past this match */
                    goto next_pos;
                }
            }
            size_t l = i, r = me;
            uint32_t cp;
            size_t kk;
            while (a->lstrip && l > from && tok_is_white_space(cp = cp_before(s, l))) {
                char tmp[4];
                l -= tok_utf8_encode(cp, tmp);
            }
            while (a->rstrip && r < n && (kk = tok_utf8_decode(u + r, n - r, &cp)) && tok_is_white_space(cp)) r += kk;
            *ls = l;
            *rs = r;
            return a->id;
        }
    next_pos:;
    }
    return -1;
}

static ck_status encode_normalized(enc_ctx *c, const char *s, size_t n, int at_start)
{
    const tok_tokenizer *t = c->t;
    if (!t->has_normalized_added) return pretok_and_bpe(c, s, n, at_start);
    size_t seg = 0, ls, rs;
    ck_status rc;
    for (;;) {
        int32_t id = find_added(t, s, n, seg, 1, c->opts->parse_special, &ls, &rs);
        if (id < 0) break;
        if ((rc = pretok_and_bpe(c, s + seg, ls - seg, at_start && seg == 0))) return rc;
        if (tok_ivec_push(&c->out, id)) return ENC_OOM(c);
        seg = rs;
    }
    return pretok_and_bpe(c, s + seg, n - seg, at_start && seg == 0);
}

static ck_status encode_segment(enc_ctx *c, const char *s, size_t n, int at_start)
{
    if (!n) return CK_OK;
    if (!c->t->n_norm) return encode_normalized(c, s, n, at_start);
    ck_status rc = tok_normalize(c->t, c->m, s, n, &c->norm, &c->tmp, c->err);
    if (rc) return rc;
    /* pre-tokenizing reuses pre_a/pre_b, not norm: safe to pass norm's bytes */
    return encode_normalized(c, c->norm.p, c->norm.len, at_start);
}

static ck_status encode_text(enc_ctx *c, const char *s, size_t n)
{
    const tok_tokenizer *t = c->t;
    size_t seg = 0, ls, rs;
    ck_status rc;
    if (t->n_added) {
        for (;;) {
            int32_t id = find_added(t, s, n, seg, 0, c->opts->parse_special, &ls, &rs);
            if (id < 0) break;
            if ((rc = encode_segment(c, s + seg, ls - seg, seg == 0))) return rc;
            if (tok_ivec_push(&c->out, id)) return ENC_OOM(c);
            seg = rs;
        }
    }
    return encode_segment(c, s + seg, n - seg, seg == 0);
}

tok_encode_opts tok_encode_opts_default(void)
{
    tok_encode_opts o = {1, 1};
    return o;
}

static void ctx_free(enc_ctx *c)
{
    tok_match_free(c->m);
    tok_buf_free(&c->valid);
    tok_buf_free(&c->norm);
    tok_buf_free(&c->tmp);
    tok_buf_free(&c->pre_a);
    tok_buf_free(&c->pre_b);
    free(c->sp_a.p);
    free(c->sp_b.p);
    free(c->pieces.p);
    free(c->syms);
    free(c->heap);
    free(c->wc);
    tok_ivec_free(&c->out);
}

ck_status tok_encode(const tok_tokenizer *t, const char *text, size_t text_len, const tok_encode_opts *opts,
                     int32_t *out_ids, size_t cap, size_t *n_out, ck_error *err)
{
    if (!t || (!text && text_len) || !n_out || (!out_ids && cap))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_encode: NULL argument");
    *n_out = 0;
    tok_encode_opts dflt = tok_encode_opts_default();
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.opts = opts ? opts : &dflt;
    c.err = err;
    ck_status rc = CK_OK;
    if (!(c.m = tok_match_create())) {
        rc = ENC_OOM(&c);
        goto done;
    }
    if (text_len >= WC_MIN_TEXT) c.wc = calloc(WC_SLOTS, sizeof *c.wc); /* NULL: just no cache */
    if (text_len && !tok_utf8_valid(text, text_len)) {
        if (tok_utf8_lossy_append(&c.valid, text, text_len)) {
            rc = ENC_OOM(&c);
            goto done;
        }
        text = c.valid.p;
        text_len = c.valid.len;
    }
    if (c.opts->add_special)
        for (size_t i = 0; i < t->n_post_prefix; i++)
            if (tok_ivec_push(&c.out, t->post_prefix[i])) {
                rc = ENC_OOM(&c);
                goto done;
            }
    if ((rc = encode_text(&c, text ? text : "", text_len))) goto done;
    if (c.opts->add_special)
        for (size_t i = 0; i < t->n_post_suffix; i++)
            if (tok_ivec_push(&c.out, t->post_suffix[i])) {
                rc = ENC_OOM(&c);
                goto done;
            }
    *n_out = c.out.len;
    if (cap && c.out.len) memcpy(out_ids, c.out.p, (cap < c.out.len ? cap : c.out.len) * sizeof *out_ids);
done:
    ctx_free(&c);
    return rc;
}
