/* tools/device/l2pf-probe.cu: does an L2 prefetch of a weight make its later streaming read faster on this GPU
 * (docs/PERFORMANCE.md twenty-second run)? A buffer X of S bytes is read by a streaming kernel (16-byte __ldcs
 * loads, every byte once, 2 blocks of 256 threads per SM, as the decode kernel reads its weights) after L2 has been
 * flushed (a 256 MiB read), in these ways; printed: the read's time (us, CUDA events, median of R) and its rate:
 *   cold       nothing before it;
 *   warm       a plain read of X, then a 20 us spin on one block, then the timed read;
 *   bulk       cp.async.bulk.prefetch.L2 of X in 4 KiB pieces (one per thread, the grid of the read), the spin,
 *              the read;
 *   bulk-half  the same, the first 2 KiB of every 4 KiB piece;
 *   line       prefetch.global.L2 of every 128-byte line, the spin, the read;
 *   bulk-now   bulk without the spin (the read right behind the prefetch).
 * Also printed: how long the bulk prefetch kernel itself takes (whether a block waits for its prefetches).
 * Build and run (sm_90): nvcc -O3 -arch=sm_90 -o /tmp/l2pf tools/device/l2pf-probe.cu && /tmp/l2pf */
#include <algorithm>
#include <cstdio>
#include <vector>
#include <cuda_runtime.h>

#include "probe_check.h"

constexpr int THREADS = 256, R = 15;

__global__ void read_cs(const uint4 *x, size_t n, unsigned *sink)
{
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = __ldcs(x + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u)
        *sink = acc;
}

__global__ void read_plain(const uint4 *x, size_t n, unsigned *sink)
{
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = x[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u)
        *sink = acc;
}

__global__ void pf_bulk(const char *x, size_t bytes, unsigned piece, unsigned take)
{
    const size_t np = (bytes + piece - 1) / piece;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < np; i += (size_t)gridDim.x * blockDim.x) {
        const size_t off = i * piece;
        const unsigned sz = (unsigned)(bytes - off < take ? bytes - off : take);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(x + off), "r"(sz) : "memory");
    }
}

__global__ void pf_line(const char *x, size_t bytes)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < bytes / 128; i += (size_t)gridDim.x * blockDim.x)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(x + i * 128) : "memory");
}

__global__ void spin(long long cycles)
{
    const long long t0 = clock64();
    while (clock64() - t0 < cycles) {
    }
}

int main()
{
    int sms = 0, clock_khz = 0, l2 = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    std::printf("%d SMs, L2 %d KiB, clock %d MHz\n", sms, l2 >> 10, clock_khz / 1000);
    const size_t flush_bytes = (size_t)256 << 20, max_bytes = (size_t)64 << 20;
    char *x = nullptr, *fl = nullptr;
    unsigned *sink = nullptr;
    CK(cudaMalloc(&x, max_bytes));
    CK(cudaMalloc(&fl, flush_bytes));
    CK(cudaMalloc(&sink, 4));
    CK(cudaMemset(x, 1, max_bytes));
    CK(cudaMemset(fl, 2, flush_bytes));
    cudaEvent_t e0, e1, p0, p1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaEventCreate(&p0));
    CK(cudaEventCreate(&p1));
    const long long spin_cycles = (long long)clock_khz * 20 / 1000; /* 20 us */
    const int grid = 2 * sms;
    const char *names[] = {"cold", "warm", "bulk", "bulk-half", "line", "bulk-now"};
    for (size_t mb : {8, 16, 32}) {
        const size_t bytes = mb << 20;
        for (int mode = 0; mode < 6; mode++) {
            std::vector<float> t, tp;
            for (int r = 0; r < R; r++) {
                read_plain<<<grid, THREADS>>>(reinterpret_cast<const uint4 *>(fl), flush_bytes / 16, sink);
                CK(cudaEventRecord(p0));
                if (mode == 1)
                    read_plain<<<grid, THREADS>>>(reinterpret_cast<const uint4 *>(x), bytes / 16, sink);
                if (mode == 2 || mode == 5)
                    pf_bulk<<<grid, THREADS>>>(x, bytes, 4096, 4096);
                if (mode == 3)
                    pf_bulk<<<grid, THREADS>>>(x, bytes, 4096, 2048);
                if (mode == 4)
                    pf_line<<<grid, THREADS>>>(x, bytes);
                CK(cudaEventRecord(p1));
                if (mode != 0 && mode != 5)
                    spin<<<1, 32>>>(spin_cycles);
                CK(cudaEventRecord(e0));
                read_cs<<<grid, THREADS>>>(reinterpret_cast<const uint4 *>(x), bytes / 16, sink);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms = 0, pms = 0;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                CK(cudaEventElapsedTime(&pms, p0, p1));
                t.push_back(ms * 1000);
                tp.push_back(pms * 1000);
            }
            std::sort(t.begin(), t.end());
            std::sort(tp.begin(), tp.end());
            const float us = t[R / 2];
            std::printf("%2zu MiB %-10s read %7.2f us (%6.0f GB/s)   before it: %7.2f us\n", mb, names[mode], us,
                        bytes / (us * 1e3), tp[R / 2]);
        }
    }
    CK(cudaGetLastError());
    return 0;
}
