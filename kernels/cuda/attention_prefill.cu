/* kernels/cuda/attention_prefill.cu: paged causal attention for many queries per sequence (prefill,
 * chunked prefill, mixed batches), flash-attention style on tensor cores.
 * Contract: as cpu_attention_paged (see gpu_attention in cuda_ops.h). Supports FP16/BF16, head_dim D in
 * {64, 128}, GQA/MQA (n_heads % n_kv_heads == 0), sliding window, any positions (the cache holds
 * positions 0..pos of each query), q rows q_stride apart (multiple of 8).
 * Grid (query tile of 64 tokens, query head, sequence); 4 warps, each owning 16 query rows.
 * Per 64-key tile: K and V rows gathered from the pages into shared memory (16-byte loads; rows padded
 * by 16 bytes so fragment loads do not conflict), S = Q K^T by mma.sync m16n8k16 (Q fragments held in
 * registers for the whole block), causal/window mask, online softmax in base 2 (running max and sum per
 * row, in registers), P re-packed from the S accumulators into A fragments, O += P V by mma.sync with
 * V fragments from ldmatrix.trans. Only one 16 x 64 score tile per warp exists at a time, in registers:
 * the score matrix is never materialised.
 * FLOPs: 4 * D * (number of unmasked (query, key) pairs) per head; the bench counts them exactly. */
#include <math.h>
#include "common.cuh"
#include "attention_internal.cuh"

#define PF_BM 64
#define PF_BN 64
#define PF_THREADS 128

template <typename T> struct mma_op;
template <> struct mma_op<__half> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct mma_op<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <typename T>
static __device__ __forceinline__ uint32_t pack2(float a, float b) {
    typename dt_traits<T>::T2 v = dt_traits<T>::from_f2(a, b);
    return *reinterpret_cast<uint32_t *>(&v);
}

static __device__ __forceinline__ void ldmatrix_x2_trans(uint32_t &r0, uint32_t &r1, const void *smem_ptr) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(smem_ptr);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(addr));
}

template <typename T, int D>
static __global__ void __launch_bounds__(PF_THREADS)
prefill_kernel(T *out, const T *q, int q_stride, const T *k_pool, const T *v_pool, const int32_t *page_table,
               int max_pages, int page_size, int n_kv_heads, const int32_t *seq_start, const int32_t *pos, int n_heads,
               int window, float scale_log2) {
    constexpr int LD = D + 8; /* padded row, in elements */
    constexpr int V8 = D / 8; /* 16-byte vectors per row */
    __shared__ __align__(16) T sK[PF_BN * LD]; /* holds the Q tile first */
    __shared__ __align__(16) T sV[PF_BN * LD];
    __shared__ int sPos[PF_BM];

    const int s = blockIdx.z, h = blockIdx.y;
    const int t0 = seq_start[s], t1 = seq_start[s + 1];
    const int qb = t0 + blockIdx.x * PF_BM;
    if (qb >= t1) return;
    const int nq = min(PF_BM, t1 - qb);
    const int kvh = h / (n_heads / n_kv_heads);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;

    /* Q tile -> shared (zero rows past the sequence), positions */
    for (int idx = tid; idx < PF_BM * V8; idx += PF_THREADS) {
        const int r = idx / V8, c = idx % V8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < nq) v = *reinterpret_cast<const uint4 *>(q + (size_t)(qb + r) * q_stride + (size_t)h * D + c * 8);
        *reinterpret_cast<uint4 *>(&sK[r * LD + c * 8]) = v;
    }
    if (tid < PF_BM) sPos[tid] = tid < nq ? pos[qb + tid] : -1;
    __syncthreads();
    int pmin = 0x7fffffff, pmax = -1;
    for (int r = 0; r < nq; r++) {
        pmin = min(pmin, sPos[r]);
        pmax = max(pmax, sPos[r]);
    }
    const int kv_hi = pmax + 1;
    const int kv_lo = window > 0 ? max(0, pmin - window + 1) : 0;

    uint32_t qa[D / 16][4];
    const int r0 = warp * 16 + g;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        qa[kk][0] = *reinterpret_cast<const uint32_t *>(&sK[r0 * LD + kk * 16 + tq * 2]);
        qa[kk][1] = *reinterpret_cast<const uint32_t *>(&sK[(r0 + 8) * LD + kk * 16 + tq * 2]);
        qa[kk][2] = *reinterpret_cast<const uint32_t *>(&sK[r0 * LD + kk * 16 + tq * 2 + 8]);
        qa[kk][3] = *reinterpret_cast<const uint32_t *>(&sK[(r0 + 8) * LD + kk * 16 + tq * 2 + 8]);
    }
    const int qp0 = sPos[r0], qp1 = sPos[r0 + 8];

    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    const int32_t *pt = page_table + (size_t)s * max_pages;
    const size_t row_stride = (size_t)n_kv_heads * D;

    for (int kb = (kv_lo / PF_BN) * PF_BN; kb < kv_hi; kb += PF_BN) {
        __syncthreads(); /* everyone is done with the previous tile (and with the Q tile) */
        for (int idx = tid; idx < PF_BN * V8; idx += PF_THREADS) {
            const int r = idx / V8, c = idx % V8;
            const int j = kb + r;
            uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
            if (j < kv_hi) {
                const int page = pt[j / page_size];
                const size_t off = ((size_t)page * page_size + j % page_size) * row_stride + (size_t)kvh * D + c * 8;
                kv4 = *reinterpret_cast<const uint4 *>(k_pool + off);
                vv4 = *reinterpret_cast<const uint4 *>(v_pool + off);
            }
            *reinterpret_cast<uint4 *>(&sK[r * LD + c * 8]) = kv4;
            *reinterpret_cast<uint4 *>(&sV[r * LD + c * 8]) = vv4;
        }
        __syncthreads();

        float sc[PF_BN / 8][4];
#pragma unroll
        for (int nt = 0; nt < PF_BN / 8; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int nt = 0; nt < PF_BN / 8; nt++) {
                const uint32_t b0 = *reinterpret_cast<const uint32_t *>(&sK[(nt * 8 + g) * LD + kk * 16 + tq * 2]);
                const uint32_t b1 = *reinterpret_cast<const uint32_t *>(&sK[(nt * 8 + g) * LD + kk * 16 + tq * 2 + 8]);
                mma_op<T>::run(sc[nt], qa[kk], b0, b1);
            }
        }
        /* scale, mask, tile row maxima */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < PF_BN / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = kb + nt * 8 + tq * 2 + (e & 1);
                const int qp = e < 2 ? qp0 : qp1;
                const bool ok = j <= qp && (window <= 0 || qp - j < window);
                const float v = ok ? sc[nt][e] * scale_log2 : -INFINITY;
                sc[nt][e] = v;
                if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        const float b0s = n0 == -INFINITY ? 0.0f : n0, b1s = n1 == -INFINITY ? 0.0f : n1;
        const float c0 = exp2f(m0 - b0s), c1 = exp2f(m1 - b1s);
        m0 = n0;
        m1 = n1;
        l0 *= c0;
        l1 *= c1;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            o[i][0] *= c0;
            o[i][1] *= c0;
            o[i][2] *= c1;
            o[i][3] *= c1;
        }
#pragma unroll
        for (int nt = 0; nt < PF_BN / 8; nt++) {
            sc[nt][0] = exp2f(sc[nt][0] - b0s);
            sc[nt][1] = exp2f(sc[nt][1] - b0s);
            sc[nt][2] = exp2f(sc[nt][2] - b1s);
            sc[nt][3] = exp2f(sc[nt][3] - b1s);
            l0 += sc[nt][0] + sc[nt][1];
            l1 += sc[nt][2] + sc[nt][3];
        }
        /* O += P V */
#pragma unroll
        for (int kj = 0; kj < PF_BN / 16; kj++) {
            uint32_t pa[4];
            pa[0] = pack2<T>(sc[2 * kj][0], sc[2 * kj][1]);
            pa[1] = pack2<T>(sc[2 * kj][2], sc[2 * kj][3]);
            pa[2] = pack2<T>(sc[2 * kj + 1][0], sc[2 * kj + 1][1]);
            pa[3] = pack2<T>(sc[2 * kj + 1][2], sc[2 * kj + 1][3]);
#pragma unroll
            for (int dn = 0; dn < D / 8; dn++) {
                uint32_t vb0, vb1;
                ldmatrix_x2_trans(vb0, vb1, &sV[(kj * 16 + (lane & 15)) * LD + dn * 8]);
                mma_op<T>::run(o[dn], pa, vb0, vb1);
            }
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const int ra = warp * 16 + g, rb = ra + 8;
#pragma unroll
    for (int dn = 0; dn < D / 8; dn++) {
        if (ra < nq)
            *reinterpret_cast<typename dt_traits<T>::T2 *>(out + ((size_t)(qb + ra) * n_heads + h) * D + dn * 8 + tq * 2) =
                dt_traits<T>::from_f2(o[dn][0] * i0, o[dn][1] * i0);
        if (rb < nq)
            *reinterpret_cast<typename dt_traits<T>::T2 *>(out + ((size_t)(qb + rb) * n_heads + h) * D + dn * 8 + tq * 2) =
                dt_traits<T>::from_f2(o[dn][2] * i1, o[dn][3] * i1);
    }
}

template <typename T>
static int prefill_launch(void *out, const void *q, int q_stride, const gpu_paged_kv *kv, const int32_t *seq_start,
                          const int32_t *pos, int n_seqs, int n_heads, int max_q_len, int window, float scale,
                          cudaStream_t stream) {
    const dim3 grid((max_q_len + PF_BM - 1) / PF_BM, n_heads, n_seqs);
    const float sl2 = scale * 1.4426950408889634f;
    if (grid.y > 65535 || grid.z > 65535) return GPU_FAIL(GPU_UNSUPPORTED, "attention prefill: grid %d x %d", n_heads, n_seqs);
    if (kv->head_dim == 64)
        prefill_kernel<T, 64><<<grid, PF_THREADS, 0, stream>>>((T *)out, (const T *)q, q_stride, (const T *)kv->k_pool,
                                                               (const T *)kv->v_pool, kv->page_table, kv->max_pages,
                                                               kv->page_size, kv->n_kv_heads, seq_start, pos, n_heads,
                                                               window, sl2);
    else
        prefill_kernel<T, 128><<<grid, PF_THREADS, 0, stream>>>((T *)out, (const T *)q, q_stride, (const T *)kv->k_pool,
                                                                (const T *)kv->v_pool, kv->page_table, kv->max_pages,
                                                                kv->page_size, kv->n_kv_heads, seq_start, pos, n_heads,
                                                                window, sl2);
    GPU_CHECK_LAUNCH("prefill_kernel");
    return GPU_OK;
}

int attention_prefill(gpu_dtype dt, void *out, const void *q, int q_stride, const gpu_paged_kv *kv,
                      const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                      int max_q_len, int window, float scale, cudaStream_t stream) {
    (void)n_tokens;
    return dt == GPU_F16 ? prefill_launch<__half>(out, q, q_stride, kv, seq_start, pos, n_seqs, n_heads, max_q_len,
                                                  window, scale, stream)
                         : prefill_launch<__nv_bfloat16>(out, q, q_stride, kv, seq_start, pos, n_seqs, n_heads,
                                                         max_q_len, window, scale, stream);
}
