/* tools/device/pdl-hop.cu: what one kernel boundary costs in a CUDA graph (docs/PERFORMANCE.md eighteenth run).
 * A graph of N dependent launches of a kernel that reads what the launch before it wrote and writes one int per
 * thread (256 threads per block), replayed R times; printed: microseconds per launch, for grids of 8, 132 and 264
 * blocks and three ways of ordering the launches:
 *   stream   plain stream order;
 *   pdl      programmatic dependent launch: griddepcontrol.launch_dependents first, griddepcontrol.wait before
 *            the read (what every kernel of chaski's decode step does);
 *   flag     launched as pdl, but waiting on an arrival counter in global memory (thread 0 spins with ld.acquire;
 *            each block of the producer adds 1 after __threadfence) instead of griddepcontrol.wait.
 * Build and run (sm_90): nvcc -O3 -arch=sm_90 -o /tmp/pdl-hop tools/device/pdl-hop.cu && /tmp/pdl-hop */
#include <cstdio>
#include <cuda_runtime.h>

#include "probe_check.h"

enum { STREAM, PDL, FLAG };
constexpr int THREADS = 256, MAX_BLOCKS = 264, N = 256, R = 50;

__global__ void hop(const int *prev, int *cur, unsigned *arrived, int i, int mode)
{
    if (mode != STREAM)
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    if (mode == PDL)
        asm volatile("griddepcontrol.wait;" ::: "memory");
    if (mode == FLAG && i > 0) {
        if (threadIdx.x == 0) {
            unsigned v;
            do
                asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(arrived + i - 1) : "memory");
            while (v < gridDim.x);
        }
        __syncthreads();
    }
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    cur[t] = __ldcg(prev + t) + 1;
    if (mode == FLAG) {
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();
            atomicAdd(arrived + i, 1u);
        }
    }
}

int main()
{
    const size_t half = (size_t)MAX_BLOCKS * THREADS;
    int *buf;
    unsigned *arrived;
    CK(cudaMalloc(&buf, 2 * half * sizeof(int)));
    CK(cudaMalloc(&arrived, N * sizeof(unsigned)));
    CK(cudaMemset(buf, 0, 2 * half * sizeof(int)));
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const char *names[] = {"stream", "pdl", "flag"};
    for (int blocks : {8, 132, MAX_BLOCKS})
        for (int mode : {STREAM, PDL, FLAG}) {
            cudaGraph_t g;
            cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
            CK(cudaMemsetAsync(arrived, 0, N * sizeof(unsigned), s));
            for (int i = 0; i < N; i++) {
                cudaLaunchConfig_t c = {};
                cudaLaunchAttribute a[1];
                a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
                a[0].val.programmaticStreamSerializationAllowed = 1;
                c.gridDim = dim3(blocks);
                c.blockDim = dim3(THREADS);
                c.stream = s;
                c.attrs = a;
                c.numAttrs = mode != STREAM && i > 0 ? 1 : 0;
                const int *prev = buf + (i & 1) * half;
                int *cur = buf + ((i + 1) & 1) * half;
                CK(cudaLaunchKernelEx(&c, hop, prev, cur, arrived, i, mode));
            }
            CK(cudaStreamEndCapture(s, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            for (int w = 0; w < 5; w++)
                CK(cudaGraphLaunch(ge, s));
            CK(cudaEventRecord(e0, s));
            for (int r = 0; r < R; r++)
                CK(cudaGraphLaunch(ge, s));
            CK(cudaEventRecord(e1, s));
            CK(cudaEventSynchronize(e1));
            float ms = 0.0f;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            std::printf("grid %3d %-6s %.3f us per launch\n", blocks, names[mode], ms * 1000.0f / (R * N));
            CK(cudaGraphExecDestroy(ge));
            CK(cudaGraphDestroy(g));
        }
    return 0;
}
