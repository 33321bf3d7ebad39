/* tests/kernels/check_sample.cu: gpu_sample against the CPU oracle below, which spells out the chain of
 * cuda_ops.h step by step (in double where sums are involved). Each row has its own settings: greedy,
 * temperature only, top-k (within and past the kernel's 1024 shared-memory candidates), top-p, min-p,
 * everything with penalties and logit bias (including a banned token, bias -inf), and rows that nothing
 * adjusts (no bias; no penalty, or a penalty with an empty history: the kernel reads those where the model
 * wrote them, without its scratch copy), over vocab sizes 50, 32000 and 128256. The GPU token must be one
 * the oracle keeps, and the draw target must fall inside (or within 1e-5 of total mass of) that token's
 * cumulative interval; the logprob must match to 1e-3. Bench: 1, 16, 64, 256 and 512 rows of 128256, the full chain
 * and greedy (GB/s: one read of the logits). */
#include <map>
#include "kt.h"

static uint32_t okey(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct oracle_out {
    int greedy_tok;
    float logprob_of_greedy;
    std::vector<float> lp;     /* log_softmax of the adjusted row */
    std::vector<double> w;     /* kept weights exp(l - M), 0 if not kept */
    double target;             /* u * total */
    bool greedy;
};

static oracle_out oracle(const float *logits, int vocab, const gpu_sample_params &P, const int32_t *hist,
                         const int32_t *bids, const float *bvals) {
    oracle_out o;
    std::vector<float> l(logits, logits + vocab);
    if (P.repetition_penalty != 1.0f || P.frequency_penalty != 0.0f || P.presence_penalty != 0.0f) {
        std::map<int, int> cnt;
        for (int i = 0; i < P.n_history; i++) {
            const int id = hist[P.history_offset + i];
            if (id >= 0 && id < vocab) cnt[id]++;
        }
        for (auto &kv : cnt) {
            float v = l[kv.first];
            if (P.repetition_penalty != 1.0f) v = v > 0.0f ? v / P.repetition_penalty : v * P.repetition_penalty;
            v -= P.frequency_penalty * (float)kv.second + P.presence_penalty;
            l[kv.first] = v;
        }
    }
    for (int b = 0; b < P.n_bias; b++) { /* bias after the penalties (smp_sample's default order) */
        const int id = bids[P.bias_offset + b];
        if (id >= 0 && id < vocab) l[id] += bvals[P.bias_offset + b];
    }
    float m0 = -INFINITY;
    int am = 0;
    for (int i = 0; i < vocab; i++)
        if (l[i] > m0) { m0 = l[i]; am = i; }
    /* the logprob is the model row's (before penalties and bias) */
    float mr = -INFINITY;
    for (int i = 0; i < vocab; i++) mr = std::max(mr, logits[i]);
    double zr = 0;
    for (int i = 0; i < vocab; i++) zr += exp((double)logits[i] - mr);
    o.lp.resize(vocab);
    for (int i = 0; i < vocab; i++) o.lp[i] = (float)((double)logits[i] - mr - log(zr));
    o.greedy_tok = am;
    o.greedy = P.temperature <= 0.0f;
    if (o.greedy) return o;
    /* thresholds on the untempered row (temperature last); weights exp((l - max) / T) */
    const float invT = 1.0f / P.temperature;
    const float M = m0;
    const std::vector<float> &t = l;
    std::vector<float> sorted = t;
    std::sort(sorted.begin(), sorted.end(), [](float a, float b) { return a > b; });
    uint32_t thr = 0;
    if (P.top_k > 0 && P.top_k < vocab) thr = okey(sorted[P.top_k - 1]);
    if (P.top_p < 1.0f) {
        double zk = 0;
        for (int i = 0; i < vocab; i++)
            if (okey(t[i]) >= thr) zk += exp((double)t[i] - M);
        const double target = std::max(0.0f, P.top_p) * zk;
        double cum = 0;
        for (int r = 0; r < vocab; r++) {
            if (okey(sorted[r]) < thr) break;
            cum += exp((double)sorted[r] - M);
            if (cum >= target) { thr = std::max(thr, okey(sorted[r])); break; }
        }
    }
    const float minp_thr = P.min_p > 0.0f ? M + logf(std::min(P.min_p, 1.0f)) : -INFINITY;
    o.w.assign(vocab, 0.0);
    double total = 0;
    for (int i = 0; i < vocab; i++)
        if (okey(t[i]) >= thr && t[i] >= minp_thr) { o.w[i] = exp(((double)t[i] - M) * invT); total += o.w[i]; }
    o.target = gpu_sample_uniform(P.seed, P.counter) * total;
    return o;
}

static gpu_sample_params mkp(float temp, int top_k, float top_p, float min_p, float rep, float freq, float pres) {
    gpu_sample_params p;
    memset(&p, 0, sizeof p);
    p.temperature = temp; p.top_k = top_k; p.top_p = top_p; p.min_p = min_p;
    p.repetition_penalty = rep; p.frequency_penalty = freq; p.presence_penalty = pres;
    return p;
}

static void check_vocab(kt_ctx &c, int vocab) {
    std::vector<gpu_sample_params> P = {
        mkp(0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),   mkp(0.0f, 0, 1.0f, 0.0f, 1.3f, 0.2f, 0.5f),
        mkp(1.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),   mkp(0.7f, 40, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),
        mkp(1.0f, 0, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f),   mkp(1.3f, 0, 1.0f, 0.05f, 1.0f, 0.0f, 0.0f),
        mkp(0.8f, 50, 0.95f, 0.02f, 1.1f, 0.1f, 0.3f), mkp(1.0f, 1, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),
        mkp(2.0f, 1000, 0.5f, 0.0f, 1.2f, 0.0f, 0.0f),
        /* from here on, no logit bias: the unadjusted rows */
        mkp(0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),   mkp(1.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f),
        mkp(0.8f, 50, 0.95f, 0.02f, 1.0f, 0.0f, 0.0f),
        mkp(1.0f, 2000, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f), /* top-k past the kernel's shared-memory candidates */
        mkp(0.0f, 0, 1.0f, 0.0f, 1.3f, 0.2f, 0.5f),   mkp(0.9f, 20, 0.9f, 0.0f, 1.3f, 0.0f, 0.0f),
    };
    const int rows = (int)P.size(), first_plain = rows - 6;
    std::vector<int32_t> hist, bids;
    std::vector<float> bvals;
    for (int r = 0; r < rows; r++) {
        P[r].seed = kt_next(c);
        P[r].counter = (uint64_t)kt_irand(c, 1000);
        P[r].history_offset = (int64_t)hist.size();
        P[r].n_history = r >= rows - 2 ? 0 : kt_irand(c, 200); /* the last two: penalties over no history */
        for (int i = 0; i < P[r].n_history; i++) hist.push_back(kt_irand(c, std::min(vocab, 300))); /* repeats */
        P[r].bias_offset = (int64_t)bids.size();
        P[r].n_bias = r >= first_plain ? 0 : 5;
        for (int i = 0; i < P[r].n_bias; i++) {
            bids.push_back(kt_irand(c, vocab));
            bvals.push_back(i == 0 ? -INFINITY : kt_unif(c, -3, 3));
        }
    }
    std::vector<float> logits = kt_rand_vec(c, (size_t)rows * vocab, -6, 6);
    float *dl = kt_upload_raw(logits), *dlp = (float *)kt_alloc(rows * 4), *dbv = kt_upload_raw(bvals);
    int32_t *dtok = (int32_t *)kt_alloc(rows * 4), *dh = kt_upload_raw(hist), *dbi = kt_upload_raw(bids);
    gpu_sample_params *dp = kt_upload_raw(P);
    const size_t wss = gpu_sample_workspace_size(rows, vocab);
    void *ws = kt_alloc(wss);
    kt_poison(ws, wss);
    kt_poison(dtok, rows * 4);
    kt_poison(dlp, rows * 4);
    KT_OK(gpu_sample(dtok, dlp, dl, vocab, rows, vocab, dp, dh, dbi, dbv, ws, wss, 0));
    std::vector<int32_t> tok(rows);
    std::vector<float> lp(rows);
    KT_CK(cudaMemcpy(tok.data(), dtok, rows * 4, cudaMemcpyDeviceToHost));
    KT_CK(cudaMemcpy(lp.data(), dlp, rows * 4, cudaMemcpyDeviceToHost));
    for (int r = 0; r < rows; r++) {
        oracle_out o = oracle(&logits[(size_t)r * vocab], vocab, P[r], hist.data(), bids.data(), bvals.data());
        char name[128];
        snprintf(name, sizeof name, "vocab=%d row %d T=%.1f k=%d p=%.2f minp=%.2f rep=%.1f", vocab, r, P[r].temperature,
                 P[r].top_k, P[r].top_p, P[r].min_p, P[r].repetition_penalty);
        const int t = tok[r];
        if (t < 0 || t >= vocab) { kt_fail(c, name, "token out of range"); continue; }
        bool ok;
        char why[160] = "";
        if (o.greedy) {
            ok = t == o.greedy_tok;
            snprintf(why, sizeof why, "greedy: got %d want %d", t, o.greedy_tok);
        } else {
            double total = 0, before = 0;
            for (int i = 0; i < vocab; i++) { if (i < t) before += o.w[i]; total += o.w[i]; }
            const double after = before + o.w[t], tol = 1e-5 * total;
            ok = o.w[t] > 0 && o.target >= before - tol && o.target <= after + tol;
            snprintf(why, sizeof why, "draw: got %d (kept %d, interval [%.6g, %.6g)) target %.6g of %.6g", t, o.w[t] > 0,
                     before, after, o.target, total);
        }
        if (!ok) { kt_fail(c, name, why); continue; }
        const float want_lp = o.lp[t];
        kt_compare(c, name, GPU_F16 /* unused */, &lp[r], &want_lp, 1, 1e-3, 1e-4);
    }
    cudaFree(dl); cudaFree(dlp); cudaFree(dbv); cudaFree(dtok); cudaFree(dh); cudaFree(dbi); cudaFree(dp); cudaFree(ws);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "sample", argc, argv);
    for (int vocab : {50, 32000, 128256}) check_vocab(c, vocab);
    if (!c.check_only) {
        /* the full chain with a repetition penalty, and greedy with nothing to adjust (chaski-bench's decode) */
        for (int greedy = 0; greedy < 2; greedy++)
        for (int rows : {1, 16, 64, 256, 512}) {
            const int vocab = 128256;
            std::vector<gpu_sample_params> P(rows, greedy ? mkp(0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f)
                                                          : mkp(0.8f, 40, 0.95f, 0.05f, 1.1f, 0.0f, 0.0f));
            std::vector<int32_t> hist;
            for (int r = 0; r < rows; r++) {
                P[r].seed = r;
                P[r].history_offset = (int64_t)hist.size();
                P[r].n_history = greedy ? 0 : 64;
                for (int i = 0; i < P[r].n_history; i++) hist.push_back(kt_irand(c, vocab));
            }
            gpu_sample_params *dp = kt_upload_raw(P);
            if (hist.empty()) hist.push_back(0); /* an allocation to point at */
            int32_t *dh = kt_upload_raw(hist), *dtok = (int32_t *)kt_alloc(rows * 4);
            const size_t e = (size_t)rows * vocab;
            const int ns = kt_nsets(e * 4);
            std::vector<float *> ls(ns);
            for (int i = 0; i < ns; i++) { ls[i] = (float *)kt_alloc(e * 4); kt_fill_f32(ls[i], e, c.seed + i, 8.0f); }
            const size_t wss = gpu_sample_workspace_size(rows, vocab);
            void *ws = kt_alloc(wss);
            double us = kt_time_us([&](int i) {
                KT_OK(gpu_sample(dtok, nullptr, ls[i % ns], vocab, rows, vocab, dp, dh, nullptr, nullptr, ws, wss, 0));
            });
            char name[96];
            snprintf(name, sizeof name, "rows=%d vocab=%d %s", rows, vocab, greedy ? "greedy" : "T k p minp rep");
            kt_report(c, name, GPU_F16, us, (double)e * 4, 0);
            for (auto l : ls) cudaFree(l);
            cudaFree(dp); cudaFree(dh); cudaFree(dtok); cudaFree(ws);
        }
    }
    return kt_finish(c);
}
