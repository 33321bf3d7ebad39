/* sched_text.h: a job's text between the detokenizer and its events (prefix sched_text_).
 * Stop strings go through smp_stop (held back until they cannot match); the whole generated
 * text is kept for stop scripts; banned strings are checked before a token is accepted.
 * Engine thread only. */
#ifndef CK_SCHED_TEXT_H
#define CK_SCHED_TEXT_H

#include <stddef.h>

#include "ck_error.h"
/* stop.h is included only by sched_text.c: its smp_ban type clashes with sample.h's smp_ban(). */
struct smp_stop;

typedef struct sched_text {
    struct smp_stop *stop;       /* NULL without stop strings */
    int stopped;                 /* a stop string matched */
    char *all;                   /* every piece fed, in order */
    size_t all_len, all_cap;
    char **bans;                 /* banned strings, copied */
    size_t *ban_lens;
    size_t n_bans, max_ban_len;
    char *out;                   /* released text when there is no stop gate */
    size_t out_cap;
} sched_text;

ck_status sched_text_init(sched_text *t, const char *const *stops, size_t n_stops, const char *const *bans,
                          size_t n_bans, ck_error *err);
void sched_text_free(sched_text *t);

/* Feed a detokenized piece. Returns the text to release now (valid until the next call), or
 * NULL when out of memory; *hit = 1 when a stop string matched (nothing is released after). */
const char *sched_text_push(sched_text *t, const char *piece, size_t len, size_t *out_len, int *hit);
/* Feed the detokenizer's last bytes and release everything held (unless a stop matched). */
const char *sched_text_finish(sched_text *t, const char *piece, size_t len, size_t *out_len);
int sched_text_stopped(const sched_text *t);
/* Everything generated so far (for stop scripts). */
const char *sched_text_all(const sched_text *t, size_t *len);

int sched_text_has_bans(const sched_text *t);
/* Whether appending piece to the text so far would complete a banned string. */
int sched_text_would_ban(const sched_text *t, const char *piece, size_t len);

#endif
