/* generate.c: the single-sequence loop (prefill in chunks, then one token per step) and perplexity. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>

void gen_params_default(gen_params *p)
{
    p->max_new_tokens = 128;
    p->temperature = 0.0f;
    p->seed = 0;
    p->stop_at_eos = 1;
    p->prefill_chunk = 512;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int32_t gen_sample(const float *logits, int n_vocab, float temperature, uint64_t seed, uint64_t step)
{
    int32_t best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i; /* the first maximum, as torch.argmax */
    if (temperature <= 0.0f)
        return best;
    /* counter-based: the draw depends only on (seed, step); the number of smp_uniform(seed, step, 0)
     * and of the device chain (gpu_sample), which draws in the same id order */
    double u = (double)(splitmix64(splitmix64(splitmix64(seed) ^ step)) >> 11) * (1.0 / 9007199254740992.0);
    double mx = logits[best], sum = 0.0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((logits[i] - mx) / temperature);
    double target = u * sum, acc = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        acc += exp((logits[i] - mx) / temperature);
        if (acc > target)
            return i;
    }
    return best;
}

/* One sequence with its own cache and workspace. */
typedef struct runner {
    kv_cache *kv;
    fwd_workspace *ws;
    kv_seq seq;
    float *logits;
} runner;

static void runner_free(runner *r)
{
    if (r->kv)
        kv_seq_release(r->kv, &r->seq);
    kv_cache_destroy(r->kv);
    fwd_workspace_destroy(r->ws);
    free(r->logits);
}

static ck_status runner_init(runner *r, const mdl_model *m, int max_total, int chunk, int all_logits, ck_error *err)
{
    const cfg_config *c = &m->cfg;
    kv_seq_init(&r->seq);
    r->kv = NULL;
    r->ws = NULL;
    r->logits = NULL;
    if (max_total > cfg_context_length(c))
        return ck_fail(err, CK_E_CONTEXT_OVERFLOW, "%d tokens requested; the model's context is %d", max_total,
                       cfg_context_length(c));
    int pages = (max_total + KV_DEFAULT_PAGE_SIZE - 1) / KV_DEFAULT_PAGE_SIZE;
    ck_status st = kv_cache_create(m->be, c, pages, KV_DEFAULT_PAGE_SIZE, &r->kv, err);
    if (st == CK_OK)
        st = fwd_workspace_create(m, chunk, 1, &r->ws, err);
    if (st == CK_OK)
        st = kv_seq_reserve(r->kv, &r->seq, max_total, err);
    if (st == CK_OK && !(r->logits = malloc((size_t)(all_logits ? chunk : 1) * c->vocab_size * sizeof(float))))
        st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory for logits");
    if (st != CK_OK)
        runner_free(r);
    return st;
}

static ck_status runner_step(runner *r, const mdl_model *m, const int32_t *tokens, int n, int all_logits,
                             ck_error *err)
{
    kv_seq *seqs[1] = {&r->seq};
    int32_t seq_start[2] = {0, n};
    uint8_t all = (uint8_t)all_logits;
    fwd_batch b = {1, seqs, tokens, seq_start, &all};
    return fwd_run(m, r->kv, r->ws, &b, r->logits, err);
}

/* Run tokens[n] and, if want, pick the next token (step `step` of the draw) into *tok: on the
 * device when the backend samples there (only the id comes back), else from the logits row. */
static ck_status gen_step(runner *r, const mdl_model *m, const int32_t *tokens, int n, int want, const gen_params *p,
                          uint64_t step, int32_t *tok, ck_error *err)
{
    if (!fwd_can_end_rows(m)) {
        ck_status st = runner_step(r, m, tokens, n, 0, err);
        if (st == CK_OK && want)
            *tok = gen_sample(r->logits, m->cfg.vocab_size, p->temperature, p->seed, step);
        return st;
    }
    kv_seq *seqs[1] = {&r->seq};
    int32_t seq_start[2] = {0, n};
    fwd_batch b = {1, seqs, tokens, seq_start, NULL};
    uint8_t mode = want ? BE_ROW_SAMPLE : BE_ROW_DROP;
    be_sample_row row = {.temperature = p->temperature, .top_p = 1.0f, .repetition_penalty = 1.0f,
                         .seed = p->seed, .counter = step};
    float lp = 0.0f;
    be_step_out out = {.n_rows = 1, .vocab = m->cfg.vocab_size, .mode = &mode, .sample = &row,
                       .logits = r->logits, .tokens = tok, .logprobs = &lp};
    return fwd_run_rows(m, r->kv, r->ws, &b, &out, err);
}

ck_status gen_generate(const mdl_model *m, const int32_t *prompt, int n_prompt, const gen_params *p,
                       gen_token_fn on_token, void *user_data, int32_t *out, int cap, int *n_out, ck_error *err)
{
    *n_out = 0;
    if (n_prompt <= 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "the prompt is empty");
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 512;
    runner r;
    ck_status st = runner_init(&r, m, n_prompt + p->max_new_tokens, chunk, 0, err);
    if (st != CK_OK)
        return st;
    int32_t tok = 0;
    for (int at = 0; at < n_prompt && st == CK_OK; at += chunk) {
        int n = n_prompt - at < chunk ? n_prompt - at : chunk;
        st = gen_step(&r, m, prompt + at, n, at + n >= n_prompt && p->max_new_tokens > 0, p, 0, &tok, err);
    }
    for (int i = 0; i < p->max_new_tokens && st == CK_OK; i++) {
        if (out && *n_out < cap)
            out[*n_out] = tok;
        (*n_out)++;
        if (on_token && on_token(user_data, tok))
            break;
        if (p->stop_at_eos && cfg_is_eos(&m->cfg, tok))
            break;
        if (i + 1 < p->max_new_tokens) {
            int32_t in = tok;
            st = gen_step(&r, m, &in, 1, 1, p, (uint64_t)i + 1, &tok, err);
        }
    }
    runner_free(&r);
    return st;
}

ck_status gen_perplexity(const mdl_model *m, const int32_t *ids, int n, int window, int bos, double *ppl,
                         double *total_nll, int *n_scored, ck_error *err)
{
    int V = m->cfg.vocab_size;
    int extra = bos >= 0 ? 1 : 0;
    if (window <= 1)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "perplexity window must be at least 2, got %d", window);
    if (n / window == 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "%d tokens are fewer than one window of %d", n, window);
    int len = window + extra;
    int32_t *buf = malloc((size_t)len * sizeof *buf);
    if (!buf)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    runner r;
    ck_status st = runner_init(&r, m, len, len, 1, err);
    double nll = 0.0;
    int scored = 0;
    for (int w0 = 0; st == CK_OK && w0 + window <= n; w0 += window) {
        if (extra)
            buf[0] = bos;
        for (int i = 0; i < window; i++)
            buf[extra + i] = ids[w0 + i];
        for (int i = 0; i < len; i++)
            if (buf[i] < 0 || buf[i] >= V)
                st = ck_fail(err, CK_E_INVALID_ARGUMENT, "token %d is outside the vocabulary", buf[i]);
        if (st != CK_OK)
            break;
        r.seq.n_tokens = 0; /* reuse the pages: each window starts a fresh context */
        st = runner_step(&r, m, buf, len, 1, err);
        /* row i predicts token i + 1; with a BOS, row 0 predicts the window's first token */
        for (int i = 0; st == CK_OK && i + 1 < len; i++) {
            const float *row = r.logits + (size_t)i * V;
            double mx = row[0], sum = 0.0;
            for (int j = 1; j < V; j++)
                if (row[j] > mx)
                    mx = row[j];
            for (int j = 0; j < V; j++)
                sum += exp(row[j] - mx);
            nll += -(row[buf[i + 1]] - mx - log(sum));
            scored++;
        }
    }
    runner_free(&r);
    free(buf);
    if (st != CK_OK)
        return st;
    *ppl = exp(nll / scored);
    if (total_nll)
        *total_nll = nll;
    if (n_scored)
        *n_scored = scored;
    return CK_OK;
}
