/* tests/kernels/check_embed.cu: gpu_embed against cpu_embed, both configurations (16-byte, scalar);
 * bench: gather of 2048 rows of 4096 from a 32000-row table. Bytes: 2 * n * d * sizeof(T). */
#include "kt.h"

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "embed", argc, argv);
    const gpu_dtype dts[2] = {GPU_F16, GPU_BF16};
    struct { int n, d, vocab; const char *name; } cfg[] = {
        {37, 4096, 1000, "vec16 n=37 d=4096"}, {19, 100, 513, "scalar n=19 d=100"}, {5, 8, 7, "vec16 n=5 d=8"}};
    for (gpu_dtype dt : dts)
        for (auto &k : cfg) {
            std::vector<float> table = kt_rand_vec(c, (size_t)k.vocab * k.d);
            kt_round(dt, table);
            std::vector<int32_t> ids(k.n);
            for (auto &i : ids) i = kt_irand(c, k.vocab);
            void *dtab = kt_upload(dt, table);
            int32_t *dids = kt_upload_raw(ids);
            void *dout = kt_alloc((size_t)k.n * k.d * 2);
            kt_poison(dout, (size_t)k.n * k.d * 2);
            KT_OK(gpu_embed(dt, dout, dtab, dids, k.n, k.d, k.vocab, 0));
            std::vector<float> got = kt_download(dt, dout, (size_t)k.n * k.d), ref((size_t)k.n * k.d);
            if (cpu_embed(ref.data(), table.data(), ids.data(), k.n, k.d, k.vocab)) kt_fail(c, k.name, "cpu ref");
            else kt_compare(c, k.name, dt, got.data(), ref.data(), ref.size(), 0, 0);
            cudaFree(dtab); cudaFree(dids); cudaFree(dout);
        }
    if (!c.check_only) {
        for (gpu_dtype dt : dts) {
            const int n = 2048, d = 4096, vocab = 32000;
            void *tab = kt_alloc((size_t)vocab * d * 2);
            kt_fill(dt, tab, (size_t)vocab * d, c.seed);
            const size_t obytes = (size_t)n * d * 2;
            const int ns = kt_nsets(obytes);
            std::vector<void *> outs(ns);
            std::vector<int32_t> ids((size_t)n * ns);
            for (auto &i : ids) i = kt_irand(c, vocab);
            int32_t *dids = kt_upload_raw(ids);
            for (auto &o : outs) o = kt_alloc(obytes);
            double us = kt_time_us([&](int i) {
                KT_OK(gpu_embed(dt, outs[i % ns], tab, dids + (size_t)(i % ns) * n, n, d, vocab, 0));
            });
            kt_report(c, "n=2048 d=4096", dt, us, 2.0 * n * d * 2 + n * 4.0, 0);
            for (auto o : outs) cudaFree(o);
            cudaFree(tab); cudaFree(dids);
        }
    }
    return kt_finish(c);
}
