/* kernels/cuda/quant_linear.cu: quantized linear layers, GPTQ 4/8-bit and EXL2 2..8-bit (quant_ops.h).
 *
 * Invariants (established by the upload functions, on the host):
 * - the weight is cut into "units" of at most 32 consecutive rows in packed order, each in one group and
 *   one bit width, occupying rows * bits / 32 whole packed 32-bit rows: GPTQ one packed row (8 or 4
 *   rows), EXL2 32 rows (or a 16/8/4-row tail of a group);
 * - perm[i] is the input row of packed-order row i (identity without act-order), so the activations
 *   are gathered once per call and the weight stream is read in file order, 16 bytes (4 columns) per load;
 * - m % 8 == 0, so every 4-column quad lies in one qzeros / q_scale word and loads are aligned.
 * Dequantization: GPTQ w = (q - z) * s (z = stored + 1 for gptq, stored for gptq_v2);
 *                 EXL2 w = (q - 2^(b-1)) * (code + 1)^2 * scale_max / 256. */
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#include "common.cuh"
#include "quant_ops.h"

namespace {

constexpr int QBX = 32;      /* threads along m; each owns 4 columns */
constexpr int QBY = 4;       /* k-slices per block */
constexpr int QCOLS = QBX * 4;

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
        z[j] = (float)(int)(((zw >> (((c % PER) + j) * B)) & MASK) + (v2 ? 0u : 1u));
    }
#pragma unroll
    for (int r = 0; r < PER; r++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            emit(r, j, ((float)((lane_of(q, j) >> (r * B)) & MASK) - z[j]) * s[j]);
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
    const float off = (float)(1 << (B - 1));
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
                emit(r, j, ((float)(v & MASK) - off) * s[j]);
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

/* W[m, k] (original row order) in T: one block row per unit, threads over column quads. */
template <typename T, int FMT>
__global__ void dequant_kernel(T *__restrict__ W, int k, int m, const int4 *__restrict__ units,
                               const int32_t *__restrict__ perm, const uint32_t *__restrict__ qw,
                               const uint32_t *__restrict__ qz, const __half *__restrict__ sc,
                               const uint32_t *__restrict__ qs, const __half *__restrict__ qsm, int v2)
{
    const int4 U = __ldg(units + blockIdx.y);
    for (int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4; c < m; c += gridDim.x * blockDim.x * 4) {
        any_unit<FMT>(U, c, m, qw, qz, sc, qs, qsm, v2, [&](int r, int j, float w) {
            W[(size_t)(c + j) * k + perm[U.z + r]] = dt_traits<T>::from_f(w);
        });
    }
}

int g_sms = 0;

int sm_count()
{
    if (!g_sms) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, dev) !=
                                                      cudaSuccess)
            g_sms = 108;
    }
    return g_sms;
}

size_t align256(size_t b)
{
    return (b + 255) & ~(size_t)255;
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
int run(gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w, const void *bias, int n,
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
    size_t wbytes = align256((size_t)m * k * sizeof(T));
    dim3 grid((unsigned)std::min((m / 4 + 127) / 128, 64), (unsigned)w->n_units);
    if (w->format == GPU_Q_GPTQ)
        dequant_kernel<T, GPU_Q_GPTQ><<<grid, 128, 0, stream>>>(
            W, k, m, reinterpret_cast<const int4 *>(w->units), w->perm, w->qweight, w->qzeros,
            reinterpret_cast<const __half *>(w->scales), nullptr, nullptr, w->v2);
    else
        dequant_kernel<T, GPU_Q_EXL2><<<grid, 128, 0, stream>>>(
            W, k, m, reinterpret_cast<const int4 *>(w->units), w->perm, w->qweight, nullptr, nullptr, w->q_scale,
            reinterpret_cast<const __half *>(w->q_scale_max), 0);
    GPU_CHECK_LAUNCH("quant dequant");
    return gpu_linear(blas, dt, out, x, W, bias, n, k, m, GPU_LINEAR_BLASLT, static_cast<char *>(ws) + wbytes,
                      ws_size - wbytes, stream);
}

/* ---- upload ---- */

template <typename X> int dev_copy(X **dst, const X *src, size_t n, size_t *bytes)
{
    *dst = nullptr;
    if (cudaMalloc(reinterpret_cast<void **>(dst), std::max<size_t>(16, n * sizeof(X))) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant upload: cudaMalloc of %zu bytes failed", n * sizeof(X));
    if (n && cudaMemcpy(*dst, src, n * sizeof(X), cudaMemcpyHostToDevice) != cudaSuccess)
        return GPU_FAIL(GPU_ELAUNCH, "quant upload: cudaMemcpy of %zu bytes failed", n * sizeof(X));
    *bytes += n * sizeof(X);
    return GPU_OK;
}

} // namespace

extern "C" void gpu_qweight_free(gpu_qweight *w)
{
    if (!w)
        return;
    void *p[] = {w->qweight, w->qzeros, w->scales, w->q_scale, w->q_scale_max, w->perm, w->units};
    for (void *q : p)
        if (q)
            cudaFree(q);
    memset(w, 0, sizeof *w);
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
    out->n_units = prow;
    size_t bytes = 0;
    int rc;
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
    std::vector<int32_t> perm(k, -1), units;
    for (int i = 0; i < k; i++) {
        const int p = q_invperm[i];
        if (p < 0 || p >= k || perm[p] != -1)
            return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: q_invperm is not a permutation (at %d)", i);
        perm[p] = i;
    }
    int row = 0;
    for (int g = 0; g < n_groups; g++) {
        const int b = q_groups[2 * g], r0 = q_groups[2 * g + 1];
        const int r1 = g + 1 < n_groups ? q_groups[2 * g + 3] : packed_rows;
        if (!(b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8) || r0 < 0 || r1 <= r0 || r1 > packed_rows ||
            ((r1 - r0) * 32) % b)
            return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: group %d (%d bits, rows %d..%d)", g, b, r0, r1);
        const int rows = (r1 - r0) * 32 / b;
        for (int at = 0; at < rows; at += 32) {
            const int ur = std::min(32, rows - at);
            if ((ur * b) % 32)
                return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: group %d tail of %d rows", g, ur);
            units.insert(units.end(), {b, r0 + at / 32 * b, row + at, ur | (g << 8)});
        }
        row += rows;
    }
    if (row != k)
        return GPU_FAIL(GPU_UNSUPPORTED, "exl2 upload: groups hold %d rows, k %d", row, k);
    out->format = GPU_Q_EXL2;
    out->k = k;
    out->m = m;
    out->n_groups = n_groups;
    out->n_units = (int)(units.size() / 4);
    size_t bytes = 0;
    int rc;
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
    if (path == GPU_QLINEAR_FUSED)
        return align256((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * w->k * sizeof(float)) +
               (size_t)GPU_QLINEAR_MAX_FUSED_ROWS * w->m * sizeof(float);
    return align256((size_t)w->m * w->k * 2) + ((size_t)32 << 20);
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
    if (path == GPU_QLINEAR_DEQUANT && w->n_units > 65535)
        return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: %d units", w->n_units);
    size_t need = path == GPU_QLINEAR_FUSED
                      ? gpu_qlinear_workspace_size(w, n, path)
                      : align256((size_t)w->m * w->k * 2);
    if (workspace_size < need)
        return GPU_FAIL(GPU_EWORKSPACE, "qlinear: workspace %zu bytes, needs %zu", workspace_size, need);
    if (dt == GPU_F16)
        return run<__half>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
    if (dt == GPU_BF16)
        return run<__nv_bfloat16>(blas, dt, out, x, w, bias, n, path, workspace, workspace_size, stream);
    return GPU_FAIL(GPU_UNSUPPORTED, "qlinear: dtype %d", (int)dt);
}
