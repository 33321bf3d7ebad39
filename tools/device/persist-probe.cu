/* tools/device/persist-probe.cu: what would a batch-1 decode layer gain if its four quantized GEMVs ran as one
 * persistent kernel instead of four launches under programmatic dependent launch (docs/PERFORMANCE.md, forty-second
 * run)? Every session since the eighteenth has named "a persistent kernel whose weight stream does not stop between
 * projections" as the next step; this measures the ceiling before anyone builds it.
 *
 * The work, 32 layers of the Llama-3-8B shape at one row, chained as a decode step chains them (attention left out:
 * the o projection reads the first 4096 sums of q,k,v; each layer's weights are its own, 3.5 GB in all, 70 x L2):
 *   phase 0 q,k,v   k 4096,  m 6144   input: the previous layer's down sums (layer 0: x0)
 *   phase 1 o       k 4096,  m 4096   input: q,k,v's first 4096 sums
 *   phase 2 gate_up k 4096,  m 28672  input: o's sums
 *   phase 3 down    k 14336, m 4096   input: silu(g) u of gate_up's two halves
 * Each input is scaled to about unit variance and rounded to fp16 into shared memory (only the rows the block's
 * warps take, in fragment order); weights are 4-bit codes 1..15 (zero point 8) in 512-byte chunks of 32 columns x 32
 * rows, tile-major, every lane's 16 bytes its A fragments of 4 mma.sync.m16n8k16 (the codes as fp16 subnormals, one
 * LOP3 a pair, and the zero point as 2 MMAs of -8, as qmv_kernel's one-row fold), fp32 accumulation, no group
 * scales. The chunks of a phase (tile-major order) are split evenly over every warp of the grid in quads of 4, each
 * warp a contiguous range, through a register ring of R = 8 chunks (one test per quad, as qmv_kernel's rounds); each
 * warp adds its partial column sums into the phase's fp32 output with red.global.add (zeroed before each run,
 * outside the timing). Variants, all with the same grid (2 blocks of 8 warps per SM) and the same code per chunk:
 *   read    the weight stream alone (the ring's loads, no compute, no dependence): the floor of this geometry;
 *   pdl     one launch per phase (128 in a CUDA graph), griddepcontrol.launch_dependents first, the ring's first R
 *           chunks requested before griddepcontrol.wait, the input after it (chaski's decode launches today);
 *   persist one launch for all 128 phases: at a phase's end each block arrives on the phase's counter
 *           (barrier.sync, then thread 0: __threadfence, atomicAdd) and waits for all blocks (ld.acquire spin)
 *           before reading the next input, while each warp's ring already holds the next phase's first R chunks;
 *   nodep   persist without the grid barrier (each block stages whatever the previous phase has written so far):
 *           wrong sums, not checked; timing only, the bound of any synchronization with this compute;
 *   pdl-dyn pdl, but the warps take units of 16 chunks from one counter per launch instead of fixed ranges (every
 *           block stages all k rows);
 *   pdl-all pdl with every block staging all k rows (the control for the two forms that need them);
 *   pdl-steal pdl, each block's chunks handed out by its own counter to its warps, which then take what is left of
 *           the next NSTEAL blocks' (every block stages all k rows).
 * Printed: us per layer (CUDA events, median of REPS runs), GB/s and % of the copy rate BW (default 4234 GB/s,
 * chaski-bench's measured copy bandwidth), and for persist each phase's mean time from block 0's %globaltimer:
 * staging, block 0's own chunks, then to the barrier's release, split into the spread of the blocks' arrivals and
 * the last arrival to the release, and whether the late blocks are the same SMs' in every layer (sm_lateness).
 * Checked: layer 0's four phases and layer 1's q,k,v of every variant but nodep against a CPU reference of the same
 * math (fp16 inputs rounded as the GPU rounds them, sums in double), max error over the rms at most 1e-2.
 * Build and run (sm_90): nvcc -O3 -arch=sm_90 -o /tmp/persist tools/device/persist-probe.cu && /tmp/persist [BW] */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "probe_check.h"

constexpr int NP = 4, WARPS = 8, THREADS = WARPS * 32, MAXK = 14336, LAYERS = 32, REPS = 15;
constexpr int NINST = LAYERS * NP;

__host__ __device__ constexpr int pk(int p) { return p == 3 ? 14336 : 4096; }
__host__ __device__ constexpr int pm(int p) { return p == 0 ? 6144 : p == 2 ? 28672 : 4096; }
__host__ __device__ constexpr long nchunks(int p) { return (long)(pm(p) / 32) * (pk(p) / 32); }

struct Args {
    const uint4 *w[NP]; /* layer l's chunks of phase p at w[p] + l * nchunks(p) * 32 */
    float *out[NP];     /* layer l's sums of phase p at out[p] + l * pm(p) */
    const float *x0;
    unsigned *cnt;      /* arrivals per phase instance, zero at launch (persist) */
    unsigned long long *ts; /* block 0's times per instance (persist): [3 q] input staged, [3 q + 1] its last
                             * chunk done, [3 q + 2] released (every block arrived) */
    unsigned long long *done; /* every block's arrival time per instance (persist): [q nblk + block] */
    int *smid;                /* every block's SM (persist) */
    unsigned *steal;          /* pdl-steal's counters: [q nblk + block], zero at launch */
    float sc[NP];       /* the scale of phase p's input sums */
    int nblk;
};

/* the first of warp gw's share of n units (chunks or quads) split evenly over G warps */
__host__ __device__ inline long range_lo(long n, int gw, int G) { return n * gw / G; }

__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* The activations in shared memory in fragment order: within each 32-row chunk, lane t4's four B registers (k-step
 * ks, half h: rows 16 ks + 8 h + 2 t4, + 1) are one 16-byte word, u32 index 16 c + 4 t4 + 2 ks + h. */
__host__ __device__ constexpr int xs_word(int k)
{
    return 16 * (k >> 5) + 4 * ((k >> 1) & 3) + 2 * ((k >> 4) & 1) + ((k >> 3) & 1);
}

/* One chunk: lane (g, t4)'s word j, nibble pair i (bits 4i and 16 + 4i) is A register r = 4j + i of m-tile r >> 3,
 * k-step (r >> 2) & 1, fragment a = r & 3 (row g + 8 (a & 1), k 2 t4 + 8 (a >> 1) + the pair's half). The codes go to
 * the tensor core as fp16 subnormals (code x 2^-24: one LOP3 per pair, as qmv_kernel's fold), and the zero point as
 * two MMAs of -8 x 2^-24 into z (the same for every column); flush scales by 2^24. Only token 0 (column 0 of D) is
 * used; lanes g > 0 feed the same activations as tokens 1..7, whose sums are ignored. c: the chunk's index in its
 * tile. */
__device__ __forceinline__ void chunk_mma(float (&d)[2][4], float (&z)[4], const uint4 w, const __half *xs, int c,
                                          int t4)
{
    const uint4 b = reinterpret_cast<const uint4 *>(xs)[4 * c + t4];
    const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
    uint32_t a[16];
#pragma unroll
    for (int r = 0; r < 16; r++)
        a[r] = (wv[r >> 2] >> (4 * (r & 3))) & 0x000F000Fu;
    constexpr uint32_t M8 = 0x80088008u; /* -8 x 2^-24 in both halves */
    mma16816(d[0], a[0], a[1], a[2], a[3], b.x, b.y);
    mma16816(d[0], a[4], a[5], a[6], a[7], b.z, b.w);
    mma16816(d[1], a[8], a[9], a[10], a[11], b.x, b.y);
    mma16816(d[1], a[12], a[13], a[14], a[15], b.z, b.w);
    mma16816(z, M8, M8, M8, M8, b.x, b.y);
    mma16816(z, M8, M8, M8, M8, b.z, b.w);
}

/* token 0's sums of a tile's 32 columns (lanes t4 == 0: d[mt][0] row g, d[mt][2] row g + 8) into out */
__device__ __forceinline__ void flush(float (&d)[2][4], float (&z)[4], float *out, long tile, int g, int t4)
{
    if (t4 == 0) {
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            atomicAdd(out + tile * 32 + 16 * mt + g, (d[mt][0] + z[0]) * 16777216.0f);
            atomicAdd(out + tile * 32 + 16 * mt + g + 8, (d[mt][2] + z[2]) * 16777216.0f);
        }
    }
#pragma unroll
    for (int e = 0; e < 4; e++) {
        d[0][e] = d[1][e] = 0.0f;
        z[e] = 0.0f;
    }
}

/* rows 4 i .. 4 i + 3 of a block's input as fp16 into xs (fragment order: two pairs) */
__device__ __forceinline__ void put4(__half *xs, int i, float v0, float v1, float v2, float v3)
{
    const __half2 lo = __floats2half2_rn(v0, v1), hi = __floats2half2_rn(v2, v3);
    uint32_t *xw = reinterpret_cast<uint32_t *>(xs);
    xw[xs_word(4 * i)] = *reinterpret_cast<const uint32_t *>(&lo);
    xw[xs_word(4 * i + 2)] = *reinterpret_cast<const uint32_t *>(&hi);
}

__device__ __forceinline__ float silu_mul(float g, float u, float sc)
{
    g *= sc;
    return g / (1.0f + __expf(-g)) * (u * sc);
}

/* The block's input of instance q (layer q / NP, phase q % NP), scaled and rounded to fp16: only the rows of the
 * chunks its warps take (chunks [b0, b1) of the phase, tile-major: one or two row ranges of the tile), each thread's
 * 16-byte L2 loads in batches of 4 (8 for down: g and u) issued before any is used. */
__device__ void load_x(__half *xs, const Args &a, int q, int b0, int b1)
{
    const int l = q / NP, p = q % NP, tid = threadIdx.x, C = pk(p) / 32;
    const float sc = a.sc[p];
    /* rows [r0, r1) and [0, r2) */
    int r0 = 0, r1 = pk(p), r2 = 0;
    if (b1 - b0 < C) {
        r0 = 32 * (b0 % C);
        r1 = 32 * ((b1 - 1) % C + 1);
        if (r1 <= r0) {
            r2 = r1;
            r1 = pk(p);
        }
    }
    const int n4 = (r1 - r0 + r2) / 4;
    if (p == 0 && l == 0) {
        for (int i = tid; i < n4; i += THREADS) {
            const int k = i < (r1 - r0) / 4 ? r0 + 4 * i : 4 * i - (r1 - r0);
            put4(xs, k / 4, a.x0[k], a.x0[k + 1], a.x0[k + 2], a.x0[k + 3]);
        }
        return;
    }
    const float *s = p == 0 ? a.out[3] + (size_t)(l - 1) * pm(3) : a.out[p - 1] + (size_t)l * pm(p - 1);
    const float4 *src = reinterpret_cast<const float4 *>(s);
    constexpr int BATCH = 4;
    for (int base = tid; base < n4; base += BATCH * THREADS) {
        float4 gv[BATCH], uv[BATCH];
        int k4[BATCH];
#pragma unroll
        for (int j = 0; j < BATCH; j++) {
            const int i = base + j * THREADS;
            k4[j] = i < n4 ? (i < (r1 - r0) / 4 ? r0 / 4 + i : i - (r1 - r0) / 4) : -1;
            if (k4[j] >= 0) {
                gv[j] = __ldcg(src + k4[j]);
                if (p == 3)
                    uv[j] = __ldcg(src + MAXK / 4 + k4[j]);
            }
        }
#pragma unroll
        for (int j = 0; j < BATCH; j++) {
            if (k4[j] < 0)
                continue;
            if (p == 3)
                put4(xs, k4[j], silu_mul(gv[j].x, uv[j].x, sc), silu_mul(gv[j].y, uv[j].y, sc),
                     silu_mul(gv[j].z, uv[j].z, sc), silu_mul(gv[j].w, uv[j].w, sc));
            else
                put4(xs, k4[j], gv[j].x * sc, gv[j].y * sc, gv[j].z * sc, gv[j].w * sc);
        }
    }
}

/* block 0, thread 0: the time into ts[i] */
__device__ __forceinline__ void stamp(const Args &a, int i)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        a.ts[i] = t;
    }
}

__device__ __forceinline__ void cta_barrier() { asm volatile("barrier.sync 0;" ::: "memory"); }

/* pdl-dyn's and pdl-steal's walk after their unit bookkeeping: the ring primed by load_quad (which fills slot o's
 * quad and its first chunk cb[o / 4], -1: none), the wait, every k row staged, then quads until none is left, the
 * sums flushed whenever a warp's next quad lies in another tile */
template <int R, typename Load>
__device__ __forceinline__ void run_units(const Args &a, int q, __half *xs, uint4 (&ring)[R], int (&cb)[R / 4],
                                          Load &load_quad, float *out, int C, int g, int t4)
{
#pragma unroll
    for (int o = 0; o < R; o += 4)
        load_quad(o);
    asm volatile("griddepcontrol.wait;" ::: "memory");
    load_x(xs, a, q, 0, (int)nchunks(q % NP));
    __syncthreads();
    float d[2][4] = {}, z[4] = {};
    int ctile = -1;
    while (true) {
        bool any = false;
#pragma unroll
        for (int o = 0; o < R; o += 4) {
            const int b = cb[o / 4];
            uint4 w[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                w[u] = ring[o + u];
            load_quad(o);
            if (b >= 0) {
                any = true;
                if (b / C != ctile) {
                    if (ctile >= 0)
                        flush(d, z, out, ctile, g, t4);
                    ctile = b / C;
                }
#pragma unroll
                for (int u = 0; u < 4; u++)
                    chunk_mma(d, z, w[u], xs, b % C + u, t4);
            }
        }
        if (!any)
            break;
    }
    if (ctile >= 0)
        flush(d, z, out, ctile, g, t4);
}

/* pdl-dyn: one instance per launch (as pdl), but no warp owns a range: each takes units of 16 chunks (4 quads, never
 * across a tile) in the order a counter per instance (a.cnt, zeroed before the run) hands them out. Lane 0 asks for
 * the next unit as soon as it starts loading the current one and the answer is read (shuffled) only when the loads
 * reach that unit, 4 quads later, so the round trip stays off the ring's path. Every block stages all k rows. */
template <int R> __device__ __forceinline__ void walk_dyn(const Args &a, int q)
{
    __shared__ __align__(16) __half xs[MAXK];
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const int lane = threadIdx.x & 31, t4 = lane & 3, g = lane >> 2, p = q % NP, C = pk(p) / 32;
    const int nunits = (int)(nchunks(p) / 16);
    unsigned *grab = a.cnt + q;
    const uint4 *wb = a.w[p] + (size_t)(q / NP) * nchunks(p) * 32 + lane;
    float *out = a.out[p] + (size_t)(q / NP) * pm(p);
    int lunit = __shfl_sync(0xffffffffu, lane == 0 ? (int)atomicAdd(grab, 1u) : 0, 0);
    int pend = lane == 0 && lunit < nunits ? (int)atomicAdd(grab, 1u) : 0, lquad = 0;
    uint4 ring[R];
    int cb[R / 4]; /* the first chunk of the quad in each ring slot, -1: none */
    auto load_quad = [&](int o) {
        if (lunit >= nunits) {
            cb[o / 4] = -1;
            return;
        }
        const int base = 16 * lunit + 4 * lquad;
#pragma unroll
        for (int u = 0; u < 4; u++)
            ring[o + u] = __ldcs(wb + (size_t)(base + u) * 32);
        cb[o / 4] = base;
        if (++lquad == 4) {
            lquad = 0;
            lunit = __shfl_sync(0xffffffffu, pend, 0);
            if (lunit < nunits && lane == 0)
                pend = (int)atomicAdd(grab, 1u);
        }
    };
    run_units<R>(a, q, xs, ring, cb, load_quad, out, C, g, t4);
}

/* pdl-steal: one instance per launch (as pdl); block b owns the chunks its warps own in pdl (quads [Q0, Q1) of the
 * phase), handed out in units of 2 quads by b's own counter (a.steal[q nblk + b], zeroed before the run) to b's
 * warps; a warp whose block's units are gone takes units of blocks b + 1, .. b + NSTEAL in turn. Lane 0 asks for the
 * next unit when the current one starts loading and reads the answer (shuffled) 2 quads later. Every block stages all
 * k rows. */
constexpr int NSTEAL = 1; /* 8 (call 7): a finishing warp's failed probes, one round trip each, cost more */
template <int R> __device__ __forceinline__ void walk_steal(const Args &a, int q)
{
    __shared__ __align__(16) __half xs[MAXK];
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const int lane = threadIdx.x & 31, t4 = lane & 3, g = lane >> 2, p = q % NP, C = pk(p) / 32;
    const int nq = (int)(nchunks(p) / 4), G = a.nblk * WARPS;
    unsigned *cnt = a.steal + (size_t)q * a.nblk;
    const uint4 *wb = a.w[p] + (size_t)(q / NP) * nchunks(p) * 32 + lane;
    float *out = a.out[p] + (size_t)(q / NP) * pm(p);
    int pv = blockIdx.x, tries = 0; /* the block whose counter the pending request went to */
    int pj = lane == 0 ? (int)atomicAdd(cnt + pv, 1u) : 0;
    int lb = -1, lqleft = 0; /* the next quad's first chunk, quads left in the unit */
    auto next_unit = [&]() {
        while (true) {
            const int r = __shfl_sync(0xffffffffu, pj, 0);
            const int q0 = (int)range_lo(nq, pv * WARPS, G), q1 = (int)range_lo(nq, (pv + 1) * WARPS, G);
            if (2 * r < q1 - q0) {
                lb = 4 * (q0 + 2 * r);
                lqleft = min(2, q1 - q0 - 2 * r);
                if (lane == 0)
                    pj = (int)atomicAdd(cnt + pv, 1u);
                return;
            }
            if (++tries > NSTEAL) {
                lb = -1;
                return;
            }
            pv = (pv + 1) % a.nblk;
            if (lane == 0)
                pj = (int)atomicAdd(cnt + pv, 1u);
        }
    };
    next_unit();
    uint4 ring[R];
    int cb[R / 4];
    auto load_quad = [&](int o) {
        if (lb < 0) {
            cb[o / 4] = -1;
            return;
        }
#pragma unroll
        for (int u = 0; u < 4; u++)
            ring[o + u] = __ldcs(wb + (size_t)(lb + u) * 32);
        cb[o / 4] = lb;
        lb += 4;
        if (--lqleft == 0)
            next_unit();
    };
    run_units<R>(a, q, xs, ring, cb, load_quad, out, C, g, t4);
}

/* A warp's walk over instances [q0, q1): the ring's loads run R chunks ahead of the compute, across phases, in
 * quads of 4 chunks (a warp's range starts and ends on a quad, and C is a multiple of 4, so a quad never crosses a
 * tile: one test per quad, not per chunk, as qmv_kernel's rounds). MODE: 0 read (loads only), 1 pdl (one instance
 * per launch), 2 persist (every instance, grid barriers between). The warp's range of each phase is the same in
 * every layer: rl / rn (first chunk, count) in shared memory. */
template <int R, int MODE> /* MODE 3: nodep; 4: pdl-dyn (walk_dyn); 5: pdl-all; 6: pdl-steal (walk_steal) */
__global__ void __launch_bounds__(THREADS, 2) walk(const __grid_constant__ Args a, int q0, int q1, unsigned *sink)
{
    static_assert(R % 4 == 0, "the ring holds whole quads");
    if constexpr (MODE == 4) {
        walk_dyn<R>(a, q0);
        return;
    }
    if constexpr (MODE == 6) {
        walk_steal<R>(a, q0);
        return;
    }
    __shared__ __align__(16) __half xs[MAXK];
    __shared__ int rl[WARPS][NP], rn[WARPS][NP];
    constexpr bool PDL = MODE == 1 || MODE == 5;
    if (PDL)
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int G = a.nblk * WARPS, gw = blockIdx.x * WARPS + warp;
    if (MODE == 2 && threadIdx.x == 0) {
        int sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        a.smid[blockIdx.x] = sm;
    }
    if (lane < NP) {
        const int n = (int)nchunks(lane) / 4; /* quads */
        rl[warp][lane] = 4 * (int)range_lo(n, gw, G);
        rn[warp][lane] = 4 * (int)range_lo(n, gw + 1, G) - rl[warp][lane];
    }
    __syncthreads(); /* load_x reads warps 0's and WARPS - 1's ranges */

    /* the load cursor: instance ql, its next chunk wl (this lane's 16 bytes), chunks left in the range */
    int ql = q0, lleft = rn[warp][q0 % NP];
    const uint4 *wl = a.w[q0 % NP] + ((size_t)(q0 / NP) * nchunks(q0 % NP) + rl[warp][q0 % NP]) * 32 + lane;
    /* the next quad into ring[o ..] */
    auto load_quad = [&](uint4 (&ring)[R], int o) {
        if (ql >= q1) {
#pragma unroll
            for (int u = 0; u < 4; u++)
                ring[o + u] = make_uint4(0, 0, 0, 0);
            return;
        }
#pragma unroll
        for (int u = 0; u < 4; u++)
            ring[o + u] = __ldcs(wl + 32 * u);
        wl += 128;
        if ((lleft -= 4) == 0 && ++ql < q1) {
            const int p = ql % NP;
            lleft = rn[warp][p];
            wl = a.w[p] + ((size_t)(ql / NP) * nchunks(p) + rl[warp][p]) * 32 + lane;
        }
    };
    uint4 ring[R];
#pragma unroll
    for (int o = 0; o < R; o += 4)
        load_quad(ring, o);
    if (PDL)
        asm volatile("griddepcontrol.wait;" ::: "memory");

    if (MODE == 0) { /* the stream alone */
        uint32_t acc = 0;
        while (true) {
#pragma unroll
            for (int o = 0; o < R; o += 4) {
#pragma unroll
                for (int u = 0; u < 4; u++)
                    acc ^= ring[o + u].x ^ ring[o + u].y ^ ring[o + u].z ^ ring[o + u].w;
                load_quad(ring, o);
            }
            if (ql >= q1)
                break;
        }
#pragma unroll
        for (int s = 0; s < R; s++)
            acc ^= ring[s].x ^ ring[s].y ^ ring[s].z ^ ring[s].w;
        if (acc == 0x9e3779b9u)
            *sink = acc;
        return;
    }

    /* the compute cursor: instance qc, chunk cl of tile `tile` (C chunks a tile), chunks left in the range */
    int qc = q0, C = pk(q0 % NP) / 32, tile = rl[warp][q0 % NP] / C, cl = rl[warp][q0 % NP] % C;
    int cleft = rn[warp][q0 % NP];
    float *out = a.out[q0 % NP] + (size_t)(q0 / NP) * pm(q0 % NP);
    if (MODE == 5) /* every row, as a block that may take any chunk must */
        load_x(xs, a, qc, 0, (int)nchunks(q0 % NP));
    else
        load_x(xs, a, qc, rl[0][q0 % NP], rl[WARPS - 1][q0 % NP] + rn[WARPS - 1][q0 % NP]);
    cta_barrier();
    float d[2][4] = {}, z[4] = {};
    while (qc < q1) {
#pragma unroll
        for (int o = 0; o < R; o += 4) {
            uint4 w[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                w[u] = ring[o + u];
            load_quad(ring, o);
#pragma unroll
            for (int u = 0; u < 4; u++)
                chunk_mma(d, z, w[u], xs, cl + u, t4);
            if ((cl += 4) == C) {
                flush(d, z, out, tile, g, t4);
                tile++;
                cl = 0;
            }
            if ((cleft -= 4) == 0) {
                if (cl)
                    flush(d, z, out, tile, g, t4);
                if (++qc >= q1)
                    break;
                /* the next instance (persist only: pdl launches take one) */
                stamp(a, 3 * qc - 2); /* block 0's warp 0: its last chunk of qc - 1 done */
                cta_barrier(); /* every warp's sums added, xs free */
                if (MODE == 2 && threadIdx.x == 0) {
                    unsigned long long t0;
                    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
                    a.done[(size_t)(qc - 1) * a.nblk + blockIdx.x] = t0;
                    __threadfence();
                    atomicAdd(a.cnt + qc - 1, 1u);
                    unsigned v;
                    do
                        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(a.cnt + qc - 1) : "memory");
                    while (v < (unsigned)a.nblk);
                    if (blockIdx.x == 0) {
                        unsigned long long t;
                        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
                        a.ts[3 * (qc - 1) + 2] = t;
                    }
                }
                cta_barrier();
                {
                    const int p = qc % NP;
                    load_x(xs, a, qc, rl[0][p], rl[WARPS - 1][p] + rn[WARPS - 1][p]);
                }
                cta_barrier();
                stamp(a, 3 * qc);
                const int p = qc % NP;
                C = pk(p) / 32;
                tile = rl[warp][p] / C;
                cl = rl[warp][p] % C;
                cleft = rn[warp][p];
                out = a.out[p] + (size_t)(qc / NP) * pm(p);
            }
        }
    }
}

__host__ __device__ inline uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* word i of a layer's phase array (seed = instance): 8 codes 1..15, nibble e at bits 4e */
__host__ __device__ inline uint32_t weight_word(size_t i, uint32_t seed)
{
    uint32_t w = 0;
    for (int e = 0; e < 8; e++)
        w |= (1u + mix32((uint32_t)(i * 8 + e) ^ (seed * 0x9e3779b9u)) % 15u) << (4 * e);
    return w;
}

__global__ void gen_weights(uint32_t *w, size_t n, uint32_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        w[i] = weight_word(i, seed);
}

static float x0_value(int i) { return ((float)(mix32((uint32_t)i ^ 0x51ed27u) % 2001u) - 1000.0f) / 577.0f; }

/* the CPU reference of instance q's sums from its fp16 input xh */
static void ref_phase(int q, const std::vector<float> &xh, std::vector<double> &sums)
{
    const int p = q % NP, C = pk(p) / 32, T = pm(p) / 32;
    sums.assign(pm(p), 0.0);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            for (int lane = 0; lane < 32; lane++) {
                const int g = lane >> 2, t4 = lane & 3;
                for (int j = 0; j < 4; j++) {
                    const uint32_t w = weight_word((((size_t)t * C + c) * 32 + lane) * 4 + j, (uint32_t)q);
                    for (int i = 0; i < 4; i++)
                        for (int hi = 0; hi < 2; hi++) {
                            const int code = (int)((w >> (4 * i + 16 * hi)) & 15u);
                            const int r = 4 * j + i, mt = r >> 3, ks = (r >> 2) & 1, fa = r & 3;
                            const int col = 32 * t + 16 * mt + g + 8 * (fa & 1);
                            const int k = 32 * c + 16 * ks + 2 * t4 + 8 * (fa >> 1) + hi;
                            sums[col] += (double)(code - 8) * xh[k];
                        }
                }
            }
}

static float to_half(float v) { return __half2float(__float2half_rn(v)); }

/* the fp16 input of instance q from the previous sums (as load_x) */
static std::vector<float> ref_input(int q, const std::vector<double> &prev, const float *sc)
{
    const int l = q / NP, p = q % NP;
    std::vector<float> x(pk(p));
    for (int i = 0; i < pk(p); i++) {
        if (p == 0 && l == 0)
            x[i] = to_half(x0_value(i));
        else if (p == 3) {
            const float g = (float)prev[i] * sc[3], u = (float)prev[MAXK + i] * sc[3];
            x[i] = to_half(g / (1.0f + std::exp(-g)) * u);
        } else
            x[i] = to_half((float)prev[i] * sc[p]);
    }
    return x;
}

/* Is a block's lateness its SM's? From the last persist run: each block's arrival minus the mean arrival of its
 * instance, averaged per SM over the even layers and over the odd layers, per phase. Printed: the spread (standard
 * deviation) of the SMs' means, their range, and the correlation of the two halves (near 1: the same SMs are late in
 * every layer, so a static share per SM could even them; near 0: not). */
static bool sm_lateness(const Args &a, int sms)
{
    std::vector<unsigned long long> done((size_t)NINST * a.nblk);
    std::vector<int> sm(a.nblk);
    if (cudaMemcpy(done.data(), a.done, done.size() * sizeof(done[0]), cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(sm.data(), a.smid, sm.size() * sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "persist-probe: copying the arrival times failed\n");
        return false;
    }
    for (int p = 0; p < NP; p++) {
        std::vector<double> half[2] = {std::vector<double>(sms, 0.0), std::vector<double>(sms, 0.0)};
        std::vector<int> cnt[2] = {std::vector<int>(sms, 0), std::vector<int>(sms, 0)};
        for (int l = 1; l < LAYERS - (p == NP - 1); l++) {
            const unsigned long long *d = done.data() + (size_t)(l * NP + p) * a.nblk;
            double mean = 0;
            for (int b = 0; b < a.nblk; b++)
                mean += (double)(long long)(d[b] - d[0]);
            mean /= a.nblk;
            for (int b = 0; b < a.nblk; b++)
                if (sm[b] >= 0 && sm[b] < sms) {
                    half[l & 1][sm[b]] += ((double)(long long)(d[b] - d[0]) - mean) / 1e3;
                    cnt[l & 1][sm[b]]++;
                }
        }
        double m[2] = {0, 0}, all_lo = 1e30, all_hi = -1e30, var = 0, cov = 0, v0 = 0, v1 = 0;
        int n = 0, worst = 0;
        std::vector<double> both(sms, 0.0);
        for (int i = 0; i < sms; i++)
            if (cnt[0][i] && cnt[1][i]) {
                half[0][i] /= cnt[0][i];
                half[1][i] /= cnt[1][i];
                both[i] = (half[0][i] + half[1][i]) / 2;
                m[0] += half[0][i];
                m[1] += half[1][i];
                n++;
            }
        if (!n)
            continue;
        m[0] /= n;
        m[1] /= n;
        for (int i = 0; i < sms; i++)
            if (cnt[0][i] && cnt[1][i]) {
                cov += (half[0][i] - m[0]) * (half[1][i] - m[1]);
                v0 += (half[0][i] - m[0]) * (half[0][i] - m[0]);
                v1 += (half[1][i] - m[1]) * (half[1][i] - m[1]);
                var += (both[i] - (m[0] + m[1]) / 2) * (both[i] - (m[0] + m[1]) / 2);
                all_lo = std::min(all_lo, both[i]);
                all_hi = std::max(all_hi, both[i]);
                if (both[i] > both[worst])
                    worst = i;
            }
        printf("    %-8s SMs' mean lateness: sd %.2f us, %.2f .. %.2f us (latest: SM %d), even/odd layers' "
               "correlation %.2f\n",
               p == 0 ? "q,k,v" : p == 1 ? "o" : p == 2 ? "gate_up" : "down", std::sqrt(var / n), all_lo, all_hi,
               worst, cov / std::sqrt(v0 * v1 + 1e-30));
    }
    return true;
}

int main(int argc, char **argv)
{
    const double bw = argc > 1 ? atof(argv[1]) : 4234.0;
    int dev = 0, sms = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, walk<8, 2>, THREADS, 0));
    occ = std::min(occ, 2);
    if (occ < 1) {
        fprintf(stderr, "persist-probe: no resident block\n");
        return 1;
    }
    Args a = {};
    a.nblk = occ * sms;
    for (int p = 0; p < NP; p++)
        if (nchunks(p) < (long)a.nblk * WARPS) {
            fprintf(stderr, "persist-probe: phase %d has fewer chunks than warps\n", p);
            return 1;
        }
    double bytes_layer = 0;
    for (int p = 0; p < NP; p++) {
        const size_t words = (size_t)nchunks(p) * 128 * LAYERS;
        uint32_t *w;
        CK(cudaMalloc(&w, words * 4));
        for (int l = 0; l < LAYERS; l++)
            gen_weights<<<1024, 256>>>(w + (size_t)l * nchunks(p) * 128, (size_t)nchunks(p) * 128,
                                       (uint32_t)(l * NP + p));
        CK(cudaGetLastError());
        a.w[p] = reinterpret_cast<const uint4 *>(w);
        CK(cudaMalloc(&a.out[p], (size_t)pm(p) * LAYERS * sizeof(float)));
        bytes_layer += (double)nchunks(p) * 512;
        /* each input about unit variance: codes - 8 have mean square 56/3 */
        a.sc[p] = (float)(1.0 / std::sqrt(56.0 / 3.0 * pk(p == 0 ? 3 : p - 1)));
    }
    std::vector<float> x0(MAXK);
    for (int i = 0; i < MAXK; i++)
        x0[i] = x0_value(i);
    float *dx0;
    CK(cudaMalloc(&dx0, MAXK * sizeof(float)));
    CK(cudaMemcpy(dx0, x0.data(), MAXK * sizeof(float), cudaMemcpyHostToDevice));
    a.x0 = dx0;
    CK(cudaMalloc(&a.cnt, NINST * sizeof(unsigned)));
    CK(cudaMalloc(&a.ts, 3 * NINST * sizeof(unsigned long long)));
    CK(cudaMalloc(&a.done, (size_t)NINST * a.nblk * sizeof(unsigned long long)));
    CK(cudaMalloc(&a.smid, a.nblk * sizeof(int)));
    CK(cudaMalloc(&a.steal, (size_t)NINST * a.nblk * sizeof(unsigned)));
    unsigned *sink;
    CK(cudaMalloc(&sink, sizeof(unsigned)));
    CK(cudaDeviceSynchronize());

    /* the CPU reference: layer 0's four phases and layer 1's q,k,v */
    std::vector<std::vector<double>> ref(NP + 1);
    {
        std::vector<double> prev;
        for (int q = 0; q <= NP; q++) {
            ref_phase(q, ref_input(q, prev, a.sc), ref[q]);
            prev = ref[q];
        }
    }

    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    printf("persist-probe: %d SMs, %d blocks of %d warps, %d layers of %.2f MB (8B shape, one row), BW %.0f GB/s\n",
           sms, a.nblk, WARPS, LAYERS, bytes_layer / 1e6, bw);
    printf("floor at BW: %.2f us per layer\n", bytes_layer / (bw * 1e3));

    struct Variant {
        const char *name;
        int mode;
    };
    /* every variant runs a ring of R 8: R 12 spilled (ptxas: 204 bytes in the pdl and persist forms) and ran slower */
    const Variant vs[] = {{"read R8", 0},    {"pdl R8", 1},     {"persist R8", 2},  {"nodep R8", 3},
                          {"pdl-dyn R8", 4}, {"pdl-all R8", 5}, {"pdl-steal R8", 6}};
    int fails = 0;
    for (const Variant &v : vs) {
        cudaGraphExec_t ge = nullptr;
        const bool graph = v.mode == 1 || v.mode >= 4;
        if (graph) { /* 128 launches in one graph, PDL between them */
            cudaGraph_t gr;
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
            for (int q = 0; q < NINST; q++) {
                cudaLaunchConfig_t c = {};
                cudaLaunchAttribute at[1];
                at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
                at[0].val.programmaticStreamSerializationAllowed = 1;
                c.gridDim = dim3(a.nblk);
                c.blockDim = dim3(THREADS);
                c.stream = s;
                c.attrs = at;
                c.numAttrs = q > 0 ? 1 : 0;
                void (*k)(Args, int, int, unsigned *) = v.mode == 1   ? walk<8, 1>
                                                        : v.mode == 4 ? walk<8, 4>
                                                        : v.mode == 5 ? walk<8, 5>
                                                                      : walk<8, 6>;
                CK(cudaLaunchKernelEx(&c, k, a, q, q + 1, sink));
            }
            CK(cudaStreamEndCapture(s, &gr));
            CK(cudaGraphInstantiate(&ge, gr, 0));
            CK(cudaGraphDestroy(gr));
        }
        std::vector<float> ms;
        std::vector<double> phase_us(NP, 0.0), stage_us(NP, 0.0), comp_us(NP, 0.0), spread_us(NP, 0.0),
            bar_us(NP, 0.0);
        std::vector<int> phase_n(NP, 0);
        for (int rep = 0; rep < REPS + 2; rep++) {
            for (int p = 0; p < NP; p++)
                CK(cudaMemsetAsync(a.out[p], 0, (size_t)pm(p) * LAYERS * sizeof(float), s));
            CK(cudaMemsetAsync(a.cnt, 0, NINST * sizeof(unsigned), s));
            CK(cudaMemsetAsync(a.steal, 0, (size_t)NINST * a.nblk * sizeof(unsigned), s));
            CK(cudaEventRecord(e0, s));
            if (graph)
                CK(cudaGraphLaunch(ge, s));
            else if (v.mode == 0)
                walk<8, 0><<<a.nblk, THREADS, 0, s>>>(a, 0, NINST, sink);
            else if (v.mode == 2)
                walk<8, 2><<<a.nblk, THREADS, 0, s>>>(a, 0, NINST, sink);
            else
                walk<8, 3><<<a.nblk, THREADS, 0, s>>>(a, 0, NINST, sink);
            CK(cudaGetLastError());
            CK(cudaEventRecord(e1, s));
            CK(cudaStreamSynchronize(s));
            float t;
            CK(cudaEventElapsedTime(&t, e0, e1));
            if (rep >= 2)
                ms.push_back(t);
            if (v.mode == 2 && rep >= 2) { /* phase q's time: release of q - 1 to release of q (layers 1..) */
                std::vector<unsigned long long> ts(3 * NINST), done((size_t)NINST * a.nblk);
                CK(cudaMemcpy(ts.data(), a.ts, 3 * NINST * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(done.data(), a.done, done.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
                for (int q = NP; q < NINST - 1; q++) {
                    const auto b = done.begin() + (size_t)q * a.nblk;
                    const unsigned long long first = *std::min_element(b, b + a.nblk),
                                             last = *std::max_element(b, b + a.nblk);
                    spread_us[q % NP] += (double)(last - first) / 1e3;
                    bar_us[q % NP] += (double)(ts[3 * q + 2] - last) / 1e3;
                    phase_us[q % NP] += (double)(ts[3 * q + 2] - ts[3 * q - 1]) / 1e3;
                    stage_us[q % NP] += (double)(ts[3 * q] - ts[3 * q - 1]) / 1e3;
                    comp_us[q % NP] += (double)(ts[3 * q + 1] - ts[3 * q]) / 1e3;
                    phase_n[q % NP]++;
                }
            }
        }
        for (int p = 0; p < NP; p++) {
            phase_us[p] /= std::max(phase_n[p], 1);
            stage_us[p] /= std::max(phase_n[p], 1);
            spread_us[p] /= std::max(phase_n[p], 1);
            bar_us[p] /= std::max(phase_n[p], 1);
            comp_us[p] /= std::max(phase_n[p], 1);
        }
        if (ge)
            CK(cudaGraphExecDestroy(ge));
        std::sort(ms.begin(), ms.end());
        const double us_layer = ms[ms.size() / 2] * 1e3 / LAYERS;
        printf("%-12s %8.2f us/layer  %7.1f GB/s  %5.1f%% of BW  (min %.2f, max %.2f)", v.name, us_layer,
               bytes_layer / us_layer / 1e3, 100.0 * bytes_layer / us_layer / 1e3 / bw, ms.front() * 1e3 / LAYERS,
               ms.back() * 1e3 / LAYERS);
        printf("\n");
        if (v.mode == 2) /* block 0: release of the previous phase -> input staged -> its last chunk -> release */
            for (int p = 0; p < NP; p++)
                printf("    %-8s %6.2f us: staging %5.2f, block 0's chunks %5.2f, block 0 to release %5.2f (first to "
                       "last block's arrival %5.2f, last arrival to release %5.2f)\n",
                       p == 0 ? "q,k,v" : p == 1 ? "o" : p == 2 ? "gate_up" : "down", phase_us[p], stage_us[p],
                       comp_us[p], phase_us[p] - stage_us[p] - comp_us[p], spread_us[p], bar_us[p]);
        if (v.mode == 2 && !sm_lateness(a, sms))
            return 1;
        if (v.mode == 0 || v.mode == 3)
            continue;
        for (int q = 0; q <= NP; q++) { /* the last run's sums against the reference */
            std::vector<float> got(pm(q % NP));
            CK(cudaMemcpy(got.data(), a.out[q % NP] + (size_t)(q / NP) * pm(q % NP), got.size() * sizeof(float),
                          cudaMemcpyDeviceToHost));
            double err = 0, rms = 0;
            for (size_t i = 0; i < got.size(); i++) {
                err = std::max(err, std::fabs(got[i] - ref[q][i]));
                rms += ref[q][i] * ref[q][i];
            }
            rms = std::sqrt(rms / got.size());
            const bool ok = err <= 1e-2 * rms && rms > 0;
            fails += !ok;
            if (!ok || q == NP)
                printf("  check %s instance %d: max error %.3g of rms %.3g: %s\n", v.name, q, err, rms,
                       ok ? "ok" : "FAIL");
        }
    }
    printf("%s\n", fails ? "FAILED" : "all checks passed");
    return fails ? 1 : 0;
}
