/* tests/kernels/check_norm.cu: gpu_rmsnorm and gpu_add_rmsnorm against the CPU reference, for every
 * registers-per-thread configuration (d <= 2048, 4096, 8192, larger) and in place (out == x); their _x forms
 * (the output also written in the order of a random permutation) against the same reference and their own output;
 * bench at n = 1 and 4096 rows of d = 4096 and 8192. Bytes: rmsnorm 2 n d sizeof(T) + d sizeof(T);
 * add_rmsnorm 4 n d sizeof(T) + d sizeof(T). */
#include "kt.h"

static void check_one(kt_ctx &c, gpu_dtype dt, int n, int d, bool add, bool inplace, bool scatter = false) {
    char name[96];
    snprintf(name, sizeof name, "%s%s n=%d d=%d%s", add ? "add_rmsnorm" : "rmsnorm", scatter ? "_x" : "", n, d,
             inplace ? " inplace" : "");
    std::vector<int32_t> perm = scatter ? kt_perm(c, d) : std::vector<int32_t>(), pos(perm.size());
    for (size_t j = 0; j < perm.size(); j++) pos[(size_t)perm[j]] = (int32_t)j; /* xp[j] = out[perm[j]] */
    int32_t *dperm = scatter ? kt_upload_raw(perm) : nullptr;
    void *dxp = scatter ? kt_alloc((size_t)n * d * 2) : nullptr;
    if (dxp) kt_poison(dxp, (size_t)n * d * 2);
    const float eps = 1e-5f;
    std::vector<float> x = kt_rand_vec(c, (size_t)n * d, -2, 2), w = kt_rand_vec(c, d, 0.5f, 1.5f),
                       delta = kt_rand_vec(c, (size_t)n * d);
    kt_round(dt, x); kt_round(dt, w); kt_round(dt, delta);
    void *dx = kt_upload(dt, x), *dw = kt_upload(dt, w), *dd = kt_upload(dt, delta);
    void *dout = inplace ? dx : kt_alloc((size_t)n * d * 2);
    if (!inplace) kt_poison(dout, (size_t)n * d * 2);
    std::vector<float> ref((size_t)n * d);
    if (add) {
        KT_OK(gpu_add_rmsnorm_x(dt, dout, dx, dd, w.empty() ? nullptr : dw, n, d, eps, dxp, dperm, 0));
        std::vector<float> resid = x;
        cpu_add_rmsnorm(ref.data(), resid.data(), delta.data(), w.data(), n, d, eps);
        std::vector<float> got_resid = kt_download(dt, dx, (size_t)n * d);
        std::string rn = std::string(name) + " resid";
        kt_compare(c, rn, dt, got_resid.data(), resid.data(), resid.size(), 1e-6, dt == GPU_F16 ? 1e-3 : 8e-3);
    } else {
        KT_OK(gpu_rmsnorm_x(dt, dout, dx, dw, n, d, eps, dxp, dperm, 0));
        cpu_rmsnorm(ref.data(), x.data(), w.data(), n, d, eps);
    }
    std::vector<float> got = kt_download(dt, dout, (size_t)n * d);
    kt_compare(c, name, dt, got.data(), ref.data(), ref.size(), 1e-3, dt == GPU_F16 ? 4e-3 : 2e-2);
    if (scatter) {
        kt_expect_scattered(c, name, got, kt_download(dt, dxp, (size_t)n * d), pos, n);
        cudaFree(dxp); cudaFree(dperm);
    }
    cudaFree(dx); cudaFree(dw); cudaFree(dd);
    if (!inplace) cudaFree(dout);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "norm", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    const int ds[] = {8, 896, 2048, 4096, 5120, 8192, 16384};
    for (gpu_dtype dt : dts)
        for (int d : ds) {
            check_one(c, dt, 7, d, false, false);
            check_one(c, dt, 5, d, true, false);
        }
    for (gpu_dtype dt : dts) check_one(c, dt, 3, 4096, false, true);
    { /* beyond one block of 256 threads: declined before anything is read (small buffers suffice) */
        void *b = kt_alloc(4096);
        kt_expect(c, "rmsnorm d=32768", gpu_rmsnorm(GPU_BF16, b, b, b, 1, 32768, 1e-5f, 0) == GPU_UNSUPPORTED,
                  "declined: GPU_UNSUPPORTED");
        cudaFree(b);
    }
    for (gpu_dtype dt : dts)
        for (int d : {896, 4096, 8192}) {
            check_one(c, dt, 3, d, false, false, true);
            check_one(c, dt, 16, d, true, false, true);
        }
    if (!c.check_only) {
        for (gpu_dtype dt : dts)
            for (int add = 0; add < 2; add++)
                for (int n : {1, 4096})
                    for (int d : {4096, 8192}) {
                        const size_t e = (size_t)n * d;
                        const int ns = kt_nsets(e * 2 * (add ? 3 : 2));
                        std::vector<void *> xs(ns), ds_(ns), os(ns);
                        for (int i = 0; i < ns; i++) {
                            xs[i] = kt_alloc(e * 2); ds_[i] = kt_alloc(e * 2); os[i] = kt_alloc(e * 2);
                            kt_fill(dt, xs[i], e, c.seed + i); kt_fill(dt, ds_[i], e, c.seed + 100 + i, 0.01f);
                        }
                        void *w = kt_alloc(d * 2);
                        kt_fill(dt, w, d, c.seed + 999);
                        double us = kt_time_us([&](int i) {
                            int s = i % ns;
                            if (add) KT_OK(gpu_add_rmsnorm(dt, os[s], xs[s], ds_[s], w, n, d, 1e-5f, 0));
                            else KT_OK(gpu_rmsnorm(dt, os[s], xs[s], w, n, d, 1e-5f, 0));
                        });
                        char name[64];
                        snprintf(name, sizeof name, "%s n=%d d=%d", add ? "add_rmsnorm" : "rmsnorm", n, d);
                        kt_report(c, name, dt, us, (add ? 4.0 : 2.0) * e * 2 + d * 2.0, 0);
                        for (int i = 0; i < ns; i++) { cudaFree(xs[i]); cudaFree(ds_[i]); cudaFree(os[i]); }
                        cudaFree(w);
                    }
    }
    return kt_finish(c);
}
