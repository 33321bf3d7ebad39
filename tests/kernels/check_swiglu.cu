/* tests/kernels/check_swiglu.cu: gpu_swiglu against cpu_swiglu: 16-byte path (separate and fused
 * [gate | up] buffers), scalar path (odd f); bench n = 1 and 4096 rows of f = 14336 (fused input).
 * Bytes: 3 * n * f * sizeof(T). */
#include "kt.h"

static void check_one(kt_ctx &c, gpu_dtype dt, int n, int f, bool fused) {
    char name[96];
    snprintf(name, sizeof name, "%s n=%d f=%d%s", f % 8 ? "scalar" : "vec16", n, f, fused ? " fused" : "");
    const int stride = fused ? 2 * f : f;
    std::vector<float> in = kt_rand_vec(c, (size_t)n * stride * (fused ? 1 : 2), -4, 4);
    kt_round(dt, in);
    void *din = kt_upload(dt, in);
    const char *gate = (const char *)din;
    const char *up = fused ? gate + (size_t)f * 2 : gate + (size_t)n * f * 2;
    void *dout = kt_alloc((size_t)n * f * 2);
    kt_poison(dout, (size_t)n * f * 2);
    KT_OK(gpu_swiglu(dt, dout, gate, up, n, f, stride, 0));
    std::vector<float> g((size_t)n * f), u((size_t)n * f), ref((size_t)n * f);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < f; j++) {
            g[(size_t)r * f + j] = fused ? in[(size_t)r * stride + j] : in[(size_t)r * f + j];
            u[(size_t)r * f + j] = fused ? in[(size_t)r * stride + f + j] : in[(size_t)n * f + (size_t)r * f + j];
        }
    cpu_swiglu(ref.data(), g.data(), u.data(), n, f);
    std::vector<float> got = kt_download(dt, dout, (size_t)n * f);
    kt_compare(c, name, dt, got.data(), ref.data(), ref.size(), 1e-3, dt == GPU_F16 ? 2e-3 : 1e-2);
    cudaFree(din); cudaFree(dout);
}

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "swiglu", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    for (gpu_dtype dt : dts) {
        check_one(c, dt, 5, 14336, false);
        check_one(c, dt, 3, 4864, true);
        check_one(c, dt, 4, 77, false);
        check_one(c, dt, 2, 77, true);
    }
    if (!c.check_only) {
        for (gpu_dtype dt : dts)
            for (int n : {1, 4096}) {
                const int f = 14336;
                const size_t e = (size_t)n * f;
                const int ns = kt_nsets(e * 2 * 3);
                std::vector<void *> ins(ns), outs(ns);
                for (int i = 0; i < ns; i++) {
                    ins[i] = kt_alloc(e * 4); outs[i] = kt_alloc(e * 2);
                    kt_fill(dt, ins[i], e * 2, c.seed + i, 4.0f);
                }
                double us = kt_time_us([&](int i) {
                    const char *g = (const char *)ins[i % ns];
                    KT_OK(gpu_swiglu(dt, outs[i % ns], g, g + (size_t)f * 2, n, f, 2 * f, 0));
                });
                char name[64];
                snprintf(name, sizeof name, "fused n=%d f=%d", n, f);
                kt_report(c, name, dt, us, 3.0 * e * 2, 0);
                for (int i = 0; i < ns; i++) { cudaFree(ins[i]); cudaFree(outs[i]); }
            }
    }
    return kt_finish(c);
}
