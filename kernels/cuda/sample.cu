/* kernels/cuda/sample.cu: the built-in sampling chain on the GPU, one float32 logits row per sequence
 * in, one token id (and its logprob) out. The chain and its order are specified in cuda_ops.h
 * (gpu_sample); tests/kernels/check_sample.cu holds the CPU oracle that spells out the same steps.
 * Two launches. sample_stats_kernel spreads every pass over the row across the GPU (blocks of at least
 * SMP_STAT_CHUNK entries of a row): the model row's max, argmax and sum of exp per block; for a row that penalties
 * or a logit bias adjust, the copy into a float scratch row of the workspace, the adjustment there (each block the
 * ids in its range; penalties count each history token once through an int scratch row, touching only the
 * history's entries) and the adjusted row's max, argmax and sum; for a row that takes top-k, each thread's largest
 * key. Then one block of 1024 threads per row (sample_kernel) merges those and runs the rest of the chain; a row
 * nothing adjusts is read where the model wrote it. One block reading a 128k row is slow however its loads are
 * issued (docs/PERFORMANCE.md: ~100 us with one dependent load per iteration, 39 us with SMP_INFLIGHT per thread in
 * flight (row_each), and in the twentieth run ~25-33 us per pass even so), so sample_kernel reads the row only where
 * top-k's bound below does not apply. Temperature is applied on the fly (l = v * (1 / T)).
 * Thresholds without a sort: keys are the float bits mapped to an order-preserving uint32; a threshold is a
 * 4-pass radix select on counts (top-k; 8 bits per pass, one shared-memory atomic per group of lanes with the same
 * bin) or on probability mass (top-p), each pass's bin chosen by one warp; min-p is the threshold
 * l >= max + log(min_p). Top-k first bounds its threshold from below: the k-th largest of the stats threads'
 * maxima. The entries at or above the bound lie in the partitions whose maximum is at or above it; those are read,
 * and up to SMP_CAND of the entries go to shared memory (sorted by id); the exact top-k runs on them, and top-p,
 * min-p and the draw read them instead of the row. Past SMP_CAND (top-k above it, or ties), or with top-k above
 * the partitions, the radix select and the rest read the row. The draw scans the kept weights in id order (a block
 * prefix sum over per-thread chunks).
 * Supports: any vocab >= 1 (int32), up to 65535 rows. Workspace: n_rows * (vocab * 8 + SMP_SPLIT_MAX * (24 +
 * 4 * SMP_STAT_THREADS)) bytes + 256 (gpu_sample_workspace_size).
 * Bytes (floor): n_rows * vocab * 4 (one read of the logits). */
#include <math.h>
#include "common.cuh"

#define SMP_THREADS 1024
#define SMP_INFLIGHT 16 /* row entries each thread has in flight */
#define SMP_STAT_THREADS 256
#define SMP_STAT_CHUNK 2048 /* row entries per sample_stats_kernel block, at least */
#define SMP_SPLIT_MAX 64   /* sample_stats_kernel blocks per row, at most */
#define SMP_CAND 1024      /* top-k candidates kept in shared memory, at most */

/* f(v, i) for every i < n of row p, thread tid taking i = tid, tid + blockDim.x, ... in that order; the loads of
 * SMP_INFLIGHT entries are issued before any is used. p may be written by this kernel (plain loads, not .nc). */
template <typename F>
static __device__ __forceinline__ void row_each(const float *p, int n, F f) {
    const int step = (int)blockDim.x;
    for (int base = (int)threadIdx.x; base < n; base += SMP_INFLIGHT * step) {
        float v[SMP_INFLIGHT];
#pragma unroll
        for (int u = 0; u < SMP_INFLIGHT; u++) {
            const int i = base + u * step;
            v[u] = i < n ? p[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < SMP_INFLIGHT; u++)
            if (base + u * step < n) f(v[u], base + u * step);
    }
}

/* f(v, i) for i = c0 .. c1 - 1 in order (a thread's own contiguous range), loads batched as row_each's; f returns
 * false to stop. */
template <typename F>
static __device__ __forceinline__ void range_each(const float *p, int c0, int c1, F f) {
    for (int base = c0; base < c1; base += SMP_INFLIGHT) {
        float v[SMP_INFLIGHT];
#pragma unroll
        for (int u = 0; u < SMP_INFLIGHT; u++) v[u] = base + u < c1 ? p[base + u] : 0.0f;
#pragma unroll
        for (int u = 0; u < SMP_INFLIGHT; u++)
            if (base + u < c1 && !f(v[u], base + u)) return;
    }
}

static __device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* smp_uniform(seed, counter, 0) of engine/sample: the host chain draws with the same number */
static __device__ __forceinline__ double uniform01(uint64_t seed, uint64_t counter) {
    const uint64_t r = mix64(mix64(mix64(seed) ^ counter));
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}
static __device__ __forceinline__ uint32_t fkey(float f) {
    const uint32_t b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct red_scratch {
    float f[32];
    int i[32];
    float g[32];
};

static __device__ float block_sum(float v, red_scratch *r) {
    v = warp_sum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) r->f[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += r->f[i];
    return t;
}

static __device__ int block_max_int(int v, red_scratch *r) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) r->i[threadIdx.x >> 5] = v;
    __syncthreads();
    int t = r->i[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++) t = max(t, r->i[i]);
    return t;
}

/* Inclusive prefix sum of v over the block's threads (blockDim.x a multiple of 32), also left in scan[tid]:
 * scan[blockDim.x - 1] is the total. Warp scans by shuffle, then one warp scans the warps' totals (two barriers
 * where a Hillis-Steele scan over shared memory took twenty). The caller synchronises before scan is written again. */
static __device__ float block_scan(float v, float *scan) {
    __shared__ float wsum[32];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, nw = (int)(blockDim.x >> 5);
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += t;
    }
    if (lane == 31) wsum[w] = v;
    __syncthreads();
    if (w == 0) {
        float x = lane < nw ? wsum[lane] : 0.0f;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float t = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += t;
        }
        const float ex = __shfl_up_sync(0xffffffffu, x, 1);
        wsum[lane] = lane > 0 ? ex : 0.0f; /* the warps before lane's */
    }
    __syncthreads();
    v += wsum[w];
    scan[tid] = v;
    __syncthreads();
    return v;
}

/* (max, argmax lowest id on ties, sum exp(v - max)) */
static __device__ __forceinline__ void msi_combine(float &m, int &idx, float &s, float m2, int i2, float s2) {
    if (m2 == -INFINITY && s2 == 0.0f) return;
    if (m == -INFINITY && s == 0.0f) { m = m2; idx = i2; s = s2; return; }
    const float M = fmaxf(m, m2);
    s = s * expf(m - M) + s2 * expf(m2 - M);
    idx = m > m2 ? idx : m2 > m ? i2 : min(idx, i2);
    m = M;
}

/* one entry v (id i) into a running (max, argmax, sum exp(v - max)); -inf and NaN entries are skipped */
static __device__ __forceinline__ void msi_add(float &m, int &idx, float &z, float v, int i) {
    if (v == -INFINITY || v != v) return;
    if (v > m) {
        z = z * expf(m - v) + 1.0f;
        m = v;
        idx = i;
    } else {
        z += expf(v - m);
    }
}

static __device__ void block_msi(float &m, int &idx, float &s, red_scratch *r) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        msi_combine(m, idx, s, m2, i2, s2);
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        r->f[threadIdx.x >> 5] = m;
        r->i[threadIdx.x >> 5] = idx;
        r->g[threadIdx.x >> 5] = s;
    }
    __syncthreads();
    m = r->f[0];
    idx = r->i[0];
    s = r->g[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++) msi_combine(m, idx, s, r->f[i], r->i[i], r->g[i]);
}

/* Radix select over the keys of the kept tokens (key >= floor_key): the largest key threshold whose
 * count (MASS = false) or mass (MASS = true) of tokens with key >= threshold reaches `target`. each(f) calls
 * f(l, id) for every token, spread over the block (the row, or the candidates in shared memory); KEYS: f(k, id)
 * with the key k itself as float bits (counts only). A count goes in
 * once per group of lanes with the same bin (most keys share the few top-byte bins of their exponent, so one
 * shared-memory atomic per lane serialised on them). */
template <bool MASS, typename Each, bool KEYS = false>
static __device__ uint32_t radix_threshold(Each each, float invT, float M, uint32_t floor_key, float target,
                                           float *hist_f, int *hist_i, int *s_bin, float *s_above) {
    static_assert(!(KEYS && MASS), "keys carry no mass");
    uint32_t prefix = 0, pmask = 0;
    float above = 0.0f; /* count or mass of tokens whose key prefix is above the current one */
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) {
            hist_f[b] = 0.0f;
            hist_i[b] = 0;
        }
        __syncthreads();
        each([&](float v, int) {
            const float l = v * invT;
            const uint32_t k = KEYS ? __float_as_uint(v) : fkey(l); /* KEYS: each gives keys as float bits */
            if (k >= floor_key && (k & pmask) == prefix) {
                const int b = (k >> shift) & 255;
                if (MASS) {
                    atomicAdd(&hist_f[b], expf(l - M));
                } else {
                    const unsigned peers = __match_any_sync(__activemask(), b);
                    if ((int)(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist_i[b], __popc(peers));
                }
            }
        });
        __syncthreads();
        if (threadIdx.x < 32) { /* the bins from the top down: lane L takes bins 255 - 8L .. 248 - 8L */
            const int lane = threadIdx.x;
            float h[8], own = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int b = 255 - 8 * lane - j;
                h[j] = MASS ? hist_f[b] : (float)hist_i[b];
                own += h[j];
            }
            float incl = own; /* the lanes' sums, inclusive prefix from lane 0 */
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float t = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += t;
            }
            const float before = __shfl_up_sync(0xffffffffu, incl, 1);
            float cum = above + (lane > 0 ? before : 0.0f), hit_cum = 0.0f, low_cum = 0.0f;
            int hit = -1, low = -1;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                if (h[j] > 0.0f) {
                    if (hit < 0 && cum + h[j] >= target) {
                        hit = j;
                        hit_cum = cum;
                    }
                    low = j;
                    low_cum = cum;
                }
                cum += h[j];
            }
            /* the first bin from the top whose count or mass reaches the target; if rounding kept the target out
             * of reach, everything in this prefix: the lowest non-empty bin (bin 0 when all are empty) */
            const unsigned hits = __ballot_sync(0xffffffffu, hit >= 0), lows = __ballot_sync(0xffffffffu, low >= 0);
            const int src = hits ? __ffs(hits) - 1 : lows ? 31 - __clz(lows) : 31;
            const int j = __shfl_sync(0xffffffffu, hits ? hit : low, src);
            const float c = __shfl_sync(0xffffffffu, hits ? hit_cum : low_cum, src);
            if (lane == 0) {
                *s_bin = hits || lows ? 255 - 8 * src - j : 0;
                *s_above = hits || lows ? c : above;
            }
        }
        __syncthreads();
        prefix |= (uint32_t)*s_bin << shift;
        pmask |= 255u << shift;
        above = *s_above;
        __syncthreads();
    }
    return prefix;
}

/* Whether row P's penalties change its logits (some penalty set, over a history). */
static __device__ __forceinline__ bool row_penalized(const gpu_sample_params &P) {
    const bool pen = P.repetition_penalty != 1.0f || P.frequency_penalty != 0.0f || P.presence_penalty != 0.0f;
    return pen && P.n_history > 0;
}
/* Whether penalties or a logit bias change row P's logits (then the chain reads the adjusted scratch copy). */
static __device__ __forceinline__ bool row_adjusted(const gpu_sample_params &P) {
    return row_penalized(P) || P.n_bias > 0;
}

/* sample_stats_kernel's partials in the workspace, per row and block (nsplit blocks per row). */
struct smp_parts {
    float *m, *z; /* the model row's max and sum of exp(v - max) */
    int *i;       /* its argmax (lowest id on ties) */
    float *am, *az; /* the same for the adjusted row (rows that penalties or a logit bias adjust) */
    int *ai;
    uint32_t *tk; /* [row][nsplit * SMP_STAT_THREADS]: each stats thread's largest key (fkey; 0: no entries),
                   * of the adjusted row; written for rows that take top-k only */
    int nsplit;
};

/* Whether row P takes top-k (the bound from the stats threads' maxima needs them). */
static __device__ __forceinline__ bool row_topk(const gpu_sample_params &P, int vocab) {
    return P.temperature > 0.0f && P.top_k > 0 && P.top_k < vocab;
}

/* The first pass, spread over the GPU: block (c, row) takes the row's entries [c * chunk, (c + 1) * chunk); thread j
 * of it the entries c * chunk + j + SMP_STAT_THREADS * u (row_each's order: the "partition" (c, j)). Writes the
 * model row's (max, argmax lowest id, sum exp(v - max)) of the block to partial c. An adjusted row is copied to the
 * scratch row and adjusted there, each block for the ids in its own range: the penalties (each distinct history
 * token once, with its count, through the int scratch row), then the logit bias; then the adjusted entries' (max,
 * argmax, sum) to the adjusted partial c. For rows that take top-k, each thread's largest key of the (adjusted)
 * entries of its partition goes to tk: sample_kernel's lower bound for top-k, and where to look for the entries
 * above it, without reading the row on one SM. */
static __global__ void __launch_bounds__(SMP_STAT_THREADS)
sample_stats_kernel(const float *logits, int64_t stride, int vocab, const gpu_sample_params *params,
                    const int32_t *history, const int32_t *bias_ids, const float *bias_values, float *scratch,
                    int32_t *counts, smp_parts pt) {
    __shared__ red_scratch red;
    const int c = blockIdx.x, row = blockIdx.y, tid = threadIdx.x, nsplit = pt.nsplit;
    const gpu_sample_params P = params[row];
    const bool adjust = row_adjusted(P), topk = row_topk(P, vocab);
    const int chunk = (vocab + nsplit - 1) / nsplit;
    const int c0 = min(vocab, c * chunk), c1 = min(vocab, c0 + chunk);
    const float *lg = logits + (size_t)row * stride + c0;
    float *srow = scratch + (size_t)row * vocab, *sc = srow + c0;
    uint32_t tk = 0; /* this thread's largest key */
    float m = -INFINITY, z = 0.0f;
    int idx = 0x7fffffff;
    /* one loop per case: the last (no adjustment, no top-k: greedy, top-p or min-p only) holds no more than its
     * loads and (m, idx, z) */
    if (adjust)
        row_each(lg, c1 - c0, [&](float v, int i) {
            sc[i] = v;
            msi_add(m, idx, z, v, c0 + i);
        });
    else if (topk)
        row_each(lg, c1 - c0, [&](float v, int i) {
            tk = max(tk, fkey(v));
            msi_add(m, idx, z, v, c0 + i);
        });
    else
        row_each(lg, c1 - c0, [&](float v, int i) { msi_add(m, idx, z, v, c0 + i); });
    block_msi(m, idx, z, &red); /* ends with a barrier: the block's copies are visible to it */
    const size_t pi = (size_t)row * nsplit + c;
    if (tid == 0) {
        pt.m[pi] = m;
        pt.i[pi] = idx;
        pt.z[pi] = z;
    }
    if (adjust) {
        if (row_penalized(P)) {
            const int32_t *hist = history + P.history_offset;
            int32_t *cnt = counts + (size_t)row * vocab;
            auto mine = [&](int id) { return id >= c0 && id < c1; };
            for (int i = tid; i < P.n_history; i += blockDim.x)
                if (mine(hist[i])) cnt[hist[i]] = 0;
            __syncthreads();
            for (int i = tid; i < P.n_history; i += blockDim.x)
                if (mine(hist[i])) atomicAdd(&cnt[hist[i]], 1);
            __syncthreads();
            for (int i = tid; i < P.n_history; i += blockDim.x) {
                const int id = hist[i];
                if (!mine(id)) continue;
                const int n = atomicExch(&cnt[id], 0);
                if (n > 0) {
                    float l = srow[id];
                    if (P.repetition_penalty != 1.0f) l = l > 0.0f ? l / P.repetition_penalty : l * P.repetition_penalty;
                    l -= P.frequency_penalty * (float)n + P.presence_penalty;
                    srow[id] = l;
                }
            }
            __syncthreads();
        }
        for (int b = tid; b < P.n_bias; b += blockDim.x) {
            const int id = bias_ids[P.bias_offset + b];
            if (id >= c0 && id < c1) atomicAdd(&srow[id], bias_values[P.bias_offset + b]);
        }
        __syncthreads();
        m = -INFINITY;
        z = 0.0f;
        idx = 0x7fffffff;
        row_each(sc, c1 - c0, [&](float v, int i) {
            if (topk) tk = max(tk, fkey(v));
            msi_add(m, idx, z, v, c0 + i);
        });
        block_msi(m, idx, z, &red);
        if (tid == 0) {
            pt.am[pi] = m;
            pt.ai[pi] = idx;
            pt.az[pi] = z;
        }
    }
    if (topk) pt.tk[pi * SMP_STAT_THREADS + tid] = tk;
}

static __global__ void __launch_bounds__(SMP_THREADS)
sample_kernel(int32_t *out_tokens, float *out_logprobs, const float *logits, int64_t stride, int vocab,
              const gpu_sample_params *params, const float *scratch, smp_parts pt) {
    __shared__ red_scratch red;
    __shared__ float hist_f[256];
    __shared__ int hist_i[256];
    __shared__ float scan[SMP_THREADS];
    __shared__ float cand_v[SMP_CAND];
    __shared__ __align__(16) int cand_i[SMP_CAND]; /* 16-byte reads in place_cand */
    __shared__ int s_bin, s_cnt;
    __shared__ float s_above;
    const int row = blockIdx.x, tid = threadIdx.x, nsplit = pt.nsplit;
    const gpu_sample_params P = params[row];
    const float *lg = logits + (size_t)row * stride;

    /* penalties or a logit bias adjust the row: sample_stats_kernel adjusted a copy in the scratch row; otherwise
     * every pass reads lg */
    const bool adjust = row_adjusted(P);
    const float *src = adjust ? scratch + (size_t)row * vocab : lg;
    /* 1. the model row's max, argmax and log-sum-exp (the logprob reference), and 2. the adjusted row's max and
     * argmax: sample_stats_kernel's partials */
    float mr = -INFINITY, zr = 0.0f;
    int amr = 0x7fffffff;
    const size_t p0 = (size_t)row * nsplit;
    for (int c = tid; c < nsplit; c += blockDim.x) msi_combine(mr, amr, zr, pt.m[p0 + c], pt.i[p0 + c], pt.z[p0 + c]);
    block_msi(mr, amr, zr, &red);
    const float lse_raw = mr + logf(zr);
    float m0 = mr, z0 = zr;
    int am = amr;
    if (adjust) {
        m0 = -INFINITY;
        z0 = 0.0f;
        am = 0x7fffffff;
        for (int c = tid; c < nsplit; c += blockDim.x) msi_combine(m0, am, z0, pt.am[p0 + c], pt.ai[p0 + c], pt.az[p0 + c]);
        block_msi(m0, am, z0, &red);
    }
    if (m0 == -INFINITY) { /* every token banned */
        if (tid == 0) {
            out_tokens[row] = 0;
            if (out_logprobs) out_logprobs[row] = -INFINITY;
        }
        return;
    }
    int tok = am;
    if (P.temperature > 0.0f) {
        const float invT = 1.0f / P.temperature;
        const float M = m0 * invT;
        /* the row's entries spread over the block, and this thread's contiguous range of them (the draw's) */
        auto over_row = [&](auto f) { row_each(src, vocab, f); };
        const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
        const int c0 = min(vocab, tid * chunk), c1 = min(vocab, c0 + chunk);
        uint32_t thr = 0;
        /* 5a. top-k (thresholds on the untempered row: temperature comes last). What it keeps goes, in id order,
         * to shared memory as candidates when it fits (ties can keep more than k): top-p, min-p and the draw then
         * read those instead of the row. */
        int n_cand = -1;
        auto over_cand = [&](auto f) {
            for (int j = tid; j < n_cand; j += blockDim.x) f(cand_v[j], cand_i[j]);
        };
        /* Candidates: entries of key >= bound to cand_v / cand_i in id order; their count, or -1 past SMP_CAND. Each
         * kept entry takes a slot from a shared-memory counter (`keep`), then place_cand moves it to its rank among
         * the kept ids (at most SMP_CAND = blockDim.x of them: one per thread). */
        auto keep = [&](float l, int i, uint32_t bound) {
            if (fkey(l) >= bound) {
                const int o = atomicAdd(&s_cnt, 1);
                if (o < SMP_CAND) {
                    cand_v[o] = l;
                    cand_i[o] = i;
                }
            }
        };
        auto place_cand = [&]() {
            __syncthreads();
            const int total = s_cnt;
            if (total > SMP_CAND) return -1;
            const float v = tid < total ? cand_v[tid] : 0.0f;
            const int id = tid < total ? cand_i[tid] : 0;
            int rank = 0;
            if (tid < total) {
                int j = 0;
                for (; j + 4 <= total; j += 4) { /* broadcast reads, 4 ids per load */
                    const int4 q = *reinterpret_cast<const int4 *>(cand_i + j);
                    rank += (q.x < id) + (q.y < id) + (q.z < id) + (q.w < id);
                }
                for (; j < total; j++) rank += cand_i[j] < id;
            }
            __syncthreads();
            if (tid < total) {
                cand_v[rank] = v;
                cand_i[rank] = id;
            }
            __syncthreads();
            return total;
        };
        const bool topk = row_topk(P, vocab);
        /* The stats threads' partitions (sample_stats_kernel): nparts, of which `filled` hold entries. */
        const int schunk = (vocab + nsplit - 1) / nsplit, nparts = nsplit * SMP_STAT_THREADS;
        int filled = 0;
        for (int c = 0; c < nsplit; c++) filled += min(SMP_STAT_THREADS, max(0, min(vocab, (c + 1) * schunk) - c * schunk));
        if (topk && P.top_k <= filled && P.top_k <= SMP_CAND) {
            /* A lower bound without reading the row here: the k-th largest of the partitions' maxima (their keys, from
             * sample_stats_kernel; 0 for an empty one) is at most the row's k-th largest (k partitions each hold an
             * entry at least that large). The entries at or above it lie in the partitions whose maximum is at or
             * above it, and only those are read: they are the candidates, and the exact top-k runs on them. */
            constexpr int TKU = SMP_SPLIT_MAX * SMP_STAT_THREADS / SMP_THREADS; /* partitions per thread, at most */
            uint32_t mk[TKU];
#pragma unroll
            for (int u = 0; u < TKU; u++) {
                const int p = tid + u * SMP_THREADS;
                mk[u] = p < nparts ? pt.tk[p0 * SMP_STAT_THREADS + p] : 0u;
            }
            auto over_keys = [&](auto f) {
#pragma unroll
                for (int u = 0; u < TKU; u++)
                    if (tid + u * SMP_THREADS < nparts) f(__uint_as_float(mk[u]), tid + u * SMP_THREADS);
            };
            const uint32_t bound = radix_threshold<false, decltype(over_keys), true>(
                over_keys, 1.0f, m0, 0u, (float)P.top_k, hist_f, hist_i, &s_bin, &s_above);
            if (tid == 0) s_cnt = 0;
            __syncthreads();
#pragma unroll
            for (int u = 0; u < TKU; u++) {
                const int p = tid + u * SMP_THREADS;
                if (p < nparts && mk[u] >= bound) {
                    const int e0 = min(vocab, (p / SMP_STAT_THREADS) * schunk), e1 = min(vocab, e0 + schunk);
                    for (int e = e0 + p % SMP_STAT_THREADS; e < e1; e += SMP_STAT_THREADS) keep(src[e], e, bound);
                }
            }
            n_cand = place_cand();
            if (n_cand >= 0)
                thr = radix_threshold<false>(over_cand, 1.0f, m0, 0u, (float)P.top_k, hist_f, hist_i, &s_bin,
                                             &s_above);
        }
        /* the row's entries of key >= bound as candidates, in one pass in row_each's order */
        auto compact = [&](uint32_t bound) {
            if (tid == 0) s_cnt = 0;
            __syncthreads();
            row_each(src, vocab, [&](float l, int i) { keep(l, i, bound); });
            return place_cand();
        };
        if (topk && n_cand < 0) { /* the radix select over the row, then its kept entries if they fit */
            thr = radix_threshold<false>(over_row, 1.0f, m0, 0u, (float)P.top_k, hist_f, hist_i, &s_bin, &s_above);
            if (P.top_k <= SMP_CAND) n_cand = compact(thr);
        }
        const int dchunk = (n_cand + blockDim.x - 1) / blockDim.x;
        const int d0 = min(n_cand, tid * dchunk), d1 = min(n_cand, d0 + dchunk);
        /* f(l, id) over this thread's contiguous range in id order, until f returns false */
        auto range = [&](auto f) {
            if (n_cand < 0) {
                range_each(src, c0, c1, f);
                return;
            }
            for (int j = d0; j < d1; j++)
                if (!f(cand_v[j], cand_i[j])) return;
        };
        /* 5b. top-p over what top-k kept */
        if (P.top_p < 1.0f) {
            float zk = 0.0f;
            auto add = [&](float l, int) {
                if (fkey(l) >= thr) zk += expf(l - m0);
            };
            if (n_cand < 0) over_row(add);
            else over_cand(add);
            zk = block_sum(zk, &red);
            const float target = fmaxf(P.top_p, 0.0f) * zk;
            thr = n_cand < 0
                      ? radix_threshold<true>(over_row, 1.0f, m0, thr, target, hist_f, hist_i, &s_bin, &s_above)
                      : radix_threshold<true>(over_cand, 1.0f, m0, thr, target, hist_f, hist_i, &s_bin, &s_above);
        }
        /* 5c. min-p */
        const float minp_thr = P.min_p > 0.0f ? m0 + logf(fminf(P.min_p, 1.0f)) : -INFINITY;
        /* 6. draw in id order */
        float local = 0.0f;
        range([&](float l, int) {
            if (fkey(l) >= thr && l >= minp_thr) local += expf(l * invT - M);
            return true;
        });
        /* thread tid's interval [scan[tid - 1], scan[tid]): the same floats on both sides of every boundary */
        const float incl = block_scan(local, scan), excl = tid > 0 ? scan[tid - 1] : 0.0f,
                    total = scan[blockDim.x - 1];
        const int last_nz = block_max_int(local > 0.0f ? tid : -1, &red);
        if (tid == 0) s_bin = -1;
        __syncthreads();
        const float target = (float)(uniform01(P.seed, P.counter) * (double)total);
        if (local > 0.0f && target >= excl && (target < incl || tid == last_nz)) {
            float acc = excl;
            int pick = -1, last = -1;
            range([&](float l, int i) {
                if (!(fkey(l) >= thr && l >= minp_thr)) return true;
                last = i;
                acc += expf(l * invT - M);
                if (target < acc) {
                    pick = i;
                    return false;
                }
                return true;
            });
            s_bin = pick >= 0 ? pick : last; /* one thread owns the target (intervals are contiguous) */
        }
        __syncthreads();
        if (s_bin >= 0) tok = s_bin; /* else (cannot happen) the argmax */
    }
    if (tid == 0) {
        out_tokens[row] = tok;
        if (out_logprobs) out_logprobs[row] = lg[tok] - lse_raw;
    }
}

extern "C" size_t gpu_sample_workspace_size(int n_rows, int vocab) {
    if (n_rows <= 0 || vocab <= 0) return 0;
    return (size_t)n_rows * vocab * (sizeof(float) + sizeof(int32_t)) +
           (size_t)n_rows * SMP_SPLIT_MAX * (4 * sizeof(float) + 2 * sizeof(int) + SMP_STAT_THREADS * sizeof(uint32_t)) +
           256;
}

extern "C" int gpu_sample(int32_t *out_tokens, float *out_logprobs, const float *logits, int64_t logits_stride,
                          int n_rows, int vocab, const gpu_sample_params *params, const int32_t *history,
                          const int32_t *bias_ids, const float *bias_values, void *workspace, size_t workspace_size,
                          cudaStream_t stream) {
    if (n_rows < 0 || vocab < 1 || logits_stride < vocab)
        return GPU_FAIL(GPU_UNSUPPORTED, "sample: n_rows=%d vocab=%d stride=%lld", n_rows, vocab, (long long)logits_stride);
    if (n_rows == 0) return GPU_OK;
    const size_t need = gpu_sample_workspace_size(n_rows, vocab);
    if (!workspace || workspace_size < need)
        return GPU_FAIL(GPU_EWORKSPACE, "sample: workspace %zu < %zu bytes", workspace_size, need);
    float *scratch = (float *)(((uintptr_t)workspace + 255) & ~(uintptr_t)255);
    int32_t *counts = (int32_t *)(scratch + (size_t)n_rows * vocab);
    const size_t np = (size_t)n_rows * SMP_SPLIT_MAX;
    smp_parts pt;
    pt.m = (float *)(counts + (size_t)n_rows * vocab);
    pt.z = pt.m + np;
    pt.am = pt.z + np;
    pt.az = pt.am + np;
    pt.i = (int *)(pt.az + np);
    pt.ai = pt.i + np;
    pt.tk = (uint32_t *)(pt.ai + np);
    /* blocks per row: at least SMP_STAT_CHUNK entries each, at most SMP_SPLIT_MAX, and about two per SM over all
     * rows (many rows fill the GPU with fewer blocks each: 63 per row at 64 rows took 52 us against 39 us for one
     * block per row, H200) */
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        sms = 132;
    int nsplit = (vocab + SMP_STAT_CHUNK - 1) / SMP_STAT_CHUNK;
    if (nsplit > SMP_SPLIT_MAX) nsplit = SMP_SPLIT_MAX;
    if (nsplit > 2 * sms / n_rows) nsplit = 2 * sms / n_rows;
    if (nsplit < 1) nsplit = 1;
    if (n_rows > 65535)
        return GPU_FAIL(GPU_UNSUPPORTED, "sample: n_rows=%d above the grid's 65535", n_rows);
    pt.nsplit = nsplit;
    sample_stats_kernel<<<dim3(nsplit, n_rows), SMP_STAT_THREADS, 0, stream>>>(
        logits, logits_stride, vocab, params, history, bias_ids, bias_values, scratch, counts, pt);
    GPU_CHECK_LAUNCH("sample_stats_kernel");
    sample_kernel<<<n_rows, SMP_THREADS, 0, stream>>>(out_tokens, out_logprobs, logits, logits_stride, vocab, params,
                                                      scratch, pt);
    GPU_CHECK_LAUNCH("sample_kernel");
    return GPU_OK;
}
