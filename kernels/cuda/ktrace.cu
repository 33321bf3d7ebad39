/* kernels/cuda/ktrace.cu: the host side of the kernel timeline trace (common.cuh, CHASKI_KTRACE). A diagnostic for
 * builds made with -DCHASKI_KTRACE=1 only; in other builds both calls do nothing.
 *
 * gpu_ktrace_init: with CHASKI_KTRACE=PATH in the environment, a ring of 2^CHASKI_KTRACE_LOG2 (default 20) block
 * records in device memory, its address given to every kernel file's kt_g. gpu_ktrace_dump: the ring's last records
 * (those of the most recent launches), sorted by start, written to PATH as CSV: start, wait and end in ns from the
 * first record's start (wait 0: the block did not wait), grid size, block, SM, and the kernel's kt_mark points 0-5
 * (0: not passed). The CUDA backend calls init when it is created and dump when it is destroyed.
 * tools/device/ktrace-summary.py groups the records into launches. */
#include "common.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#if CHASKI_KTRACE
static std::vector<cudaError_t (*)(kt_state *)> &kt_binds()
{
    static std::vector<cudaError_t (*)(kt_state *)> v;
    return v;
}
void kt_register(cudaError_t (*bind)(kt_state *)) { kt_binds().push_back(bind); }
static kt_state *kt_dev;
static unsigned kt_cap;
static const char *kt_path;
#endif

extern "C" int gpu_ktrace_init(void)
{
#if CHASKI_KTRACE
    kt_path = getenv("CHASKI_KTRACE");
    if (!kt_path || !*kt_path || kt_dev)
        return GPU_OK;
    const char *l = getenv("CHASKI_KTRACE_LOG2");
    const int lg = l ? atoi(l) : 20;
    if (lg < 10 || lg > 26)
        return GPU_FAIL(GPU_UNSUPPORTED, "CHASKI_KTRACE_LOG2=%s: expected 10 to 26", l);
    kt_cap = 1u << lg;
    const size_t bytes = sizeof(kt_state) + (size_t)(kt_cap - 1) * sizeof(kt_rec);
    GPU_CHECK(cudaMalloc(&kt_dev, bytes));
    const unsigned mask = kt_cap - 1;
    cudaError_t e = cudaMemset(kt_dev, 0, bytes);
    if (e == cudaSuccess)
        e = cudaMemcpy(&kt_dev->mask, &mask, sizeof mask, cudaMemcpyHostToDevice);
    for (auto bind : kt_binds())
        if (e == cudaSuccess)
            e = bind(kt_dev);
    if (e != cudaSuccess) { /* nothing left half set up: every file unbound, the ring freed */
        for (auto bind : kt_binds())
            (void)bind(nullptr);
        (void)cudaFree(kt_dev);
        kt_dev = nullptr;
        return GPU_FAIL(GPU_ELAUNCH, "ktrace: setting up the ring: %s", cudaGetErrorString(e));
    }
    fprintf(stderr, "ktrace: %u records of %zu bytes, %zu kernel files, dump to %s\n", kt_cap, sizeof(kt_rec),
            kt_binds().size(), kt_path);
#endif
    return GPU_OK;
}

extern "C" int gpu_ktrace_dump(void)
{
#if CHASKI_KTRACE
    if (!kt_dev)
        return GPU_OK;
    GPU_CHECK(cudaDeviceSynchronize());
    unsigned n = 0;
    GPU_CHECK(cudaMemcpy(&n, &kt_dev->n, sizeof n, cudaMemcpyDeviceToHost));
    const unsigned have = std::min(n, kt_cap);
    std::vector<kt_rec> r(kt_cap);
    GPU_CHECK(cudaMemcpy(r.data(), kt_dev->rec, (size_t)kt_cap * sizeof(kt_rec), cudaMemcpyDeviceToHost));
    { /* each slot's last block: its times are still in the slot's stamps (a later block would have copied them) */
        std::vector<unsigned> cur(KT_SLOTS);
        std::vector<unsigned long long> st((size_t)KT_SLOTS * 8);
        GPU_CHECK(cudaMemcpy(cur.data(), kt_dev->cur, cur.size() * sizeof(unsigned), cudaMemcpyDeviceToHost));
        GPU_CHECK(cudaMemcpy(st.data(), kt_dev->stamp, st.size() * sizeof(unsigned long long),
                             cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < cur.size(); i++)
            if (cur[i] && cur[i] - 1 < kt_cap)
                kt_stamps_to(r[cur[i] - 1], &st[i * 8]);
    }
    /* a block's red.min issued just before its exit can land after the next block on its slot reset the line: that
     * block then holds a time from before its own start, dropped here (0: not passed) */
    for (kt_rec &e : r) {
        auto own = [&](unsigned long long &m) {
            if (m && (m < e.t0 || (e.t1 && m > e.t1)))
                m = 0;
        };
        own(e.tw);
        for (unsigned long long &m : e.tm)
            own(m);
    }
    r.resize(have); /* n < cap: the first n slots; else the whole ring (its oldest records overwritten) */
    std::sort(r.begin(), r.end(), [](const kt_rec &a, const kt_rec &b) { return a.t0 < b.t0; });
    for (auto bind : kt_binds()) /* no kernel records into the ring once it is freed */
        (void)bind(nullptr);
    (void)cudaFree(kt_dev);
    kt_dev = nullptr;
    FILE *f = fopen(kt_path, "w");
    if (!f)
        return GPU_FAIL(GPU_UNSUPPORTED, "ktrace: cannot write %s", kt_path);
    fprintf(f, "start_ns,wait_ns,end_ns,grid,block,sm,mark0_ns,mark1_ns,mark2_ns,mark3_ns,mark4_ns,mark5_ns\n");
    const unsigned long long base = have ? r[0].t0 : 0;
    for (const kt_rec &e : r) {
        fprintf(f, "%llu,%llu,%llu,%u,%u,%u", e.t0 - base, e.tw ? e.tw - base : 0ull, e.t1 ? e.t1 - base : 0ull,
                e.grid, e.block, e.smid);
        for (unsigned long long m : e.tm)
            fprintf(f, ",%llu", m ? m - base : 0ull);
        fputc('\n', f);
    }
    fclose(f);
    fprintf(stderr, "ktrace: %u of %u records written to %s\n", have, n, kt_path);
#endif
    return GPU_OK;
}
