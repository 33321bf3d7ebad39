/* tests/kernels/check_kv_write.cu: gpu_kv_write against cpu_kv_write: three sequences with cached
 * prefixes, shuffled page tables, k/v read from a fused QKV buffer (strided); the whole pool is compared
 * (rows not written must stay as they were). Bench: 4096 tokens, 8 kv heads x 128.
 * Bytes: 4 * n * n_kv_heads * head_dim * sizeof(T). */
#include "kt.h"

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "kv_write", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    for (gpu_dtype dt : dts)
        for (int hd : {64, 128}) {
            const int hk = 4, hq = 8, page = 16, max_pages = 8;
            const kt_paged_batch b = kt_three_seqs(c, max_pages);
            const int n_seqs = b.n_seqs, n = b.n, n_pages = n_seqs * max_pages;
            const std::vector<int32_t> &seq_start = b.seq_start, &pos = b.pos, &pt = b.pt;
            const size_t pool_e = (size_t)n_pages * page * hk * hd, row = (size_t)hk * hd;
            const int qkv = (hq + 2 * hk) * hd;
            std::vector<float> kp = kt_rand_vec(c, pool_e), vp = kt_rand_vec(c, pool_e), x = kt_rand_vec(c, (size_t)n * qkv);
            kt_round(dt, kp); kt_round(dt, vp); kt_round(dt, x);
            void *dkp = kt_upload(dt, kp), *dvp = kt_upload(dt, vp), *dx = kt_upload(dt, x);
            int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(seq_start), *dpos = kt_upload_raw(pos);
            gpu_paged_kv kv = {dkp, dvp, dpt, max_pages, n_pages, page, hk, hd};
            const char *kptr = (const char *)dx + (size_t)hq * hd * 2, *vptr = kptr + row * 2;
            KT_OK(gpu_kv_write(dt, &kv, kptr, qkv, vptr, qkv, dss, dpos, n_seqs, n, 0));
            std::vector<float> k((size_t)n * row), v((size_t)n * row);
            for (int t = 0; t < n; t++) {
                memcpy(&k[t * row], &x[(size_t)t * qkv + hq * hd], row * 4);
                memcpy(&v[t * row], &x[(size_t)t * qkv + hq * hd + row], row * 4);
            }
            cpu_paged_kv ckv = {kp.data(), vp.data(), pt.data(), max_pages, n_pages, page, hk, hd};
            char name[64];
            snprintf(name, sizeof name, "3 seqs fused qkv hd=%d", hd);
            if (cpu_kv_write(&ckv, k.data(), v.data(), seq_start.data(), pos.data(), n_seqs)) kt_fail(c, name, "cpu ref");
            std::vector<float> gk = kt_download(dt, dkp, pool_e), gv = kt_download(dt, dvp, pool_e);
            kt_compare(c, std::string(name) + " k", dt, gk.data(), kp.data(), pool_e, 0, 0);
            kt_compare(c, std::string(name) + " v", dt, gv.data(), vp.data(), pool_e, 0, 0);
            cudaFree(dkp); cudaFree(dvp); cudaFree(dx); cudaFree(dpt); cudaFree(dss); cudaFree(dpos);
        }
    if (!c.check_only) {
        for (gpu_dtype dt : dts) {
            const int n = 4096, hk = 8, hd = 128, page = 256, max_pages = n / page;
            const size_t row = (size_t)hk * hd, e = (size_t)n * row;
            const int ns = kt_nsets(e * 2 * 4);
            std::vector<void *> kps(ns), vps(ns), ks(ns), vs(ns);
            for (int i = 0; i < ns; i++) {
                kps[i] = kt_alloc(e * 2); vps[i] = kt_alloc(e * 2); ks[i] = kt_alloc(e * 2); vs[i] = kt_alloc(e * 2);
                kt_fill(dt, ks[i], e, c.seed + i); kt_fill(dt, vs[i], e, c.seed + 50 + i);
            }
            std::vector<int32_t> pt(max_pages), ss = {0, n}, pos(n);
            for (int i = 0; i < max_pages; i++) pt[i] = max_pages - 1 - i;
            for (int i = 0; i < n; i++) pos[i] = i;
            int32_t *dpt = kt_upload_raw(pt), *dss = kt_upload_raw(ss), *dpos = kt_upload_raw(pos);
            double us = kt_time_us([&](int i) {
                const int s = i % ns;
                gpu_paged_kv kv = {kps[s], vps[s], dpt, max_pages, max_pages, page, hk, hd};
                KT_OK(gpu_kv_write(dt, &kv, ks[s], (int)row, vs[s], (int)row, dss, dpos, 1, n, 0));
            });
            kt_report(c, "n=4096 8 kv heads hd=128", dt, us, 4.0 * e * 2, 0);
            for (int i = 0; i < ns; i++) { cudaFree(kps[i]); cudaFree(vps[i]); cudaFree(ks[i]); cudaFree(vs[i]); }
            cudaFree(dpt); cudaFree(dss); cudaFree(dpos);
        }
    }
    return kt_finish(c);
}
