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

/* The fused-weight launchers: gpu_linear_split (a [q; k; v] weight into three outputs) and
 * gpu_linear_swiglu ([gate; up] into silu(gate) * up), against cpu_matmul on the whole fused weight,
 * then split / SwiGLU written here from the math (gate and up rounded to dt first, as the unfused ops). */
static void check_split(kt_ctx &c, gpu_dtype dt, int n, int k, const int ms[3], bool bias, int path) {
    char name[96];
    const int m = ms[0] + ms[1] + ms[2];
    snprintf(name, sizeof name, "split %s n=%d k=%d m=%d+%d+%d%s", path == GPU_LINEAR_GEMV ? "gemv" : "blaslt", n, k,
             ms[0], ms[1], ms[2], bias ? " bias" : "");
    std::vector<float> x = kt_rand_vec(c, (size_t)n * k), w = kt_rand_vec(c, (size_t)m * k, -0.05f, 0.05f),
                       b = kt_rand_vec(c, m);
    kt_round(dt, x); kt_round(dt, w); kt_round(dt, b);
    void *dx = kt_upload(dt, x), *dw = kt_upload(dt, w), *db = kt_upload(dt, b), *douts[3];
    for (int i = 0; i < 3; i++) { douts[i] = kt_alloc((size_t)n * ms[i] * 2); kt_poison(douts[i], (size_t)n * ms[i] * 2); }
    KT_OK(gpu_linear_split(g_blas, dt, douts, ms, 3, dx, dw, bias ? db : nullptr, n, k, path, g_ws, g_ws_size, 0));
    std::vector<float> ref((size_t)n * m);
    cpu_matmul(ref.data(), x.data(), w.data(), bias ? b.data() : nullptr, n, k, m);
    int first = 0;
    for (int i = 0; i < 3; i++) {
        std::vector<float> part((size_t)n * ms[i]);
        std::vector<double> extra(part.size(), 0.0);
        for (int r = 0; r < n; r++)
            for (int j = 0; j < ms[i]; j++) {
                part[(size_t)r * ms[i] + j] = ref[(size_t)r * m + first + j];
                if (bias) extra[(size_t)r * ms[i] + j] = kt_half_ulp(dt, (double)ref[(size_t)r * m + first + j] - b[first + j]);
            }
        std::vector<float> got = kt_download(dt, douts[i], part.size());
        char pn[128];
        snprintf(pn, sizeof pn, "%s part %d", name, i);
        kt_compare_extra(c, pn, dt, got.data(), part.data(), extra.data(), part.size(), 2e-3, dt == GPU_F16 ? 4e-3 : 1.6e-2);
        first += ms[i];
        cudaFree(douts[i]);
    }
    cudaFree(dx); cudaFree(dw); cudaFree(db);
}

static void check_swiglu(kt_ctx &c, gpu_dtype dt, int n, int k, int f, bool bias, int path) {
    char name[96];
    snprintf(name, sizeof name, "swiglu %s n=%d k=%d f=%d%s", path == GPU_LINEAR_GEMV ? "gemv" : "blaslt", n, k, f,
             bias ? " bias" : "");
    std::vector<float> x = kt_rand_vec(c, (size_t)n * k), w = kt_rand_vec(c, (size_t)2 * f * k, -0.05f, 0.05f),
                       b = kt_rand_vec(c, 2 * f);
    kt_round(dt, x); kt_round(dt, w); kt_round(dt, b);
    void *dx = kt_upload(dt, x), *dw = kt_upload(dt, w), *db = kt_upload(dt, b);
    void *dout = kt_alloc((size_t)n * f * 2), *dup = kt_alloc((size_t)n * f * 2);
    kt_poison(dout, (size_t)n * f * 2);
    KT_OK(gpu_linear_swiglu(g_blas, dt, dout, dup, dx, dw, bias ? db : nullptr, n, k, f, path, g_ws, g_ws_size, 0));
    std::vector<float> gu((size_t)n * 2 * f);
    cpu_matmul(gu.data(), x.data(), w.data(), bias ? b.data() : nullptr, n, k, 2 * f);
    kt_round(dt, gu);
    std::vector<float> ref((size_t)n * f);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < f; j++) {
            const double g = gu[(size_t)r * 2 * f + j], u = gu[(size_t)r * 2 * f + f + j];
            ref[(size_t)r * f + j] = (float)(g / (1.0 + exp(-g)) * u);
        }
    std::vector<float> got = kt_download(dt, dout, ref.size());
    /* gate and up each carry the matmul tolerance t(v) = 2e-3 + rtol |v| plus one ulp (the GPU's float sum
     * may round to the neighbour of the reference's rounding); |silu'| <= 1.1 and |silu(g)| <= |g|, so
     * the product may move by 1.1 |u| e_g + |g| e_u. */
    const double rtol = dt == GPU_F16 ? 4e-3 : 1.6e-2;
    std::vector<double> extra(ref.size(), 0.0);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < f; j++) {
            const double g = gu[(size_t)r * 2 * f + j], u = gu[(size_t)r * 2 * f + f + j];
            const double eg = 2e-3 + rtol * fabs(g) + 2.0 * kt_half_ulp(dt, g);
            const double eu = 2e-3 + rtol * fabs(u) + 2.0 * kt_half_ulp(dt, u);
            extra[(size_t)r * f + j] = 1.1 * fabs(u) * eg + fabs(g) * eu;
        }
    kt_compare_extra(c, name, dt, got.data(), ref.data(), extra.data(), ref.size(), 2e-3, dt == GPU_F16 ? 4e-3 : 1.6e-2);
    cudaFree(dx); cudaFree(dw); cudaFree(db); cudaFree(dout); cudaFree(dup);
}

/* gpu_linear_f32out (the lm_head GEMV) against cpu_matmul: float32 output, no rounding to dt. */
static void check_f32out(kt_ctx &c, gpu_dtype dt, int n, int k, int m) {
    char name[96];
    snprintf(name, sizeof name, "f32out n=%d k=%d m=%d", n, k, m);
    std::vector<float> x = kt_rand_vec(c, (size_t)n * k), w = kt_rand_vec(c, (size_t)m * k, -0.05f, 0.05f);
    kt_round(dt, x); kt_round(dt, w);
    void *dx = kt_upload(dt, x), *dw = kt_upload(dt, w);
    float *dout = (float *)kt_alloc((size_t)n * m * 4);
    kt_poison(dout, (size_t)n * m * 4);
    KT_OK(gpu_linear_f32out(dt, dout, dx, dw, n, k, m, 0));
    std::vector<float> ref((size_t)n * m), got((size_t)n * m);
    cpu_matmul(ref.data(), x.data(), w.data(), nullptr, n, k, m);
    KT_CK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
    std::vector<double> extra(ref.size(), 0.0);
    kt_compare_extra(c, name, dt, got.data(), ref.data(), extra.data(), ref.size(), 1e-4, 1e-4);
    cudaFree(dx); cudaFree(dw); cudaFree(dout);
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
        const int ms[3] = {512, 136, 136};
        for (int n = 1; n <= 8; n++) check_split(c, dt, n, 1024, ms, n % 2 == 0, GPU_LINEAR_GEMV);
        check_split(c, dt, 33, 520, ms, true, GPU_LINEAR_BLASLT);
        for (int n = 1; n <= 8; n++) check_swiglu(c, dt, n, 1024, 700, n % 2 == 1, GPU_LINEAR_GEMV);
        check_swiglu(c, dt, 33, 520, 300, true, GPU_LINEAR_BLASLT);
        for (int n : {1, 3, 8}) check_f32out(c, dt, n, 1024, 1000);
        /* every one-row GEMV variant of the bench knob, on all three launchers */
        for (int v = 1; v <= 7; v++) {
            gpu_linear_gemv_tuning(v);
            check_one(c, dt, 1, 4096, 1000, true, GPU_LINEAR_GEMV);
            check_split(c, dt, 1, 1024, ms, true, GPU_LINEAR_GEMV);
            check_swiglu(c, dt, 1, 1024, 700, false, GPU_LINEAR_GEMV);
            check_f32out(c, dt, 1, 1024, 1000);
        }
        gpu_linear_gemv_tuning(0);
        /* programmatic dependent launch: the same results */
        gpu_linear_pdl(1);
        for (int n = 1; n <= 8; n += 3) check_one(c, dt, n, 4096, 1000, true, GPU_LINEAR_GEMV);
        check_split(c, dt, 1, 1024, ms, false, GPU_LINEAR_GEMV);
        check_swiglu(c, dt, 1, 1024, 700, true, GPU_LINEAR_GEMV);
        check_f32out(c, dt, 1, 1024, 1000);
        gpu_linear_pdl(0);
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
                /* the fused launchers on the same fused weights: QKV split 4096 + 1024 + 1024, gate|up SwiGLU */
                if (s.m == 6144 || s.m == 28672)
                    for (int n : {1, 4}) {
                        const int ms[3] = {4096, 1024, 1024};
                        void *outs[3] = {o, (char *)o + (size_t)8 * 4096 * 2, (char *)o + (size_t)8 * 5120 * 2};
                        double us = kt_time_us([&](int i) {
                            if (s.m == 6144)
                                KT_OK(gpu_linear_split(g_blas, dt, outs, ms, 3, x, ws[i % ns], nullptr, n, s.k,
                                                       GPU_LINEAR_GEMV, g_ws, g_ws_size, 0));
                            else
                                KT_OK(gpu_linear_swiglu(g_blas, dt, o, nullptr, x, ws[i % ns], nullptr, n, s.k, s.m / 2,
                                                        GPU_LINEAR_GEMV, g_ws, g_ws_size, 0));
                        });
                        char name[96];
                        snprintf(name, sizeof name, "%s %s n=%d k=%d m=%d", s.m == 6144 ? "gemv-split" : "gemv-swiglu",
                                 s.what, n, s.k, s.m);
                        const double out_elems = s.m == 6144 ? (double)n * s.m : (double)n * s.m / 2;
                        kt_report(c, name, dt, us, ((double)s.m * s.k + (double)n * s.k + out_elems) * 2, 0);
                    }
                for (auto w : ws) cudaFree(w);
                cudaFree(x); cudaFree(o);
            }
        /* one-row GEMV variants (BF16): each Llama-3-8B launcher as the decode step runs it, and the lm_head */
        {
            const gpu_dtype dt = GPU_BF16;
            struct { int k, m; const char *what; } vs[] = {
                {4096, 6144, "qkv-split"}, {4096, 4096, "o"}, {4096, 28672, "gate_up-swiglu"}, {14336, 4096, "down"},
                {4096, 128256, "lm_head-f32"}};
            for (auto &s : vs) {
                const size_t we = (size_t)s.k * s.m;
                const int ns = kt_nsets(we * 2);
                std::vector<void *> ws(ns);
                for (int i = 0; i < ns; i++) { ws[i] = kt_alloc(we * 2); kt_fill(dt, ws[i], we, c.seed + i, 0.05f); }
                void *x = kt_alloc((size_t)8 * s.k * 2), *o = kt_alloc((size_t)8 * s.m * 4);
                kt_fill(dt, x, (size_t)8 * s.k, c.seed + 77);
                const int ms[3] = {4096, 1024, 1024};
                void *outs[3] = {o, (char *)o + 4096 * 2, (char *)o + 5120 * 2};
                auto run = [&](int i) { /* the launcher the decode step uses for this matrix */
                    if (s.m == 6144)
                        KT_OK(gpu_linear_split(g_blas, dt, outs, ms, 3, x, ws[i % ns], nullptr, 1, s.k, GPU_LINEAR_GEMV,
                                           g_ws, g_ws_size, 0));
                    else if (s.m == 28672)
                        KT_OK(gpu_linear_swiglu(g_blas, dt, o, nullptr, x, ws[i % ns], nullptr, 1, s.k, s.m / 2,
                                            GPU_LINEAR_GEMV, g_ws, g_ws_size, 0));
                    else if (s.m == 128256)
                        KT_OK(gpu_linear_f32out(dt, (float *)o, x, ws[i % ns], 1, s.k, s.m, 0));
                    else
                        KT_OK(gpu_linear(g_blas, dt, o, x, ws[i % ns], nullptr, 1, s.k, s.m, GPU_LINEAR_GEMV, g_ws,
                                         g_ws_size, 0));
                };
                for (int v = 0; v <= 7; v++) {
                    gpu_linear_gemv_tuning(v);
                    double us = kt_time_us(run);
                    char name[96];
                    snprintf(name, sizeof name, "gemv-v%d %s n=1 k=%d m=%d", v, s.what, s.k, s.m);
                    kt_report(c, name, dt, us, ((double)s.m * s.k + (double)s.k + (double)s.m) * 2, 0);
                }
                gpu_linear_gemv_tuning(0);
                { /* the default with programmatic dependent launch (back-to-back launches overlap) */
                    gpu_linear_pdl(1);
                    double us = kt_time_us(run);
                    gpu_linear_pdl(0);
                    char name[96];
                    snprintf(name, sizeof name, "gemv-pdl %s n=1 k=%d m=%d", s.what, s.k, s.m);
                    kt_report(c, name, dt, us, ((double)s.m * s.k + (double)s.k + (double)s.m) * 2, 0);
                }
                if (s.m == 128256) { /* for scale: cuBLASLt on the same weight (dt output) */
                    double us = kt_time_us([&](int i) {
                        KT_OK(gpu_linear(g_blas, dt, o, x, ws[i % ns], nullptr, 1, s.k, s.m, GPU_LINEAR_BLASLT, g_ws,
                                         g_ws_size, 0));
                    });
                    kt_report(c, "blaslt lm_head n=1 k=4096 m=128256", dt, us, ((double)s.m * s.k + s.k + s.m) * 2, 0);
                }
                for (auto w : ws) cudaFree(w);
                cudaFree(x); cudaFree(o);
            }
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
