/* kernels/cuda/common.cuh: internal helpers shared by the kernel files (not installed, not C).
 * dtype traits (FP16/BF16 <-> float, 16-byte vectors), the error-to-status boundary, and the
 * dispatch macro that instantiates each kernel for the two dtypes. */
#ifndef CK_KERNELS_CUDA_COMMON_CUH
#define CK_KERNELS_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include "cuda_ops.h"

/* Kernel timeline trace (CHASKI_KTRACE=1 at compile time, a diagnostic build only; ktrace.cu): every decode kernel
 * starts with GDC_LAUNCH_DEPENDENTS(), which in such a build also records, from thread 0 of each block, the
 * %globaltimer at the block's start, at its first gdc_wait's return and at thread 0's exit, with the grid size, block
 * and SM, into a ring in device memory that gpu_ktrace_dump writes out. A point inside the kernel (gdc_wait, kt_mark)
 * costs thread 0 no wait on memory: its time goes by one red.min (no result, so no scoreboard to wait on; first
 * passage kept as the smallest) into a scratch line fixed by the block's SM and warp slot, addressed from kt_g in
 * constant memory and two special registers; the exit stores its time alone. The next block on the same slot copies
 * the line into its predecessor's ring record in its own start (before its wait, time it spends idle), and
 * gpu_ktrace_dump does it for each slot's last block. Before session 40 each point loaded the record's index and
 * its first-passage word first: two or three dependent L2 round trips in thread 0's path after every point, which
 * the next point's time then counted (the thirty-ninth run's caveat; the fortieth run measured the difference). In
 * other builds it is gdc_launch_dependents() alone. Why: Nsight Systems does not run on the GPU machine and Nsight
 * Compute serializes the launches, so neither shows where a graph-replayed decode step spends its time between and
 * within the overlapped launches. */
#ifndef CHASKI_KTRACE
#define CHASKI_KTRACE 0
#endif
#if CHASKI_KTRACE
struct kt_rec {
    unsigned long long t0, tw, t1; /* ns: block start, first gdc_wait's return (0: none), thread 0's exit */
    unsigned long long tm[6];      /* kt_mark(0) .. kt_mark(5): the first of each (0: none) */
    unsigned grid, block, smid, pad;
};
/* KT_MARKS: kt_mark's points (0 .. KT_MARKS - 1); a slot's line holds the wait's time and theirs */
enum { KT_SM_SLOTS = 256, KT_WARP_SLOTS = 64, KT_SLOTS = KT_SM_SLOTS * KT_WARP_SLOTS, KT_MARKS = 6 };
static_assert(sizeof(kt_rec::tm) / sizeof(kt_rec::tm[0]) == KT_MARKS && 1 + KT_MARKS <= 8,
              "a record's marks and a slot's 8-word line");
#define KT_UNSET (~0ull) /* a stamp not passed */
struct kt_state {
    unsigned n, mask;     /* records written so far; ring size - 1 (a power of two) */
    unsigned cur[KT_SLOTS]; /* 1 + the ring index of the block whose thread 0 is on (SM, warp slot); 0: none yet */
    /* that block's times: [0] its first gdc_wait's return, [1 + i] its kt_mark(i) (KT_UNSET: not passed); a 64-byte
     * line each */
    unsigned long long stamp[KT_SLOTS][8];
    kt_rec rec[1]; /* [mask + 1] */
};
/* a slot's stamps into the ring record of the block they are from (KT_UNSET: 0) */
static __host__ __device__ inline void kt_stamps_to(kt_rec &r, const unsigned long long *st) {
    r.tw = st[0] == KT_UNSET ? 0 : st[0];
    for (int i = 0; i < KT_MARKS; i++)
        r.tm[i] = st[1 + i] == KT_UNSET ? 0 : st[1 + i];
}
/* each translation unit's own pointer (no separate compilation), set by gpu_ktrace_init through kt_register; in
 * constant memory, which the SM caches and no memory barrier or gdc_wait invalidates */
static __constant__ kt_state *kt_g;
void kt_register(cudaError_t (*bind)(kt_state *));
static cudaError_t kt_bind_tu(kt_state *s) { return cudaMemcpyToSymbol(kt_g, &s, sizeof s); }
static const int kt_registered_tu = (kt_register(kt_bind_tu), 0);
static __device__ __forceinline__ unsigned long long kt_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
static __device__ __forceinline__ unsigned kt_slot() {
    unsigned sm, w;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    asm volatile("mov.u32 %0, %%warpid;" : "=r"(w));
    return (sm % KT_SM_SLOTS) * KT_WARP_SLOTS + w % KT_WARP_SLOTS;
}
static __device__ __forceinline__ bool kt_thread0() { return (threadIdx.x | threadIdx.y | threadIdx.z) == 0; }
struct kt_block { /* one block's record: opened by the constructor, closed by the destructor (any return) */
    unsigned idx;
    __device__ kt_block() : idx(~0u) {
        if (!kt_thread0())
            return;
        const unsigned long long t = kt_now(); /* before the loads and the atomic below, which it would count */
        kt_state *s = kt_g;
        if (!s)
            return;
        idx = atomicAdd(&s->n, 1u) & s->mask;
        kt_rec &r = s->rec[idx];
        r.t0 = t;
        r.t1 = 0;
        r.grid = gridDim.x * gridDim.y * gridDim.z;
        r.block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
        const unsigned slot = kt_slot();
        r.smid = slot / KT_WARP_SLOTS;
        r.tw = 0; /* the next block on this slot (or gpu_ktrace_dump) sets them */
        for (unsigned long long &m : r.tm)
            m = 0;
        unsigned long long *st = s->stamp[slot];
        if (const unsigned prev = __ldcg(&s->cur[slot])) { /* the slot's previous block: its times to its record */
            unsigned long long v[1 + KT_MARKS];
            for (int i = 0; i < 1 + KT_MARKS; i++)
                v[i] = __ldcg(st + i); /* from L2, where the red.min went */
            kt_stamps_to(s->rec[prev - 1], v);
        }
        for (int i = 0; i < 8; i++)
            st[i] = KT_UNSET;
        s->cur[slot] = idx + 1;
    }
    __device__ ~kt_block() {
        if (idx == ~0u)
            return;
        const unsigned long long t = kt_now();
        kt_g->rec[idx].t1 = t;
    }
};
#endif

/* Programmatic dependent launch (sm_90; no-ops elsewhere). gdc_launch_dependents: this grid lets a
 * kernel launched after it with the PDL attribute start its blocks now: they read what no kernel of the
 * step writes (weights; the step's metadata, positions, page tables and rope frequencies, which the
 * backend copies before the step's first kernel; KV-cache rows of earlier positions), then gdc_wait for
 * this grid's completion and memory before they read activations or write anything. A grid may complete
 * only after the one before it: a block that exits before gdc_wait is fine only while some other block
 * of its grid waits. Every kernel of the decode step calls gdc_launch_dependents first. */
#if CHASKI_KTRACE
/* thread 0's first passage of a traced point: the smallest of its times into its slot's stamp[1 + i] (i < 0: [0],
 * gdc_wait's return), by red.min: no result, nothing for the thread to wait on */
static __device__ __forceinline__ void kt_stamp(int i) {
    if (!kt_thread0())
        return;
    const unsigned long long t = kt_now();
    if (kt_state *s = kt_g)
        asm volatile("red.relaxed.gpu.global.min.u64 [%0], %1;" ::"l"(&s->stamp[kt_slot()][i < 0 ? 0 : 1 + i]),
                     "l"(t)
                     : "memory");
}
#endif
static __device__ __forceinline__ void gdc_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
#if CHASKI_KTRACE
    kt_stamp(-1);
#endif
}
/* 16 bytes global -> shared without registers (sm_80+); cp_async_wait_all waits for this thread's copies. */
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"((uint32_t)__cvta_generic_to_shared(smem)),
                 "l"(gmem)
                 : "memory");
}
static __device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
/* QV_XPF (default 1; 0 at compile time for A/B benches): the quantized decode kernels touch the first activation
 * addresses (and the norm's residual and row sums) they will read after gdc_wait with prefetch.global.L2 before it.
 * The value is not read, so a line the previous grid is still writing is no hazard (L2 is the point of coherence);
 * what the touch can leave ready is the address translation and the line's place in L2. Why: the trace showed each
 * block 0.9-1.3 us from its wait's return to its own slice copies landed (docs/PERFORMANCE.md, fortieth run), many
 * times an unloaded L2 hit. Measured (H200, fortieth run, 8B, two rounds in each of two calls against the same
 * tree with 0): GPTQ FP16 tg32 +0.8 / +2.0%, batch 1-4 +0.4-3.1%; EXL2 BF16 tg32 +0.5 / +1.7%, batch 1-4 +0-2.2%;
 * batch 8-16 -0.9 to +1.6% (the noise is about 1%). Which of the two it is was not separated. */
#ifndef QV_XPF
#define QV_XPF 1
#endif
static __device__ __forceinline__ void l2_touch(const void *p) {
#if QV_XPF
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
    (void)p;
#endif
}
/* a point inside a traced kernel (thread 0, its first passage), e.g. its main loop's end */
static __device__ __forceinline__ void kt_mark(int i) {
#if CHASKI_KTRACE
    kt_stamp(i);
#else
    (void)i;
#endif
}
static __device__ __forceinline__ void gdc_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/* A decode kernel's first statement, at the kernel's outermost scope (see CHASKI_KTRACE above). */
#if CHASKI_KTRACE
#define GDC_LAUNCH_DEPENDENTS()                                                                   \
    gdc_launch_dependents();                                                                      \
    kt_block kt_block_
#else
#define GDC_LAUNCH_DEPENDENTS() gdc_launch_dependents()
#endif

/* Whether kernels are launched with programmatic dependent launch (linear.cu: CHASKI_PDL, gpu_linear_pdl). */
int gpu_pdl_enabled(void);

/* kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-dependent-launch attribute when
 * gpu_pdl_enabled() (for kernels that call gdc_launch_dependents() and then gdc_wait() before they touch
 * global memory or complete: the decode step's kernels, so each launch overlaps the previous kernel's
 * tail), and as thread-block clusters of cluster_y blocks along y when cluster_y > 1. Returns the launch's
 * error and clears it from cudaGetLastError's state. */
template <typename... KArgs, typename... Args>
static inline cudaError_t gpu_launch_ex(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                        cudaStream_t stream, int cluster_y, Args... args) {
    const bool pdl = gpu_pdl_enabled() != 0;
    if (!pdl && cluster_y <= 1) {
        kernel<<<grid, block, smem, stream>>>(args...);
        return cudaGetLastError();
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute at[2];
    unsigned na = 0;
    if (pdl) {
        at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    if (cluster_y > 1) {
        at[na].id = cudaLaunchAttributeClusterDimension;
        at[na].val.clusterDim.x = 1;
        at[na].val.clusterDim.y = (unsigned)cluster_y;
        at[na].val.clusterDim.z = 1;
        na++;
    }
    cfg.attrs = at;
    cfg.numAttrs = na;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, args...);
    if (e != cudaSuccess)
        (void)cudaGetLastError();
    return e;
}
template <typename... KArgs, typename... Args>
static inline cudaError_t gpu_launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                         cudaStream_t stream, Args... args) {
    return gpu_launch_ex(kernel, grid, block, smem, stream, 1, args...);
}

/* Records "file:line: what: cudaGetErrorString" as this thread's last error and returns code. */
int gpu_set_error(int code, const char *file, int line, const char *fmt, ...);

#define GPU_FAIL(code, ...) gpu_set_error((code), __FILE__, __LINE__, __VA_ARGS__)
#define GPU_CHECK(call)                                                                           \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess)                                                                    \
            return GPU_FAIL(GPU_ELAUNCH, "%s: %s", #call, cudaGetErrorString(e_));                \
    } while (0)
/* After a <<<>>> launch: configuration errors show up here (not asynchronous faults). */
#define GPU_CHECK_LAUNCH(what)                                                                    \
    do {                                                                                          \
        cudaError_t e_ = cudaGetLastError();                                                      \
        if (e_ != cudaSuccess)                                                                    \
            return GPU_FAIL(GPU_ELAUNCH, "launch %s: %s", (what), cudaGetErrorString(e_));        \
    } while (0)

template <typename T> struct dt_traits;
template <> struct dt_traits<__half> {
    typedef __half2 T2;
    static __device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half from_f(float x) { return __float2half_rn(x); }
    static __device__ __forceinline__ float2 to_f2(__half2 x) { return __half22float2(x); }
    static __device__ __forceinline__ __half2 from_f2(float a, float b) { return __floats2half2_rn(a, b); }
};
template <> struct dt_traits<__nv_bfloat16> {
    typedef __nv_bfloat162 T2;
    static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }
    static __device__ __forceinline__ float2 to_f2(__nv_bfloat162 x) { return __bfloat1622float2(x); }
    static __device__ __forceinline__ __nv_bfloat162 from_f2(float a, float b) { return __floats2bfloat162_rn(a, b); }
};

/* mma.sync m16n8k16 with float accumulators, A row-major and B column-major in T (f16 or bf16) pairs: c += a b
 * (mma), or c = a b (mma_z). Used by the quantized matmuls (quant_linear.cu) and decode attention's tensor-core
 * kernel (attention_decode.cu). */
template <typename T> struct qmma_t;
/* qmma_t<T> of element type TY ("f16", "bf16") */
#define CK_QMMA_T(T, TY)                                                                                              \
    template <> struct qmma_t<T> {                                                                                  \
        static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) \
        {                                                                                                           \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." TY "." TY ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "   \
                         "{%8,%9}, {%0,%1,%2,%3};\n"                                                                \
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                           \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                           \
        }                                                                                                           \
        /* c = a b (the accumulators not read: a group's first products, C = 0, which ptxas may take as RZ) */      \
        static __device__ __forceinline__ void mma_z(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,            \
                                                     uint32_t b1)                                                   \
        {                                                                                                           \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." TY "." TY ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "   \
                         "{%8,%9}, {%10,%10,%10,%10};\n"                                                            \
                         : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])                                           \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));                \
        }                                                                                                           \
    };
CK_QMMA_T(__half, "f16")
CK_QMMA_T(__nv_bfloat16, "bf16")
#undef CK_QMMA_T

/* 8 elements of T in one 16-byte register quad. */
template <typename T> struct vec8 {
    uint4 u;
    __device__ __forceinline__ void to_float(float f[8]) const {
        const typename dt_traits<T>::T2 *p = reinterpret_cast<const typename dt_traits<T>::T2 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 v = dt_traits<T>::to_f2(p[i]);
            f[2 * i] = v.x;
            f[2 * i + 1] = v.y;
        }
    }
    __device__ __forceinline__ void from_float(const float f[8]) {
        typename dt_traits<T>::T2 *p = reinterpret_cast<typename dt_traits<T>::T2 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) p[i] = dt_traits<T>::from_f2(f[2 * i], f[2 * i + 1]);
    }
};

static inline bool gpu_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Calls FN<T>(args...) for the runtime dtype; unknown dtypes are unsupported. */
#define GPU_DISPATCH_DT(dt, FN, ...)                                                              \
    ((dt) == GPU_F16    ? FN<__half>(__VA_ARGS__)                                                 \
     : (dt) == GPU_BF16 ? FN<__nv_bfloat16>(__VA_ARGS__)                                          \
                        : GPU_FAIL(GPU_UNSUPPORTED, "dtype %d", (int)(dt)))

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
