/* penalties.c: history-based penalties (repetition / frequency / presence, DRY)
 * and the id-based stages (logit bias, banned tokens, allowed set). */
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>

/* Repetition (CTRL-style: a positive logit is divided by the penalty, a negative one
 * multiplied), frequency (minus count * f) and presence (minus p once).
 * With decay, an occurrence d tokens back (d = 0 the last token) weighs
 * w = (1 - decay)^d: count is the sum of weights, presence and repetition use the
 * largest weight (the latest occurrence): penalty factor 1 + (rep - 1) * w. */
void smp_penalties(smp_state *s, float repetition, float frequency, float presence,
                   int32_t range, float decay)
{
    if (repetition == 1.0f && frequency == 0.0f && presence == 0.0f)
        return;
    if (s->n_history == 0)
        return;
    size_t n = s->n_history;
    size_t start = (range > 0 && (size_t)range < n) ? n - (size_t)range : 0;
    float *count = s->vocab_f;        /* sum of weights per token */
    int32_t *latest = s->vocab_i;     /* distance of the latest occurrence + 1 (0 = none) */
    double keep = 1.0 - (double)decay;
    for (size_t i = n; i-- > start;) {
        int32_t t = s->history[i];
        if (t < 0 || (size_t)t >= s->n_vocab)
            continue;
        size_t d = n - 1 - i;
        count[t] += decay > 0.0f ? (float)pow(keep, (double)d) : 1.0f;
        if (latest[t] == 0)
            latest[t] = (int32_t)(d + 1);
    }
    for (size_t i = 0; i < s->n_cands; i++) {
        smp_cand *c = &s->cands[i];
        if (latest[c->id] == 0)
            continue;
        float w = decay > 0.0f ? (float)pow(keep, (double)(latest[c->id] - 1)) : 1.0f;
        float rep = 1.0f + (repetition - 1.0f) * w;
        if (c->logit > 0.0f)
            c->logit /= rep;
        else
            c->logit *= rep;
        c->logit -= count[c->id] * frequency + w * presence;
    }
    for (size_t i = start; i < n; i++) { /* leave the scratch zeroed */
        int32_t t = s->history[i];
        if (t >= 0 && (size_t)t < s->n_vocab) {
            count[t] = 0.0f;
            latest[t] = 0;
        }
    }
    s->n_sorted = 0;
    s->probs_valid = 0;
}

static int grow_hist(smp_state *s, size_t n)
{
    if (n <= s->hist_cap)
        return 0;
    size_t cap = s->hist_cap ? s->hist_cap : 256;
    while (cap < n)
        cap *= 2;
    int32_t *a = realloc(s->hist_i, cap * sizeof *a);
    if (!a)
        return -1;
    s->hist_i = a;
    int32_t *b = realloc(s->hist_j, cap * sizeof *b);
    if (!b)
        return -1;
    s->hist_j = b;
    s->hist_cap = cap;
    return 0;
}

/* DRY ("don't repeat yourself"): for a candidate t, let n be the length of the
 * longest suffix of the history that also occurs earlier in the (ranged) history
 * immediately followed by t. If n >= max(allowed_length, 1), t's logit drops by
 * multiplier * base^(n - allowed_length). A match never spans a sequence-breaker
 * position (a position covered by an occurrence of any breaker sequence), and a
 * candidate that is itself a one-token breaker is never penalised.
 *
 * The suffix matches are the Z-function of the reversed ranged history: z[j] is
 * the length of the common prefix of rev and rev[j..], i.e. how far the text
 * ending at position (n-1-j) agrees with the text ending at the last token. */
void smp_dry(smp_state *s, float multiplier, float base, int32_t allowed_length, int32_t range)
{
    if (multiplier == 0.0f || s->n_history < 2)
        return;
    size_t n = s->n_history;
    size_t start = (range > 0 && (size_t)range < n) ? n - (size_t)range : 0;
    const int32_t *h = s->history + start;
    n -= start;
    if (n < 2 || grow_hist(s, n) != 0)
        return; /* out of memory: DRY is skipped for this step rather than failing it */
    int32_t *run = s->hist_i; /* run[i]: breaker-free tokens ending at i (0 if i is one) */
    int32_t *z = s->hist_j;
    unsigned char *is_brk = s->vocab_mark;

    /* breaker positions: mark every position covered by a breaker occurrence */
    for (size_t i = 0; i < n; i++)
        run[i] = 1;
    const int32_t *bt = s->params.dry_breaker_tokens;
    for (size_t b = 0, off = 0; b < s->params.n_dry_breakers; off += s->params.dry_breaker_lengths[b++]) {
        size_t len = s->params.dry_breaker_lengths[b];
        if (len == 1 && bt[off] >= 0 && (size_t)bt[off] < s->n_vocab)
            is_brk[bt[off]] = 1;
        for (size_t i = 0; i + len <= n; i++) {
            size_t k = 0;
            while (k < len && h[i + k] == bt[off + k])
                k++;
            if (k == len)
                for (k = 0; k < len; k++)
                    run[i + k] = 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        run[i] = run[i] ? (i > 0 ? run[i - 1] : 0) + 1 : 0;
    int32_t tail_run = run[n - 1];

    /* Z-function over rev[i] = h[n-1-i] */
#define REV(i) h[n - 1 - (i)]
    z[0] = (int32_t)n;
    size_t l = 0, r = 0;
    for (size_t i = 1; i < n; i++) {
        size_t zi = 0;
        if (i < r) {
            zi = (size_t)z[i - l];
            if (zi > r - i)
                zi = r - i;
        }
        while (i + zi < n && REV(zi) == REV(i + zi))
            zi++;
        z[i] = (int32_t)zi;
        if (i + zi > r) {
            l = i;
            r = i + zi;
        }
    }
#undef REV
    /* position e = n-1-j (j >= 1) ends a match of length m, followed by h[e+1] */
    int32_t *best = s->vocab_i;
    int32_t min_len = allowed_length > 1 ? allowed_length : 1;
    for (size_t j = 1; j < n; j++) {
        size_t e = n - 1 - j;
        int32_t m = z[j];
        if (m > run[e])
            m = run[e];
        if (m > tail_run)
            m = tail_run;
        int32_t t = h[e + 1];
        if (m >= min_len && t >= 0 && (size_t)t < s->n_vocab && m > best[t])
            best[t] = m;
    }
    for (size_t i = 0; i < s->n_cands; i++) {
        smp_cand *c = &s->cands[i];
        int32_t m = best[c->id];
        if (m > 0 && !is_brk[c->id])
            c->logit -= multiplier * powf(base, (float)(m - allowed_length));
    }
    for (size_t j = 1; j < n; j++) { /* leave the scratch zeroed */
        int32_t t = h[n - j];
        if (t >= 0 && (size_t)t < s->n_vocab)
            best[t] = 0;
    }
    for (size_t b = 0, off = 0; b < s->params.n_dry_breakers; off += s->params.dry_breaker_lengths[b++])
        if (bt[off] >= 0 && (size_t)bt[off] < s->n_vocab)
            is_brk[bt[off]] = 0;
    s->n_sorted = 0;
    s->probs_valid = 0;
}

void smp_logit_bias_apply(smp_state *s, const smp_logit_bias *bias, size_t n_bias)
{
    if (n_bias == 0)
        return;
    for (size_t i = 0; i < n_bias; i++)
        if (bias[i].id >= 0 && (size_t)bias[i].id < s->n_vocab)
            s->vocab_f[bias[i].id] += bias[i].bias;
    for (size_t i = 0; i < s->n_cands; i++)
        s->cands[i].logit += s->vocab_f[s->cands[i].id];
    for (size_t i = 0; i < n_bias; i++)
        if (bias[i].id >= 0 && (size_t)bias[i].id < s->n_vocab)
            s->vocab_f[bias[i].id] = 0.0f;
    s->n_sorted = 0;
    s->probs_valid = 0;
}

/* Keep the candidates whose mark equals `keep_marked`; never empties the set (if
 * every candidate would go, the set is left as it was). */
static void filter_marked(smp_state *s, const int32_t *ids, size_t n_ids, int keep_marked)
{
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= 0 && (size_t)ids[i] < s->n_vocab)
            s->vocab_mark[ids[i]] = 1;
    size_t kept = 0;
    for (size_t i = 0; i < s->n_cands; i++)
        if ((s->vocab_mark[s->cands[i].id] != 0) == (keep_marked != 0))
            kept++;
    if (kept > 0 && kept < s->n_cands) {
        size_t w = 0;
        for (size_t i = 0; i < s->n_cands; i++)
            if ((s->vocab_mark[s->cands[i].id] != 0) == (keep_marked != 0))
                s->cands[w++] = s->cands[i];
        s->n_cands = w;
        s->n_sorted = 0; /* order kept, but a sorted prefix may have lost members */
        s->probs_valid = 0;
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= 0 && (size_t)ids[i] < s->n_vocab)
            s->vocab_mark[ids[i]] = 0;
}

void smp_ban(smp_state *s, const int32_t *ids, size_t n_ids)
{
    if (n_ids > 0)
        filter_marked(s, ids, n_ids, 0);
}

void smp_allow_only(smp_state *s, const int32_t *ids, size_t n_ids)
{
    filter_marked(s, ids, n_ids, 1);
}
