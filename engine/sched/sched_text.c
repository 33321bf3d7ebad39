/* sched_text.c: banned strings, stop strings, the text so far (see sched_text.h). */
#include "sched_text.h"

#include "stop.h"

#include <stdlib.h>
#include <string.h>

ck_status sched_text_init(sched_text *t, const char *const *stops, size_t n_stops, const char *const *bans,
                          size_t n_bans, ck_error *err)
{
    memset(t, 0, sizeof *t);
    if (n_stops) {
        ck_status st = smp_stop_create(stops, NULL, n_stops, &t->stop, err);
        if (st != CK_OK)
            return st;
    }
    if (n_bans) {
        ck_status st = smp_ban_create(bans, NULL, n_bans, &t->ban, err);
        if (st != CK_OK) {
            sched_text_free(t);
            return st;
        }
    }
    return CK_OK;
}

void sched_text_free(sched_text *t)
{
    smp_stop_destroy(t->stop);
    smp_ban_destroy(t->ban);
    free(t->all);
    free(t->out);
    memset(t, 0, sizeof *t);
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p)
        return 0;
    *buf = p;
    *cap = c;
    return 1;
}

const char *sched_text_push(sched_text *t, const char *piece, size_t len, size_t *out_len, int *hit)
{
    *hit = 0;
    *out_len = 0;
    if (!grow(&t->all, &t->all_cap, t->all_len + len + 1))
        return NULL;
    memcpy(t->all + t->all_len, piece, len);
    t->all_len += len;
    t->all[t->all_len] = '\0';
    if (t->stopped)
        return "";
    if (!t->stop) {
        if (!grow(&t->out, &t->out_cap, len + 1))
            return NULL;
        memcpy(t->out, piece, len);
        t->out[len] = '\0';
        *out_len = len;
        return t->out;
    }
    const char *txt = NULL;
    int idx = -1;
    ck_error e;
    if (smp_stop_feed(t->stop, piece, len, &txt, out_len, &idx, &e) != CK_OK)
        return NULL;
    if (idx >= 0) {
        t->stopped = 1;
        *hit = 1;
    }
    return txt ? txt : "";
}

const char *sched_text_finish(sched_text *t, const char *piece, size_t len, size_t *out_len)
{
    *out_len = 0;
    if (!t->stop) {
        if (!grow(&t->out, &t->out_cap, len + 1))
            return "";
        if (len)
            memcpy(t->out, piece, len);
        t->out[len] = '\0';
        *out_len = len;
        return t->out;
    }
    if (t->stopped)
        return "";
    /* feed the last bytes, keep what they release, then flush the held rest */
    const char *a = NULL;
    size_t a_len = 0;
    int idx = -1;
    ck_error e;
    if (len && smp_stop_feed(t->stop, piece, len, &a, &a_len, &idx, &e) != CK_OK)
        a_len = 0;
    if (!grow(&t->out, &t->out_cap, a_len + 1))
        return "";
    if (a_len)
        memcpy(t->out, a, a_len);
    size_t n = a_len;
    if (idx < 0) {
        const char *b = NULL;
        size_t b_len = 0;
        smp_stop_flush(t->stop, &b, &b_len);
        if (!grow(&t->out, &t->out_cap, n + b_len + 1))
            return "";
        if (b_len)
            memcpy(t->out + n, b, b_len);
        n += b_len;
    } else {
        t->stopped = 1;
    }
    t->out[n] = '\0';
    *out_len = n;
    return t->out;
}

int sched_text_stopped(const sched_text *t)
{
    return t->stopped;
}

const char *sched_text_all(const sched_text *t, size_t *len)
{
    *len = t->all_len;
    return t->all ? t->all : "";
}

int sched_text_has_bans(const sched_text *t)
{
    return t->ban != NULL;
}

ck_status sched_text_ban_feed(sched_text *t, const char *piece, size_t len, int64_t token_index,
                              const char **out_text, size_t *out_len, int64_t *out_rewind, ck_error *err)
{
    int which = -1;
    ck_status st = smp_ban_feed(t->ban, piece, len, token_index, out_text, out_len, &which, out_rewind, err);
    if (st != CK_OK)
        return st;
    if (which < 0)
        *out_rewind = -1;
    return CK_OK;
}

void sched_text_ban_rewind(sched_text *t, int64_t token_index)
{
    smp_ban_rewind(t->ban, token_index);
}

void sched_text_ban_flush(sched_text *t, const char **out_text, size_t *out_len)
{
    smp_ban_flush(t->ban, out_text, out_len);
}
