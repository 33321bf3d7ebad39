/* tools/device/qmv16-probe.cu: does the 9-16-row decode kernel lose its time to the activation slice it stages in
 * shared memory? (docs/PERFORMANCE.md, twentieth run.) A standalone 4-bit GEMV of the qmv_kernel family,
 * y[n, m] = x[n, k] W[k, m] with W in 4 bits (zero point and fp16 scale per 128-row group and column), written for
 * this question only: 8 warps per block on one 32-column tile, mma.sync.m16n8k16 (fp16, fp32 accumulation) on the
 * exact integers q - z, the scale applied per group in fp32, a ring of 4 chunks (one group) per warp, split-K over
 * blocks with float atomics into y. Two ways to feed the tensor core the activations (the B fragments):
 *   XS = 1  the block first copies its slice x[0..n, k range] into shared memory (what qmv_kernel does), then every
 *           warp reads its fragments there: n x k_range x 2 bytes of shared memory per block;
 *   XS = 0  no slice: every warp loads its own fragments from global memory (L2) with the weights of the same
 *           chunk, in the ring (each activation byte is read by one warp of a block: the warps split the chunks);
 *           the block needs only its 16 KB of reduction space, so more blocks fit on an SM.
 * The weight layout is this probe's own (not chaski's upload): per 32-column tile and 32-row chunk, 512 contiguous
 * bytes, 16 per lane, each 32-bit word the A fragment of one (m-tile, k-step) pair; lane (g, t) of a chunk covers rows
 * 8t..8t+7 of it and columns g, g + 8, 16 + g, 24 + g, so its B fragment for one token is 8 consecutive activations:
 * one 16-byte load. A third variant, "0/1", is XS = 0 held to one block per SM (shared memory padded to 120 KB), as
 * qmv_kernel runs at 9-16 rows: whether the gain is the missing slice or the second block. Checked against a CPU reference on a small shape first (both XS), then timed on the Llama-3-8B
 * shapes at n = 16, 12, 8, 4, 2 and 1: a CUDA graph of 20 launches replayed, us per launch, and the weight + scale + activation +
 * output bytes over BW (GB/s, default 4234: chaski-bench's measured copy bandwidth on the H200).
 * Build and run (sm_90): nvcc -O3 -arch=sm_90 -o /tmp/qmv16-probe tools/device/qmv16-probe.cu && /tmp/qmv16-probe */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define CK(x)                                                                                                    \
    do {                                                                                                         \
        cudaError_t e_ = (x);                                                                                    \
        if (e_ != cudaSuccess) {                                                                                 \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));             \
            std::exit(1);                                                                                        \
        }                                                                                                        \
    } while (0)

constexpr int WARPS = 8, THREADS = WARPS * 32, MU = 4 /* chunks per ring round = one 128-row group */;
constexpr int GROUP = 128, CHUNK = 32;

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t hsub2u(uint32_t a, uint32_t b)
{
    __half2 r = __hsub2(*reinterpret_cast<__half2 *>(&a), *reinterpret_cast<__half2 *>(&b));
    return *reinterpret_cast<uint32_t *>(&r);
}

__device__ __forceinline__ uint32_t word(const uint4 &v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

/* qw: [tiles][chunks][32] uint4; zs: [tiles][groups][32] uint32 (low half 1024 + z, high half the scale, fp16);
 * x: [n][k] fp16; y: [n][m] float (added to). Grid (tiles, S); block = one tile, chunks [s * cps, (s + 1) * cps). */
template <int NT, int XS>
__global__ void __launch_bounds__(THREADS, 2)
probe_kernel(float *__restrict__ y, const uint4 *__restrict__ qw, const uint32_t *__restrict__ zs,
             const __half *__restrict__ x, int n, int k, int m, int cps)
{
    extern __shared__ __align__(16) unsigned char smem[];
    float *red = reinterpret_cast<float *>(smem);                 /* [WARPS][16 tokens][32 columns] */
    __half *xs = reinterpret_cast<__half *>(smem + WARPS * 16 * 32 * 4); /* XS: [n][cps * CHUNK] */
    const int tile = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int nchunks = k / CHUNK, cpw = cps / WARPS;
    const int kc0 = blockIdx.y * cps, c0 = kc0 + warp * cpw, c1 = c0 + cpw;
    const uint4 *wt = qw + (size_t)tile * nchunks * 32 + lane;
    const uint32_t *zt = zs + (size_t)tile * (k / GROUP) * 32;
    if (XS) { /* the block's slice, 16 bytes per thread per step */
        const int kr = cps * CHUNK, per_row = kr / 8;
        for (int i = threadIdx.x; i < NT * 8 * per_row; i += THREADS) {
            const int r = i / per_row, c = i % per_row;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < n) v = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * k + kc0 * CHUNK) + c);
            reinterpret_cast<uint4 *>(xs + (size_t)r * kr)[c] = v;
        }
        __syncthreads();
    }
    /* B fragment source of token tok for chunk c: 8 activations at row c * 32 + 8 t */
    auto xload = [&](int c, int tok) -> uint4 {
        if (tok >= n) return make_uint4(0, 0, 0, 0);
        if (XS) return *reinterpret_cast<const uint4 *>(xs + (size_t)tok * (cps * CHUNK) + (c - kc0) * CHUNK + 8 * t);
        return __ldg(reinterpret_cast<const uint4 *>(x + (size_t)tok * k + c * CHUNK + 8 * t));
    };
    uint4 wv[MU], xv[MU][NT];
    uint32_t zcur[4], znext[4];
    float acc[2][NT][4], cg[2][NT][4];
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[j][nt][e] = cg[j][nt][e] = 0.0f;
    /* lane's columns: 16 j + g + 8 h, word index 2 j + h */
    auto zload = [&](int c, uint32_t (&z)[4]) {
#pragma unroll
        for (int i = 0; i < 4; i++) z[i] = __ldg(zt + (size_t)(c * CHUNK / GROUP) * 32 + 16 * (i >> 1) + g + 8 * (i & 1));
    };
#pragma unroll
    for (int u = 0; u < MU; u++) {
        wv[u] = __ldg(wt + (size_t)(c0 + u) * 32);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) xv[u][nt] = xload(c0 + u, 8 * nt + g);
    }
    zload(c0, zcur);
    for (int base = c0; base < c1; base += MU) {
        const bool more = base + MU < c1;
        if (more) zload(base + MU, znext);
#pragma unroll
        for (int u = 0; u < MU; u++) {
            const uint4 w = wv[u];
            uint4 xb[NT];
#pragma unroll
            for (int nt = 0; nt < NT; nt++) xb[nt] = xv[u][nt];
            if (more) { /* slot u takes the chunk one round on */
                wv[u] = __ldg(wt + (size_t)(base + MU + u) * 32);
#pragma unroll
                for (int nt = 0; nt < NT; nt++) xv[u][nt] = xload(base + MU + u, 8 * nt + g);
            }
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    const uint32_t wd = word(w, 2 * j + s);
                    const uint32_t zA = __byte_perm(zcur[2 * j], zcur[2 * j], 0x1010);     /* (1024 + z) twice */
                    const uint32_t zB = __byte_perm(zcur[2 * j + 1], zcur[2 * j + 1], 0x1010);
                    uint32_t a[4];
#pragma unroll
                    for (int p = 0; p < 4; p++) {
                        const uint32_t q2 = ((wd >> (4 * p)) & 0x000F000Fu) | 0x64006400u; /* 1024 + q, two rows */
                        a[p] = hsub2u(q2, (p & 1) ? zB : zA);
                    }
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
                        mma16816(cg[j][nt], a, s ? xb[nt].z : xb[nt].x, s ? xb[nt].w : xb[nt].y);
                }
        }
        /* the group's end: scales in fp32 */
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const float sA = __half2float(__ushort_as_half((unsigned short)(zcur[2 * j] >> 16)));
            const float sB = __half2float(__ushort_as_half((unsigned short)(zcur[2 * j + 1] >> 16)));
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    acc[j][nt][e] = fmaf(e < 2 ? sA : sB, cg[j][nt][e], acc[j][nt][e]);
                    cg[j][nt][e] = 0.0f;
                }
        }
        if (more)
#pragma unroll
            for (int i = 0; i < 4; i++) zcur[i] = znext[i];
    }
    /* warps' sums: acc[j][nt][e]: column 16 j + g + 8 (e >> 1), token 8 nt + 2 t + (e & 1) */
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                red[(warp * 16 + 8 * nt + 2 * t + (e & 1)) * 32 + 16 * j + g + 8 * (e >> 1)] = acc[j][nt][e];
    __syncthreads();
    for (int i = threadIdx.x; i < n * 32; i += THREADS) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) v += red[w * 16 * 32 + i];
        atomicAdd(y + (size_t)(i / 32) * m + tile * 32 + i % 32, v);
    }
}

struct problem {
    int n, k, m;
    std::vector<uint8_t> q;     /* [k][m] */
    std::vector<uint8_t> z;     /* [k / GROUP][m] */
    std::vector<__half> s;      /* [k / GROUP][m] */
    std::vector<__half> x;      /* [n][k] */
    std::vector<uint4> qw;      /* packed */
    std::vector<uint32_t> zs;
};

static uint32_t rng(uint64_t &st)
{
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(st >> 33);
}

static void make(problem &P, int n, int k, int m, uint64_t seed)
{
    P.n = n, P.k = k, P.m = m;
    uint64_t st = seed;
    P.q.resize((size_t)k * m);
    for (auto &v : P.q) v = rng(st) & 15;
    const int G = k / GROUP;
    P.z.resize((size_t)G * m);
    P.s.resize((size_t)G * m);
    for (size_t i = 0; i < P.z.size(); i++) {
        P.z[i] = 6 + rng(st) % 4;
        P.s[i] = __float2half(0.002f + 0.004f * (rng(st) % 1000) / 1000.0f);
    }
    P.x.resize((size_t)n * k);
    for (auto &v : P.x) v = __float2half(((int)(rng(st) % 2001) - 1000) / 1000.0f);
    /* pack: tile, chunk, lane (g, t); word 2 j + s, pair p (nibbles p, p + 4): column 16 j + g + 8 (p & 1), rows
     * chunk * 32 + 8 t + 4 s + 2 (p >> 1) + {0, 1} */
    const int tiles = m / 32, chunks = k / CHUNK;
    P.qw.resize((size_t)tiles * chunks * 32);
    for (int tl = 0; tl < tiles; tl++)
        for (int c = 0; c < chunks; c++)
            for (int lane = 0; lane < 32; lane++) {
                const int g = lane >> 2, t = lane & 3;
                uint32_t wd[4] = {0, 0, 0, 0};
                for (int j = 0; j < 2; j++)
                    for (int s = 0; s < 2; s++)
                        for (int p = 0; p < 4; p++) {
                            const int col = tl * 32 + 16 * j + g + 8 * (p & 1);
                            const int r0 = c * CHUNK + 8 * t + 4 * s + 2 * (p >> 1);
                            wd[2 * j + s] |= (uint32_t)P.q[(size_t)r0 * m + col] << (4 * p);
                            wd[2 * j + s] |= (uint32_t)P.q[(size_t)(r0 + 1) * m + col] << (4 * p + 16);
                        }
                P.qw[((size_t)tl * chunks + c) * 32 + lane] = make_uint4(wd[0], wd[1], wd[2], wd[3]);
            }
    P.zs.resize((size_t)tiles * G * 32);
    for (int tl = 0; tl < tiles; tl++)
        for (int gr = 0; gr < G; gr++)
            for (int col = 0; col < 32; col++) {
                const size_t i = (size_t)gr * m + tl * 32 + col;
                const uint16_t zh = __half_as_ushort(__float2half(1024.0f + P.z[i]));
                P.zs[((size_t)tl * G + gr) * 32 + col] = zh | ((uint32_t)__half_as_ushort(P.s[i]) << 16);
            }
}

struct dev_problem {
    uint4 *qw;
    uint32_t *zs;
    __half *x;
    float *y;
};

static dev_problem upload(const problem &P)
{
    dev_problem d;
    CK(cudaMalloc(&d.qw, P.qw.size() * sizeof(uint4)));
    CK(cudaMalloc(&d.zs, P.zs.size() * 4));
    CK(cudaMalloc(&d.x, P.x.size() * 2));
    CK(cudaMalloc(&d.y, (size_t)P.n * P.m * 4));
    CK(cudaMemcpy(d.qw, P.qw.data(), P.qw.size() * sizeof(uint4), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.zs, P.zs.data(), P.zs.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.x, P.x.data(), P.x.size() * 2, cudaMemcpyHostToDevice));
    return d;
}

static void release(dev_problem &d)
{
    cudaFree(d.qw);
    cudaFree(d.zs);
    cudaFree(d.x);
    cudaFree(d.y);
}

static size_t smem_bytes(int xs, int n16, int cps) { return WARPS * 16 * 32 * 4 + (xs ? (size_t)n16 * cps * CHUNK * 2 : 0); }

/* launches one call; false where the configuration does not fit */
static bool launch(const problem &P, const dev_problem &d, int xs, int S, cudaStream_t st, bool one = false)
{
    const int chunks = P.k / CHUNK, NT = P.n > 8 ? 2 : 1;
    if (chunks % S || (chunks / S) % (WARPS * MU)) return false;
    const int cps = chunks / S;
    size_t sm = smem_bytes(xs, NT * 8, cps);
    if (sm > 227 * 1024) return false;
    if (one && sm < 120 * 1024) sm = 120 * 1024; /* one block per SM, as qmv_kernel at 9-16 rows */
    const dim3 grid(P.m / 32, S);
    auto go = [&](auto kern) {
        CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        kern<<<grid, THREADS, sm, st>>>(d.y, d.qw, d.zs, d.x, P.n, P.k, P.m, cps);
    };
    if (NT == 2) {
        if (xs) go(probe_kernel<2, 1>);
        else go(probe_kernel<2, 0>);
    } else {
        if (xs) go(probe_kernel<1, 1>);
        else go(probe_kernel<1, 0>);
    }
    CK(cudaGetLastError());
    return true;
}

static int check(int n, int k, int m, int xs, int S)
{
    problem P;
    make(P, n, k, m, 12345 + n + xs);
    dev_problem d = upload(P);
    CK(cudaMemset(d.y, 0, (size_t)n * m * 4));
    if (!launch(P, d, xs, S, 0)) {
        std::printf("check n=%d k=%d m=%d xs=%d S=%d: does not fit\n", n, k, m, xs, S);
        release(d);
        return 1;
    }
    std::vector<float> y((size_t)n * m);
    CK(cudaMemcpy(y.data(), d.y, y.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0, ymax = 0;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < m; c++) {
            double ref = 0;
            for (int i = 0; i < k; i++) {
                const size_t gi = (size_t)(i / GROUP) * m + c;
                ref += ((double)P.q[(size_t)i * m + c] - P.z[gi]) * (double)__half2float(P.s[gi]) *
                       (double)__half2float(P.x[(size_t)r * k + i]);
            }
            worst = std::fmax(worst, std::fabs(ref - y[(size_t)r * m + c]));
            ymax = std::fmax(ymax, std::fabs(ref));
        }
    const bool ok = worst <= 1e-4 * ymax + 1e-6;
    std::printf("check n=%d k=%d m=%d xs=%d S=%d: max |err| %.3g of max |y| %.3g: %s\n", n, k, m, xs, S, worst, ymax,
                ok ? "ok" : "FAIL");
    release(d);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const double bw = argc > 1 ? std::atof(argv[1]) : 4234.0;
    int fails = 0;
    for (int xs = 0; xs < 2; xs++)
        for (int n : {16, 5})
            fails += check(n, 2048, 96, xs, 2);
    if (fails) {
        std::printf("%d check(s) failed: no timings\n", fails);
        return 1;
    }
    struct shape {
        const char *name;
        int k, m;
    } shapes[] = {{"o", 4096, 4096}, {"q,k,v", 4096, 6144}, {"down", 14336, 4096}, {"gate_up", 4096, 28672}};
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    std::printf("%-8s %3s %3s %3s %10s %8s\n", "shape", "n", "xs", "S", "us", "% of bw");
    for (const shape &sh : shapes)
        for (int n : {16, 12, 8, 4, 2, 1}) {
            problem P;
            make(P, n, sh.k, sh.m, 7);
            dev_problem d = upload(P);
            CK(cudaMemset(d.y, 0, (size_t)n * sh.m * 4));
            const double bytes = (double)sh.k * sh.m / 2 + (double)(sh.k / GROUP) * sh.m * 4 + (double)n * sh.k * 2 +
                                 (double)n * sh.m * 4;
            for (int v = 0; v < 3; v++) { /* xs 0, xs 1, xs 0 at one block per SM */
                const int xs = v == 1;
                const bool one = v == 2;
                double best = 1e30;
                int best_s = 0;
                for (int S : {1, 2, 4, 7, 8, 14}) {
                    if (!launch(P, d, xs, S, st, one)) continue; /* warm-up, and whether it fits */
                    cudaGraph_t gr;
                    cudaGraphExec_t ge;
                    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed));
                    for (int i = 0; i < 20; i++) launch(P, d, xs, S, st, one);
                    CK(cudaStreamEndCapture(st, &gr));
                    CK(cudaGraphInstantiate(&ge, gr, 0));
                    CK(cudaGraphLaunch(ge, st));
                    cudaEvent_t e0, e1;
                    CK(cudaEventCreate(&e0));
                    CK(cudaEventCreate(&e1));
                    CK(cudaEventRecord(e0, st));
                    for (int r = 0; r < 10; r++) CK(cudaGraphLaunch(ge, st));
                    CK(cudaEventRecord(e1, st));
                    CK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    const double us = ms * 1000.0 / 200.0;
                    std::printf("%-8s %3d %3s %3d %10.2f %7.1f%%\n", sh.name, n, one ? "0/1" : xs ? "1" : "0", S, us,
                                100.0 * bytes / (us * 1e-6) / (bw * 1e9));
                    if (us < best) best = us, best_s = S;
                    cudaGraphExecDestroy(ge);
                    cudaGraphDestroy(gr);
                    cudaEventDestroy(e0);
                    cudaEventDestroy(e1);
                }
                std::printf("best     %3d %3s %3d %10.2f %7.1f%%   (%s)\n", n, one ? "0/1" : xs ? "1" : "0", best_s, best,
                            100.0 * bytes / (best * 1e-6) / (bw * 1e9), sh.name);
            }
            release(d);
        }
    return 0;
}
