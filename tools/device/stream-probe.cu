/* tools/device/stream-probe.cu: how fast can a kernel shaped like the decode GEMV (qmv_kernel) read its weights
 * when it does nothing else (docs/PERFORMANCE.md, twenty-eighth run)? A pure read of the bytes of one decode weight,
 * every byte once, 16-byte __ldcs loads: each warp takes 512-byte chunks (lane l reads bytes 16 l.. of a chunk, as
 * qmv_kernel's lanes read the lane-ordered words) through a ring of R chunks in registers, the first R requested
 * before griddepcontrol.wait, the next one as each slot is consumed. Per chunk a warp may also issue WORK
 * independent FFMAs per lane (4 chains) on the loaded words, standing in for the dequantization and MMAs. Layouts:
 *   contig  block b reads the b-th equal share of the weight, each of its warps a contiguous part of that share
 *           (qmv_kernel: a block's tiles, a warp's chunk range of a tile);
 *   runs4   a block's share again, its warps interleaved in runs of 4 chunks (the block sweeps its share as one);
 *   grid    every warp of the grid takes chunk (global warp + i x all warps): the whole grid sweeps the weight.
 * Each case is 20 launches in one CUDA graph (programmatic dependent launch between them, as a decode step runs),
 * rotating over copies of the weight that together exceed L2 three times; us per launch (median of 15 replays) and
 * % of BW (GB/s, default 4234: chaski-bench's measured copy bandwidth on the H200).
 * Build and run (sm_90): nvcc -O3 -arch=sm_90 -o /tmp/stream-probe tools/device/stream-probe.cu && /tmp/stream-probe */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#include "probe_check.h"

enum { CONTIG = 0, RUNS4 = 1, GRID = 2 };

template <int R, int WORK>
__global__ void __launch_bounds__(512) rd(const uint4 *__restrict__ x, long cpb, int mode, unsigned *sink)
{
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const int W = (int)(blockDim.x >> 5), warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    const long cpw = cpb / W; /* chunks per warp */
    /* chunk index of this warp's i-th chunk */
    auto chunk = [&](long i) -> long {
        if (mode == CONTIG)
            return blockIdx.x * cpb + warp * cpw + i;
        if (mode == RUNS4)
            return blockIdx.x * cpb + ((i >> 2) * W + warp) * 4 + (i & 3);
        return (long)blockIdx.x * W + warp + i * (long)gridDim.x * W;
    };
    uint4 ring[R];
#pragma unroll
    for (int u = 0; u < R; u++)
        if (u < cpw)
            ring[u] = __ldcs(x + chunk(u) * 32 + lane);
    asm volatile("griddepcontrol.wait;" ::: "memory");
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    unsigned acc = 0;
    for (long i0 = 0; i0 < cpw; i0 += R) {
#pragma unroll
        for (int u = 0; u < R; u++) {
            if (i0 + u >= cpw)
                break;
            const uint4 v = ring[u];
            acc ^= v.x ^ v.y ^ v.z ^ v.w;
#pragma unroll
            for (int j = 0; j < WORK; j++)
                a[j & 3] = fmaf(a[j & 3], __uint_as_float(j & 1 ? v.y : v.z), __uint_as_float(v.w));
            if (i0 + u + R < cpw)
                ring[u] = __ldcs(x + chunk(i0 + u + R) * 32 + lane);
        }
    }
    if (acc == 0x12345678u || a[0] + a[1] + a[2] + a[3] == 1.2345f)
        *sink = acc;
}

using kfn = void (*)(const uint4 *, long, int, unsigned *);

struct pcase {
    const char *name;
    kfn fn;
    int mode, warps, blocks; /* blocks 0: 2 per SM */
};

int main(int argc, char **argv)
{
    const double bw = argc > 1 ? atof(argv[1]) : 4234.0;
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    /* the 8B's decode weights at 4 bits (g128 scales left out): o, q+k+v, down, gate+up; the planner's grids at n = 1 */
    struct wshape {
        const char *name;
        size_t bytes;
        int grid;
    } shapes[] = {{"o", (size_t)4096 * 4096 / 2, 256},
                  {"qkv", (size_t)4096 * 6144 / 2, 192},
                  {"down", (size_t)14336 * 4096 / 2, 256},
                  {"gate_up", (size_t)2 * 14336 * 4096 / 2, 224}};
    const size_t pool_bytes = (size_t)400 << 20;
    char *pool = nullptr;
    unsigned *sink = nullptr;
    CK(cudaMalloc(&pool, pool_bytes));
    CK(cudaMemset(pool, 1, pool_bytes));
    CK(cudaMalloc(&sink, 4));
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const pcase cases[] = {
        {"contig R8", rd<8, 0>, CONTIG, 8, -1},  {"contig R8 2/SM", rd<8, 0>, CONTIG, 8, 0},
        {"contig R4", rd<4, 0>, CONTIG, 8, -1},  {"contig R16", rd<16, 0>, CONTIG, 8, -1},
        {"runs4 R8", rd<8, 0>, RUNS4, 8, -1},    {"grid R8 2/SM", rd<8, 0>, GRID, 8, 0},
        {"contig R8 W16", rd<8, 0>, CONTIG, 16, -1},
        {"contig R8 +32", rd<8, 32>, CONTIG, 8, -1}, {"contig R8 +64", rd<8, 64>, CONTIG, 8, -1},
        {"contig R8 +128", rd<8, 128>, CONTIG, 8, -1},
    };
    std::printf("stream-probe: %d SMs, us per launch in a graph of 20 (median of 15), %% of %.0f GB/s; "
                "grid -1 = the planner's\n",
                sms, bw);
    std::printf("%-16s", "case");
    for (const wshape &s : shapes)
        std::printf(" %20s", s.name);
    std::printf("\n");
    for (const pcase &pc : cases) {
        std::printf("%-16s", pc.name);
        for (const wshape &s : shapes) {
            const int blocks = pc.blocks < 0 ? s.grid : 2 * sms;
            const long chunks = (long)(s.bytes / 512);
            long cpb = chunks / blocks;
            cpb -= cpb % (pc.warps * 4); /* whole runs of 4 per warp */
            const size_t read = (size_t)cpb * blocks * 512;
            const int sets = (int)std::min<size_t>(pool_bytes / s.bytes, std::max<size_t>(3, (180u << 20) / s.bytes + 1));
            cudaGraph_t g = nullptr;
            cudaGraphExec_t ge = nullptr;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
            for (int i = 0; i < 20; i++) {
                cudaLaunchConfig_t cfg = {};
                cfg.gridDim = dim3((unsigned)blocks);
                cfg.blockDim = dim3((unsigned)(32 * pc.warps));
                cfg.stream = st;
                cudaLaunchAttribute at[1];
                at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
                at[0].val.programmaticStreamSerializationAllowed = 1;
                cfg.attrs = at;
                cfg.numAttrs = 1;
                const uint4 *x = reinterpret_cast<const uint4 *>(pool + (size_t)(i % sets) * s.bytes);
                CK(cudaLaunchKernelEx(&cfg, pc.fn, x, cpb, pc.mode, sink));
            }
            CK(cudaStreamEndCapture(st, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            CK(cudaGraphLaunch(ge, st)); /* warm-up */
            std::vector<float> t;
            for (int r = 0; r < 15; r++) {
                CK(cudaEventRecord(e0, st));
                CK(cudaGraphLaunch(ge, st));
                CK(cudaEventRecord(e1, st));
                CK(cudaEventSynchronize(e1));
                float ms = 0.0f;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                t.push_back(ms * 1000.0f / 20.0f);
            }
            std::sort(t.begin(), t.end());
            const double us = t[t.size() / 2];
            std::printf(" %8.2f us %5.1f%%  ", us, 100.0 * (double)read / (us * 1e-6) / (bw * 1e9));
            CK(cudaGraphExecDestroy(ge));
            CK(cudaGraphDestroy(g));
        }
        std::printf("\n");
    }
    CK(cudaGetLastError());
    return 0;
}
