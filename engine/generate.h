/* generate.h: a single-sequence generation loop and perplexity, on top of fwd_run (prefix gen_).
 * The scheduler (continuous batching across jobs) lives elsewhere; this is the simple path used by
 * `chaski perplexity`, the parity tests and the CPU quick start. */
#ifndef CK_GENERATE_H
#define CK_GENERATE_H

#include <stdint.h>

#include "ck_error.h"
#include "forward.h"

typedef struct gen_params {
    int max_new_tokens;      /* stop after this many (default 128) */
    float temperature;       /* <= 0: greedy */
    uint64_t seed;           /* seeded sampling: the same seed gives the same tokens */
    int stop_at_eos;         /* stop on any of the config's EOS ids (default 1) */
    int prefill_chunk;       /* tokens per prefill step (default 512) */
} gen_params;

void gen_params_default(gen_params *p);

/* Called for each generated token; return nonzero to stop (CK_E_CANCELLED is not reported: the
 * loop just ends). */
typedef int (*gen_token_fn)(void *user_data, int32_t token);

/* Generate after prompt[n_prompt]; writes up to cap tokens to out (may be NULL) and the count to *n_out. */
ck_status gen_generate(const mdl_model *m, const int32_t *prompt, int n_prompt, const gen_params *p,
                       gen_token_fn on_token, void *user_data, int32_t *out, int cap, int *n_out,
                       ck_error *err);

/* Perplexity of ids in consecutive windows of `window` tokens (the last partial window dropped);
 * each window is preceded by bos (if bos >= 0), which is not scored. Returns total NLL and count too. */
ck_status gen_perplexity(const mdl_model *m, const int32_t *ids, int n, int window, int bos, double *ppl,
                         double *total_nll, int *n_scored, ck_error *err);

/* Sample one token from a logits row: greedy when temperature <= 0 (the first maximum), else a
 * seeded draw (deterministic in (seed, step)): u = smp_uniform(seed, step, 0) over
 * exp((l - max) / temperature) in id order, the rule of the device chain (gpu_sample), which
 * gen_generate uses instead when the backend samples on the device (fwd_can_end_rows). */
int32_t gen_sample(const float *logits, int n_vocab, float temperature, uint64_t seed, uint64_t step);

#endif
