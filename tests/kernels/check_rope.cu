/* tests/kernels/check_rope.cu: gpu_rope against cpu_rope: q and k in separate buffers and inside a
 * fused QKV buffer (strided), full and partial rotary dims, head_dim 64/128, positions up to 40000,
 * mscale != 1 (YaRN-like); bench 4096 tokens of 32 q + 8 k heads of 128 in a fused buffer.
 * Bytes: 2 * n * (n_q + n_k) * rot * sizeof(T). */
#include "kt.h"

static void check_one(kt_ctx &c, gpu_dtype dt, int n, int hq, int hk, int hd, int rot, bool fused, float mscale) {
    char name[96];
    snprintf(name, sizeof name, "n=%d hq=%d hk=%d hd=%d rot=%d%s", n, hq, hk, hd, rot, fused ? " fused" : "");
    const int qs = fused ? (hq + 2 * hk) * hd : hq * hd, ks = fused ? qs : hk * hd;
    std::vector<float> q = kt_rand_vec(c, (size_t)n * qs), k = kt_rand_vec(c, (size_t)n * ks);
    kt_round(dt, q); kt_round(dt, k);
    std::vector<float> inv(rot / 2);
    for (int i = 0; i < rot / 2; i++) inv[i] = powf(500000.0f, -2.0f * i / rot) * kt_unif(c, 0.5f, 1.0f);
    std::vector<int32_t> pos(n);
    for (auto &p : pos) p = kt_irand(c, 40000);
    void *dq = kt_upload(dt, q), *dk = fused ? nullptr : kt_upload(dt, k);
    char *kptr = fused ? (char *)dq + (size_t)hq * hd * 2 : (char *)dk;
    int32_t *dpos = kt_upload_raw(pos);
    float *dinv = kt_upload_raw(inv);
    KT_OK(gpu_rope(dt, dq, hq, qs, kptr, hk, ks, dpos, dinv, n, hd, rot, mscale, 0));
    /* reference on dense copies */
    std::vector<float> rq((size_t)n * hq * hd), rk((size_t)n * hk * hd);
    const float *ksrc = fused ? q.data() + (size_t)hq * hd : k.data();
    for (int t = 0; t < n; t++) {
        memcpy(&rq[(size_t)t * hq * hd], &q[(size_t)t * qs], sizeof(float) * hq * hd);
        memcpy(&rk[(size_t)t * hk * hd], ksrc + (size_t)t * ks, sizeof(float) * hk * hd);
    }
    std::vector<float> want_q = rq, want_k = rk;
    cpu_rope(want_q.data(), pos.data(), inv.data(), n, hq, hd, rot, mscale);
    cpu_rope(want_k.data(), pos.data(), inv.data(), n, hk, hd, rot, mscale);
    std::vector<float> gq = kt_download(dt, dq, (size_t)n * qs), gk = fused ? gq : kt_download(dt, dk, (size_t)n * ks);
    std::vector<float> got_q((size_t)n * hq * hd), got_k((size_t)n * hk * hd);
    bool untouched = true; /* the v part of a fused buffer must be left alone */
    for (int t = 0; t < n; t++) {
        memcpy(&got_q[(size_t)t * hq * hd], &gq[(size_t)t * qs], sizeof(float) * hq * hd);
        memcpy(&got_k[(size_t)t * hk * hd], (fused ? gq.data() + (size_t)hq * hd : gk.data()) + (size_t)t * ks,
               sizeof(float) * hk * hd);
        if (fused)
            for (int i = (hq + hk) * hd; i < qs; i++) untouched &= gq[(size_t)t * qs + i] == q[(size_t)t * qs + i];
    }
    const double rtol = dt == GPU_F16 ? 2e-3 : 1e-2;
    kt_compare(c, std::string(name) + " q", dt, got_q.data(), want_q.data(), want_q.size(), 2e-3, rtol);
    kt_compare(c, std::string(name) + " k", dt, got_k.data(), want_k.data(), want_k.size(), 2e-3, rtol);
    if (!untouched) kt_fail(c, name, "v part of the fused buffer changed");
    cudaFree(dq); if (dk) cudaFree(dk); cudaFree(dpos); cudaFree(dinv);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "rope", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    for (gpu_dtype dt : dts) {
        check_one(c, dt, 9, 32, 8, 128, 128, false, 1.0f);
        check_one(c, dt, 7, 14, 2, 64, 64, true, 1.0f);
        check_one(c, dt, 5, 8, 8, 128, 64, false, 1.2f);
        check_one(c, dt, 3, 4, 1, 256, 256, true, 1.0f);
    }
    if (!c.check_only) {
        for (gpu_dtype dt : dts)
            for (int n : {1, 4096}) {
                const int hq = 32, hk = 8, hd = 128, qs = (hq + 2 * hk) * hd;
                const size_t e = (size_t)n * qs;
                const int ns = kt_nsets(e * 2);
                std::vector<void *> bufs(ns);
                for (int i = 0; i < ns; i++) { bufs[i] = kt_alloc(e * 2); kt_fill(dt, bufs[i], e, c.seed + i); }
                std::vector<int32_t> pos(n);
                for (int i = 0; i < n; i++) pos[i] = i;
                std::vector<float> inv(hd / 2);
                for (int i = 0; i < hd / 2; i++) inv[i] = powf(500000.0f, -2.0f * i / hd);
                int32_t *dpos = kt_upload_raw(pos);
                float *dinv = kt_upload_raw(inv);
                double us = kt_time_us([&](int i) {
                    char *b = (char *)bufs[i % ns];
                    KT_OK(gpu_rope(dt, b, hq, qs, b + (size_t)hq * hd * 2, hk, qs, dpos, dinv, n, hd, hd, 1.0f, 0));
                });
                char name[64];
                snprintf(name, sizeof name, "fused qk n=%d 32+8 heads hd=128", n);
                kt_report(c, name, dt, us, 2.0 * n * (hq + hk) * hd * 2, 0);
                for (auto b : bufs) cudaFree(b);
                cudaFree(dpos); cudaFree(dinv);
            }
    }
    return kt_finish(c);
}
