/* sample.h: the built-in sampler chain (prefix smp_).
 *
 * One job's sampler works on one float32 logits row of n_vocab entries per step.
 * The row is copied into a candidate set (id, logit, prob) owned by the job's
 * smp_state; every stage works on that set in place: transforms change logits,
 * truncations remove candidates, the final pick (greedy, mirostat or a seeded
 * draw) returns one id. Probabilities are the softmax of the current logits over
 * the current set, recomputed only when a stage needs them. Nothing sorts the
 * whole vocabulary unless a stage has to (top-p sorts a growing prefix, top-k
 * and greedy never sort more than k).
 *
 * The same functions back the non-Lua chain (smp_sample) and the Lua ctx
 * primitives (engine/lua), so both pick identical tokens for the same seed.
 *
 * Threads: an smp_state belongs to one job; calls on one state must not overlap.
 * Different states are independent. Nothing here calls exit() or abort().
 */
#ifndef SMP_SAMPLE_H
#define SMP_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The stages of the chain, in any order (smp_params.order). The final pick is
 * not a stage: it follows the chain (see smp_sample). */
typedef enum smp_stage {
    SMP_STAGE_PENALTIES = 0, /* repetition / frequency / presence penalties */
    SMP_STAGE_DRY,           /* DRY repetition penalty */
    SMP_STAGE_BIAS,          /* logit bias, then banned tokens, then the allowed set */
    SMP_STAGE_TOP_K,
    SMP_STAGE_TOP_P,
    SMP_STAGE_MIN_P,
    SMP_STAGE_TOP_A,
    SMP_STAGE_TYPICAL,
    SMP_STAGE_TFS,
    SMP_STAGE_TOP_N_SIGMA,
    SMP_STAGE_XTC,
    SMP_STAGE_SMOOTHING,     /* quadratic sampling */
    SMP_STAGE_TEMPERATURE,   /* temperature, or dynamic temperature when dynatemp_range > 0 */
    SMP_STAGE_COUNT_
} smp_stage;

/* The default order (smp_params.order == NULL):
 *   penalties, DRY, bias/bans, top-k, top-p, min-p, top-a, typical, tfs,
 *   top-n-sigma, XTC, smoothing, temperature
 * i.e. "temperature last", as in the common hosts' defaults: truncation sees the
 * model's own distribution and temperature only reshapes what survives. */
#define SMP_DEFAULT_ORDER_LEN 13
extern const smp_stage smp_default_order[SMP_DEFAULT_ORDER_LEN];

/* A stage's name ("top_k", "temperature", ...), and the reverse (-1 if unknown). */
const char *smp_stage_name(smp_stage stage);
int smp_stage_from_name(const char *name);

typedef struct smp_logit_bias {
    int32_t id;
    float bias; /* added to the logit */
} smp_logit_bias;

/* Sampler settings of one job. smp_params_default() makes every stage neutral
 * (temperature 1, nothing truncated, no penalties): the pick is then a plain
 * seeded draw from softmax(logits). Pointer fields are borrowed: the caller owns
 * them, and smp_state_create copies what they point to. */
typedef struct smp_params {
    size_t struct_size;         /* sizeof(smp_params), set by smp_params_default */
    uint64_t seed;              /* draws are a pure function of (seed, step) */

    float temperature;          /* 1; <= 0 picks greedily (argmax) */
    float dynatemp_range;       /* 0 = off; else T in [temperature-r, temperature+r] */
    float dynatemp_exponent;    /* 1 */
    float smoothing_factor;     /* 0 = off (quadratic sampling) */
    float smoothing_curve;      /* 1 (pure quadratic) */

    int32_t top_k;              /* 0 = off */
    float top_p;                /* 1 = off */
    float min_p;                /* 0 = off */
    float top_a;                /* 0 = off */
    float typical_p;            /* 1 = off */
    float tfs_z;                /* 1 = off */
    float top_n_sigma;          /* <= 0 = off */
    float xtc_threshold;        /* 0.1 */
    float xtc_probability;      /* 0 = off */

    float repetition_penalty;   /* 1 = off */
    float frequency_penalty;    /* 0 = off */
    float presence_penalty;     /* 0 = off */
    int32_t penalty_range;      /* last N tokens of the history; 0 = all of it */
    float penalty_decay;        /* 0 = none; an occurrence d tokens back (d = 0 the
                                   last token) weighs (1 - decay)^d */

    const smp_logit_bias *logit_bias; size_t n_logit_bias;
    const int32_t *banned;  size_t n_banned;   /* removed from the candidates */
    const int32_t *allowed; size_t n_allowed;  /* if n_allowed > 0, only these stay */

    float dry_multiplier;       /* 0 = off */
    float dry_base;             /* 1.75 */
    int32_t dry_allowed_length; /* 2 */
    int32_t dry_range;          /* last N tokens; 0 = all of the history */
    /* sequence breakers: n_dry_breakers token sequences, concatenated in
     * dry_breaker_tokens, the i-th of length dry_breaker_lengths[i] */
    const int32_t *dry_breaker_tokens;
    const uint32_t *dry_breaker_lengths;
    size_t n_dry_breakers;

    int32_t mirostat;           /* 0 = off, 1 or 2: replaces the seeded draw */
    float mirostat_tau;         /* 5 */
    float mirostat_eta;         /* 0.1 */

    float skew;                 /* 0 = off; see smp_draw */

    const smp_stage *order;     /* NULL = smp_default_order */
    size_t n_order;
} smp_params;

void smp_params_default(smp_params *params);

/* Check a parameter set (ranges, ids < n_vocab, known stages). CK_E_INVALID_ARGUMENT
 * with the offending field in err->msg. */
ck_status smp_params_validate(const smp_params *params, size_t n_vocab, ck_error *err);

typedef struct smp_cand {
    int32_t id;
    float logit;
    float prob;  /* valid only when the set's probs are (see smp_softmax) */
} smp_cand;

typedef struct smp_state smp_state;

/* Create a job's sampler state for a vocabulary of n_vocab tokens. params is
 * validated and copied (with everything it points to); the caller may free it
 * afterwards. All memory the steps need is allocated here, except DRY and
 * penalty scratch, which grows with the history (amortised, rarely).
 * Errors: CK_E_INVALID_ARGUMENT, CK_E_OUT_OF_MEMORY. */
ck_status smp_state_create(const smp_params *params, size_t n_vocab, smp_state **out_state,
                           ck_error *err);
/* Free a state; NULL is accepted. */
void smp_state_destroy(smp_state *state);

/* The state's own copy of the parameters (read-only). */
const smp_params *smp_state_params(const smp_state *state);
size_t smp_state_n_vocab(const smp_state *state);
/* Mirostat's running mu (starts at 2 * tau); settable, e.g. to restore a job. */
float smp_state_mirostat_mu(const smp_state *state);
void smp_state_set_mirostat_mu(smp_state *state, float mu);

/* ---- the whole chain ------------------------------------------------------- */

/* One step: copy logits[n_vocab] into the candidate set, run the configured
 * stages in order, then pick: greedy if temperature <= 0, else mirostat v1/v2 if
 * enabled, else a seeded draw. history[n_history] is the job's token history
 * (prompt and generated tokens, oldest first) used by penalties and DRY; step is
 * the index of the token being generated (0 for the first), which with the seed
 * fixes every random number of the step. Borrowed pointers are read only during
 * the call. Errors: CK_E_INVALID_ARGUMENT (NULL pointers, a NaN in the row). */
ck_status smp_sample(smp_state *state, const float *logits, const int32_t *history,
                     size_t n_history, uint64_t step, int32_t *out_token, ck_error *err);

/* ---- the primitives (what the chain and Lua's ctx call) -------------------- */

/* Start a step: the candidate set becomes every token of logits[n_vocab] with its
 * logit; history and step are remembered (borrowed until the next smp_begin). */
ck_status smp_begin(smp_state *state, const float *logits, const int32_t *history,
                    size_t n_history, uint64_t step, ck_error *err);

/* Run one stage with the state's parameters. */
void smp_apply_stage(smp_state *state, smp_stage stage);

/* The current candidate set (valid until the next call on the state). */
smp_cand *smp_cands(smp_state *state, size_t *out_n);

/* Sort the candidates by logit, highest first (ties by lower id), at least the
 * first n of them (the rest stay after, unsorted). */
void smp_sort_prefix(smp_state *state, size_t n);
/* Compute prob = softmax(logit) over the current set (no-op if already valid). */
void smp_softmax(smp_state *state);
/* Set the logit of id; a removed id comes back into the set. Returns 0, or -1 if
 * id is outside the vocabulary or v is NaN. */
int smp_set_logit(smp_state *state, int32_t id, float v);
/* Find id in the set: its index, or -1 when absent. */
long smp_find(smp_state *state, int32_t id);

void smp_penalties(smp_state *state, float repetition, float frequency, float presence,
                   int32_t range, float decay);
/* DRY with the state's sequence breakers. */
void smp_dry(smp_state *state, float multiplier, float base, int32_t allowed_length,
             int32_t range);
void smp_logit_bias_apply(smp_state *state, const smp_logit_bias *bias, size_t n_bias);
void smp_ban(smp_state *state, const int32_t *ids, size_t n_ids);
void smp_allow_only(smp_state *state, const int32_t *ids, size_t n_ids);
void smp_temperature(smp_state *state, float temperature); /* temperature > 0 */
/* Entropy-based: T = (t - r) + 2r * (H / log(n))^exponent, clamped at >= 0. */
void smp_dynatemp(smp_state *state, float temperature, float range, float exponent);
/* Quadratic: d = logit - max; logit = max - f*k*d^2 + f*s*d^3, k = (3-curve)/2,
 * s = (curve-1)/2. */
void smp_smoothing(smp_state *state, float factor, float curve);
void smp_top_k(smp_state *state, int32_t k);          /* k <= 0: no-op */
void smp_top_p(smp_state *state, float p);            /* smallest prefix with mass >= p */
void smp_min_p(smp_state *state, float p);            /* keep prob >= p * max prob */
void smp_top_a(smp_state *state, float a);            /* keep prob >= a * max prob^2 */
void smp_typical(smp_state *state, float p);          /* locally typical sampling */
void smp_tfs(smp_state *state, float z);              /* tail-free sampling */
void smp_top_n_sigma(smp_state *state, float n);      /* keep logit >= max - n * stddev */
/* XTC: with probability `probability` (a seeded coin of this step), when two or
 * more candidates have prob >= threshold, remove all of them but the least likely. */
void smp_xtc(smp_state *state, float threshold, float probability);

/* The picks. Each returns a token id (never fails on a non-empty set; the set
 * always keeps at least one candidate). */
int32_t smp_greedy(smp_state *state);
/* Seeded draw from softmax over the set: the inverse CDF of u = smp_uniform(seed,
 * step, 0) over the candidates in ascending id order (the rule of the GPU chain,
 * gpu_sample; the set is left in id order). With skew s != 0 the candidates are
 * sorted by probability and the uniform u becomes u^exp(s) before the inverse-CDF
 * lookup: s > 0 favours likely tokens, s < 0 unlikely ones. */
int32_t smp_draw(smp_state *state, float skew);
int32_t smp_mirostat_v1(smp_state *state, float tau, float eta);
int32_t smp_mirostat_v2(smp_state *state, float tau, float eta);

/* The uniform number in [0, 1) of (seed, step, stream): a counter-based generator
 * (splitmix64 over the three), so draws do not depend on anything else running.
 * stream 0 is the draw, 1 XTC's coin; Lua's ctx:random() uses 2, 3, ... */
double smp_uniform(uint64_t seed, uint64_t step, uint64_t stream);

/* ---- log-probabilities ------------------------------------------------------ */

typedef struct smp_logprob {
    int32_t id;
    float logprob;
} smp_logprob;

/* Log-probabilities from the ORIGINAL distribution: log_softmax(logits) of the
 * model's row, before any sampler stage (so they do not depend on the sampler
 * settings). Writes the chosen token's logprob to *out_token_logprob and the
 * top_n most likely tokens (highest first, ties by lower id) to out_top[top_n];
 * *out_n = min(top_n, n_vocab). Errors: CK_E_INVALID_ARGUMENT. */
ck_status smp_logprobs(const float *logits, size_t n_vocab, int32_t token, size_t top_n,
                       float *out_token_logprob, smp_logprob *out_top, size_t *out_n,
                       ck_error *err);

#ifdef __cplusplus
}
#endif
#endif
