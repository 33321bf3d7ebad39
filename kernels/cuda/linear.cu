/* kernels/cuda/linear.cu: out[n, m] = x[n, k] @ w[m, k]^T (+ bias[m]), float32 accumulation.
 * Two paths, one launcher (gpu_linear):
 *   GEMV   1 <= n <= 8, k % 8 == 0, 16-byte aligned x and w: bandwidth-bound on w (m * k elements
 *          read once, streamed with 16-byte cache-streaming loads). One block of 4 warps per RPW rows
 *          of w (RPW = 2 for n <= 2 and n = 7, else 4: each x vector loaded from L1 serves RPW rows); the 4 warps
 *          split k, then reduce through shared memory. Compiled for n = 1..8 (NR template).
 *   BLASLT any shape: cuBLASLt, compute 32F, A = w (transposed), B = x, bias by the BIAS epilogue;
 *          the heuristic's first algorithm for the given workspace, cached per shape in the handle.
 * AUTO takes GEMV when it applies. Supports FP16/BF16 (x, w, bias, out of one dtype).
 * Bytes (GEMV floor): (m * k + n * k + n * m) * sizeof(T). FLOPs: 2 * n * k * m. */
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>
#include "common.cuh"

/* ---- GEMV ---------------------------------------------------------------------------------- */
#define GEMV_THREADS 128
#define GEMV_UNROLL 2

/* Where the GEMV writes: up to 3 parts of the weight's rows (a fused QKV weight), part i holding rows
 * [end[i-1], end[i]) into out[i] with row stride end[i] - end[i-1]. SWIGLU instead pairs row j of the
 * gate half with row f + j of the up half (w is [gate; up], 2f rows) in one block and writes
 * out[0][r * f + j] = silu(gate) * up. */
template <typename T>
struct gemv_out {
    T *p[3];
    int end[3];
    int n_parts;
};

/* A GEMV launched with the PDL attribute (default; CHASKI_PDL=0 turns it off) loads its first weights before gdc_wait
 * (common.cuh). */
template <typename OT> static __device__ __forceinline__ OT gemv_cast(float v) { return dt_traits<OT>::from_f(v); }
template <> __device__ __forceinline__ float gemv_cast<float>(float v) { return v; }

/* UNROLL: 16-byte loads per weight row in flight per thread; OT: the output type (T, or float for the
 * float32 logits of the lm_head). */
template <typename T, int NR, int RPW, bool SWIGLU, int UNROLL = GEMV_UNROLL, typename OT = T>
static __global__ void __launch_bounds__(GEMV_THREADS)
gemv_kernel(gemv_out<OT> o, const uint4 *x, const uint4 *w, const T *bias, int k8, int m) {
    /* SWIGLU: m = f; this block owns gate rows j0 .. j0 + RPW/2 - 1 and the same rows of up */
    constexpr int RB = SWIGLU ? RPW / 2 : RPW; /* output rows per block */
    const int j0 = blockIdx.x * RB;
    float acc[NR][RPW];
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int q = 0; q < RPW; q++) acc[r][q] = 0.0f;
    const uint4 *wrow[RPW];
#pragma unroll
    for (int q = 0; q < RPW; q++) {
        const int jj = j0 + q % RB < m ? j0 + q % RB : m - 1;
        wrow[q] = w + (size_t)(SWIGLU && q >= RB ? m + jj : jj) * k8;
    }

    GDC_LAUNCH_DEPENDENTS();
    bool waited = false;
    for (int c0 = threadIdx.x; c0 < k8; c0 += GEMV_THREADS * UNROLL) {
        uint4 wv[UNROLL][RPW];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * GEMV_THREADS;
#pragma unroll
            for (int q = 0; q < RPW; q++) wv[u][q] = c < k8 ? __ldcs(wrow[q] + c) : make_uint4(0, 0, 0, 0);
        }
        if (!waited) { /* the first weights are in flight: now wait for x */
            gdc_wait();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * GEMV_THREADS;
            if (c < k8) {
                float wf[RPW][8];
#pragma unroll
                for (int q = 0; q < RPW; q++) {
                    vec8<T> t;
                    t.u = wv[u][q];
                    t.to_float(wf[q]);
                }
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    vec8<T> xv;
                    xv.u = __ldg(x + (size_t)r * k8 + c);
                    float xf[8];
                    xv.to_float(xf);
#pragma unroll
                    for (int q = 0; q < RPW; q++)
#pragma unroll
                        for (int e = 0; e < 8; e++) acc[r][q] = fmaf(xf[e], wf[q][e], acc[r][q]);
                }
            }
        }
    }
    if (!waited) gdc_wait();
    __shared__ float red[GEMV_THREADS / 32][NR * RPW];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int q = 0; q < RPW; q++) {
            const float s = warp_sum(acc[r][q]);
            if (lane == 0) red[warp][r * RPW + q] = s;
        }
    __syncthreads();
    if (threadIdx.x < NR * RB) {
        const int r = threadIdx.x / RB, q = threadIdx.x % RB;
        const int j = j0 + q;
        if (j < m) {
            float s = 0.0f;
#pragma unroll
            for (int wi = 0; wi < GEMV_THREADS / 32; wi++) s += red[wi][r * RPW + q];
            if (SWIGLU) {
                float u = 0.0f;
#pragma unroll
                for (int wi = 0; wi < GEMV_THREADS / 32; wi++) u += red[wi][r * RPW + RB + q];
                if (bias) {
                    s += dt_traits<T>::to_f(bias[j]);
                    u += dt_traits<T>::to_f(bias[m + j]);
                }
                /* the unfused path rounds gate and up to T before SwiGLU: do the same */
                s = dt_traits<T>::to_f(dt_traits<T>::from_f(s));
                u = dt_traits<T>::to_f(dt_traits<T>::from_f(u));
                o.p[0][(size_t)r * m + j] = gemv_cast<OT>(s / (1.0f + __expf(-s)) * u);
            } else {
                if (bias) s += dt_traits<T>::to_f(bias[j]);
                const int part = j < o.end[0] ? 0 : j < o.end[1] ? 1 : 2;
                const int first = part == 0 ? 0 : o.end[part - 1];
                o.p[part][(size_t)r * (o.end[part] - first) + (j - first)] = gemv_cast<OT>(s);
            }
        }
    }
}

/* Bench knobs: the one-row GEMV's (rows per block, loads in flight) (gpu_linear_gemv_tuning, or
 * CHASKI_GEMV_VARIANT), and programmatic dependent launch (on unless gpu_linear_pdl(0) or CHASKI_PDL=0). */
static int g_gemv_variant = -1; /* -1: not set yet */
static int g_pdl = -1;
extern "C" void gpu_linear_gemv_tuning(int variant) { g_gemv_variant = variant < 0 || variant > 7 ? 0 : variant; }
extern "C" void gpu_linear_pdl(int on) { g_pdl = on ? 1 : 0; }
static int gemv_variant(void) {
    if (g_gemv_variant < 0) {
        const char *e = getenv("CHASKI_GEMV_VARIANT");
        gpu_linear_gemv_tuning(e ? atoi(e) : 0);
    }
    return g_gemv_variant;
}
static int pdl_on(void) {
    if (g_pdl < 0) {
        const char *e = getenv("CHASKI_PDL");
        g_pdl = e ? atoi(e) != 0 : 1;
    }
    return g_pdl;
}
int gpu_pdl_enabled(void) { return pdl_on(); }

template <typename... KArgs, typename... Args>
static cudaError_t gemv_start(void (*kernel)(KArgs...), int grid, cudaStream_t stream, Args... args) {
    return gpu_launch_pdl(kernel, dim3(grid), dim3(GEMV_THREADS), 0, stream, args...);
}

template <typename T, bool SWIGLU, typename OT>
static int gemv_launch(const gemv_out<OT> &o, const void *x, const void *w, const void *bias, int n, int k, int m,
                       cudaStream_t stream) {
    const int k8 = k / 8;
#define GEMV_GO(NR, RPW, UNR)                                                                             \
    GPU_CHECK(gemv_start(gemv_kernel<T, NR, RPW, SWIGLU, UNR, OT>,                                       \
                         (m + (SWIGLU ? RPW / 2 : RPW) - 1) / (SWIGLU ? RPW / 2 : RPW), stream, o,          \
                         (const uint4 *)x, (const uint4 *)w, (const T *)bias, k8, m))
#define GEMV_CASE(NR, RPW)                                                                                \
    case NR:                                                                                              \
        GEMV_GO(NR, RPW, GEMV_UNROLL);                                                                    \
        break
    if (n == 1) {
        /* one row (batch-1 decode): 8 rows per block with 2 loads each in flight measured fastest on the
           H200 for every Llama-3-8B matrix but the fused gate|up (docs/PERFORMANCE.md); 1..7 for benches */
        switch (gemv_variant()) {
        case 1: GEMV_GO(1, 2, 4); break;
        case 2: GEMV_GO(1, 2, 8); break;
        case 3: GEMV_GO(1, 4, 2); break;
        case 4: GEMV_GO(1, 4, 4); break;
        case 5: GEMV_GO(1, 8, 2); break;
        case 6: GEMV_GO(1, 2, 16); break;
        case 7: GEMV_GO(1, 2, 2); break;
        default:
            if (SWIGLU) GEMV_GO(1, 2, 2);
            else GEMV_GO(1, 8, 2);
        }
        GPU_CHECK_LAUNCH("gemv_kernel");
        return GPU_OK;
    }
    switch (n) {
        GEMV_CASE(2, 2);
        GEMV_CASE(3, 4);
        GEMV_CASE(4, 4);
        GEMV_CASE(5, 4);
        GEMV_CASE(6, 4);
        GEMV_CASE(7, 2); /* RPW 4 spills 16 bytes at NR 7 (bf16, nvcc 13.0) */
        GEMV_CASE(8, 4);
    default: return GPU_FAIL(GPU_UNSUPPORTED, "gemv: n=%d", n);
    }
#undef GEMV_CASE
#undef GEMV_GO
    GPU_CHECK_LAUNCH("gemv_kernel");
    return GPU_OK;
}

template <typename T>
static int gemv_plain(void *out, const void *x, const void *w, const void *bias, int n, int k, int m,
                      cudaStream_t stream) {
    gemv_out<T> o = {{(T *)out, NULL, NULL}, {m, m, m}, 1};
    return gemv_launch<T, false, T>(o, x, w, bias, n, k, m, stream);
}

/* ---- cuBLASLt ---------------------------------------------------------------------------- */
#define BLAS_CACHE 64
typedef struct blas_entry {
    int valid, dt, n, k, m, has_bias;
    uint32_t align; /* the smallest pointer alignment of A, B, C, bias (bytes, <= 256) */
    size_t ws;
    cublasLtMatmulAlgo_t algo;
} blas_entry;

struct gpu_blas {
    cublasLtHandle_t lt;
    blas_entry cache[BLAS_CACHE];
    int next;
};

extern "C" int gpu_blas_create(gpu_blas **out_blas) {
    *out_blas = NULL;
    gpu_blas *b = (gpu_blas *)calloc(1, sizeof *b);
    if (!b) return GPU_FAIL(GPU_ELAUNCH, "gpu_blas_create: out of host memory");
    cublasStatus_t st = cublasLtCreate(&b->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        free(b);
        return GPU_FAIL(GPU_EBLAS, "cublasLtCreate: status %d", (int)st);
    }
    *out_blas = b;
    return GPU_OK;
}

extern "C" void gpu_blas_destroy(gpu_blas *blas) {
    if (!blas) return;
    cublasLtDestroy(blas->lt);
    free(blas);
}

#define LT_CHECK(call)                                                                              \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
            rc = GPU_FAIL(GPU_EBLAS, "%s: status %d", #call, (int)s_);                              \
            goto done;                                                                              \
        }                                                                                           \
    } while (0)

static uint32_t ptr_align(const void *p) {
    uint32_t a = 256;
    while (a > 1 && ((uintptr_t)p & (a - 1))) a >>= 1;
    return a;
}

static int blaslt_linear(gpu_blas *b, gpu_dtype dt, void *out, const void *x, const void *w, const void *bias, int n,
                         int k, int m, void *workspace, size_t ws_size, cudaStream_t stream) {
    const cudaDataType_t ty = dt == GPU_F16 ? CUDA_R_16F : CUDA_R_16BF;
    int rc = GPU_OK;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    const float alpha = 1.0f, beta = 0.0f;
    blas_entry *hit = NULL;
    const uint32_t align = ptr_align(w) < ptr_align(x) ? (ptr_align(w) < ptr_align(out) ? ptr_align(w) : ptr_align(out))
                                                         : (ptr_align(x) < ptr_align(out) ? ptr_align(x) : ptr_align(out));
    /* column-major view: out^T [m, n] = w [k, m]^T * x^T [k, n] */
    LT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
    if (bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&la, ty, k, m, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lb, ty, k, n, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lc, ty, m, n, m));
    for (int i = 0; i < BLAS_CACHE; i++) {
        blas_entry *e = &b->cache[i];
        if (e->valid && e->dt == (int)dt && e->n == n && e->k == k && e->m == m && e->has_bias == (bias != NULL) &&
            e->ws == ws_size && e->align == align) {
            hit = e;
            break;
        }
    }
    if (!hit) {
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_size,
                                                      sizeof ws_size));
        /* split-K only with its partial sums in float (the compute type): the other schemes add the parts in the
         * output type, a second rounding to 16 bits (check_quant, bf16 n=17 k=1028 m=136 with a bias: one ulp
         * of the product off) */
        const uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red,
                                                      sizeof red));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, sizeof align));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, sizeof align));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof align));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof align));
        LT_CHECK(cublasLtMatmulAlgoGetHeuristic(b->lt, op, la, lb, lc, lc, pref, 1, &res, &found));
        if (found < 1) {
            rc = GPU_FAIL(GPU_EBLAS, "cuBLASLt: no algorithm for n=%d k=%d m=%d", n, k, m);
            goto done;
        }
        hit = &b->cache[b->next];
        b->next = (b->next + 1) % BLAS_CACHE;
        hit->valid = 1;
        hit->dt = (int)dt;
        hit->n = n;
        hit->k = k;
        hit->m = m;
        hit->has_bias = bias != NULL;
        hit->ws = ws_size;
        hit->align = align;
        hit->algo = res.algo;
    }
    LT_CHECK(cublasLtMatmul(b->lt, op, &alpha, w, la, x, lb, &beta, out, lc, out, lc, &hit->algo, workspace, ws_size,
                            stream));
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

extern "C" int gpu_linear(gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const void *w, const void *bias,
                          int n, int k, int m, int path, void *workspace, size_t workspace_size, cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "linear: dtype %d", (int)dt);
    if (n < 0 || k < 1 || m < 1) return GPU_FAIL(GPU_UNSUPPORTED, "linear: n=%d k=%d m=%d", n, k, m);
    if (n == 0) return GPU_OK;
    const bool gemv_ok = n <= 8 && k % 8 == 0 && gpu_aligned16(x) && gpu_aligned16(w);
    if (path == GPU_LINEAR_AUTO) path = gemv_ok ? GPU_LINEAR_GEMV : GPU_LINEAR_BLASLT;
    if (path == GPU_LINEAR_GEMV) {
        if (!gemv_ok) return GPU_FAIL(GPU_UNSUPPORTED, "linear gemv: n=%d k=%d (need n <= 8, k %% 8 == 0)", n, k);
        return dt == GPU_F16 ? gemv_plain<__half>(out, x, w, bias, n, k, m, stream)
                             : gemv_plain<__nv_bfloat16>(out, x, w, bias, n, k, m, stream);
    }
    if (path != GPU_LINEAR_BLASLT) return GPU_FAIL(GPU_UNSUPPORTED, "linear: path %d", path);
    if (!blas) return GPU_FAIL(GPU_UNSUPPORTED, "linear: cuBLASLt path needs a gpu_blas handle");
    return blaslt_linear(blas, dt, out, x, w, bias, n, k, m, workspace, workspace_size, stream);
}

template <typename T>
static int gemv_split(void *const *outs, const int *ms, int n_out, const void *x, const void *w, const void *bias,
                      int n, int k, int m, cudaStream_t stream) {
    gemv_out<T> o = {{NULL, NULL, NULL}, {0, 0, 0}, n_out};
    int end = 0;
    for (int i = 0; i < 3; i++) {
        end += i < n_out ? ms[i] : 0;
        o.p[i] = i < n_out ? (T *)outs[i] : NULL;
        o.end[i] = end;
    }
    return gemv_launch<T, false, T>(o, x, w, bias, n, k, m, stream);
}

extern "C" int gpu_linear_split(gpu_blas *blas, gpu_dtype dt, void *const *outs, const int *ms, int n_out,
                                const void *x, const void *w, const void *bias, int n, int k, int path,
                                void *workspace, size_t workspace_size, cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "linear split: dtype %d", (int)dt);
    if (n_out < 1 || n_out > 3 || n < 0 || k < 1) return GPU_FAIL(GPU_UNSUPPORTED, "linear split: %d parts", n_out);
    int m = 0;
    for (int i = 0; i < n_out; i++) {
        if (ms[i] < 1) return GPU_FAIL(GPU_UNSUPPORTED, "linear split: part %d has %d rows", i, ms[i]);
        m += ms[i];
    }
    if (n == 0) return GPU_OK;
    const size_t es = 2;
    const bool gemv_ok = n <= 8 && k % 8 == 0 && gpu_aligned16(x) && gpu_aligned16(w);
    if (path == GPU_LINEAR_AUTO) path = gemv_ok ? GPU_LINEAR_GEMV : GPU_LINEAR_BLASLT;
    if (path == GPU_LINEAR_GEMV) {
        if (!gemv_ok) return GPU_FAIL(GPU_UNSUPPORTED, "linear split gemv: n=%d k=%d (need n <= 8, k %% 8 == 0)", n, k);
        return dt == GPU_F16 ? gemv_split<__half>(outs, ms, n_out, x, w, bias, n, k, m, stream)
                             : gemv_split<__nv_bfloat16>(outs, ms, n_out, x, w, bias, n, k, m, stream);
    }
    /* many rows: one GEMM per part over its slice of the fused weight (same cost as unfused) */
    size_t row = 0;
    for (int i = 0; i < n_out; i++) {
        const int rc = gpu_linear(blas, dt, outs[i], x, (const char *)w + row * (size_t)k * es,
                                  bias ? (const char *)bias + row * es : NULL, n, k, ms[i], GPU_LINEAR_BLASLT,
                                  workspace, workspace_size, stream);
        if (rc != GPU_OK) return rc;
        row += (size_t)ms[i];
    }
    return GPU_OK;
}

extern "C" int gpu_linear_swiglu(gpu_blas *blas, gpu_dtype dt, void *out, void *scratch_up, const void *x,
                                 const void *w, const void *bias, int n, int k, int f, int path, void *workspace,
                                 size_t workspace_size, cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "linear swiglu: dtype %d", (int)dt);
    if (n < 0 || k < 1 || f < 1) return GPU_FAIL(GPU_UNSUPPORTED, "linear swiglu: n=%d k=%d f=%d", n, k, f);
    if (n == 0) return GPU_OK;
    const bool gemv_ok = n <= 8 && k % 8 == 0 && gpu_aligned16(x) && gpu_aligned16(w);
    if (path == GPU_LINEAR_AUTO) path = gemv_ok ? GPU_LINEAR_GEMV : GPU_LINEAR_BLASLT;
    if (path == GPU_LINEAR_GEMV) {
        if (!gemv_ok) return GPU_FAIL(GPU_UNSUPPORTED, "linear swiglu gemv: n=%d k=%d", n, k);
        if (dt == GPU_F16) {
            gemv_out<__half> o = {{(__half *)out, NULL, NULL}, {f, f, f}, 1};
            return gemv_launch<__half, true, __half>(o, x, w, bias, n, k, f, stream);
        }
        gemv_out<__nv_bfloat16> o = {{(__nv_bfloat16 *)out, NULL, NULL}, {f, f, f}, 1};
        return gemv_launch<__nv_bfloat16, true, __nv_bfloat16>(o, x, w, bias, n, k, f, stream);
    }
    if (!scratch_up) return GPU_FAIL(GPU_UNSUPPORTED, "linear swiglu: the GEMM path needs an [n, f] scratch");
    /* gate into out, up into the scratch, then SwiGLU in place */
    const size_t es = 2;
    int rc = gpu_linear(blas, dt, out, x, w, bias, n, k, f, GPU_LINEAR_BLASLT, workspace, workspace_size, stream);
    if (rc == GPU_OK)
        rc = gpu_linear(blas, dt, scratch_up, x, (const char *)w + (size_t)f * k * es,
                        bias ? (const char *)bias + (size_t)f * es : NULL, n, k, f, GPU_LINEAR_BLASLT, workspace,
                        workspace_size, stream);
    if (rc == GPU_OK) rc = gpu_swiglu(dt, out, out, scratch_up, n, f, f, stream);
    return rc;
}

extern "C" int gpu_linear_f32out(gpu_dtype dt, float *out, const void *x, const void *w, int n, int k, int m,
                                 cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "linear f32out: dtype %d", (int)dt);
    if (n < 1 || n > 8 || k % 8 || m < 1 || !gpu_aligned16(x) || !gpu_aligned16(w))
        return GPU_FAIL(GPU_UNSUPPORTED, "linear f32out: n=%d k=%d m=%d (need 1 <= n <= 8, k %% 8 == 0)", n, k, m);
    gemv_out<float> o = {{out, NULL, NULL}, {m, m, m}, 1};
    return dt == GPU_F16 ? gemv_launch<__half, false, float>(o, x, w, NULL, n, k, m, stream)
                         : gemv_launch<__nv_bfloat16, false, float>(o, x, w, NULL, n, k, m, stream);
}
