/* mirostat.c: Mirostat v1 and v2 (Basu et al., "Mirostat: a neural text decoding
 * algorithm that directly controls perplexity"). The running target mu lives in
 * the job's state, starting at 2 * tau; surprise is -log2 of the picked token's
 * probability in the truncated, renormalised distribution it was drawn from. */
#include "sample_internal.h"

#include <math.h>

size_t smp_pick_index_(smp_state *s, double u);

static int32_t draw_and_update(smp_state *s, float tau, float eta)
{
    s->probs_valid = 0;
    smp_softmax(s);
    size_t i = smp_pick_index_(s, smp_uniform(s->params.seed, s->step, 0));
    double surprise = -log2((double)s->cands[i].prob);
    s->mirostat_mu -= eta * (float)(surprise - tau);
    return s->cands[i].id;
}

/* v1: estimate the Zipf exponent s_hat from the top m = 100 probabilities, then
 * keep k = ((e * 2^mu) / (1 - N^-e))^(1 / s_hat) tokens (e = s_hat - 1, N = n_vocab). */
int32_t smp_mirostat_v1(smp_state *s, float tau, float eta)
{
    smp_softmax(s);
    size_t m = s->n_cands < 100 ? s->n_cands : 100;
    smp_sort_prefix(s, m);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i + 1 < m; i++) {
        double t = log((double)(i + 2) / (double)(i + 1));
        double p0 = s->cands[i].prob, p1 = s->cands[i + 1].prob;
        if (!(p0 > 0.0) || !(p1 > 0.0))
            break;
        double b = log(p0 / p1);
        num += t * b;
        den += t * t;
    }
    double s_hat = den > 0.0 ? num / den : 1.0;
    double eps = s_hat - 1.0;
    double k;
    if (fabs(eps) < 1e-9)
        k = (double)s->n_cands;
    else
        k = pow((eps * pow(2.0, (double)s->mirostat_mu)) /
                    (1.0 - pow((double)s->n_vocab, -eps)), 1.0 / s_hat);
    if (!(k >= 1.0))
        k = 1.0;
    if (k < (double)s->n_cands)
        smp_top_k(s, (int32_t)k);
    return draw_and_update(s, tau, eta);
}

/* v2: drop candidates whose surprise -log2 p exceeds mu (keeping at least the most
 * likely), renormalise, draw. */
int32_t smp_mirostat_v2(smp_state *s, float tau, float eta)
{
    smp_softmax(s);
    size_t w = 0, best = 0;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].prob > s->cands[best].prob ||
            (s->cands[i].prob == s->cands[best].prob && s->cands[i].id < s->cands[best].id))
            best = i;
    for (size_t i = 0; i < s->n_cands; i++)
        if (-log2((double)s->cands[i].prob) <= s->mirostat_mu || i == best)
            s->cands[w++] = s->cands[i];
    s->n_cands = w;
    s->n_sorted = 0;
    return draw_and_update(s, tau, eta);
}
