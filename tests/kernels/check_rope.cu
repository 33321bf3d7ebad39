/* tests/kernels/check_rope.cu: gpu_rope against cpu_rope: q and k in separate buffers and inside a
 * fused QKV buffer (strided), full and partial rotary dims, head_dim 64/128, positions up to 40000,
 * mscale != 1 (YaRN-like); gpu_rope_kv against cpu_rope + cpu_kv_write; bench 4096 tokens of 32 q + 8 k heads of
 * 128 in a fused buffer.
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

/* gpu_rope_kv (rope of q and k, then the paged-cache write of the rotated k and of v, one launch) against cpu_rope
 * and cpu_kv_write: three sequences with cached prefixes, a shuffled page table, q, k, v in one fused buffer; the
 * whole pools are compared (rows not written must stay as they were). */
static void check_rope_kv(kt_ctx &c, gpu_dtype dt, int hq, int hk, int hd, int rot) {
    char name[96];
    snprintf(name, sizeof name, "rope_kv hq=%d hk=%d hd=%d rot=%d", hq, hk, hd, rot);
    const int page = 16, max_pages = 8;
    const kt_paged_batch b = kt_three_seqs(c, max_pages);
    const int n_seqs = b.n_seqs, n = b.n, n_pages = n_seqs * max_pages;
    const std::vector<int32_t> &ss = b.seq_start, &pos = b.pos, &pt = b.pt;
    const size_t row = (size_t)hk * hd, pool_e = (size_t)n_pages * page * row;
    const int qs = (hq + 2 * hk) * hd;
    std::vector<float> x = kt_rand_vec(c, (size_t)n * qs), kp = kt_rand_vec(c, pool_e), vp = kt_rand_vec(c, pool_e);
    kt_round(dt, x); kt_round(dt, kp); kt_round(dt, vp);
    std::vector<float> inv(rot / 2);
    for (int i = 0; i < rot / 2; i++) inv[i] = powf(500000.0f, -2.0f * i / rot);
    void *dx = kt_upload(dt, x), *dkp = kt_upload(dt, kp), *dvp = kt_upload(dt, vp);
    int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(ss), *dpos = kt_upload_raw(pos);
    float *dinv = kt_upload_raw(inv);
    gpu_paged_kv kv = {dkp, dvp, dpt, max_pages, n_pages, page, hk, hd};
    char *kptr = (char *)dx + (size_t)hq * hd * 2, *vptr = kptr + row * 2;
    KT_OK(gpu_rope_kv(dt, dx, hq, qs, kptr, qs, vptr, qs, &kv, dss, n_seqs, dpos, dinv, n, rot, 1.0f, 0));
    std::vector<float> q((size_t)n * hq * hd), k((size_t)n * row), v((size_t)n * row);
    for (int t = 0; t < n; t++) {
        memcpy(&q[(size_t)t * hq * hd], &x[(size_t)t * qs], sizeof(float) * hq * hd);
        memcpy(&k[(size_t)t * row], &x[(size_t)t * qs + hq * hd], sizeof(float) * row);
        memcpy(&v[(size_t)t * row], &x[(size_t)t * qs + hq * hd + row], sizeof(float) * row);
    }
    cpu_rope(q.data(), pos.data(), inv.data(), n, hq, hd, rot, 1.0f);
    cpu_rope(k.data(), pos.data(), inv.data(), n, hk, hd, rot, 1.0f);
    cpu_paged_kv ckv = {kp.data(), vp.data(), pt.data(), max_pages, n_pages, page, hk, hd};
    if (cpu_kv_write(&ckv, k.data(), v.data(), ss.data(), pos.data(), n_seqs)) kt_fail(c, name, "cpu ref");
    std::vector<float> gx = kt_download(dt, dx, (size_t)n * qs), gq((size_t)n * hq * hd), gk((size_t)n * row);
    bool v_same = true; /* the v part of the buffer is read, not written */
    for (int t = 0; t < n; t++) {
        memcpy(&gq[(size_t)t * hq * hd], &gx[(size_t)t * qs], sizeof(float) * hq * hd);
        memcpy(&gk[(size_t)t * row], &gx[(size_t)t * qs + hq * hd], sizeof(float) * row);
        for (size_t i = 0; i < row; i++) v_same &= gx[(size_t)t * qs + hq * hd + row + i] == x[(size_t)t * qs + hq * hd + row + i];
    }
    const double rtol = dt == GPU_F16 ? 2e-3 : 1e-2;
    kt_compare(c, std::string(name) + " q", dt, gq.data(), q.data(), q.size(), 2e-3, rtol);
    kt_compare(c, std::string(name) + " k", dt, gk.data(), k.data(), k.size(), 2e-3, rtol);
    std::vector<float> gkp = kt_download(dt, dkp, pool_e), gvp = kt_download(dt, dvp, pool_e);
    kt_compare(c, std::string(name) + " k pool", dt, gkp.data(), kp.data(), pool_e, 2e-3, rtol);
    kt_compare(c, std::string(name) + " v pool", dt, gvp.data(), vp.data(), pool_e, 0, 0);
    /* the cache holds exactly the k the buffer holds (same rounding) */
    bool same = true;
    for (int s = 0; s < n_seqs; s++)
        for (int t = ss[s]; t < ss[s + 1]; t++) {
            const size_t r = ((size_t)pt[s * max_pages + pos[t] / page] * page + pos[t] % page) * row;
            for (size_t i = 0; i < row; i++) same &= gkp[r + i] == gk[(size_t)t * row + i];
        }
    if (!same) kt_fail(c, name, "the cached k differs from the rotated k in the buffer");
    if (!v_same) kt_fail(c, name, "the v part of the buffer changed");
    cudaFree(dx); cudaFree(dkp); cudaFree(dvp); cudaFree(dpt); cudaFree(dss); cudaFree(dpos); cudaFree(dinv);
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
        check_rope_kv(c, dt, 32, 8, 128, 128);
        check_rope_kv(c, dt, 8, 2, 64, 32); /* partial rotary: the k tail is copied to the cache unrotated */
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
