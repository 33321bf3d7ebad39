/* kernels/cuda/attention_decode.cu: paged attention for one query per sequence (decode), flash-decoding.
 * Contract (with attention_prefill.cu, behind gpu_attention in this file): as cpu_attention_paged.
 * Decode configuration: n_tokens == n_seqs (token s is sequence s's query), head_dim D in {64, 128},
 * FP16/BF16, n_heads % n_kv_heads == 0, q_stride % 8 == 0.
 * Work split: grid (split, head group, sequence). A head group is GT query heads of one kv head
 * (GT = largest of 8, 4, 2, 1 dividing n_heads / n_kv_heads; 4 for 8 at short contexts: dec_gt), so each K/V row is
 * read once for GT heads. Each sequence's key range [lo, pos] (lo from the sliding window) is cut into even chunks,
 * one per live split (n_splits, or fewer for a short range: at most one per dec_min_chunk keys); inside a block,
 * subgroups of D/8 lanes each own one key at a time (16-byte loads, KT keys in flight per subgroup), keep an
 * online softmax (base-2, q pre-scaled by scale * log2 e) and merge through shared memory; past DEC_SHORT_CTX keys
 * of context, GT 4 and 8 take a tensor-core loop instead (dec_mma_block: warps of 16-key tiles in mma.sync). With
 * one live split the block writes the output; otherwise it writes a float partial (normalised row + log-sum-exp) to the
 * workspace, and the last of the live splits of a (sequence, head group) to finish (an arrival counter at the
 * start of the workspace, reset by that block) merges them in split order and writes the output: no second
 * kernel (it cost a launch per layer in the decode step's chain).
 * Bytes (floor): K and V rows read once per kv head: 2 * sum_s(ctx_s) * n_kv_heads * D * sizeof(T),
 * plus q and out. FLOPs: 4 * sum_s(ctx_s) * n_heads * D. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "common.cuh"
#include "attention_internal.cuh"
#include "rope_math.cuh"

#define DEC_THREADS 128
/* dec_wide's blocks: GQA 4's pipelined kernel with twice the subgroups, one block per SM at its 253 registers */
#define DEC_THREADS_WIDE 256
/* the merge's one-pass form (decode_kernel) for at most this many live splits */
#define DEC_FAST_MERGE 16

/* K and V rows of keys j0 .. j0 + KT - 1 (those < end), this lane's 16 bytes of each */
template <typename T, int D, int KT>
static __device__ __forceinline__ void load_keys(uint4 (&kr)[KT], uint4 (&vr)[KT], int j0, int end, const int32_t *pt,
                                                 int page_size, const T *k_pool, const T *v_pool, size_t row_stride,
                                                 int kvh, int li) {
#pragma unroll
    for (int i = 0; i < KT; i++) {
        const int j = j0 + i;
        if (j < end) {
            const int page = pt[j / page_size];
            const size_t off = ((size_t)page * page_size + j % page_size) * row_stride + (size_t)kvh * D + li * 8;
            kr[i] = *reinterpret_cast<const uint4 *>(k_pool + off);
            vr[i] = *reinterpret_cast<const uint4 *>(v_pool + off);
        } else {
            kr[i] = make_uint4(0, 0, 0, 0);
            vr[i] = make_uint4(0, 0, 0, 0);
        }
    }
}

/* The splits that get keys: a sequence of len keys takes at most one split per min_chunk keys (the launch's
 * n_splits is chosen for the longest context the caller allows, and a graph replays it at every length): at depth 0
 * one split writes the output and there is nothing to merge. */
static __device__ __forceinline__ int dec_live_splits(int len, int n_splits, int min_chunk) {
    return max(1, min(n_splits, (len + min_chunk - 1) / min_chunk));
}

/* gpu_attention_rope_x: the step's rotary embedding of q and of the new key (rot = head_dim) and the cache write of
 * that key and its value, done by the decode kernel instead of a gpu_rope_kv launch before it. inv_freq NULL: off
 * (q rotated and the row at qpos written already). k, v: the new keys and values, rows k_stride / v_stride apart. */
struct dec_rope {
    const void *k, *v;
    int k_stride, v_stride, n_pages;
    const float *inv_freq;
    float mscale;
};

/* This lane's 8 dims d = 8 li .. of a row rotated (rope_math.cuh): the partner dims d +- D/2 are lane li ^ L/2's
 * (shuffled: every lane of the warp calls this), c and s those of pair (d mod D/2); rounded to T as gpu_rope stores
 * them */
template <typename T, int L>
static __device__ __forceinline__ uint4 rope_row8(uint4 x, bool lo, const float (&c)[8], const float (&s)[8]) {
    vec8<T> a, b, y;
    a.u = x;
    b.u.x = __shfl_xor_sync(0xffffffffu, x.x, L / 2);
    b.u.y = __shfl_xor_sync(0xffffffffu, x.y, L / 2);
    b.u.z = __shfl_xor_sync(0xffffffffu, x.z, L / 2);
    b.u.w = __shfl_xor_sync(0xffffffffu, x.w, L / 2);
    float xs[8], ps[8], ys[8];
    a.to_float(xs);
    b.to_float(ps);
#pragma unroll
    for (int e = 0; e < 8; e++) ys[e] = lo ? rope_lo(xs[e], ps[e], c[e], s[e]) : rope_hi(ps[e], xs[e], c[e], s[e]);
    y.from_float(ys);
    return y.u;
}

/* The tensor-core form of the block's key loop (decode_kernel with MMA; dec_mma_block). Each warp takes tiles of 16
 * keys (warp w: tiles w, w + NW, ...); lane (g, t) = (lane / 4, lane % 4) holds keys base + g and base + g + 8, 16
 * bytes of each 32-dim chunk c (dims 32c + 8t ..), and head g's q in the same dims. With a chunk's dims read in this
 * order as the k index, all of mma.sync m16n8k16 (float accumulators):
 * - scores S = K q^T: A the tile's keys (rows), B q^T (columns: the group's GT heads, the rest zero), D / 16 a tile;
 *   lane (g, t) gets keys g and g + 8 of heads 2t, 2t + 1;
 * - the output O^T = V^T P^T: A V^T, V's 8 x 8 tiles (one register of each lane: keys g, dims 8t + 2j ..)
 *   transposed by movmatrix; B P^T, the probabilities packed to T and transposed the same way; D / 16 a tile; lane
 *   (g, t) holds heads 2t, 2t + 1 of two dims per m-tile (dec_mma_dim), so the running maximum's correction is its own.
 * A tile costs D / 8 mma and D / 4 + 2 movmatrix per warp, where the scalar loop spends some 130 instructions a key
 * (Nsight Compute, the 8B's 16 sequences at 512 keys: issue-bound at 1.7 IPC, 25% of the copy rate). The key at
 * qpos is a tile of one key of its own (dec_mma_block): written (with rope) or read after the wait. */
template <typename T, int D>
static __device__ __forceinline__ void mma_load_tile(uint4 (&k)[2][D / 32], uint4 (&v)[2][D / 32], int base,
                                                     int kend, const int32_t *pt, int page_size, const T *k_pool,
                                                     const T *v_pool, size_t row_stride, int kvh, int g, int t) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = base + g + 8 * r;
        if (j < kend) {
            const size_t off =
                ((size_t)pt[j / page_size] * page_size + j % page_size) * row_stride + (size_t)kvh * D + 8 * t;
#pragma unroll
            for (int c = 0; c < D / 32; c++) {
                k[r][c] = *reinterpret_cast<const uint4 *>(k_pool + off + 32 * c);
                v[r][c] = *reinterpret_cast<const uint4 *>(v_pool + off + 32 * c);
            }
        } else {
#pragma unroll
            for (int c = 0; c < D / 32; c++) {
                k[r][c] = make_uint4(0, 0, 0, 0);
                v[r][c] = make_uint4(0, 0, 0, 0);
            }
        }
    }
}

/* movmatrix: an 8 x 8 tile of 16-bit elements (lane l: row l / 4, columns 2 (l % 4), + 1) transposed */
static __device__ __forceinline__ uint32_t movm_trans(uint32_t x) {
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}
static __device__ __forceinline__ uint32_t u4_word(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}
template <typename T> static __device__ __forceinline__ uint32_t pack_t2(float a, float b) {
    const typename dt_traits<T>::T2 h = dt_traits<T>::from_f2(a, b);
    return *reinterpret_cast<const uint32_t *>(&h);
}
/* the dim of row g (+ 8 for hi) of O^T's m-tile (c, jp) */
static __device__ __forceinline__ int dec_mma_dim(int c, int jp, int g, bool hi) {
    return 32 * c + 8 * (g >> 1) + 4 * jp + (hi ? 2 : 0) + (g & 1);
}

/* one tile of 16 keys from base (keys >= kend masked) into the warp's online softmax of heads 2t + e: m[e] (running
 * maximum, base 2), l[e] (this lane's share of the sum), o[c][jp] (O^T's m-tile (c, jp): e, and 2 + e for row g + 8) */
template <typename T, int D>
static __device__ __forceinline__ void mma_tile(const uint4 (&k)[2][D / 32], const uint4 (&v)[2][D / 32], int base,
                                                int kend, const uint4 (&qa)[D / 32], float scale_log2, float (&m)[2],
                                                float (&l)[2], float (&o)[D / 32][2][4], int g) {
    constexpr int NC = D / 32;
    float sc[4]; /* keys g (0, 1) and g + 8 (2, 3) of heads 2t, 2t + 1 */
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t a[4] = {h ? k[0][c].z : k[0][c].x, h ? k[1][c].z : k[1][c].x, h ? k[0][c].w : k[0][c].y,
                                   h ? k[1][c].w : k[1][c].y};
            if (c == 0 && h == 0)
                qmma_t<T>::mma_z(sc, a, h ? qa[c].z : qa[c].x, h ? qa[c].w : qa[c].y);
            else
                qmma_t<T>::mma(sc, a, h ? qa[c].z : qa[c].x, h ? qa[c].w : qa[c].y);
        }
    const bool v0 = base + g < kend, v1 = base + g + 8 < kend;
    float corr[2], p[4];
#pragma unroll
    for (int e = 0; e < 2; e++) {
        const float s0 = v0 ? sc[e] * scale_log2 : -INFINITY, s1 = v1 ? sc[2 + e] * scale_log2 : -INFINITY;
        float mx = fmaxf(s0, s1);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        const float mn = fmaxf(m[e], mx);
        const float mb = mn == -INFINITY ? 0.0f : mn; /* no valid key yet: keep everything at 0 */
        corr[e] = exp2f(m[e] - mb);
        m[e] = mn;
        p[e] = exp2f(s0 - mb);
        p[2 + e] = exp2f(s1 - mb);
        l[e] = l[e] * corr[e] + p[e] + p[2 + e];
    }
    /* P^T's B fragment: keys 2t, 2t + 1 (b0) and 2t + 8, 2t + 9 (b1) of head g */
    const uint32_t b0 = movm_trans(pack_t2<T>(p[0], p[1])), b1 = movm_trans(pack_t2<T>(p[2], p[3]));
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int jp = 0; jp < 2; jp++) {
            const uint32_t a[4] = {movm_trans(u4_word(v[0][c], 2 * jp)), movm_trans(u4_word(v[0][c], 2 * jp + 1)),
                                   movm_trans(u4_word(v[1][c], 2 * jp)), movm_trans(u4_word(v[1][c], 2 * jp + 1))};
#pragma unroll
            for (int i = 0; i < 4; i++) o[c][jp][i] *= corr[i & 1];
            qmma_t<T>::mma(o[c][jp], a, b0, b1);
        }
}

/* This lane's chunks of a row (dims 32c + 8t ..) rotated at the step's position: pair (d, d + D/2) is chunks c and
 * c + D/64 of the same lane; cm, sn: cos and sin of pair 32cc + 8t + g, this lane's share (shuffled to the lanes
 * of the same t); rounded to T as gpu_rope stores them. Every lane of the warp calls it. */
template <typename T, int D>
static __device__ __forceinline__ void mma_rope(uint4 (&x)[D / 32], const float (&cm)[D / 64],
                                                const float (&sn)[D / 64], int t) {
    constexpr int H = D / 64;
#pragma unroll
    for (int cc = 0; cc < H; cc++) {
        vec8<T> a, b;
        a.u = x[cc];
        b.u = x[cc + H];
        float xa[8], xb[8], ya[8], yb[8];
        a.to_float(xa);
        b.to_float(xb);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float c = __shfl_sync(0xffffffffu, cm[cc], 4 * e + t);
            const float s = __shfl_sync(0xffffffffu, sn[cc], 4 * e + t);
            ya[e] = rope_lo(xa[e], xb[e], c, s);
            yb[e] = rope_hi(xa[e], xb[e], c, s);
        }
        a.from_float(ya);
        b.from_float(yb);
        x[cc] = a.u;
        x[cc + H] = b.u;
    }
}

/* decode_kernel's block with MMA: keys [start, end) of sequence s for heads h0 .. h0 + GT - 1, its warps' softmax
 * states into sm_m, sm_l, sm_acc (NTH / 32 of them) for the merge after it. Requests its warps' first two tiles, then
 * waits (gdc_wait). */
template <typename T, int D, int GT, int NTH>
static __device__ __forceinline__ void dec_mma_block(float (&sm_m)[NTH / 32][GT], float (&sm_l)[NTH / 32][GT],
                                                     float (&sm_acc)[NTH / 32][GT][D], const T *q, int q_stride,
                                                     const T *k_pool, const T *v_pool, const int32_t *pt,
                                                     int max_pages, int page_size, size_t row_stride, int kvh, int s,
                                                     int h0, int qpos, int start, int end, float scale_log2,
                                                     const dec_rope &rp) {
    static_assert(GT <= 8, "a group's heads are the 8 columns of the scores' mma");
    constexpr int NW = NTH / 32, NC = D / 32, TS = 16 * NW; /* warps, 32-dim chunks, keys per round of tiles */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int kend = min(end, qpos); /* the cached keys; the one at qpos is a tile of its own after them */
    const int base0 = start + 16 * warp;
    uint4 k0[2][NC], v0[2][NC], k1[2][NC], v1[2][NC];
    mma_load_tile<T, D>(k0, v0, base0, kend, pt, page_size, k_pool, v_pool, row_stride, kvh, g, t);
    mma_load_tile<T, D>(k1, v1, base0 + TS, kend, pt, page_size, k_pool, v_pool, row_stride, kvh, g, t);
    const bool rope = rp.inv_freq != nullptr;
    float cm[D / 64], sn[D / 64];
#pragma unroll
    for (int cc = 0; cc < D / 64; cc++) {
        cm[cc] = 0.0f;
        sn[cc] = 0.0f;
        if (rope) rope_cs(qpos, __ldg(rp.inv_freq + 32 * cc + 8 * t + g), rp.mscale, &cm[cc], &sn[cc]);
    }
    gdc_wait();
    /* The new key: key slot 0 of a tile of its own, taken by warp w_new, whose turn the tile holding qpos would be
     * (at short contexts a warp with no cached keys, beside the others). Requested with q where that warp's second
     * tile holds no cached key (early: into k1, v1, which its loop then leaves alone), else after its tiles. */
    const bool has_new = qpos >= start && qpos < end; /* block-uniform */
    const int w_new = ((qpos - start) >> 4) % NW;
    const bool early = has_new && warp == w_new && base0 + TS >= kend; /* warp-uniform */
    const int pg = has_new ? (qpos / page_size < max_pages ? pt[qpos / page_size] : -1) : -1;
    const size_t off = ((size_t)max(pg, 0) * page_size + qpos % page_size) * row_stride + (size_t)kvh * D + 8 * t;
    auto load_new = [&](uint4(&kx)[2][NC], uint4(&vx)[2][NC]) {
#pragma unroll
        for (int c = 0; c < NC; c++) {
            kx[0][c] = kx[1][c] = vx[0][c] = vx[1][c] = make_uint4(0, 0, 0, 0);
            if (g == 0 && rope) {
                kx[0][c] = *reinterpret_cast<const uint4 *>(static_cast<const T *>(rp.k) + (size_t)s * rp.k_stride +
                                                             (size_t)kvh * D + 32 * c + 8 * t);
                vx[0][c] = *reinterpret_cast<const uint4 *>(static_cast<const T *>(rp.v) + (size_t)s * rp.v_stride +
                                                             (size_t)kvh * D + 32 * c + 8 * t);
            } else if (g == 0 && pg >= 0) { /* written by the launch before (gdc_wait above) */
                kx[0][c] = *reinterpret_cast<const uint4 *>(k_pool + off + 32 * c);
                vx[0][c] = *reinterpret_cast<const uint4 *>(v_pool + off + 32 * c);
            }
        }
    };
    if (early) load_new(k1, v1);
    uint4 qa[NC];
#pragma unroll
    for (int c = 0; c < NC; c++)
        qa[c] = g < GT ? *reinterpret_cast<const uint4 *>(q + (size_t)s * q_stride + (size_t)(h0 + g) * D + 32 * c +
                                                          8 * t)
                       : make_uint4(0, 0, 0, 0);
    if (rope) mma_rope<T, D>(qa, cm, sn, t);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[NC][2][4];
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int jp = 0; jp < 2; jp++)
#pragma unroll
            for (int i = 0; i < 4; i++) o[c][jp][i] = 0.0f;
    for (int base = base0; base < kend; base += 2 * TS) { /* warp-uniform */
        mma_tile<T, D>(k0, v0, base, kend, qa, scale_log2, m, l, o, g);
        mma_load_tile<T, D>(k0, v0, base + 2 * TS, kend, pt, page_size, k_pool, v_pool, row_stride, kvh, g, t);
        if (base + TS >= kend) break;
        mma_tile<T, D>(k1, v1, base + TS, kend, qa, scale_log2, m, l, o, g);
        mma_load_tile<T, D>(k1, v1, base + 3 * TS, kend, pt, page_size, k_pool, v_pool, row_stride, kvh, g, t);
    }
    /* the new key's tile: rotated and written where gpu_kv_write would put it (a page outside the pool: not) */
    auto fold_new = [&](uint4(&kx)[2][NC], uint4(&vx)[2][NC]) {
        if (rope) {
            mma_rope<T, D>(kx[0], cm, sn, t);
            if (g == 0 && pg >= 0 && pg < rp.n_pages)
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    *reinterpret_cast<uint4 *>(const_cast<T *>(k_pool) + off + 32 * c) = kx[0][c];
                    *reinterpret_cast<uint4 *>(const_cast<T *>(v_pool) + off + 32 * c) = vx[0][c];
                }
        }
        /* a row at qpos outside the page table (a caller's error; no rope to write it): masked, not a zero key */
        mma_tile<T, D>(kx, vx, qpos, rope || pg >= 0 ? qpos + 1 : qpos, qa, scale_log2, m, l, o, g);
    };
    if (early) {
        fold_new(k1, v1);
    } else if (has_new && warp == w_new) {
        load_new(k0, v0);
        fold_new(k0, v0);
    }
#pragma unroll
    for (int e = 0; e < 2; e++) {
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 4);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 8);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 16);
        const int h = 2 * t + e;
        if (h < GT) {
            if (g == 0) {
                sm_m[warp][h] = m[e];
                sm_l[warp][h] = l[e];
            }
#pragma unroll
            for (int c = 0; c < NC; c++)
#pragma unroll
                for (int jp = 0; jp < 2; jp++) {
                    sm_acc[warp][h][dec_mma_dim(c, jp, g, false)] = o[c][jp][e];
                    sm_acc[warp][h][dec_mma_dim(c, jp, g, true)] = o[c][jp][2 + e];
                }
        }
    }
}

/* PIPE: the loads of the next iteration's keys are issued before the current ones are used (twice the
 * registers for K/V, twice the bytes in flight per warp). NTH: threads per block (DEC_THREADS; DEC_THREADS_WIDE for
 * dec_wide's launches) */
template <typename T, int D, int GT, int KT, bool PIPE, int NTH = DEC_THREADS, bool MMA = false>
static __global__ void __launch_bounds__(NTH)
decode_kernel(T *out, const T *q, int q_stride, const T *k_pool, const T *v_pool, const int32_t *page_table,
              int max_pages, int page_size, int n_kv_heads, const int32_t *pos, int n_heads, int window,
              float scale_log2, int n_splits, float *ws_o, float *ws_lse, unsigned *ws_cnt, T *xp,
              const int32_t *xpos, int min_chunk, int pre2, const dec_rope rp) {
    GDC_LAUNCH_DEPENDENTS();
    /* launched with PDL (gpu_launch_pdl). Before gdc_wait: what no kernel of the step writes, the step's metadata
     * (pos, the page table: copied before its first kernel) and the first keys' K/V rows at positions before qpos
     * (earlier steps'). After it: q and the row at qpos (written by the cache write just before). */
    constexpr int L = D / 8;           /* lanes per key */
    constexpr int NSG = MMA ? NTH / 32 : NTH / L; /* subgroups (MMA: warps) per block */
    const int split = blockIdx.x, hg = blockIdx.y, s = blockIdx.z;
    const int h0 = hg * GT;
    const int kvh = h0 / (n_heads / n_kv_heads);
    const int sg = threadIdx.x / L, li = threadIdx.x % L;

    const int qpos = pos[s];
    const int hi = qpos + 1;
    const int lo = window > 0 ? max(0, qpos - window + 1) : 0;
    const int eff = dec_live_splits(hi - lo, n_splits, min_chunk);
    if (split >= eff)
        return; /* a short context: its keys fit in fewer splits than the launch has (split 0 is always live and
                   waits, so the grid never completes before the previous one) */
    const int chunk = (hi - lo + eff - 1) / eff;
    const int start = lo + split * chunk;
    const int end = min(start + chunk, hi);
    const int32_t *pt = page_table + (size_t)s * max_pages;
    const size_t row_stride = (size_t)n_kv_heads * D;

    __shared__ float sm_m[NSG][GT], sm_l[NSG][GT];
    __shared__ float sm_acc[NSG][GT][D];
    /* sm_xq: the block's outputs' places in xp's packed order (gpu_attention_x with one live split: the block writes
     * the output), heads h0.. contiguous in xpos, copied to shared memory before the wait (no kernel writes xpos;
     * cp.async: no registers held across the key loop, where the short contexts' kernel has none to spare), so the
     * output's second store does not wait an L2 round trip at the end of the step's critical path. Not in the MMA
     * kernels (long contexts: blocks per SM count there, and a round trip is a small part of their time) */
    __shared__ __align__(16) int sm_xq[MMA ? 4 : GT * D];
    const bool xq_on = !MMA && xp && eff == 1;
    if (xq_on)
        for (int i = threadIdx.x; i < GT * D / 4; i += NTH)
            cp_async16(sm_xq + 4 * i, xpos + (size_t)h0 * D + 4 * i);
    if constexpr (MMA) {
        dec_mma_block<T, D, GT, NTH>(sm_m, sm_l, sm_acc, q, q_stride, k_pool, v_pool, pt, max_pages, page_size,
                                     row_stride, kvh, s, h0, qpos, start, end, scale_log2, rp);
        kt_mark(0);
    } else {
        /* the loop bound is uniform across each warp (its subgroups shuffle inside one warp) */
        constexpr int SUB = 32 / L; /* subgroups per warp */
        const int warp_first = start + (sg / SUB) * SUB * KT;
        const int j_first = warp_first + (sg % SUB) * KT; /* this subgroup's first keys */
        uint4 kr[KT], vr[KT]; /* the first iteration's keys: those before qpos now, the one at qpos after the wait */
        /* PIPE with pre2 (block-uniform): the second iteration's keys (kn, vn) are requested before the wait too, so
         * the loop requests iteration i + 1's keys from its second iteration on. own_new: the row at qpos is among
         * this subgroup's keys of the first iteration (1) or of the second (2, pre2 only) */
        uint4 kn[KT], vn[KT];
        const int j_second = j_first + NSG * KT;
        const bool pre_next = PIPE && pre2 && warp_first + NSG * KT < end; /* warp-uniform */
        const int own_new = warp_first < end && qpos < end && qpos >= j_first && qpos < j_first + KT           ? 1
                            : pre_next && qpos < end && qpos >= j_second && qpos < j_second + KT ? 2
                                                                                                   : 0;
        size_t new_off = 0; /* the row at qpos, if among this subgroup's requested keys: its address before the wait */
        if (warp_first < end) {
            load_keys<T, D, KT>(kr, vr, j_first, min(end, qpos), pt, page_size, k_pool, v_pool, row_stride, kvh, li);
            if (pre_next)
                load_keys<T, D, KT>(kn, vn, j_second, min(end, qpos), pt, page_size, k_pool, v_pool, row_stride, kvh,
                                    li);
            if (own_new)
                new_off = ((size_t)pt[qpos / page_size] * page_size + qpos % page_size) * row_stride + (size_t)kvh * D +
                          li * 8;
        }
        /* rp.inv_freq: cos and sin of this lane's dims at qpos, before the wait (the step's metadata) */
        const bool rope = rp.inv_freq != nullptr, lo_half = li < L / 2;
        float rc[8], rs[8];
        if (rope) {
#pragma unroll
            for (int e = 0; e < 8; e++)
                rope_cs(qpos, __ldg(rp.inv_freq + (li * 8 + e) % (D / 2)), rp.mscale, &rc[e], &rs[e]);
        }
        gdc_wait();
        /* q (the previous kernel's output) requested first: its loads and the new key's below share one L2 round trip
         * (after the rope's barrier they were a second one on the step's critical path) */
        uint4 qraw[GT];
#pragma unroll
        for (int g = 0; g < GT; g++)
            qraw[g] = *reinterpret_cast<const uint4 *>(q + (size_t)s * q_stride + (size_t)(h0 + g) * D + li * 8);
        if (rope) {
            if (qpos >= start && qpos < end) { /* the split that holds the new key (block-uniform): rotate it here */
                const uint4 kx = *reinterpret_cast<const uint4 *>(static_cast<const T *>(rp.k) +
                                                                   (size_t)s * rp.k_stride + (size_t)kvh * D + li * 8);
                const uint4 vx = *reinterpret_cast<const uint4 *>(static_cast<const T *>(rp.v) +
                                                                   (size_t)s * rp.v_stride + (size_t)kvh * D + li * 8);
                const uint4 ky = rope_row8<T, L>(kx, lo_half, rc, rs);
                /* the cache row, by subgroup 0, where gpu_kv_write would put it (a page outside the pool: skipped, as
                 * there). Every head group of the kv head writes the same bytes; its own later loads of keys read it
                 * after the barrier below, which only a split whose first iteration ends before qpos needs (the loop
                 * meets qpos later); the first iteration's keys are in registers already (own_new, below) */
                const int pg = qpos / page_size < max_pages ? pt[qpos / page_size] : -1;
                if (sg == 0 && pg >= 0 && pg < rp.n_pages) {
                    const size_t off =
                        ((size_t)pg * page_size + qpos % page_size) * row_stride + (size_t)kvh * D + li * 8;
                    *reinterpret_cast<uint4 *>(const_cast<T *>(k_pool) + off) = ky;
                    *reinterpret_cast<uint4 *>(const_cast<T *>(v_pool) + off) = vx;
                }
                if (own_new == 1) {
#pragma unroll
                    for (int i = 0; i < KT; i++)
                        if (j_first + i == qpos) {
                            kr[i] = ky;
                            vr[i] = vx;
                        }
                } else if (own_new == 2) {
#pragma unroll
                    for (int i = 0; i < KT; i++)
                        if (j_second + i == qpos) {
                            kn[i] = ky;
                            vn[i] = vx;
                        }
                }
                if (qpos >= start + NSG * KT) /* block-uniform */
                    __syncthreads();
            }
        } else if (own_new == 1) {
#pragma unroll
            for (int i = 0; i < KT; i++)
                if (j_first + i == qpos) {
                    kr[i] = *reinterpret_cast<const uint4 *>(k_pool + new_off);
                    vr[i] = *reinterpret_cast<const uint4 *>(v_pool + new_off);
                }
        } else if (own_new == 2) {
#pragma unroll
            for (int i = 0; i < KT; i++)
                if (j_second + i == qpos) {
                    kn[i] = *reinterpret_cast<const uint4 *>(k_pool + new_off);
                    vn[i] = *reinterpret_cast<const uint4 *>(v_pool + new_off);
                }
        }

        float qf[GT][8];
#pragma unroll
        for (int g = 0; g < GT; g++) {
            vec8<T> v;
            v.u = qraw[g];
            if (rope) v.u = rope_row8<T, L>(v.u, lo_half, rc, rs);
            v.to_float(qf[g]);
#pragma unroll
            for (int e = 0; e < 8; e++) qf[g][e] *= scale_log2;
        }
        kt_mark(3); /* thread 0's q in (and rotated): CHASKI_KTRACE builds */
        float m[GT], l[GT], acc[GT][8];
#pragma unroll
        for (int g = 0; g < GT; g++) {
            m[g] = -INFINITY;
            l[g] = 0.0f;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
        }
        for (int base = warp_first; base < end; base += NSG * KT) {
            const int j0 = base + (sg % SUB) * KT; /* may be >= end: then every key of this subgroup is masked */
            if (PIPE) {
                if (base + NSG * KT < end && !(pre_next && base == warp_first)) /* pre_next: requested already */
                    load_keys<T, D, KT>(kn, vn, j0 + NSG * KT, end, pt, page_size, k_pool, v_pool, row_stride, kvh, li);
            } else if (base != warp_first) { /* the first iteration's keys are in kr, vr already */
                load_keys<T, D, KT>(kr, vr, j0, end, pt, page_size, k_pool, v_pool, row_stride, kvh, li);
            }
            float sc[KT][GT];
#pragma unroll
            for (int i = 0; i < KT; i++) {
                float kf[8];
                vec8<T> kv8;
                kv8.u = kr[i];
                kv8.to_float(kf);
#pragma unroll
                for (int g = 0; g < GT; g++) {
                    float d = 0.0f;
#pragma unroll
                    for (int e = 0; e < 8; e++) d = fmaf(qf[g][e], kf[e], d);
#pragma unroll
                    for (int o = L / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                    sc[i][g] = j0 + i < end ? d : -INFINITY;
                }
            }
#pragma unroll
            for (int g = 0; g < GT; g++) {
                float mx = m[g];
#pragma unroll
                for (int i = 0; i < KT; i++) mx = fmaxf(mx, sc[i][g]);
                const float mb = mx == -INFINITY ? 0.0f : mx; /* no valid key yet: keep everything at 0 */
                const float corr = exp2f(m[g] - mb);
                m[g] = mx;
                l[g] *= corr;
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] *= corr;
#pragma unroll
                for (int i = 0; i < KT; i++) {
                    const float p = exp2f(sc[i][g] - mb);
                    l[g] += p;
                    float vf[8];
                    vec8<T> vv8;
                    vv8.u = vr[i];
                    vv8.to_float(vf);
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[g][e] = fmaf(p, vf[e], acc[g][e]);
                }
            }
            if (PIPE) {
#pragma unroll
                for (int i = 0; i < KT; i++) {
                    kr[i] = kn[i];
                    vr[i] = vn[i];
                }
            }
        }

        kt_mark(0);
        /* merge the subgroups of the block */
#pragma unroll
        for (int g = 0; g < GT; g++) {
            if (li == 0) {
                sm_m[sg][g] = m[g];
                sm_l[sg][g] = l[g];
            }
#pragma unroll
            for (int e = 0; e < 8; e++) sm_acc[sg][g][li * 8 + e] = acc[g][e];
        }
    }
    cp_async_wait_all(); /* sm_xq */
    __syncthreads();
    kt_mark(4); /* every subgroup's softmax state in shared memory */
    for (int idx = threadIdx.x; idx < GT * D; idx += NTH) {
        const int g = idx / D, d = idx % D;
        float M = -INFINITY;
        for (int i = 0; i < NSG; i++) M = fmaxf(M, sm_m[i][g]);
        float Lsum = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int i = 0; i < NSG; i++) {
                const float w = exp2f(sm_m[i][g] - M);
                Lsum += w * sm_l[i][g];
                O += w * sm_acc[i][g][d];
            }
        }
        const int h = h0 + g;
        if (eff == 1) {
            const T v = dt_traits<T>::from_f(Lsum > 0.0f ? O / Lsum : 0.0f);
            out[((size_t)s * n_heads + h) * D + d] = v;
            if (xp) /* gpu_attention_x: also in the o projection's packed order */
                xp[(size_t)s * n_heads * D + (xq_on ? sm_xq[idx] : __ldg(xpos + h * D + d))] = v;
        } else {
            const size_t row = ((size_t)s * n_heads + h) * n_splits + split;
            ws_o[row * D + d] = Lsum > 0.0f ? O / Lsum : 0.0f;
            if (d == 0) ws_lse[row] = Lsum > 0.0f ? M + log2f(Lsum) : -INFINITY;
        }
    }
    if (eff == 1)
        return;
    /* the last live split of this (sequence, head group) to arrive merges the partials */
    __shared__ int last;
    __threadfence(); /* this thread's partials, visible device-wide before the arrival is counted */
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned *cnt = ws_cnt + (size_t)s * gridDim.y + hg;
        last = atomicAdd(cnt, 1u) == (unsigned)eff - 1;
        if (last)
            atomicExch(cnt, 0u); /* every live split has arrived: zero for the next launch */
    }
    __syncthreads();
    kt_mark(1);
    if (!last)
        return;
    __threadfence();
    /* the merged output of head h0 + g, dims d..d+3: O / W (r = 1 / W), to out (and xp) */
    auto put4 = [&](int g, int d, float4 O, float r) {
        const int h = h0 + g;
        T *o = out + ((size_t)s * n_heads + h) * D + d;
        const T v[4] = {dt_traits<T>::from_f(O.x * r), dt_traits<T>::from_f(O.y * r), dt_traits<T>::from_f(O.z * r),
                        dt_traits<T>::from_f(O.w * r)};
#pragma unroll
        for (int e = 0; e < 4; e++) o[e] = v[e];
        if (xp) { /* gpu_attention_x */
            const int4 at = __ldg(reinterpret_cast<const int4 *>(xpos + h * D + d));
            T *xrow = xp + (size_t)s * n_heads * D;
            xrow[at.x] = v[0];
            xrow[at.y] = v[1];
            xrow[at.z] = v[2];
            xrow[at.w] = v[3];
        }
    };
    if (GT >= 4 && eff <= DEC_FAST_MERGE) {
        /* few splits (depths up to 16 x dec_min_chunk keys): each thread requests its 4 dims of every partial and
         * every split's log-sum-exp at once and weighs them itself: one L2 round trip on the step's critical path
         * instead of two (the weights' pass, then the partials in rounds of 8). GT >= 4 only: their kernels hold
         * more registers than this needs, while the GT 1 and 2 kernels' went from 72 and 111 to 151 (ptxas), fewer
         * blocks per SM at their 8 */
        for (int idx = 4 * threadIdx.x; idx < GT * D; idx += 4 * NTH) {
            const int g = idx / D, d = idx % D;
            const size_t row0 = ((size_t)s * n_heads + h0 + g) * n_splits;
            float lse[DEC_FAST_MERGE];
            float4 po[DEC_FAST_MERGE];
#pragma unroll
            for (int i = 0; i < DEC_FAST_MERGE; i++)
                if (i < eff) {
                    lse[i] = __ldcg(ws_lse + row0 + i);
                    po[i] = __ldcg(reinterpret_cast<const float4 *>(ws_o + (row0 + i) * D + d));
                }
            float M = -INFINITY;
#pragma unroll
            for (int i = 0; i < DEC_FAST_MERGE; i++)
                if (i < eff) M = fmaxf(M, lse[i]);
            float W = 0.0f;
            float4 O = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
            for (int i = 0; i < DEC_FAST_MERGE; i++)
                if (i < eff) {
                    const float w = M == -INFINITY ? 0.0f : exp2f(lse[i] - M);
                    W += w;
                    O.x = fmaf(w, po[i].x, O.x);
                    O.y = fmaf(w, po[i].y, O.y);
                    O.z = fmaf(w, po[i].z, O.z);
                    O.w = fmaf(w, po[i].w, O.w);
                }
            put4(g, d, O, W > 0.0f ? 1.0f / W : 0.0f);
        }
        return;
    }
    /* each head's split weights 2^(lse_i - max) once, by one warp per head, into shared memory (the partials are
     * other blocks' writes: read from L2, __ldcg); then every output is one pass of independent loads */
    __shared__ float wsp[GT][DEC_MAX_SPLITS], winv[GT];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int g = warp; g < GT; g += NTH / 32) {
        const float *lse = ws_lse + ((size_t)s * n_heads + h0 + g) * n_splits;
        float M = -INFINITY;
        for (int i = lane; i < eff; i += 32) M = fmaxf(M, __ldcg(lse + i));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        float W = 0.0f;
        for (int i = lane; i < eff; i += 32) {
            const float w = M == -INFINITY ? 0.0f : exp2f(__ldcg(lse + i) - M);
            wsp[g][i] = w;
            W += w;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) W += __shfl_xor_sync(0xffffffffu, W, o);
        if (lane == 0) winv[g] = W > 0.0f ? 1.0f / W : 0.0f;
    }
    __syncthreads();
    for (int idx = 4 * threadIdx.x; idx < GT * D; idx += 4 * NTH) { /* 4 dims per thread: 16-byte loads */
        const int g = idx / D, d = idx % D;
        const float4 *po = reinterpret_cast<const float4 *>(ws_o + ((size_t)s * n_heads + h0 + g) * n_splits * D + d);
        float4 O = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
        for (int i = 0; i < eff; i++) {
            const float w = wsp[g][i];
            const float4 v = __ldcg(po + (size_t)i * (D / 4));
            O.x = fmaf(w, v.x, O.x);
            O.y = fmaf(w, v.y, O.y);
            O.z = fmaf(w, v.z, O.z);
            O.w = fmaf(w, v.w, O.w);
        }
        put4(g, d, O, winv[g]);
    }
}

/* Decode tuning for benches (gpu_attention_decode_tuning, or CHASKI_DECODE_TUNING="variant,blocks_per_sm"
 * in the environment, read once): 0 = the default kernel. */
static int g_dec_variant = 0, g_dec_blocks_per_sm = 0 /* 0: the default */, g_dec_env_read = 0;
static int g_dec_min_chunk = -1;

/* Short contexts: a launch whose context bucket (max_ctx: a graph replays it at every length up to that) is at most
 * DEC_SHORT_CTX keys, or DEC_GQA8_CTX for the second rule at G = 8. Both measured on the H200 (docs/PERFORMANCE.md,
 * thirtieth and thirty-first runs); CHASKI_DEC_SHORT=0 turns them off, =N (2..1048576) sets N keys as the bound of
 * both (benches):
 * - GQA groups of 4 take KT 4 pipelined, not KT 8 pipelined: 8B gptq4-g128 FP16 batch 1, tg32 at depth 0 / 128 /
 *   224 +2.9 / +0.6 / -0.2%, EXL2 BF16 at depth 0 +2.7%. Its 8 subgroups x 4 keys take the first 32 keys of a
 *   context in one round, where KT 8 gave each thread twice the products, half of them on keys past the end. At
 *   depth 512 (a bucket of 1024) the two were equal at batch 1, and at depths 512 and 4096 KT 4 was 0.2-1.3% slower
 *   (thirty-first run), so longer contexts keep KT 8.
 * - GQA groups of 8 (the 70B) run as two head groups of 4 per kv head: twice the blocks, half the products per
 *   thread, in the kernel above instead of GT 8's (KT 2, 227 registers); each group reads the kv
 *   head's rows, the second mostly from L2 while a layer's rows fit there. 70B exl2-4.0, against GT 8: tg32 at depth
 *   0 89.2 against 86.4 tok/s (thirtieth run); at depth 512 / 4096 (buckets of 1024 / 8192) +2.9 / +2.6%, batch 4 / 16
 *   at depth 512 +3.6 / +5.2%; but at depth 16384 / 30464 (a bucket of 32768: 64-120 MB of rows a layer, over the
 *   L2) -3.3 / -7% (thirty-first run). So up to DEC_GQA8_CTX keys. Other multiples of 8 (MQA with many heads: each
 *   kv row read G / 4 times) only up to DEC_SHORT_CTX: checked, not timed. */
#define DEC_SHORT_CTX 256
#define DEC_GQA8_CTX 8192
static int dec_short_ctx(bool gqa8) {
    static int v = -1; /* -1: not read; -2: the defaults */
    if (v == -1) {
        const char *e = getenv("CHASKI_DEC_SHORT");
        const int n = e ? atoi(e) : -2;
        v = n == 0 ? 0 : n >= 2 && n <= (1 << 20) ? n : -2;
    }
    return v != -2 ? v : gqa8 ? DEC_GQA8_CTX : DEC_SHORT_CTX;
}

/* decode_kernel's tensor-core loop (MMA: dec_mma_block) for head groups of 4 and 8: CHASKI_DEC_MMA=0: never; 1 (the
 * default): at contexts over DEC_SHORT_CTX keys, where GT 4's KT 8 pipelined kernel and GT 8's KT 2 ran (in GT 4's
 * blocks and splits, dec_wide's too); 2: at every context (checks). Not where a bench forces a variant
 * (gpu_attention_decode_tuning). */
static int dec_mma_mode(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("CHASKI_DEC_MMA");
        const int n = e ? atoi(e) : 1;
        v = n == 0 || n == 2 ? n : 1;
    }
    return v;
}
/* whether a launch of head groups of gt at a context bucket of max_ctx keys, head_dim D, takes the tensor-core loop.
 * D 128 only: the D 64 instantiations compile (151 registers) but no check has run them on a GPU yet (check_attention's
 * "decode hd64" case is the one to run with CHASKI_DEC_MMA=2 once this allows 64) */
static bool dec_mma_at(int gt, int max_ctx, int D) {
    const int m = g_dec_variant ? 0 : dec_mma_mode();
    return D == 128 && (gt == 4 || gt == 8) && (m == 2 || (m == 1 && max_ctx > dec_short_ctx(false)));
}

/* Heads per block (GT) for n_heads / n_kv_heads = G at a context bucket of max_ctx keys: the largest of 8, 4, 2, 1
 * dividing G, but 4 for G a multiple of 8 at short contexts (above). With the tensor-core loop too: GQA 8 in head
 * groups of 8 below DEC_GQA8_CTX keys (each kv row read once) measured against groups of 4 (70B exl2-4.0 at depth
 * 512, H200, docs/PERFORMANCE.md thirty-sixth run): batch 4 237.5 / 238.3 against 252.2 tok/s (8 splits of 64 keys
 * against 4 of 128: more partials to merge), batch 16 787-791 against 790 */
static int dec_gt(int G, int max_ctx) {
    if (G % 8 == 0) return max_ctx <= dec_short_ctx(G == 8) ? 4 : 8;
    return G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
}

/* Keys per live split at least (dec_live_splits, decode_splits' by_len), for a launch of `groups` (sequence, head
 * group) pairs of gt heads each. H200 at depth 512 (docs/PERFORMANCE.md, twenty-sixth run):
 * - GT 4: 64, whose kernel (KT 8, pipelined) holds 8 subgroups x 8 keys in flight, so a split of up to 64 keys is
 *   read in one wave, the keys before the new one before griddepcontrol.wait. The 8B: batch 1 / 2 / 4 +3.8 / +4.9 /
 *   +3.0% against 128 keys; 32 as 64, 16 worse (more partials to merge).
 * - GT 8 (then KT 2, not pipelined: a 128-key split was 8 dependent rounds of loads): 32 where the launch has at most
 *   16 groups, else 128. The 70B (8 groups per sequence): batch 1 / 2 / 4 +3.9 / +0.7 / -2.6% at 32 against 128.
 *   Not measured again since GT 8 pipelines its keys (thirty-first run).
 * - GT 1 and 2: DEC_MIN_CHUNK (not measured below it).
 * - the tensor-core loop (mma, GT 4 and 8): 64, as GT 4's scalar kernel.
 * CHASKI_DEC_MIN_CHUNK=N (1..4096) sets it for every launch, for benches and checks. */
static int dec_min_chunk(int gt, long long groups, bool mma) {
    if (g_dec_min_chunk < 0) {
        const char *e = getenv("CHASKI_DEC_MIN_CHUNK");
        const int v = e ? atoi(e) : 0;
        g_dec_min_chunk = v >= 1 && v <= 4096 ? v : 0;
    }
    if (g_dec_min_chunk)
        return g_dec_min_chunk;
    return gt == 4 || mma ? 64 : gt == 8 && groups <= 16 ? 32 : DEC_MIN_CHUNK;
}

extern "C" void gpu_attention_decode_tuning(int variant, int blocks_per_sm) {
    g_dec_env_read = 1;
    g_dec_variant = variant < 0 || variant > 7 ? 0 : variant;
    g_dec_blocks_per_sm = blocks_per_sm < 1 || blocks_per_sm > 64 ? 0 : blocks_per_sm;
}

static void dec_tuning_from_env(void) {
    if (g_dec_env_read) return;
    g_dec_env_read = 1;
    const char *e = getenv("CHASKI_DECODE_TUNING");
    int v = 0, b = 0;
    if (e && sscanf(e, "%d,%d", &v, &b) >= 1) gpu_attention_decode_tuning(v, b);
}

int decode_splits(int n_seqs, int n_heads, int n_kv_heads, int head_dim, int max_ctx, int n_splits) {
    dec_tuning_from_env();
    const int gt = dec_gt(n_kv_heads > 0 ? n_heads / n_kv_heads : 1, max_ctx);
    const long long base = (long long)n_seqs * (n_heads / gt); /* (sequence, head group) pairs */
    if (base > DEC_CNT_CAP) return 1; /* more head groups than arrival counters: no split (the grid is large anyway) */
    if (n_splits > 0) return n_splits > DEC_MAX_SPLITS ? DEC_MAX_SPLITS : n_splits;
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        sms = 132;
    /* blocks per SM aimed at: measured on the H200 (docs/PERFORMANCE.md), GQA groups of 4 run best with
       2 (8 keys in flight per lane group, pipelined), the other group sizes were tuned at 8; GT 8 in launches of
       at most 8 (sequence, head group) pairs (the 70B at batch 1) at 2: its 227-register kernel fits 2 blocks per
       SM, and batch 1 at depth 4096 / 16384 ran +10 / +12% faster (CHASKI_DECODE_TUNING=0,2 against the default,
       twenty-seventh run), at depth 512 the same */
    const bool mma = dec_mma_at(gt, max_ctx, head_dim); /* the tensor-core loop: as GT 4's scalar kernel */
    const int bps = g_dec_blocks_per_sm ? g_dec_blocks_per_sm : mma || gt == 4 || (gt == 8 && base <= 8) ? 2 : 8;
    /* rounded down: the splits of every (sequence, head group) in one wave of bps blocks per SM. Rounded up (until
     * the twelfth run) a batch of 8 took 5 splits (320 blocks) and of 16 took 3 (384) at the H200's 264 slots: a
     * partial second wave (docs/PERFORMANCE.md, twelfth run) */
    long long want = (long long)bps * sms / base;
    const int mc = dec_min_chunk(gt, base, mma);
    long long by_len = (max_ctx + mc - 1) / mc; /* at least mc keys per split */
    long long sp = want < by_len ? want : by_len;
    if (sp < 1) sp = 1;
    if (sp > DEC_MAX_SPLITS) sp = DEC_MAX_SPLITS;
    return (int)sp;
}

/* decode_kernel's pre2: the pipelined kernels request their second iteration's keys before griddepcontrol.wait too
 * (CHASKI_DEC_PRE2=0: not; benches) */
static int dec_pre2(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("CHASKI_DEC_PRE2");
        v = !(e && atoi(e) == 0);
    }
    return v;
}

/* GQA 4's pipelined kernel (KT 8) where decode_splits gives 2 splits (the 8B from 12 sequences at the H200's 2 x 132
 * slots; the 70B from 8): one split of DEC_THREADS_WIDE-thread blocks instead, one block per SM holding as many keys
 * in flight as the SM's two narrow blocks did, with no partials to write and no merge (the merge's fence, atomic and
 * last-split pass cost 4-6 us a layer: docs/PERFORMANCE.md, thirty-fifth run). CHASKI_DEC_WIDE=0: never; 2: every
 * such launch, whatever its splits (checks). */
static int dec_wide(int splits) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("CHASKI_DEC_WIDE");
        const int n = e ? atoi(e) : 1;
        v = n == 0 || n == 2 ? n : 1;
    }
    return v == 2 || (v == 1 && splits == 2);
}

template <typename T, int D>
static int decode_launch_d(void *out, const void *q, int q_stride, const gpu_paged_kv *kv, const int32_t *pos,
                           int n_seqs, int n_heads, int window, float scale, int splits, float *ws_o, float *ws_lse,
                           unsigned *ws_cnt, void *xp, const int32_t *xpos, const dec_rope &rp, int max_ctx,
                           cudaStream_t stream) {
    const int gt = dec_gt(n_heads / kv->n_kv_heads, max_ctx);
    const dim3 grid(splits, n_heads / gt, n_seqs);
    const bool mma = dec_mma_at(gt, max_ctx, D);
    const int mc = dec_min_chunk(gt, (long long)n_seqs * (n_heads / gt), mma); /* as decode_splits took it */
    const float sl2 = scale * 1.4426950408889634f;
#define DEC_LAUNCH_G(GT, KT, PIPE, NTH, MMA, GRID, SPLITS)                                                    \
    GPU_CHECK(gpu_launch_pdl(decode_kernel<T, D, GT, KT, PIPE, NTH, MMA>, GRID, dim3(NTH), 0, stream, (T *)out,\
                             (const T *)q, q_stride, (const T *)kv->k_pool, (const T *)kv->v_pool, kv->page_table,  \
                             kv->max_pages, kv->page_size, kv->n_kv_heads, pos, n_heads, window, sl2, SPLITS, ws_o, \
                             ws_lse, ws_cnt, (T *)xp, xpos, mc, dec_pre2(), rp))
#define DEC_LAUNCH(GT, KT, PIPE) DEC_LAUNCH_G(GT, KT, PIPE, DEC_THREADS, false, grid, splits)
    /* variants (benches): for GT 4, 1 = KT 4, 2 = KT 4 pipelined, 3 = KT 8, 4 = KT 8 pipelined (the default: KT 4
     * pipelined up to DEC_SHORT_CTX keys of context (dec_short_ctx), else KT 8 pipelined); for GT 8, 7 = KT 2 not
     * pipelined (the default is KT 2 pipelined: H200, 70B exl2-4.0 batch 1 at depth 16384 / 30464 +6.8 / +11%, the
     * kernel at 227 registers either way, no spills; KT 4 not pipelined, 250 registers, gained +3.7 / +6.3%:
     * docs/PERFORMANCE.md, thirty-first run) */
    const int variant =
        gt == 4 ? (g_dec_variant && g_dec_variant <= 4 ? g_dec_variant : max_ctx <= dec_short_ctx(false) ? 2 : 4) : 0;
    if (mma) { /* the tensor-core loop (dec_mma_block; KT and PIPE unused), at 2 splits in one of wide blocks */
        const bool wide = dec_wide(splits);
        const dim3 g1(1, grid.y, grid.z);
        if (gt == 4 && wide)
            DEC_LAUNCH_G(4, 8, true, DEC_THREADS_WIDE, true, g1, 1);
        else if (gt == 4)
            DEC_LAUNCH_G(4, 8, true, DEC_THREADS, true, grid, splits);
        else if (wide)
            DEC_LAUNCH_G(8, 8, true, DEC_THREADS_WIDE, true, g1, 1);
        else
            DEC_LAUNCH_G(8, 8, true, DEC_THREADS, true, grid, splits);
        GPU_CHECK_LAUNCH("decode_kernel");
        return GPU_OK;
    }
    switch (variant) {
    case 1: DEC_LAUNCH(4, 4, false); break;
    case 2: DEC_LAUNCH(4, 4, true); break;
    case 3: DEC_LAUNCH(4, 8, false); break;
    case 4:
        if (dec_wide(splits)) /* one split of blocks twice as wide: no merge */
            DEC_LAUNCH_G(4, 8, true, DEC_THREADS_WIDE, false, dim3(1, grid.y, grid.z), 1);
        else
            DEC_LAUNCH(4, 8, true);
        break;
    default: /* GT 1, 2 and 8 (GT 4 takes one of the variants above) */
        switch (gt) {
        case 1: DEC_LAUNCH(1, 4, false); break;
        case 2: DEC_LAUNCH(2, 4, false); break;
        case 8:
            if (g_dec_variant == 7)
                DEC_LAUNCH(8, 2, false);
            else
                DEC_LAUNCH(8, 2, true);
            break;
        }
    }
#undef DEC_LAUNCH
#undef DEC_LAUNCH_G
    GPU_CHECK_LAUNCH("decode_kernel");
    return GPU_OK;
}

template <typename T>
static int decode_launch(void *out, const void *q, int q_stride, const gpu_paged_kv *kv, const int32_t *pos,
                         int n_seqs, int n_heads, int window, float scale, int splits, float *ws_o, float *ws_lse,
                         unsigned *ws_cnt, void *xp, const int32_t *xpos, const dec_rope &rp, int max_ctx,
                         cudaStream_t stream) {
    if (kv->head_dim == 64)
        return decode_launch_d<T, 64>(out, q, q_stride, kv, pos, n_seqs, n_heads, window, scale, splits, ws_o, ws_lse,
                                      ws_cnt, xp, xpos, rp, max_ctx, stream);
    return decode_launch_d<T, 128>(out, q, q_stride, kv, pos, n_seqs, n_heads, window, scale, splits, ws_o, ws_lse,
                                   ws_cnt, xp, xpos, rp, max_ctx, stream);
}

extern "C" size_t gpu_attention_workspace_size(int n_seqs, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                                               int max_ctx, int n_splits) {
    if (n_tokens != n_seqs || n_seqs <= 0 || n_heads <= 0 || n_kv_heads <= 0) return 0;
    /* enough for a launch at any context up to max_ctx (a backend sizes it once, for every graph bucket): at one GT
     * the split count only grows with the context, but short contexts may take another GT (dec_gt), with more splits
     * than a context a little over their bound takes at its own: the largest count at max_ctx and at each bound */
    int sp = decode_splits(n_seqs, n_heads, n_kv_heads, head_dim, max_ctx, n_splits);
    for (const bool gqa8 : {false, true})
        if (const int b = dec_short_ctx(gqa8); b > 0 && b < max_ctx)
            if (const int ss = decode_splits(n_seqs, n_heads, n_kv_heads, head_dim, b, n_splits); ss > sp) sp = ss;
    if (sp <= 1) return 0;
    const size_t rows = (size_t)n_seqs * n_heads * sp;
    return DEC_CNT_BYTES + rows * head_dim * sizeof(float) + rows * sizeof(float) + 256;
}

extern "C" int gpu_attention(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                             const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                             int max_q_len, int max_ctx, int window, float scale, int n_splits, void *workspace,
                             size_t workspace_size, cudaStream_t stream) {
    return gpu_attention_x(dt, out, q, q_stride, kv, seq_start, pos, n_seqs, n_tokens, n_heads, max_q_len, max_ctx,
                           window, scale, n_splits, workspace, workspace_size, nullptr, nullptr, stream);
}

static int attention_any(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                         const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                         int max_q_len, int max_ctx, int window, float scale, int n_splits, void *workspace,
                         size_t workspace_size, void *xp, const int32_t *xpos, const dec_rope &rp, cudaStream_t stream) {
    if (dt != GPU_F16 && dt != GPU_BF16) return GPU_FAIL(GPU_UNSUPPORTED, "attention: dtype %d", (int)dt);
    const int D = kv->head_dim;
    if ((D != 64 && D != 128) || n_heads < 1 || kv->n_kv_heads < 1 || n_heads % kv->n_kv_heads || n_seqs < 1 ||
        n_tokens < n_seqs || q_stride < n_heads * D || q_stride % 8 || !gpu_aligned16(q) || !gpu_aligned16(out) ||
        !gpu_aligned16(kv->k_pool) || !gpu_aligned16(kv->v_pool) || kv->page_size < 1 || max_ctx < 1 || max_q_len < 1)
        return GPU_FAIL(GPU_UNSUPPORTED,
                        "attention: head_dim=%d n_heads=%d n_kv_heads=%d n_seqs=%d n_tokens=%d q_stride=%d", D, n_heads,
                        kv->n_kv_heads, n_seqs, n_tokens, q_stride);
    if (xp && (n_tokens != n_seqs || !xpos || !gpu_aligned16(xpos) || xp == out))
        return GPU_FAIL(GPU_UNSUPPORTED, "attention: a scattered copy (xp) is for decode steps only, with 16-byte "
                                         "aligned positions, not aliasing out");
    if (n_tokens == n_seqs) {
        const int sp = decode_splits(n_seqs, n_heads, kv->n_kv_heads, D, max_ctx, n_splits);
        float *ws_o = NULL, *ws_lse = NULL;
        unsigned *ws_cnt = NULL;
        if (sp > 1) {
            const size_t rows = (size_t)n_seqs * n_heads * sp;
            const size_t need = DEC_CNT_BYTES + rows * D * sizeof(float) + rows * sizeof(float);
            if (!workspace || workspace_size < need || !gpu_aligned16(workspace))
                return GPU_FAIL(GPU_EWORKSPACE, "attention decode: workspace %zu < %zu bytes or not 16-byte aligned",
                                workspace_size, need);
            ws_cnt = (unsigned *)workspace;
            ws_o = (float *)((char *)workspace + DEC_CNT_BYTES);
            ws_lse = ws_o + rows * D;
        }
        return dt == GPU_F16 ? decode_launch<__half>(out, q, q_stride, kv, pos, n_seqs, n_heads, window, scale, sp, ws_o,
                                                     ws_lse, ws_cnt, xp, xpos, rp, max_ctx, stream)
                             : decode_launch<__nv_bfloat16>(out, q, q_stride, kv, pos, n_seqs, n_heads, window, scale, sp,
                                                            ws_o, ws_lse, ws_cnt, xp, xpos, rp, max_ctx, stream);
    }
    return attention_prefill(dt, out, q, q_stride, kv, seq_start, pos, n_seqs, n_tokens, n_heads, max_q_len, window,
                             scale, stream);
}

extern "C" int gpu_attention_x(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                               const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                               int max_q_len, int max_ctx, int window, float scale, int n_splits, void *workspace,
                               size_t workspace_size, void *xp, const int32_t *xpos, cudaStream_t stream) {
    const dec_rope none = {};
    return attention_any(dt, out, q, q_stride, kv, seq_start, pos, n_seqs, n_tokens, n_heads, max_q_len, max_ctx,
                         window, scale, n_splits, workspace, workspace_size, xp, xpos, none, stream);
}

extern "C" int gpu_attention_rope_x(gpu_dtype dt, void *out, const void *q, int q_stride, const void *k, int k_stride,
                                    const void *v, int v_stride, const float *inv_freq, float mscale,
                                    const gpu_paged_kv *kv, const int32_t *seq_start, const int32_t *pos, int n_seqs,
                                    int n_heads, int max_ctx, int window, float scale, int n_splits, void *workspace,
                                    size_t workspace_size, void *xp, const int32_t *xpos, cudaStream_t stream) {
    const int D = kv ? kv->head_dim : 0;
    if (!kv || !k || !v || !inv_freq || (D != 64 && D != 128) || kv->n_kv_heads < 1 || k_stride % 8 ||
        v_stride % 8 || k_stride < kv->n_kv_heads * D || v_stride < kv->n_kv_heads * D || !gpu_aligned16(k) ||
        !gpu_aligned16(v) || kv->n_pages < 1)
        return GPU_FAIL(GPU_UNSUPPORTED, "attention with rope: head_dim %d, k/v strides %d/%d (multiples of 8, 16-byte "
                                         "aligned rows), inv_freq %s",
                        D, k_stride, v_stride, inv_freq ? "set" : "missing");
    const dec_rope rp = {k, v, k_stride, v_stride, kv->n_pages, inv_freq, mscale};
    return attention_any(dt, out, q, q_stride, kv, seq_start, pos, n_seqs, n_seqs, n_heads, 1, max_ctx, window, scale,
                         n_splits, workspace, workspace_size, xp, xpos, rp, stream);
}
