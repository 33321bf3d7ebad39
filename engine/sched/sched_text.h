/* sched_text.h: a job's text between the detokenizer and its events (prefix sched_text_).
 * Banned strings go through smp_ban_gate (engine/sample/stop.h): text, and so the tokens
 * that made it, is held back while a banned string could still form in it; a hit reports
 * the token to rewind to. The released text then goes through smp_stop (stop strings, held
 * back until they cannot match); the whole released text is kept for stop scripts.
 * Engine thread only. */
#ifndef CK_SCHED_TEXT_H
#define CK_SCHED_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
struct smp_stop;
struct smp_ban_gate;

typedef struct sched_text {
    struct smp_stop *stop;       /* NULL without stop strings */
    struct smp_ban_gate *ban;    /* NULL without banned strings */
    int stopped;                 /* a stop string matched */
    char *all;                   /* every released piece, in order */
    size_t all_len, all_cap;
    char *out;                   /* released text when there is no stop gate */
    size_t out_cap;
} sched_text;

ck_status sched_text_init(sched_text *t, const char *const *stops, size_t n_stops, const char *const *bans,
                          size_t n_bans, ck_error *err);
void sched_text_free(sched_text *t);

/* Feed released text (after the ban gate). Returns the text to release to the client now
 * (valid until the next call), or NULL when out of memory; *hit = 1 when a stop string
 * matched (nothing is released after). */
const char *sched_text_push(sched_text *t, const char *piece, size_t len, size_t *out_len, int *hit);
/* Feed the last bytes and release everything held (unless a stop matched). */
const char *sched_text_finish(sched_text *t, const char *piece, size_t len, size_t *out_len);
int sched_text_stopped(const sched_text *t);
/* Everything released so far (for stop scripts). */
const char *sched_text_all(const sched_text *t, size_t *len);

int sched_text_has_bans(const sched_text *t);
/* Feed the detokenized piece of generated token token_index to the ban gate. *out_text /
 * *out_len: the text of whole tokens now safe to release (valid until the next call on the
 * gate). *out_rewind: -1, or the token to rewind to (a banned string begins in its piece);
 * then call sched_text_ban_rewind before feeding again. Errors: CK_E_OUT_OF_MEMORY. */
ck_status sched_text_ban_feed(sched_text *t, const char *piece, size_t len, int64_t token_index,
                              const char **out_text, size_t *out_len, int64_t *out_rewind, ck_error *err);
/* Forget the held text of token_index and later tokens. */
void sched_text_ban_rewind(sched_text *t, int64_t token_index);
/* End of generation: release everything the gate holds. */
void sched_text_ban_flush(sched_text *t, const char **out_text, size_t *out_len);

#endif
