/* tok_decode.c: ids -> text (the decoder chain), token pieces, the streaming
 * detokenizer, and the small accessors. */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

typedef struct tlist {
    size_t *off, *len; /* token i is arena[off[i] .. off[i] + len[i]) */
    size_t n, cap;
} tlist;

static int tl_push(tlist *l, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *n = realloc(l->len, cap * sizeof *n);
        if (!n) return -1;
        l->len = n;
        l->cap = cap;
    }
    l->off[l->n] = off;
    l->len[l->n] = len;
    l->n++;
    return 0;
}

static void tl_free(tlist *l)
{
    free(l->off);
    free(l->len);
}

static int byte_token(const char *s, size_t n, unsigned char *b)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0') : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10)
                   : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10) : 16u;
        if (d > 15) return 0;
        v = v * 16 + d;
    }
    *b = (unsigned char)v;
    return 1;
}

/* Byte-level: every char maps to a byte, or the token stays as it is. */
static int unmap_append(tok_buf *b, const char *s, size_t n)
{
    size_t start = b->len, i = 0;
    if (tok_buf_reserve(b, n)) return -1;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int v = k ? tok_cp_to_byte(cp) : -1;
        if (v < 0) {
            b->len = start;
            return tok_buf_put(b, s, n);
        }
        b->p[b->len++] = (char)v;
        i += k;
    }
    return 0;
}

static int replace_append(tok_buf *b, const char *s, size_t n, const char *pat, size_t pl, const char *rep, size_t rl)
{
    size_t i = 0, run = 0;
    while (i + pl <= n) {
        if (!memcmp(s + i, pat, pl)) {
            if (tok_buf_put(b, s + run, i - run) || tok_buf_put(b, rep, rl)) return -1;
            i += pl;
            run = i;
        } else
            i++;
    }
    return tok_buf_put(b, s + run, n - run);
}

/* Apply one decoder step: (src arena, src list) -> (dst arena, dst list). */
static int apply_dec(const tok_dec_step *d, int raw, const tok_buf *src, const tlist *sl, tok_buf *dst, tlist *dl)
{
    dst->len = 0;
    dl->n = 0;
    switch (d->kind) {
    case TD_BYTELEVEL:
    case TD_FUSE: {
        tok_buf tmp = {0};
        tok_buf *target = (d->kind == TD_BYTELEVEL && !raw) ? &tmp : dst;
        for (size_t i = 0; i < sl->n; i++) {
            int r = d->kind == TD_BYTELEVEL ? unmap_append(target, src->p + sl->off[i], sl->len[i])
                                            : tok_buf_put(target, src->p + sl->off[i], sl->len[i]);
            if (r) {
                tok_buf_free(&tmp);
                return -1;
            }
        }
        if (target == &tmp) {
            int r = tok_utf8_lossy_append(dst, tmp.p, tmp.len);
            tok_buf_free(&tmp);
            if (r) return -1;
        }
        return sl->n ? tl_push(dl, 0, dst->len) : 0;
    }
    case TD_BYTEFALLBACK: {
        size_t i = 0;
        while (i < sl->n) {
            unsigned char b;
            if (!byte_token(src->p + sl->off[i], sl->len[i], &b)) {
                size_t o = dst->len;
                if (tok_buf_put(dst, src->p + sl->off[i], sl->len[i]) || tl_push(dl, o, sl->len[i])) return -1;
                i++;
                continue;
            }
            size_t o = dst->len, j = i;
            while (j < sl->n && byte_token(src->p + sl->off[j], sl->len[j], &b)) {
                if (tok_buf_put(dst, &b, 1)) return -1;
                j++;
            }
            if (!raw && !tok_utf8_valid(dst->p + o, dst->len - o)) {
                dst->len = o;
                for (size_t k = i; k < j; k++)
                    if (tok_buf_put(dst, "\xEF\xBF\xBD", 3)) return -1;
            }
            if (tl_push(dl, o, dst->len - o)) return -1;
            i = j;
        }
        return 0;
    }
    case TD_STRIP:
    case TD_REPLACE:
    case TD_METASPACE:
        for (size_t i = 0; i < sl->n; i++) {
            const char *s = src->p + sl->off[i];
            size_t n = sl->len[i], o = dst->len;
            int r;
            if (d->kind == TD_STRIP) {
                size_t a = 0, e = n;
                if (!raw) {
                    for (int k = 0; k < d->start && e - a >= d->a_len && !memcmp(s + a, d->a, d->a_len); k++) a += d->a_len;
                    for (int k = 0; k < d->stop && e - a >= d->a_len && !memcmp(s + e - d->a_len, d->a, d->a_len); k++)
                        e -= d->a_len;
                }
                r = tok_buf_put(dst, s + a, e - a);
            } else if (d->kind == TD_REPLACE) {
                r = replace_append(dst, s, n, d->a, d->a_len, d->b, d->b_len);
            } else {
                r = replace_append(dst, s, n, d->a, d->a_len, " ", 1);
                if (!r && !raw && i == 0 && d->prepend && dst->len > o && dst->p[o] == ' ') {
                    memmove(dst->p + o, dst->p + o + 1, dst->len - o - 1);
                    dst->len--;
                }
            }
            if (r || tl_push(dl, o, dst->len - o)) return -1;
        }
        return 0;
    }
    return 0;
}

ck_status tok_decode_tokens(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, int raw,
                            tok_buf *out, ck_error *err)
{
    tok_buf a = {0}, b = {0};
    tlist la = {0}, lb = {0};
    ck_status st = CK_OK;
    uint8_t skip = tok_skip_flags(skip_special);
    /* never a NULL base pointer (p + 0 on NULL is undefined) */
    if (tok_buf_reserve(&a, 16) || tok_buf_reserve(&b, 16)) goto oom;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            st = ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_decode: id %d at position %zu is outside [0, %d)", (int)id, i,
                         (int)t->n_vocab);
            goto done;
        }
        if (!t->tokens[id] || (t->flags[id] & skip)) continue;
        size_t o = a.len;
        if (tok_buf_put(&a, t->tokens[id], t->token_len[id]) || tl_push(&la, o, t->token_len[id])) goto oom;
    }
    tok_buf *src = &a, *dst = &b;
    tlist *sl = &la, *dl = &lb;
    for (size_t k = 0; k < t->n_dec; k++) {
        if (apply_dec(&t->dec[k], raw, src, sl, dst, dl)) goto oom;
        tok_buf *tb = src;
        src = dst;
        dst = tb;
        tlist *tl = sl;
        sl = dl;
        dl = tl;
    }
    for (size_t i = 0; i < sl->n; i++) {
        if (!t->n_dec && i > 0 && !raw && tok_buf_put(out, " ", 1)) goto oom;
        if (tok_buf_put(out, src->p + sl->off[i], sl->len[i])) goto oom;
    }
    goto done;
oom:
    st = ck_fail(err, CK_E_OUT_OF_MEMORY, "tok_decode: out of memory");
done:
    tok_buf_free(&a);
    tok_buf_free(&b);
    tl_free(&la);
    tl_free(&lb);
    return st;
}

static void copy_out(const tok_buf *b, char *out, size_t cap, size_t *len_out)
{
    *len_out = b->len;
    if (cap && b->len) memcpy(out, b->p, cap < b->len ? cap : b->len);
}

ck_status tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char *out, size_t cap,
                     size_t *len_out, ck_error *err)
{
    if (!t || (!ids && n) || !len_out || (!out && cap)) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_decode: NULL argument");
    *len_out = 0;
    tok_buf b = {0};
    ck_status st = tok_decode_tokens(t, ids, n, skip_special, 0, &b, err);
    if (!st) copy_out(&b, out, cap, len_out);
    tok_buf_free(&b);
    return st;
}

ck_status tok_token_to_piece(const tok_tokenizer *t, int32_t id, char *out, size_t cap, size_t *len_out, ck_error *err)
{
    if (!t || !len_out || (!out && cap)) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_token_to_piece: NULL argument");
    *len_out = 0;
    tok_buf b = {0};
    ck_status st = tok_decode_tokens(t, &id, 1, 0, 1, &b, err);
    if (!st) copy_out(&b, out, cap, len_out);
    tok_buf_free(&b);
    return st;
}

/* ---- accessors ------------------------------------------------------------------------------ */
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_vocab ? t->tokens[id] : NULL;
}

int32_t tok_token_to_id(const tok_tokenizer *t, const char *token, size_t token_len)
{
    return t && token ? tok_strmap_get(&t->vocab, token, token_len) : -1;
}

int32_t tok_vocab_size(const tok_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t tok_bos_id(const tok_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t tok_eos_id(const tok_tokenizer *t) { return t ? t->eos_id : -1; }
int tok_is_special(const tok_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_vocab && (t->flags[id] & TOKF_SPECIAL) != 0;
}
const char *tok_chat_template(const tok_tokenizer *t) { return t ? t->chat_template : NULL; }
int tok_clean_up_spaces(const tok_tokenizer *t) { return t ? t->clean_up_spaces : 0; }

size_t tok_apply_clean_up(char *s, size_t n)
{
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof *from; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]), i = 0, w = 0;
        while (i < n) {
            if (i + fl <= n && !memcmp(s + i, from[r], fl)) {
                memcpy(s + w, to[r], tl);
                w += tl;
                i += fl;
            } else
                s[w++] = s[i++];
        }
        n = w;
    }
    return n;
}

/* ---- streaming -------------------------------------------------------------------------------- */
struct tok_stream {
    const tok_tokenizer *t;
    int skip_special;
    tok_ivec ids;      /* ids[0] is the first id of the current window */
    size_t read;       /* ids[0..read) are already released */
    tok_buf a, b, raw;
};

ck_status tok_stream_create(const tok_tokenizer *t, int skip_special, tok_stream **out, ck_error *err)
{
    if (!t || !out) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_stream_create: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return ck_fail(err, CK_E_OUT_OF_MEMORY, "tok_stream_create: out of memory");
    (*out)->t = t;
    (*out)->skip_special = skip_special;
    return CK_OK;
}

void tok_stream_destroy(tok_stream *s)
{
    if (!s) return;
    tok_ivec_free(&s->ids);
    tok_buf_free(&s->a);
    tok_buf_free(&s->b);
    tok_buf_free(&s->raw);
    free(s);
}

static int visible(const tok_stream *s, int32_t id)
{
    return s->t->tokens[id] && !(s->t->flags[id] & tok_skip_flags(s->skip_special));
}

/* Text not yet released: decode(window) minus decode(window[0..read)). */
static ck_status pending(tok_stream *s, ck_error *err)
{
    s->a.len = s->b.len = 0;
    ck_status st = tok_decode_tokens(s->t, s->ids.p, s->read, s->skip_special, 0, &s->a, err);
    if (!st) st = tok_decode_tokens(s->t, s->ids.p, s->ids.len, s->skip_special, 0, &s->b, err);
    return st;
}

/* May the window's text still change when more ids come? */
static ck_status must_hold(tok_stream *s, int *hold, ck_error *err)
{
    const tok_tokenizer *t = s->t;
    *hold = 0;
    size_t j = s->ids.len;
    while (j > 0 && !visible(s, s->ids.p[j - 1])) j--;
    if (j == 0) return CK_OK;
    int32_t last = s->ids.p[j - 1];
    for (size_t k = 0; k < t->n_dec; k++)
        if (t->dec[k].kind == TD_BYTEFALLBACK && (t->flags[last] & TOKF_BYTE)) {
            *hold = 1; /* a run of byte tokens is judged whole: wait for its end */
            return CK_OK;
        }
    s->raw.len = 0;
    ck_status st = tok_decode_tokens(t, s->ids.p + s->read, s->ids.len - s->read, s->skip_special, 1, &s->raw, err);
    if (!st) *hold = tok_utf8_incomplete_tail(s->raw.p, s->raw.len);
    return st;
}

static ck_status emit(tok_stream *s, char *out, size_t cap, size_t *len_out, ck_error *err, int consume_all)
{
    size_t n = s->b.len >= s->a.len ? s->b.len - s->a.len : 0;
    *len_out = n;
    if (n > cap) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_stream: output buffer holds %zu bytes, %zu needed", cap, n);
    if (n) memcpy(out, s->b.p + s->a.len, n);
    if (consume_all) {
        s->ids.len = 0;
        s->read = 0;
        return CK_OK;
    }
    /* The next window starts at the last visible released token, so that decoders
     * that treat the first token specially (Strip, Metaspace) treat it the same way
     * in both decodes of the window. */
    size_t j = s->ids.len;
    while (j > 0 && !visible(s, s->ids.p[j - 1])) j--;
    if (j > 0) {
        size_t keep = s->ids.len - (j - 1);
        memmove(s->ids.p, s->ids.p + (j - 1), keep * sizeof *s->ids.p);
        s->ids.len = keep;
    }
    s->read = s->ids.len;
    return CK_OK;
}

ck_status tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap, size_t *len_out, ck_error *err)
{
    if (!s || !len_out || (!out && cap)) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_stream_push: NULL argument");
    *len_out = 0;
    if (id < 0 || id >= s->t->n_vocab)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_stream_push: id %d is outside [0, %d)", (int)id, (int)s->t->n_vocab);
    if (tok_ivec_push(&s->ids, id)) return ck_fail(err, CK_E_OUT_OF_MEMORY, "tok_stream_push: out of memory");
    int hold;
    ck_status st = must_hold(s, &hold, err);
    if (!st && hold) return CK_OK;
    if (!st) st = pending(s, err);
    if (!st) st = emit(s, out, cap, len_out, err, 0);
    if (st) s->ids.len--; /* nothing consumed */
    return st;
}

ck_status tok_stream_flush(tok_stream *s, char *out, size_t cap, size_t *len_out, ck_error *err)
{
    if (!s || !len_out || (!out && cap)) return ck_fail(err, CK_E_INVALID_ARGUMENT, "tok_stream_flush: NULL argument");
    *len_out = 0;
    if (!s->ids.len) return CK_OK;
    ck_status st = pending(s, err);
    if (!st) st = emit(s, out, cap, len_out, err, 1);
    return st;
}
