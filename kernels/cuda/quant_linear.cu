/* kernels/cuda/quant_linear.cu: quantized linear layers, GPTQ 4/8-bit and EXL2 2..8-bit (quant_ops.h).
 *
 * Two device layouts, chosen at upload:
 * - GPU_QLAYOUT_MMA (4- and 8-bit weights whose chunks of 4 packed rows each lie in one group: every
 *   GPTQ 4/8-bit file with group size >= 32 / 16, EXL2 layers of 4/8-bit groups): tensor-core kernels,
 *   described before qmma_kernel below; the decode path's default is qmv_kernel (several weights per
 *   launch, cluster split-K), described before it.
 * - GPU_QLAYOUT_UNITS (everything else: EXL2 layers with 2, 3, 5 or 6-bit groups): the scalar kernels.
 *   Invariants (established by the upload functions, on the host):
 *   - the weight is cut into "units" of at most 32 consecutive rows in packed order, each in one group and
 *     one bit width, occupying rows * bits / 32 whole packed 32-bit rows: GPTQ one packed row (8 or 4
 *     rows), EXL2 32 rows (or a 16/8/4-row tail of a group);
 *   - perm[i] is the input row of packed-order row i (identity without act-order), so the activations
 *     are gathered once per call and the weight stream is read in file order, 16 bytes (4 columns) per load;
 *   - m % 8 == 0, so every 4-column quad lies in one qzeros / q_scale word and loads are aligned.
 * Dequantization: GPTQ w = (q - z) * s (z = stored + 1 for gptq, stored for gptq_v2);
 *                 EXL2 w = (q - 2^(b-1)) * (code + 1)^2 * scale_max / 256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include <cooperative_groups.h>

#include "common.cuh"
#include "quant_ops.h"
#include "quant_scales.cuh"

namespace {

namespace coop = cooperative_groups;

constexpr int QBX = 32;      /* threads along m; each owns 4 columns */
constexpr int QBY = 4;       /* k-slices per block */
constexpr int QCOLS = QBX * 4;

/* 2^23 + v as a float, exactly (v < 2^23): an OR instead of a (quarter-rate) integer conversion; the
 * callers subtract 2^23 + zero, exact too, so (q - z) comes out exactly. */
__device__ __forceinline__ float magic_f(uint32_t v)
{
    return __uint_as_float(0x4B000000u | v);
}

__device__ __forceinline__ uint32_t lane_of(const uint4 &v, int j)
{
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

/* GPTQ unit: one packed row (32 / B rows) of 4 columns. emit(r, j, w). */
template <int B, typename Emit>
__device__ __forceinline__ void gptq_unit(const int4 U, int c, int m, const uint32_t *__restrict__ qw,
                                          const uint32_t *__restrict__ qz, const __half *__restrict__ sc, int v2,
                                          Emit emit)
{
    constexpr int PER = 32 / B;
    constexpr uint32_t MASK = (1u << B) - 1;
    const int g = U.w >> 8;
    const uint4 q = __ldg(reinterpret_cast<const uint4 *>(qw + (size_t)U.y * m + c));
    const uint2 sv = __ldg(reinterpret_cast<const uint2 *>(sc + (size_t)g * m + c));
    const uint32_t zw = __ldg(qz + (size_t)g * (m / PER) + c / PER);
    const __half *sh = reinterpret_cast<const __half *>(&sv);
    float s[4], z[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        s[j] = __half2float(sh[j]);
        z[j] = 8388608.0f + (float)(int)(((zw >> (((c % PER) + j) * B)) & MASK) + (v2 ? 0u : 1u));
    }
#pragma unroll
    for (int r = 0; r < PER; r++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            emit(r, j, (magic_f((lane_of(q, j) >> (r * B)) & MASK) - z[j]) * s[j]);
}

/* EXL2 unit: up to 32 rows of B bits (a little-endian bit stream per column) of 4 columns. */
template <int B, typename Emit>
__device__ __forceinline__ void exl2_unit(const int4 U, int c, int m, const uint32_t *__restrict__ qw,
                                          const uint32_t *__restrict__ qs, const __half *__restrict__ qsm, Emit emit)
{
    constexpr uint32_t MASK = (1u << B) - 1;
    const int rows = U.w & 255, g = U.w >> 8, nw = rows * B / 32;
    uint4 wv[B];
#pragma unroll
    for (int i = 0; i < B; i++)
        wv[i] = i < nw ? __ldg(reinterpret_cast<const uint4 *>(qw + (size_t)(U.y + i) * m + c)) : make_uint4(0, 0, 0, 0);
    const uint32_t code = __ldg(qs + (size_t)g * (m / 8) + c / 8) >> ((c % 8) * 4);
    const float smax = __half2float(qsm[g]);
    float s[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float cp = (float)(((code >> (4 * j)) & 15u) + 1);
        s[j] = cp * cp * smax / 256.0f;
    }
    const float off = 8388608.0f + (float)(1 << (B - 1));
#pragma unroll
    for (int r = 0; r < 32; r++) {
        if (r < rows) {
            constexpr int dummy = 0;
            (void)dummy;
            const int pos = r * B, wi = pos >> 5, sft = pos & 31;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t v = lane_of(wv[wi], j) >> sft;
                if (sft + B > 32)
                    v |= lane_of(wv[wi + 1 < B ? wi + 1 : B - 1], j) << (32 - sft);
                emit(r, j, (magic_f(v & MASK) - off) * s[j]);
            }
        }
    }
}

template <int FMT, typename Emit>
__device__ __forceinline__ void any_unit(const int4 U, int c, int m, const uint32_t *qw, const uint32_t *qz,
                                         const __half *sc, const uint32_t *qs, const __half *qsm, int v2, Emit emit)
{
    if (FMT == GPU_Q_GPTQ) {
        if (U.x == 4)
            gptq_unit<4>(U, c, m, qw, qz, sc, v2, emit);
        else
            gptq_unit<8>(U, c, m, qw, qz, sc, v2, emit);
    } else {
        switch (U.x) {
        case 2: exl2_unit<2>(U, c, m, qw, qs, qsm, emit); break;
        case 3: exl2_unit<3>(U, c, m, qw, qs, qsm, emit); break;
        case 4: exl2_unit<4>(U, c, m, qw, qs, qsm, emit); break;
        case 5: exl2_unit<5>(U, c, m, qw, qs, qsm, emit); break;
        case 6: exl2_unit<6>(U, c, m, qw, qs, qsm, emit); break;
        default: exl2_unit<8>(U, c, m, qw, qs, qsm, emit); break;
        }
    }
}

/* xp[r, i] = x[r, perm[i]] (float), rows n..NR-1 zero. */
template <typename T>
__global__ void gather_kernel(float *__restrict__ xp, const T *__restrict__ x, const int32_t *__restrict__ perm,
                              int n, int nr, int k)
{
    const size_t total = (size_t)nr * k;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(t / k), i = (int)(t % k);
        xp[t] = r < n ? dt_traits<T>::to_f(x[(size_t)r * k + perm[i]]) : 0.0f;
    }
}

/* acc[n, m] += partial sums of the units of this block's k-slices. */
template <int NR, int FMT>
__global__ void __launch_bounds__(QBX *QBY) fused_kernel(float *__restrict__ acc, const float *__restrict__ xp, int n,
                                                         int k, int m, const int4 *__restrict__ units, int n_units,
                                                         const uint32_t *__restrict__ qw,
                                                         const uint32_t *__restrict__ qz,
                                                         const __half *__restrict__ sc,
                                                         const uint32_t *__restrict__ qs,
                                                         const __half *__restrict__ qsm, int v2)
{
    __shared__ float red[QBY][NR][QCOLS];
    const int c = (blockIdx.x * QBX + threadIdx.x) * 4;
    const int slice = blockIdx.y * QBY + threadIdx.y, n_slices = gridDim.y * QBY;
    float a[NR][4];
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            a[r][j] = 0.0f;
    if (c < m) {
        for (int u = slice; u < n_units; u += n_slices) {
            const int4 U = __ldg(units + u);
            const float *xu = xp + U.z;
            any_unit<FMT>(U, c, m, qw, qz, sc, qs, qsm, v2, [&](int r, int j, float w) {
#pragma unroll
                for (int rr = 0; rr < NR; rr++)
                    a[rr][j] = fmaf(xu[(size_t)rr * k + r], w, a[rr][j]);
            });
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            red[threadIdx.y][r][threadIdx.x * 4 + j] = a[r][j];
    __syncthreads();
    const int tid = threadIdx.y * QBX + threadIdx.x;
    for (int idx = tid; idx < NR * QCOLS; idx += QBX * QBY) {
        const int r = idx / QCOLS, col = blockIdx.x * QCOLS + idx % QCOLS;
        if (r < n && col < m) {
            float s = 0.0f;
#pragma unroll
            for (int y = 0; y < QBY; y++)
                s += red[y][r][idx % QCOLS];
            atomicAdd(acc + (size_t)r * m + col, s);
        }
    }
}

template <typename T>
__global__ void finalize_kernel(T *__restrict__ out, const float *__restrict__ acc, const T *__restrict__ bias, int n,
                                int m)
{
    const size_t total = (size_t)n * m;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        float v = acc[t];
        if (bias)
            v += dt_traits<T>::to_f(bias[t % m]);
        out[t] = dt_traits<T>::from_f(v);
    }
}

/* W[m, k] in packed-row order (the caller gathers the activations into it) in T: one block row per unit, threads
 * over column quads; a unit's up to 32 rows of a column are collected in registers and stored as 8-byte runs (units
 * start and end on multiples of 4 rows). (Was: W in input order, one scattered 2-byte store per value at perm[row]:
 * ~1% of the copy bandwidth on EXL2 2.5.) */
template <typename T, int FMT>
__global__ void dequant_kernel(T *__restrict__ W, int k, int m, const int4 *__restrict__ units,
                               const uint32_t *__restrict__ qw, const uint32_t *__restrict__ qz,
                               const __half *__restrict__ sc, const uint32_t *__restrict__ qs,
                               const __half *__restrict__ qsm, int v2)
{
    const int4 U = __ldg(units + blockIdx.y);
    const int rows = FMT == GPU_Q_GPTQ ? 32 / U.x : (U.w & 255);
    for (int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4; c < m; c += gridDim.x * blockDim.x * 4) {
        T v[4][32];
        any_unit<FMT>(U, c, m, qw, qz, sc, qs, qsm, v2,
                      [&](int r, int j, float w) { v[j][r] = dt_traits<T>::from_f(w); });
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 32; r += 4)
                if (r < rows) {
                    alignas(8) T q4[4] = {v[j][r], v[j][r + 1], v[j][r + 2], v[j][r + 3]};
                    *reinterpret_cast<uint2 *>(W + (size_t)(c + j) * k + U.z + r) =
                        *reinterpret_cast<const uint2 *>(q4);
                }
    }
}

/* ================= tensor-core layout (GPU_QLAYOUT_MMA) =================
 * Weight: the packed rows (group order, as for the units layout) cut into chunks of 4 packed rows
 * (32 rows at 4 bits, 16 at 8 bits), each in one group and one width; qweight [packed_rows, mp] (m padded
 * to 32 with zero columns) with the values inside each word interleaved so that one AND/OR with a
 * floating-point magic number yields two adjacent rows as a half2 / bfloat162:
 *   4-bit: nibble position p holds row 2p (p < 4) or row 2(p-4)+1 (p >= 4);
 *   8-bit: byte position p holds row 0, 2, 1, 3 for p = 0..3.
 * Fused kernel (n <= 16): a warp owns 32 columns; lane (g = lane/4, t = lane%4) loads 16 bytes: the 4
 * columns C = 4g.. of packed row 4c + t of chunk c. Those words are exactly its A fragments of
 * mma.sync.m16n8k16 for two m-tiles (tile j: row g = column C + 2j, row g + 8 = column C + 2j + 1) and
 * two k16 steps (4-bit) or one (8-bit): the k slots 2t, 2t+1 / 2t+8, 2t+9 of a step are rows
 * (0,1) / (2,3) (step 0) and (4,5) / (6,7) (step 1) of packed row 4c + t, so the B fragment (the
 * activations, k x tokens) of lane (g, t) is the 8 (4) consecutive activations of those rows for token
 * g: one 16-byte (8-byte) shared-memory load. The dequantized values are the exact integers q - z
 * (in f16 or bf16: |q - z| <= 256), the products accumulate in float32 over each run of chunks of one
 * group, and the group's per-column scale multiplies them in float32, so no weight is rounded. Each block (4 warps, the same
 * 32 columns, consecutive chunk ranges) gathers its slice of the activations (the act-order / EXL2
 * permutation applied) into shared memory once; split-K over blocks (blockIdx.y) when the column
 * tiles alone do not give 4 blocks per SM or the slice would not fit: partial sums in float32 in the
 * workspace, the last block of a tile (arrival counter in w->tile_sync, reset by it) adds them in split
 * order (deterministic) and writes the output (+ bias). One launch per call.
 * Dequant path: qmma_dequant_kernel expands the weight to dt in packed-row order (a warp per 4 chunks of a column
 * tile, 16- or 8-byte stores covering whole sectors); the activations are gathered into the same order (unless the
 * permutation is the identity) and cuBLASLt multiplies. */
constexpr int MW = 4; /* warps per block */
constexpr int MU = 8; /* chunks in flight per warp */
/* qmv_kernel's ring depth, chunks in flight per warp: MU, and 4 in XG (V = 3) at 9-16 rows so that two blocks fit an
 * SM. XG's warps take their chunks in whole rounds of this many (launch_qv plans it so) */
template <int NT, int V> constexpr int qv_ring()
{
    return (V == 3 || V == 4) && NT == 2 ? 4 : MU;
}
/* qmv_kernel's variants without the activation slice (XG, there): V = 3 and 4 */
constexpr bool qv_xg(int V)
{
    return V == 3 || V == 4;
}
/* qmv_kernel's XG for EXL2 with its scales decoded per ring round into shared memory (XGS, there; wsc, W x MU x 32
 * floats). QV_XG_SCALES=0 at compile time: each group's decode with shuffles (exl2_scales4), as before */
#ifndef QV_XG_SCALES
#define QV_XG_SCALES 1
#endif
/* QV_XGS_XOFF=1: XGS's B fragments as XR's (rows min(g, n - 1), 32-bit offsets, no test, no zeroing) */
#ifndef QV_XGS_XOFF
#define QV_XGS_XOFF 1
#endif
template <int FMT, int V> constexpr bool qv_xg_scales()
{
    return QV_XG_SCALES && FMT == GPU_Q_EXL2 && qv_xg(V);
}
/* QV_XR_EXL2=1: EXL2 4-bit with 32-row groups (a group per chunk) takes XG in rounds too, its scales from XGS's
 * per-round decode (so only with QV_XG_SCALES). Before XGS that form spilled registers (ptxas: 8-56 bytes) */
#ifndef QV_XR_EXL2
#define QV_XR_EXL2 1
#endif
/* qmv_kernel's XG in rounds (XR, there), V = 3: GPTQ with groups of 128 rows (4 chunks), EXL2 with groups of 32 (one
 * chunk; QV_XR_EXL2). GPTQ with three group sizes in one kernel spilled that way; the other group sizes keep the loop
 * of the other variants in V = 4 */
template <int FMT, int V> constexpr bool qv_xg_rounds()
{
    return V == 3 && (FMT == GPU_Q_GPTQ || (FMT == GPU_Q_EXL2 && QV_XR_EXL2 && QV_XG_SCALES));
}
/* qmv_kernel's one-row variants (ONE, there): V = 1, and V = 5, 4-bit in rounds (RD, there: GPTQ with groups of 128
 * rows, EXL2); V = 6, the rounds at 2-8 rows, is not one of them */
constexpr bool qv_one(int V)
{
    return V == 1 || V == 5;
}
/* qmv_kernel's variants in rounds at 1-8 rows (RD, there): V = 5 (one row) and 6 (2-8 rows) */
constexpr bool qv_rounds(int V)
{
    return V == 5 || V == 6;
}

__device__ __forceinline__ uint32_t h2_sub(uint32_t a, uint32_t b)
{
    __half2 x = __hsub2(*reinterpret_cast<__half2 *>(&a), *reinterpret_cast<__half2 *>(&b));
    return *reinterpret_cast<uint32_t *>(&x);
}
__device__ __forceinline__ uint32_t bf2_sub(uint32_t a, uint32_t b)
{
    __nv_bfloat162 x = __hsub2(*reinterpret_cast<__nv_bfloat162 *>(&a), *reinterpret_cast<__nv_bfloat162 *>(&b));
    return *reinterpret_cast<uint32_t *>(&x);
}

/* The zero point z of one column in the form dq2 subtracts (both halves). fp16: 1024 + z (exact below
 * 1024); bf16 4-bit: 128 + z (exact below 128); bf16 8-bit goes through fp16 (then converted). */
template <typename T> __device__ __forceinline__ uint32_t zero2(int bits, int z)
{
    const uint32_t h = (!std::is_same<T, __half>::value && bits == 4) ? 0x43004300u : 0x64006400u;
    return h + (uint32_t)z * 0x00010001u; /* one IMAD */
}
/* (w & M) | E in one LOP3 (written as C, ptxas emits two: a LOP3 takes one immediate; here E goes to a register
 * once, outside the loops) */
template <uint32_t M, uint32_t E> __device__ __forceinline__ uint32_t and_or(uint32_t w)
{
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w), "n"(M), "n"(E));
    return r;
}

/* Rows (lo, hi) of word w at shift sh as T2 bits: q - z exactly. */
template <typename T, int B> __device__ __forceinline__ uint32_t dq2(uint32_t w, int sh, uint32_t z2)
{
    constexpr uint32_t MASK = B == 4 ? 0x000F000Fu : 0x00FF00FFu;
    if (std::is_same<T, __half>::value)
        return h2_sub(and_or<MASK, 0x64006400u>(w >> sh), z2);
    if (B == 4)
        return bf2_sub(and_or<MASK, 0x43004300u>(w >> sh), z2);
    uint32_t h = h2_sub(and_or<MASK, 0x64006400u>(w >> sh), z2);
    const float2 f = __half22float2(*reinterpret_cast<__half2 *>(&h));
    __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    return *reinterpret_cast<uint32_t *>(&b);
}

/* fp16 4-bit, the odd nibbles: (w & 0x00F000F0) | 0x64006400 is 1024 + 16 q exactly, so one fused
 * multiply-add by 1/16 and -(64 + z) gives q - z (exact) with no shift: this is -(64 + z) in both halves. */
__device__ __forceinline__ uint32_t zero2_hi(int z)
{
    /* -(64 + z) in fp16 is sign 1, exponent 6 (field 21), mantissa 16 z: 0xD400 + 16 z, exact for z < 64 (4-bit
     * zero points are at most 16) */
    return 0xD400D400u + (uint32_t)z * 0x00100010u;
}
__device__ __forceinline__ uint32_t h2_fma16(uint32_t v, uint32_t c)
{
    const __half2 r = __hfma2(*reinterpret_cast<__half2 *>(&v), __half2half2(__ushort_as_half(0x2C00u)) /* 1/16 */,
                              *reinterpret_cast<__half2 *>(&c));
    return *reinterpret_cast<const uint32_t *>(&r);
}

/* Zero points and scales of the 4 columns C..C+3 for one chunk. */
template <int FMT>
__device__ __forceinline__ void chunk_params(int bits, uint32_t zq, uint2 sv, int C, int zadd, int (&z)[4],
                                             float (&s)[4])
{
    if (FMT == GPU_Q_GPTQ) {
        const __half *sh = reinterpret_cast<const __half *>(&sv);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            z[i] = bits == 4 ? (int)((zq >> (4 * ((C & 7) + i))) & 15u) + zadd : (int)((zq >> (8 * i)) & 255u) + zadd;
            s[i] = __half2float(sh[i]);
        }
    } else {
        const float smax = __half2float(__ushort_as_half((unsigned short)(sv.x & 0xFFFFu)));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t code = (zq >> (4 * ((C & 7) + i))) & 15u;
            z[i] = 1 << (bits - 1);
            s[i] = (float)((code + 1) * (code + 1)) * smax / 256.0f; /* as the CPU reference */
        }
    }
}

/* chunk_params in the form mma_chunk takes: zero points z2 (both halves; z2h for fp16 odd nibbles), scales s. */
template <typename T, int FMT>
__device__ __forceinline__ void group_params(int bits, uint32_t zq, uint2 sv, int C, int zadd, uint32_t (&z2)[4],
                                             uint32_t (&z2h)[4], float (&s)[4])
{
    int z[4];
    chunk_params<FMT>(bits, zq, sv, C, zadd, z, s);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        z2[i] = zero2<T>(bits, z[i]);
        z2h[i] = zero2_hi(z[i]);
    }
}

/* The tile-major arrays of the tensor-core layout (tile_major at upload: each 32-column tile's rows
 * contiguous). Weight word (uint4: 4 columns) of packed row p, columns C..C+3, of prow packed rows: a chunk's 32
 * words (4 packed rows) in lane order (lane_order at upload), word 4 g + t the one lane (g, t) of an MMA reads
 * (packed row 4 c + t, columns 4 g..4 g + 3). A warp's 16-byte loads of a chunk are its 512 bytes either way; in lane
 * order each quarter-warp's 8 loads are one 128-byte line instead of parts of four. H200 (docs/PERFORMANCE.md,
 * twenty-seventh run, A/B in one call): the 8B's tg32 +3.0% (gptq4-g128 FP16) and +4.9% (exl2-4.0 BF16), the 70B's
 * +7.9% */
__device__ __forceinline__ size_t mma_word(int prow, int p, int C)
{
    return ((size_t)(C >> 5) * prow + (p & ~3)) * 8 + ((C >> 2) & 7) * 4 + (p & 3);
}
/* The 32-bit word of group grp (of G) holding column C's zero point (GPTQ: 32 / bits per word, so bits words
 * per tile and group) or scale code (EXL2: 8 per word, 4 words); scales: 32 per tile and group. */
__device__ __forceinline__ size_t mma_zword(int G, int grp, int C, int tile_words)
{
    return ((size_t)(C >> 5) * G + grp) * tile_words + (C & 31) * tile_words / 32;
}
__device__ __forceinline__ size_t mma_scale(int G, int grp, int C)
{
    return ((size_t)(C >> 5) * G + grp) * 32 + (C & 31);
}

/* Per-chunk loads of one lane: zero word (GPTQ) / scale codes (EXL2), scales (GPTQ) / scale_max (EXL2). */
template <int FMT>
__device__ __forceinline__ void chunk_param_loads(int grp, int bits, int C, int G, const uint32_t *__restrict__ qz,
                                                  const __half *__restrict__ sc, const uint32_t *__restrict__ qs,
                                                  const __half *__restrict__ qsm, uint32_t &zq, uint2 &sv)
{
    if (FMT == GPU_Q_GPTQ) {
        zq = __ldg(qz + mma_zword(G, grp, C, bits));
        sv = __ldg(reinterpret_cast<const uint2 *>(sc + mma_scale(G, grp, C)));
    } else {
        zq = __ldg(qs + mma_zword(G, grp, C, 4));
        sv = make_uint2(__half_as_ushort(qsm[grp]), 0u);
    }
}

/* The B fragments of one chunk for the lane (g, t): token g + 8 nt's activations at rows kk + R t.. of xs (row
 * stride xstride), R = 8 (uint4: 4-bit chunks) or 4 (uint2: 8-bit); zero for tokens past n. */
template <typename T, int NT, typename V>
__device__ __forceinline__ void x_frags(V (&xv)[NT], const T *xs, int xstride, int kk, int n, int g, int t)
{
    constexpr int R = sizeof(V) / sizeof(T);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        xv[nt] = g + 8 * nt < n ? *reinterpret_cast<const V *>(xs + (size_t)(g + 8 * nt) * xstride + kk + R * t) : V{};
}

/* One 4-bit chunk of one lane into the group products cg: the 16-byte word wv (4 columns x one packed row)
 * dequantized to exact q - z (zero points z2, z2h) and multiplied by the B fragments xv (x_frags) with mma.sync. */
template <typename T, int NT, bool FRESH = false>
__device__ __forceinline__ void mma_chunk4(float (&cg)[2][NT][4], const uint4 wv, const uint4 (&xv)[NT],
                                           const uint32_t (&z2)[4], const uint32_t (&z2h)[4])
{
    /* FRESH: cg's values are not read (a group's first chunk): the first step's MMAs start from zero */
    auto mma = [&](float(&c)[4], const uint32_t(&a)[4], uint32_t b0, uint32_t b1, int step) {
        if (FRESH && step == 0)
            qmma_t<T>::mma_z(c, a, b0, b1);
        else
            qmma_t<T>::mma(c, a, b0, b1);
    };
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    if (std::is_same<T, __half>::value) {
        /* fp16: the even nibbles (shift 0, 8) by OR + subtract, the odd ones (4, 12) by AND/OR + one FMA (zero2_hi):
         * one shift per word instead of three */
        uint32_t lo[4][2], hi[4][2]; /* [word][step] */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t w8 = wd[i] >> 8;
            lo[i][0] = h2_sub(and_or<0x000F000Fu, 0x64006400u>(wd[i]), z2[i]);
            hi[i][0] = h2_fma16(and_or<0x00F000F0u, 0x64006400u>(wd[i]), z2h[i]);
            lo[i][1] = h2_sub(and_or<0x000F000Fu, 0x64006400u>(w8), z2[i]);
            hi[i][1] = h2_fma16(and_or<0x00F000F0u, 0x64006400u>(w8), z2h[i]);
        }
#pragma unroll
        for (int step = 0; step < 2; step++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t a[4] = {lo[2 * j][step], lo[2 * j + 1][step], hi[2 * j][step], hi[2 * j + 1][step]};
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    mma(cg[j][nt], a, step ? xv[nt].z : xv[nt].x, step ? xv[nt].w : xv[nt].y, step);
            }
    } else {
#pragma unroll
        for (int step = 0; step < 2; step++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t a[4] = {dq2<T, 4>(wd[2 * j], 8 * step, z2[2 * j]),
                                       dq2<T, 4>(wd[2 * j + 1], 8 * step, z2[2 * j + 1]),
                                       dq2<T, 4>(wd[2 * j], 8 * step + 4, z2[2 * j]),
                                       dq2<T, 4>(wd[2 * j + 1], 8 * step + 4, z2[2 * j + 1])};
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    mma(cg[j][nt], a, step ? xv[nt].z : xv[nt].x, step ? xv[nt].w : xv[nt].y, step);
            }
    }
}

/* One 8-bit chunk of one lane into the group products cg: the 16-byte word wv dequantized to exact q - z (zero
 * points z2, dq2) and multiplied by the B fragments xv (x_frags' 8 bytes per token tile). FRESH: as mma_chunk4. */
template <typename T, int NT, bool FRESH = false>
__device__ __forceinline__ void mma_chunk8(float (&cg)[2][NT][4], const uint4 wv, const uint2 (&xv)[NT],
                                           const uint32_t (&z2)[4])
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const uint32_t a[4] = {dq2<T, 8>(wd[2 * j], 0, z2[2 * j]), dq2<T, 8>(wd[2 * j + 1], 0, z2[2 * j + 1]),
                               dq2<T, 8>(wd[2 * j], 8, z2[2 * j]), dq2<T, 8>(wd[2 * j + 1], 8, z2[2 * j + 1])};
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
            if (FRESH)
                qmma_t<T>::mma_z(cg[j][nt], a, xv[nt].x, xv[nt].y);
            else
                qmma_t<T>::mma(cg[j][nt], a, xv[nt].x, xv[nt].y);
    }
}

/* One chunk of one lane into the group products cg: the 16-byte word wv (4 columns x one packed row)
 * dequantized to exact q - z (zero points z2) and multiplied by the activations of tokens g, g + 8 at
 * rows kk.. of xs (row stride xstride) with mma.sync (layout: see above). */
template <typename T, int NT>
__device__ __forceinline__ void mma_chunk(float (&cg)[2][NT][4], const uint4 wv, int bits, const T *xs, int xstride,
                                          int kk, int n, int g, int t, const uint32_t (&z2)[4], const uint32_t (&z2h)[4])
{
    if (bits == 4) {
        uint4 xv[NT];
        x_frags<T, NT>(xv, xs, xstride, kk, n, g, t);
        mma_chunk4<T, NT>(cg, wv, xv, z2, z2h);
    } else {
        uint2 xv[NT];
        x_frags<T, NT>(xv, xs, xstride, kk, n, g, t);
        mma_chunk8<T, NT>(cg, wv, xv, z2);
    }
}

/* Decode with the zero points folded out (qmv_kernel's regular 4- and 8-bit variants with F, used at one row:
 * run_qv_nt): the tensor core takes the codes themselves as subnormals (xs_code: fp16 q * 2^-24, bf16 q * 2^-133
 * against activations stored times 2^64), straight from one LOP3 per pair: (w & 0x000F000F) for the even nibbles,
 * (w & 0x00F000F0) = 16 q for the odd ones against activations stored divided by 16 more (gather_slice's XM = 4),
 * (w & 0x00FF00FF) for bytes. The products are exact and sum in fp32 to 2^-24 sum(q x) (bf16: 2^-69). A fifth MMA
 * per step, all ones (16 on the odd nibbles' rows) against the same activations, sums x per token in the
 * accumulator layout (xsum; rows all equal), and flush_fold applies s 2^24 sum(q x) - z s sum(x) per column
 * (bf16: 2^69, and the sum of x times 2^-64). Saves the per-pair HSUB2 / HFMA2 of mma_chunk (16 of 36
 * dequantization instructions per 4-bit chunk) for two more MMAs. */
/* The all-ones A fragments that sum the activations per token (rows all equal): 1 on a 4-bit chunk's even
 * nibbles' rows, 16 on the odd ones' (stored over 16), as T2 bits. */
template <typename T> struct fold_ones {
    static constexpr bool H = std::is_same<T, __half>::value;
    static constexpr uint32_t ONE = H ? 0x3C003C00u : 0x3F803F80u, SIXTEEN = H ? 0x4C004C00u : 0x41804180u;
};

/* mma_fold's 4-bit chunk on B fragments xv already loaded (x_frags' layout). */
template <typename T, int NT, bool XSUM = true>
__device__ __forceinline__ void mma_fold4(float (&cg)[2][NT][4], float (&xsum)[NT][4], const uint4 wv,
                                          const uint4 (&xv)[NT])
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    constexpr uint32_t ONE = fold_ones<T>::ONE, SIXTEEN = fold_ones<T>::SIXTEEN;
    uint32_t lo[4][2], hi[4][2]; /* [word][step], as mma_chunk */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t w8 = wd[i] >> 8;
        lo[i][0] = wd[i] & 0x000F000Fu;
        hi[i][0] = wd[i] & 0x00F000F0u;
        lo[i][1] = w8 & 0x000F000Fu;
        hi[i][1] = w8 & 0x00F000F0u;
    }
    const uint32_t ones[4] = {ONE, ONE, SIXTEEN, SIXTEEN};
#pragma unroll
    for (int step = 0; step < 2; step++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const uint32_t b0 = step ? xv[nt].z : xv[nt].x, b1 = step ? xv[nt].w : xv[nt].y;
            if constexpr (XSUM)
                qmma_t<T>::mma(xsum[nt], ones, b0, b1);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t a[4] = {lo[2 * j][step], lo[2 * j + 1][step], hi[2 * j][step], hi[2 * j + 1][step]};
                qmma_t<T>::mma(cg[j][nt], a, b0, b1);
            }
        }
}

template <typename T, int NT, int B, bool XSUM = true>
__device__ __forceinline__ void mma_fold(float (&cg)[2][NT][4], float (&xsum)[NT][4], const uint4 wv, const T *xs,
                                         int xstride, int kk, int n, int g, int t)
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    constexpr uint32_t ONE = fold_ones<T>::ONE;
    if constexpr (B == 4) {
        uint4 xv[NT];
        x_frags<T, NT>(xv, xs, xstride, kk, n, g, t);
        mma_fold4<T, NT, XSUM>(cg, xsum, wv, xv);
    } else {
        uint2 xv[NT];
        x_frags<T, NT>(xv, xs, xstride, kk, n, g, t);
        const uint32_t ones[4] = {ONE, ONE, ONE, ONE};
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if constexpr (XSUM)
                qmma_t<T>::mma(xsum[nt], ones, xv[nt].x, xv[nt].y);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t a[4] = {wd[2 * j] & 0x00FF00FFu, wd[2 * j + 1] & 0x00FF00FFu,
                                       (wd[2 * j] >> 8) & 0x00FF00FFu, (wd[2 * j + 1] >> 8) & 0x00FF00FFu};
                qmma_t<T>::mma(cg[j][nt], a, xv[nt].x, xv[nt].y);
            }
        }
    }
}

/* bf16 8-bit codes without the fold (qmv_kernel at more rows, or where groups are short): (w & 0x00FF00FF) is the
 * pair's codes as bf16 subnormals q * 2^-133, one HSUB2 takes z * 2^-133 off exactly (z2: z in both halves), against
 * activations stored times 2^64 (xs_code; scales times 2^69). Two instructions per pair where dq2's bf16 8-bit form
 * goes through fp16 and float (five). */
template <int NT>
__device__ __forceinline__ void mma_codes8(float (&cg)[2][NT][4], const uint4 wv, const __nv_bfloat16 *xs,
                                           int xstride, int kk, int n, int g, int t, const uint32_t (&z2)[4])
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    uint2 xv[NT];
    x_frags<__nv_bfloat16, NT>(xv, xs, xstride, kk, n, g, t);
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const uint32_t a[4] = {bf2_sub(wd[2 * j] & 0x00FF00FFu, z2[2 * j]),
                               bf2_sub(wd[2 * j + 1] & 0x00FF00FFu, z2[2 * j + 1]),
                               bf2_sub((wd[2 * j] >> 8) & 0x00FF00FFu, z2[2 * j]),
                               bf2_sub((wd[2 * j + 1] >> 8) & 0x00FF00FFu, z2[2 * j + 1])};
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
            qmma_t<__nv_bfloat16>::mma(cg[j][nt], a, xv[nt].x, xv[nt].y);
    }
}

/* The activation slice's scaling for the decode variants that take the weight codes themselves into the tensor
 * core (XM, the codes' width: 4 or 8; 0: none). The codes enter as subnormals: fp16 bits q are q * 2^-24, bf16 bits
 * q are q * 2^-133 (bf16 subnormals below 128, and from 128 to 255 the normal numbers of exponent -126, on the same
 * grid). bf16 products q * 2^-133 * x would be float32 subnormals, so bf16 activations are stored times 2^64
 * (exact; |x| < 2^63 stays finite) and the scales take 2^69 (SCALE below). 4-bit codes: the odd nibbles' values
 * enter as 16 q (the mask 0x00F000F0 without a shift), so their rows (entry i with i & 2) are stored divided by 16
 * more. Exact for fp16 |x| >= 2^-10 (below, the quotient is a subnormal rounded to 2^-24: at most 2^-25 off). */
template <typename T> struct xs_code;
template <> struct xs_code<__half> {
    static constexpr uint16_t EVEN = 0x3C00u, ODD4 = 0x2C00u; /* 1, 1/16 */
    static constexpr float SCALE = 16777216.0f;                /* 2^24 */
    static constexpr float XSUM = 1.0f;                        /* the ones' sum is sum(x) itself */
};
template <> struct xs_code<__nv_bfloat16> {
    static constexpr uint16_t EVEN = 0x5F80u, ODD4 = 0x5D80u; /* 2^64, 2^60 */
    static constexpr float SCALE = 590295810358705651712.0f;   /* 2^69 = 2^133 / 2^64 */
    static constexpr float XSUM = 5.42101086242752217e-20f;    /* 2^-64 */
};
template <typename T, int XM> __device__ __forceinline__ uint16_t xs_mult(bool odd)
{
    return (XM == 4 && odd) ? xs_code<T>::ODD4 : xs_code<T>::EVEN;
}
/* Whether XM changes the slice at all for T (fp16 8-bit codes need no scaling). */
template <typename T, int XM> constexpr bool xs_scaled()
{
    return XM == 4 || (XM == 8 && !std::is_same<T, __half>::value);
}
/* One entry (position i of the slice), or a pair of one parity, scaled as above. */
template <typename T, int XM> __device__ __forceinline__ T xs_one(T v, int i)
{
    if constexpr (!xs_scaled<T, XM>()) {
        return v;
    } else {
        const uint16_t m = xs_mult<T, XM>(i & 2);
        return __hmul(v, *reinterpret_cast<const T *>(&m));
    }
}
template <typename T, int XM> __device__ __forceinline__ uint32_t xs_pair(uint32_t v, bool odd)
{
    const uint32_t m = xs_mult<T, XM>(odd) * 0x00010001u;
    typedef typename dt_traits<T>::T2 T2;
    const T2 r = __hmul2(*reinterpret_cast<const T2 *>(&v), *reinterpret_cast<const T2 *>(&m));
    return *reinterpret_cast<const uint32_t *>(&r);
}

/* The two entries of a T2 pair (bits), summed in float. */
template <typename T> __device__ __forceinline__ float pair_sum(uint32_t v)
{
    const float2 f = dt_traits<T>::to_f2(*reinterpret_cast<const typename dt_traits<T>::T2 *>(&v));
    return f.x + f.y;
}

/* xs[r, i] = x[r, perm[kr0 + i]] (rows r < n, i < kr; row stride xstride): a block's activation slice in
 * packed order, by the whole block: 16-byte cp.async copies when the permutation is the identity (kr and kr0 are
 * multiples of 16 then), else loads issued in batches of GB per thread (one memory latency per batch). Returns
 * once this thread's copies (and any cp.async its caller issued before) have landed; the caller's barrier makes
 * them the block's. XM (the decode variants that take the codes themselves, 4 or 8 bits wide; 0: none): the
 * entries scaled as xs_code says. */
template <typename T, int XM = 0>
__device__ __forceinline__ void gather_slice(T *xs, int xstride, const T *x, int k, int kr0, int kr, int n,
                                             const int32_t *perm, int perm_identity, int tid = threadIdx.x,
                                             int nth = blockDim.x)
{
    constexpr int GB = 8;
    if (perm_identity) { /* kr and kr0 are multiples of 16; cp.async: no registers, no index division */
        const int kv = kr >> 3;
        for (int r = 0; r < n; r++) {
            const uint4 *src = reinterpret_cast<const uint4 *>(x + (size_t)r * k + kr0);
            uint4 *dst = reinterpret_cast<uint4 *>(xs + (size_t)r * xstride);
            for (int i = tid; i < kv; i += nth)
                cp_async16(dst + i, src + i);
        }
        if constexpr (xs_scaled<T, XM>()) { /* this thread's own copies, once they have landed */
            cp_async_wait_all();
            for (int r = 0; r < n; r++) {
                uint4 *row = reinterpret_cast<uint4 *>(xs + (size_t)r * xstride);
                for (int i = tid; i < kv; i += nth) {
                    uint4 v = row[i]; /* entries 8i..8i+7: pairs of parity (i & 2) even, odd, even, odd */
                    if constexpr (!std::is_same<T, __half>::value) { /* fp16's even entries stay as they are */
                        v.x = xs_pair<T, XM>(v.x, false);
                        v.z = xs_pair<T, XM>(v.z, false);
                    }
                    v.y = xs_pair<T, XM>(v.y, true);
                    v.w = xs_pair<T, XM>(v.w, true);
                    row[i] = v;
                }
            }
        }
    } else {
        for (int b0 = tid; b0 < kr; b0 += GB * nth) {
            int src[GB];
#pragma unroll
            for (int u = 0; u < GB; u++)
                src[u] = b0 + u * nth < kr ? __ldg(perm + kr0 + b0 + u * nth) : 0;
            for (int r = 0; r < n; r++) {
                T v[GB];
#pragma unroll
                for (int u = 0; u < GB; u++)
                    v[u] = x[(size_t)r * k + src[u]];
#pragma unroll
                for (int u = 0; u < GB; u++) {
                    const int i = b0 + u * nth;
                    if (i < kr)
                        xs[(size_t)r * xstride + i] = xs_one<T, XM>(v[u], i);
                }
            }
        }
    }
    cp_async_wait_all(); /* this thread's copies, including any the caller issued (qmv_kernel's group parameters) */
}

/* A fragment array set to zero (accumulators, group products). */
template <int NT> __device__ __forceinline__ void frags_zero(float (&a)[2][NT][4])
{
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                a[j][nt][e] = 0.0f;
}
/* acc = fma(s[column], cg, base(column, nt, e, acc)) over a lane's fragments, cg reset (flush_group, flush_fold).
 * ONE: one token (n == 1). An entry's token is 8 nt + 2 t + (e & 1) and x_frags gives the tensor core zeros for
 * tokens past n, so at one token the odd entries stay 0 in cg, xsum and acc: only the even ones are flushed (half
 * the multiply-adds and resets; measured where the kernels take it, PERFORMANCE.md fifteenth run). */
template <int NT, bool ONE = false, typename Base>
__device__ __forceinline__ void flush_each(float (&acc)[2][NT][4], float (&cg)[2][NT][4], const float (&s)[4],
                                           Base base, bool reset = true)
{
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e += ONE ? 2 : 1) {
                const int col = 2 * j + (e >> 1);
                acc[j][nt][e] = fmaf(s[col], cg[j][nt][e], base(col, nt, e, acc[j][nt][e]));
                if (reset)
                    cg[j][nt][e] = 0.0f;
            }
}
/* The group products cg into the accumulators, each column times its group scale s (float32), cg reset:
 * at a change of group and at the end of a warp's chunks (both decode kernels). */
template <int NT, bool ONE = false>
__device__ __forceinline__ void flush_group(float (&acc)[2][NT][4], float (&cg)[2][NT][4], const float (&s)[4])
{
    flush_each<NT, ONE>(acc, cg, s, [](int, int, int, float a) { return a; });
}
/* flush_group for mma_fold's sums: acc += s24 cg - zs xsum (s24 = 2^24 s, zs = z s per column; xsum per token),
 * cg and xsum reset. */
template <int NT, bool ONE = false>
__device__ __forceinline__ void flush_fold(float (&acc)[2][NT][4], float (&cg)[2][NT][4], float (&xsum)[NT][4],
                                           const float (&s24)[4], const float (&zs)[4])
{
    flush_each<NT, ONE>(acc, cg, s24,
                        [&](int col, int nt, int e, float a) { return fmaf(-zs[col], xsum[nt][e & 1], a); });
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e += ONE ? 2 : 1)
            xsum[nt][e] = 0.0f;
}
/* A warp's accumulators into its row of the block's shared sums, red_w[token][column of the tile]:
 * acc[j][nt]: e = 0, 1: column C + 2j, tokens 8nt + 2t, +1; e = 2, 3: column C + 2j + 1 (C = 4 g). */
template <int NT> __device__ __forceinline__ void frags_to_smem(float (*red_w)[32], const float (&acc)[2][NT][4],
                                                                int g, int t)
{
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                red_w[8 * nt + 2 * t + (e & 1)][4 * g + 2 * j + (e >> 1)] = acc[j][nt][e];
}
/* out[r, col] = v (+ bias[col]), rounded to T. */
template <typename T>
__device__ __forceinline__ void put_out(T *out, const T *bias, int m, int r, int col, float v)
{
    if (bias)
        v += dt_traits<T>::to_f(bias[col]);
    out[(size_t)r * m + col] = dt_traits<T>::from_f(v);
}

template <typename T, int FMT, int NT>
__global__ void __launch_bounds__(MW * 32) qmma_kernel(
    T *__restrict__ out, const T *__restrict__ x, const T *__restrict__ bias, int n, int k, int m, int G,
    const uint4 *__restrict__ qw, const int2 *__restrict__ chunks, int n_chunks, int cps, int cpw,
    const uint32_t *__restrict__ qz, const __half *__restrict__ sc, const uint32_t *__restrict__ qs,
    const __half *__restrict__ qsm, int zadd, const int32_t *__restrict__ perm, int perm_identity, int xstride,
    float *__restrict__ part, unsigned *__restrict__ tile_sync)
{
    extern __shared__ uint4 q_smem[];
    T *xs = reinterpret_cast<T *>(q_smem); /* [n][xstride] activations of this block's rows, packed order */
    int2 *dsm = reinterpret_cast<int2 *>(xs + (size_t)n * xstride); /* [cps] this block's chunk table */
    __shared__ float red[MW][NT * 8][32];
    __shared__ int is_last;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x, split = blockIdx.y, S = gridDim.y, mp = (int)gridDim.x * 32;
    const int cb = tile * 32, C = cb + 4 * g;
    const int c0 = split * cps, c1 = min(n_chunks, c0 + cps);
    const int kr0 = __ldg(&chunks[c0].x), kr1 = c1 < n_chunks ? __ldg(&chunks[c1].x) : k, kr = kr1 - kr0;
    const int wc0 = c0 + warp * cpw, wc1 = min(c1, wc0 + cpw);

    uint4 wv[MU];
    int2 dsc[MU];
    uint32_t zq[MU];
    uint2 sv[MU];
    auto load_weights = [&](int base) {
#pragma unroll
        for (int u = 0; u < MU; u++)
            if (base + u < wc1)
                wv[u] = __ldcs(qw + mma_word(4 * n_chunks, 4 * (base + u) + t, C));
    };
    auto load_params = [&](int base) {
#pragma unroll
        for (int u = 0; u < MU; u++)
            if (base + u < wc1) {
                dsc[u] = dsm[base + u - c0];
                chunk_param_loads<FMT>(dsc[u].y & 0xFFFFFF, dsc[u].y >> 24, C, G, qz, sc, qs, qsm, zq[u], sv[u]);
            }
    };
    if (wc0 < wc1)
        load_weights(wc0); /* the first weights are in flight while the activations are gathered */
    for (int i = threadIdx.x; i < c1 - c0; i += blockDim.x)
        dsm[i] = __ldg(chunks + c0 + i);

    /* the activation slice */
    gather_slice<T>(xs, xstride, x, k, kr0, kr, n, perm, perm_identity);
    __syncthreads();

    float acc[2][NT][4];
    frags_zero<NT>(acc);

    /* cg: the products of the current run of chunks of one group (exact q - z times the activations, in
     * float32); at a change of group (and at the end) acc += scale * cg per column */
    float cg[2][NT][4], s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint32_t z2[4] = {0u, 0u, 0u, 0u}, z2h[4] = {0u, 0u, 0u, 0u};
    int cur = -1;
    auto flush = [&]() {
        flush_group<NT>(acc, cg, s);
    };
    frags_zero<NT>(cg);
    if (wc0 < wc1)
        load_params(wc0);
    for (int base = wc0; base < wc1; base += MU) {
#pragma unroll
        for (int u = 0; u < MU; u++) {
            if (base + u >= wc1)
                break;
            const int bits = dsc[u].y >> 24, kk = dsc[u].x - kr0;
            if (dsc[u].y != cur) { /* warp-uniform */
                flush();
                cur = dsc[u].y;
                group_params<T, FMT>(bits, zq[u], sv[u], C, zadd, z2, z2h, s);
            }
            mma_chunk<T, NT>(cg, wv[u], bits, xs, xstride, kk, n, g, t, z2, z2h);
            /* rolling prefetch: slot u now takes chunk base + u + MU, so MU chunks stay in flight */
            const int nxt = base + u + MU;
            if (nxt < wc1) {
                wv[u] = __ldcs(qw + mma_word(4 * n_chunks, 4 * nxt + t, C));
                dsc[u] = dsm[nxt - c0];
                chunk_param_loads<FMT>(dsc[u].y & 0xFFFFFF, dsc[u].y >> 24, C, G, qz, sc, qs, qsm, zq[u], sv[u]);
            }
        }
    }
    flush();
    frags_to_smem<NT>(red[warp], acc, g, t);
    __syncthreads();
    if (S == 1) {
        for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
            const int r = idx >> 5, col = cb + (idx & 31);
            if (col < m) {
                float v = 0.0f;
#pragma unroll
                for (int w = 0; w < MW; w++)
                    v += red[w][r][idx & 31];
                put_out(out, bias, m, r, col, v);
            }
        }
        return;
    }
    for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
        const int r = idx >> 5;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < MW; w++)
            v += red[w][r][idx & 31];
        part[((size_t)split * n + r) * mp + cb + (idx & 31)] = v;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        is_last = atomicAdd(tile_sync + tile, 1u) == (unsigned)(S - 1);
    __syncthreads();
    if (!is_last)
        return;
    __threadfence();
    for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
        const int r = idx >> 5, col = cb + (idx & 31);
        if (col < m) {
            float v = 0.0f;
            for (int sp = 0; sp < S; sp++)
                v += __ldcg(part + ((size_t)sp * n + r) * mp + col);
            put_out(out, bias, m, r, col, v);
        }
    }
    if (threadIdx.x == 0)
        tile_sync[tile] = 0u; /* every block of this tile has arrived: ready for the next call */
}

/* ---- decode kernel v2 (qmv_kernel): up to 3 weights of one input in one launch ----
 * The tensor-core arithmetic of qmma_kernel (mma_chunk), arranged for a decode step:
 * - one launch serves up to 3 weights that read the same activations (q, k, v; gate, up): blockIdx.x
 *   runs over the column tiles of all of them, so the small k and v projections cost no launch of
 *   their own;
 * - 8 warps per block (16 at 9-16 rows for EXL2 4-bit and 8-bit: QV_WARPS_WIDE) on one 32-column tile, splitting
 *   its chunks; split-K over blocks (blockIdx.y, at most 8) only as far as the grid still fits the
 *   resident slots, reduced through distributed shared memory (the S blocks of a tile are one
 *   thread-block cluster; rank order, so deterministic): no workspace, no atomics, no second pass;
 * - launched with programmatic dependent launch: the first MU chunks' weights, chunk entries and
 *   scales (which no kernel writes) are requested before griddepcontrol.wait, the activations after. */
constexpr int QV_WARPS = 8;
/* qmv_kernel's warps per block W: QV_WARPS, or QV_WARPS_WIDE for EXL2 4-bit at 9-16 rows where XG does not take
 * the call (SwiGLU's pair; run_qv_nt's rule) and for 8-bit weights at 9-16 rows: one
 * block per SM there (the 16-row activation slice), so twice the warps at up to 128 registers each give the
 * scheduler twice the warps to choose from over the same slice. qmv_general_kernel keeps QV_WARPS. */
constexpr int QV_WARPS_WIDE = 2 * QV_WARPS;
/* qmv_kernel's dynamic shared memory before the slice: `red` where it is not static (over QV_WARPS warps) */
template <int NT, int W> constexpr size_t qv_red_bytes()
{
    return W > QV_WARPS ? (size_t)2 * W * NT * 8 * 32 * 4 : 0;
}
constexpr int QV_MAX_PARTS = 3;
constexpr int QV_MAX_SPLIT = 8;

struct qv_part {
    const uint4 *qw;
    const int2 *chunks;
    const uint32_t *qz;
    const __half *sc;
    const uint32_t *qs;
    const __half *qsm;
    const int32_t *perm;
    const void *x; /* this weight's activations: the input, or (n >= QV_PREGATHER, permuted) its gathered copy */
    void *out;
    const void *bias;
    int m, n_chunks, n_groups, ident;
    int tiles, blk0; /* 32-column tiles; the first block (blockIdx.x) on them, a.tpb tiles per block */
    int zw; /* 32-bit words per tile and group of qzeros (GPTQ: bits) or q_scale (EXL2: 4) */
    int gshift; /* regular chunk tables (kernel B != 0): chunk c is in group c >> gshift */
};
struct qv_args {
    qv_part p[QV_MAX_PARTS];
    int n_parts, n, k, zadd, cps, cpw, xstride, tpb;
    /* SwiGLU's balanced split (launch_qv, qv_swbal): blocks x < bal_hi take a.tpb tiles, the others a.tpb - 2; 0: every
     * block a.tpb */
    int bal_hi;
    /* qmv_kernel, gpu_qlinear_swiglu: parts 0 (gate) and 1 (up) of one shape, every block on the same tiles of
     * both (a.tpb counts gate and up tiles: even), p[0].out = silu(gate) * up; split-K 1 */
    int swiglu;
    /* gpu_qlinear_swiglu_x, and gpu_qx.resid: the output also scattered to xout[r, opos[col]] (the next weight's
     * packed order) */
    void *xout;
    const int32_t *opos;
    /* the RMSNorm split around two launches (quant_ops.h, gpu_qx): resid, nw, ss_out (this launch adds its product to
     * the residual and writes the norm's numerator and sums; ss_out [n][p[0].tiles]) or ss_in (this launch scales its
     * outputs by the norm: ss_in [n][ss_tiles], 1 / ss_inv_d values per row) */
    void *resid;
    const void *nw;
    float *ss_out;
    const float *ss_in;
    int ss_tiles;
    float ss_inv_d, ss_eps; /* both times 2^-2 ss_shift: rsqrt of the sum then carries the numerators' 2^ss_shift */
    float nw_scale;         /* a producer's 2^-ss_shift */
};

/* QV_NORM_PRE=0 at compile time: qmv_kernel's NORM loads put_resid's operands in the epilogue, as before */
#ifndef QV_NORM_PRE
#define QV_NORM_PRE 1
#endif
/* a.resid's epilogue for output (r, col) of column tile `tile` (every lane of the warp on row r, col past m too): the
 * product v (+ bias) rounded to T as put_out would store it, added to the residual (rounded to T, as gpu_add_rmsnorm),
 * the norm's numerator resid * nw to out (and xout), the tile's sum of resid^2 to ss_out. put_resid_v takes the
 * operands already loaded (qmv_kernel's NORM requests them early): the bias bf (where bias is not null), the
 * residual resf, the norm weight nwf and xout's position pos */
template <typename T>
__device__ __forceinline__ void put_resid_v(const qv_args &a, T *out, const T *bias, int m, int r, int col, int tile,
                                            float v, float bf, float resf, float nwf, int pos)
{
    float sq = 0.0f;
    if (col < m) {
        if (bias)
            v += bf;
        const T xr = dt_traits<T>::from_f(resf + dt_traits<T>::to_f(dt_traits<T>::from_f(v)));
        static_cast<T *>(a.resid)[(size_t)r * m + col] = xr;
        const float xf = dt_traits<T>::to_f(xr);
        const T o = dt_traits<T>::from_f(xf * nwf * a.nw_scale);
        out[(size_t)r * m + col] = o;
        if (a.xout)
            static_cast<T *>(a.xout)[(size_t)r * m + pos] = o;
        sq = xf * xf;
    }
    sq = warp_sum(sq);
    if ((threadIdx.x & 31) == 0)
        a.ss_out[(size_t)r * a.ss_tiles + tile] = sq;
}
template <typename T>
__device__ __forceinline__ void put_resid(const qv_args &a, T *out, const T *bias, int m, int r, int col, int tile,
                                          float v)
{
    float bf = 0.0f, resf = 0.0f, nwf = 0.0f;
    int pos = 0;
    if (col < m) {
        if (bias)
            bf = dt_traits<T>::to_f(bias[col]);
        resf = dt_traits<T>::to_f(static_cast<const T *>(a.resid)[(size_t)r * m + col]);
        nwf = dt_traits<T>::to_f(static_cast<const T *>(a.nw)[col]);
        if (a.xout)
            pos = __ldg(a.opos + col);
    }
    put_resid_v(a, out, bias, m, r, col, tile, v, bf, resf, nwf, pos);
}

/* From this many rows on (default: always), a permuted weight's activations are gathered once (qv_gather_kernel,
 * into the workspace) instead of by every block (n scattered 2-byte loads per row). Was 4: the seventh run measured
 * the per-block gather of one row as the 70B EXL2 regression (down projection, k = 28672: 124 us per block-gathered
 * launch against 57 us after a 3.7 us gather kernel, Nsight Compute; its 88 KB of shared memory per block leave L1
 * too small for the activations, so every scattered load went to L2). */
constexpr int QV_PREGATHER = 1;

/* Both decode kernels: the block's activation slice (chunks c0..c1 of part P, packed rows kr0..kr1) gathered into
 * xs once the previous kernel's output is visible (gdc_wait), and made the block's by a barrier (XM: gather_slice's
 * scaling). Returns kr0. */
template <typename T, int XM = 0>
__device__ __forceinline__ int slice_in(T *xs, int xstride, const T *x, int k, int n, const qv_part &P, int c0, int c1)
{
    const int kr0 = c0 < P.n_chunks ? __ldg(&P.chunks[c0].x) : k;
    const int kr1 = c1 < P.n_chunks ? __ldg(&P.chunks[c1].x) : k;
    if (8 * (int)threadIdx.x < kr1 - kr0) /* QV_XPF: row 0's first copy sources (no-op otherwise) */
        l2_touch(x + kr0 + 8 * threadIdx.x);
    gdc_wait(); /* the activations are the previous kernel's output */
    gather_slice<T, XM>(xs, xstride, x, k, kr0, kr1 - kr0, n, P.perm, P.ident);
    kt_mark(3); /* thread 0's own copies landed (and scaled): CHASKI_KTRACE builds */
    __syncthreads();
    kt_mark(4); /* every thread's */
    return kr0;
}

/* QV_WSLICE (default 1): qmv_kernel's GPTQ rounds at 2-8 rows (V = 6 with FOLD) take their slice per warp. A warp
 * reads the slice only at its own chunks wc0..wc1 (the same for every tile of the block) and its own groups'
 * parameters, so each warp copies those itself and goes on after __syncwarp, not after a block barrier over every
 * warp's copies. Measured (H200, docs/PERFORMANCE.md thirty-ninth run, two rounds, 8B gptq4-g128 FP16): batch 2
 * +1.6-2.0%, batch 4 +1.7-2.4%; local ptxas: V = 6's NORM kernels no longer spill (16 / 20 / 56 bytes before), which
 * may be part of it. At one row (V = 5) it measured level to -1% (tg32 FP16 -0.4%, BF16 -1.2% in one round), so V = 5
 * keeps the block's slice: the wait-to-loop time of 1.5-2.3 us that the trace shows there is not this barrier. */
#ifndef QV_WSLICE
#define QV_WSLICE 1
#endif
/* QV_PRE_RU: how many of its ring's slots qmv_kernel requests before its wait (the rest after its activation slice is
 * in). Default: all. A bench switch for the thirty-ninth run's second suspect (docs/PERFORMANCE.md): the slice's
 * copies queued behind the weights each block requested before the wait. Measured and refuted (H200, fortieth run,
 * 8B tg32, two rounds): 0 slots before the wait cost GPTQ FP16 6.1% and EXL2 BF16 15%, 4 slots 1.5% and 5.8%. */
#ifndef QV_PRE_RU
#define QV_PRE_RU 64
#endif
/* The warp's part of slice_in: chunks wc0..wc1 of the block's c0.., at their place in xs. */
template <typename T, int XM = 0>
__device__ __forceinline__ void slice_in_warp(T *xs, int xstride, const T *x, int k, int n, const qv_part &P, int c0,
                                              int wc0, int wc1, int lane)
{
    const int kr0 = c0 < P.n_chunks ? __ldg(&P.chunks[c0].x) : k;
    const int ka = wc0 < P.n_chunks ? __ldg(&P.chunks[wc0].x) : k;
    const int kb = wc1 < P.n_chunks ? __ldg(&P.chunks[wc1].x) : k;
    if (8 * lane < kb - ka) /* QV_XPF: row 0's first copy sources (no-op otherwise) */
        l2_touch(x + ka + 8 * lane);
    gdc_wait(); /* the activations are the previous kernel's output */
    /* ka - kr0: whole 32-row chunks, so xs_one's pair parities and cp.async's 16-byte alignment hold */
    gather_slice<T, XM>(xs + (ka - kr0), xstride, x, k, ka, kb - ka, n, P.perm, P.ident, lane, 32);
    __syncwarp();
}

/* xg_i[r, j] = x[r, perm_i[j]] for the permuted parts i (blockIdx.z), 8 outputs per thread. */
struct qv_gather_args {
    const int32_t *perm[QV_MAX_PARTS];
    void *xg[QV_MAX_PARTS];
    const void *x;
    int n, k;
};
template <typename T>
__global__ void qv_gather_kernel(const __grid_constant__ qv_gather_args a)
{
    const int32_t *perm = a.perm[blockIdx.z];
    T *xg = static_cast<T *>(a.xg[blockIdx.z]);
    const T *x = static_cast<const T *>(a.x);
    GDC_LAUNCH_DEPENDENTS();
    /* the permutation (which no kernel writes) of this thread's first 8 outputs is read before gdc_wait, the
     * activations (the previous kernel's output) after it */
    const int i0 = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    int4 p0 = make_int4(0, 0, 0, 0), p1 = p0;
    if (perm && i0 < a.k) {
        p0 = __ldg(reinterpret_cast<const int4 *>(perm + i0));
        p1 = __ldg(reinterpret_cast<const int4 *>(perm + i0) + 1);
    }
    gdc_wait();
    if (!perm)
        return;
    for (int i = i0; i < a.k; i += gridDim.x * blockDim.x * 8) {
        if (i != i0) {
            p0 = __ldg(reinterpret_cast<const int4 *>(perm + i));
            p1 = __ldg(reinterpret_cast<const int4 *>(perm + i) + 1);
        }
        const int src[8] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
        for (int r = blockIdx.y; r < a.n; r += gridDim.y) {
            alignas(16) T v[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                v[j] = x[(size_t)r * a.k + src[j]];
            *reinterpret_cast<uint4 *>(xg + (size_t)r * a.k + i) = *reinterpret_cast<const uint4 *>(v);
        }
    }
}

/* The general variant: any MMA-layout weight (EXL2 layers of mixed widths; every weight with CHASKI_QMV=2), the
 * chunk table read per chunk for the width, rows and group, the group's parameters loaded with each chunk into the
 * ring's registers. One column tile per block (launch_qv). bd0955f's chunk loop, kept as it was measured. */
template <typename T, int FMT, int NT>
__global__ void __launch_bounds__(QV_WARPS * 32, NT == 1 ? 2 : 1) qmv_general_kernel(const __grid_constant__ qv_args a)
{
    extern __shared__ uint4 q_smem[];
    T *xs = reinterpret_cast<T *>(q_smem); /* [n][xstride]: this block's activation rows, packed order */
    __shared__ float red[QV_WARPS][NT * 8][32];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int bx = (int)blockIdx.x;
    const int pi = (a.n_parts > 2 && bx >= a.p[2].blk0) ? 2 : (a.n_parts > 1 && bx >= a.p[1].blk0) ? 1 : 0;
    const qv_part &P = a.p[pi]; /* read from the parameter space where used, not copied to registers */
    const T *x = static_cast<const T *>(P.x);
    const int n = a.n, k = a.k, S = (int)gridDim.y;
    const int cb = (bx - P.blk0) * 32, C = cb + 4 * g;
    const int c0 = min(P.n_chunks, (int)blockIdx.y * a.cps), c1 = min(P.n_chunks, c0 + a.cps);
    const int wc0 = min(c1, c0 + warp * a.cpw), wc1 = min(c1, wc0 + a.cpw);

    GDC_LAUNCH_DEPENDENTS();
    /* this lane's bases in the tile-major arrays (mma_word, mma_zword, mma_scale): chunk c's word is
     * wl[32 c], its group's zero / scale-code word zl[grp * zw], its scales sl[32 grp] (GPTQ) */
    const int zw = P.zw;
    const uint4 *wl = P.qw + mma_word(4 * P.n_chunks, t, C);
    const uint32_t *zl = (FMT == GPU_Q_GPTQ ? P.qz : P.qs) + mma_zword(P.n_groups, 0, C, zw);
    const __half *sl = FMT == GPU_Q_GPTQ ? P.sc + mma_scale(P.n_groups, 0, C) : nullptr;
    const __half *qsm = P.qsm;
    const int2 *chunks = P.chunks;
    uint4 wv[MU];
    uint32_t zq[MU];
    uint2 sv[MU];
    auto load_params = [&](int u, int grp) {
        zq[u] = __ldg(zl + grp * zw);
        if (FMT == GPU_Q_GPTQ)
            sv[u] = __ldg(reinterpret_cast<const uint2 *>(sl + 32 * grp));
        else
            sv[u] = make_uint2(__half_as_ushort(qsm[grp]), 0u);
    };
    auto load = [&](int u, int c) { /* the chunk entry is read again (from L1) where it is used */
        wv[u] = __ldcs(wl + 32 * c);
        load_params(u, __ldg(&chunks[c].y) & 0xFFFFFF);
    };
#pragma unroll
    for (int u = 0; u < MU; u++)
        if (wc0 + u < wc1)
            load(u, wc0 + u);
    const int kr0 = slice_in<T>(xs, a.xstride, x, k, n, P, c0, c1);

    float acc[2][NT][4], cg[2][NT][4], s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint32_t z2[4] = {0u, 0u, 0u, 0u}, z2h[4] = {0u, 0u, 0u, 0u};
    frags_zero<NT>(acc);
    frags_zero<NT>(cg);
    auto flush = [&]() { flush_group<NT>(acc, cg, s); };
    int cur = -1; /* the chunk entry of the current group */
    for (int base = wc0; base < wc1; base += MU) {
#pragma unroll
        for (int u = 0; u < MU; u++) {
            const int c = base + u;
            if (c >= wc1)
                break;
            /* the chunk's width, first row in the slice, and whether a group starts here (warp-uniform) */
            const int2 d = __ldg(chunks + c);
            const int bits = d.y >> 24, kk = d.x - kr0;
            const bool starts = d.y != cur;
            cur = d.y;
            if (starts) {
                flush();
                group_params<T, FMT>(bits, zq[u], sv[u], C, a.zadd, z2, z2h, s);
            }
            mma_chunk<T, NT>(cg, wv[u], bits, xs, a.xstride, kk, n, g, t, z2, z2h);
            if (c + MU < wc1) /* slot u now takes chunk c + MU: MU chunks stay in flight */
                load(u, c + MU);
        }
    }
    flush();
    frags_to_smem<NT>(red[warp], acc, g, t);
    __syncthreads();
    /* this block's sums over its warps, in red[0] (thread idx owns entry idx) */
    for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
        const int r = idx >> 5;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < QV_WARPS; w++)
            v += red[w][r][idx & 31];
        red[0][r][idx & 31] = v;
    }
    T *out = static_cast<T *>(P.out);
    const T *bias = static_cast<const T *>(P.bias);
    if (S == 1) {
        for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
            const int r = idx >> 5, col = cb + (idx & 31);
            if (col < P.m)
                put_out(out, bias, P.m, r, col, red[0][r][idx & 31]);
        }
        return;
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 /* clusters: sm_90 on; launch_qv keeps S = 1 below that */
    coop::cluster_group cl = coop::this_cluster();
    cl.sync(); /* every block of the tile has its sums in red[0] */
    if (cl.block_rank() == 0) {
        for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
            const int r = idx >> 5, col = cb + (idx & 31);
            float v = 0.0f;
            for (int sp = 0; sp < S; sp++)
                v += cl.map_shared_rank(&red[0][0][0], sp)[idx];
            if (col < P.m)
                put_out(out, bias, P.m, r, col, v);
        }
    }
    cl.sync(); /* the other blocks' shared memory stays until rank 0 has read it */
#endif
}

/* The regular variants, B = 4 or 8 (gpu_qweight.chunk_bits): every chunk of that width, chunk c in group
 * c >> gshift, so rows and groups are computed, the width is a constant, and a group's zero points and scales are
 * read from shared memory once per group.
 * A block takes a.tpb consecutive column tiles of one weight (tiles t0..t1 of its part) through one ring of RU
 * chunks in flight per warp (MU; XG at 9-16 rows 4): the next tile's first chunks are requested while this one's
 * last are multiplied.
 * launch_qv keeps a.tpb = 1 unless every warp's chunk count is a multiple of MU, so a tile ends where the ring's
 * round does. A tile's sums go through shared memory, two buffers by tile parity: one barrier per tile. */
template <typename T, int FMT, int NT, int B, int V, int W, bool NORM>
__global__ void __launch_bounds__(W * 32, (NT == 1 || qv_xg(V)) ? 2 : 1) qmv_kernel(const __grid_constant__ qv_args a)
{
    /* V: 0 the regular variant; 1 the one-row variant (ONE, below); 2 EXL2 4-bit at 9-16 rows with XFOLD; 3 4-bit
     * without the activation slice (XG, below; in rounds: GPTQ, and EXL2 with QV_XR_EXL2); 4 XG for GPTQ whose groups
     * are not 128 rows and EXL2's not 32, and for 8-bit weights at 9-16 rows (the loop of the other variants); 5 the
     * one-row variant of 4-bit weights (GPTQ: groups of 128 rows) in rounds (RD); 6 the same at 2-8 rows */
    static_assert(V != 2 || (NT == 2 && FMT == GPU_Q_EXL2 && B == 4), "V = 2: EXL2 4-bit at 9-16 rows only");
    static_assert(!qv_xg(V) || ((B == 4 || (B == 8 && V == 4 && NT == 2)) && W == QV_WARPS && NT <= 2),
                  "V = 3, 4: 4-bit in QV_WARPS warps, 1-16 rows; V = 4 also 8-bit at 9-16 rows");
    static_assert(!qv_rounds(V) || (B == 4 && NT == 1), "V = 5, 6: 4-bit at 1-8 rows");
    static_assert(V != 4 || FMT == GPU_Q_GPTQ || qv_xg_rounds<FMT, 3>(),
                  "V = 4: XG without rounds, where V = 3 has them (without QV_XR_EXL2, EXL2's XG is V = 3)");
    constexpr bool ONE = qv_one(V);
    /* NORM: the split RMSNorm's epilogues (a.resid, a.ss_in; quant_ops.h gpu_qx), the one-row variants and the
     * rounds at 2-4 rows (V = 6, QV_NORM_ROWS). An instantiation of its own: their code in every launch cost 1-3% at
     * every row count (registers; docs/PERFORMANCE.md, twenty-third run). Row r's epilogue and scale are warp r's
     * (end_tile: thread idx takes entry idx, row idx / 32) */
    static_assert(!NORM || ONE || V == 6, "NORM: the one-row variants and V = 6 only");
    /* XG: no activation slice in shared memory. Each activation byte is read by one warp of a block (the warps split
     * a tile's chunks), so the slice bought no reuse beyond a.tpb tiles, and at 9-16 rows it held the SM to one block
     * and made every block copy it before its first product. Here each lane loads its B fragments (x_frags' 16 bytes
     * per token) from global memory (L2) into the ring with the chunk's weights, RU = 4 chunks deep so that two
     * blocks fit an SM (docs/PERFORMANCE.md twentieth run: tools/device/qmv16-probe.cu). a.xstride is 0. At 1-8
     * rows (NT = 1) the same, for 4-bit weights without XFOLD (whose zero-point sums read the slice). 8-bit weights
     * at 9-16 rows (V = 4) too, 8 bytes per token tile and chunk (a chunk there is 16 rows); bf16 8-bit then takes
     * dq2's form, not CODES8's (which needs the slice's scaled activations). */
    constexpr bool XG = qv_xg(V);
    constexpr int RU = qv_ring<NT, V>(); /* the ring's depth, chunks per warp (XG at 9-16 rows: 4, see above) */
    constexpr bool XR = qv_xg_rounds<FMT, V>(); /* XG's loop in rounds (below) */
    /* red: the warps' sums of a tile, two buffers by tile parity; static up to QV_WARPS warps, else (64 KB at 16,
     * over the static limit) the first qv_red_bytes of the dynamic shared memory */
    constexpr bool RED_DYN = W > QV_WARPS;
    __shared__ float red_s[RED_DYN ? 1 : 2 * W * NT * 8 * 32];
    extern __shared__ uint4 q_smem[];
    float(*red)[W][NT * 8][32] =
        reinterpret_cast<float(*)[W][NT * 8][32]>(RED_DYN ? reinterpret_cast<float *>(q_smem) : red_s);
    /* [n][xstride]: this block's activation rows, packed order */
    T *xs = reinterpret_cast<T *>(q_smem + qv_red_bytes<NT, W>() / 16);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ float gsave[NT * 8 * 32]; /* a.swiglu: a gate tile's outputs (+ bias), until its up tile's */
    const int bx = (int)blockIdx.x;
    const int pi = (a.n_parts > 2 && bx >= a.p[2].blk0) ? 2 : (a.n_parts > 1 && bx >= a.p[1].blk0) ? 1 : 0;
    const qv_part &P = a.p[pi]; /* read from the parameter space where used, not copied to registers */
    const T *x = static_cast<const T *>(P.x);
    const int n = a.n, k = a.k, S = (int)gridDim.y;
    static_assert(B == 4 || B == 8, "regular chunk tables only: qmv_general_kernel takes the others");
    /* ONE: one row (n == 1, launch_qv checks): the group flushes touch only the even fragment entries (flush_each),
     * and GPTQ folds its zero points out (mma_fold; run_qv_nt launches GPTQ this way only where groups span 4
     * chunks or more). EXL2's 32-row groups flush every chunk, where mma_fold's ones-MMA and per-column zs lose
     * (tenth run), so EXL2 4-bit folds its own way (XFOLD, below). */
    constexpr bool FOLD = (ONE || V == 6) && FMT == GPU_Q_GPTQ;
    /* RD (V = 5 at one row, 6 at 2-8): the loop in rounds of the ring (8 chunks, two halves of 4), launch_qv planning
     * every warp's chunks as whole halves (cps, cpw multiples of 4), and whole rounds where a block takes several
     * tiles. The loop's tests are per round and half, not per chunk (group starts at fixed slots, the ring's loads at
     * fixed offsets of one pointer); the B fragments need no test either: token g's column reads row min(g, n - 1),
     * and tokens past n fill entries no one reads. GPTQ folds (FOLD, groups of 4 chunks: a half each): the
     * activations' sum per group and token, which mma_fold's fifth MMA took per chunk, is summed once per warp from
     * the slice into gx (shared). EXL2 (XFOLD): as its loop below, the round's scales decoded first */
    constexpr bool RD = qv_rounds(V);
    constexpr int GXN = ONE ? 1 : 8; /* RD, GPTQ: gx's entries per group (tokens) */
    /* XFOLD: EXL2 4-bit at 1-8 rows, and at 9-16 rows in V = 2, every chunk its own group (launch_qv checks
     * group_shift 0). The codes go to the tensor core as mma_fold gives them (no ones-MMA); the zero point 2^(B-1)
     * is one constant, so its correction is one number per chunk and token, -z sum(x) / SCALE, summed once per block
     * into xz (shared; [chunk], or [chunk][8 NT tokens] without ONE) and added to the chunk's products before its
     * scale; the scales of
     * a ring round's 8 chunks are decoded once per warp (one code word per lane: 8 columns of one chunk) into wsc
     * (shared) and read back as one float4 per chunk. */
    constexpr bool XFOLD = FMT == GPU_Q_EXL2 && B == 4 && ((NT == 1 && !XG) || V == 2);
    /* XGS: EXL2 in XG, its scales decoded once per ring round as XFOLD's (xfold_scales, unscaled: x / 256 only) and
     * read back as one float4 per group, instead of each group's decode with 4 shuffles (exl2_scales4) */
    constexpr bool XGS = qv_xg_scales<FMT, V>();
    constexpr int XZ = ONE ? 1 : 8 * NT; /* xz entries per chunk */
    /* bf16 8-bit without the fold: the codes as subnormals minus z (mma_codes8); XM: the slice's scaling (xs_code) */
    constexpr bool CODES8 = !FOLD && B == 8 && std::is_same<T, __nv_bfloat16>::value && !qv_xg(V);
    constexpr int XM = (FOLD || XFOLD) ? B : CODES8 ? 8 : 0;
    /* the block's tiles t0..t1; with a.swiglu (SW = 1) these count gate and up tiles in turn: tile ct is column
     * tile ct >> SW of part ct & SW (parts 0 and 1 have the same shape and tables) */
    const int SW = a.swiglu ? 1 : 0;
    const int bx0 = bx - P.blk0, lo = a.bal_hi && bx0 >= a.bal_hi; /* lo: a balanced split's shorter blocks */
    const int t0 = lo ? a.bal_hi * a.tpb + (bx0 - a.bal_hi) * (a.tpb - 2) : bx0 * a.tpb;
    const int t1 = min(P.tiles << SW, t0 + a.tpb - (lo ? 2 : 0)), C4 = 4 * g;
    const int c0 = min(P.n_chunks, (int)blockIdx.y * a.cps), c1 = min(P.n_chunks, c0 + a.cps);
    const int wc0 = min(c1, c0 + warp * a.cpw), wc1 = min(c1, wc0 + a.cpw);
    const int nw = wc1 - wc0, Q = nw * (t1 - t0); /* this warp's chunks per tile, in all */

    GDC_LAUNCH_DEPENDENTS();
    /* this lane's first weight word in tile t0 (tile-major, mma_word): chunk c's is 32 c on, a tile's 32 n_chunks;
     * the ring's load position is chunk lc of the tile whose words wld points into */
    const int zw = P.zw;
    uint4 wv[RU];
    /* XG: the B fragments of the ring's chunks; a chunk holds CR rows (32 4-bit, 16 8-bit), a lane's fragment TR of
     * them per token (x_frags' R) */
    constexpr int CR = 128 / B, TR = CR / 4;
    using XV = typename std::conditional<B == 8, uint2, uint4>::type;
    XV xr[XG ? RU : 1][NT];
    int lc = wc0, lt = t0;
    auto part_of = [&](int tile) -> const qv_part & { return (tile & SW) ? a.p[1] : P; };
    auto words = [&](int tile) {
        return part_of(tile).qw + mma_word(4 * P.n_chunks, t, 32 * (tile >> SW) + C4) + 32 * wc0;
    };
    const uint4 *wld = words(t0);
    /* XG: slot u's B fragments, chunk c's rows 32 c + 8 t.. for tokens g, g + 8. The previous kernel's output, read
     * after gdc_wait (which makes its writes visible to this grid, L1 included). Cached in L1 (__ldca): a warp reads
     * the same chunks' fragments again for each of the block's a.tpb tiles, and the SM's other block often reads them
     * too; H200: 8B batch 12 / 16 +1.7 / +1.6% (GPTQ FP16) against __ldcg, 70B +0.7% (docs/PERFORMANCE.md
     * twenty-fourth run).
     * XR (GPTQ, in rounds): tokens past n read row n - 1 instead of zeros. Their products land in entries end_tile
     * never reads (a token's MMA column depends on its own B column only), so a load needs no test and no zeroing; its
     * offset in 32 bits (n k < 2^31) from xoff, set here once. EXL2 kept zeros past n and 64-bit offsets: every form
     * of this tried for it moved ptxas to spills (8-88 bytes), and 32-bit offsets had cost its bf16 kernels 3-5%
     * (docs/PERFORMANCE.md twenty-fourth and twenty-fifth runs). With XGS's registers (its scales from shared memory)
     * ptxas fits this form without spills (XO: QV_XGS_XOFF) */
    constexpr bool XO = XR || (XGS && QV_XGS_XOFF); /* the B fragments from rows min(g, n - 1), 32-bit offsets */
    int xoff[XO ? NT : 1];
#pragma unroll
    for (int nt = 0; nt < (XO ? NT : 1); nt++)
        xoff[nt] = min(g + 8 * nt, n - 1) * k + TR * t;
    auto xload = [&](int u, int c) {
        if constexpr (XO) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                xr[u][nt] = __ldca(reinterpret_cast<const XV *>(x + (xoff[nt] + CR * c)));
        } else if constexpr (XG) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                xr[u][nt] = g + 8 * nt < n ? __ldca(reinterpret_cast<const XV *>(x + (size_t)(g + 8 * nt) * k + CR * c +
                                                                              TR * t))
                                           : XV{};
        }
    };
    auto issue = [&](int u, bool with_x) { /* slot u takes the ring's next chunk (with_x: its B fragments too) */
        if (with_x)
            xload(u, lc);
        wv[u] = __ldcs(wld);
        wld += 32;
        if (++lc == wc1) { /* on to the next tile */
            lc = wc0;
            if (SW)
                wld = words(++lt); /* the other part's array */
            else
                wld += (size_t)32 * (P.n_chunks - nw);
        }
    };
    const int gsh = P.gshift, gmask = (1 << gsh) - 1;
    /* regular tables: the block's groups g0.. (ng of them) of a tile have their scales (GPTQ, [ng][32] halves) and
     * zero / scale-code words ([ng][zw]) copied to shared memory after the activation slice (EXL2: the scale
     * maxima [ng] first, once), two buffers by tile parity; cp.async, before the wait for the first two tiles (no
     * kernel writes them), the tile after next once a tile's barrier has passed */
    const int g0 = c0 >> gsh, ng = c1 > c0 ? ((c1 - 1) >> gsh) - g0 + 1 : 0;
    /* EXL2 scale maxima: [ng] per part read (a.swiglu: gate's, then up's, at pm_up) */
    const int pm_up = (ng + 7) & ~7;
    /* XFOLD: xz [cps][XZ] (padded to 4), then wsc [warp][chunk of the round][column]; in the dynamic shared memory,
     * not static: the planner counts resident blocks at the dynamic limit beside the static arrays (cluster_slots),
     * and 8 KiB more static memory made that one block per SM */
    float *xz = reinterpret_cast<float *>(xs + (size_t)n * a.xstride);
    float *wsc = xz + (XFOLD ? (a.cps * XZ + 3) & ~3 : RD ? (a.cps / 4 * GXN + 3) & ~3 : 0);
    float *gx = xz; /* RD, GPTQ: [cps / 4][GXN] */
    __half *pmax = reinterpret_cast<__half *>(wsc + ((XFOLD || XGS) ? W * MU * 32 : 0));
    char *pbuf = reinterpret_cast<char *>(pmax + (FMT == GPU_Q_GPTQ ? 0 : pm_up << SW));
    const int sc_bytes = FMT == GPU_Q_GPTQ ? ng * 64 : 0, pbytes = sc_bytes + ng * zw * 4;
    auto fetch_params = [&](int tile) {
        char *buf = pbuf + ((tile - t0) & 1) * pbytes;
        const qv_part &Pt = part_of(tile);
        const size_t tg = (size_t)(tile >> SW) * P.n_groups + g0;
        const uint32_t *zsrc = (FMT == GPU_Q_GPTQ ? Pt.qz : Pt.qs) + tg * zw;
        for (int i = threadIdx.x; i < ng * zw / 4; i += blockDim.x)
            cp_async16(buf + sc_bytes + 16 * i, zsrc + 4 * i);
        if (FMT == GPU_Q_GPTQ)
            for (int i = threadIdx.x; i < ng * 4; i += blockDim.x)
                cp_async16(buf + 16 * i, Pt.sc + tg * 32 + 8 * i);
    };
    /* WS (QV_WSLICE): the slice and tile t0's group parameters per warp, its own chunks' and groups' (GPTQ's rounds
     * at 2-8 rows with FOLD: a warp's chunks are whole groups of 4, or lie in one group, copied whole by each warp in
     * it) */
    constexpr bool WS = QV_WSLICE && V == 6 && FOLD;
    auto fetch_params_warp = [&](int tile) {
        char *buf = pbuf + ((tile - t0) & 1) * pbytes;
        const qv_part &Pt = part_of(tile);
        const size_t tg = (size_t)(tile >> SW) * P.n_groups + g0;
        const int lw0 = (wc0 >> gsh) - g0, lw1 = nw > 0 ? ((wc1 - 1) >> gsh) - g0 + 1 : lw0;
        for (int i = lw0 * zw / 4 + lane; i < lw1 * zw / 4; i += 32) /* zw = 4 (4-bit GPTQ): a uint4 a group */
            cp_async16(buf + sc_bytes + 16 * i, Pt.qz + tg * zw + 4 * i);
        for (int i = lw0 * 4 + lane; i < lw1 * 4; i += 32)
            cp_async16(buf + 16 * i, Pt.sc + tg * 32 + 8 * i);
    };
    auto slice = [&]() {
        if constexpr (WS)
            slice_in_warp<T, XM>(xs, a.xstride, x, k, n, P, c0, wc0, wc1, lane);
        else
            slice_in<T, XM>(xs, a.xstride, x, k, n, P, c0, c1);
    };
    if (FMT != GPU_Q_GPTQ)
        for (int i = threadIdx.x; i < (ng << SW); i += blockDim.x) {
            const int up = i >= ng;
            pmax[up * pm_up + i - up * ng] = part_of(up).qsm[g0 + i - up * ng];
        }
    if constexpr (WS)
        fetch_params_warp(t0);
    else
        fetch_params(t0);
    if (t0 + 1 < t1)
        fetch_params(t0 + 1); /* read after end_tile(t0)'s barrier */
    /* QV_PRE_RU (compile time; benches): the ring's first PRE slots requested before the wait, the rest once the
     * slice is in (below); by default all of them */
    constexpr int PRE = QV_PRE_RU < RU ? QV_PRE_RU : RU;
#pragma unroll
    for (int u = 0; u < PRE; u++)
        if (u < Q)
            issue(u, false); /* weights only: no kernel writes them */
    /* NORM, a.resid: thread idx < 32 n's operands of put_resid for the block's first tile (row idx / 32 = warp,
     * column pre_col), requested early: the bias, norm weight and xout position before gdc_wait, the residual right
     * after it, so the epilogue at the launch's end does not wait an L2 latency for them */
    const int nrow = ONE ? 0 : warp; /* NORM: this warp's row (ONE: row 0, warp 0 only, as the compiler sees it) */
    const int pre_col = 32 * t0 + (ONE ? (int)threadIdx.x : lane); /* ONE: pre_on's threads are warp 0's */
    const bool pre_on = QV_NORM_PRE && NORM && a.resid && (ONE ? threadIdx.x < 32 : warp < n) && pre_col < P.m;
    float pre_b = 0.0f, pre_res = 0.0f, pre_nw = 0.0f;
    int pre_pos = 0;
    /* NORM, a.ss_in: row r's scale from its producer's sums (the previous kernel's output, like the activations), in
     * the registers of warp r, which writes row r's outputs in end_tile: its lanes request their first 8 sums before
     * the slice's copy and add them after it (one L2 latency less on the path to the first product). Not in shared
     * memory: 32 bytes more static memory beside QV_SMEM_1 left room for one block per SM, not two (the planner's
     * cluster_slots; batch 1 lost 12%) */
    float rs0 = 1.0f;
    if constexpr (XG) {
        if (nw > 0) /* QV_XPF: the first B fragments' rows (no-op otherwise) */
            l2_touch(x + (size_t)min(g, n - 1) * k + CR * wc0 + TR * t);
        gdc_wait(); /* the activations are the previous kernel's output */
#pragma unroll
        for (int u = 0; u < RU; u++)
            if (u < Q)
                xload(u, wc0 + u); /* Q > u: u < nw (a.tpb > 1 only where nw is a multiple of MU) */
        cp_async_wait_all(); /* this thread's part of the group parameters */
        __syncthreads();
    } else if constexpr (NORM) {
        float ssv[8];
        const bool sw = a.ss_in && (ONE ? warp == 0 : warp < n);
        const float *ssr = a.ss_in + (size_t)nrow * a.ss_tiles; /* row nrow's sums (sw) */
        if (pre_on) { /* which no kernel writes */
            if (P.bias)
                pre_b = dt_traits<T>::to_f(__ldg(static_cast<const T *>(P.bias) + pre_col));
            pre_nw = dt_traits<T>::to_f(__ldg(static_cast<const T *>(a.nw) + pre_col));
            if (a.xout)
                pre_pos = __ldg(a.opos + pre_col);
        }
        if (pre_on) /* QV_XPF (no-op otherwise) */
            l2_touch(static_cast<const T *>(a.resid) + (size_t)nrow * P.m + pre_col);
        if (sw) {
            if (lane < a.ss_tiles) /* QV_XPF: the first sums this lane reads below */
                l2_touch(ssr + lane);
            gdc_wait();
#pragma unroll
            for (int i = 0; i < 8; i++)
                ssv[i] = lane + 32 * i < a.ss_tiles ? __ldcg(ssr + lane + 32 * i) : 0.0f;
        }
        slice();
        if (pre_on) /* the previous kernels' output: after slice_in's gdc_wait */
            pre_res = dt_traits<T>::to_f(__ldcg(static_cast<const T *>(a.resid) + (size_t)nrow * P.m + pre_col));
        if (sw) {
            float v = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++)
                v += ssv[i];
            for (int e = lane + 256; e < a.ss_tiles; e += 32) /* producers of more than 256 tiles */
                v += __ldcg(ssr + e);
            rs0 = rsqrtf(warp_sum(v) * a.ss_inv_d + a.ss_eps);
        }
    } else {
        slice();
    }
    if constexpr (XFOLD) { /* xz[i][r] = -z sum(x[r]) / SCALE over chunk c0 + i's 32 rows (as the MMA sees them);
                            * 0 for tokens r >= n */
        constexpr float ZK = xs_code<T>::XSUM, ZS = -(float)(1 << (B - 1)) / xs_code<T>::SCALE;
        if constexpr (ONE) { /* one sum per chunk: a thread each */
            for (int i = threadIdx.x; i < c1 - c0; i += blockDim.x) {
                const uint4 *v = reinterpret_cast<const uint4 *>(xs + 32 * i);
                float lo = 0.0f, hi = 0.0f; /* entries of pair parity (i & 2) 0 and 1 (the latter stored over 16) */
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint4 w = v[j];
                    lo += pair_sum<T>(w.x) + pair_sum<T>(w.z);
                    hi += pair_sum<T>(w.y) + pair_sum<T>(w.w);
                }
                xz[i] = fmaf(16.0f, hi, lo) * ZK * ZS;
            }
        } else { /* 8 tokens per chunk: a warp's MMA of ones (16 on the rows stored over 16) per chunk, as mma_fold's */
            const uint32_t ones[4] = {fold_ones<T>::ONE, fold_ones<T>::ONE, fold_ones<T>::SIXTEEN,
                                      fold_ones<T>::SIXTEEN};
#pragma unroll 4 /* independent chunks: their loads and MMAs overlap */
            for (int i = warp; i < c1 - c0; i += W) {
                uint4 xv[NT];
                x_frags<T, NT>(xv, xs, a.xstride, 32 * i, n, g, t);
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    float sx[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* rows all alike: tokens 8 nt + 2t, + 1 in sx[0], sx[1] */
                    qmma_t<T>::mma(sx, ones, xv[nt].x, xv[nt].y);
                    qmma_t<T>::mma(sx, ones, xv[nt].z, xv[nt].w);
                    if (g == 0)
                        *reinterpret_cast<float2 *>(xz + XZ * i + 8 * nt + 2 * t) =
                            make_float2(sx[0] * ZK * ZS, sx[1] * ZK * ZS);
                }
            }
        }
        __syncthreads();
    }
    if constexpr (RD && FOLD && ONE) {
        /* gx[i]: the slice's row 0 summed over the block's group i (4 chunks, 16 uint4; the pairs of odd parity, stored
         * over 16, 16 times), in the units of mma_fold's fifth MMA; each warp its own groups, 16 lanes per group */
        const int q0 = (wc0 - c0) * 4, nq = nw * 4; /* the warp's uint4 of the slice */
        for (int i0 = 0; i0 < nq; i0 += 32) {
            const int i = i0 + lane;
            float v = 0.0f;
            if (i < nq) {
                const uint4 w = reinterpret_cast<const uint4 *>(xs)[q0 + i];
                v = fmaf(16.0f, pair_sum<T>(w.y) + pair_sum<T>(w.w), pair_sum<T>(w.x) + pair_sum<T>(w.z));
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1)
                v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
            if ((lane & 15) == 0 && i < nq)
                gx[(q0 + i) >> 4] = v;
        }
        __syncwarp();
    } else if constexpr (RD && FOLD) {
        /* gx[i][r]: token r's sum over the block's group i, as mma_fold's fifth MMA takes it (8 MMAs of ones per
         * group), written by the lanes g = 0 in the accumulators' layout (tokens 2t, 2t + 1) */
        const uint32_t ones[4] = {fold_ones<T>::ONE, fold_ones<T>::ONE, fold_ones<T>::SIXTEEN,
                                  fold_ones<T>::SIXTEEN};
        const T *xw = xs + (size_t)min(g, n - 1) * a.xstride + 8 * t + 32 * (wc0 - c0);
        /* 4 chains of 2 MMAs per group (a chunk each), added after: one chain of 8 stood on the way to the main loop
         * (H200, docs/PERFORMANCE.md forty-first run: 8B gptq4-g128 FP16 batch 2 and 4 +0.5-2.2%) */
#pragma unroll 2
        for (int q = 0; q < nw / 4; q++) {
            float sx[4][4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint4 xv = *reinterpret_cast<const uint4 *>(xw + 32 * (4 * q + j));
                sx[j][0] = sx[j][1] = sx[j][2] = sx[j][3] = 0.0f;
                qmma_t<T>::mma(sx[j], ones, xv.x, xv.y);
                qmma_t<T>::mma(sx[j], ones, xv.z, xv.w);
            }
            if (g == 0)
                *reinterpret_cast<float2 *>(gx + (((wc0 - c0) >> 2) + q) * 8 + 2 * t) =
                    make_float2((sx[0][0] + sx[1][0]) + (sx[2][0] + sx[3][0]),
                                (sx[0][1] + sx[1][1]) + (sx[2][1] + sx[3][1]));
        }
        __syncwarp();
    }
    kt_mark(5); /* thread 0 past the group sums (CHASKI_KTRACE builds): the summary's sums (from mark 4) and entry (to
                 * mark 2, the main loop), which split the 0.8-1.3 us after the slice's barrier (PERFORMANCE.md,
                 * fortieth run) */
#pragma unroll
    for (int u = PRE; u < RU; u++) /* QV_PRE_RU: the ring's other slots, after the slice's copies */
        if (u < Q)
            issue(u, false);

    /* s: the columns' scales (FOLD, CODES8: times xs_code's SCALE), zs: FOLD's z s (bf16: over 2^64), xsum: FOLD's
     * activation sums */
    float acc[2][NT][4], cg[2][NT][4], xsum[NT][4] = {}, s[4] = {}, zs[4] = {};
    uint32_t z2[4] = {0u, 0u, 0u, 0u}, z2h[4] = {0u, 0u, 0u, 0u};
    /* EXL2 at 1-8 rows without XFOLD (fp16 8-bit; 4-bit in XG), and in XG at 9-16 rows (with the slice there it was
     * 2% slower; in XG 3% faster, H200: 8B BF16 batch 16 27.9 -> 28.6% of the roofline, PERFORMANCE.md twenty-second
     * run): every group's zero point is 2^(B - 1), so z2 and z2h are set once here and a group start decodes only
     * the scales (exl2_scales4) */
    constexpr bool EXL2_SHFL = FMT == GPU_Q_EXL2 && !FOLD && !XFOLD && !CODES8 && (NT == 1 || XG);
    if constexpr (EXL2_SHFL)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            z2[i] = zero2<T>(B, 1 << (B - 1));
            z2h[i] = zero2_hi(1 << (B - 1));
        }
    frags_zero<NT>(acc);
    frags_zero<NT>(cg);
    auto flush = [&]() {
        if constexpr (XFOLD)
            return; /* every chunk flushed at once */
        else if constexpr (FOLD)
            flush_fold<NT, ONE>(acc, cg, xsum, s, zs);
        else
            flush_group<NT, ONE>(acc, cg, s);
    };
    T *out = static_cast<T *>(P.out);
    const T *bias = static_cast<const T *>(P.bias);
    /* NORM, a.resid: entry idx (row r, column col) of tile ct through put_resid, with the operands loaded early
     * (pre_on: thread idx, n rows of 32 entries in the block's first n warps) for the first tile */
    auto put_norm = [&](int idx, int r, int col, int ct, float v) {
        if (QV_NORM_PRE && ct == t0 && idx < (ONE ? 32 : 32 * n))
            put_resid_v(a, out, bias, P.m, r, col, ct, v, pre_b, pre_res, pre_nw, pre_pos);
        else
            put_resid(a, out, bias, P.m, r, col, ct, v);
    };
    /* a.swiglu: entry idx (row idx / 32) of tile ct's sums v over the warps and the split's blocks; the thread that
     * takes entry idx of a gate tile keeps it (+ bias, times the norm's rs0) in gsave for the same entry of the up
     * tile, which writes silu(g) * u */
    auto sw_put = [&](int idx, int ct, float v) {
        const bool up = ct & 1;
        const int r = idx >> 5, col = 32 * (ct >> SW) + (idx & 31);
        if (col >= P.m)
            return;
        const T *bs = static_cast<const T *>(up ? a.p[1].bias : P.bias);
        v = v * rs0 + (bs ? dt_traits<T>::to_f(bs[col]) : 0.0f);
        if (!up) {
            gsave[idx] = v;
            return;
        }
        /* gate and up rounded to T first, then as swiglu.cu: silu(g) * u in float, rounded once */
        const float gf = dt_traits<T>::to_f(dt_traits<T>::from_f(gsave[idx]));
        const float uf = dt_traits<T>::to_f(dt_traits<T>::from_f(v));
        const T h = dt_traits<T>::from_f(gf / (1.0f + __expf(-gf)) * uf);
        out[(size_t)r * P.m + col] = h;
        if (a.xout) /* gpu_qlinear_swiglu_x */
            static_cast<T *>(a.xout)[(size_t)r * P.m + __ldg(a.opos + col)] = h;
    };
    /* tile ct done by every warp: its sums over the warps (and the split's blocks) to the output */
    auto end_tile = [&](int ct) {
        const int pb = (ct - t0) & 1, cb = 32 * (ct >> SW);
        kt_mark(0); /* thread 0's chunks of its first tile done (CHASKI_KTRACE builds) */
        frags_to_smem<NT>(red[pb][warp], acc, g, t);
        cp_async_wait_all(); /* this thread's part of the next tile's parameters */
        /* barrier.sync without .aligned: end_tile is reached from two places (warps without chunks take the second),
         * and the aligned form (__syncthreads) requires every thread to execute the same instruction */
        asm volatile("barrier.sync 0;" ::: "memory");
        kt_mark(1); /* every warp's */
        if (ct + 2 < t1)
            fetch_params(ct + 2); /* into the buffer tile ct has finished with */
        for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) { /* thread idx owns entry idx */
            const int r = idx >> 5;
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++)
                v += red[pb][w][r][idx & 31];
            red[pb][0][r][idx & 31] = v;
        }
        if (S == 1 && SW) {
            for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x)
                sw_put(idx, ct, red[pb][0][idx >> 5][idx & 31]);
            return;
        }
        if (S == 1) {
            for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) { /* a warp per row: n * 32 entries */
                const int r = idx >> 5, col = cb + (idx & 31);
                if (NORM && a.resid)
                    put_norm(idx, r, col, ct, red[pb][0][r][idx & 31]);
                else if (col < P.m)
                    put_out(out, bias, P.m, r, col, red[pb][0][r][idx & 31] * rs0);
            }
            return;
        }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 /* clusters: sm_90 on; launch_qv keeps S = 1 below that */
        coop::cluster_group cl = coop::this_cluster();
        cl.sync(); /* every block of the split has its sums of tile ct in red[pb][0] */
        if (cl.block_rank() == 0) {
            for (int idx = threadIdx.x; idx < n * 32; idx += blockDim.x) {
                const int r = idx >> 5, col = cb + (idx & 31);
                float v = 0.0f;
                for (int sp = 0; sp < S; sp++)
                    v += cl.map_shared_rank(&red[pb][0][0][0], sp)[idx];
                if (SW)
                    sw_put(idx, ct, v);
                else if (NORM && a.resid)
                    put_norm(idx, r, col, ct, v);
                else if (col < P.m)
                    put_out(out, bias, P.m, r, col, v * rs0);
            }
        }
        /* the other blocks write red[pb] again two tiles on, after the next tile's cl.sync, which rank 0 reaches
         * only once it has read this one */
#endif
    };
    kt_mark(2); /* thread 0 at its loop: the slice, the group sums and their barriers past (CHASKI_KTRACE builds) */
    int ct = t0, cc = wc0; /* the ring's compute position: chunk cc of tile ct */
    /* XFOLD, a ring round's scales (chunks cc.. of tile ct, before chunk ce): lane 4u + q decodes columns 8q..8q+7 of
     * chunk cc + u into wsc (XGS: of chunk cc + u's group, without XFOLD's SCALE) */
    auto xfold_scales = [&](int ct, int cc, int ce) {
        const int u = lane >> 2, q = lane & 3;
        __syncwarp(); /* the last round's reads are done */
        if (cc + u < ce) {
            const int lg = (XFOLD ? cc + u : (cc + u) >> gsh) - g0; /* XFOLD: a group per chunk (launch_qv) */
            const uint32_t w = reinterpret_cast<const uint32_t *>(pbuf + ((ct - t0) & 1) * pbytes)[lg * 4 + q];
            const float sm =
                __half2float(pmax[(ct & SW) * pm_up + lg]) * ((XFOLD ? xs_code<T>::SCALE : 1.0f) / 256.0f);
            float v[8];
#pragma unroll
            for (int i = 0; i < 8; i++) { /* (code + 1)^2 smax / 256, exact (exl2_scales4), times SCALE */
                const float c1 = exl2_code1((w >> (4 * i)) & 15u);
                v[i] = c1 * c1 * sm;
            }
            float4 *d = reinterpret_cast<float4 *>(wsc + (warp * MU + u) * 32 + 8 * q);
            d[0] = make_float4(v[0], v[1], v[2], v[3]);
            d[1] = make_float4(v[4], v[5], v[6], v[7]);
        }
        __syncwarp();
    };
    if constexpr (XR) {
        /* XG's rounds: launch_qv plans every warp's chunks as whole rounds of RU (cps, cpw and the weights' chunk
         * counts multiples of RU) and takes groups of 4 chunks only for GPTQ (128 rows), of one for EXL2 (32 rows),
         * so a group starts and ends at fixed slots of a round. No test per chunk; the next round's loads at fixed
         * offsets; a group's products start from zero and go to the accumulators as it ends. EXL2 (XGS): the round's
         * scales decoded into wsc first, each chunk's products started from zero in the MMA (mma_chunk4 FRESH)
         * instead of zeroed by the flush */
        constexpr int GS = FMT == GPU_Q_GPTQ ? 4 : 1, LG = FMT == GPU_Q_GPTQ ? 2 : 0;
        static_assert(RU % GS == 0, "a round holds whole groups");
        static_assert(!FOLD && !CODES8 && (FMT == GPU_Q_GPTQ || XGS),
                      "rounds: GPTQ's group parameters (group_params) or EXL2's scales from wsc (XGS)");
        /* a group starts: group lg (of the block's) of tile ct, its zero points and scales from shared memory */
        auto group_start = [&](int lg, int ct) {
            const char *buf = pbuf + ((ct - t0) & 1) * pbytes;
            const uint2 sq = *reinterpret_cast<const uint2 *>(buf + 2 * (lg * 32 + C4));
            const uint32_t zq = reinterpret_cast<const uint32_t *>(buf + sc_bytes)[lg * zw + C4 * zw / 32];
            group_params<T, FMT>(B, zq, sq, C4, a.zadd, z2, z2h, s);
        };
        /* XP (9-16 rows): the B fragments' rows at the load position lc, one pointer per token tile, so a round's loads
         * sit at fixed offsets from it (immediates) and it advances once per round. At 1-8 rows the bf16 kernel
         * spilled that way (ptxas: 4 / 52 bytes), so those keep xload's 32-bit offsets */
        constexpr bool XP = NT == 2;
        const T *xq[NT];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
            xq[nt] = x + (xoff[nt] + 32 * lc);
        for (int qb = 0; qb < Q; qb += RU) {
            const bool more = qb + RU < Q; /* the slots take the next round's chunks */
            if constexpr (XGS)
                xfold_scales(ct, cc, cc + RU); /* a round lies in one tile (launch_qv) */
#pragma unroll
            for (int u = 0; u < RU; u++) {
                if constexpr (XGS) { /* u's group: the scales decoded above */
                    const float4 sv = *reinterpret_cast<const float4 *>(wsc + (warp * MU + u) * 32 + C4);
                    s[0] = sv.x;
                    s[1] = sv.y;
                    s[2] = sv.z;
                    s[3] = sv.w;
                    mma_chunk4<T, NT, true>(cg, wv[u], xr[u], z2, z2h);
                } else {
                    if (u % GS == 0)
                        group_start(((cc + u) >> LG) - g0, ct);
                    mma_chunk4<T, NT>(cg, wv[u], xr[u], z2, z2h);
                }
                if (more) { /* slot u takes chunk lc + u: RU chunks stay in flight */
                    if constexpr (XP)
#pragma unroll
                        for (int nt = 0; nt < NT; nt++)
                            xr[u][nt] = __ldca(reinterpret_cast<const uint4 *>(xq[nt] + 32 * u));
                    else
                        xload(u, lc + u);
                    wv[u] = __ldcs(wld + 32 * u);
                }
                if (u % GS == GS - 1) /* XGS: cg not reset, the next chunk's first MMAs overwrite it */
                    flush_each<NT>(acc, cg, s, [](int, int, int, float av) { return av; }, !XGS);
            }
            if (more) { /* the load position a round on (the round ends where the tile's chunks do, or before) */
                wld += 32 * RU;
                lc += RU;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    xq[nt] += XP ? 32 * RU : 0;
                if (lc == wc1) {
                    lc = wc0;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
                        xq[nt] -= XP ? 32 * nw : 0;
                    if (SW)
                        wld = words(++lt);
                    else
                        wld += (size_t)32 * (P.n_chunks - nw);
                }
            }
            cc += RU;
            if (cc == wc1) {
                end_tile(ct);
                frags_zero<NT>(acc);
                cc = wc0;
                ct++;
            }
        }
    } else if constexpr (RD) {
        constexpr int GS = 4;
        static_assert(RU == 2 * GS, "RD: a round is two groups");
        /* B fragments: token g's row (ONE: row 0 for every lane), at the compute position */
        const T *xr0 = xs + (ONE ? 0 : (size_t)min(g, n - 1) * a.xstride) + 8 * t + 32 * (wc0 - c0), *xq = xr0;
        for (int qb = 0; qb < Q; qb += RU) {
            /* the round's second group; the next round's first and second groups (loads) */
            const bool two = qb + GS < Q, more0 = qb + RU < Q, more1 = qb + RU + GS < Q;
            if constexpr (XFOLD) { /* EXL2: every chunk its own group; the round's scales first */
                xfold_scales(ct, cc, cc + (two ? RU : GS));
#pragma unroll
                for (int u = 0; u < RU; u++) {
                    if (u == GS && !two)
                        break;
                    const uint4 xv[1] = {*reinterpret_cast<const uint4 *>(xq + 32 * u)};
                    mma_fold4<T, 1, false>(cg, xsum, wv[u], xv);
                    if (u < GS ? more0 : more1)
                        wv[u] = __ldcs(wld + 32 * u);
                    const float4 sv = *reinterpret_cast<const float4 *>(wsc + (warp * MU + u) * 32 + C4);
                    const float sc[4] = {sv.x, sv.y, sv.z, sv.w};
                    /* the corrections of this lane's tokens 2t, 2t + 1 (ONE: token 0's) */
                    const float2 xc = ONE ? make_float2(xz[cc + u - c0], 0.0f)
                                          : *reinterpret_cast<const float2 *>(xz + (cc + u - c0) * XZ + 2 * t);
                    /* acc += s (sum q x - z sum x) 2^24, as the XFOLD loop below (ONE: the even entries) */
#pragma unroll
                    for (int j = 0; j < 2; j++)
#pragma unroll
                        for (int e = 0; e < 4; e += ONE ? 2 : 1) {
                            acc[j][0][e] = fmaf(sc[2 * j + (e >> 1)], cg[j][0][e] + ((e & 1) ? xc.y : xc.x),
                                                acc[j][0][e]);
                            cg[j][0][e] = 0.0f;
                        }
                }
            } else { /* GPTQ: a group per half */
                const char *buf = pbuf + ((ct - t0) & 1) * pbytes;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    if (h == 1 && !two)
                        break;
                    const int cq = cc + GS * h, lg = (cq >> 2) - g0; /* the group's first chunk; its index in buf */
                    const uint2 sq = *reinterpret_cast<const uint2 *>(buf + 2 * (lg * 32 + C4));
                    const uint32_t zq = reinterpret_cast<const uint32_t *>(buf + sc_bytes)[lg * zw + C4 * zw / 32];
                    int z[4];
                    chunk_params<FMT>(B, zq, sq, C4, a.zadd, z, s);
                    /* the group's sums of this lane's tokens 2t, 2t + 1 (ONE: token 0's) */
                    const float2 gs = ONE ? make_float2(gx[(cq - c0) >> 2], 0.0f)
                                          : *reinterpret_cast<const float2 *>(gx + ((cq - c0) >> 2) * 8 + 2 * t);
#pragma unroll
                    for (int j = 0; j < GS; j++) {
                        const int u = GS * h + j;
                        const uint4 xv[1] = {*reinterpret_cast<const uint4 *>(xq + 32 * u)};
                        mma_fold4<T, 1, false>(cg, xsum, wv[u], xv);
                        if (h ? more1 : more0)
                            wv[u] = __ldcs(wld + 32 * u);
                    }
                    /* acc += 2^24 s sum(q x) - z s sum(x) (fp16; bf16 as xs_code says), as flush_fold; z s exact (a
                     * 9-bit zero point times an fp16 scale) */
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        zs[i] = (float)z[i] * s[i] * xs_code<T>::XSUM;
                        s[i] *= xs_code<T>::SCALE;
                    }
                    flush_each<1, ONE>(acc, cg, s, [&](int col, int, int e, float av) {
                        return fmaf(-zs[col], (e & 1) ? gs.y : gs.x, av);
                    });
                }
            }
            if (more0) { /* the load position a round on */
                wld += 32 * RU;
                lc += RU;
                if (lc >= wc1) { /* only at a round's end where a block takes several tiles (nw a multiple of RU) */
                    lc = wc0;
                    if (SW)
                        wld = words(++lt);
                    else
                        wld += (size_t)32 * (P.n_chunks - nw);
                }
            }
            cc += two ? RU : GS;
            xq += 32 * RU;
            if (cc == wc1) {
                end_tile(ct);
                frags_zero<NT>(acc);
                cc = wc0;
                ct++;
                xq = xr0;
            }
        }
    } else {
        bool fresh = false; /* XGS: the chunk starts a group (mma_chunk4 FRESH) */
        for (int qb = 0; qb < Q; qb += RU) {
            if constexpr (XFOLD || XGS)
                xfold_scales(ct, cc, wc1);
#pragma unroll
            for (int u = 0; u < RU; u++) {
                if (qb + u >= Q)
                    break;
                const int c = cc;
                if constexpr (XFOLD) {
                    mma_fold<T, NT, B, false>(cg, xsum, wv[u], xs, a.xstride, (c - c0) * 32, n, g, t);
                    const float4 sv = *reinterpret_cast<const float4 *>(wsc + (warp * MU + u) * 32 + C4);
                    const float sc[4] = {sv.x, sv.y, sv.z, sv.w};
                    /* the corrections of this lane's tokens 2t, 2t + 1. ONE: token 0's for every lane; lanes
                     * t > 0 (tokens 2t, none at one row) add s xc to entries no reduction reads (end_tile takes
                     * tokens < n) */
                    float2 xc[NT];
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
                        if constexpr (ONE)
                            xc[nt].x = xc[nt].y = xz[c - c0];
                        else
                            xc[nt] = *reinterpret_cast<const float2 *>(xz + (c - c0) * XZ + 8 * nt + 2 * t);
                    /* acc += s 2^24 (sum q x 2^-24 - z sum x 2^-24) = s sum (q - z) x (ONE: the even entries; the odd
                     * ones, token 2t + 1, are 0 at one row) */
#pragma unroll
                    for (int j = 0; j < 2; j++)
#pragma unroll
                        for (int nt = 0; nt < NT; nt++)
#pragma unroll
                            for (int e = 0; e < 4; e += ONE ? 2 : 1) {
                                const float xce = (e & 1) ? xc[nt].y : xc[nt].x;
                                acc[j][nt][e] = fmaf(sc[2 * j + (e >> 1)], cg[j][nt][e] + xce, acc[j][nt][e]);
                                cg[j][nt][e] = 0.0f;
                            }
                } else if (XGS && (c == wc0 || (c & gmask) == 0)) { /* a group starts: its scales from wsc */
                    /* the last group's products into the accumulators; cg is not reset: this chunk's first MMAs
                     * overwrite it (mma_chunk4 FRESH). A tile's end resets it (flush, below) */
                    flush_each<NT>(acc, cg, s, [](int, int, int, float av) { return av; }, false);
                    fresh = true;
                    const float4 sv = *reinterpret_cast<const float4 *>(wsc + (warp * MU + u) * 32 + C4);
                    s[0] = sv.x;
                    s[1] = sv.y;
                    s[2] = sv.z;
                    s[3] = sv.w;
                } else if (c == wc0 || (c & gmask) == 0) { /* a group starts (warp-uniform) */
                    flush();
                    const int lg = (c >> gsh) - g0;
                const char *buf = pbuf + ((ct - t0) & 1) * pbytes;
                const uint2 sq = FMT == GPU_Q_GPTQ ? *reinterpret_cast<const uint2 *>(buf + 2 * (lg * 32 + C4))
                                                   : make_uint2(__half_as_ushort(pmax[(ct & SW) * pm_up + lg]), 0u);
                const uint32_t zq = reinterpret_cast<const uint32_t *>(buf + sc_bytes)[lg * zw + C4 * zw / 32];
                if constexpr (FOLD || CODES8) {
                    int z[4];
                    chunk_params<FMT>(B, zq, sq, C4, a.zadd, z, s);
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        /* exact: a 9-bit zero point times an fp16 scale (times 2^-64 for bf16) */
                        zs[i] = (float)z[i] * s[i] * xs_code<T>::XSUM;
                        s[i] *= xs_code<T>::SCALE; /* the codes entered as q * 2^-24 (bf16: against x 2^64) */
                        z2[i] = (uint32_t)z[i] * 0x00010001u; /* CODES8: z * 2^-133 in both bf16 halves */
                    }
                } else if constexpr (EXL2_SHFL) {
                    exl2_scales4(zq, sq.x, C4, t, s); /* z2, z2h: the constant zero point, set before the loop */
                } else {
                    group_params<T, FMT>(B, zq, sq, C4, a.zadd, z2, z2h, s);
                }
                }
                if constexpr (FOLD)
                    mma_fold<T, NT, B>(cg, xsum, wv[u], xs, a.xstride, (c - c0) * (128 / B), n, g, t);
                else if constexpr (CODES8)
                    mma_codes8<NT>(cg, wv[u], xs, a.xstride, (c - c0) * (128 / B), n, g, t, z2);
                else if constexpr (XGS && B == 8) {
                    if (fresh)
                        mma_chunk8<T, NT, true>(cg, wv[u], xr[u], z2);
                    else
                        mma_chunk8<T, NT>(cg, wv[u], xr[u], z2);
                    fresh = false;
                } else if constexpr (XGS) {
                    if (fresh)
                        mma_chunk4<T, NT, true>(cg, wv[u], xr[u], z2, z2h);
                    else
                        mma_chunk4<T, NT>(cg, wv[u], xr[u], z2, z2h);
                    fresh = false;
                } else if constexpr (XG && B == 8)
                    mma_chunk8<T, NT>(cg, wv[u], xr[u], z2);
                else if constexpr (XG)
                    mma_chunk4<T, NT>(cg, wv[u], xr[XG ? u : 0], z2, z2h);
                else if constexpr (!XFOLD) /* XFOLD: its MMAs above */
                    mma_chunk<T, NT>(cg, wv[u], B, xs, a.xstride, (c - c0) * (128 / B), n, g, t, z2, z2h);
                if (qb + u + RU < Q) /* slot u now takes the chunk RU on: RU chunks stay in flight */
                    issue(u, true);
                cc++;
            }
            if (cc == wc1) { /* a tile ends with a round of the ring (a.tpb > 1) or with the warp's chunks */
                flush();
                end_tile(ct);
                frags_zero<NT>(acc);
                cc = wc0;
                ct++;
            }
        }
    }
    for (; ct < t1; ct++) /* a warp without chunks (nw == 0) still takes part in every tile's barriers */
        end_tile(ct);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (S > 1)
        coop::this_cluster().sync(); /* the other blocks' shared memory stays until rank 0 has read it */
#endif
}

/* W[m, k] in dt, columns of packed-row order (the prefill path's weight for cuBLASLt). A warp takes QDQ_CPW
 * consecutive chunks (4 packed rows each) of one 32-column tile: lane = (column quad lane >> 2, packed row lane & 3),
 * so each load is one chunk's 512 contiguous bytes of the tile-major weight, and each store puts 8 columns' 4
 * consecutive packed rows (64 or 32 contiguous bytes per column: whole sectors). Every chunk's loads are issued
 * before the first is used. (Was: one packed row per block row, lanes on 32 column quads: one 16-byte load and 4
 * stores per thread, each store 16 bytes into each of 32 columns, half sectors; ~0.65 TB/s.) Values as the CPU
 * reference: (q - z) exactly (magic_f on both sides), times the float scale, rounded once to dt. */
constexpr int QDQ_WARPS = 4;
constexpr int QDQ_CPW = 4;
template <typename T, int FMT>
__global__ void __launch_bounds__(QDQ_WARPS * 32) qmma_dequant_kernel(
    T *__restrict__ W, int k, int m, int G, int prow, const uint4 *__restrict__ qw, const int2 *__restrict__ chunks,
    const uint32_t *__restrict__ qz, const __half *__restrict__ sc, const uint32_t *__restrict__ qs,
    const __half *__restrict__ qsm, int zadd)
{
    const int lane = (int)threadIdx.x & 31, t = lane & 3, C = (int)blockIdx.x * 32 + 4 * (lane >> 2);
    const int c0 = ((int)blockIdx.y * QDQ_WARPS + (int)(threadIdx.x >> 5)) * QDQ_CPW, nc = prow / 4;
    if (C >= m)
        return;
    int2 d[QDQ_CPW];
    uint4 qv[QDQ_CPW];
#pragma unroll
    for (int u = 0; u < QDQ_CPW; u++)
        if (c0 + u < nc) {
            d[u] = __ldg(chunks + c0 + u);
            qv[u] = __ldcs(qw + mma_word(prow, 4 * (c0 + u) + t, C));
        }
    uint32_t zq[QDQ_CPW];
    uint2 sv[QDQ_CPW];
#pragma unroll
    for (int u = 0; u < QDQ_CPW; u++)
        if (c0 + u < nc)
            chunk_param_loads<FMT>(d[u].y & 0xFFFFFF, d[u].y >> 24, C, G, qz, sc, qs, qsm, zq[u], sv[u]);
#pragma unroll
    for (int u = 0; u < QDQ_CPW; u++) {
        if (c0 + u >= nc)
            break;
        const int bits = d[u].y >> 24, kb = d[u].x + t * (32 / bits);
        int z[4];
        float s[4];
        chunk_params<FMT>(bits, zq[u], sv[u], C, zadd, z, s);
        const uint32_t wd[4] = {qv[u].x, qv[u].y, qv[u].z, qv[u].w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (C + i >= m)
                break;
            const float mz = magic_f((uint32_t)z[i]);
            T *dst = W + (size_t)(C + i) * k + kb;
            if (bits == 4) {
                float f[8];
#pragma unroll
                for (int r = 0; r < 8; r++) { /* output r holds nibble r / 2 (r even) or 4 + r / 2 (odd) */
                    const int pos = (r & 1) ? 4 + (r >> 1) : (r >> 1);
                    f[r] = (magic_f((wd[i] >> (4 * pos)) & 15u) - mz) * s[i];
                }
                vec8<T> v;
                v.from_float(f);
                *reinterpret_cast<uint4 *>(dst) = v.u;
            } else {
                typename dt_traits<T>::T2 h[2];
#pragma unroll
                for (int r = 0; r < 4; r += 2) { /* output r holds byte 0, 2, 1, 3 */
                    const int p0 = (r & 1) * 2 + (r >> 1), p1 = ((r + 1) & 1) * 2 + ((r + 1) >> 1);
                    h[r / 2] = dt_traits<T>::from_f2((magic_f((wd[i] >> (8 * p0)) & 255u) - mz) * s[i],
                                                     (magic_f((wd[i] >> (8 * p1)) & 255u) - mz) * s[i]);
                }
                *reinterpret_cast<uint2 *>(dst) = *reinterpret_cast<uint2 *>(h);
            }
        }
    }
}

/* xg[r, i] = x[r, perm[i]] (dt), for a permuted weight (k % 8 == 0): a block takes rb rows, copies them into
 * shared memory with 16-byte loads (staged; rows too long for it are read in place), then gathers, 8 outputs per
 * thread (16-byte perm loads, read once for the rb rows, and 16-byte stores). (Was: scattered 2-byte loads from
 * global memory, one L1 wavefront per lane: the 8B down projection's 2048 x 14336 gather took ~150 us.) */
template <typename T>
__global__ void gather_rows_kernel(T *__restrict__ xg, const T *__restrict__ x, const int32_t *__restrict__ perm,
                                   int n, int k, int rb, int staged)
{
    extern __shared__ uint4 g_smem[];
    const int r0 = (int)blockIdx.x * rb, nr = min(rb, n - r0);
    const T *xs = x + (size_t)r0 * k;
    if (staged) {
        const int kv = k >> 3;
        for (int i = threadIdx.x; i < nr * kv; i += blockDim.x)
            g_smem[i] = __ldg(reinterpret_cast<const uint4 *>(xs) + i);
        __syncthreads();
        xs = reinterpret_cast<const T *>(g_smem);
    }
    for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) {
        const int4 p0 = __ldg(reinterpret_cast<const int4 *>(perm + i));
        const int4 p1 = __ldg(reinterpret_cast<const int4 *>(perm + i) + 1);
        const int src[8] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
        for (int r = 0; r < nr; r++) {
            alignas(16) T v[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                v[j] = xs[(size_t)r * k + src[j]];
            *reinterpret_cast<uint4 *>(xg + (size_t)(r0 + r) * k + i) = *reinterpret_cast<const uint4 *>(v);
        }
    }
}
/* xg[r, i] = x[r, perm[i]], one value per thread: rows whose length is not a multiple of 8 (units-layout weights
 * with 4-row packed rows, k % 8 == 4). */
template <typename T>
__global__ void gather_rows_any_kernel(T *__restrict__ xg, const T *__restrict__ x, const int32_t *__restrict__ perm,
                                       int n, int k)
{
    const size_t total = (size_t)n * k;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / k;
        xg[i] = x[r * k + __ldg(perm + (i - r * k))];
    }
}

/* Launches gather_rows_kernel: up to 8 rows per block within 96 KiB of shared memory; a row longer than that (k
 * above 49152) is gathered in place, one row per block; k % 8 != 0 takes gather_rows_any_kernel. */
constexpr size_t GATHER_SMEM = 96 * 1024;
template <typename T>
int launch_gather_rows(T *xg, const T *x, const int32_t *perm, int n, int k, cudaStream_t stream)
{
    if (k % 8) {
        const size_t total = (size_t)n * k;
        const unsigned blocks = (unsigned)std::min<size_t>((total + 255) / 256, 4096);
        gather_rows_any_kernel<T><<<blocks, 256, 0, stream>>>(xg, x, perm, n, k);
        GPU_CHECK_LAUNCH("quant gather rows (any k)");
        return GPU_OK;
    }
    static bool opted = false; /* per instantiation; a benign race: every thread sets the same attribute */
    if (!opted) {
        GPU_CHECK(cudaFuncSetAttribute(gather_rows_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)GATHER_SMEM));
        opted = true;
    }
    const size_t row = (size_t)k * sizeof(T);
    const int staged = row <= GATHER_SMEM && gpu_aligned16(x);
    const int rb = staged ? (int)std::min<size_t>(8, GATHER_SMEM / row) : 1;
    gather_rows_kernel<T><<<(unsigned)((n + rb - 1) / rb), 256, staged ? (size_t)rb * row : 0, stream>>>(
        xg, x, perm, n, k, rb, staged);
    GPU_CHECK_LAUNCH("quant gather rows");
    return GPU_OK;
}

int g_sms = 0;
int g_allow_mma = 1;
int g_clusters = -1; /* thread-block clusters (compute capability 9.0 on) */

int clusters_ok()
{
    if (g_clusters < 0) {
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
            (void)cudaGetLastError(); /* not a launch error of the caller */
            major = 0;
        }
        g_clusters = major >= 9;
    }
    return g_clusters;
}

int sm_count()
{
    if (!g_sms) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, dev) !=
                                                      cudaSuccess) {
            (void)cudaGetLastError(); /* not a launch error of the caller */
            g_sms = 108;
        }
    }
    return g_sms;
}

/* Blocks of kernel fn (threads each, smem bytes of dynamic shared memory) resident at once in clusters of cs
 * along y: a cluster's blocks must share one GPC, so the GPU holds fewer than its per-SM occupancy suggests where
 * its GPCs' SM counts are not multiples of cs (H200, one 8-warp block per SM: 39 clusters of 3 = 117 of 132 SMs,
 * Nsight Compute). `fallback` where the runtime cannot say, and at most that. */
int cluster_slots(const void *fn, int cs, int threads, size_t smem, int fallback)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1, (unsigned)cs, 1);
    cfg.blockDim = dim3((unsigned)threads, 1, 1);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = 1;
    at[0].val.clusterDim.y = (unsigned)cs;
    at[0].val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    int nc = 0;
    if (cudaOccupancyMaxActiveClusters(&nc, fn, &cfg) != cudaSuccess || nc <= 0) {
        (void)cudaGetLastError(); /* not a launch error of the caller */
        return fallback;
    }
    return std::min(fallback, nc * cs);
}

size_t align256(size_t b)
{
    return (b + 255) & ~(size_t)255;
}

/* ---- tensor-core layout: launch plan ---- */
struct mma_plan {
    int S, cps, cpw, xstride;
    size_t smem;
};

/* Splits: as many blocks as are resident at once (the column tiles alone, or split-K), and each block's
 * activation slice (n rows x its chunks' rows, 16-bit) within 40 KiB of shared memory. */
mma_plan plan_mma(const gpu_qweight *w, int n, int per_sm = 4)
{
    const int tiles = w->mp / 32, nc = w->n_chunks;
    /* dynamic shared memory n * xstride * 2 + cps * 8 <= 40704 bytes (with `red` and `is_last`, at most
     * 8196 static bytes, within the 48 KiB a block may use without opting in) */
    const int cap = std::max(1, (40704 - 190 * n) / (64 * n + 8));
    /* per_sm: resident blocks per SM (by the kernel's registers, at most 4; 4 for the workspace bound):
     * splitting up to that many blocks (not beyond) keeps every block in the first wave */
    const int slots = per_sm * sm_count();
    int S = std::max(slots / tiles, (nc + cap - 1) / cap);
    S = std::max(1, std::min(S, nc));
    mma_plan p;
    p.cps = (nc + S - 1) / S;
    p.S = (nc + p.cps - 1) / p.cps;
    p.cpw = (p.cps + MW - 1) / MW;
    p.xstride = (p.cps * 32 + 63) / 64 * 64 + 32; /* 16-byte units = 4 mod 8: conflict-free B loads */
    p.smem = (size_t)n * p.xstride * 2 + (size_t)p.cps * 8;
    return p;
}

/* From this many rows on, a permuted weight's activations are gathered once by a separate kernel (into
 * the workspace) instead of by every block of the fused kernel (n scattered 2-byte loads per row). */
constexpr int MMA_PREGATHER = 4;

size_t mma_partial_bytes(const gpu_qweight *w)
{
    size_t most = 0;
    for (int n = 1; n <= GPU_QLINEAR_MAX_FUSED_ROWS; n++) {
        const mma_plan p = plan_mma(w, n);
        if (p.S > 1)
            most = std::max(most, (size_t)p.S * n * w->mp * sizeof(float));
    }
    most = align256(std::max<size_t>(most, 256));
    if (!w->perm_identity)
        most += align256((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * w->k * 2);
    return most;
}

template <typename T, int FMT, int NT>
int launch_mma_fused(const gpu_qweight *w, T *out, const T *x, const T *bias, int n, float *part, cudaStream_t stream)
{
    static int per_sm = 0; /* per instantiation; a benign race: every thread computes the same value */
    if (!per_sm) {
        int occ = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, qmma_kernel<T, FMT, NT>, MW * 32, 32768) !=
            cudaSuccess) {
            (void)cudaGetLastError(); /* not this call's launch error */
            occ = 3;
        }
        per_sm = std::max(1, std::min(occ, 4));
    }
    const mma_plan p = plan_mma(w, n, per_sm);
    const int ident = w->perm_identity && gpu_aligned16(x);
    dim3 grid((unsigned)(w->mp / 32), (unsigned)p.S);
    qmma_kernel<T, FMT, NT><<<grid, MW * 32, p.smem, stream>>>(
        out, x, bias, n, w->k, w->m, w->n_groups, reinterpret_cast<const uint4 *>(w->qweight),
        reinterpret_cast<const int2 *>(w->chunks), w->n_chunks, p.cps, p.cpw, w->qzeros,
        reinterpret_cast<const __half *>(w->scales), w->q_scale, reinterpret_cast<const __half *>(w->q_scale_max),
        w->v2 ? 0 : 1, w->perm, ident, p.xstride, part, w->tile_sync);
    GPU_CHECK_LAUNCH("quant mma fused");
    return GPU_OK;
}

/* ---- qmv_kernel: launch plan ---- */
/* dynamic shared memory caps (with the static 2 x 8 KB (NT = 1) or 2 x 16 KB of `red` in the SM's 228 KB):
 * n <= 8, 2 blocks per SM; n <= 16, 1 block per SM */
constexpr size_t QV_SMEM_1 = 96 * 1024;
constexpr size_t QV_SMEM_2 = 192 * 1024;
/* n <= 16 at QV_WARPS_WIDE warps: beside the 64 KB of `red` (dynamic, before the slice) and gsave */
constexpr size_t QV_SMEM_2W = 160 * 1024;
/* n <= 16 without the slice (qmv_kernel's XG): the group parameters only; two blocks per SM */
constexpr size_t QV_SMEM_XG = 48 * 1024;
constexpr int QV_MAX_TPB = 8; /* column tiles per block */

/* CHASKI_QMV or gpu_qlinear_qmv: 0 the fused path uses qmma_kernel (one weight per launch); 1 (default)
 * qmv_kernel where the chunk table is regular, else qmv_general_kernel; 2 qmv_general_kernel only */
int g_qv = -1;
/* An integer environment setting for benches: NAME's value clamped to [lo, hi], or dflt where it is unset. */
int env_int(const char *name, int dflt, int lo, int hi)
{
    const char *e = getenv(name);
    return e ? std::min(hi, std::max(lo, atoi(e))) : dflt;
}
int qv_mode()
{
    if (g_qv < 0)
        g_qv = env_int("CHASKI_QMV", 1, 0, 2);
    return g_qv;
}
int qv_on()
{
    return qv_mode() != 0;
}
constexpr long QV_BLOCK_COST = 4;
/* split-K's reduction per tile (cluster barrier with its memory fence, reads of the other blocks' sums), in chunks
 * per warp: gate_up (n = 1) measured 28.8 us at split 1 and 42.8 us at split 2 (fourth run), 53k cycles at split 2
 * with 7 tiles per block against 51.5k at split 1 with one (sixth run) */
constexpr long QV_SPLIT_COST = 4;
/* gpu_qlinear_qv_plan: the split and tiles per block forced by a test (-1: the environment's) */
int g_qv_split_force = -1, g_qv_tpb_force = -1;
/* Benches: CHASKI_QV_PREGATHER=n gathers permuted activations once from n rows on (default QV_PREGATHER; 17: never,
 * every block gathers its slice) */
int g_qv_pregather_force = -1; /* gpu_qlinear_qv_pregather: forced by a test (-1: the environment's) */
int qv_pregather_n()
{
    static const int v = env_int("CHASKI_QV_PREGATHER", QV_PREGATHER, 1, INT_MAX);
    return g_qv_pregather_force >= 1 ? g_qv_pregather_force : v;
}
/* An on/off environment switch for benches: on unless NAME is set to 0 (read once by each caller's static). */
int env_on(const char *name)
{
    const char *e = getenv(name);
    return e ? atoi(e) != 0 : 1;
}
/* Benches: CHASKI_QV_BF16_8=0 sends bf16 8-bit weights to qmv_general_kernel (dq2's bf16 8-bit form, as before the
 * codes came in as subnormals) instead of qmv_kernel's regular 8-bit variants. */
int qv_bf16_8_on()
{
    static const int v = env_on("CHASKI_QV_BF16_8");
    return v;
}
/* CHASKI_QV_DEDUPE=0: weights of one permutation are treated as if their permutations differed (each gathered,
 * EXL2 gate and up in two launches): the form before perm_label, for A/B benches */
int qv_dedupe_on()
{
    static const int v = env_on("CHASKI_QV_DEDUPE");
    return v;
}
/* CHASKI_QV_XF16: EXL2 4-bit at 9-16 rows with XFOLD: 0 (default) never, 1 for weights of QV_XF16_TILES column tiles
 * or more and QV_XF16_K input rows or more (the default until XG with EXL2_SHFL beat it: H200, the 70B's batch 16
 * 24.3 -> 33.8% of its roofline with XG, PERFORMANCE.md twenty-second run), 2 always (checks: the variant on
 * check_quant's small shapes) */
constexpr int QV_XF16_TILES = 256;
constexpr int QV_XF16_K = 8192;
int qv_xf16_mode()
{
    static const int v = env_int("CHASKI_QV_XF16", 0, 0, 2);
    return v;
}
/* CHASKI_QV_WIDE=0: EXL2 4-bit at 9-16 rows in blocks of QV_WARPS warps, not QV_WARPS_WIDE (benches) */
int qv_wide_on()
{
    static const int v = env_on("CHASKI_QV_WIDE");
    return v;
}
/* CHASKI_QV_WIDE8=0: 8-bit weights at 9-16 rows that XG does not take in blocks of QV_WARPS warps, not
 * QV_WARPS_WIDE (benches) */
int qv_wide8_on()
{
    static const int v = env_on("CHASKI_QV_WIDE8");
    return v;
}
/* CHASKI_QV_XG8=0: 8-bit weights at 9-16 rows not in qmv_kernel's XG (then the wide blocks; benches) */
int qv_xg8_on()
{
    static const int v = env_on("CHASKI_QV_XG8");
    return v;
}
/* CHASKI_QV_XG=0: 4-bit weights keep the activation slice (no qmv_kernel XG; benches) */
int qv_xg_on()
{
    static const int v = env_on("CHASKI_QV_XG");
    return v;
}
/* qmv_kernel's XG at 1-8 rows: from QV_XG_MIN_GPTQ / QV_XG_MIN_EXL2 rows (CHASKI_QV_XG_MIN: both; 9: only at 9-16
 * rows), for launches of fewer than QV_XG_TILES column tiles. Measured (H200, PERFORMANCE.md twenty-first run):
 * kernel bench at 8 rows, XG gains on the 8B's down (GPTQ 33.7 -> 51.2% of copy bandwidth, EXL2 24.2 -> 33.9%),
 * q,k,v and EXL2's o, and loses on gate_up (896 tiles: GPTQ 56.5 -> 54.6%, EXL2 46.7 -> 42.3%); at 2-4 rows GPTQ's
 * gains and losses cancel (q,k,v +2 points, o and down -1). End to end, EXL2 from 2 rows: the 8B's batch 2 lost 2%,
 * its batch 4 held, the 70B's batch 4 gained 8% (44.2 -> 47.7% of its roofline) */
constexpr int QV_XG_MIN_GPTQ = 5, QV_XG_MIN_EXL2 = 4, QV_XG_TILES = 512;
/* SwiGLU's gate, up pair in XG at 9-16 rows too (CHASKI_QV_XG_SWIGLU=0: not; the backend then still asks for the one
 * launch there, which the slice variant takes: CHASKI_QSWIGLU_ROWS=8 gives the two steps of earlier runs). The
 * twenty-first run had measured it off (the 8B's GPTQ batch 16 lost 1.5%) while the backend ran its one-launch SwiGLU
 * at 1-8 rows only; with the backend's one launch at 9-16 rows (op_matmul2_swiglu) it gained (H200, twenty-third run:
 * 8B gptq4-g128 FP16 batch 12 / 16 +1.8 / +1.5%, exl2-4.0 BF16 +6.3 / +5.8%) */
int qv_xg_swiglu16()
{
    static const int v = env_int("CHASKI_QV_XG_SWIGLU", 1, 0, 1);
    return v;
}
int qv_xg_min(int fmt)
{
    static const int v = env_int("CHASKI_QV_XG_MIN", 0, 0, INT_MAX); /* 0: the defaults */
    return v ? v : fmt == GPU_Q_GPTQ ? QV_XG_MIN_GPTQ : QV_XG_MIN_EXL2;
}
/* CHASKI_QV_R1=0: 4-bit one-row calls (GPTQ: groups of 128 rows) take qmv_kernel's V = 1, not V = 5 (benches);
 * CHASKI_QV_RN=0: those at 2-4 rows the variants before V = 6, =2: V = 6 at 2-8 rows */
int qv_r1_on()
{
    static const int v = env_on("CHASKI_QV_R1");
    return v;
}
int qv_rn_mode()
{
    static const int v = env_int("CHASKI_QV_RN", 1, 0, 2);
    return v;
}
constexpr int QV_RN_MAX = 4; /* V = 6's most rows by default (qv_rn_mode 1) */
/* the split RMSNorm's most rows (qmv_kernel's NORM: one row, and V = 6); quant_ops.h GPU_QLINEAR_NORM_ROWS */
constexpr int QV_NORM_ROWS = GPU_QLINEAR_NORM_ROWS;
static_assert(QV_NORM_ROWS <= QV_RN_MAX, "the split RMSNorm's rows take V = 6 by default");
/* CHASKI_QV_ONE=0: EXL2 one-row calls take the variant of 2-8 rows (benches) */
int qv_one_on()
{
    static const int v = env_on("CHASKI_QV_ONE");
    return v;
}
/* gpu_qlinear_fold_calls: the calls that took the folded kernel; gpu_qlinear_general_calls: qmv_general_kernel */
std::atomic<unsigned long long> g_fold_calls{0}, g_general_calls{0};
/* CHASKI_QFOLD=0: one-row decode without the folded zero points (mma_chunk / mma_codes8, as from two rows; benches) */
int qfold_on()
{
    static const int v = env_on("CHASKI_QFOLD");
    return v;
}
/* Benches: CHASKI_QV_SPLIT=s asks launch_qv for split-K s (1..8) where the weights allow it. */
int qv_split_env()
{
    static const int v = env_int("CHASKI_QV_SPLIT", 0, 0, QV_MAX_SPLIT);
    return g_qv_split_force >= 0 ? g_qv_split_force : v;
}
/* A launch of the 1-8-row design (NT = 1, 2 blocks per SM; not XG) of no more blocks than SMs and no split asks for
 * QV_SMEM_SPREAD of dynamic shared memory, so that the hardware places at most one of its blocks on an SM
 * (CHASKI_QV_SPREAD=0: not). Why: the kernel trace (ktrace.cu) of the 8B's batch 1 showed o's 128 blocks, launched
 * while q,k,v's still held most slots, on 77 SMs, 51 of them with two blocks, which ended about 1.1 us after the
 * others. H200 (PERFORMANCE.md thirty-third run): 8B tg32 +0.5% (GPTQ FP16) / +0.9% (EXL2), batch 4 +1.0 / +1.9% */
int qv_spread_on()
{
    static const int v = env_int("CHASKI_QV_SPREAD", 1, 0, 1);
    return v;
}
/* over half an SM's 228 KB with the static `red` (16 KB at NT = 1); room beside it for a block of the next launch */
constexpr size_t QV_SMEM_SPREAD = 104 * 1024;
/* SwiGLU's balanced split (CHASKI_QV_SWBAL=1; 0, the default: off): gate and up at split-K 2 (clusters of 2 blocks,
 * rank 0 writing silu(g) * u), as many clusters as are resident at once, each taking pairs / clusters pairs or one
 * more, so that no SM runs a block of two pairs beside another of two (the thirty-seventh run: the 8B's gate_up
 * time is set by the most tiles an SM runs; its 224 blocks of 2 pairs put 8 tiles on 92 SMs and 4 on 40). At most
 * QV_MAX_TPB_BAL tiles a block */
static int g_qv_swbal_force = -1;
static std::atomic<long> g_swbal_calls{0};
int qv_swbal()
{
    static const int v = env_int("CHASKI_QV_SWBAL", 0, 0, 1);
    return g_qv_swbal_force >= 0 ? g_qv_swbal_force : v;
}
constexpr int QV_MAX_TPB_BAL = 16;
/* Benches: CHASKI_QV_TPB_SW=t asks launch_qv for t (even, 2..8) column tiles per block in SwiGLU's launches only. */
int qv_tpb_sw_env()
{
    static const int v = env_int("CHASKI_QV_TPB_SW", 0, 0, QV_MAX_TPB);
    return v;
}
/* Benches: CHASKI_QV_PLAN="T:S:B[,T:S:B...]": a decode launch of T column tiles in all (its parts' together; SwiGLU's
 * gate and up tiles both counted) takes split-K S and B column tiles per block where launch_qv can (S at least what
 * the slice needs, SwiGLU 1; B > 1 only where the ring allows, SwiGLU's even); 0 keeps the planner's. One projection's
 * plan can so be swept without moving the others (docs/PERFORMANCE.md thirty-third run: the 70B's q,k,v and gate_up
 * end on their SMs that run two blocks, 7-16 us after those that run one). CHASKI_QV_PLAN_LOG=1 prints each launch
 * shape's plan once, to stderr. */
struct qv_plan_force {
    int tiles, S, tpb;
};
static const std::vector<qv_plan_force> &qv_plan_table()
{
    static const std::vector<qv_plan_force> tab = [] {
        std::vector<qv_plan_force> t;
        const char *e = getenv("CHASKI_QV_PLAN");
        while (e && *e) {
            qv_plan_force f = {0, 0, 0};
            if (sscanf(e, "%d:%d:%d", &f.tiles, &f.S, &f.tpb) == 3 && f.tiles > 0 && f.S >= 0 &&
                f.S <= QV_MAX_SPLIT && f.tpb >= 0 && f.tpb <= QV_MAX_TPB)
                t.push_back(f);
            e = strchr(e, ',');
            if (e)
                e++;
        }
        return t;
    }();
    return tab;
}
/* the forced plan of a launch of `tiles` column tiles, or null */
static const qv_plan_force *qv_plan_env(int tiles)
{
    for (const qv_plan_force &f : qv_plan_table())
        if (f.tiles == tiles)
            return &f;
    return nullptr;
}
static int qv_plan_log_on()
{
    static const int v = env_int("CHASKI_QV_PLAN_LOG", 0, 0, 1);
    return v;
}
/* Benches: CHASKI_QV_TPB=t asks launch_qv for t column tiles per block (1..8) where the chunk counts allow it. */
int qv_tpb_env()
{
    static const int v = env_int("CHASKI_QV_TPB", 0, 0, QV_MAX_TPB);
    return g_qv_tpb_force >= 0 ? g_qv_tpb_force : v;
}

/* Up to QV_MAX_PARTS tensor-core weights of one input in one qmv_kernel launch. GPU_UNSUPPORTED when
 * they cannot share one (formats, zero conventions or k differ; the split needed exceeds 8). */
/* Workspace of launch_qv: one gathered copy of the activations per permuted weight (n >= QV_PREGATHER). */
size_t qv_gather_bytes(int k)
{
    return QV_MAX_PARTS * align256((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * k * 2);
}

/* B = 4 / 8: qmv_kernel's regular variants (V: qmv_kernel's); B = 0: qmv_general_kernel */
template <typename T, int FMT, int NT, int B, int V, int W, bool NORM = false> constexpr auto qv_kernel()
{
    if constexpr (B == 0)
        return qmv_general_kernel<T, FMT, NT>;
    else
        return qmv_kernel<T, FMT, NT, B, V, W, NORM>;
}

/* Whether two weights' activations are permuted alike (both in order, or equal labels: perm_label). */
bool same_perm(const gpu_qweight *a, const gpu_qweight *b)
{
    if (a->perm_identity || b->perm_identity)
        return a->perm_identity && b->perm_identity;
    return a->perm_label && a->perm_label == b->perm_label && qv_dedupe_on(); /* equal labels: equal arrays */
}

template <typename T, int FMT, int NT, int B, int V = 0, int W = QV_WARPS, bool NORM = false>
int launch_qv(const gpu_qweight *const *ws, void *const *outs, const void *const *biases, int n_parts, const void *x,
              int n, void *workspace, size_t workspace_size, cudaStream_t stream, int swiglu, const gpu_qx *qx)
{
    constexpr int QW = B ? W : QV_WARPS; /* warps per block */
    static_assert(QW == QV_WARPS || (NT == 2 && QW == QV_WARPS_WIDE), "wide blocks: 9-16 rows only");
    constexpr bool XG = qv_xg(V); /* qmv_kernel without the activation slice */
    /* XG in rounds: every warp's chunks whole rounds of the kernel's ring (cps and cpw multiples of XR) */
    constexpr bool XRND = qv_xg_rounds<FMT, V>();
    /* V = 5, 6 (RD): every warp's chunks whole halves of a round (4; GPTQ's groups), its rounds of 8 may end with one */
    constexpr bool RD = qv_rounds(V), RDG = RD && FMT == GPU_Q_GPTQ;
    constexpr int XR = XRND ? qv_ring<NT, V>() : RD ? 4 : 1;
    const size_t limit = XG ? QV_SMEM_XG : NT == 1 ? QV_SMEM_1 : QW > QV_WARPS ? QV_SMEM_2W : QV_SMEM_2;
    static bool attr_set = false; /* per instantiation; a benign race: every thread sets the same value */
    if (!attr_set) {
        const size_t amax = std::max(limit + qv_red_bytes<NT, QW>(), NT == 1 && !XG ? QV_SMEM_SPREAD : (size_t)0);
        GPU_CHECK(cudaFuncSetAttribute(qv_kernel<T, FMT, NT, B, V, QW, NORM>(),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)amax));
        attr_set = true;
    }
    qv_args a;
    memset(&a, 0, sizeof a);
    qv_gather_args ga;
    memset(&ga, 0, sizeof ga);
    int n_gather = 0;
    if (swiglu && (!B || n_parts != 2 || ws[1]->m != ws[0]->m || ws[1]->n_chunks != ws[0]->n_chunks ||
                   ws[1]->n_groups != ws[0]->n_groups || ws[1]->group_shift != ws[0]->group_shift ||
                   !same_perm(ws[0], ws[1])))
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: gate and up are not two regular weights of one shape and "
                                         "one permutation");
    constexpr bool F = qv_one(V); /* the one-row variants */
    if (F && n != 1)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: the one-row variant at %d rows", n);
    /* qmv_kernel's XFOLD: EXL2 4-bit at 1-8 rows, and at 9-16 in V = 2; every chunk one group */
    constexpr bool XF = FMT == GPU_Q_EXL2 && B == 4 && ((NT == 1 && !XG) || V == 2);
    for (int i = 0; XF && i < n_parts; i++)
        if (ws[i]->group_shift != 0)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: the EXL2 4-bit variant with groups of %d "
                                             "chunks", 1 << ws[i]->group_shift);
    if (qx && qx->xin && (!qx->xin_w || qx->xin_w->perm_identity || !gpu_aligned16(qx->xin)))
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: xin without a permuted weight, or not 16-byte aligned");
    const bool resid = qx && qx->resid, ss_in = qx && qx->ss_in;
    if (resid || ss_in) { /* qmv_kernel's NORM instantiations only: one row, or V = 6 */
        if (!NORM || (resid && ss_in))
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: the split RMSNorm off the one-row decode variants and the "
                                             "4-bit rounds at 2-4 rows, or both halves in one launch");
        if (resid && (n_parts != 1 || swiglu || !qx->nw || !qx->ss_out || qx->resid == x || qx->resid == outs[0] ||
                      outs[0] == x))
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: the residual add needs one weight, nw and ss_out, and resid, x "
                                             "and out apart");
        if (ss_in && (qx->ss_tiles < 1 || qx->ss_d < 1))
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: ss_in of %d tiles, width %d", qx->ss_tiles, qx->ss_d);
        if (qx->ss_shift < -30 || qx->ss_shift > 30)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: the numerators' shift %d (-30..30)", qx->ss_shift);
        a.resid = qx->resid;
        a.nw = qx->nw;
        a.ss_out = qx->ss_out;
        a.ss_in = qx->ss_in;
        a.ss_tiles = resid ? ws[0]->mp / 32 : qx->ss_tiles;
        /* rsqrt(sum / d + eps) 2^s as rsqrt((sum / d + eps) 2^-2s): exact scalings by powers of two */
        a.ss_inv_d = ss_in ? ldexpf(1.0f / (float)qx->ss_d, -2 * qx->ss_shift) : 0.0f;
        a.ss_eps = ldexpf(qx->ss_eps, -2 * qx->ss_shift);
        a.nw_scale = ldexpf(1.0f, -qx->ss_shift);
    }
    if (qx && qx->xout) {
        const gpu_qweight *d = qx->xout_w;
        if (!(swiglu || resid) || !d || !d->pos || d->k != ws[0]->m || qx->xout == x || qx->xout == qx->xin ||
            qx->xout == outs[0] || qx->xout == qx->resid)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: xout needs a permuted weight of k = %d (the output's "
                                             "width), not aliasing x, xin, out or resid", ws[0]->m);
        a.xout = qx->xout;
        a.opos = d->pos;
    }
    a.n_parts = n_parts;
    a.n = n;
    a.k = ws[0]->k;
    a.swiglu = swiglu;
    a.zadd = ws[0]->v2 ? 0 : 1;
    int tiles = 0, ncmax = 0;
    for (int i = 0; i < n_parts; i++) {
        const gpu_qweight *w = ws[i];
        if (w->layout != GPU_QLAYOUT_MMA || w->format != FMT || w->k != a.k || (w->v2 ? 0 : 1) != a.zadd)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: weight %d differs from the first", i);
        qv_part &p = a.p[i];
        p.qw = reinterpret_cast<const uint4 *>(w->qweight);
        p.chunks = reinterpret_cast<const int2 *>(w->chunks);
        p.qz = w->qzeros;
        p.sc = reinterpret_cast<const __half *>(w->scales);
        p.qs = w->q_scale;
        p.qsm = reinterpret_cast<const __half *>(w->q_scale_max);
        p.perm = w->perm;
        p.x = x;
        p.out = outs[i];
        p.bias = biases ? biases[i] : nullptr;
        p.m = w->m;
        p.n_chunks = w->n_chunks;
        p.n_groups = w->n_groups;
        p.tiles = w->mp / 32;
        p.zw = FMT == GPU_Q_GPTQ ? w->bits : 4;
        p.gshift = w->group_shift;
        if (B && w->chunk_bits != B)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: weight %d is not regular at %d bits", i, B);
        p.ident = w->perm_identity && gpu_aligned16(x);
        int twin = -1; /* an earlier part of the same permutation, gathered already */
        for (int j = 0; j < i && twin < 0; j++)
            if (ga.xg[j] && same_perm(ws[j], w))
                twin = j;
        if (!w->perm_identity && qx && qx->xin && (qx->xin_w == w || same_perm(qx->xin_w, w))) {
            p.x = qx->xin; /* written in this order by the kernel that produced x (gpu_qx) */
            p.ident = 1;
        } else if (twin >= 0) {
            p.x = ga.xg[twin];
            p.ident = 1;
        } else if (!w->perm_identity && n >= qv_pregather_n()) {
            const size_t one = align256((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * a.k * 2);
            if (!workspace || workspace_size < qv_gather_bytes(a.k))
                return GPU_FAIL(GPU_EWORKSPACE, "qlinear: workspace %zu bytes, needs %zu", workspace_size,
                                qv_gather_bytes(a.k));
            ga.perm[i] = w->perm;
            ga.xg[i] = static_cast<char *>(workspace) + i * one;
            p.x = ga.xg[i];
            p.ident = 1;
            n_gather++;
        }
        if (XG && !p.ident) /* its loads read the activations in packed order, 16 bytes aligned */
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: activations of weight %d neither in order and aligned nor "
                                             "gathered", i);
        if ((XRND || RD) && ((FMT == GPU_Q_GPTQ && w->group_shift != 2) ||
                             (XRND && FMT == GPU_Q_EXL2 && w->group_shift != 0) || w->n_chunks % XR != 0)) /* rounds */
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: rounds of %d chunks over weight %d of %d chunks in "
                                             "groups of %d", XR, i, w->n_chunks, 1 << w->group_shift);
        tiles += w->mp / 32;
        ncmax = std::max(ncmax, w->n_chunks);
    }
    /* split-K S and column tiles per block T: S at least what the activation slice (n rows x 32 rows per chunk,
     * 16-bit, padded; none in XG) needs; then the (S, T) whose blocks fill the resident slots (NT == 1 and XG: 2
     * blocks per SM, else 1; at S > 1 those that clusters of S can take, cluster_slots) in the least time, a wave's
     * time counted as T tiles of the chunks per warp (+ 1 for the tile's reduction, + QV_SPLIT_COST for a split's)
     * plus a fixed cost (first requests, gather) of QV_BLOCK_COST chunks. T > 1 only where every warp's chunk count
     * is a multiple of MU (the kernel's ring ends a tile with a round). */
    const int slots = (NT == 1 || XG ? 2 : 1) * sm_count();
    static int cl_slots[QV_MAX_SPLIT + 1] = {}; /* per instantiation, at the designed occupancy; a benign race */
    auto slots_at = [&](int sp) {
        if (sp <= 1 || sp > QV_MAX_SPLIT || !clusters_ok())
            return slots;
        if (!cl_slots[sp])
            cl_slots[sp] = cluster_slots(reinterpret_cast<const void *>(qv_kernel<T, FMT, NT, B, V, QW, NORM>()), sp,
                                         QW * 32, limit + qv_red_bytes<NT, QW>(), slots);
        return cl_slots[sp];
    };
    /* shared memory: the slice, 64 n bytes per chunk (+ up to 256 n of row padding); regular variants add
     * their groups' parameters in two buffers, pgb bytes per group for both (a block's chunks may touch 2 groups
     * more than cps / group), + 16 for the EXL2 scale maxima's padding */
    size_t pgb = 0;
    int gshmin = 30;
    bool ring_ok = true; /* the parts' chunk counts are multiples of MU */
    for (int i = 0; i < n_parts; i++) {
        if (B) {
            const size_t per_group = (FMT == GPU_Q_GPTQ ? 64 : 0) + 4 * (size_t)a.p[i].zw;
            pgb = std::max(pgb, 2 * per_group + (FMT == GPU_Q_GPTQ ? 0 : swiglu ? 4 : 2)); /* both parts' maxima */
            gshmin = std::min(gshmin, a.p[i].gshift);
        }
        ring_ok = ring_ok && a.p[i].n_chunks % MU == 0;
    }
    /* XFOLD (qmv_kernel): 1 (F) or 8 floats per chunk more (its zero-point corrections), the warps' scales */
    constexpr size_t xf_fixed = XF ? 16 + (size_t)QW * MU * 32 * 4 : RDG ? 16 : 0, xz_n = F ? 1 : 8 * NT;
    /* XGS (qmv_kernel): the warps' scales of a ring round, as XFOLD's */
    constexpr size_t xgs_bytes = qv_xg_scales<FMT, V>() ? (size_t)QW * MU * 32 * 4 : 0;
    /* RD, GPTQ: gx, a float per group of 4 chunks and token (one row: per group) */
    const size_t per_chunk = (XG ? 0 : (size_t)64 * n) + ((pgb + ((size_t)1 << gshmin) - 1) >> gshmin) +
                             (XF ? 4 * xz_n : RDG ? xz_n : 0);
    const int cap =
        (int)((limit - (XG ? 0 : 256 * (size_t)n) - 2 * pgb - 32 - xf_fixed - xgs_bytes) / per_chunk) / XR * XR;
    const int s_min = std::max(1, (ncmax + cap - 1) / cap);
    /* chunks per block and per warp at split sp (XG: rounded up to whole rounds) */
    auto cps_at = [&](int sp) { return ((ncmax + sp - 1) / sp + XR - 1) / XR * XR; };
    auto cpw_of = [&](int cps) { return ((cps + QW - 1) / QW + XR - 1) / XR * XR; };
    /* every warp's chunk count a multiple of MU at split sp; regular tables only (qmv_general_kernel takes one
     * tile per block) */
    auto aligned = [&](int sp) {
        const int cps = cps_at(sp), cpw = cpw_of(cps);
        return B != 0 && ring_ok && cps % MU == 0 && cpw % MU == 0;
    };
    auto blocks_x = [&](int tp) {
        int b = 0;
        for (int i = 0; i < n_parts; i++)
            b += (a.p[i].tiles + tp - 1) / tp;
        return b;
    };
    int S = s_min, tpb = 1;
    bool bal = false; /* SwiGLU's balanced split (qv_swbal): split 2, a.bal_hi */
    if (swiglu) { /* split 1; an even count of gate and up tiles per block (the ring crosses tiles) */
        if (s_min > 1 || !aligned(1))
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: %d chunks need split-K or an unaligned ring", ncmax);
        const int vt = 2 * a.p[0].tiles;
        const long cpw = cpw_of(cps_at(1));
        long best = LONG_MAX;
        for (int tp = 2; tp <= QV_MAX_TPB; tp += 2) {
            const long waves = ((long)(vt + tp - 1) / tp + slots - 1) / slots;
            const long cost = waves * (tp * (cpw + 1) + QV_BLOCK_COST);
            if (cost < best) {
                best = cost;
                tpb = tp;
            }
        }
        if (qv_tpb_env() >= 2)
            tpb = qv_tpb_env() & ~1;
        if (qv_tpb_sw_env() >= 2) /* SwiGLU's alone */
            tpb = qv_tpb_sw_env() & ~1;
        if (const qv_plan_force *f = qv_plan_env(tiles))
            if (f->tpb >= 2)
                tpb = f->tpb & ~1;
        S = 0; /* the general plan below is skipped */
        /* the balanced split (qv_swbal): split 2, every cluster of 2 blocks resident at once, the pairs shared out
         * so that clusters differ by one pair at most */
        const int ncl = slots_at(2) / 2, pairs = a.p[0].tiles;
        const bool forced = qv_tpb_env() >= 2 || qv_tpb_sw_env() >= 2 || qv_plan_env(tiles);
        if (qv_swbal() && !forced && clusters_ok() && s_min <= 2 && aligned(2) && ncl >= 1 && pairs >= ncl &&
            2 * (pairs / ncl + 1) <= QV_MAX_TPB_BAL) {
            tpb = 2 * (pairs / ncl + (pairs % ncl ? 1 : 0));
            a.bal_hi = pairs % ncl; /* clusters with one pair more than the rest */
            bal = true;
            g_swbal_calls.fetch_add(1, std::memory_order_relaxed);
        }
    }
    /* the variants in rounds (RD) take a chunk in fewer instructions, so a split's reduction weighs twice as much
     * against them: H200, the 8B's o (n = 1, 128 tiles of 128 chunks) at split 1 37.3% of the copy bandwidth, at the
     * split 2 of QV_SPLIT_COST 34.0% (docs/PERFORMANCE.md, twenty-eighth run) */
    const long split_cost = RD ? 2 * QV_SPLIT_COST : QV_SPLIT_COST;
    if (S >= 1 && S <= QV_MAX_SPLIT) {
        long best = LONG_MAX;
        for (int sp = S; sp <= std::min(QV_MAX_SPLIT, ncmax); sp++) {
            const long cpw = cpw_of(cps_at(sp));
            for (int tp = 1; tp <= (aligned(sp) ? QV_MAX_TPB : 1); tp++) {
                const long waves = ((long)blocks_x(tp) * sp + slots_at(sp) - 1) / slots_at(sp);
                const long cost = waves * (tp * (cpw + 1 + (sp > 1 ? split_cost : 0)) + QV_BLOCK_COST);
                if (cost < best) {
                    best = cost;
                    S = sp;
                    tpb = tp;
                }
            }
        }
        if (qv_split_env()) {
            S = std::max(s_min, qv_split_env());
            tpb = 1;
        }
        if (qv_tpb_env())
            tpb = qv_tpb_env();
        if (const qv_plan_force *f = qv_plan_env(tiles)) {
            if (f->S)
                S = std::max(s_min, f->S);
            if (f->tpb)
                tpb = f->tpb;
        }
    }
    S = bal ? 2 : swiglu ? 1 : std::min(S, ncmax);
    if (S > QV_MAX_SPLIT)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: %d chunks need a split of %d", ncmax, S);
    if (S > 1 && !clusters_ok()) { /* before sm_90: one block per tile, if its slice fits */
        if (ncmax > cap)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: %d chunks need clusters (compute capability 9.0)", ncmax);
        S = 1;
    }
    a.cps = cps_at(S);
    S = (ncmax + a.cps - 1) / a.cps;
    a.cpw = cpw_of(a.cps);
    if (!aligned(S) && !swiglu)
        tpb = 1;
    a.tpb = tpb;
    int nbx = 0;
    for (int i = 0; i < n_parts; i++) {
        a.p[i].blk0 = nbx;
        nbx += swiglu ? (i ? 0
                           : a.bal_hi ? a.bal_hi + (2 * a.p[0].tiles - a.bal_hi * tpb) / (tpb - 2)
                                      : (2 * a.p[0].tiles + tpb - 1) / tpb)
                      : (a.p[i].tiles + tpb - 1) / tpb;
    }
    a.xstride = XG ? 0 : (a.cps * 32 + 63) / 64 * 64 + 32; /* 16-byte units = 4 mod 8: conflict-free B loads */
    const size_t smem = qv_red_bytes<NT, QW>() + (size_t)n * a.xstride * 2 +
                        (B ? (size_t)((a.cps >> gshmin) + 2) * pgb + 32 : 0) +
                        (XF ? (size_t)((a.cps * xz_n + 3) & ~3) * 4 + xf_fixed - 16 : 0) + xgs_bytes +
                        (RDG ? (size_t)((a.cps / 4 * xz_n + 3) & ~3) * 4 : 0);

    if (n_gather) {
        ga.x = x;
        ga.n = n;
        ga.k = a.k;
        const dim3 gg((unsigned)std::min((a.k / 8 + 127) / 128, 16), (unsigned)n, (unsigned)n_parts);
        const cudaError_t e = gpu_launch_ex(qv_gather_kernel<T>, gg, dim3(128), 0, stream, 1, ga);
        if (e != cudaSuccess)
            return GPU_FAIL(GPU_ELAUNCH, "quant qmv gather: %s", cudaGetErrorString(e));
    }
    const bool spread = NT == 1 && !XG && S == 1 && nbx <= sm_count() && qv_spread_on();
    const size_t lsmem = spread ? std::max(smem, QV_SMEM_SPREAD) : smem;
    if (qv_plan_log_on()) { /* each launch shape's plan once (per instantiation) */
        static std::mutex mu;
        static std::vector<long> seen;
        const long key = (((long)tiles * 64 + n) * 16 + S) * 16 + tpb;
        std::lock_guard<std::mutex> lock(mu);
        if (std::find(seen.begin(), seen.end(), key) == seen.end()) {
            seen.push_back(key);
            fprintf(stderr,
                    "qv plan: format %d, V %d, %d rows, k %d: %d tiles%s, split %d, %d per block: %d blocks x %d, "
                    "%zu bytes shared%s%s\n",
                    FMT, V, n, a.k, tiles, swiglu ? " (SwiGLU)" : "", S, tpb, nbx, S, lsmem,
                    spread ? " (one per SM)" : "", a.bal_hi ? " (balanced: the first blocks, the rest 2 fewer)" : "");
        }
    }
    const cudaError_t e =
        gpu_launch_ex(qv_kernel<T, FMT, NT, B, V, QW, NORM>(), dim3((unsigned)nbx, (unsigned)S), dim3(QW * 32), lsmem,
                      stream, S, a);
    if (e != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant qmv (%d tiles, %d blocks x %d splits, %zu bytes shared): %s", tiles,
                        nbx, S, smem, cudaGetErrorString(e));
    return GPU_OK;
}

template <typename T, int FMT, int NT>
int run_qv_nt(int b, const gpu_qweight *const *ws, void *const *outs, const void *const *biases, int n_parts,
              const void *x, int n, void *wsp, size_t wss, cudaStream_t stream, int swiglu, const gpu_qx *qx)
{
    /* the one-row variant (qmv_kernel's ONE). GPTQ folds there; measured (H200): the fold gains at one row and loses
     * from 4 (the fifth MMA), and loses where a group is under 4 chunks, so GPTQ takes it only for groups of 4 chunks
     * or more (and CHASKI_QFOLD unset); EXL2 at every one-row call (4-bit: XFOLD in both variants, the one-row one
     * flushing the even entries only) */
    bool one = n == 1 && (FMT == GPU_Q_EXL2 ? qv_one_on() : qfold_on());
    /* the split RMSNorm (qx->resid or ss_in): NORM's instantiations, one row and V = 6 up to QV_NORM_ROWS rows */
    const bool norm = qx && (qx->resid || qx->ss_in);
    for (int i = 0; i < n_parts && one && FMT == GPU_Q_GPTQ; i++)
        one = ws[i]->group_shift >= 2;
    /* EXL2 4-bit at 1-8 rows folds its zero point (qmv_kernel's XFOLD), for 32-row groups: one chunk each. Other
     * group sizes (not written by ExLlamaV2's converter) take the general kernel */
    if (FMT == GPU_Q_EXL2 && NT == 1 && b == 4)
        for (int i = 0; i < n_parts; i++)
            if (ws[i]->group_shift != 0)
                b = 0;
    /* at 9-16 rows, XFOLD (V = 2) with CHASKI_QV_XF16=1 for weights of QV_XF16_TILES column tiles or more and
     * k >= QV_XF16_K, =2 for all (benches, checks). Measured (PERFORMANCE.md, seventeenth and eighteenth runs):
     * against the slice variant it gained on every 70B weight (the 70B's batch 16 +10%); XG (with EXL2_SHFL) beats
     * it there by more (twenty-second run: batch 16 417 -> 580 tok/s), so by default XG takes them all */
    if constexpr (NT == 2 && FMT == GPU_Q_EXL2)
        if (b == 4 && qv_xf16_mode()) {
            int tiles = 0;
            bool one_chunk = true;
            for (int i = 0; i < n_parts; i++) {
                tiles += ws[i]->mp / 32;
                one_chunk = one_chunk && ws[i]->group_shift == 0;
            }
            if (one_chunk && ((tiles >= QV_XF16_TILES && ws[0]->k >= QV_XF16_K) || qv_xf16_mode() == 2))
                return launch_qv<T, FMT, NT, 4, 2>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
        }
    if constexpr (NT == 1)
        if (one && (b == 4 || b == 8)) {
            int rc;
            auto one_row = [&](auto norm_c) { /* norm_c: std::true_type for the NORM instantiations */
                constexpr bool NM = decltype(norm_c)::value;
                /* 4-bit (GPTQ: groups of 128 rows) in rounds (V = 5; CHASKI_QV_R1=0: not) */
                if (b == 4 && qv_r1_on()) {
                    const int r = launch_qv<T, FMT, NT, 4, 5, QV_WARPS, NM>(ws, outs, biases, n_parts, x, n, wsp, wss,
                                                                             stream, swiglu, qx);
                    if (r != GPU_UNSUPPORTED)
                        return r;
                }
                return b == 4 ? launch_qv<T, FMT, NT, 4, 1, QV_WARPS, NM>(ws, outs, biases, n_parts, x, n, wsp, wss,
                                                                           stream, swiglu, qx)
                              : launch_qv<T, FMT, NT, 8, 1, QV_WARPS, NM>(ws, outs, biases, n_parts, x, n, wsp, wss,
                                                                           stream, swiglu, qx);
            };
            rc = norm ? one_row(std::true_type{}) : one_row(std::false_type{});
            if (rc == GPU_OK && FMT == GPU_Q_GPTQ)
                g_fold_calls.fetch_add(1, std::memory_order_relaxed);
            return rc;
        }
    /* 4-bit at 9-16 rows (SwiGLU's pair too, unless qv_xg_swiglu16 says not: see there), and at
     * 1-8 from qv_xg_min rows for launches under QV_XG_TILES column tiles: the variant without the activation slice
     * (qmv_kernel's XG; CHASKI_QV_XG=0: off). Where it does not apply (activations neither in order and aligned nor
     * gathered) the others take the call */
    /* 4-bit at 2-4 rows in rounds (qmv_kernel's V = 6: GPTQ with groups of 128 rows folded, EXL2 XFOLD;
     * CHASKI_QV_RN=0: not; =2: at 2-8 rows); where it does not apply, the variants below. Measured (H200, 8B, call 4
     * of the twenty-eighth run, against CHASKI_QV_RN=0): batch 2 / 4 +8.0 / +6.8% (gptq4-g128 FP16), +7.3 / +7.8%
     * (exl2-4.0 BF16); batch 8 -13 / -4% (its 8-row activation slice against XG, which needs none) */
    if constexpr (NT == 1)
        if (b == 4 && n > 1 && (n <= QV_RN_MAX || qv_rn_mode() == 2) && qv_rn_mode()) {
            const int rc =
                norm ? (n <= QV_NORM_ROWS ? launch_qv<T, FMT, NT, 4, 6, QV_WARPS, true>(ws, outs, biases, n_parts, x,
                                                                                       n, wsp, wss, stream, swiglu, qx)
                                          : GPU_FAIL(GPU_UNSUPPORTED, "qlinear: the split RMSNorm over %d rows", n))
                     : launch_qv<T, FMT, NT, 4, 6>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
            if (rc != GPU_UNSUPPORTED)
                return rc;
        }
    int xg_tiles = 0;
    for (int i = 0; i < n_parts; i++)
        xg_tiles += ws[i]->mp / 32;
    if (b == 4 && qv_xg_on() &&
        (NT == 2 ? !swiglu || qv_xg_swiglu16() : n >= qv_xg_min(FMT) && xg_tiles < QV_XG_TILES)) {
        int rc = launch_qv<T, FMT, NT, 4, 3>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
        /* groups other than the rounds' (GPTQ 128 rows, EXL2 32), or chunks not whole rounds: XG's loop */
        if (rc == GPU_UNSUPPORTED && (FMT == GPU_Q_GPTQ || qv_xg_rounds<FMT, 3>()))
            rc = launch_qv<T, FMT, NT, 4, 4>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
        if (rc != GPU_UNSUPPORTED)
            return rc;
    }
    /* EXL2 4-bit at 9-16 rows without XFOLD, where XG did not take the call (SwiGLU's pair, CHASKI_QV_XG=0,
     * activations neither in order nor gathered): blocks of QV_WARPS_WIDE warps (CHASKI_QV_WIDE=0: QV_WARPS). Measured
     * (PERFORMANCE.md, nineteenth run): the 8B's EXL2 batches 12 and 16 +4-5%; GPTQ 4-bit FP16 lost 0-2% (presumably
     * as its g128 groups span 4 chunks: fewer instructions per chunk to hide) and XFOLD at 9-16 rows lost (the
     * smaller slice limit splits its weights further), so both keep QV_WARPS. Where the wide plan does not exist
     * (a slice over QV_SMEM_2W for SwiGLU's split 1, a ring that does not divide), the regular one takes the call:
     * launch_qv declines before it launches anything. */
    if constexpr (NT == 2 && FMT == GPU_Q_EXL2)
        if (b == 4 && qv_wide_on()) {
            const int rc = launch_qv<T, FMT, NT, 4, 0, QV_WARPS_WIDE>(ws, outs, biases, n_parts, x, n, wsp, wss,
                                                                      stream, swiglu, qx);
            if (rc != GPU_UNSUPPORTED)
                return rc;
        }
    if (b == 4)
        return launch_qv<T, FMT, NT, 4>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
    /* 8-bit at 9-16 rows (GPTQ 8-bit; EXL2 widened to 8, e.g. a 6-bit lm_head): XG (V = 4: no slice, two blocks
     * of 8 warps per SM, each lane's B fragments 8 bytes per token tile and chunk from L2), else the wide blocks of
     * the slice variant, one per SM, twice the warps to hide the loads. Measured (H200, PERFORMANCE.md forty-third
     * run), gptq8-g128 gate_up / down / qkv at 16 rows, % of the copy rate: slice, 8 warps 37.2 / 23.5 / 33.4; 16
     * warps 45.7 / 29.2 / 38.9; XG 58.3 / 61.5 / 47.2. The 8B's batch 12 / 16: gptq8-g128 FP16 +18% (wide) and +37%
     * more (XG); exl2-4.0 BF16 (its 8-bit head) +2-3% and +3-4% more */
    if constexpr (NT == 2)
        if (b == 8) {
            int rc = qv_xg8_on()
                         ? launch_qv<T, FMT, NT, 8, 4>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx)
                         : GPU_UNSUPPORTED;
            if (rc == GPU_UNSUPPORTED && qv_wide8_on())
                rc = launch_qv<T, FMT, NT, 8, 0, QV_WARPS_WIDE>(ws, outs, biases, n_parts, x, n, wsp, wss, stream,
                                                                swiglu, qx);
            if (rc != GPU_UNSUPPORTED)
                return rc;
        }
    if (b == 8)
        return launch_qv<T, FMT, NT, 8>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
    const int rc = launch_qv<T, FMT, NT, 0>(ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
    if (rc == GPU_OK)
        g_general_calls.fetch_add(1, std::memory_order_relaxed);
    return rc;
}
template <typename T, int FMT>
int run_qv_b(int b, const gpu_qweight *const *ws, void *const *outs, const void *const *biases, int n_parts,
             const void *x, int n, void *wsp, size_t wss, cudaStream_t stream, int swiglu, const gpu_qx *qx)
{
    return n <= 8 ? run_qv_nt<T, FMT, 1>(b, ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx)
                  : run_qv_nt<T, FMT, 2>(b, ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
}

template <typename T>
int run_qv(const gpu_qweight *const *ws, void *const *outs, const void *const *biases, int n_parts, const void *x,
           int n, void *wsp, size_t wss, cudaStream_t stream, int swiglu = 0, const gpu_qx *qx = nullptr)
{
    int b = ws[0]->chunk_bits; /* one width for all: the regular kernel of that width */
    for (int i = 1; i < n_parts; i++)
        if (ws[i]->chunk_bits != b)
            b = 0;
    if (b == 8 && !std::is_same<T, __half>::value && !qv_bf16_8_on())
        b = 0;
    if (qv_mode() != 1)
        b = 0;
    if (swiglu && !b)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: gate and up need the regular decode kernel");
    if (swiglu && b == 8 && !std::is_same<T, __half>::value) /* not yet checked (check_swiglu: gptq8 FP16 only) */
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: bf16 8-bit gate and up take matmul_many then swiglu");
    if (ws[0]->format == GPU_Q_GPTQ)
        return run_qv_b<T, GPU_Q_GPTQ>(b, ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
    return run_qv_b<T, GPU_Q_EXL2>(b, ws, outs, biases, n_parts, x, n, wsp, wss, stream, swiglu, qx);
}

template <typename T>
int run_mma(gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w, const void *bias, int n,
            int path, void *ws, size_t ws_size, cudaStream_t stream)
{
    T *o = static_cast<T *>(out);
    const T *xx = static_cast<const T *>(x), *bb = static_cast<const T *>(bias);
    if (path == GPU_QLINEAR_FUSED && qv_on()) {
        const gpu_qweight *one[1] = {w};
        void *o1[1] = {out};
        const void *b1[1] = {bias};
        const int rc = run_qv<T>(one, o1, b1, 1, x, n, ws, ws_size, stream);
        if (rc != GPU_UNSUPPORTED)
            return rc;
        /* more chunks than 8 cluster blocks' shared memory holds (an 8-bit k above ~24k at n = 16):
         * the first kernel, whose split-K goes through the workspace, takes it */
    }
    if (path == GPU_QLINEAR_FUSED) {
        float *part = static_cast<float *>(ws);
        const gpu_qweight *wp = w;
        gpu_qweight wg;
        if (!w->perm_identity && n >= MMA_PREGATHER) {
            size_t most = 0;
            for (int r = 1; r <= GPU_QLINEAR_MAX_FUSED_ROWS; r++) {
                const mma_plan p = plan_mma(w, r);
                if (p.S > 1)
                    most = std::max(most, (size_t)p.S * r * w->mp * sizeof(float));
            }
            T *xg = reinterpret_cast<T *>(static_cast<char *>(ws) + align256(std::max<size_t>(most, 256)));
            const int rc = launch_gather_rows<T>(xg, xx, w->perm, n, w->k, stream);
            if (rc != GPU_OK)
                return rc;
            xx = xg;
            wg = *w;
            wg.perm_identity = 1; /* the kernel reads xg in packed order */
            wp = &wg;
        }
        w = wp;
        if (w->format == GPU_Q_GPTQ)
            return n <= 8 ? launch_mma_fused<T, GPU_Q_GPTQ, 1>(w, o, xx, bb, n, part, stream)
                          : launch_mma_fused<T, GPU_Q_GPTQ, 2>(w, o, xx, bb, n, part, stream);
        return n <= 8 ? launch_mma_fused<T, GPU_Q_EXL2, 1>(w, o, xx, bb, n, part, stream)
                      : launch_mma_fused<T, GPU_Q_EXL2, 2>(w, o, xx, bb, n, part, stream);
    }
    const int k = w->k, m = w->m;
    T *W = static_cast<T *>(ws);
    size_t used = align256((size_t)m * k * sizeof(T));
    const int prow = w->n_chunks * 4;
    constexpr int cpb = QDQ_WARPS * QDQ_CPW; /* chunks per block */
    dim3 grid((unsigned)(w->mp / 32), (unsigned)((w->n_chunks + cpb - 1) / cpb));
    if (w->format == GPU_Q_GPTQ)
        qmma_dequant_kernel<T, GPU_Q_GPTQ><<<grid, QDQ_WARPS * 32, 0, stream>>>(
            W, k, m, w->n_groups, prow, reinterpret_cast<const uint4 *>(w->qweight), reinterpret_cast<const int2 *>(w->chunks),
            w->qzeros, reinterpret_cast<const __half *>(w->scales), nullptr, nullptr, w->v2 ? 0 : 1);
    else
        qmma_dequant_kernel<T, GPU_Q_EXL2><<<grid, QDQ_WARPS * 32, 0, stream>>>(
            W, k, m, w->n_groups, prow, reinterpret_cast<const uint4 *>(w->qweight), reinterpret_cast<const int2 *>(w->chunks),
            nullptr, nullptr, w->q_scale, reinterpret_cast<const __half *>(w->q_scale_max), 0);
    GPU_CHECK_LAUNCH("quant mma dequant");
    if (!w->perm_identity) {
        T *xg = reinterpret_cast<T *>(static_cast<char *>(ws) + used);
        used += align256((size_t)n * k * sizeof(T));
        const int rc = launch_gather_rows<T>(xg, xx, w->perm, n, k, stream);
        if (rc != GPU_OK)
            return rc;
        xx = xg;
    }
    return gpu_linear(blas, dt, out, xx, W, bias, n, k, m, GPU_LINEAR_BLASLT, static_cast<char *>(ws) + used,
                      ws_size - used, stream);
}

template <typename T, int NR>
int launch_fused(const gpu_qweight *w, T *out, const T *x, const T *bias, int n, float *xp, float *acc,
                 cudaStream_t stream)
{
    const int k = w->k, m = w->m;
    int threads = 256, blocks = (int)std::min<size_t>(((size_t)NR * k + threads - 1) / threads, 4096);
    gather_kernel<T><<<blocks, threads, 0, stream>>>(xp, x, w->perm, n, NR, k);
    GPU_CHECK_LAUNCH("quant gather");
    GPU_CHECK(cudaMemsetAsync(acc, 0, (size_t)n * m * sizeof(float), stream));
    const int gx = (m + QCOLS - 1) / QCOLS;
    int gy = std::max(1, (2 * sm_count() + gx - 1) / gx);
    gy = std::min(gy, std::max(1, w->n_units / (QBY * 4)));
    dim3 grid(gx, gy), block(QBX, QBY);
    if (w->format == GPU_Q_GPTQ)
        fused_kernel<NR, GPU_Q_GPTQ><<<grid, block, 0, stream>>>(
            acc, xp, n, k, m, reinterpret_cast<const int4 *>(w->units), w->n_units, w->qweight, w->qzeros,
            reinterpret_cast<const __half *>(w->scales), nullptr, nullptr, w->v2);
    else
        fused_kernel<NR, GPU_Q_EXL2><<<grid, block, 0, stream>>>(
            acc, xp, n, k, m, reinterpret_cast<const int4 *>(w->units), w->n_units, w->qweight, nullptr, nullptr,
            w->q_scale, reinterpret_cast<const __half *>(w->q_scale_max), 0);
    GPU_CHECK_LAUNCH("quant fused");
    blocks = (int)std::min<size_t>(((size_t)n * m + threads - 1) / threads, 4096);
    finalize_kernel<T><<<blocks, threads, 0, stream>>>(out, acc, bias, n, m);
    GPU_CHECK_LAUNCH("quant finalize");
    return GPU_OK;
}

template <typename T>
int run_units(gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w, const void *bias, int n,
        int path, void *ws, size_t ws_size, cudaStream_t stream)
{
    const int k = w->k, m = w->m;
    if (path == GPU_QLINEAR_FUSED) {
        float *xp = static_cast<float *>(ws);
        int nr = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : n <= 8 ? 8 : 16;
        float *acc = reinterpret_cast<float *>(static_cast<char *>(ws) + align256((size_t)nr * k * sizeof(float)));
        T *o = static_cast<T *>(out);
        const T *xx = static_cast<const T *>(x), *bb = static_cast<const T *>(bias);
        switch (nr) {
        case 1: return launch_fused<T, 1>(w, o, xx, bb, n, xp, acc, stream);
        case 2: return launch_fused<T, 2>(w, o, xx, bb, n, xp, acc, stream);
        case 4: return launch_fused<T, 4>(w, o, xx, bb, n, xp, acc, stream);
        case 8: return launch_fused<T, 8>(w, o, xx, bb, n, xp, acc, stream);
        default: return launch_fused<T, 16>(w, o, xx, bb, n, xp, acc, stream);
        }
    }
    T *W = static_cast<T *>(ws);
    size_t used = align256((size_t)m * k * sizeof(T));
    dim3 grid((unsigned)std::min((m / 4 + 127) / 128, 64), (unsigned)w->n_units);
    if (w->format == GPU_Q_GPTQ)
        dequant_kernel<T, GPU_Q_GPTQ><<<grid, 128, 0, stream>>>(
            W, k, m, reinterpret_cast<const int4 *>(w->units), w->qweight, w->qzeros,
            reinterpret_cast<const __half *>(w->scales), nullptr, nullptr, w->v2);
    else
        dequant_kernel<T, GPU_Q_EXL2><<<grid, 128, 0, stream>>>(
            W, k, m, reinterpret_cast<const int4 *>(w->units), w->qweight, nullptr, nullptr, w->q_scale,
            reinterpret_cast<const __half *>(w->q_scale_max), 0);
    GPU_CHECK_LAUNCH("quant dequant");
    const void *xx = x;
    if (!w->perm_identity) { /* W's rows are in packed order: the activations follow */
        T *xg = reinterpret_cast<T *>(static_cast<char *>(ws) + used);
        used += align256((size_t)n * k * sizeof(T));
        const int rc = launch_gather_rows<T>(xg, static_cast<const T *>(x), w->perm, n, k, stream);
        if (rc != GPU_OK)
            return rc;
        xx = xg;
    }
    return gpu_linear(blas, dt, out, xx, W, bias, n, k, m, GPU_LINEAR_BLASLT, static_cast<char *>(ws) + used,
                      ws_size - used, stream);
}


/* ---- upload ---- */

template <typename X> int dev_copy(X **dst, const X *src, size_t n, size_t *bytes)
{
    *dst = nullptr;
    if (cudaMalloc(reinterpret_cast<void **>(dst), std::max<size_t>(16, n * sizeof(X))) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant upload: cudaMalloc of %zu bytes failed", n * sizeof(X));
    if (n && cudaMemcpy(*dst, src, n * sizeof(X), cudaMemcpyHostToDevice) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant upload: cudaMemcpy of %zu bytes failed", n * sizeof(X));
    if (bytes)
        *bytes += n * sizeof(X);
    return GPU_OK;
}

/* Interleaved position of row j (0 .. 32/bits - 1) inside a word of the MMA layout (see above). */
inline int mma_pos(int bits, int j)
{
    return bits == 4 ? ((j & 1) ? 4 + (j >> 1) : (j >> 1)) : (j & 1) * 2 + (j >> 1);
}

/* Rows of `words` [rows, m] (32 / bits values per word, row j at bits j * bits) re-laid as [rows, mp]
 * with interleaved values and zero padding columns. */
std::vector<uint32_t> mma_words(const uint32_t *words, size_t rows, int m, int mp, int bits)
{
    std::vector<uint32_t> out(rows * (size_t)mp, 0);
    const int per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < m; c++) {
            const uint32_t v = words[r * m + c];
            uint32_t o = 0;
            for (int j = 0; j < per; j++)
                o |= ((v >> (j * bits)) & mask) << (mma_pos(bits, j) * bits);
            out[r * mp + c] = o;
        }
    return out;
}

/* a [rows, cols] padded to pcols columns and stored tile-major: the tw columns of each tile (32 weight
 * columns), all rows, contiguous: out[(tile * rows + r) * tw + j] = a[r, tile * tw + j] (0 in the padding).
 * A decode block reads its tile's weights, zero points and scales as contiguous streams. */
template <typename X> std::vector<X> tile_major(const X *a, size_t rows, size_t cols, size_t pcols, size_t tw)
{
    std::vector<X> out(rows * pcols, 0);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            out[((c / tw) * rows + r) * tw + c % tw] = a[r * cols + c];
    return out;
}

/* The tile-major weight words (tile_major, 8 uint4 per packed row) re-laid in mma_word's lane order: in each chunk
 * of 4 packed rows (128 words; the tensor-core layout's packed rows are a multiple of 4), the word of packed row t,
 * columns 4 g.. (uint4 8 t + g) to uint4 4 g + t. */
void lane_order(std::vector<uint32_t> &qwm)
{
    uint32_t tmp[128];
    for (size_t base = 0; base + 128 <= qwm.size(); base += 128) {
        for (int t = 0; t < 4; t++)
            for (int g = 0; g < 8; g++)
                std::copy_n(&qwm[base + 4 * (8 * t + g)], 4, &tmp[4 * (4 * g + t)]);
        std::copy_n(tmp, 128, &qwm[base]);
    }
}

/* chunk_bits / group_shift of a chunk table (see gpu_qweight): regular when every chunk has one width b,
 * chunk c starts at row c * 128 / b and its group is c >> s for one s (groups of 2^s chunks, or one group). */
void regular_chunks(gpu_qweight *w, const std::vector<int32_t> &chunks)
{
    w->chunk_bits = 0;
    w->group_shift = 0;
    const int nc = (int)(chunks.size() / 2);
    if (nc == 0)
        return;
    const int b = chunks[1] >> 24;
    if (b != 4 && b != 8)
        return;
    int in_first = 0; /* chunks of group 0 */
    while (in_first < nc && (chunks[2 * in_first + 1] & 0xFFFFFF) == 0)
        in_first++;
    int s = 30;
    if (in_first < nc) {
        if (in_first & (in_first - 1))
            return;
        for (s = 0; (1 << s) < in_first; s++) {
        }
    }
    for (int c = 0; c < nc; c++)
        if (chunks[2 * c] != c * (128 / b) || chunks[2 * c + 1] != ((c >> s) | (b << 24)))
            return;
    w->chunk_bits = b;
    w->group_shift = s;
}

/* perm[i] == i everywhere: the activations need no gather */
int identity_perm(const std::vector<int32_t> &perm)
{
    for (size_t i = 0; i < perm.size(); i++)
        if (perm[i] != (int32_t)i)
            return 0;
    return 1;
}

/* perm_label of a permutation that is not the identity: the label of an equal one among the last PL_KEEP
 * uploaded (compared in full), else a new label. Process-wide; uploads may come from several threads. */
constexpr int PL_KEEP = 4;
std::mutex g_pl_mu;
std::vector<int32_t> g_pl_perm[PL_KEEP];
uint64_t g_pl_label[PL_KEEP], g_pl_next = 1; /* 64 bits: never wraps */
int g_pl_at = 0;
uint64_t perm_label(const std::vector<int32_t> &perm)
{
    std::lock_guard<std::mutex> lock(g_pl_mu);
    for (int i = 0; i < PL_KEEP; i++)
        if (g_pl_label[i] && g_pl_perm[i] == perm)
            return g_pl_label[i];
    const uint64_t label = g_pl_next++;
    try {
        g_pl_perm[g_pl_at] = perm;
    } catch (const std::bad_alloc &) {
        g_pl_label[g_pl_at] = 0;
        return 0; /* not remembered: the weight is simply not paired */
    }
    g_pl_label[g_pl_at] = label;
    g_pl_at = (g_pl_at + 1) % PL_KEEP;
    return label;
}

/* Common tail of the MMA uploads: chunk table, permutation, arrival counters. */
int mma_finish(gpu_qweight *out, const std::vector<int32_t> &chunks, const std::vector<int32_t> &perm, size_t *bytes)
{
    int rc;
    out->layout = GPU_QLAYOUT_MMA;
    out->n_chunks = (int)(chunks.size() / 2);
    regular_chunks(out, chunks);
    out->perm_identity = identity_perm(perm);
    out->perm_label = out->perm_identity ? 0 : perm_label(perm);
    if ((rc = dev_copy(&out->chunks, chunks.data(), chunks.size(), bytes)) ||
        (rc = dev_copy(&out->perm, perm.data(), perm.size(), out->perm_identity ? nullptr : bytes)))
        return rc;
    if (!out->perm_identity) { /* pos: read by the kernels that write this weight's activations (gpu_qx), not by its
                                * own: not in bytes, as perm is not read by the decode kernel then */
        std::vector<int32_t> pos(perm.size());
        for (size_t i = 0; i < perm.size(); i++)
            pos[(size_t)perm[i]] = (int32_t)i; /* perm: a permutation (checked by the caller) */
        if ((rc = dev_copy(&out->pos, pos.data(), pos.size(), nullptr)))
            return rc;
    }
    std::vector<uint32_t> zeros((size_t)out->mp / 32, 0);
    return dev_copy(&out->tile_sync, zeros.data(), zeros.size(), nullptr);
}

} // namespace

extern "C" unsigned long long gpu_qlinear_fold_calls(void)
{
    return g_fold_calls.load(std::memory_order_relaxed);
}

extern "C" unsigned long long gpu_qlinear_general_calls(void)
{
    return g_general_calls.load(std::memory_order_relaxed);
}

extern "C" void gpu_qlinear_qmv(int on)
{
    g_qv = std::min(2, std::max(0, on));
}

extern "C" void gpu_qlinear_qv_plan(int split, int tpb)
{
    g_qv_split_force = split < 0 ? -1 : std::min(QV_MAX_SPLIT, split);
    g_qv_tpb_force = tpb < 0 ? -1 : std::min(QV_MAX_TPB, tpb);
}

extern "C" void gpu_qlinear_qv_swbal(int on)
{
    g_qv_swbal_force = on < 0 ? -1 : on ? 1 : 0;
}

extern "C" long gpu_qlinear_qv_swbal_calls(void)
{
    return g_swbal_calls.load(std::memory_order_relaxed);
}

extern "C" void gpu_qlinear_qv_pregather(int n)
{
    g_qv_pregather_force = n < 1 ? -1 : n;
}

extern "C" void gpu_qweight_allow_mma(int allow)
{
    g_allow_mma = allow != 0;
}

extern "C" void gpu_qweight_free(gpu_qweight *w)
{
    if (!w)
        return;
    void *p[] = {w->qweight, w->qzeros, w->scales, w->q_scale, w->q_scale_max, w->perm, w->pos, w->units, w->chunks,
                 w->tile_sync};
    for (void *q : p)
        if (q)
            cudaFree(q);
    memset(w, 0, sizeof *w);
}

/* A device copy of src's arrays (sizes from its layout; the EXL2 units layout's q_weight from bytes). */
template <typename X> static int clone_array(X **dst, const X *src, size_t n, size_t *bytes, bool count)
{
    *dst = nullptr;
    if (!src)
        return GPU_OK;
    if (cudaMalloc(reinterpret_cast<void **>(dst), std::max<size_t>(16, n * sizeof(X))) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant clone: cudaMalloc of %zu bytes failed", n * sizeof(X));
    if (n && cudaMemcpy(*dst, src, n * sizeof(X), cudaMemcpyDeviceToDevice) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant clone: cudaMemcpy of %zu bytes failed", n * sizeof(X));
    if (count)
        *bytes += n * sizeof(X);
    return GPU_OK;
}

extern "C" int gpu_qweight_clone(gpu_qweight *dst, const gpu_qweight *src)
{
    *dst = *src;
    dst->qweight = dst->qzeros = dst->q_scale = nullptr;
    dst->scales = dst->q_scale_max = nullptr;
    dst->perm = dst->pos = dst->units = dst->chunks = nullptr;
    dst->tile_sync = nullptr;
    const size_t k = (size_t)src->k, G = (size_t)src->n_groups;
    const bool mma = src->layout == GPU_QLAYOUT_MMA;
    const size_t cols = mma ? (size_t)src->mp : (size_t)src->m;
    size_t bytes = 0, w_words;
    int rc = GPU_OK;
    if (src->format == GPU_Q_GPTQ) {
        const size_t per = 32 / (size_t)src->bits;
        w_words = k / per * cols;
        if ((rc = clone_array(&dst->qzeros, src->qzeros, G * (cols / per), &bytes, true)) == GPU_OK)
            rc = clone_array(&dst->scales, src->scales, G * cols, &bytes, true);
    } else {
        if ((rc = clone_array(&dst->q_scale, src->q_scale, G * (cols / 8), &bytes, true)) == GPU_OK)
            rc = clone_array(&dst->q_scale_max, src->q_scale_max, G, &bytes, true);
        w_words = mma ? (size_t)src->n_chunks * 4 * cols : 0;
    }
    const bool perm_counted = !(mma && src->perm_identity);
    if (rc == GPU_OK && mma)
        rc = clone_array(&dst->chunks, src->chunks, (size_t)src->n_chunks * 2, &bytes, true);
    if (rc == GPU_OK)
        rc = clone_array(&dst->perm, src->perm, k, &bytes, perm_counted);
    if (rc == GPU_OK)
        rc = clone_array(&dst->pos, src->pos, k, &bytes, false);
    if (rc == GPU_OK && !mma)
        rc = clone_array(&dst->units, src->units, (size_t)src->n_units * 4, &bytes, true);
    if (rc == GPU_OK && mma)
        rc = clone_array(&dst->tile_sync, src->tile_sync, cols / 32, &bytes, false);
    if (rc == GPU_OK && src->format == GPU_Q_EXL2 && !mma) /* q_weight: what the other arrays leave of bytes */
        w_words = (src->bytes - bytes) / 4;
    if (rc == GPU_OK)
        rc = clone_array(&dst->qweight, src->qweight, w_words, &bytes, true);
    if (rc == GPU_OK && bytes != src->bytes)
        rc = GPU_FAIL(GPU_UNSUPPORTED, "quant clone: %zu bytes copied of %zu", bytes, src->bytes);
    if (rc != GPU_OK)
        gpu_qweight_free(dst);
    return rc;
}

extern "C" int gpu_qweight_upload_gptq(gpu_qweight *out, const uint32_t *qweight, const uint32_t *qzeros,
                                       const uint16_t *scales, const int32_t *g_idx, int n_groups, int bits,
                                       int group_size, int v2, int k, int m)
{
    memset(out, 0, sizeof *out);
    if ((bits != 4 && bits != 8) || k <= 0 || m <= 0 || m % 8 || n_groups <= 0 || n_groups >= (1 << 23))
        return GPU_FAIL(GPU_UNSUPPORTED, "gptq upload: bits %d, k %d, m %d, groups %d", bits, k, m, n_groups);
    const int per = 32 / bits, gs = group_size == -1 ? k : group_size;
    if (k % per || gs <= 0)
        return GPU_FAIL(GPU_UNSUPPORTED, "gptq upload: k %d not a multiple of %d", k, per);
    std::vector<int32_t> grp(k), perm(k);
    for (int i = 0; i < k; i++) {
        grp[i] = g_idx ? g_idx[i] : i / gs;
        if (grp[i] < 0 || grp[i] >= n_groups)
            return GPU_FAIL(GPU_UNSUPPORTED, "gptq upload: g_idx[%d] = %d outside [0, %d)", i, grp[i], n_groups);
        perm[i] = i;
    }
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return grp[a] < grp[b]; });
    /* repack the rows in group order; every packed row must lie in one group */
    const int prow = k / per;
    std::vector<uint32_t> qw((size_t)prow * m, 0);
    std::vector<int32_t> units((size_t)prow * 4);
    const uint32_t mask = (1u << bits) - 1;
    bool mma = g_allow_mma && prow % 4 == 0;
    for (int p = 0; p < prow; p++) {
        const int g = grp[perm[(size_t)p * per]];
        for (int j = 0; j < per; j++) {
            const int src = perm[(size_t)p * per + j];
            if (grp[src] != g)
                return GPU_FAIL(GPU_UNSUPPORTED, "gptq upload: a group of %d rows is not a multiple of %d", gs, per);
            const uint32_t *srow = qweight + (size_t)(src / per) * m;
            const int ssh = (src % per) * bits;
            uint32_t *drow = qw.data() + (size_t)p * m;
            for (int c = 0; c < m; c++)
                drow[c] |= ((srow[c] >> ssh) & mask) << (j * bits);
        }
        if (p % 4 && units[4 * (p - 1) + 3] >> 8 != g)
            mma = false; /* a chunk of 4 packed rows spans two groups */
        units[4 * p] = bits;
        units[4 * p + 1] = p;
        units[4 * p + 2] = p * per;
        units[4 * p + 3] = per | (g << 8);
    }
    out->format = GPU_Q_GPTQ;
    out->k = k;
    out->m = m;
    out->bits = bits;
    out->v2 = v2;
    out->n_groups = n_groups;
    size_t bytes = 0;
    int rc;
    if (mma) {
        const int mp = (m + 31) / 32 * 32;
        out->mp = mp;
        std::vector<int32_t> chunks((size_t)prow / 2);
        for (int c = 0; c < prow / 4; c++) {
            chunks[2 * c] = c * 4 * per;
            chunks[2 * c + 1] = (units[4 * (4 * c) + 3] >> 8) | (bits << 24);
        }
        const std::vector<uint32_t> words = mma_words(qw.data(), (size_t)prow, m, mp, bits);
        std::vector<uint32_t> qwm = tile_major(words.data(), (size_t)prow, (size_t)mp, (size_t)mp, 32);
        lane_order(qwm);
        std::vector<uint32_t> qzp =
            tile_major(qzeros, (size_t)n_groups, (size_t)(m / per), (size_t)(mp / per), (size_t)(32 / per));
        std::vector<uint16_t> scp = tile_major(scales, (size_t)n_groups, (size_t)m, (size_t)mp, 32);
        if ((rc = dev_copy(&out->qweight, qwm.data(), qwm.size(), &bytes)) ||
            (rc = dev_copy(&out->qzeros, qzp.data(), qzp.size(), &bytes)) ||
            (rc = dev_copy(&out->scales, scp.data(), scp.size(), &bytes)) ||
            (rc = mma_finish(out, chunks, perm, &bytes))) {
            gpu_qweight_free(out);
            return rc;
        }
        out->bytes = bytes;
        return GPU_OK;
    }
    out->n_units = prow;
    out->perm_identity = identity_perm(perm); /* the dequant path then gathers nothing */
    if ((rc = dev_copy(&out->qweight, qw.data(), qw.size(), &bytes)) ||
        (rc = dev_copy(&out->qzeros, qzeros, (size_t)n_groups * (m / per), &bytes)) ||
        (rc = dev_copy(&out->scales, scales, (size_t)n_groups * m, &bytes)) ||
        (rc = dev_copy(&out->perm, perm.data(), perm.size(), &bytes)) ||
        (rc = dev_copy(&out->units, units.data(), units.size(), &bytes))) {
        gpu_qweight_free(out);
        return rc;
    }
    out->bytes = bytes;
    return GPU_OK;
}

extern "C" int gpu_qweight_upload_exl2(gpu_qweight *out, const int32_t *q_invperm, const int16_t *q_groups,
                                       int n_groups, const uint32_t *q_weight, int packed_rows,
                                       const uint32_t *q_scale, const uint16_t *q_scale_max, int k, int m)
{
    memset(out, 0, sizeof *out);
    if (k <= 0 || m <= 0 || m % 8 || n_groups <= 0 || packed_rows <= 0)
        return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: k %d, m %d, groups %d", k, m, n_groups);
    std::vector<int32_t> perm(k, -1), units, chunks;
    for (int i = 0; i < k; i++) {
        const int p = q_invperm[i];
        if (p < 0 || p >= k || perm[p] != -1)
            return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: q_invperm is not a permutation (at %d)", i);
        perm[p] = i;
    }
    int row = 0;
    bool mma = g_allow_mma != 0;
    for (int g = 0; g < n_groups; g++) {
        const int b = q_groups[2 * g], r0 = q_groups[2 * g + 1];
        const int r1 = g + 1 < n_groups ? q_groups[2 * g + 3] : packed_rows;
        if (!(b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8) || r0 < 0 || r1 <= r0 || r1 > packed_rows ||
            ((r1 - r0) * 32) % b)
            return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: group %d (%d bits, rows %d..%d)", g, b, r0, r1);
        if (g == 0 && r0 != 0)
            mma = false;
        const int rows = (r1 - r0) * 32 / b;
        for (int at = 0; at < rows; at += 32) {
            const int ur = std::min(32, rows - at);
            if ((ur * b) % 32)
                return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: group %d tail of %d rows", g, ur);
            units.insert(units.end(), {b, r0 + at / 32 * b, row + at, ur | (g << 8)});
        }
        if ((b != 4 && b != 8) || (r1 - r0) % 4 || r0 % 4)
            mma = false;
        else
            for (int c = 0; c < (r1 - r0) / 4; c++)
                chunks.insert(chunks.end(), {row + c * 4 * (32 / b), g | (b << 24)});
        row += rows;
    }
    if (row != k)
        return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: groups hold %d rows, k %d", row, k);
    if (mma && (int)chunks.size() / 2 * 4 != packed_rows)
        mma = false; /* packed rows outside the groups, or groups out of order */
    out->format = GPU_Q_EXL2;
    out->k = k;
    out->m = m;
    out->n_groups = n_groups;
    size_t bytes = 0;
    int rc;
    if (mma) {
        const int mp = (m + 31) / 32 * 32;
        out->mp = mp;
        std::vector<uint32_t> words((size_t)packed_rows * mp, 0);
        for (int g = 0; g < n_groups; g++) {
            const int b = q_groups[2 * g], r0 = q_groups[2 * g + 1];
            const int r1 = g + 1 < n_groups ? q_groups[2 * g + 3] : packed_rows;
            std::vector<uint32_t> part = mma_words(q_weight + (size_t)r0 * m, (size_t)(r1 - r0), m, mp, b);
            std::copy(part.begin(), part.end(), words.begin() + (size_t)r0 * mp);
        }
        std::vector<uint32_t> qwm = tile_major(words.data(), (size_t)packed_rows, (size_t)mp, (size_t)mp, 32);
        lane_order(qwm);
        std::vector<uint32_t> qsp = tile_major(q_scale, (size_t)n_groups, (size_t)(m / 8), (size_t)(mp / 8), 4);
        if ((rc = dev_copy(&out->qweight, qwm.data(), qwm.size(), &bytes)) ||
            (rc = dev_copy(&out->q_scale, qsp.data(), qsp.size(), &bytes)) ||
            (rc = dev_copy(&out->q_scale_max, q_scale_max, (size_t)n_groups, &bytes)) ||
            (rc = mma_finish(out, chunks, perm, &bytes))) {
            gpu_qweight_free(out);
            return rc;
        }
        out->bytes = bytes;
        return GPU_OK;
    }
    out->n_units = (int)(units.size() / 4);
    out->perm_identity = identity_perm(perm);
    if ((rc = dev_copy(&out->qweight, q_weight, (size_t)packed_rows * m, &bytes)) ||
        (rc = dev_copy(&out->q_scale, q_scale, (size_t)n_groups * (m / 8), &bytes)) ||
        (rc = dev_copy(&out->q_scale_max, q_scale_max, (size_t)n_groups, &bytes)) ||
        (rc = dev_copy(&out->perm, perm.data(), perm.size(), &bytes)) ||
        (rc = dev_copy(&out->units, units.data(), units.size(), &bytes))) {
        gpu_qweight_free(out);
        return rc;
    }
    out->bytes = bytes;
    return GPU_OK;
}

extern "C" size_t gpu_qlinear_workspace_size(const gpu_qweight *w, int n, int path)
{
    if (path == GPU_QLINEAR_AUTO)
        path = n <= GPU_QLINEAR_MAX_FUSED_ROWS ? GPU_QLINEAR_FUSED : GPU_QLINEAR_DEQUANT;
    if (w->layout == GPU_QLAYOUT_MMA) {
        if (path == GPU_QLINEAR_FUSED)
            return std::max(mma_partial_bytes(w), qv_gather_bytes(w->k));
        return align256((size_t)w->m * w->k * 2) + (w->perm_identity ? 0 : align256((size_t)n * w->k * 2)) +
               ((size_t)32 << 20);
    }
    if (path == GPU_QLINEAR_FUSED)
        return align256((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * w->k * sizeof(float)) +
               (size_t)GPU_QLINEAR_MAX_FUSED_ROWS * w->m * sizeof(float);
    return align256((size_t)w->m * w->k * 2) + (w->perm_identity ? 0 : align256((size_t)n * w->k * 2)) +
           ((size_t)32 << 20);
}

extern "C" int gpu_qlinear(gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w,
                           const void *bias, int n, int path, void *workspace, size_t workspace_size,
                           cudaStream_t stream)
{
    if (!w || (w->format != GPU_Q_GPTQ && w->format != GPU_Q_EXL2) || n <= 0 || w->m % 8)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: no weight, format or n %d", n);
    if (path == GPU_QLINEAR_AUTO)
        path = n <= GPU_QLINEAR_MAX_FUSED_ROWS ? GPU_QLINEAR_FUSED : GPU_QLINEAR_DEQUANT;
    if (path == GPU_QLINEAR_FUSED && n > GPU_QLINEAR_MAX_FUSED_ROWS)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: fused path for %d rows (at most %d)", n,
                        GPU_QLINEAR_MAX_FUSED_ROWS);
    if (dt != GPU_F16 && dt != GPU_BF16)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: dtype %d", (int)dt);
    if (w->layout == GPU_QLAYOUT_MMA) {
        if (path == GPU_QLINEAR_DEQUANT && (w->n_chunks + QDQ_WARPS * QDQ_CPW - 1) / (QDQ_WARPS * QDQ_CPW) > 65535)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: %d packed rows", w->n_chunks * 4);
        size_t need = path == GPU_QLINEAR_FUSED ? std::max(mma_partial_bytes(w), qv_gather_bytes(w->k))
                                                : align256((size_t)w->m * w->k * 2) +
                                                      (w->perm_identity ? 0 : align256((size_t)n * w->k * 2));
        if (workspace_size < need)
            return GPU_FAIL(GPU_EWORKSPACE, "qlinear: workspace %zu bytes, needs %zu", workspace_size, need);
        if (dt == GPU_F16)
            return run_mma<__half>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
        return run_mma<__nv_bfloat16>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
    }
    if (path == GPU_QLINEAR_DEQUANT && w->n_units > 65535)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: %d units", w->n_units);
    size_t need = path == GPU_QLINEAR_FUSED
                      ? gpu_qlinear_workspace_size(w, n, path)
                      : align256((size_t)w->m * w->k * 2) + (w->perm_identity ? 0 : align256((size_t)n * w->k * 2));
    if (workspace_size < need)
        return GPU_FAIL(GPU_EWORKSPACE, "qlinear: workspace %zu bytes, needs %zu", workspace_size, need);
    if (dt == GPU_F16)
        return run_units<__half>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
    return run_units<__nv_bfloat16>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
}

extern "C" int gpu_qlinear_multi(gpu_dtype dt, void *const *outs, const void *x, const gpu_qweight *const *ws,
                                 const void *const *biases, int n_w, int n, void *workspace, size_t workspace_size,
                                 cudaStream_t stream)
{
    return gpu_qlinear_multi_x(dt, outs, x, ws, biases, n_w, n, nullptr, workspace, workspace_size, stream);
}

extern "C" int gpu_qlinear_multi_x(gpu_dtype dt, void *const *outs, const void *x, const gpu_qweight *const *ws,
                                   const void *const *biases, int n_w, int n, const gpu_qx *qx, void *workspace,
                                   size_t workspace_size, cudaStream_t stream)
{
    if (qx && qx->xout && !qx->resid)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: xout is for gpu_qlinear_swiglu_x and gpu_qx.resid");
    if (n_w < 1 || n_w > QV_MAX_PARTS || n < 1 || n > GPU_QLINEAR_MAX_FUSED_ROWS || !qv_on())
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: %d weights, %d rows", n_w, n);
    if (dt != GPU_F16 && dt != GPU_BF16)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: dtype %d", (int)dt);
    for (int i = 0; i < n_w; i++)
        if (!ws[i] || ws[i]->layout != GPU_QLAYOUT_MMA || ws[i]->format != ws[0]->format)
            return GPU_FAIL(GPU_UNSUPPORTED, "qlinear multi: weight %d is not in the tensor-core layout", i);
    if (dt == GPU_F16)
        return run_qv<__half>(ws, outs, biases, n_w, x, n, workspace, workspace_size, stream, 0, qx);
    return run_qv<__nv_bfloat16>(ws, outs, biases, n_w, x, n, workspace, workspace_size, stream, 0, qx);
}

extern "C" int gpu_qlinear_swiglu(gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate,
                                  const gpu_qweight *w_up, const void *b_gate, const void *b_up, int n,
                                  void *workspace, size_t workspace_size, cudaStream_t stream)
{
    return gpu_qlinear_swiglu_x(dt, out, x, w_gate, w_up, b_gate, b_up, n, nullptr, workspace, workspace_size, stream);
}

extern "C" int gpu_qlinear_swiglu_x(gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate,
                                    const gpu_qweight *w_up, const void *b_gate, const void *b_up, int n,
                                    const gpu_qx *qx, void *workspace, size_t workspace_size, cudaStream_t stream)
{
    if (n < 1 || n > GPU_QLINEAR_MAX_FUSED_ROWS || !qv_on() || (dt != GPU_F16 && dt != GPU_BF16) || !w_gate ||
        !w_up || w_gate->layout != GPU_QLAYOUT_MMA || w_up->layout != GPU_QLAYOUT_MMA ||
        w_gate->format != w_up->format || w_gate->k != w_up->k)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear swiglu: %d rows, or weights the decode kernel cannot pair", n);
    const gpu_qweight *ws[2] = {w_gate, w_up};
    void *outs[2] = {out, out};
    const void *biases[2] = {b_gate, b_up};
    if (dt == GPU_F16)
        return run_qv<__half>(ws, outs, biases, 2, x, n, workspace, workspace_size, stream, 1, qx);
    return run_qv<__nv_bfloat16>(ws, outs, biases, 2, x, n, workspace, workspace_size, stream, 1, qx);
}
