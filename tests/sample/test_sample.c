/* test_sample.c: each sampler stage against an independent computation of its
 * definition, written here from the math (full sorts, O(V^2) scans). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state = 88172645463325252ULL;
static double frand(void) /* xorshift64, test-local, for inputs only */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

static void random_logits(float *l, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        l[i] = (float)((frand() * 2.0 - 1.0) * scale);
}

static smp_state *make_state(const smp_params *p, size_t n_vocab)
{
    smp_state *s = NULL;
    ck_error err = {0};
    assert_int_equal(smp_state_create(p, n_vocab, &s, &err), CK_OK);
    return s;
}

static smp_state *begin_with(const float *logits, size_t n, const int32_t *hist, size_t n_hist)
{
    smp_params p;
    smp_params_default(&p);
    smp_state *s = make_state(&p, n);
    ck_error err = {0};
    assert_int_equal(smp_begin(s, logits, hist, n_hist, 0, &err), CK_OK);
    return s;
}

/* The ids left in the set, as a 0/1 mask over the vocabulary. */
static void kept_mask(smp_state *s, unsigned char *mask, size_t n_vocab)
{
    memset(mask, 0, n_vocab);
    size_t n;
    smp_cand *c = smp_cands(s, &n);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].id >= 0 && (size_t)c[i].id < n_vocab);
        assert_int_equal(mask[c[i].id], 0); /* no duplicates */
        mask[c[i].id] = 1;
    }
}

static float logit_of(smp_state *s, int32_t id)
{
    long i = smp_find(s, id);
    assert_true(i >= 0);
    size_t n;
    return smp_cands(s, &n)[i].logit;
}

typedef struct { int32_t id; float logit; double p; } ref_t;

static int ref_desc(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

/* Reference: all tokens sorted by logit desc with their softmax probability. */
static ref_t *ref_sorted(const float *l, size_t n)
{
    ref_t *r = malloc(n * sizeof *r);
    double m = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) if (l[i] > m) m = l[i];
    for (size_t i = 0; i < n; i++) { r[i].id = (int32_t)i; r[i].logit = l[i]; r[i].p = exp(l[i] - m); sum += r[i].p; }
    for (size_t i = 0; i < n; i++) r[i].p /= sum;
    qsort(r, n, sizeof *r, ref_desc);
    return r;
}

#define V 3000

/* ---- truncation stages ---------------------------------------------------------- */

static void top_k_should_keep_exactly_the_k_highest_logits(void **st)
{
    (void)st;
    static float l[V];
    static unsigned char got[V];
    random_logits(l, V, 8);
    const int32_t ks[] = {1, 2, 7, 40, 255, 1000, V - 1};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        smp_state *s = begin_with(l, V, NULL, 0);
        smp_top_k(s, ks[t]);
        kept_mask(s, got, V);
        ref_t *r = ref_sorted(l, V);
        for (size_t i = 0; i < V; i++)
            assert_int_equal(got[r[i].id], i < (size_t)ks[t]);
        assert_int_equal(smp_greedy(s), r[0].id);
        free(r);
        smp_state_destroy(s);
    }
}

static void greedy_should_pick_the_highest_logit_and_the_lower_id_on_a_tie(void **st)
{
    (void)st;
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, -INFINITY};
    smp_state *s = begin_with(l, 6, NULL, 0);
    assert_int_equal(smp_greedy(s), 1);
    smp_state_destroy(s);
}

static void top_p_should_keep_the_smallest_prefix_reaching_p(void **st)
{
    (void)st;
    static float l[V];
    static unsigned char got[V];
    const float ps[] = {0.05f, 0.3f, 0.5f, 0.9f, 0.99f, 0.9999f};
    for (int scale = 1; scale <= 3; scale++) {
        random_logits(l, V, (float)(scale * 3));
        ref_t *r = ref_sorted(l, V);
        for (size_t t = 0; t < sizeof ps / sizeof *ps; t++) {
            smp_state *s = begin_with(l, V, NULL, 0);
            smp_top_p(s, ps[t]);
            kept_mask(s, got, V);
            double cum = 0; size_t keep = V;
            for (size_t i = 0; i < V; i++) { cum += r[i].p; if (cum >= ps[t]) { keep = i + 1; break; } }
            size_t n; smp_cands(s, &n);
            /* float vs double cumulation may disagree by one at the boundary only */
            assert_true(n == keep || n + 1 == keep || n == keep + 1);
            for (size_t i = 0; i < V; i++)
                if (i + 1 < keep || i > keep)
                    assert_int_equal(got[r[i].id], i < keep);
            smp_state_destroy(s);
        }
        free(r);
    }
}

static void min_p_should_keep_tokens_with_prob_at_least_p_times_the_max(void **st)
{
    (void)st;
    static float l[V];
    static unsigned char got[V];
    random_logits(l, V, 6);
    ref_t *r = ref_sorted(l, V);
    const float ps[] = {0.01f, 0.05f, 0.2f, 0.7f};
    for (size_t t = 0; t < 4; t++) {
        smp_state *s = begin_with(l, V, NULL, 0);
        smp_min_p(s, ps[t]);
        kept_mask(s, got, V);
        for (size_t i = 0; i < V; i++) {
            double thr = ps[t] * r[0].p;
            if (fabs(r[i].p - thr) > 1e-6 * thr)
                assert_int_equal(got[r[i].id], r[i].p >= thr);
        }
        smp_state_destroy(s);
    }
    free(r);
}

static void top_a_should_keep_tokens_with_prob_at_least_a_times_max_squared(void **st)
{
    (void)st;
    static float l[V];
    static unsigned char got[V];
    random_logits(l, V, 10);
    ref_t *r = ref_sorted(l, V);
    smp_state *s = begin_with(l, V, NULL, 0);
    smp_top_a(s, 0.2f);
    kept_mask(s, got, V);
    double thr = 0.2 * r[0].p * r[0].p;
    for (size_t i = 0; i < V; i++)
        if (fabs(r[i].p - thr) > 1e-6 * thr)
            assert_int_equal(got[r[i].id], r[i].p >= thr);
    smp_state_destroy(s);
    free(r);
}

static int cmp_key(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void typical_should_keep_the_most_typical_tokens_up_to_mass_p(void **st)
{
    (void)st;
    enum { N = 500 };
    float l[N];
    unsigned char got[N];
    random_logits(l, N, 4);
    ref_t *r = ref_sorted(l, N);
    double h = 0;
    for (size_t i = 0; i < N; i++) h -= r[i].p * log(r[i].p);
    double key[N][2];
    for (size_t i = 0; i < N; i++) { key[i][0] = fabs(-log(r[i].p) - h); key[i][1] = (double)i; }
    qsort(key, N, sizeof key[0], cmp_key);
    const float ps[] = {0.2f, 0.5f, 0.95f};
    for (size_t t = 0; t < 3; t++) {
        double cum = 0; size_t keep = N;
        for (size_t i = 0; i < N; i++) { cum += r[(size_t)key[i][1]].p; if (cum >= ps[t]) { keep = i + 1; break; } }
        smp_state *s = begin_with(l, N, NULL, 0);
        smp_typical(s, ps[t]);
        kept_mask(s, got, N);
        for (size_t i = 0; i + 1 < N; i++)
            if (i + 1 != keep && i != keep) /* the boundary may differ by float rounding */
                assert_int_equal(got[r[(size_t)key[i][1]].id], i < keep);
        smp_state_destroy(s);
    }
    free(r);
}

static void tfs_should_cut_where_the_normalised_second_derivative_mass_exceeds_z(void **st)
{
    (void)st;
    enum { N = 400 };
    float l[N];
    unsigned char got[N];
    random_logits(l, N, 5);
    ref_t *r = ref_sorted(l, N);
    double d2[N], tot = 0;
    for (size_t i = 0; i + 2 < N; i++) { d2[i] = fabs(r[i].p - 2 * r[i + 1].p + r[i + 2].p); tot += d2[i]; }
    const float zs[] = {0.3f, 0.8f, 0.95f};
    for (size_t t = 0; t < 3; t++) {
        double cum = 0; size_t keep = N;
        for (size_t i = 0; i + 2 < N; i++) { cum += d2[i] / tot; if (cum > zs[t]) { keep = i + 1; break; } }
        smp_state *s = begin_with(l, N, NULL, 0);
        smp_tfs(s, zs[t]);
        kept_mask(s, got, N);
        size_t n; smp_cands(s, &n);
        assert_true(n + 1 >= keep && n <= keep + 1);
        for (size_t i = 0; i < N; i++)
            if (i + 1 < keep || i > keep)
                assert_int_equal(got[r[i].id], i < keep);
        smp_state_destroy(s);
    }
    free(r);
}

static void top_n_sigma_should_keep_logits_within_n_stddevs_of_the_max(void **st)
{
    (void)st;
    static float l[V];
    static unsigned char got[V];
    random_logits(l, V, 5);
    double mean = 0, var = 0, m = -INFINITY;
    for (size_t i = 0; i < V; i++) { mean += l[i]; if (l[i] > m) m = l[i]; }
    mean /= V;
    for (size_t i = 0; i < V; i++) var += (l[i] - mean) * (l[i] - mean);
    double sd = sqrt(var / V);
    smp_state *s = begin_with(l, V, NULL, 0);
    smp_top_n_sigma(s, 1.5f);
    kept_mask(s, got, V);
    for (size_t i = 0; i < V; i++)
        if (fabs(l[i] - (m - 1.5 * sd)) > 1e-4)
            assert_int_equal(got[i], l[i] >= m - 1.5 * sd);
    smp_state_destroy(s);
}

static void xtc_should_remove_all_above_threshold_but_the_least_likely(void **st)
{
    (void)st;
    float l[5] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.07f), logf(0.03f)};
    unsigned char got[5];
    smp_state *s = begin_with(l, 5, NULL, 0);
    smp_xtc(s, 0.15f, 1.0f);
    kept_mask(s, got, 5);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    assert_int_equal(got[4], 1);
    smp_state_destroy(s);
    /* one token above the threshold: nothing removed; probability 0: nothing */
    s = begin_with(l, 5, NULL, 0);
    smp_xtc(s, 0.35f, 1.0f);
    kept_mask(s, got, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], 1);
    smp_xtc(s, 0.15f, 0.0f);
    kept_mask(s, got, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], 1);
    smp_state_destroy(s);
}

static void xtc_should_fire_with_the_configured_probability(void **st)
{
    (void)st;
    float l[3] = {logf(0.5f), logf(0.4f), logf(0.1f)};
    smp_params p;
    smp_params_default(&p);
    p.seed = 1234;
    smp_state *s = make_state(&p, 3);
    ck_error err = {0};
    int fired = 0;
    for (int step = 0; step < 4000; step++) {
        assert_int_equal(smp_begin(s, l, NULL, 0, (uint64_t)step, &err), CK_OK);
        smp_xtc(s, 0.3f, 0.25f);
        size_t n;
        smp_cands(s, &n);
        fired += n == 2;
    }
    assert_in_range(fired, 900, 1100); /* 1000 +- 3.6 sigma */
    smp_state_destroy(s);
}

/* ---- transforms and penalties ------------------------------------------------------ */

static void temperature_should_divide_logits(void **st)
{
    (void)st;
    float l[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    smp_state *s = begin_with(l, 4, NULL, 0);
    smp_temperature(s, 0.5f);
    for (int i = 0; i < 4; i++)
        assert_float_equal(logit_of(s, i), l[i] / 0.5f, 1e-6);
    smp_state_destroy(s);
}

static void dynatemp_should_scale_by_the_entropy_interpolated_temperature(void **st)
{
    (void)st;
    float l[4] = {2.0f, 1.0f, 0.0f, -1.0f};
    double m = 2, sum = 0, p[4], h = 0;
    for (int i = 0; i < 4; i++) { p[i] = exp(l[i] - m); sum += p[i]; }
    for (int i = 0; i < 4; i++) { p[i] /= sum; h -= p[i] * log(p[i]); }
    double t = 0.5 + (1.5 - 0.5) * pow(h / log(4.0), 2.0);
    smp_state *s = begin_with(l, 4, NULL, 0);
    smp_dynatemp(s, 1.0f, 0.5f, 2.0f);
    for (int i = 0; i < 4; i++)
        assert_float_equal(logit_of(s, i), l[i] / t, 1e-5);
    smp_state_destroy(s);
}

static void smoothing_should_apply_the_quadratic_and_cubic_transform(void **st)
{
    (void)st;
    float l[4] = {2.0f, 1.0f, 0.0f, -3.0f};
    const float f = 0.3f, curve = 2.0f;
    smp_state *s = begin_with(l, 4, NULL, 0);
    smp_smoothing(s, f, curve);
    for (int i = 0; i < 4; i++) {
        double d = l[i] - 2.0;
        double want = 2.0 - f * (3 - curve) / 2 * d * d + f * (curve - 1) / 2 * d * d * d;
        assert_float_equal(logit_of(s, i), want, 1e-5);
    }
    smp_state_destroy(s);
}

static void penalties_should_follow_the_repetition_frequency_presence_definitions(void **st)
{
    (void)st;
    float l[5] = {2.0f, -1.0f, 0.5f, 1.0f, -0.5f};
    int32_t hist[] = {0, 1, 0, 3, 0};
    smp_state *s = begin_with(l, 5, hist, 5);
    smp_penalties(s, 2.0f, 0.1f, 0.3f, 0, 0.0f);
    assert_float_equal(logit_of(s, 0), 2.0f / 2 - 3 * 0.1f - 0.3f, 1e-6);
    assert_float_equal(logit_of(s, 1), -1.0f * 2 - 1 * 0.1f - 0.3f, 1e-6);
    assert_float_equal(logit_of(s, 2), 0.5f, 1e-6);
    assert_float_equal(logit_of(s, 3), 1.0f / 2 - 0.1f - 0.3f, 1e-6);
    assert_float_equal(logit_of(s, 4), -0.5f, 1e-6);
    smp_state_destroy(s);
    /* range 2 sees {3, 0}; decay 0.5 weighs the last token 1, the one before 0.5 */
    s = begin_with(l, 5, hist, 5);
    smp_penalties(s, 2.0f, 0.1f, 0.3f, 2, 0.5f);
    assert_float_equal(logit_of(s, 0), 2.0f / 2 - 1 * 0.1f - 0.3f, 1e-6);
    assert_float_equal(logit_of(s, 1), -1.0f, 1e-6);
    assert_float_equal(logit_of(s, 3), 1.0f / 1.5f - 0.5f * 0.1f - 0.5f * 0.3f, 1e-6);
    smp_state_destroy(s);
}

static void bias_ban_and_allow_should_shift_and_filter_ids(void **st)
{
    (void)st;
    float l[6] = {0, 1, 2, 3, 4, 5};
    unsigned char got[6];
    smp_params p;
    smp_params_default(&p);
    smp_logit_bias b[2] = {{0, 10.0f}, {5, -1.5f}};
    int32_t ban[1] = {1}, allow[3] = {0, 1, 5};
    p.logit_bias = b; p.n_logit_bias = 2;
    p.banned = ban; p.n_banned = 1;
    p.allowed = allow; p.n_allowed = 3;
    smp_state *s = make_state(&p, 6);
    ck_error err = {0};
    assert_int_equal(smp_begin(s, l, NULL, 0, 0, &err), CK_OK);
    smp_apply_stage(s, SMP_STAGE_BIAS);
    kept_mask(s, got, 6);
    assert_memory_equal(got, ((unsigned char[]){1, 0, 0, 0, 0, 1}), 6);
    assert_float_equal(logit_of(s, 0), 10.0f, 1e-6);
    assert_float_equal(logit_of(s, 5), 3.5f, 1e-6);
    smp_state_destroy(s);
}

/* DRY reference, O(H^2), from the definition: for each earlier position e with a
 * follower, the longest run of tokens ending at e equal to the run ending at the
 * last token, with no breaker position inside either run. */
static void dry_reference(const int32_t *h, size_t n, const unsigned char *brkpos,
                          const unsigned char *brk_tok, size_t n_vocab, float mult, float base,
                          int allowed, float *pen)
{
    for (size_t t = 0; t < n_vocab; t++) pen[t] = 0;
    int *best = calloc(n_vocab, sizeof *best);
    for (size_t e = 0; e + 1 < n; e++) {
        size_t m = 0;
        while (m <= e && h[e - m] == h[n - 1 - m] && !brkpos[e - m] && !brkpos[n - 1 - m])
            m++;
        if ((int)m > best[h[e + 1]]) best[h[e + 1]] = (int)m;
    }
    int min_len = allowed > 1 ? allowed : 1;
    for (size_t t = 0; t < n_vocab; t++)
        if (best[t] >= min_len && !brk_tok[t])
            pen[t] = mult * powf(base, (float)(best[t] - allowed));
    free(best);
}

static void dry_should_penalise_the_token_that_would_extend_a_repeat(void **st)
{
    (void)st;
    float l[8] = {0};
    int32_t hist[] = {1, 2, 3, 4, 5, 1, 2, 3};
    smp_params p;
    smp_params_default(&p);
    smp_state *s = make_state(&p, 8);
    ck_error err = {0};
    assert_int_equal(smp_begin(s, l, hist, 8, 0, &err), CK_OK);
    smp_dry(s, 0.8f, 1.75f, 2, 0);
    assert_float_equal(logit_of(s, 4), -0.8f * 1.75f, 1e-6); /* "1 2 3" -> 4: n = 3 */
    for (int t = 0; t < 8; t++)
        if (t != 4) assert_float_equal(logit_of(s, t), 0.0f, 1e-6);
    smp_state_destroy(s);
    /* a breaker "2" cuts the match to "3": n = 1 < allowed length, no penalty */
    int32_t brk[1] = {2};
    uint32_t brk_len[1] = {1};
    p.dry_breaker_tokens = brk; p.dry_breaker_lengths = brk_len; p.n_dry_breakers = 1;
    s = make_state(&p, 8);
    assert_int_equal(smp_begin(s, l, hist, 8, 0, &err), CK_OK);
    smp_dry(s, 0.8f, 1.75f, 2, 0);
    for (int t = 0; t < 8; t++) assert_float_equal(logit_of(s, t), 0.0f, 1e-6);
    smp_state_destroy(s);
}

static void dry_should_match_the_quadratic_reference_on_random_histories(void **st)
{
    (void)st;
    enum { NV = 6, H = 300 };
    int32_t h[H];
    float l[NV] = {0}, pen[NV];
    int32_t brk[3] = {5, 0, 1}; /* one-token breaker 5, two-token breaker "0 1" */
    uint32_t brk_len[2] = {1, 2};
    smp_params p;
    smp_params_default(&p);
    p.dry_breaker_tokens = brk; p.dry_breaker_lengths = brk_len; p.n_dry_breakers = 2;
    for (int trial = 0; trial < 50; trial++) {
        size_t n = 2 + (size_t)(frand() * (H - 2));
        int alphabet = trial % 2 ? 3 : NV; /* small alphabets repeat a lot */
        for (size_t i = 0; i < n; i++) h[i] = (int32_t)(frand() * alphabet);
        unsigned char brkpos[H] = {0}, brk_tok[NV] = {0};
        brk_tok[5] = 1;
        for (size_t i = 0; i < n; i++) {
            if (h[i] == 5) brkpos[i] = 1;
            if (i + 1 < n && h[i] == 0 && h[i + 1] == 1) brkpos[i] = brkpos[i + 1] = 1;
        }
        dry_reference(h, n, brkpos, brk_tok, NV, 0.8f, 1.75f, 2, pen);
        smp_state *s = make_state(&p, NV);
        ck_error err = {0};
        assert_int_equal(smp_begin(s, l, h, n, 0, &err), CK_OK);
        smp_dry(s, 0.8f, 1.75f, 2, 0);
        for (int t = 0; t < NV; t++)
            assert_float_equal(logit_of(s, t), -pen[t], 1e-3 * (1 + pen[t]));
        smp_state_destroy(s);
    }
}

/* ---- picks ----------------------------------------------------------------------------- */

static double chi_square(const int *count, const double *p, size_t n, int total)
{
    double x = 0;
    for (size_t i = 0; i < n; i++) {
        double e = p[i] * total;
        x += (count[i] - e) * (count[i] - e) / e;
    }
    return x;
}

static void seeded_draws_should_match_the_distribution_by_chi_square(void **st)
{
    (void)st;
    enum { N = 10, DRAWS = 100000 };
    float l[N];
    double p[N], sum = 0;
    for (int i = 0; i < N; i++) { l[i] = (float)(i % 4) - 0.3f * i; p[i] = exp(l[i]); sum += p[i]; }
    for (int i = 0; i < N; i++) p[i] /= sum;
    smp_params prm;
    smp_params_default(&prm);
    prm.seed = 42;
    smp_state *s = make_state(&prm, N);
    int count[N] = {0};
    ck_error err = {0};
    for (int step = 0; step < DRAWS; step++) {
        int32_t tok;
        assert_int_equal(smp_sample(s, l, NULL, 0, (uint64_t)step, &tok, &err), CK_OK);
        count[tok]++;
    }
    assert_true(chi_square(count, p, N, DRAWS) < 27.877); /* df 9, p = 0.001 */
    smp_state_destroy(s);
}

static void skewed_draws_should_follow_the_transformed_inverse_cdf(void **st)
{
    (void)st;
    enum { N = 6, DRAWS = 100000 };
    float l[N] = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -1.5f}; /* already sorted */
    double p[N], q[N], sum = 0, cum = 0, prev = 0;
    const float skew = 0.7f;
    for (int i = 0; i < N; i++) { p[i] = exp(l[i]); sum += p[i]; }
    for (int i = 0; i < N; i++) { /* P(u^e^s < C) = C^(e^-s) */
        cum += p[i] / sum;
        double c = pow(cum > 1 ? 1 : cum, exp(-skew));
        q[i] = c - prev;
        prev = c;
    }
    smp_params prm;
    smp_params_default(&prm);
    prm.seed = 7;
    prm.skew = skew;
    smp_state *s = make_state(&prm, N);
    int count[N] = {0};
    ck_error err = {0};
    for (int step = 0; step < DRAWS; step++) {
        int32_t tok;
        assert_int_equal(smp_sample(s, l, NULL, 0, (uint64_t)step, &tok, &err), CK_OK);
        count[tok]++;
    }
    assert_true(chi_square(count, q, N, DRAWS) < 20.515); /* df 5, p = 0.001 */
    smp_state_destroy(s);
}

static void same_seed_and_step_should_give_the_same_token_whatever_runs_between(void **st)
{
    (void)st;
    static float l[V];
    random_logits(l, V, 3);
    smp_params p;
    smp_params_default(&p);
    p.seed = 99;
    p.top_k = 100;
    p.top_p = 0.9f;
    p.temperature = 0.8f;
    smp_state *a = make_state(&p, V), *b = make_state(&p, V);
    smp_params q = p;
    q.seed = 5;
    smp_state *other = make_state(&q, V);
    ck_error err = {0};
    int differs = 0;
    int32_t first[64];
    for (int step = 0; step < 64; step++) {
        int32_t ta, tb, to;
        assert_int_equal(smp_sample(a, l, NULL, 0, (uint64_t)step, &ta, &err), CK_OK);
        assert_int_equal(smp_sample(other, l, NULL, 0, (uint64_t)step, &to, &err), CK_OK);
        first[step] = ta;
        differs += ta != to;
        (void)tb;
    }
    for (int step = 63; step >= 0; step--) { /* another order, another state */
        int32_t tb;
        assert_int_equal(smp_sample(b, l, NULL, 0, (uint64_t)step, &tb, &err), CK_OK);
        assert_int_equal(tb, first[step]);
    }
    assert_true(differs > 0);
    smp_state_destroy(a);
    smp_state_destroy(b);
    smp_state_destroy(other);
}

static void zero_temperature_chain_should_pick_greedily(void **st)
{
    (void)st;
    static float l[V];
    random_logits(l, V, 3);
    smp_params p;
    smp_params_default(&p);
    p.temperature = 0.0f;
    p.top_p = 0.5f;
    smp_state *s = make_state(&p, V);
    ck_error err = {0};
    int32_t tok;
    assert_int_equal(smp_sample(s, l, NULL, 0, 3, &tok, &err), CK_OK);
    ref_t *r = ref_sorted(l, V);
    assert_int_equal(tok, r[0].id);
    free(r);
    smp_state_destroy(s);
}

static void stage_order_should_change_what_survives(void **st)
{
    (void)st;
    /* min_p 0.3 before temperature 3 keeps {0,1}; after it keeps more */
    float l[4] = {2.0f, 1.0f, 0.0f, -1.0f};
    smp_params p;
    smp_params_default(&p);
    p.min_p = 0.3f;
    p.temperature = 3.0f;
    smp_stage first[2] = {SMP_STAGE_MIN_P, SMP_STAGE_TEMPERATURE};
    smp_stage last[2] = {SMP_STAGE_TEMPERATURE, SMP_STAGE_MIN_P};
    ck_error err = {0};
    size_t n1, n2;
    p.order = first; p.n_order = 2;
    smp_state *a = make_state(&p, 4);
    assert_int_equal(smp_begin(a, l, NULL, 0, 0, &err), CK_OK);
    for (int i = 0; i < 2; i++) smp_apply_stage(a, first[i]);
    smp_cands(a, &n1);
    p.order = last;
    smp_state *b = make_state(&p, 4);
    assert_int_equal(smp_begin(b, l, NULL, 0, 0, &err), CK_OK);
    for (int i = 0; i < 2; i++) smp_apply_stage(b, last[i]);
    smp_cands(b, &n2);
    assert_int_equal(n1, 2); /* e^-1 = 0.37 >= 0.3, e^-2 < 0.3 */
    assert_int_equal(n2, 4); /* e^(-3/3) = 0.37 */
    smp_state_destroy(a);
    smp_state_destroy(b);
}

static void mirostat_v2_should_truncate_by_surprise_and_update_mu(void **st)
{
    (void)st;
    float l[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    smp_params p;
    smp_params_default(&p);
    p.mirostat = 2;
    p.mirostat_tau = 1.0f;
    p.mirostat_eta = 0.5f;
    smp_state *s = make_state(&p, 4);
    smp_state_set_mirostat_mu(s, 2.0f); /* keeps surprise <= 2: tokens 0 and 1 */
    ck_error err = {0};
    assert_int_equal(smp_begin(s, l, NULL, 0, 0, &err), CK_OK);
    int32_t tok = smp_mirostat_v2(s, 1.0f, 0.5f);
    assert_true(tok == 0 || tok == 1);
    double q = tok == 0 ? 2.0 / 3 : 1.0 / 3; /* renormalised over {0, 1} */
    double want_mu = 2.0 - 0.5 * (-log2(q) - 1.0);
    assert_float_equal(smp_state_mirostat_mu(s), want_mu, 1e-5);
    smp_state_destroy(s);
}

static void mirostat_v1_should_keep_the_zipf_estimated_k(void **st)
{
    (void)st;
    enum { N = 1000 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = -1.2f * logf((float)(i + 1)); /* Zipf, s = 1.2 */
    /* reference: s_hat = 1.2 exactly; k = ((e 2^mu) / (1 - N^-e))^(1/s) */
    double sh = 1.2, e = 0.2, mu = 6.0;
    double k = pow(e * pow(2, mu) / (1 - pow(N, -e)), 1 / sh);
    smp_params p;
    smp_params_default(&p);
    smp_state *s = make_state(&p, N);
    smp_state_set_mirostat_mu(s, (float)mu);
    ck_error err = {0};
    assert_int_equal(smp_begin(s, l, NULL, 0, 0, &err), CK_OK);
    int32_t tok = smp_mirostat_v1(s, 3.0f, 0.1f);
    size_t n;
    smp_cands(s, &n);
    assert_int_equal(n, (size_t)k);
    assert_true(tok >= 0 && (size_t)tok < (size_t)k);
    double pk = 0;
    for (size_t i = 0; i < (size_t)k; i++) pk += pow((double)(i + 1), -1.2);
    double surprise = -log2(pow((double)(tok + 1), -1.2) / pk);
    assert_float_equal(smp_state_mirostat_mu(s), mu - 0.1 * (surprise - 3.0), 1e-3);
    smp_state_destroy(s);
}

static void logprobs_should_come_from_the_original_distribution(void **st)
{
    (void)st;
    static float l[V];
    random_logits(l, V, 4);
    ref_t *r = ref_sorted(l, V);
    smp_logprob top[5];
    size_t n = 0;
    float lp;
    ck_error err = {0};
    assert_int_equal(smp_logprobs(l, V, r[7].id, 5, &lp, top, &n, &err), CK_OK);
    assert_int_equal(n, 5);
    assert_float_equal(lp, log(r[7].p), 1e-4);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(top[i].id, r[i].id);
        assert_float_equal(top[i].logprob, log(r[i].p), 1e-4);
    }
    assert_int_equal(smp_logprobs(l, V, V, 5, &lp, top, &n, &err), CK_E_INVALID_ARGUMENT);
    free(r);
}

static void params_validate_should_reject_out_of_range_settings(void **st)
{
    (void)st;
    smp_params p;
    ck_error err = {0};
    smp_params_default(&p);
    assert_int_equal(smp_params_validate(&p, 10, &err), CK_OK);
    p.top_p = 1.5f;
    assert_int_equal(smp_params_validate(&p, 10, &err), CK_E_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "top_p"));
    smp_params_default(&p);
    int32_t ban[1] = {10};
    p.banned = ban; p.n_banned = 1;
    assert_int_equal(smp_params_validate(&p, 10, &err), CK_E_INVALID_ARGUMENT);
    smp_params_default(&p);
    p.mirostat = 3;
    assert_int_equal(smp_params_validate(&p, 10, &err), CK_E_INVALID_ARGUMENT);
    smp_params_default(&p);
    float l[3] = {0, NAN, 1};
    smp_state *s = make_state(&p, 3);
    int32_t tok;
    assert_int_equal(smp_sample(s, l, NULL, 0, 0, &tok, &err), CK_E_INVALID_ARGUMENT);
    smp_state_destroy(s);
}

static void set_logit_should_restore_a_removed_token(void **st)
{
    (void)st;
    float l[5] = {5, 4, 3, 2, 1};
    smp_state *s = begin_with(l, 5, NULL, 0);
    smp_top_k(s, 2);
    assert_int_equal(smp_find(s, 4), -1);
    assert_int_equal(smp_set_logit(s, 4, 9.0f), 0);
    assert_int_equal(smp_greedy(s), 4);
    assert_int_equal(smp_set_logit(s, 5, 1.0f), -1);
    assert_int_equal(smp_set_logit(s, 1, NAN), -1);
    smp_state_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(top_k_should_keep_exactly_the_k_highest_logits),
        cmocka_unit_test(greedy_should_pick_the_highest_logit_and_the_lower_id_on_a_tie),
        cmocka_unit_test(top_p_should_keep_the_smallest_prefix_reaching_p),
        cmocka_unit_test(min_p_should_keep_tokens_with_prob_at_least_p_times_the_max),
        cmocka_unit_test(top_a_should_keep_tokens_with_prob_at_least_a_times_max_squared),
        cmocka_unit_test(typical_should_keep_the_most_typical_tokens_up_to_mass_p),
        cmocka_unit_test(tfs_should_cut_where_the_normalised_second_derivative_mass_exceeds_z),
        cmocka_unit_test(top_n_sigma_should_keep_logits_within_n_stddevs_of_the_max),
        cmocka_unit_test(xtc_should_remove_all_above_threshold_but_the_least_likely),
        cmocka_unit_test(xtc_should_fire_with_the_configured_probability),
        cmocka_unit_test(temperature_should_divide_logits),
        cmocka_unit_test(dynatemp_should_scale_by_the_entropy_interpolated_temperature),
        cmocka_unit_test(smoothing_should_apply_the_quadratic_and_cubic_transform),
        cmocka_unit_test(penalties_should_follow_the_repetition_frequency_presence_definitions),
        cmocka_unit_test(bias_ban_and_allow_should_shift_and_filter_ids),
        cmocka_unit_test(dry_should_penalise_the_token_that_would_extend_a_repeat),
        cmocka_unit_test(dry_should_match_the_quadratic_reference_on_random_histories),
        cmocka_unit_test(seeded_draws_should_match_the_distribution_by_chi_square),
        cmocka_unit_test(skewed_draws_should_follow_the_transformed_inverse_cdf),
        cmocka_unit_test(same_seed_and_step_should_give_the_same_token_whatever_runs_between),
        cmocka_unit_test(zero_temperature_chain_should_pick_greedily),
        cmocka_unit_test(stage_order_should_change_what_survives),
        cmocka_unit_test(mirostat_v2_should_truncate_by_surprise_and_update_mu),
        cmocka_unit_test(mirostat_v1_should_keep_the_zipf_estimated_k),
        cmocka_unit_test(logprobs_should_come_from_the_original_distribution),
        cmocka_unit_test(params_validate_should_reject_out_of_range_settings),
        cmocka_unit_test(set_logit_should_restore_a_removed_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
