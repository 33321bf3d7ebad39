/* tests/kernels/check_linear.cu: gpu_linear against cpu_matmul on every path: GEMV for n = 1..8
 * (with and without bias), cuBLASLt (n = 1, 33, with bias), AUTO; bench GEMV against cuBLASLt at
 * n = 1, 4, 8 on Llama-3-8B layer shapes (GB/s: (m k + n k + n m) sizeof(T)), and cuBLASLt at n = 2048
 * (TFLOP/s: 2 n k m). */
#include "kt.h"

static gpu_blas *g_blas;
static void *g_ws;
static const size_t g_ws_size = 32u << 20;

static void check_one(kt_ctx &c, gpu_dtype dt, int n, int k, int m, bool bias, int path) {
    char name[96];
    const char *pn = path == GPU_LINEAR_GEMV ? "gemv" : path == GPU_LINEAR_BLASLT ? "blaslt" : "auto";
    snprintf(name, sizeof name, "%s n=%d k=%d m=%d%s", pn, n, k, m, bias ? " bias" : "");
    std::vector<float> x = kt_rand_vec(c, (size_t)n * k), w = kt_rand_vec(c, (size_t)m * k, -0.05f, 0.05f),
                       b = kt_rand_vec(c, m);
    kt_round(dt, x); kt_round(dt, w); kt_round(dt, b);
    void *dx = kt_upload(dt, x), *dw = kt_upload(dt, w), *db = kt_upload(dt, b), *dout = kt_alloc((size_t)n * m * 2);
    kt_poison(dout, (size_t)n * m * 2);
    KT_OK(gpu_linear(g_blas, dt, dout, dx, dw, bias ? db : nullptr, n, k, m, path, g_ws, g_ws_size, 0));
    std::vector<float> ref((size_t)n * m);
    cpu_matmul(ref.data(), x.data(), w.data(), bias ? b.data() : nullptr, n, k, m);
    std::vector<float> got = kt_download(dt, dout, (size_t)n * m);
    /* Bias: cuBLASLt's BIAS epilogue on FP16/BF16 output may round the product x.w to dt before adding
     * the bias (the first H200 run: blaslt n=33 k=520 m=300 bias bf16, got 0.0820 for 0.0784 where
     * |x.w| ~ 1 and the bias cancelled most of it: one half-ulp of the product, 2^-8 at [1, 2), not an
     * error of the sum). So each element may also carry half an ulp of its pre-bias product in dt. */
    std::vector<double> extra(ref.size(), 0.0);
    if (bias)
        for (int r = 0; r < n; r++)
            for (int j = 0; j < m; j++)
                extra[(size_t)r * m + j] = kt_half_ulp(dt, (double)ref[(size_t)r * m + j] - b[j]);
    kt_compare_extra(c, name, dt, got.data(), ref.data(), extra.data(), ref.size(), 2e-3, dt == GPU_F16 ? 4e-3 : 1.6e-2);
    cudaFree(dx); cudaFree(dw); cudaFree(db); cudaFree(dout);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "linear", argc, argv);
    KT_OK(gpu_blas_create(&g_blas));
    g_ws = kt_alloc(g_ws_size);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    for (gpu_dtype dt : dts) {
        for (int n = 1; n <= 8; n++) check_one(c, dt, n, 4096, 1000, n % 2 == 1, GPU_LINEAR_GEMV);
        check_one(c, dt, 3, 136, 77, true, GPU_LINEAR_GEMV);
        check_one(c, dt, 1, 4096, 1000, false, GPU_LINEAR_BLASLT);
        check_one(c, dt, 33, 520, 300, true, GPU_LINEAR_BLASLT);
        check_one(c, dt, 64, 1024, 512, false, GPU_LINEAR_AUTO);
        check_one(c, dt, 2, 100, 64, false, GPU_LINEAR_AUTO); /* k % 8 != 0: AUTO must take cuBLASLt */
    }
    if (!c.check_only) {
        struct { int k, m; const char *what; } shapes[] = {
            {4096, 6144, "qkv"}, {4096, 4096, "o"}, {4096, 28672, "gate_up"}, {14336, 4096, "down"}};
        for (gpu_dtype dt : dts)
            for (auto &s : shapes) {
                const size_t we = (size_t)s.k * s.m;
                const int ns = kt_nsets(we * 2);
                std::vector<void *> ws(ns);
                for (int i = 0; i < ns; i++) { ws[i] = kt_alloc(we * 2); kt_fill(dt, ws[i], we, c.seed + i, 0.05f); }
                void *x = kt_alloc((size_t)8 * s.k * 2), *o = kt_alloc((size_t)8 * s.m * 2);
                kt_fill(dt, x, (size_t)8 * s.k, c.seed + 77);
                for (int n : {1, 4, 8})
                    for (int path : {GPU_LINEAR_GEMV, GPU_LINEAR_BLASLT}) {
                        double us = kt_time_us([&](int i) {
                            KT_OK(gpu_linear(g_blas, dt, o, x, ws[i % ns], nullptr, n, s.k, s.m, path, g_ws, g_ws_size, 0));
                        });
                        char name[96];
                        snprintf(name, sizeof name, "%s %s n=%d k=%d m=%d", path == GPU_LINEAR_GEMV ? "gemv" : "blaslt",
                                 s.what, n, s.k, s.m);
                        kt_report(c, name, dt, us, ((double)s.m * s.k + (double)n * s.k + (double)n * s.m) * 2, 0);
                    }
                for (auto w : ws) cudaFree(w);
                cudaFree(x); cudaFree(o);
            }
        for (gpu_dtype dt : dts)
            for (auto &s : shapes) {
                const int n = 2048;
                void *x = kt_alloc((size_t)n * s.k * 2), *w = kt_alloc((size_t)s.k * s.m * 2), *o = kt_alloc((size_t)n * s.m * 2);
                kt_fill(dt, x, (size_t)n * s.k, c.seed + 1);
                kt_fill(dt, w, (size_t)s.k * s.m, c.seed + 2, 0.05f);
                double us = kt_time_us([&](int) {
                    KT_OK(gpu_linear(g_blas, dt, o, x, w, nullptr, n, s.k, s.m, GPU_LINEAR_BLASLT, g_ws, g_ws_size, 0));
                });
                char name[96];
                snprintf(name, sizeof name, "blaslt %s n=%d k=%d m=%d", s.what, n, s.k, s.m);
                kt_report(c, name, dt, us, 0, 2.0 * n * s.k * (double)s.m);
                cudaFree(x); cudaFree(w); cudaFree(o);
            }
    }
    gpu_blas_destroy(g_blas);
    cudaFree(g_ws);
    return kt_finish(c);
}
