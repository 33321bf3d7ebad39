/* stop.h: text gates between the detokenizer and the client (prefix smp_stop_,
 * smp_ban_).
 *
 * smp_stop: stop strings. Feed each newly decoded text piece; it returns the text
 * that is safe to release now and holds back any suffix that could still become a
 * stop string. When a stop string appears, it releases the text before it,
 * reports which stop matched, and drops the stop string and anything after it.
 * Invariant: released text + the matched stop string is a prefix of the fed text,
 * and no byte of a stop string is ever released.
 *
 * smp_ban_gate: banned strings, for rewind-and-resample (the type is named _gate so it
 * does not clash with sample.h's smp_ban(), which bans token ids in a row). Feed each piece with the index
 * of the token that produced it. Text is released only in whole token pieces and
 * only once no banned string can start in it, whatever follows and whatever is
 * rewound later. When a banned string appears, it
 * reports the index of the token whose piece contains the banned string's first
 * byte; the scheduler then calls smp_ban_rewind(token_index), discards that token
 * and those after it, bans that token id at that step and samples again.
 *
 * Order in a job: detokenizer -> smp_ban_gate -> smp_stop -> client.
 * Threads: one gate per job; calls on one gate must not overlap. Strings are
 * compared byte for byte (give them as UTF-8, as the detokenizer emits).
 */
#ifndef SMP_STOP_H
#define SMP_STOP_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smp_stop smp_stop;

/* strings[n_strings] (lengths in string_lens, or NULL for NUL-terminated) are
 * copied. Empty strings are refused. Errors: CK_E_INVALID_ARGUMENT, CK_E_OUT_OF_MEMORY. */
ck_status smp_stop_create(const char *const *strings, const size_t *string_lens, size_t n_strings,
                          smp_stop **out_stop, ck_error *err);
void smp_stop_destroy(smp_stop *stop);

/* Feed one piece. *out_text / *out_len: the text to release now (owned by the gate,
 * valid until the next call on it). *out_stop_index: -1, or the index of the stop
 * string that matched (earliest position; the first listed on a tie); after a stop
 * the gate releases nothing more until smp_stop_reset. */
ck_status smp_stop_feed(smp_stop *stop, const char *piece, size_t piece_len,
                        const char **out_text, size_t *out_len, int *out_stop_index,
                        ck_error *err);
/* End of generation (EOS, length): release whatever is held. */
void smp_stop_flush(smp_stop *stop, const char **out_text, size_t *out_len);
/* Forget held text and a past stop, for a new generation. */
void smp_stop_reset(smp_stop *stop);

typedef struct smp_ban_gate smp_ban_gate;

ck_status smp_ban_create(const char *const *strings, const size_t *string_lens, size_t n_strings,
                         smp_ban_gate **out_ban, ck_error *err);
void smp_ban_destroy(smp_ban_gate *ban);

/* Feed the piece of token token_index (token indices increase by one per token;
 * a token whose piece is empty may be fed or skipped). *out_banned_index: -1, or
 * the banned string found; then *out_rewind_token is the token to rewind to, and
 * nothing is released until smp_ban_rewind is called. Errors:
 * CK_E_INVALID_ARGUMENT (a feed while a rewind is pending), CK_E_OUT_OF_MEMORY. */
ck_status smp_ban_feed(smp_ban_gate *ban, const char *piece, size_t piece_len, int64_t token_index,
                       const char **out_text, size_t *out_len, int *out_banned_index,
                       int64_t *out_rewind_token, ck_error *err);
/* Drop the held text of token_index and later tokens (the scheduler discards them). */
void smp_ban_rewind(smp_ban_gate *ban, int64_t token_index);
void smp_ban_flush(smp_ban_gate *ban, const char **out_text, size_t *out_len);
void smp_ban_reset(smp_ban_gate *ban);

#ifdef __cplusplus
}
#endif
#endif
