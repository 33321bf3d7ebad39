/* stop.c: stop strings and banned strings (see stop.h). */
#include "stop.h"

#include <stdlib.h>
#include <string.h>

typedef struct strset {
    char **s;       /* (n) copies */
    size_t *len;    /* (n) */
    size_t n;
} strset;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_reserve(buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_append(buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, b->len + n + 1) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void strset_free(strset *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->s[i]);
    free(set->s);
    free(set->len);
    memset(set, 0, sizeof *set);
}

static ck_status strset_init(strset *set, const char *const *strings, const size_t *lens, size_t n,
                             const char *what, ck_error *err)
{
    memset(set, 0, sizeof *set);
    if (n > 0 && !strings)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "%s: strings is NULL", what);
    set->s = calloc(n ? n : 1, sizeof *set->s);
    set->len = calloc(n ? n : 1, sizeof *set->len);
    if (!set->s || !set->len) {
        strset_free(set);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: allocation failed", what);
    }
    set->n = n;
    for (size_t i = 0; i < n; i++) {
        if (!strings[i]) {
            strset_free(set);
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "%s: string %zu is NULL", what, i);
        }
        size_t l = lens ? lens[i] : strlen(strings[i]);
        if (l == 0) {
            strset_free(set);
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "%s: string %zu is empty", what, i);
        }
        set->s[i] = malloc(l + 1);
        if (!set->s[i]) {
            strset_free(set);
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: allocation failed", what);
        }
        memcpy(set->s[i], strings[i], l);
        set->s[i][l] = '\0';
        set->len[i] = l;
    }
    return CK_OK;
}

/* Earliest occurrence of any string of set in text[0..n): its position, and the
 * string's index in *which; n if none. */
static size_t find_first(const strset *set, const char *text, size_t n, int *which)
{
    size_t best = n;
    *which = -1;
    for (size_t i = 0; i < set->n; i++) {
        size_t l = set->len[i];
        for (size_t p = 0; p + l <= n && p < best; p++) {
            if (memcmp(text + p, set->s[i], l) == 0) {
                best = p;
                *which = (int)i;
                break;
            }
        }
    }
    return best;
}

/* The start of the longest suffix of text[0..n) that is a proper prefix of some
 * string of set (n when none): text from there on could still become a match. */
static size_t hold_from(const strset *set, const char *text, size_t n)
{
    size_t from = n;
    for (size_t i = 0; i < set->n; i++) {
        size_t l = set->len[i];
        size_t max = l - 1 < n ? l - 1 : n;
        for (size_t k = max; k > 0; k--) { /* longest first */
            if (n - k < from && memcmp(text + n - k, set->s[i], k) == 0) {
                from = n - k;
                break;
            }
        }
    }
    return from;
}

/* ---- stop strings ----------------------------------------------------------- */

struct smp_stop {
    strset set;
    buf held;
    buf out;
    int stopped;
};

ck_status smp_stop_create(const char *const *strings, const size_t *string_lens, size_t n_strings,
                          smp_stop **out_stop, ck_error *err)
{
    if (!out_stop)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "stop strings: out_stop is NULL");
    *out_stop = NULL;
    smp_stop *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "stop strings: allocation failed");
    ck_status st = strset_init(&s->set, strings, string_lens, n_strings, "stop strings", err);
    if (st != CK_OK) {
        free(s);
        return st;
    }
    *out_stop = s;
    return CK_OK;
}

void smp_stop_destroy(smp_stop *s)
{
    if (!s)
        return;
    strset_free(&s->set);
    free(s->held.p);
    free(s->out.p);
    free(s);
}

void smp_stop_reset(smp_stop *s)
{
    s->held.len = 0;
    s->out.len = 0;
    s->stopped = 0;
}

/* Move held[0..n) to out and shift the rest down. */
static int release(buf *held, buf *out, size_t n)
{
    out->len = 0;
    if (n == 0 && buf_reserve(out, 1) == 0) {
        out->p[0] = '\0';
        return 0;
    }
    if (buf_append(out, held->p, n) != 0)
        return -1;
    memmove(held->p, held->p + n, held->len - n);
    held->len -= n;
    return 0;
}

ck_status smp_stop_feed(smp_stop *s, const char *piece, size_t piece_len,
                        const char **out_text, size_t *out_len, int *out_stop_index,
                        ck_error *err)
{
    if (!s || !out_text || !out_len || !out_stop_index || (piece_len && !piece))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "stop strings: NULL argument");
    *out_stop_index = -1;
    s->out.len = 0;
    *out_text = "";
    *out_len = 0;
    if (s->stopped)
        return CK_OK;
    if (buf_append(&s->held, piece, piece_len) != 0 || buf_reserve(&s->out, s->held.len + 1) != 0)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "stop strings: allocation failed");
    int which;
    size_t pos = find_first(&s->set, s->held.p, s->held.len, &which);
    size_t n_release;
    if (which >= 0) {
        n_release = pos;
        s->stopped = 1;
        *out_stop_index = which;
    } else {
        n_release = hold_from(&s->set, s->held.p, s->held.len);
    }
    if (release(&s->held, &s->out, n_release) != 0)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "stop strings: allocation failed");
    if (s->stopped)
        s->held.len = 0;
    *out_text = s->out.p;
    *out_len = s->out.len;
    return CK_OK;
}

void smp_stop_flush(smp_stop *s, const char **out_text, size_t *out_len)
{
    s->out.len = 0;
    *out_text = "";
    *out_len = 0;
    if (s->stopped || s->held.len == 0)
        return;
    if (release(&s->held, &s->out, s->held.len) != 0)
        return; /* out of memory while flushing: nothing released, nothing lost twice */
    *out_text = s->out.p;
    *out_len = s->out.len;
}

/* ---- banned strings --------------------------------------------------------- */

typedef struct piece_mark {
    int64_t token;  /* token index */
    size_t offset;  /* where its bytes start in held */
} piece_mark;

struct smp_ban_gate {
    strset set;
    buf held;
    buf out;
    piece_mark *marks;  /* (n_marks) the pieces in held, in order */
    size_t n_marks, cap_marks;
    int pending;        /* a banned string was reported; waiting for smp_ban_rewind */
};

ck_status smp_ban_create(const char *const *strings, const size_t *string_lens, size_t n_strings,
                         smp_ban_gate **out_ban, ck_error *err)
{
    if (!out_ban)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "banned strings: out_ban is NULL");
    *out_ban = NULL;
    smp_ban_gate *b = calloc(1, sizeof *b);
    if (!b)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "banned strings: allocation failed");
    ck_status st = strset_init(&b->set, strings, string_lens, n_strings, "banned strings", err);
    if (st != CK_OK) {
        free(b);
        return st;
    }
    *out_ban = b;
    return CK_OK;
}

void smp_ban_destroy(smp_ban_gate *b)
{
    if (!b)
        return;
    strset_free(&b->set);
    free(b->held.p);
    free(b->out.p);
    free(b->marks);
    free(b);
}

void smp_ban_reset(smp_ban_gate *b)
{
    b->held.len = 0;
    b->out.len = 0;
    b->n_marks = 0;
    b->pending = 0;
}

/* Index of the piece holding byte pos of held (the last mark with offset <= pos). */
static size_t mark_of(const smp_ban_gate *b, size_t pos)
{
    size_t m = 0;
    for (size_t i = 0; i < b->n_marks; i++)
        if (b->marks[i].offset <= pos)
            m = i;
    return m;
}

/* Release held pieces before mark index m. */
static int ban_release_marks(smp_ban_gate *b, size_t m)
{
    size_t n = m < b->n_marks ? b->marks[m].offset : b->held.len;
    if (release(&b->held, &b->out, n) != 0)
        return -1;
    memmove(b->marks, b->marks + m, (b->n_marks - m) * sizeof *b->marks);
    b->n_marks -= m;
    for (size_t i = 0; i < b->n_marks; i++)
        b->marks[i].offset -= n;
    return 0;
}

ck_status smp_ban_feed(smp_ban_gate *b, const char *piece, size_t piece_len, int64_t token_index,
                       const char **out_text, size_t *out_len, int *out_banned_index,
                       int64_t *out_rewind_token, ck_error *err)
{
    if (!b || !out_text || !out_len || !out_banned_index || !out_rewind_token ||
        (piece_len && !piece))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "banned strings: NULL argument");
    *out_text = "";
    *out_len = 0;
    *out_banned_index = -1;
    *out_rewind_token = -1;
    b->out.len = 0;
    if (b->pending)
        return ck_fail(err, CK_E_INVALID_ARGUMENT,
                       "banned strings: feed while a rewind is pending (call smp_ban_rewind)");
    if (b->n_marks == b->cap_marks) {
        size_t cap = b->cap_marks ? 2 * b->cap_marks : 16;
        piece_mark *m = realloc(b->marks, cap * sizeof *m);
        if (!m)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "banned strings: allocation failed");
        b->marks = m;
        b->cap_marks = cap;
    }
    if (buf_reserve(&b->out, b->held.len + piece_len + 1) != 0 ||
        buf_append(&b->held, piece, piece_len) != 0)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "banned strings: allocation failed");
    b->marks[b->n_marks].token = token_index;
    b->marks[b->n_marks].offset = b->held.len - piece_len;
    b->n_marks++;

    int which;
    size_t pos = find_first(&b->set, b->held.p, b->held.len, &which);
    if (which >= 0) {
        b->pending = 1;
        *out_banned_index = which;
        *out_rewind_token = b->marks[mark_of(b, pos)].token;
        return CK_OK;
    }
    /* Hold from the earliest byte that could begin a banned string, now or after a
     * rewind: a rewind can cut the held text at any token boundary, so each cut is
     * checked as if it were the end of the text. */
    size_t from = hold_from(&b->set, b->held.p, b->held.len);
    for (size_t i = 0; i < b->n_marks; i++) {
        size_t cut = b->marks[i].offset;
        size_t f = hold_from(&b->set, b->held.p, cut);
        if (f < cut && f < from)
            from = f;
    }
    size_t m = from < b->held.len ? mark_of(b, from) : b->n_marks;
    if (ban_release_marks(b, m) != 0)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "banned strings: allocation failed");
    *out_text = b->out.p ? b->out.p : "";
    *out_len = b->out.len;
    return CK_OK;
}

void smp_ban_rewind(smp_ban_gate *b, int64_t token_index)
{
    size_t m = 0;
    while (m < b->n_marks && b->marks[m].token < token_index)
        m++;
    if (m < b->n_marks) {
        b->held.len = b->marks[m].offset;
        b->n_marks = m;
    }
    b->pending = 0;
}

void smp_ban_flush(smp_ban_gate *b, const char **out_text, size_t *out_len)
{
    *out_text = "";
    *out_len = 0;
    b->out.len = 0;
    if (b->pending || ban_release_marks(b, b->n_marks) != 0)
        return;
    *out_text = b->out.p ? b->out.p : "";
    *out_len = b->out.len;
}
