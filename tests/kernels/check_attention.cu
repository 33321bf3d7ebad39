/* tests/kernels/check_attention.cu: gpu_attention against cpu_attention_paged on both kernels (decode: the second
 * call of each case is gpu_attention_x, its output also scattered by a random permutation and checked against it).
 * decode (one query per sequence): split counts 1, 3 and automatic; GQA group sizes 4 (GT = 4),
 * 7 (GT = 1), 16 (GT = 8), 2 (GT = 2); head_dim 64 and 128; sliding window; contexts from 1 to 1500.
 * prefill: chunked prefill on a cached prefix, several sequences of different lengths, a mixed batch
 * (a 1-token sequence beside a long one), fused QKV stride for q, windows, head_dim 64 and 128.
 * decode with the rope and cache write in the launch (gpu_attention_rope_x): every decode case, against the CPU and
 * against the two launches it replaces.
 * Bench: decode at Llama-3-8B shape (32 q / 8 kv heads, D = 128, pages of 256) batch 1 at 4096 and
 * 32768 and batch 32 at 4096 (GB/s: the K/V bytes read + q + out); prefill of 2048 and 8192 tokens
 * (TFLOP/s: 4 D per unmasked (query, key) pair per head). */
#include "kt.h"

struct att_case {
    std::vector<int> new_len, ctx0; /* per sequence: new tokens, cached positions before them */
    int hq, hk, hd, window, splits, q_extra; /* q_extra: extra elements per q row (fused stride) */
    const char *what;
};

/* A shuffled page table of rows of max_pages entries: sequence s's first ceil(ctx[s] / page) entries name distinct
 * pages of a pool of their total plus 3; the entries past them, which no kernel may read, name one of the 3 spare
 * pages (random contents, as every page). Every page of the pool is filled, rounded and uploaded on the host, and
 * in the rope cases downloaded and compared whole, so the pool holds only the pages the sequences use (n_seqs x
 * max_pages pages were about twice that for the cases of one long sequence beside short ones). */
static std::vector<int32_t> paged_table(kt_ctx &c, const std::vector<int> &ctx, int page, int max_pages,
                                        int &n_pages) {
    int used = 0;
    for (int x : ctx) used += (x + page - 1) / page;
    n_pages = used + 3;
    const std::vector<int32_t> perm = kt_perm(c, n_pages);
    std::vector<int32_t> pt(ctx.size() * (size_t)max_pages, perm[used]);
    int next = 0;
    for (size_t s = 0; s < ctx.size(); s++)
        for (int i = 0; i < (ctx[s] + page - 1) / page; i++) pt[s * max_pages + i] = perm[next++];
    return pt;
}

/* the decode workspace's split arrival counters zero again after the calls (gpu_attention_workspace_size's
 * contract: each call leaves them as it found them) */
static void expect_counters_zero(kt_ctx &c, const char *name, const void *ws, size_t wss) {
    if (!ws) return;
    std::vector<unsigned char> h(std::min(wss, (size_t)GPU_ATTENTION_WS_ZERO_BYTES));
    KT_CK(cudaMemcpy(h.data(), ws, h.size(), cudaMemcpyDeviceToHost));
    size_t nz = 0;
    for (unsigned char b : h) nz += b != 0;
    kt_expect(c, std::string(name) + " counters left zero", nz == 0, "the arrival counters zero after the calls");
}

static void check_case(kt_ctx &c, gpu_dtype dt, const att_case &a) {
    const int n_seqs = (int)a.new_len.size(), page = 16;
    std::vector<int32_t> ss(n_seqs + 1, 0), pos;
    std::vector<int> ctxs(n_seqs);
    int max_q = 0, max_ctx = 0, max_pages = 0;
    for (int s = 0; s < n_seqs; s++) {
        ss[s + 1] = ss[s] + a.new_len[s];
        for (int i = 0; i < a.new_len[s]; i++) pos.push_back(a.ctx0[s] + i);
        max_q = std::max(max_q, a.new_len[s]);
        ctxs[s] = a.ctx0[s] + a.new_len[s];
        max_ctx = std::max(max_ctx, ctxs[s]);
        max_pages = std::max(max_pages, (ctxs[s] + page - 1) / page);
    }
    const int n = ss[n_seqs];
    int n_pages = 0;
    std::vector<int32_t> pt = paged_table(c, ctxs, page, max_pages, n_pages);
    const size_t pool_e = (size_t)n_pages * page * a.hk * a.hd;
    std::vector<float> kp = kt_rand_vec(c, pool_e), vp = kt_rand_vec(c, pool_e);
    const int qs = a.hq * a.hd + a.q_extra;
    std::vector<float> q = kt_rand_vec(c, (size_t)n * qs, -3, 3);
    kt_round(dt, kp); kt_round(dt, vp); kt_round(dt, q);
    void *dkp = kt_upload(dt, kp), *dvp = kt_upload(dt, vp), *dq = kt_upload(dt, q);
    int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(ss), *dpos = kt_upload_raw(pos);
    const size_t oe = (size_t)n * a.hq * a.hd;
    void *dout = kt_alloc(oe * 2);
    kt_poison(dout, oe * 2);
    gpu_paged_kv kv = {dkp, dvp, dpt, max_pages, n_pages, page, a.hk, a.hd};
    const float scale = 1.0f / sqrtf((float)a.hd);
    const size_t wss = gpu_attention_workspace_size(n_seqs, n, a.hq, a.hk, a.hd, max_ctx, a.splits);
    void *ws = wss ? kt_alloc(wss) : nullptr;
    if (ws) { /* partials poisoned; the arrival counters zero, as the contract asks */
        kt_poison(ws, wss);
        KT_CK(cudaMemset(ws, 0, GPU_ATTENTION_WS_ZERO_BYTES));
    }
    KT_OK(gpu_attention(dt, dout, dq, qs, &kv, dss, dpos, n_seqs, n, a.hq, max_q, max_ctx, a.window, scale, a.splits,
                        ws, wss, 0));
    std::vector<float> qd(oe), ref(oe);
    for (int t = 0; t < n; t++) memcpy(&qd[(size_t)t * a.hq * a.hd], &q[(size_t)t * qs], sizeof(float) * a.hq * a.hd);
    cpu_paged_kv ckv = {kp.data(), vp.data(), pt.data(), max_pages, n_pages, page, a.hk, a.hd};
    char name[128];
    snprintf(name, sizeof name, "%s hq=%d hk=%d hd=%d win=%d splits=%d", a.what, a.hq, a.hk, a.hd, a.window, a.splits);
    if (cpu_attention_paged(ref.data(), qd.data(), &ckv, ss.data(), pos.data(), n_seqs, a.hq, a.window, scale)) {
        kt_fail(c, name, "cpu ref");
    } else {
        std::vector<float> got = kt_download(dt, dout, oe);
        kt_compare(c, name, dt, got.data(), ref.data(), oe, dt == GPU_F16 ? 4e-3 : 1.5e-2, 2e-2);
        /* again on the same workspace: the first call must have left its split arrival counters at zero; decode
         * with a scattered copy of the output (gpu_attention_x: the o projection's packed order) */
        kt_poison(dout, oe * 2);
        const bool dec = n == n_seqs;
        std::vector<int32_t> xpos = dec ? kt_perm(c, a.hq * a.hd) : std::vector<int32_t>();
        int32_t *dxpos = dec ? kt_upload_raw(xpos) : nullptr;
        void *dxp = dec ? kt_alloc(oe * 2) : nullptr;
        if (dxp) kt_poison(dxp, oe * 2);
        KT_OK(gpu_attention_x(dt, dout, dq, qs, &kv, dss, dpos, n_seqs, n, a.hq, max_q, max_ctx, a.window, scale,
                              a.splits, ws, wss, dxp, dxpos, 0));
        got = kt_download(dt, dout, oe);
        kt_compare(c, std::string(name) + " again", dt, got.data(), ref.data(), oe, dt == GPU_F16 ? 4e-3 : 1.5e-2,
                   2e-2);
        if (dec) {
            kt_expect_scattered(c, name, got, kt_download(dt, dxp, oe), xpos, n);
            cudaFree(dxp); cudaFree(dxpos);
        }
        expect_counters_zero(c, name, ws, wss);
    }
    cudaFree(dkp); cudaFree(dvp); cudaFree(dq); cudaFree(dpt); cudaFree(dss); cudaFree(dpos); cudaFree(dout);
    if (ws) cudaFree(ws);
}

/* gpu_attention_rope_x (a decode case): q, k, v in one buffer per token as the projections wrote them (q and k not
 * rotated), the cache rows at pos[s] holding stale values. Against the CPU (cpu_rope of q and k, cpu_kv_write,
 * cpu_attention_paged): the output and both whole pools after the call; against gpu_rope_kv + gpu_attention_x on a
 * copy of the same inputs: the same bits (output and pools; the fused kernel does gpu_rope's arithmetic). mscale
 * 0.9 (YaRN-like) on the windowed cases. */
static void check_rope_case(kt_ctx &c, gpu_dtype dt, const att_case &a) {
    const int n_seqs = (int)a.new_len.size(), page = 16;
    std::vector<int32_t> ss(n_seqs + 1, 0), pos(n_seqs);
    std::vector<int> ctxs(n_seqs);
    int max_ctx = 0, max_pages = 0;
    for (int s = 0; s < n_seqs; s++) {
        ss[s + 1] = s + 1;
        pos[s] = a.ctx0[s];
        ctxs[s] = a.ctx0[s] + 1;
        max_ctx = std::max(max_ctx, ctxs[s]);
        max_pages = std::max(max_pages, (ctxs[s] + page - 1) / page);
    }
    const int hd = a.hd, row = a.hk * hd, qs = a.hq * hd + 2 * row;
    int n_pages = 0;
    std::vector<int32_t> pt = paged_table(c, ctxs, page, max_pages, n_pages);
    const size_t pool_e = (size_t)n_pages * page * row;
    std::vector<float> kp = kt_rand_vec(c, pool_e), vp = kt_rand_vec(c, pool_e), x = kt_rand_vec(c, (size_t)n_seqs * qs, -3, 3);
    kt_round(dt, kp); kt_round(dt, vp); kt_round(dt, x);
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; i++) inv[i] = powf(500000.0f, -2.0f * i / hd);
    const float mscale = a.window ? 0.9f : 1.0f, scale = 1.0f / sqrtf((float)hd);
    int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(ss), *dpos = kt_upload_raw(pos);
    float *dinv = kt_upload_raw(inv);
    const size_t oe = (size_t)n_seqs * a.hq * hd;
    const size_t wss = gpu_attention_workspace_size(n_seqs, n_seqs, a.hq, a.hk, hd, max_ctx, a.splits);
    void *ws = wss ? kt_alloc(wss) : nullptr;
    if (ws) {
        kt_poison(ws, wss);
        KT_CK(cudaMemset(ws, 0, GPU_ATTENTION_WS_ZERO_BYTES));
    }
    /* run 0: fused; run 1: gpu_rope_kv, then gpu_attention_x */
    std::vector<float> out[2], gk[2], gv[2];
    for (int run = 0; run < 2; run++) {
        void *dkp = kt_upload(dt, kp), *dvp = kt_upload(dt, vp), *dx = kt_upload(dt, x), *dout = kt_alloc(oe * 2);
        kt_poison(dout, oe * 2);
        gpu_paged_kv kv = {dkp, dvp, dpt, max_pages, n_pages, page, a.hk, hd};
        char *kptr = (char *)dx + (size_t)a.hq * hd * 2, *vptr = kptr + (size_t)row * 2;
        if (run == 0) {
            KT_OK(gpu_attention_rope_x(dt, dout, dx, qs, kptr, qs, vptr, qs, dinv, mscale, &kv, dss, dpos, n_seqs, a.hq,
                                       max_ctx, a.window, scale, a.splits, ws, wss, nullptr, nullptr, 0));
        } else {
            KT_OK(gpu_rope_kv(dt, dx, a.hq, qs, kptr, qs, vptr, qs, &kv, dss, n_seqs, dpos, dinv, n_seqs, hd, mscale, 0));
            KT_OK(gpu_attention_x(dt, dout, dx, qs, &kv, dss, dpos, n_seqs, n_seqs, a.hq, 1, max_ctx, a.window, scale,
                                  a.splits, ws, wss, nullptr, nullptr, 0));
        }
        out[run] = kt_download(dt, dout, oe);
        gk[run] = kt_download(dt, dkp, pool_e);
        gv[run] = kt_download(dt, dvp, pool_e);
        cudaFree(dkp); cudaFree(dvp); cudaFree(dx); cudaFree(dout);
        expect_counters_zero(c, "decode rope", ws, wss);
    }
    std::vector<float> q((size_t)n_seqs * a.hq * hd), k((size_t)n_seqs * row), v((size_t)n_seqs * row), ref(oe);
    for (int t = 0; t < n_seqs; t++) {
        memcpy(&q[(size_t)t * a.hq * hd], &x[(size_t)t * qs], sizeof(float) * a.hq * hd);
        memcpy(&k[(size_t)t * row], &x[(size_t)t * qs + a.hq * hd], sizeof(float) * row);
        memcpy(&v[(size_t)t * row], &x[(size_t)t * qs + a.hq * hd + row], sizeof(float) * row);
    }
    char name[128];
    snprintf(name, sizeof name, "%s rope hq=%d hk=%d hd=%d win=%d splits=%d", a.what, a.hq, a.hk, hd, a.window,
             a.splits);
    cpu_rope(q.data(), pos.data(), inv.data(), n_seqs, a.hq, hd, hd, mscale);
    cpu_rope(k.data(), pos.data(), inv.data(), n_seqs, a.hk, hd, hd, mscale);
    kt_round(dt, q); /* the GPU stores the rotated q and k in dt before it uses them */
    kt_round(dt, k);
    cpu_paged_kv ckv = {kp.data(), vp.data(), pt.data(), max_pages, n_pages, page, a.hk, hd};
    if (cpu_kv_write(&ckv, k.data(), v.data(), ss.data(), pos.data(), n_seqs) ||
        cpu_attention_paged(ref.data(), q.data(), &ckv, ss.data(), pos.data(), n_seqs, a.hq, a.window, scale)) {
        kt_fail(c, name, "cpu ref");
    } else {
        const double rtol = dt == GPU_F16 ? 2e-3 : 1e-2;
        kt_compare(c, name, dt, out[0].data(), ref.data(), oe, dt == GPU_F16 ? 4e-3 : 1.5e-2, 2e-2);
        kt_compare(c, std::string(name) + " k pool", dt, gk[0].data(), kp.data(), pool_e, 2e-3, rtol);
        kt_compare(c, std::string(name) + " v pool", dt, gv[0].data(), vp.data(), pool_e, 0, 0);
        kt_compare(c, std::string(name) + " = two launches", dt, out[0].data(), out[1].data(), oe, 0, 0);
        kt_compare(c, std::string(name) + " k pool = two launches", dt, gk[0].data(), gk[1].data(), pool_e, 0, 0);
    }
    cudaFree(dpt); cudaFree(dss); cudaFree(dpos); cudaFree(dinv);
    if (ws) cudaFree(ws);
}

/* one sequence set for timing: n_seqs sequences, each new_len new tokens after ctx0 cached ones */
static void bench_case(kt_ctx &c, gpu_dtype dt, int n_seqs, int new_len, int ctx0, const char *what) {
    const int hq = 32, hk = 8, hd = 128, page = 256;
    const int ctx = ctx0 + new_len, pages_per = (ctx + page - 1) / page, n_pages = n_seqs * pages_per;
    const int n = n_seqs * new_len;
    const size_t pool_e = (size_t)n_pages * page * hk * hd;
    const int ns = kt_nsets(pool_e * 2 * 2);
    std::vector<void *> kps(ns), vps(ns);
    for (int i = 0; i < ns; i++) {
        kps[i] = kt_alloc(pool_e * 2); vps[i] = kt_alloc(pool_e * 2);
        kt_fill(dt, kps[i], pool_e, c.seed + i); kt_fill(dt, vps[i], pool_e, c.seed + 100 + i);
    }
    std::vector<int32_t> pt(n_pages), ss(n_seqs + 1), pos(n);
    for (int i = 0; i < n_pages; i++) pt[i] = (i * 7919) % n_pages; /* scattered pages (n_pages not a multiple of 7919) */
    for (int s = 0; s <= n_seqs; s++) ss[s] = s * new_len;
    for (int t = 0; t < n; t++) pos[t] = ctx0 + t % new_len;
    int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(ss), *dpos = kt_upload_raw(pos);
    void *q = kt_alloc((size_t)n * hq * hd * 2), *o = kt_alloc((size_t)n * hq * hd * 2);
    kt_fill(dt, q, (size_t)n * hq * hd, c.seed + 5);
    const size_t wss = gpu_attention_workspace_size(n_seqs, n, hq, hk, hd, ctx, 0);
    void *ws = wss ? kt_alloc(wss) : nullptr;
    if (ws) KT_CK(cudaMemset(ws, 0, wss));
    double us = kt_time_us([&](int i) {
        gpu_paged_kv kv = {kps[i % ns], vps[i % ns], dpt, pages_per, n_pages, page, hk, hd};
        KT_OK(gpu_attention(dt, o, q, hq * hd, &kv, dss, dpos, n_seqs, n, hq, new_len, ctx, 0, 1.0f / sqrtf(128.0f), 0,
                            ws, wss, 0));
    }, 3, 20);
    char name[96];
    snprintf(name, sizeof name, "%s b=%d new=%d ctx=%d", what, n_seqs, new_len, ctx);
    if (new_len == 1) {
        const double bytes = 2.0 * n_seqs * (double)ctx * hk * hd * 2 + 2.0 * n * hq * hd * 2;
        kt_report(c, name, dt, us, bytes, 0);
    } else {
        double pairs = 0;
        for (int i = 0; i < new_len; i++) pairs += ctx0 + i + 1;
        kt_report(c, name, dt, us, 0, 4.0 * hd * hq * pairs * n_seqs);
    }
    for (int i = 0; i < ns; i++) { cudaFree(kps[i]); cudaFree(vps[i]); }
    cudaFree(dpt); cudaFree(dss); cudaFree(dpos); cudaFree(q); cudaFree(o);
    if (ws) cudaFree(ws);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "attention", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    /* --only decode:B:DEPTH (profiling): the FP16 decode bench of B sequences at DEPTH cached keys alone */
    int ob = 0, od = 0;
    if (c.only && sscanf(c.only, "decode:%d:%d", &ob, &od) == 2 && ob >= 1 && od >= 0) {
        bench_case(c, GPU_F16, ob, 1, od, "decode");
        return kt_finish(c);
    }
    if (c.only) {
        fprintf(stderr, "check_attention: --only takes decode:B:DEPTH, not \"%s\"\n", c.only);
        return 2;
    }
    const att_case cases[] = {
        {{1, 1, 1}, {0, 299, 1499}, 32, 8, 128, 0, 1, 0, "decode"},
        {{1, 1, 1}, {0, 299, 1499}, 32, 8, 128, 0, 3, 0, "decode"},
        {{1, 1, 1, 1}, {5, 299, 1499, 63}, 32, 8, 128, 0, 0, 0, "decode"},
        {{1, 1, 1}, {17, 700, 1200}, 32, 8, 128, 256, 0, 0, "decode"},
        {{1, 1}, {130, 900}, 14, 2, 64, 0, 0, 64, "decode fused-q"},
        {{1, 1}, {130, 900}, 16, 1, 128, 100, 5, 0, "decode mqa"},
        {{1, 1}, {33, 1000}, 4, 2, 64, 0, 0, 0, "decode"},
        /* head_dim 64 in GQA 4 (Llama 3.2 1B's heads): the GT 4 kernels at D 64, short and long contexts */
        {{1, 1, 1}, {5, 300, 1000}, 32, 8, 64, 0, 0, 0, "decode hd64"},
        /* contexts of at most DEC_SHORT_CTX keys (attention_decode.cu's short-context rules): GQA 4 in KT 4, GQA 8
         * and MQA in head groups of 4 */
        {{1, 1, 1}, {0, 17, 200}, 32, 8, 128, 0, 0, 0, "decode short"},
        {{1, 1, 1}, {0, 40, 255}, 64, 8, 128, 0, 0, 0, "decode short gqa8"},
        {{1, 1}, {3, 150}, 16, 1, 128, 0, 0, 0, "decode short mqa"},
        /* GQA 8 in head groups of 4 up to DEC_GQA8_CTX keys (KT 8 past DEC_SHORT_CTX), in GT 8 past it */
        {{1, 1, 1}, {300, 2000, 8000}, 64, 8, 128, 0, 0, 0, "decode gqa8"},
        {{1, 1}, {130, 9000}, 64, 8, 128, 0, 0, 0, "decode gqa8 long"},
        /* the merge by the last live split with more splits than a warp has lanes (70 live at GT = 8 (MQA, 16 heads),
         * 100 at GT = 4), beside sequences of a few splits (130 keys at GT = 8: 5 of 32 keys) and of one (20 keys) */
        {{1, 1, 1}, {130, 5000, 9000}, 16, 1, 128, 0, 70, 0, "decode mqa long"},
        {{1, 1, 1}, {3000, 9000, 20}, 32, 8, 128, 0, 100, 0, "decode long"},
        {{100, 70}, {37, 0}, 32, 8, 128, 0, 0, 0, "prefill"},
        {{100, 70}, {37, 0}, 32, 8, 128, 50, 0, 0, "prefill"},
        {{130, 3, 64}, {0, 500, 1}, 14, 2, 64, 0, 0, 128, "prefill fused-q"},
        {{1, 40}, {300, 10}, 16, 1, 128, 0, 0, 0, "mixed"},
        {{200}, {0}, 8, 8, 64, 37, 0, 0, "prefill mha"},
    };
    for (gpu_dtype dt : dts)
        for (const att_case &a : cases) {
            check_case(c, dt, a);
            if (!strncmp(a.what, "decode", 6)) check_rope_case(c, dt, a);
        }
    /* every decode variant on the GQA-4 cases and GQA 8's, whose head groups of 4 take them too (the others ignore
     * the knob) */
    for (int v : {1, 2, 3, 4, 7}) { /* 7: GT 8's keys not pipelined */
        gpu_attention_decode_tuning(v, 8);
        for (gpu_dtype dt : dts)
            for (const att_case &a : cases)
                if ((a.hq == 4 * a.hk || a.hq == 8 * a.hk) && !strncmp(a.what, "decode", 6)) {
                    att_case b = a;
                    char w[64];
                    snprintf(w, sizeof w, "%s v%d", a.what, v);
                    b.what = w;
                    check_case(c, dt, b);
                    check_rope_case(c, dt, b);
                }
    }
    gpu_attention_decode_tuning(0, 0);
    if (!c.check_only) {
        /* the decode variants and split targets, batch 1 at 4k and 32k and batch 32 at 4k */
        for (int v = 1; v <= 4; v++)
            for (int bps : {1, 2, 4, 8}) {
                gpu_attention_decode_tuning(v, bps);
                char w[64];
                snprintf(w, sizeof w, "decode v%d bps%d", v, bps);
                bench_case(c, GPU_BF16, 1, 1, 4095, w);
                bench_case(c, GPU_BF16, 1, 1, 32767, w);
                bench_case(c, GPU_BF16, 32, 1, 4095, w);
            }
        gpu_attention_decode_tuning(0, 0);
        for (gpu_dtype dt : dts) {
            bench_case(c, dt, 1, 1, 4095, "decode");
            bench_case(c, dt, 1, 1, 32767, "decode");
            bench_case(c, dt, 32, 1, 4095, "decode");
            bench_case(c, dt, 1, 2048, 0, "prefill");
            bench_case(c, dt, 1, 8192, 0, "prefill");
        }
    }
    return kt_finish(c);
}
