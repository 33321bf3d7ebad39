/* Device sampling (be_ops.step_end_rows on the cuda backend) against the host chain (engine/sample
 * smp_sample, smp_logprobs) on the same float32 logits.
 *
 * The logits come from the backend's own lm_head over crafted weights (x = [1, 2^-11] per row, w[v] =
 * [hi, lo] random FP16: logits with ~22 significant bits, so ties are rare), and each step is run
 * twice: once with every row copied to the host (BE_ROW_LOGITS), which gives the host chain its
 * input, and once sampled on the device (BE_ROW_SAMPLE). A third, copied run checks that the GEMM
 * gives the same bits again (else the comparison would not be on the same logits).
 *
 * 8 rows, each with its own chain: greedy, greedy + penalties, temperature only, top-k, top-p,
 * min-p, everything with penalties (repetition, frequency, presence) and a logit bias with a banned
 * id (-inf), and top-k + top-p + penalties over the last 64 tokens (penalty_range). 24 steps; each
 * step appends the row's token to its history (the device receives only the new token; the first
 * step sends a 300-token prompt straight, one row a 10-token one through the staging), the draw's
 * counter is the step. Checks, over vocab 32000 and 128256, with decode graphs off and on:
 *   - greedy tokens identical to smp_sample's; seeded draws identical, or (rarely, counted and
 *     printed) both picks within 1e-5 of the total mass of the draw's target in id order (float sums
 *     over 128k tokens: a target that close to a boundary may fall either way);
 *   - logprobs within 2e-4 of smp_logprobs on the model's row;
 *   - bytes: a sampled step copies no logits (be_cuda_counters.logit_bytes_to_host unchanged), a
 *     step with one copied row (a Lua sampler's) copies exactly vocab * 4 bytes; no allocation.
 * Exit 0 pass, 1 fail, 77 no GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "sample.h"
#include "ref_util.h"

#define R 8
#define K 2
#define STEPS 24

static int g_fail;

static float unif(uint64_t seed, uint64_t i, float lo, float hi)
{
    return lo + (hi - lo) * (float)(ref_mix64(seed ^ ref_mix64(i)) >> 40) * (1.0f / 16777216.0f);
}

typedef struct chain {
    float temp, top_p, min_p, rep, freq, pres;
    int top_k, range, bias;
} chain;

static const chain k_chains[R] = {
    {0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0, 0},      {0.0f, 1.0f, 0.0f, 1.3f, 0.2f, 0.5f, 0, 0, 0},
    {1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0, 0},      {0.7f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 40, 0, 0},
    {1.0f, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0, 0},      {1.3f, 1.0f, 0.05f, 1.0f, 0.0f, 0.0f, 0, 0, 0},
    {0.8f, 0.95f, 0.02f, 1.1f, 0.1f, 0.3f, 50, 0, 1},   {2.0f, 0.5f, 0.0f, 1.2f, 0.0f, 0.0f, 1000, 64, 1},
};

typedef struct rig {
    be_backend *be;
    be_buf *x, *w;
    int V;
    int32_t tokens[R], pos[R], seq_start[R + 1], rows[R], page_table[R];
    float inv_freq[2];
} rig;

/* one step: lm_head over the fixed x, w, then the rows as mode says */
static ck_status step(rig *g, const uint8_t *mode, const be_sample_row *smp, float *logits, int32_t *tok, float *lp,
                      ck_error *err)
{
    const be_ops *op = g->be->ops;
    be_step s = {g, g, R, R, R, R, R, g->tokens, g->pos, g->seq_start, g->rows, g->page_table, 1, g->inv_freq, 1,
                 1, 1};
    be_step_plan plan = {R, R, R, 0, 0};
    ck_status st = op->step_begin(g->be, &s, &plan, err);
    if (st != CK_OK)
        return st;
    if (!plan.skip_ops)
        st = op->lm_head(g->be, g->x, g->w, plan.n_rows, K, g->V, err);
    be_step_out out = {R, g->V, mode, smp, logits, tok, lp};
    ck_error e2;
    ck_status end = op->step_end_rows(g->be, st == CK_OK, &out, st == CK_OK ? err : &e2);
    return st != CK_OK ? st : end;
}

/* a failure with its two figures (what was got, what was wanted) */
static void fail(const char *what, int V, int graphs, int s, int r, double got, double want)
{
    g_fail++;
    if (g_fail < 40)
        printf("  FAIL %s (vocab %d, graphs %d, step %d, row %d): got %.9g, want %.9g\n", what, V, graphs, s, r, got,
               want);
}

/* For a seeded draw where the device and the host picked different tokens: whether both picks are
 * right up to float rounding of the cumulative sums (which the device forms in float by a block scan
 * over up to 128k tokens, the host in double over float probabilities). Recomputed in double from
 * the host chain's kept set (smp_begin and the stages of the default order): the target
 * u * total must lie within 1e-5 of total of each token's interval [before, after) in id order. */
static int rounding_tie(smp_state *hs, const float *row, const int32_t *hist, int n_hist, uint64_t step, int V,
                        int32_t a, int32_t b)
{
    ck_error err;
    if (smp_begin(hs, row, hist, (size_t)n_hist, step, &err) != CK_OK)
        return 0;
    for (int i = 0; i < SMP_DEFAULT_ORDER_LEN; i++)
        smp_apply_stage(hs, smp_default_order[i]);
    size_t n = 0;
    smp_cand *c = smp_cands(hs, &n);
    double *w = calloc((size_t)V, sizeof *w), mx = -INFINITY, total = 0;
    for (size_t i = 0; i < n; i++)
        mx = c[i].logit > mx ? c[i].logit : mx;
    for (size_t i = 0; i < n; i++)
        total += w[c[i].id] = exp((double)c[i].logit - mx);
    const double target = smp_uniform(smp_state_params(hs)->seed, step, 0) * total, tol = 1e-5 * total;
    int ok = 1;
    int32_t t2[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        if (t2[k] < 0 || t2[k] >= V || w[t2[k]] == 0) {
            ok = 0;
            continue;
        }
        double before = 0;
        for (int i = 0; i < t2[k]; i++)
            before += w[i];
        ok = ok && target >= before - tol && target <= before + w[t2[k]] + tol;
    }
    free(w);
    return ok;
}

/* The device's picks tok/lp of step s against the host chain on the same logits L: greedy rows
 * identical, seeded rows identical or on a rounding boundary (counted), logprobs within 2e-4. */
static ck_status compare_rows(smp_state **hs, const float *L, int32_t **hist, const int *n_hist, int s,
                              const int32_t *tok, const float *lp, int V, int graphs, int *n_draw, int *n_draw_same,
                              int *n_ties, ck_error *err)
{
    for (int r = 0; r < R; r++) {
        int32_t want = -1;
        ck_status st = smp_sample(hs[r], (float *)L + (size_t)r * V, hist[r], (size_t)n_hist[r], (uint64_t)s, &want,
                                  err);
        if (st != CK_OK)
            return st;
        float want_lp = 0;
        smp_logprobs(L + (size_t)r * V, (size_t)V, tok[r] >= 0 && tok[r] < V ? tok[r] : 0, 0, &want_lp, NULL, NULL, err);
        if (k_chains[r].temp > 0.0f) {
            (*n_draw)++;
            *n_draw_same += tok[r] == want;
            if (tok[r] != want && rounding_tie(hs[r], L + (size_t)r * V, hist[r], n_hist[r], (uint64_t)s, V, tok[r],
                                               want))
                (*n_ties)++;
            else if (tok[r] != want)
                fail("seeded draw differs", V, graphs, s, r, tok[r], want);
        } else if (tok[r] != want) {
            fail("greedy differs", V, graphs, s, r, tok[r], want);
        }
        if (!(fabsf(lp[r] - want_lp) <= 2e-4f))
            fail("logprob", V, graphs, s, r, lp[r], want_lp);
    }
    return CK_OK;
}

static int run(int V, int graphs)
{
    ck_error err = {0};
    rig g;
    memset(&g, 0, sizeof g);
    g.V = V;
    ck_status st = be_create("cuda:f16", &g.be, &err);
    if (st != CK_OK) {
        printf("gpu sample: no cuda backend (%s): skipped\n", err.msg);
        return st == CK_E_UNSUPPORTED ? 77 : 1;
    }
    be_cuda_set_graphs(g.be, graphs);
    const be_ops *op = g.be->ops;
    if (!op->step_end_rows) {
        printf("gpu sample: the cuda backend has no step_end_rows\n");
        return 1;
    }
    be_prep prep = {R, R, 1, V, 1, 1, 64, 4096};
    float *hx = malloc(sizeof(float) * R * K), *hw = malloc(sizeof(float) * (size_t)V * K);
    float *L = malloc(sizeof(float) * (size_t)R * V), *L2 = malloc(sizeof(float) * (size_t)R * V);
    int32_t *hist[R];
    for (int r = 0; r < R; r++)
        hist[r] = malloc(sizeof(int32_t) * 400);
    for (int r = 0; r < R; r++) {
        hx[r * K] = 1.0f;
        hx[r * K + 1] = 1.0f / 2048.0f;
        g.tokens[r] = 0;
        g.pos[r] = 0;
        g.seq_start[r] = r;
        g.rows[r] = r;
        g.page_table[r] = r;
    }
    g.seq_start[R] = R;
    g.inv_freq[0] = 1.0f;
    /* hi in [-6, 6] row-independent; rows differ through the history (penalties) and the chain */
    for (int v = 0; v < V; v++) {
        hw[(size_t)v * K] = unif(11, (uint64_t)v, -6.0f, 6.0f);
        hw[(size_t)v * K + 1] = unif(12, (uint64_t)v, -1.0f, 1.0f);
    }
    if ((st = op->prepare(g.be, &prep, &err)) == CK_OK && (st = op->alloc(g.be, R * K, &g.x, &err)) == CK_OK &&
        (st = op->alloc(g.be, (size_t)V * K, &g.w, &err)) == CK_OK &&
        (st = op->write(g.be, g.x, 0, hx, R * K, &err)) == CK_OK)
        st = op->write(g.be, g.w, 0, hw, (size_t)V * K, &err);
    if (st != CK_OK) {
        printf("gpu sample: setup: %s\n", err.msg);
        return 1;
    }
    /* the chains, on the host and as device rows */
    smp_state *hs[R];
    smp_logit_bias bias[R][6];
    int32_t bias_ids[R][6];
    float bias_vals[R][6];
    int n_hist[R];
    be_sample_row row[R];
    for (int r = 0; r < R; r++) {
        const chain *c = &k_chains[r];
        smp_params p;
        smp_params_default(&p);
        p.seed = 1000 + (uint64_t)r * 77;
        p.temperature = c->temp;
        p.top_p = c->top_p;
        p.min_p = c->min_p;
        p.top_k = c->top_k;
        p.repetition_penalty = c->rep;
        p.frequency_penalty = c->freq;
        p.presence_penalty = c->pres;
        p.penalty_range = c->range;
        int nb = c->bias ? 6 : 0;
        for (int i = 0; i < nb; i++) {
            bias[r][i].id = (int32_t)(ref_mix64((uint64_t)r * 31 + (uint64_t)i) % (uint64_t)V);
            bias[r][i].bias = i == 0 ? -INFINITY : unif(13, (uint64_t)(r * 8 + i), -3.0f, 3.0f);
            bias_ids[r][i] = bias[r][i].id;
            bias_vals[r][i] = bias[r][i].bias;
        }
        if (nb) /* a strong favourite: the bias moves the pick */
            bias[r][1].bias = bias_vals[r][1] = 8.0f;
        p.logit_bias = bias[r];
        p.n_logit_bias = (size_t)nb;
        if ((st = smp_state_create(&p, (size_t)V, &hs[r], &err)) != CK_OK) {
            printf("gpu sample: host chain: %s\n", err.msg);
            return 1;
        }
        /* prompts: row 2 has 10 tokens (sent through the staging), the others 300 (sent straight);
         * ids drawn from the first 300 so that penalties hit often */
        n_hist[r] = r == 2 ? 10 : 300;
        for (int i = 0; i < n_hist[r]; i++)
            hist[r][i] = (int32_t)(ref_mix64((uint64_t)r * 1000003 + (uint64_t)i) % 300);
        memset(&row[r], 0, sizeof row[r]);
        row[r].temperature = c->temp;
        row[r].top_p = c->top_p;
        row[r].min_p = c->min_p;
        row[r].top_k = c->top_k;
        row[r].repetition_penalty = c->rep;
        row[r].frequency_penalty = c->freq;
        row[r].presence_penalty = c->pres;
        row[r].penalty_range = c->range;
        row[r].bias_ids = bias_ids[r];
        row[r].bias_values = bias_vals[r];
        row[r].n_bias = nb;
        row[r].hist_id = 100 + (uint64_t)r;
        row[r].seed = p.seed;
    }
    uint8_t all_logits[R], all_sample[R];
    memset(all_logits, BE_ROW_LOGITS, sizeof all_logits);
    memset(all_sample, BE_ROW_SAMPLE, sizeof all_sample);
    int32_t tok[R];
    float lp[R];
    int n_draw_same = 0, n_draw = 0, n_ties = 0;
    be_cuda_counters c0, c1;
    for (int s = 0; s < STEPS && st == CK_OK; s++) {
        if ((st = step(&g, all_logits, NULL, L, NULL, NULL, &err)) != CK_OK)
            break;
        for (int r = 0; r < R; r++) {
            row[r].history = hist[r];
            row[r].n_history = n_hist[r];
            row[r].counter = (uint64_t)s;
        }
        be_cuda_counters_get(g.be, &c0);
        if ((st = step(&g, all_sample, row, NULL, tok, lp, &err)) != CK_OK)
            break;
        be_cuda_counters_get(g.be, &c1);
        if (c1.logit_bytes_to_host != c0.logit_bytes_to_host)
            fail("sampled step copied logits", V, graphs, s, -1, (double)(c1.logit_bytes_to_host - c0.logit_bytes_to_host), 0);
        if (c1.sampled_rows - c0.sampled_rows != R)
            fail("sampled rows", V, graphs, s, -1, (double)(c1.sampled_rows - c0.sampled_rows), R);
        if (s > 0 && (c1.device_allocs != c0.device_allocs || c1.host_allocs != c0.host_allocs))
            fail("allocation in a step", V, graphs, s, -1, (double)(c1.device_allocs - c0.device_allocs), (double)(c1.host_allocs - c0.host_allocs));
        /* the same bits again: the comparison is on the same logits */
        if ((st = step(&g, all_logits, NULL, L2, NULL, NULL, &err)) != CK_OK)
            break;
        if (memcmp(L, L2, sizeof(float) * (size_t)R * V) != 0)
            fail("lm_head not deterministic", V, graphs, s, -1, 0, 0);
        st = compare_rows(hs, L, hist, n_hist, s, tok, lp, V, graphs, &n_draw, &n_draw_same, &n_ties, &err);
        for (int r = 0; r < R && st == CK_OK; r++)
            hist[r][n_hist[r]++] = tok[r] >= 0 && tok[r] < V ? tok[r] : 0;
    }
    /* a step with one row copied (as for a Lua sampler): exactly its bytes cross */
    if (st == CK_OK) {
        uint8_t mixed[R];
        memcpy(mixed, all_sample, sizeof mixed);
        mixed[3] = BE_ROW_LOGITS;
        mixed[5] = BE_ROW_DROP;
        for (int r = 0; r < R; r++) {
            row[r].history = hist[r];
            row[r].n_history = n_hist[r];
        }
        be_cuda_counters_get(g.be, &c0);
        st = step(&g, mixed, row, L, tok, lp, &err);
        be_cuda_counters_get(g.be, &c1);
        if (st == CK_OK && c1.logit_bytes_to_host - c0.logit_bytes_to_host != (uint64_t)V * 4)
            fail("one copied row", V, graphs, -1, 3, (double)(c1.logit_bytes_to_host - c0.logit_bytes_to_host), (double)V * 4);
        if (st == CK_OK && c1.sampled_rows - c0.sampled_rows != R - 2)
            fail("sampled rows (mixed)", V, graphs, -1, -1, (double)(c1.sampled_rows - c0.sampled_rows), R - 2);
        if (st == CK_OK && memcmp(L + 3 * (size_t)V, L2 + 3 * (size_t)V, sizeof(float) * (size_t)V) != 0)
            fail("copied row differs", V, graphs, -1, 3, 0, 0);
    }
    /* a model reload (invalidate) and then the same history ids for other histories of the same
     * lengths: the device must resend them, not keep the old copies (penalties would count the old
     * tokens) */
    if (st == CK_OK) {
        op->invalidate(g.be);
        for (int r = 0; r < R; r++) {
            for (int i = 0; i < n_hist[r]; i++)
                hist[r][i] = (int32_t)(ref_mix64(777 + (uint64_t)r * 1000003 + (uint64_t)i) % 300);
            row[r].history = hist[r];
            row[r].n_history = n_hist[r];
            row[r].counter = STEPS;
        }
        if ((st = step(&g, all_logits, NULL, L, NULL, NULL, &err)) == CK_OK &&
            (st = step(&g, all_sample, row, NULL, tok, lp, &err)) == CK_OK)
            st = compare_rows(hs, L, hist, n_hist, STEPS, tok, lp, V, graphs, &n_draw, &n_draw_same, &n_ties, &err);
    }
    if (st != CK_OK) {
        printf("gpu sample: %s\n", err.msg);
        g_fail++;
    }
    printf("gpu sample: vocab %d, graphs %s: %d/%d seeded draws identical, %d others on a rounding boundary, %s\n",
           V, graphs ? "on" : "off", n_draw_same, n_draw, n_ties, g_fail ? "FAILURES" : "ok");
    for (int r = 0; r < R; r++) {
        smp_state_destroy(hs[r]);
        free(hist[r]);
    }
    op->free(g.be, g.x);
    op->free(g.be, g.w);
    be_destroy(g.be);
    free(hx);
    free(hw);
    free(L);
    free(L2);
    return 0;
}

int main(void)
{
    const int vocabs[2] = {32000, 128256};
    for (int i = 0; i < 2; i++)
        for (int graphs = 0; graphs < 2; graphs++) {
            int rc = run(vocabs[i], graphs);
            if (rc == 77)
                return 77;
            if (rc)
                return rc;
        }
    printf("gpu sample: %s\n", g_fail ? "FAIL" : "pass");
    return g_fail ? 1 : 0;
}
