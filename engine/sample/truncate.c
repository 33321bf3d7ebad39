/* truncate.c: stages that remove candidates: top-k, top-p, min-p, top-a, typical,
 * tail-free, top-n-sigma, XTC. Each keeps at least one candidate. */
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>

static void keep_first(smp_state *s, size_t n)
{
    if (n < 1)
        n = 1;
    if (n >= s->n_cands)
        return;
    s->n_cands = n;
    if (s->n_sorted > n)
        s->n_sorted = n;
    s->probs_valid = 0;
}

/* Keep candidates with prob >= threshold (order preserved); at least the most likely. */
static void keep_if_prob_at_least(smp_state *s, float threshold)
{
    size_t w = 0, best = 0;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].prob > s->cands[best].prob)
            best = i;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].prob >= threshold || i == best)
            s->cands[w++] = s->cands[i];
    if (w == s->n_cands)
        return;
    s->n_cands = w;
    s->n_sorted = 0;
    s->probs_valid = 0;
}

static float max_prob(const smp_state *s)
{
    float m = 0.0f;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].prob > m)
            m = s->cands[i].prob;
    return m;
}

void smp_top_k(smp_state *s, int32_t k)
{
    if (k <= 0 || (size_t)k >= s->n_cands)
        return;
    smp_sort_prefix(s, (size_t)k);
    keep_first(s, (size_t)k);
}

void smp_top_p(smp_state *s, float p)
{
    if (p >= 1.0f || s->n_cands <= 1)
        return;
    smp_softmax(s);
    /* sort a growing prefix until it holds mass >= p */
    size_t chunk = 256;
    size_t done = 0;
    double cum = 0.0;
    for (;;) {
        size_t n = chunk < s->n_cands ? chunk : s->n_cands;
        smp_sort_prefix(s, n);
        for (; done < n; done++) {
            cum += s->cands[done].prob;
            if (cum >= p) {
                keep_first(s, done + 1);
                return;
            }
        }
        if (n == s->n_cands)
            return;
        chunk *= 8;
    }
}

void smp_min_p(smp_state *s, float p)
{
    if (p <= 0.0f || s->n_cands <= 1)
        return;
    smp_softmax(s);
    keep_if_prob_at_least(s, p * max_prob(s));
}

void smp_top_a(smp_state *s, float a)
{
    if (a <= 0.0f || s->n_cands <= 1)
        return;
    smp_softmax(s);
    float m = max_prob(s);
    keep_if_prob_at_least(s, a * m * m);
}

typedef struct { float key; size_t idx; } keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Locally typical sampling: with H the entropy of the set, order candidates by
 * |-log p - H| ascending and keep the shortest such prefix with mass >= p. */
void smp_typical(smp_state *s, float p)
{
    if (p >= 1.0f || s->n_cands <= 1)
        return;
    smp_softmax(s);
    smp_sort_prefix(s, s->n_cands); /* ties resolved by logit order, like everything else */
    double h = 0.0;
    for (size_t i = 0; i < s->n_cands; i++) {
        double q = s->cands[i].prob;
        if (q > 0.0)
            h -= q * log(q);
    }
    if (!s->typ_keys) { /* once per job, on first use */
        s->typ_keys = malloc(s->n_vocab * sizeof(keyed));
        s->typ_tmp = malloc(s->n_vocab * sizeof(smp_cand));
    }
    keyed *k = s->typ_keys;
    smp_cand *tmp = s->typ_tmp;
    if (!k || !tmp) { /* out of memory: the set stays untruncated (tried again next step) */
        free(s->typ_keys);
        free(s->typ_tmp);
        s->typ_keys = NULL;
        s->typ_tmp = NULL;
        return;
    }
    for (size_t i = 0; i < s->n_cands; i++) {
        double q = s->cands[i].prob;
        k[i].key = q > 0.0 ? (float)fabs(-log(q) - h) : INFINITY;
        k[i].idx = i;
    }
    qsort(k, s->n_cands, sizeof *k, keyed_cmp);
    double cum = 0.0;
    size_t n = s->n_cands;
    for (size_t i = 0; i < s->n_cands; i++) {
        cum += s->cands[k[i].idx].prob;
        if (cum >= p) {
            n = i + 1;
            break;
        }
    }
    for (size_t i = 0; i < n; i++)
        tmp[i] = s->cands[k[i].idx];
    for (size_t i = 0; i < n; i++)
        s->cands[i] = tmp[i];
    s->n_cands = n;
    s->n_sorted = 0;
    s->probs_valid = 0;
}

/* Tail-free sampling: with probs sorted descending, the second differences
 * d2[i] = p[i] - 2 p[i+1] + p[i+2] (i = 0..n-3), w = |d2| / sum |d2|; keep the
 * first k tokens, k = 1 + the first i at which w[0] + ... + w[i] > z (all if none). */
void smp_tfs(smp_state *s, float z)
{
    if (z >= 1.0f || s->n_cands <= 2)
        return;
    smp_softmax(s);
    smp_sort_prefix(s, s->n_cands);
    size_t n = s->n_cands;
    double total = 0.0;
    for (size_t i = 0; i + 2 < n; i++)
        total += fabs((double)s->cands[i].prob - 2.0 * s->cands[i + 1].prob + s->cands[i + 2].prob);
    if (!(total > 0.0))
        return;
    double cum = 0.0;
    for (size_t i = 0; i + 2 < n; i++) {
        cum += fabs((double)s->cands[i].prob - 2.0 * s->cands[i + 1].prob + s->cands[i + 2].prob) / total;
        if (cum > z) {
            keep_first(s, i + 1);
            return;
        }
    }
}

/* Top-n-sigma: keep logits >= max - n * sigma, sigma the standard deviation of the
 * finite logits of the set. */
void smp_top_n_sigma(smp_state *s, float nsig)
{
    if (nsig <= 0.0f || s->n_cands <= 1)
        return;
    double mean = 0.0, m = -INFINITY;
    size_t cnt = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        float l = s->cands[i].logit;
        if (isfinite(l)) {
            mean += l;
            cnt++;
            if (l > m) m = l;
        }
    }
    if (cnt == 0)
        return;
    mean /= (double)cnt;
    double var = 0.0;
    for (size_t i = 0; i < s->n_cands; i++) {
        float l = s->cands[i].logit;
        if (isfinite(l))
            var += (l - mean) * (l - mean);
    }
    double thr = m - nsig * sqrt(var / (double)cnt);
    size_t w = 0;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].logit >= thr)
            s->cands[w++] = s->cands[i];
    if (w == s->n_cands)
        return;
    s->n_cands = w; /* never 0: the max passes */
    s->n_sorted = 0;
    s->probs_valid = 0;
}

void smp_xtc(smp_state *s, float threshold, float probability)
{
    if (probability <= 0.0f || s->n_cands < 2)
        return;
    if (smp_uniform(s->params.seed, s->step, 1) >= probability)
        return;
    smp_softmax(s);
    size_t above = 0, least = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        const smp_cand *c = &s->cands[i];
        if (c->prob >= threshold) {
            if (above == 0 || c->prob < s->cands[least].prob ||
                (c->prob == s->cands[least].prob && c->id > s->cands[least].id))
                least = i;
            above++;
        }
    }
    if (above < 2)
        return;
    float keep_prob = s->cands[least].prob;
    int32_t keep_id = s->cands[least].id;
    size_t w = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        const smp_cand *c = &s->cands[i];
        if (c->prob >= threshold && !(c->prob == keep_prob && c->id == keep_id))
            continue;
        s->cands[w++] = *c;
    }
    s->n_cands = w;
    s->n_sorted = 0;
    s->probs_valid = 0;
}
