/* sample.c: parameters, state, candidate set, the chain, the picks and logprobs.
 * The stages live in penalties.c, transform.c, truncate.c and mirostat.c. */
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const smp_stage smp_default_order[SMP_DEFAULT_ORDER_LEN] = {
    SMP_STAGE_PENALTIES, SMP_STAGE_DRY,   SMP_STAGE_BIAS,        SMP_STAGE_TOP_K,
    SMP_STAGE_TOP_P,     SMP_STAGE_MIN_P, SMP_STAGE_TOP_A,       SMP_STAGE_TYPICAL,
    SMP_STAGE_TFS,       SMP_STAGE_TOP_N_SIGMA, SMP_STAGE_XTC,   SMP_STAGE_SMOOTHING,
    SMP_STAGE_TEMPERATURE,
};

static const char *const stage_names[SMP_STAGE_COUNT_] = {
    "penalties", "dry", "bias", "top_k", "top_p", "min_p", "top_a", "typical", "tfs",
    "top_n_sigma", "xtc", "smoothing", "temperature",
};

const char *smp_stage_name(smp_stage stage)
{
    return (unsigned)stage < SMP_STAGE_COUNT_ ? stage_names[stage] : "unknown";
}

int smp_stage_from_name(const char *name)
{
    for (int i = 0; name && i < SMP_STAGE_COUNT_; i++)
        if (strcmp(name, stage_names[i]) == 0)
            return i;
    return -1;
}

void smp_params_default(smp_params *p)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->temperature = 1.0f;
    p->dynatemp_exponent = 1.0f;
    p->smoothing_curve = 1.0f;
    p->top_p = 1.0f;
    p->typical_p = 1.0f;
    p->tfs_z = 1.0f;
    p->xtc_threshold = 0.1f;
    p->repetition_penalty = 1.0f;
    p->dry_base = 1.75f;
    p->dry_allowed_length = 2;
    p->mirostat_tau = 5.0f;
    p->mirostat_eta = 0.1f;
}

#define CHECK(cond, ...) \
    do { if (!(cond)) return ck_fail(err, CK_E_INVALID_ARGUMENT, __VA_ARGS__); } while (0)

ck_status smp_params_validate(const smp_params *p, size_t n_vocab, ck_error *err)
{
    CHECK(p != NULL, "sampler params: NULL");
    CHECK(p->struct_size == sizeof *p, "sampler params: struct_size %zu, expected %zu",
          p->struct_size, sizeof *p);
    CHECK(n_vocab > 0 && n_vocab <= INT32_MAX, "sampler: n_vocab %zu out of range", n_vocab);
    CHECK(isfinite(p->temperature), "sampler params: temperature is not finite");
    CHECK(isfinite(p->dynatemp_range) && p->dynatemp_range >= 0,
          "sampler params: dynatemp_range must be >= 0");
    CHECK(isfinite(p->dynatemp_exponent) && p->dynatemp_exponent > 0,
          "sampler params: dynatemp_exponent must be > 0");
    CHECK(isfinite(p->smoothing_factor) && p->smoothing_factor >= 0,
          "sampler params: smoothing_factor must be >= 0");
    CHECK(isfinite(p->smoothing_curve), "sampler params: smoothing_curve is not finite");
    CHECK(p->top_k >= 0, "sampler params: top_k must be >= 0");
    CHECK(p->top_p > 0 && p->top_p <= 1, "sampler params: top_p must be in (0, 1]");
    CHECK(p->min_p >= 0 && p->min_p <= 1, "sampler params: min_p must be in [0, 1]");
    CHECK(p->top_a >= 0 && p->top_a <= 1, "sampler params: top_a must be in [0, 1]");
    CHECK(p->typical_p > 0 && p->typical_p <= 1, "sampler params: typical_p must be in (0, 1]");
    CHECK(p->tfs_z > 0 && p->tfs_z <= 1, "sampler params: tfs_z must be in (0, 1]");
    CHECK(isfinite(p->top_n_sigma), "sampler params: top_n_sigma is not finite");
    CHECK(p->xtc_threshold >= 0 && p->xtc_threshold <= 1,
          "sampler params: xtc_threshold must be in [0, 1]");
    CHECK(p->xtc_probability >= 0 && p->xtc_probability <= 1,
          "sampler params: xtc_probability must be in [0, 1]");
    CHECK(isfinite(p->repetition_penalty) && p->repetition_penalty > 0,
          "sampler params: repetition_penalty must be > 0");
    CHECK(isfinite(p->frequency_penalty) && isfinite(p->presence_penalty),
          "sampler params: frequency/presence penalty not finite");
    CHECK(p->penalty_range >= 0, "sampler params: penalty_range must be >= 0");
    CHECK(p->penalty_decay >= 0 && p->penalty_decay <= 1,
          "sampler params: penalty_decay must be in [0, 1]");
    CHECK(p->n_logit_bias == 0 || p->logit_bias, "sampler params: logit_bias is NULL");
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        CHECK(p->logit_bias[i].id >= 0 && (size_t)p->logit_bias[i].id < n_vocab,
              "sampler params: logit_bias[%zu].id %d outside the vocabulary (%zu)", i,
              (int)p->logit_bias[i].id, n_vocab);
        CHECK(!isnan(p->logit_bias[i].bias), "sampler params: logit_bias[%zu] is NaN", i);
    }
    CHECK(p->n_banned == 0 || p->banned, "sampler params: banned is NULL");
    for (size_t i = 0; i < p->n_banned; i++)
        CHECK(p->banned[i] >= 0 && (size_t)p->banned[i] < n_vocab,
              "sampler params: banned[%zu] = %d outside the vocabulary", i, (int)p->banned[i]);
    CHECK(p->n_allowed == 0 || p->allowed, "sampler params: allowed is NULL");
    for (size_t i = 0; i < p->n_allowed; i++)
        CHECK(p->allowed[i] >= 0 && (size_t)p->allowed[i] < n_vocab,
              "sampler params: allowed[%zu] = %d outside the vocabulary", i, (int)p->allowed[i]);
    CHECK(isfinite(p->dry_multiplier) && p->dry_multiplier >= 0,
          "sampler params: dry_multiplier must be >= 0");
    CHECK(isfinite(p->dry_base) && p->dry_base >= 1, "sampler params: dry_base must be >= 1");
    CHECK(p->dry_allowed_length >= 0, "sampler params: dry_allowed_length must be >= 0");
    CHECK(p->dry_range >= 0, "sampler params: dry_range must be >= 0");
    CHECK(p->n_dry_breakers == 0 || (p->dry_breaker_tokens && p->dry_breaker_lengths),
          "sampler params: dry breakers are NULL");
    for (size_t i = 0, off = 0; i < p->n_dry_breakers; i++) {
        CHECK(p->dry_breaker_lengths[i] > 0, "sampler params: dry breaker %zu is empty", i);
        for (uint32_t j = 0; j < p->dry_breaker_lengths[i]; j++, off++)
            CHECK(p->dry_breaker_tokens[off] >= 0 && (size_t)p->dry_breaker_tokens[off] < n_vocab,
                  "sampler params: dry breaker %zu has id %d outside the vocabulary", i,
                  (int)p->dry_breaker_tokens[off]);
    }
    CHECK(p->mirostat >= 0 && p->mirostat <= 2, "sampler params: mirostat must be 0, 1 or 2");
    CHECK(isfinite(p->mirostat_tau) && p->mirostat_tau >= 0, "sampler params: mirostat_tau must be >= 0");
    CHECK(isfinite(p->mirostat_eta) && p->mirostat_eta >= 0, "sampler params: mirostat_eta must be >= 0");
    CHECK(isfinite(p->skew), "sampler params: skew is not finite");
    CHECK(p->n_order == 0 || p->order, "sampler params: order is NULL");
    for (size_t i = 0; i < p->n_order; i++)
        CHECK((unsigned)p->order[i] < SMP_STAGE_COUNT_, "sampler params: order[%zu] = %d is no stage",
              i, (int)p->order[i]);
    return CK_OK;
}

static void *dup_array(const void *src, size_t n, size_t elem, int *fail)
{
    if (n == 0)
        return NULL;
    void *dst = malloc(n * elem);
    if (!dst) {
        *fail = 1;
        return NULL;
    }
    memcpy(dst, src, n * elem);
    return dst;
}

ck_status smp_state_create(const smp_params *params, size_t n_vocab, smp_state **out_state,
                           ck_error *err)
{
    if (!out_state)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "sampler: out_state is NULL");
    *out_state = NULL;
    ck_status st = smp_params_validate(params, n_vocab, err);
    if (st != CK_OK)
        return st;
    smp_state *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "sampler: state allocation failed");
    s->params = *params;
    s->n_vocab = n_vocab;
    int fail = 0;
    size_t n_breaker_tokens = 0;
    for (size_t i = 0; i < params->n_dry_breakers; i++)
        n_breaker_tokens += params->dry_breaker_lengths[i];
    s->bias = dup_array(params->logit_bias, params->n_logit_bias, sizeof *s->bias, &fail);
    s->banned = dup_array(params->banned, params->n_banned, sizeof *s->banned, &fail);
    s->allowed = dup_array(params->allowed, params->n_allowed, sizeof *s->allowed, &fail);
    s->breaker_tokens = dup_array(params->dry_breaker_tokens, n_breaker_tokens,
                                  sizeof *s->breaker_tokens, &fail);
    s->breaker_lengths = dup_array(params->dry_breaker_lengths, params->n_dry_breakers,
                                   sizeof *s->breaker_lengths, &fail);
    if (params->order) {
        s->order = dup_array(params->order, params->n_order, sizeof *s->order, &fail);
    } else {
        s->order = dup_array(smp_default_order, SMP_DEFAULT_ORDER_LEN, sizeof *s->order, &fail);
        s->params.n_order = SMP_DEFAULT_ORDER_LEN;
    }
    s->params.logit_bias = s->bias;
    s->params.banned = s->banned;
    s->params.allowed = s->allowed;
    s->params.dry_breaker_tokens = s->breaker_tokens;
    s->params.dry_breaker_lengths = s->breaker_lengths;
    s->params.order = s->order;
    s->cands = malloc(n_vocab * sizeof *s->cands);
    s->vocab_f = calloc(n_vocab, sizeof *s->vocab_f);
    s->vocab_i = calloc(n_vocab, sizeof *s->vocab_i);
    s->vocab_mark = calloc(n_vocab, 1);
    if (fail || !s->cands || !s->vocab_f || !s->vocab_i || !s->vocab_mark) {
        smp_state_destroy(s);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "sampler: allocation failed (n_vocab %zu)", n_vocab);
    }
    s->mirostat_mu = 2.0f * params->mirostat_tau;
    *out_state = s;
    return CK_OK;
}

void smp_state_destroy(smp_state *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->banned);
    free(s->allowed);
    free(s->breaker_tokens);
    free(s->breaker_lengths);
    free(s->order);
    free(s->cands);
    free(s->vocab_f);
    free(s->vocab_i);
    free(s->vocab_mark);
    free(s->hist_i);
    free(s->hist_j);
    free(s->typ_keys);
    free(s->typ_tmp);
    free(s);
}

const smp_params *smp_state_params(const smp_state *s) { return &s->params; }
size_t smp_state_n_vocab(const smp_state *s) { return s->n_vocab; }
float smp_state_mirostat_mu(const smp_state *s) { return s->mirostat_mu; }
void smp_state_set_mirostat_mu(smp_state *s, float mu) { s->mirostat_mu = mu; }

/* ---- candidate set ------------------------------------------------------------ */

ck_status smp_begin(smp_state *s, const float *logits, const int32_t *history,
                    size_t n_history, uint64_t step, ck_error *err)
{
    if (!s || !logits || (n_history > 0 && !history))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "sampler: NULL state, logits or history");
    for (size_t i = 0; i < s->n_vocab; i++) {
        if (isnan(logits[i]))
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "sampler: logit of token %zu is NaN", i);
        s->cands[i].id = (int32_t)i;
        s->cands[i].logit = logits[i];
        s->cands[i].prob = 0.0f;
    }
    s->n_cands = s->n_vocab;
    s->n_sorted = 0;
    s->probs_valid = 0;
    s->history = history;
    s->n_history = n_history;
    s->step = step;
    return CK_OK;
}

smp_cand *smp_cands(smp_state *s, size_t *out_n)
{
    if (out_n)
        *out_n = s->n_cands;
    return s->cands;
}

int smp_cand_cmp_logit_desc(const void *a, const void *b)
{
    const smp_cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int before(const smp_cand *x, const smp_cand *y)
{
    return x->logit > y->logit || (x->logit == y->logit && x->id < y->id);
}

static void swap_cand(smp_cand *a, smp_cand *b)
{
    smp_cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange c[0..n) so that c[0..k) holds the k first in `before` order (unsorted).
 * Deterministic quickselect (median of three pivots). */
static void select_first(smp_cand *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1 && k > lo && k < hi) {
        size_t mid = lo + (hi - lo) / 2;
        /* median of three into c[lo] as the pivot */
        if (before(&c[mid], &c[lo])) swap_cand(&c[mid], &c[lo]);
        if (before(&c[hi - 1], &c[lo])) swap_cand(&c[hi - 1], &c[lo]);
        if (before(&c[hi - 1], &c[mid])) swap_cand(&c[hi - 1], &c[mid]);
        swap_cand(&c[lo], &c[mid]); /* pivot (the median) at lo */
        smp_cand pivot = c[lo];
        size_t store = lo + 1;
        for (size_t i = lo + 1; i < hi; i++)
            if (before(&c[i], &pivot))
                swap_cand(&c[i], &c[store++]);
        swap_cand(&c[lo], &c[store - 1]); /* pivot at store-1, all before it come first */
        size_t p = store - 1;
        if (p == k || p + 1 == k)
            return;
        if (k < p)
            hi = p;
        else
            lo = p + 1;
    }
}

void smp_sort_prefix(smp_state *s, size_t n)
{
    if (n > s->n_cands)
        n = s->n_cands;
    if (n <= s->n_sorted)
        return;
    smp_cand *rest = s->cands + s->n_sorted;
    size_t n_rest = s->n_cands - s->n_sorted, want = n - s->n_sorted;
    if (want < n_rest)
        select_first(rest, n_rest, want);
    qsort(rest, want, sizeof *rest, smp_cand_cmp_logit_desc);
    s->n_sorted = n;
}

void smp_softmax(smp_state *s)
{
    if (s->probs_valid)
        return;
    float max = -INFINITY;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].logit > max)
            max = s->cands[i].logit;
    double sum = 0.0;
    if (max == -INFINITY) { /* every logit -inf: uniform */
        for (size_t i = 0; i < s->n_cands; i++)
            s->cands[i].prob = 1.0f / (float)s->n_cands;
        s->probs_valid = 1;
        return;
    }
    for (size_t i = 0; i < s->n_cands; i++) {
        float e = expf(s->cands[i].logit - max);
        s->cands[i].prob = e;
        sum += e;
    }
    for (size_t i = 0; i < s->n_cands; i++)
        s->cands[i].prob = (float)(s->cands[i].prob / sum);
    s->probs_valid = 1;
}

long smp_find(smp_state *s, int32_t id)
{
    if (s->n_cands == s->n_vocab && s->n_sorted == 0 && id >= 0 && (size_t)id < s->n_vocab &&
        s->cands[id].id == id)
        return id; /* identity layout right after smp_begin */
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].id == id)
            return (long)i;
    return -1;
}

int smp_set_logit(smp_state *s, int32_t id, float v)
{
    if (id < 0 || (size_t)id >= s->n_vocab || isnan(v))
        return -1;
    long i = smp_find(s, id);
    if (i < 0) {
        i = (long)s->n_cands++;
        s->cands[i].id = id;
    }
    s->cands[i].logit = v;
    s->n_sorted = 0;
    s->probs_valid = 0;
    return 0;
}

/* ---- the picks ----------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double smp_uniform(uint64_t seed, uint64_t step, uint64_t stream)
{
    uint64_t x = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ (stream * 0xd1b54a32d192ed03ULL));
    return (double)(x >> 11) * 0x1.0p-53;
}

int32_t smp_greedy(smp_state *s)
{
    if (s->n_sorted > 0)
        return s->cands[0].id;
    size_t best = 0;
    for (size_t i = 1; i < s->n_cands; i++)
        if (before(&s->cands[i], &s->cands[best]))
            best = i;
    return s->cands[best].id;
}

/* Inverse CDF over the current order of the set with uniform u in [0, 1). */
static size_t pick_index(smp_state *s, double u)
{
    smp_softmax(s);
    double total = 0.0;
    for (size_t i = 0; i < s->n_cands; i++)
        total += s->cands[i].prob;
    double target = u * total, cum = 0.0;
    for (size_t i = 0; i < s->n_cands; i++) {
        cum += s->cands[i].prob;
        if (target < cum)
            return i;
    }
    /* rounding: the last candidate with nonzero probability */
    for (size_t i = s->n_cands; i-- > 0;)
        if (s->cands[i].prob > 0)
            return i;
    return 0;
}

static int cand_cmp_id(const void *a, const void *b)
{
    int32_t x = ((const smp_cand *)a)->id, y = ((const smp_cand *)b)->id;
    return (x > y) - (x < y);
}

int32_t smp_draw(smp_state *s, float skew)
{
    double u = smp_uniform(s->params.seed, s->step, 0);
    if (skew != 0.0f) {
        smp_sort_prefix(s, s->n_cands);
        u = pow(u, exp((double)skew));
    } else {
        /* the inverse CDF in ascending id order: the rule of gpu_sample (kernels/cuda), so the
         * device chain picks the same token for the same seed and step */
        size_t i = 1;
        while (i < s->n_cands && s->cands[i - 1].id < s->cands[i].id)
            i++;
        if (i < s->n_cands) {
            qsort(s->cands, s->n_cands, sizeof *s->cands, cand_cmp_id);
            s->n_sorted = 0;
        }
    }
    return s->cands[pick_index(s, u)].id;
}

/* Shared with mirostat.c through this non-static name (declared there). */
size_t smp_pick_index_(smp_state *s, double u);
size_t smp_pick_index_(smp_state *s, double u) { return pick_index(s, u); }

/* ---- the chain ----------------------------------------------------------------- */

void smp_apply_stage(smp_state *s, smp_stage stage)
{
    const smp_params *p = &s->params;
    switch (stage) {
    case SMP_STAGE_PENALTIES:
        smp_penalties(s, p->repetition_penalty, p->frequency_penalty, p->presence_penalty,
                      p->penalty_range, p->penalty_decay);
        break;
    case SMP_STAGE_DRY:
        smp_dry(s, p->dry_multiplier, p->dry_base, p->dry_allowed_length, p->dry_range);
        break;
    case SMP_STAGE_BIAS:
        smp_logit_bias_apply(s, p->logit_bias, p->n_logit_bias);
        smp_ban(s, p->banned, p->n_banned);
        if (p->n_allowed > 0)
            smp_allow_only(s, p->allowed, p->n_allowed);
        break;
    case SMP_STAGE_TOP_K: smp_top_k(s, p->top_k); break;
    case SMP_STAGE_TOP_P: smp_top_p(s, p->top_p); break;
    case SMP_STAGE_MIN_P: smp_min_p(s, p->min_p); break;
    case SMP_STAGE_TOP_A: smp_top_a(s, p->top_a); break;
    case SMP_STAGE_TYPICAL: smp_typical(s, p->typical_p); break;
    case SMP_STAGE_TFS: smp_tfs(s, p->tfs_z); break;
    case SMP_STAGE_TOP_N_SIGMA: smp_top_n_sigma(s, p->top_n_sigma); break;
    case SMP_STAGE_XTC: smp_xtc(s, p->xtc_threshold, p->xtc_probability); break;
    case SMP_STAGE_SMOOTHING: smp_smoothing(s, p->smoothing_factor, p->smoothing_curve); break;
    case SMP_STAGE_TEMPERATURE:
        if (p->temperature <= 0.0f)
            break; /* greedy pick follows */
        if (p->dynatemp_range > 0.0f)
            smp_dynatemp(s, p->temperature, p->dynatemp_range, p->dynatemp_exponent);
        else
            smp_temperature(s, p->temperature);
        break;
    case SMP_STAGE_COUNT_:
        break;
    }
}

ck_status smp_sample(smp_state *s, const float *logits, const int32_t *history,
                     size_t n_history, uint64_t step, int32_t *out_token, ck_error *err)
{
    if (!out_token)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "sampler: out_token is NULL");
    ck_status st = smp_begin(s, logits, history, n_history, step, err);
    if (st != CK_OK)
        return st;
    const smp_params *p = &s->params;
    for (size_t i = 0; i < p->n_order; i++)
        smp_apply_stage(s, p->order[i]);
    if (p->temperature <= 0.0f)
        *out_token = smp_greedy(s);
    else if (p->mirostat == 1)
        *out_token = smp_mirostat_v1(s, p->mirostat_tau, p->mirostat_eta);
    else if (p->mirostat == 2)
        *out_token = smp_mirostat_v2(s, p->mirostat_tau, p->mirostat_eta);
    else
        *out_token = smp_draw(s, p->skew);
    return CK_OK;
}

/* ---- logprobs ---------------------------------------------------------------- */

ck_status smp_logprobs(const float *logits, size_t n_vocab, int32_t token, size_t top_n,
                       float *out_token_logprob, smp_logprob *out_top, size_t *out_n,
                       ck_error *err)
{
    if (!logits || n_vocab == 0 || (top_n > 0 && (!out_top || !out_n)))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "logprobs: NULL or empty input");
    if (token < 0 || (size_t)token >= n_vocab)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "logprobs: token %d outside the vocabulary (%zu)",
                       (int)token, n_vocab);
    float max = -INFINITY;
    for (size_t i = 0; i < n_vocab; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0.0;
    for (size_t i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - max);
    double lse = max + log(sum);
    if (out_token_logprob)
        *out_token_logprob = (float)(logits[token] - lse);
    if (top_n > n_vocab)
        top_n = n_vocab;
    size_t n = 0; /* out_top[0..n) sorted best first: insertion, O(V * top_n) worst case */
    for (size_t i = 0; i < n_vocab && top_n > 0; i++) {
        float v = logits[i];
        if (n == top_n && !(v > out_top[n - 1].logprob))
            continue;
        size_t j = n < top_n ? n++ : n - 1;
        while (j > 0 && v > out_top[j - 1].logprob) {
            out_top[j] = out_top[j - 1];
            j--;
        }
        out_top[j].id = (int32_t)i;
        out_top[j].logprob = v;
    }
    for (size_t i = 0; i < n; i++)
        out_top[i].logprob = (float)(out_top[i].logprob - lse);
    if (out_n)
        *out_n = n;
    return CK_OK;
}
