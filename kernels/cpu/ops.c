/* kernels/cpu/ops.c: the reference ops, written to read like the math (see ops.h). */
#include "ops.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static int g_threads = 0; /* 0 = not yet decided */

void cpu_set_threads(int n_threads)
{
    g_threads = n_threads < 1 ? 1 : (n_threads > 64 ? 64 : n_threads);
}

int cpu_get_threads(void)
{
    if (g_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        g_threads = n < 1 ? 1 : (n > 16 ? 16 : (int)n);
    }
    return g_threads;
}

int cpu_embed(float *out, const float *table, const int32_t *ids, int n, int d, int n_vocab)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return -1;
        memcpy(out + (size_t)i * d, table + (size_t)ids[i] * d, sizeof(float) * (size_t)d);
    }
    return 0;
}

int cpu_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        double ss = 0.0;
        for (int j = 0; j < d; j++)
            ss += (double)xi[j] * xi[j];
        float inv = (float)(1.0 / sqrt(ss / d + eps));
        for (int j = 0; j < d; j++)
            oi[j] = xi[j] * inv * w[j];
    }
    return 0;
}

int cpu_add_rmsnorm(float *out, float *resid, const float *delta, const float *w, int n, int d, float eps)
{
    cpu_add(resid, delta, n, d);
    return cpu_rmsnorm(out, resid, w, n, d, eps);
}

int cpu_add(float *x, const float *y, int n, int d)
{
    size_t total = (size_t)n * d;
    for (size_t i = 0; i < total; i++)
        x[i] += y[i];
    return 0;
}

/* ---- matmul: out[n, m] = x[n, k] @ w[m, k]^T, threads split the m output columns ---- */

typedef struct matmul_job {
    float *out;
    const float *x, *w, *bias;
    int n, k, m, m_begin, m_end;
} matmul_job;

static void *matmul_worker(void *arg)
{
    const matmul_job *j = arg;
    for (int c = j->m_begin; c < j->m_end; c++) {
        const float *wc = j->w + (size_t)c * j->k;
        for (int r = 0; r < j->n; r++) {
            const float *xr = j->x + (size_t)r * j->k;
            /* four partial sums so the compiler can vectorise without reassociating one chain */
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
            int i = 0;
            for (; i + 4 <= j->k; i += 4) {
                s0 += xr[i] * wc[i];
                s1 += xr[i + 1] * wc[i + 1];
                s2 += xr[i + 2] * wc[i + 2];
                s3 += xr[i + 3] * wc[i + 3];
            }
            for (; i < j->k; i++)
                s0 += xr[i] * wc[i];
            float s = (s0 + s1) + (s2 + s3);
            j->out[(size_t)r * j->m + c] = s + (j->bias ? j->bias[c] : 0.f);
        }
    }
    return NULL;
}

int cpu_matmul(float *out, const float *x, const float *w, const float *bias, int n, int k, int m)
{
    if (n < 0 || k <= 0 || m <= 0)
        return -1;
    int nt = cpu_get_threads();
    long work = (long)n * k * m;
    if (work < (1L << 18) || nt == 1) {
        matmul_job j = {out, x, w, bias, n, k, m, 0, m};
        matmul_worker(&j);
        return 0;
    }
    if (nt > m)
        nt = m;
    matmul_job jobs[64];
    pthread_t tids[64];
    int started[64] = {0};
    int per = (m + nt - 1) / nt;
    for (int t = 0; t < nt; t++) {
        int b = t * per, e = b + per > m ? m : b + per;
        jobs[t] = (matmul_job){out, x, w, bias, n, k, m, b, e};
        if (t > 0 && b < e)
            started[t] = pthread_create(&tids[t], NULL, matmul_worker, &jobs[t]) == 0;
    }
    matmul_worker(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else if (jobs[t].m_begin < jobs[t].m_end)
            matmul_worker(&jobs[t]); /* thread creation failed: do the slice here */
    }
    return 0;
}

int cpu_rope(float *x, const int32_t *pos, const float *inv_freq, int n, int n_heads, int head_dim, int rot,
             float mscale)
{
    if (rot > head_dim || rot % 2)
        return -1;
    int half = rot / 2;
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < half; i++) {
            /* angle in double: positions up to 1e6 times frequencies near 1 keep float precision */
            double a = (double)pos[t] * (double)inv_freq[i];
            float c = (float)cos(a) * mscale, s = (float)sin(a) * mscale;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + ((size_t)t * n_heads + h) * head_dim;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
    return 0;
}

int cpu_swiglu(float *out, const float *gate, const float *up, int n, int f)
{
    size_t total = (size_t)n * f;
    for (size_t i = 0; i < total; i++) {
        float g = gate[i];
        out[i] = g / (1.f + expf(-g)) * up[i];
    }
    return 0;
}

static float *kv_row(float *pool, const cpu_paged_kv *kv, int seq, int p)
{
    int page = kv->page_table[(size_t)seq * kv->max_pages + p / kv->page_size];
    if (page < 0 || page >= kv->n_pages)
        return NULL;
    size_t row = (size_t)page * kv->page_size + (size_t)(p % kv->page_size);
    return pool + row * (size_t)kv->n_kv_heads * kv->head_dim;
}

int cpu_kv_write(const cpu_paged_kv *kv, const float *k, const float *v, const int32_t *seq_start,
                 const int32_t *pos, int n_seqs)
{
    size_t row = (size_t)kv->n_kv_heads * kv->head_dim;
    for (int s = 0; s < n_seqs; s++) {
        for (int t = seq_start[s]; t < seq_start[s + 1]; t++) {
            if (pos[t] < 0 || pos[t] >= kv->max_pages * kv->page_size)
                return -1;
            float *kd = kv_row(kv->k_pool, kv, s, pos[t]);
            float *vd = kv_row(kv->v_pool, kv, s, pos[t]);
            if (!kd || !vd)
                return -1;
            memcpy(kd, k + (size_t)t * row, row * sizeof(float));
            memcpy(vd, v + (size_t)t * row, row * sizeof(float));
        }
    }
    return 0;
}

int cpu_attention_paged(float *out, const float *q, const cpu_paged_kv *kv, const int32_t *seq_start,
                        const int32_t *pos, int n_seqs, int n_heads, int window, float scale)
{
    int hd = kv->head_dim, nkv = kv->n_kv_heads;
    if (nkv <= 0 || n_heads % nkv)
        return -1;
    int group = n_heads / nkv;
    for (int s = 0; s < n_seqs; s++) {
        for (int t = seq_start[s]; t < seq_start[s + 1]; t++) {
            int p = pos[t];
            int first = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
            for (int h = 0; h < n_heads; h++) {
                const float *qh = q + ((size_t)t * n_heads + h) * hd;
                float *oh = out + ((size_t)t * n_heads + h) * hd;
                int kh = h / group;
                float m = -INFINITY, l = 0.f;
                for (int d = 0; d < hd; d++)
                    oh[d] = 0.f;
                for (int j = first; j <= p; j++) {
                    const float *kr = kv_row(kv->k_pool, kv, s, j);
                    const float *vr = kv_row(kv->v_pool, kv, s, j);
                    if (!kr || !vr)
                        return -1;
                    kr += (size_t)kh * hd;
                    vr += (size_t)kh * hd;
                    float sc = 0.f;
                    for (int d = 0; d < hd; d++)
                        sc += qh[d] * kr[d];
                    sc *= scale;
                    /* online softmax: rescale what we have when the maximum grows */
                    float m_new = sc > m ? sc : m;
                    float corr = expf(m - m_new), wgt = expf(sc - m_new);
                    l = l * corr + wgt;
                    for (int d = 0; d < hd; d++)
                        oh[d] = oh[d] * corr + wgt * vr[d];
                    m = m_new;
                }
                float inv = l > 0.f ? 1.f / l : 0.f;
                for (int d = 0; d < hd; d++)
                    oh[d] *= inv;
            }
        }
    }
    return 0;
}
