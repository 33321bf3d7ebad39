/* engine/cuda/cuda_util.cu: conversion, random fill, and the generic paged KV write / attention
 * used where the fast kernels do not apply (see cuda_util.h). Correctness over speed here: the
 * generic attention recomputes scores in three passes and is meant for tiny head dims only. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "common.cuh"
#include "cuda_util.h"

template <typename T> static __device__ __forceinline__ float ld(const T *p, size_t i) { return dt_traits<T>::to_f(p[i]); }

template <typename T> static __global__ void from_f32_kernel(T *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = dt_traits<T>::from_f(src[i]);
}
template <typename T> static __global__ void to_f32_kernel(float *dst, const T *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = ld(src, i);
}

static __device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
template <typename T> static __global__ void fill_kernel(T *dst, size_t n, uint64_t seed, float mean, float amp) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float u = (float)(mix64(seed ^ mix64(i)) >> 40) * (2.0f / 16777216.0f) - 1.0f;
        dst[i] = dt_traits<T>::from_f(mean + amp * u);
    }
}

static unsigned grid_for(size_t n) {
    size_t g = (n + 255) / 256;
    return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

template <typename T> static int from_f32_t(void *dst, const float *src, size_t n, cudaStream_t s) {
    from_f32_kernel<T><<<grid_for(n), 256, 0, s>>>((T *)dst, src, n);
    GPU_CHECK_LAUNCH("from_f32_kernel");
    return GPU_OK;
}
template <typename T> static int to_f32_t(float *dst, const void *src, size_t n, cudaStream_t s) {
    to_f32_kernel<T><<<grid_for(n), 256, 0, s>>>(dst, (const T *)src, n);
    GPU_CHECK_LAUNCH("to_f32_kernel");
    return GPU_OK;
}
template <typename T> static int fill_t(void *dst, size_t n, uint64_t seed, float mean, float std, cudaStream_t s) {
    fill_kernel<T><<<grid_for(n), 256, 0, s>>>((T *)dst, n, seed, mean, std * 1.7320508f);
    GPU_CHECK_LAUNCH("fill_kernel");
    return GPU_OK;
}

extern "C" int cku_from_f32(gpu_dtype dt, void *dst, const float *src, size_t n, cudaStream_t stream) {
    if (n == 0) return GPU_OK;
    return GPU_DISPATCH_DT(dt, from_f32_t, dst, src, n, stream);
}
extern "C" int cku_to_f32(gpu_dtype dt, float *dst, const void *src, size_t n, cudaStream_t stream) {
    if (n == 0) return GPU_OK;
    return GPU_DISPATCH_DT(dt, to_f32_t, dst, src, n, stream);
}
extern "C" int cku_fill_random(gpu_dtype dt, void *dst, size_t n, uint64_t seed, float mean, float std,
                               cudaStream_t stream) {
    if (n == 0) return GPU_OK;
    return GPU_DISPATCH_DT(dt, fill_t, dst, n, seed, mean, std, stream);
}

/* the sequence of token t: the last s with seq_start[s] <= t */
static __device__ int seq_of(const int32_t *seq_start, int n_seqs, int t) {
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (seq_start[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <typename T>
static __global__ void kv_write_any_kernel(T *k_pool, T *v_pool, const int32_t *page_table, int max_pages, int n_pages,
                                           int page_size, int row, const T *k, const T *v, const int32_t *seq_start,
                                           const int32_t *pos, int n_seqs) {
    const int t = blockIdx.x;
    const int p = pos[t];
    if (p < 0 || p / page_size >= max_pages) return;
    const int s = seq_of(seq_start, n_seqs, t);
    const int page = page_table[(size_t)s * max_pages + p / page_size];
    if (page < 0 || page >= n_pages) return;
    const size_t dst = ((size_t)page * page_size + p % page_size) * row;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        k_pool[dst + i] = k[(size_t)t * row + i];
        v_pool[dst + i] = v[(size_t)t * row + i];
    }
}

template <typename T>
static int kv_write_any_t(const gpu_paged_kv *kv, const void *k, const void *v, const int32_t *seq_start,
                          const int32_t *pos, int n_seqs, int n_tokens, cudaStream_t stream) {
    const int row = kv->n_kv_heads * kv->head_dim;
    kv_write_any_kernel<T><<<n_tokens, 128, 0, stream>>>((T *)kv->k_pool, (T *)kv->v_pool, kv->page_table,
                                                         kv->max_pages, kv->n_pages, kv->page_size, row,
                                                         (const T *)k, (const T *)v, seq_start, pos, n_seqs);
    GPU_CHECK_LAUNCH("kv_write_any_kernel");
    return GPU_OK;
}

extern "C" int cku_kv_write_any(gpu_dtype dt, const gpu_paged_kv *kv, const void *k, const void *v,
                                const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens,
                                cudaStream_t stream) {
    if (n_tokens <= 0 || n_seqs <= 0 || kv->page_size < 1) return GPU_FAIL(GPU_UNSUPPORTED, "kv_write_any: shape");
    return GPU_DISPATCH_DT(dt, kv_write_any_t, kv, k, v, seq_start, pos, n_seqs, n_tokens, stream);
}

#define ATT_THREADS 128

static __device__ float block_max(float v, float *red) {
    v = warp_max(v);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < ATT_THREADS / 32; i++) r = fmaxf(r, red[i]);
    __syncthreads();
    return r;
}
static __device__ float block_sum(float v, float *red) {
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < ATT_THREADS / 32; i++) r += red[i];
    __syncthreads();
    return r;
}

/* One block per (token, head): scores over keys [lo, p] (three passes), float32 throughout. */
template <typename T>
static __global__ void __launch_bounds__(ATT_THREADS)
attention_any_kernel(T *out, const T *q, const T *k_pool, const T *v_pool, const int32_t *page_table, int max_pages,
                     int page_size, int n_kv_heads, int hd, const int32_t *seq_start, const int32_t *pos, int n_seqs,
                     int n_heads, int window, float scale) {
    __shared__ float red[ATT_THREADS / 32];
    __shared__ float pw[ATT_THREADS];
    __shared__ int poff[ATT_THREADS];
    const int t = blockIdx.x, h = blockIdx.y;
    const int kvh = h / (n_heads / n_kv_heads);
    const int p = pos[t];
    T *o = out + ((size_t)t * n_heads + h) * hd;
    if (p < 0) {
        for (int d = threadIdx.x; d < hd; d += ATT_THREADS) o[d] = dt_traits<T>::from_f(0.0f);
        return;
    }
    const int s = seq_of(seq_start, n_seqs, t);
    const int32_t *pt = page_table + (size_t)s * max_pages;
    const T *qr = q + ((size_t)t * n_heads + h) * hd;
    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const size_t row = (size_t)n_kv_heads * hd;
    auto koff = [&](int j) -> size_t {
        return ((size_t)pt[j / page_size] * page_size + j % page_size) * row + (size_t)kvh * hd;
    };
    auto score = [&](size_t off) -> float {
        float acc = 0.0f;
        for (int d = 0; d < hd; d++) acc += ld(qr, d) * ld(k_pool, off + d);
        return acc * scale;
    };
    float mx = -INFINITY;
    for (int j = lo + threadIdx.x; j <= p; j += ATT_THREADS) mx = fmaxf(mx, score(koff(j)));
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = lo + threadIdx.x; j <= p; j += ATT_THREADS) sum += __expf(score(koff(j)) - mx);
    sum = block_sum(sum, red);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    /* each thread owns dims d = threadIdx.x + i * ATT_THREADS; up to 8 of them (hd <= 1024) */
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;
    for (int base = lo; base <= p; base += ATT_THREADS) {
        const int j = base + threadIdx.x;
        if (j <= p) {
            const size_t off = koff(j);
            pw[threadIdx.x] = __expf(score(off) - mx) * inv;
            poff[threadIdx.x] = (int)(off / row); /* the row index (page * page_size + slot) */
        }
        __syncthreads();
        const int cnt = min(ATT_THREADS, p - base + 1);
        for (int i2 = 0; i2 < cnt; i2++) {
            const size_t voff = (size_t)poff[i2] * row + (size_t)kvh * hd;
            const float w = pw[i2];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int d = threadIdx.x + i * ATT_THREADS;
                if (d < hd) acc[i] += w * ld(v_pool, voff + d);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int d = threadIdx.x + i * ATT_THREADS;
        if (d < hd) o[d] = dt_traits<T>::from_f(acc[i]);
    }
}

template <typename T>
static int attention_any_t(void *out, const void *q, const gpu_paged_kv *kv, const int32_t *seq_start,
                           const int32_t *pos, int n_seqs, int n_tokens, int n_heads, int window, float scale,
                           cudaStream_t stream) {
    attention_any_kernel<T><<<dim3(n_tokens, n_heads), ATT_THREADS, 0, stream>>>(
        (T *)out, (const T *)q, (const T *)kv->k_pool, (const T *)kv->v_pool, kv->page_table, kv->max_pages,
        kv->page_size, kv->n_kv_heads, kv->head_dim, seq_start, pos, n_seqs, n_heads, window, scale);
    GPU_CHECK_LAUNCH("attention_any_kernel");
    return GPU_OK;
}

extern "C" int cku_attention_any(gpu_dtype dt, void *out, const void *q, const gpu_paged_kv *kv,
                                 const int32_t *seq_start, const int32_t *pos, int n_seqs, int n_tokens, int n_heads,
                                 int window, float scale, cudaStream_t stream) {
    if (kv->head_dim < 1 || kv->head_dim > 8 * ATT_THREADS || n_heads < 1 || kv->n_kv_heads < 1 ||
        n_heads % kv->n_kv_heads || n_tokens < 1 || n_seqs < 1 || kv->page_size < 1 || n_heads > 65535)
        return GPU_FAIL(GPU_UNSUPPORTED, "attention_any: head_dim=%d n_heads=%d n_kv_heads=%d", kv->head_dim, n_heads,
                        kv->n_kv_heads);
    return GPU_DISPATCH_DT(dt, attention_any_t, out, q, kv, seq_start, pos, n_seqs, n_tokens, n_heads, window, scale,
                           stream);
}
