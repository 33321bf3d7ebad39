/* tests/sched/test_sched_dev.c: the dispatch rules of device sampling (engine/sched/sched_dev.h),
 * which rows go to the device and which to the host, and the host draw's rule, which must be the
 * device chain's (gpu_sample: the inverse CDF in ascending id order with u = smp_uniform(seed,
 * step, 0)) so that both pick the same token; the reference below is written from that rule. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched_dev.h"

static void default_chain_should_run_on_the_device(void **st)
{
    (void)st;
    smp_params p;
    smp_params_default(&p);
    const char *why = "x";
    assert_int_equal(sched_dev_chain_ok(&p, &why), 1);
    assert_null(why);
    /* the GPU chain's own stages, all on */
    p.temperature = 0.7f;
    p.top_k = 40;
    p.top_p = 0.9f;
    p.min_p = 0.05f;
    p.repetition_penalty = 1.1f;
    p.frequency_penalty = 0.2f;
    p.presence_penalty = 0.3f;
    p.penalty_range = 64;
    smp_logit_bias b[BE_SAMPLE_MAX_BIAS];
    for (int i = 0; i < BE_SAMPLE_MAX_BIAS; i++)
        b[i] = (smp_logit_bias){i, -1.0f};
    p.logit_bias = b;
    p.n_logit_bias = BE_SAMPLE_MAX_BIAS;
    assert_int_equal(sched_dev_chain_ok(&p, NULL), 1);
    /* the default order spelled out is the default order */
    p.order = smp_default_order;
    p.n_order = SMP_DEFAULT_ORDER_LEN;
    assert_int_equal(sched_dev_chain_ok(&p, NULL), 1);
    /* greedy is a chain too */
    p.temperature = 0.0f;
    assert_int_equal(sched_dev_chain_ok(&p, NULL), 1);
}

static void each_host_only_feature_should_keep_the_row_on_the_host(void **st)
{
    (void)st;
    smp_logit_bias big[BE_SAMPLE_MAX_BIAS + 1];
    memset(big, 0, sizeof big);
    int32_t ids[1] = {3};
    smp_stage order[SMP_DEFAULT_ORDER_LEN];
    memcpy(order, smp_default_order, sizeof order);
    order[0] = smp_default_order[12]; /* temperature first */
    order[12] = smp_default_order[0];
    for (int f = 0; f < 16; f++) {
        smp_params p;
        smp_params_default(&p);
        const char *want = NULL;
        switch (f) {
        case 0: p.order = order; p.n_order = SMP_DEFAULT_ORDER_LEN; want = "order"; break;
        case 1: p.dynatemp_range = 0.5f; want = "dynamic temperature"; break;
        case 2: p.smoothing_factor = 0.3f; want = "smoothing"; break;
        case 3: p.top_a = 0.1f; want = "top-a"; break;
        case 4: p.typical_p = 0.9f; want = "typical"; break;
        case 5: p.tfs_z = 0.95f; want = "tail-free"; break;
        case 6: p.top_n_sigma = 1.0f; want = "top-n-sigma"; break;
        case 7: p.xtc_probability = 0.5f; want = "XTC"; break;
        case 8: p.dry_multiplier = 0.8f; want = "DRY"; break;
        case 9: p.mirostat = 2; want = "mirostat"; break;
        case 10: p.skew = 0.5f; want = "skew"; break;
        case 11: p.banned = ids; p.n_banned = 1; want = "banned"; break;
        case 12: p.allowed = ids; p.n_allowed = 1; want = "allowed"; break;
        case 13: p.penalty_decay = 0.1f; want = "decay"; break;
        case 14: p.logit_bias = big; p.n_logit_bias = BE_SAMPLE_MAX_BIAS + 1; want = "logit bias"; break;
        case 15: p.order = order; p.n_order = 5; want = "order"; break;
        }
        const char *why = NULL;
        assert_int_equal(sched_dev_chain_ok(&p, &why), 0);
        assert_non_null(why);
        assert_non_null(strstr(why, want));
    }
}

static void row_mode_should_follow_the_rules(void **st)
{
    (void)st;
    /* no token wanted from the row (a prefill chunk before the prompt's end): dropped, whatever else */
    for (int m = 0; m < 16; m++)
        assert_int_equal(sched_dev_row_mode(0, m & 1, (m >> 1) & 1, (m >> 2) & 1, (m >> 3) & 1), BE_ROW_DROP);
    assert_int_equal(sched_dev_row_mode(1, 1, 0, 0, 0), BE_ROW_SAMPLE);
    assert_int_equal(sched_dev_row_mode(1, 0, 0, 0, 0), BE_ROW_LOGITS); /* chain has host-only stages */
    assert_int_equal(sched_dev_row_mode(1, 1, 1, 0, 0), BE_ROW_LOGITS); /* a Lua sampler runs */
    assert_int_equal(sched_dev_row_mode(1, 1, 0, 1, 0), BE_ROW_LOGITS); /* a rewind bans ids now */
    assert_int_equal(sched_dev_row_mode(1, 1, 0, 0, 5), BE_ROW_LOGITS); /* top logprobs asked */
}

static void fill_row_should_carry_the_chain_history_and_step(void **st)
{
    (void)st;
    smp_params p;
    smp_params_default(&p);
    p.seed = 1234;
    p.temperature = 0.8f;
    p.top_k = 50;
    p.top_p = 0.95f;
    p.min_p = 0.02f;
    smp_logit_bias b[2] = {{7, 2.5f}, {9, -INFINITY}};
    p.logit_bias = b;
    p.n_logit_bias = 2;
    int32_t ids[2];
    float vals[2];
    sched_dev_split_bias(&p, ids, vals);
    assert_int_equal(ids[0], 7);
    assert_int_equal(ids[1], 9);
    assert_true(vals[0] == 2.5f && isinf(vals[1]) && vals[1] < 0);
    int32_t hist[5] = {1, 2, 3, 4, 5};
    be_sample_row r;
    memset(&r, 0xff, sizeof r);
    sched_dev_fill_row(&r, &p, ids, vals, hist, 5, 42, 17);
    assert_true(r.temperature == 0.8f && r.top_p == 0.95f && r.min_p == 0.02f && r.top_k == 50);
    assert_true(r.seed == 1234 && r.counter == 17 && r.n_bias == 2 && r.bias_ids == ids && r.bias_values == vals);
    /* penalties off: no history is sent */
    assert_true(r.hist_id == 0 && r.history == NULL && r.n_history == 0);
    p.presence_penalty = 0.5f;
    p.penalty_range = 3;
    sched_dev_fill_row(&r, &p, ids, vals, hist, 5, 42, 17);
    assert_true(r.hist_id == 42 && r.history == hist && r.n_history == 5 && r.penalty_range == 3);
    assert_true(r.presence_penalty == 0.5f && r.repetition_penalty == 1.0f && r.frequency_penalty == 0.0f);
}

/* The device rule, from its definition (cuda_ops.h, gpu_sample): keep the tokens that top-k, top-p
 * and min-p keep on the untempered row, then the first id (ascending) whose cumulative weight
 * exp((l - max) / T) exceeds u * total, u = smp_uniform(seed, step, 0). */
static int32_t device_rule(const float *l, int V, float T, int top_k, float top_p, float min_p, uint64_t seed,
                           uint64_t step)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = l[i] > mx ? l[i] : mx;
    int keep[64];
    for (int i = 0; i < V; i++) {
        int above = 0; /* tokens strictly above l[i] */
        for (int j = 0; j < V; j++)
            above += l[j] > l[i];
        keep[i] = top_k <= 0 || above < top_k;
    }
    if (top_p < 1.0f) {
        double z = 0;
        for (int i = 0; i < V; i++)
            z += keep[i] ? exp((double)l[i] - mx) : 0;
        int keep2[64];
        for (int i = 0; i < V; i++) { /* kept if the mass strictly above it is below top_p */
            double m = 0;
            for (int j = 0; j < V; j++)
                m += keep[j] && l[j] > l[i] ? exp((double)l[j] - mx) : 0;
            keep2[i] = keep[i] && m < top_p * z;
        }
        memcpy(keep, keep2, sizeof keep2);
    }
    for (int i = 0; i < V; i++)
        if (min_p > 0 && l[i] < mx + logf(min_p))
            keep[i] = 0;
    double total = 0;
    for (int i = 0; i < V; i++)
        total += keep[i] ? exp(((double)l[i] - mx) / T) : 0;
    double target = smp_uniform(seed, step, 0) * total, cum = 0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (!keep[i])
            continue;
        last = i;
        cum += exp(((double)l[i] - mx) / T);
        if (target < cum)
            return i;
    }
    return last;
}

static void host_draw_should_follow_the_device_rule(void **st)
{
    (void)st;
    enum { V = 64 };
    float l[V];
    struct { float T; int k; float p, minp; } cfg[] = {
        {1.0f, 0, 1.0f, 0.0f}, {0.7f, 10, 1.0f, 0.0f}, {1.0f, 0, 0.8f, 0.0f}, {1.5f, 0, 1.0f, 0.1f},
        {0.9f, 20, 0.9f, 0.05f},
    };
    int n_same = 0, n = 0;
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        smp_params p;
        smp_params_default(&p);
        p.seed = 99 + c;
        p.temperature = cfg[c].T;
        p.top_k = cfg[c].k;
        p.top_p = cfg[c].p;
        p.min_p = cfg[c].minp;
        smp_state *s = NULL;
        ck_error err;
        assert_int_equal(smp_state_create(&p, V, &s, &err), CK_OK);
        for (uint64_t step = 0; step < 200; step++) {
            for (int i = 0; i < V; i++) /* distinct values, spread like logits */
                l[i] = (float)(((i * 37 + (int)step * 11) % V) - 32) * 0.17f + (float)i * 1e-3f;
            int32_t tok = -1;
            assert_int_equal(smp_sample(s, l, NULL, 0, step, &tok, &err), CK_OK);
            int32_t want = device_rule(l, V, p.temperature, p.top_k, p.top_p, p.min_p, p.seed, step);
            n_same += tok == want;
            n++;
        }
        smp_state_destroy(s);
    }
    /* the same rule: the same token on every draw (a draw on a rounding boundary is ~1e-7 likely) */
    assert_int_equal(n_same, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_chain_should_run_on_the_device),
        cmocka_unit_test(each_host_only_feature_should_keep_the_row_on_the_host),
        cmocka_unit_test(row_mode_should_follow_the_rules),
        cmocka_unit_test(fill_row_should_carry_the_chain_history_and_step),
        cmocka_unit_test(host_draw_should_follow_the_device_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
