/* tests/kernels/kt.h: the shared harness of the kernel checks and benches (CUDA C++, test code only).
 * Each check_<family>.cu: fresh random inputs (seed from argv or the clock, printed), outputs poisoned
 * with NaN before every launch, every configuration compared with the CPU reference (kernels/cpu/ops.h)
 * by |out - ref| <= atol + rtol * |ref|, then timed with CUDA events (warm-up, median of many runs,
 * buffers rotated over several times the L2 size) and reported against measured ceilings.
 * Flags: --check-only, --json PATH, --seed N, --bw GBPS, --tflops T (ceilings; measured when absent), --only SHAPE,
 * --format FMT, --rows N, --cols M.
 * Exit: 0 all passed, 1 a check failed, 77 no CUDA device (ctest reports "skipped"). */
#ifndef CK_TESTS_KERNELS_KT_H
#define CK_TESTS_KERNELS_KT_H

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <algorithm>
#include <string>
#include <vector>

extern "C" {
#include "cpu/ops.h"
}
#include "cuda_ops.h"

#define KT_CK(call)                                                                                        \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        if (e_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));         \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)
/* a launcher's status; a launch that should have worked but did not is a failure */
#define KT_OK(call)                                                                                        \
    do {                                                                                                   \
        int rc_ = (call);                                                                                  \
        if (rc_ != 0) {                                                                                    \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, rc_, gpu_last_error()); \
            exit(1);                                                                                       \
        }                                                                                                  \
        KT_CK(cudaGetLastError());                                                                         \
    } while (0)

struct kt_result {
    std::string family, config, dtype, metric; /* metric: "GB/s" or "TFLOP/s" */
    int checked = 0, passed = 0;
    double max_err = 0, time_us = 0, bytes = 0, flops = 0, rate = 0, frac = 0;
};

struct kt_ctx {
    const char *family = "";
    uint64_t seed = 0;
    bool check_only = false;
    bool bench_only = false; /* families that honour it skip their checks */
    const char *json = nullptr;
    double bw = 0, tflops = 0; /* ceilings, GB/s and TFLOP/s */
    const char *only = nullptr;  /* --only: benches of that shape alone (where a family names shapes; profiling) */
    const char *format = nullptr; /* --format: benches of that weight format alone (where a family names formats) */
    int rows = 0; /* --rows N: decode benches of N rows alone (where a family sweeps rows; 0: all) */
    int cols = 0; /* --cols M: the output width of a bench that takes one (0: its shape's) */
    int failures = 0;
    std::vector<kt_result> results;
    uint64_t rng = 0;
};

static inline void kt_require_gpu(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        printf("no CUDA device (%s): skipped\n", e != cudaSuccess ? cudaGetErrorString(e) : "count 0");
        exit(77);
    }
}

static inline void kt_init(kt_ctx &c, const char *family, int argc, char **argv) {
    c.family = family;
    c.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check-only")) c.check_only = true;
        else if (!strcmp(argv[i], "--bench-only")) c.bench_only = true;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) c.json = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) c.seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--bw") && i + 1 < argc) c.bw = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tflops") && i + 1 < argc) c.tflops = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) c.only = argv[++i];
        else if (!strcmp(argv[i], "--format") && i + 1 < argc) c.format = argv[++i];
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) c.rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) c.cols = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--check-only] [--bench-only] [--json PATH] [--seed N] [--bw GBPS] [--tflops T] "
                            "[--only SHAPE] [--format FMT] [--rows N] [--cols M]\n", argv[0]);
            exit(2);
        }
    }
    kt_require_gpu();
    c.rng = c.seed * 0x9E3779B97F4A7C15ull + 1;
    cudaDeviceProp p;
    KT_CK(cudaGetDeviceProperties(&p, 0));
    printf("%s: device %s (sm_%d%d, %d SMs, L2 %d MB), seed %llu\n", family, p.name, p.major, p.minor,
           p.multiProcessorCount, p.l2CacheSize >> 20, (unsigned long long)c.seed);
}

/* ---- host random data ---- */
static inline uint64_t kt_next(kt_ctx &c) {
    c.rng ^= c.rng << 13;
    c.rng ^= c.rng >> 7;
    c.rng ^= c.rng << 17;
    return c.rng;
}
static inline float kt_unif(kt_ctx &c, float lo, float hi) {
    return lo + (hi - lo) * (float)((kt_next(c) >> 40) * (1.0 / 16777216.0));
}
static inline int kt_irand(kt_ctx &c, int n) { return (int)(kt_next(c) % (uint64_t)n); }
static inline std::vector<float> kt_rand_vec(kt_ctx &c, size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = kt_unif(c, lo, hi);
    return v;
}
/* A random permutation of [0, n) (Fisher-Yates on the context's generator). */
static inline std::vector<int32_t> kt_perm(kt_ctx &c, int n) {
    std::vector<int32_t> p(n);
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) std::swap(p[i], p[kt_irand(c, i + 1)]);
    return p;
}

/* A paged batch of three sequences (5, 1 and 23 new tokens after 0, 40 and 70 cached ones) over a shuffled page
 * table of 3 x max_pages pages: seq_start, the positions, the table (the KV-write and RoPE + KV-write checks). */
struct kt_paged_batch {
    int n_seqs = 3, n = 0;
    std::vector<int32_t> seq_start, pos, pt;
};
static inline kt_paged_batch kt_three_seqs(kt_ctx &c, int max_pages) {
    kt_paged_batch b;
    const int lens[3] = {5, 1, 23}, ctx0[3] = {0, 40, 70};
    b.seq_start.assign(b.n_seqs + 1, 0);
    for (int s = 0; s < b.n_seqs; s++) {
        b.seq_start[s + 1] = b.seq_start[s] + lens[s];
        for (int i = 0; i < lens[s]; i++) b.pos.push_back(ctx0[s] + i);
    }
    b.n = b.seq_start[b.n_seqs];
    b.pt = kt_perm(c, b.n_seqs * max_pages);
    return b;
}

/* ---- dtype conversion: rounding the host copy makes the reference see exactly the device input ---- */
static inline const char *kt_dtname(gpu_dtype dt) { return dt == GPU_F16 ? "f16" : "bf16"; }
static inline void kt_round(gpu_dtype dt, std::vector<float> &v) {
    for (auto &x : v) x = dt == GPU_F16 ? __half2float(__float2half(x)) : __bfloat162float(__float2bfloat16(x));
}
static inline void *kt_upload(gpu_dtype dt, const std::vector<float> &v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        if (dt == GPU_F16) { __half t = __float2half(v[i]); memcpy(&h[i], &t, 2); }
        else { __nv_bfloat16 t = __float2bfloat16(v[i]); memcpy(&h[i], &t, 2); }
    }
    void *d = nullptr;
    KT_CK(cudaMalloc(&d, std::max<size_t>(16, h.size() * 2)));
    KT_CK(cudaMemcpy(d, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    return d;
}
template <typename X> static inline X *kt_upload_raw(const std::vector<X> &v) {
    void *d = nullptr;
    KT_CK(cudaMalloc(&d, std::max<size_t>(16, v.size() * sizeof(X))));
    if (!v.empty()) KT_CK(cudaMemcpy(d, v.data(), v.size() * sizeof(X), cudaMemcpyHostToDevice));
    return (X *)d;
}
static inline std::vector<float> kt_download(gpu_dtype dt, const void *d, size_t n) {
    std::vector<uint16_t> h(n);
    KT_CK(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        if (dt == GPU_F16) { __half t; memcpy(&t, &h[i], 2); v[i] = __half2float(t); }
        else { __nv_bfloat16 t; memcpy(&t, &h[i], 2); v[i] = __bfloat162float(t); }
    }
    return v;
}
static inline void *kt_alloc(size_t bytes) {
    void *d = nullptr;
    KT_CK(cudaMalloc(&d, std::max<size_t>(16, bytes)));
    return d;
}
/* 0xFF bytes: NaN in f16, bf16 and f32; -1 in int32 */
static inline void kt_poison(void *d, size_t bytes) { KT_CK(cudaMemset(d, 0xFF, bytes)); }

/* ---- device random fill for the big bench buffers (values in [-1, 1), never zeros) ---- */
template <typename T> static __global__ void kt_fill_kernel(T *p, size_t n, uint64_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u = ((float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
        p[i] = (T)u;
    }
}
static inline void kt_fill(gpu_dtype dt, void *d, size_t n, uint64_t seed, float scale = 1.0f) {
    if (dt == GPU_F16) kt_fill_kernel<__half><<<1024, 256>>>((__half *)d, n, seed, scale);
    else kt_fill_kernel<__nv_bfloat16><<<1024, 256>>>((__nv_bfloat16 *)d, n, seed, scale);
    KT_CK(cudaGetLastError());
}
static inline void kt_fill_f32(float *d, size_t n, uint64_t seed, float scale = 1.0f) {
    kt_fill_kernel<float><<<1024, 256>>>(d, n, seed, scale);
    KT_CK(cudaGetLastError());
}

/* ---- compare ---- */
static inline bool kt_compare(kt_ctx &c, const std::string &config, gpu_dtype dt, const float *got, const float *ref,
                              size_t n, double atol, double rtol) {
    size_t bad = 0;
    double max_err = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)ref[i]);
        const bool ok = got[i] == got[i] && e <= atol + rtol * fabs((double)ref[i]);
        if (got[i] == got[i] && e > max_err) max_err = e;
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  %s %s: [%zu] got %.6g ref %.6g\n", config.c_str(), kt_dtname(dt), i, got[i], ref[i]);
            bad++;
        }
    }
    kt_result r;
    r.family = c.family;
    r.config = config;
    r.dtype = kt_dtname(dt);
    r.checked = 1;
    r.passed = bad == 0;
    r.max_err = max_err;
    c.results.push_back(r);
    printf("  check %-44s %-4s %s (max err %.3g over %zu, %zu bad)\n", config.c_str(), kt_dtname(dt),
           bad ? "FAIL" : "ok", max_err, n, bad);
    if (bad) c.failures++;
    return bad == 0;
}
/* Half a unit in the last place of |v| in dt (the most one round-to-nearest moves v). */
static inline double kt_half_ulp(gpu_dtype dt, double v) {
    v = fabs(v);
    if (v < 1e-30) return 0.0;
    int e;
    frexp(v, &e); /* v = f * 2^e, f in [0.5, 1) */
    return ldexp(1.0, e - 1 - (dt == GPU_F16 ? 11 : 8));
}

/* As kt_compare, plus an extra per-element allowance extra[i] (a rounding that the reference does not
 * model, derived by the caller from the dtype; see check_linear.cu). */
static inline bool kt_compare_extra(kt_ctx &c, const std::string &config, gpu_dtype dt, const float *got,
                                    const float *ref, const double *extra, size_t n, double atol, double rtol) {
    size_t bad = 0;
    double max_err = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)ref[i]);
        const bool ok = got[i] == got[i] && e <= atol + rtol * fabs((double)ref[i]) + extra[i];
        if (got[i] == got[i] && e > max_err) max_err = e;
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  %s %s: [%zu] got %.6g ref %.6g (allowed %.3g)\n", config.c_str(), kt_dtname(dt), i,
                        got[i], ref[i], atol + rtol * fabs((double)ref[i]) + extra[i]);
            bad++;
        }
    }
    kt_result r;
    r.family = c.family;
    r.config = config;
    r.dtype = kt_dtname(dt);
    r.checked = 1;
    r.passed = bad == 0;
    r.max_err = max_err;
    c.results.push_back(r);
    printf("  check %-44s %-4s %s (max err %.3g over %zu, %zu bad)\n", config.c_str(), kt_dtname(dt),
           bad ? "FAIL" : "ok", max_err, n, bad);
    if (bad) c.failures++;
    return bad == 0;
}
/* A check that is a condition, not a comparison of values: `what` names what had to hold (or why it failed). */
static inline void kt_expect(kt_ctx &c, const std::string &config, bool ok, const char *what) {
    kt_result r;
    r.family = c.family;
    r.config = config;
    r.checked = 1;
    r.passed = ok;
    c.results.push_back(r);
    if (!ok) c.failures++;
    printf("  check %-44s %s (%s)\n", config.c_str(), ok ? "ok" : "FAIL", what);
}
static inline void kt_fail(kt_ctx &c, const std::string &config, const char *why) { kt_expect(c, config, false, why); }
/* The _x kernels' copies in a permuted order (gpu_rmsnorm_x, gpu_attention_x, gpu_qlinear_swiglu_x): xp[r, pos[j]]
 * equals out[r, j] bit for bit for every row r < rows of width pos.size(). */
static inline void kt_expect_scattered(kt_ctx &c, const std::string &config, const std::vector<float> &out,
                                       const std::vector<float> &xp, const std::vector<int32_t> &pos, int rows) {
    const size_t d = pos.size();
    size_t bad = 0;
    for (int r = 0; r < rows; r++)
        for (size_t j = 0; j < d; j++)
            if (memcmp(&xp[r * d + (size_t)pos[j]], &out[r * d + j], sizeof(float)) != 0) bad++;
    char what[96];
    snprintf(what, sizeof what, "copy in the permuted order: %zu of %zu values differ", bad, (size_t)rows * d);
    kt_expect(c, config + " scattered copy", bad == 0, what);
}

/* ---- timing: fn(i) launches one run on stream 0 using buffer set i % nsets ---- */
template <typename F> static inline double kt_time_us(F fn, int warmup = 5, int reps = 50) {
    for (int i = 0; i < warmup; i++) fn(i);
    KT_CK(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    KT_CK(cudaEventCreate(&a));
    KT_CK(cudaEventCreate(&b));
    std::vector<float> ms(reps);
    for (int i = 0; i < reps; i++) {
        KT_CK(cudaEventRecord(a));
        fn(warmup + i);
        KT_CK(cudaEventRecord(b));
        KT_CK(cudaEventSynchronize(b));
        KT_CK(cudaEventElapsedTime(&ms[i], a, b));
    }
    KT_CK(cudaGetLastError());
    KT_CK(cudaEventDestroy(a));
    KT_CK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[reps / 2] * 1000.0;
}
/* how many buffer sets of `bytes` each make at least 4 x L2 (at most 64) */
static inline int kt_nsets(size_t bytes) {
    int l2 = 0;
    KT_CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    size_t want = (size_t)l2 * 4;
    size_t n = (want + bytes - 1) / std::max<size_t>(bytes, 1);
    return (int)std::min<size_t>(64, std::max<size_t>(1, n));
}

/* ---- ceilings ---- */
static inline double kt_measure_bw(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a = kt_alloc(bytes), *b = kt_alloc(bytes);
    kt_fill(GPU_BF16, a, bytes / 2, 7);
    double us = kt_time_us([&](int) { KT_CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0)); }, 3, 20);
    KT_CK(cudaFree(a));
    KT_CK(cudaFree(b));
    return 2.0 * bytes / (us * 1e-6) / 1e9; /* read + write */
}
static inline double kt_measure_tflops(void) {
    const int N = 8192;
    const size_t elems = (size_t)N * N;
    void *x = kt_alloc(elems * 2), *w = kt_alloc(elems * 2), *o = kt_alloc(elems * 2);
    const size_t ws_size = 32u << 20;
    void *ws = kt_alloc(ws_size);
    kt_fill(GPU_BF16, x, elems, 11);
    kt_fill(GPU_BF16, w, elems, 12);
    gpu_blas *blas = nullptr;
    KT_OK(gpu_blas_create(&blas));
    double us = kt_time_us([&](int) {
        KT_OK(gpu_linear(blas, GPU_BF16, o, x, w, nullptr, N, N, N, GPU_LINEAR_BLASLT, ws, ws_size, 0));
    }, 3, 20);
    gpu_blas_destroy(blas);
    KT_CK(cudaFree(x));
    KT_CK(cudaFree(w));
    KT_CK(cudaFree(o));
    KT_CK(cudaFree(ws));
    return 2.0 * N * N * (double)N / (us * 1e-6) / 1e12;
}
static inline void kt_need_bw(kt_ctx &c) {
    if (c.bw <= 0) c.bw = kt_measure_bw();
}
static inline void kt_need_tflops(kt_ctx &c) {
    if (c.tflops <= 0) c.tflops = kt_measure_tflops();
}

/* record a timing: bytes moved (floor count) or FLOPs done, per run */
static inline void kt_report(kt_ctx &c, const std::string &config, gpu_dtype dt, double us, double bytes, double flops) {
    kt_result r;
    r.family = c.family;
    r.config = config;
    r.dtype = kt_dtname(dt);
    r.time_us = us;
    r.bytes = bytes;
    r.flops = flops;
    if (flops > 0) {
        kt_need_tflops(c);
        r.metric = "TFLOP/s";
        r.rate = flops / (us * 1e-6) / 1e12;
        r.frac = r.rate / c.tflops;
    } else {
        kt_need_bw(c);
        r.metric = "GB/s";
        r.rate = bytes / (us * 1e-6) / 1e9;
        r.frac = r.rate / c.bw;
    }
    c.results.push_back(r);
    printf("  bench %-44s %-4s %10.2f us %9.1f %-7s %5.1f%% of %s\n", config.c_str(), kt_dtname(dt), us, r.rate,
           r.metric.c_str(), 100 * r.frac, flops > 0 ? "matrix rate" : "copy bw");
}

static inline int kt_finish(kt_ctx &c) {
    if (c.json) {
        FILE *f = fopen(c.json, "w");
        if (!f) {
            perror(c.json);
            return 1;
        }
        fprintf(f, "{\"family\": \"%s\", \"seed\": %llu, \"ceil_bw_gbps\": %.1f, \"ceil_tflops\": %.1f, \"failures\": %d, "
                   "\"results\": [\n", c.family, (unsigned long long)c.seed, c.bw, c.tflops, c.failures);
        for (size_t i = 0; i < c.results.size(); i++) {
            const kt_result &r = c.results[i];
            fprintf(f, "  {\"config\": \"%s\", \"dtype\": \"%s\", ", r.config.c_str(), r.dtype.c_str());
            if (r.checked) fprintf(f, "\"check\": \"%s\", \"max_err\": %.4g}", r.passed ? "ok" : "FAIL", r.max_err);
            else
                fprintf(f, "\"time_us\": %.3f, \"bytes\": %.0f, \"flops\": %.0f, \"rate\": %.2f, \"unit\": \"%s\", "
                           "\"fraction\": %.4f}", r.time_us, r.bytes, r.flops, r.rate, r.metric.c_str(), r.frac);
            fprintf(f, "%s\n", i + 1 < c.results.size() ? "," : "");
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    printf("%s: %d check failure(s)\n", c.family, c.failures);
    return c.failures ? 1 : 0;
}

#endif
