/* transform.c: stages that reshape logits without removing candidates:
 * temperature, dynamic (entropy-based) temperature, smoothing (quadratic sampling). */
#include "sample_internal.h"

#include <math.h>

static float max_logit(const smp_state *s)
{
    float m = -INFINITY;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].logit > m)
            m = s->cands[i].logit;
    return m;
}

void smp_temperature(smp_state *s, float temperature)
{
    if (!(temperature > 0.0f) || temperature == 1.0f)
        return;
    for (size_t i = 0; i < s->n_cands; i++)
        s->cands[i].logit /= temperature;
    s->probs_valid = 0; /* order unchanged: positive scaling */
}

void smp_dynatemp(smp_state *s, float temperature, float range, float exponent)
{
    if (s->n_cands < 2) {
        smp_temperature(s, temperature);
        return;
    }
    float t_min = temperature - range, t_max = temperature + range;
    if (t_min < 0.0f)
        t_min = 0.0f;
    smp_softmax(s);
    double h = 0.0;
    for (size_t i = 0; i < s->n_cands; i++) {
        double p = s->cands[i].prob;
        if (p > 0.0)
            h -= p * log(p);
    }
    double h_max = log((double)s->n_cands);
    double norm = h_max > 0.0 ? h / h_max : 0.0;
    if (norm < 0.0) norm = 0.0;
    if (norm > 1.0) norm = 1.0;
    float t = (float)(t_min + (t_max - t_min) * pow(norm, (double)exponent));
    if (t <= 0.0f)
        t = 1e-6f; /* a zero temperature: as sharp as a float allows, still a draw */
    for (size_t i = 0; i < s->n_cands; i++)
        s->cands[i].logit /= t;
    s->probs_valid = 0;
}

void smp_smoothing(smp_state *s, float factor, float curve)
{
    if (factor <= 0.0f || s->n_cands == 0)
        return;
    float m = max_logit(s);
    if (!isfinite(m))
        return;
    float k = factor * (3.0f - curve) / 2.0f, q = factor * (curve - 1.0f) / 2.0f;
    for (size_t i = 0; i < s->n_cands; i++) {
        float d = s->cands[i].logit - m;
        if (isinf(d))
            continue; /* -inf stays -inf */
        s->cands[i].logit = m - k * d * d + q * d * d * d;
    }
    s->n_sorted = 0; /* a cubic term can reorder */
    s->probs_valid = 0;
}
