/* quant_random.c: format names ("gptq4-g128", "exl2-4.0") and random quantized linears in host memory,
 * laid out exactly as files store them, so benches measure the real bytes without a checkpoint. */
#include "quant_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

ck_status qnt_parse_format_name(const char *name, qnt_config *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "no quantization format name");
    if (!strncmp(name, "gptq", 4)) {
        const char *p = name + 4;
        char *end;
        errno = 0;
        long bits = strtol(p, &end, 10);
        if (end == p || (bits != 4 && bits != 8) || strncmp(end, "-g", 2) != 0)
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "format '%s': expected gptq4-g<group> or gptq8-g<group> "
                           "(e.g. gptq4-g128, gptq8-gall, gptq4-g128-act, gptq4-g128-v2)", name);
        p = end + 2;
        long g;
        if (!strncmp(p, "all", 3)) {
            g = -1;
            end = (char *)p + 3;
        } else {
            g = strtol(p, &end, 10);
            if (end == p || g <= 0 || g > (1 << 20) || (g & (g - 1)))
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "format '%s': the group size must be a power of two or "
                               "'all'", name);
        }
        out->format = QNT_GPTQ;
        out->bits = (int)bits;
        out->group_size = (int)g;
        out->sym = true;
        while (*end) {
            if (!strncmp(end, "-act", 4)) {
                out->desc_act = true;
                end += 4;
            } else if (!strncmp(end, "-v2", 3)) {
                out->v2 = true;
                end += 3;
            } else {
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "format '%s': unknown suffix '%s' (-act, -v2)", name, end);
            }
        }
        return CK_OK;
    }
    if (!strncmp(name, "exl2-", 5)) {
        char *end;
        double bpw = strtod(name + 5, &end);
        if (end == name + 5 || *end || !(bpw >= 2.0 && bpw <= 8.0))
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "format '%s': expected exl2-<bits per weight in [2, 8]> "
                           "(e.g. exl2-4.0, exl2-2.5)", name);
        out->format = QNT_EXL2;
        out->exl2_bits = bpw;
        out->exl2_head_bits = 6;
        return CK_OK;
    }
    return ck_fail(err, CK_E_INVALID_ARGUMENT, "unknown quantization format '%s' (gptq4-g128, gptq8-g128, exl2-4.0, "
                   "exl2-2.5, ...)", name);
}

/* splitmix64 */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(next(s) % n);
}
static float unif(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((next(s) >> 40) * (1.0 / 16777216.0));
}
static void shuffle(int32_t *a, int64_t n, uint64_t *s)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(next(s) % (uint64_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static ck_status random_gptq(const qnt_config *q, int64_t K, int64_t N, uint64_t *s, qnt_host_linear *l,
                             ck_error *err)
{
    const int bits = q->bits, per = 32 / bits;
    if (K % per || N % per)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "gptq%d: K %lld and N %lld must be multiples of %d", bits,
                       (long long)K, (long long)N, per);
    const int gs = q->group_size == -1 ? (int)K : q->group_size;
    const int G = (int)((K + gs - 1) / gs);
    l->format = QNT_GPTQ;
    l->bits = bits;
    l->group_size = q->group_size;
    l->n_groups = G;
    l->v2 = q->v2;
    size_t nw = (size_t)(K / per) * (size_t)N, nz = (size_t)G * (size_t)(N / per), ns = (size_t)G * (size_t)N;
    l->qweight = malloc(nw * 4);
    l->qzeros = malloc(nz * 4);
    l->scales = malloc(ns * 2);
    l->g_idx = malloc((size_t)K * 4);
    if (!l->qweight || !l->qzeros || !l->scales || !l->g_idx)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "random gptq linear [%lld, %lld]: out of memory", (long long)N,
                       (long long)K);
    for (size_t i = 0; i < nw; i++)
        l->qweight[i] = (uint32_t)next(s);
    const uint32_t mask = (1u << bits) - 1;
    for (size_t i = 0; i < nz; i++) { /* zeros near the middle; v1 stores zero - 1 */
        uint32_t w = 0;
        for (int j = 0; j < per; j++) {
            uint32_t z = (1u << (bits - 1)) - 2 + below(s, 4) - (q->v2 ? 0 : 1);
            w |= (z & mask) << (j * bits);
        }
        l->qzeros[i] = w;
    }
    float smax = 0.05f / (float)(1 << (bits - 1));
    for (size_t i = 0; i < ns; i++)
        l->scales[i] = qnt_float_to_half(unif(s, 0.25f * smax, smax));
    if (q->desc_act) {
        int32_t *order = malloc((size_t)K * 4);
        if (!order)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
        for (int64_t k = 0; k < K; k++)
            order[k] = (int32_t)k;
        shuffle(order, K, s);
        for (int64_t i = 0; i < K; i++)
            l->g_idx[order[i]] = (int32_t)(i / gs);
        free(order);
    } else {
        for (int64_t k = 0; k < K; k++)
            l->g_idx[k] = (int32_t)(k / gs);
    }
    l->bytes = nw * 4 + nz * 4 + ns * 2 + (uint64_t)K * 4;
    return CK_OK;
}

/* Group widths reaching `bpw`: 32-row groups at the two allowed widths around it, the wider first. */
static int exl2_plan(double bpw, int64_t n_groups32, int *hi, int *lo, int64_t *n_hi)
{
    static const int widths[] = {2, 3, 4, 5, 6, 8};
    *hi = *lo = 2;
    for (int i = 0; i < 6; i++) {
        if (widths[i] <= bpw)
            *lo = widths[i];
        if (widths[i] >= bpw) {
            *hi = widths[i];
            break;
        }
    }
    if (bpw > 8)
        *hi = *lo = 8;
    double f = *hi == *lo ? 1.0 : (bpw - *lo) / (double)(*hi - *lo);
    *n_hi = (int64_t)llround(f * (double)n_groups32);
    return 0;
}

static ck_status random_exl2(const qnt_config *q, int64_t K, int64_t N, uint64_t *s, qnt_host_linear *l,
                             ck_error *err)
{
    if (K % 32 || N % 8)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "exl2: K %lld must be a multiple of 32 and N %lld of 8",
                       (long long)K, (long long)N);
    int hi, lo;
    int64_t G = K / 32, n_hi;
    exl2_plan(q->exl2_bits, G, &hi, &lo, &n_hi);
    int64_t packed = n_hi * hi + (G - n_hi) * lo; /* 32 rows x b bits = b words */
    if (G > 16383 || packed > 32767)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "exl2: K %lld is too large for int16 q_groups", (long long)K);
    l->format = QNT_EXL2;
    l->n_groups = (int)G;
    l->packed_rows = packed;
    l->q_invperm = malloc((size_t)K * 4);
    l->q_groups = malloc((size_t)G * 4);
    l->q_weight = malloc((size_t)packed * (size_t)N * 4);
    l->q_scale = malloc((size_t)G * (size_t)(N / 8) * 4);
    l->q_scale_max = malloc((size_t)G * 2);
    if (!l->q_invperm || !l->q_groups || !l->q_weight || !l->q_scale || !l->q_scale_max)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "random exl2 linear [%lld, %lld]: out of memory", (long long)N,
                       (long long)K);
    for (int64_t k = 0; k < K; k++)
        l->q_invperm[k] = (int32_t)k;
    shuffle(l->q_invperm, K, s);
    int64_t row = 0;
    for (int64_t g = 0; g < G; g++) {
        int b = g < n_hi ? hi : lo;
        l->q_groups[2 * g] = (int16_t)b;
        l->q_groups[2 * g + 1] = (int16_t)row;
        row += b;
        l->q_scale_max[g] = qnt_float_to_half(unif(s, 0.01f, 0.03f) / (float)(1 << (b - 1)) * 16.0f);
    }
    for (size_t i = 0; i < (size_t)packed * (size_t)N; i++)
        l->q_weight[i] = (uint32_t)next(s);
    for (size_t i = 0; i < (size_t)G * (size_t)(N / 8); i++)
        l->q_scale[i] = (uint32_t)next(s);
    l->bytes = (uint64_t)K * 4 + (uint64_t)G * 4 + (uint64_t)packed * (uint64_t)N * 4 +
               (uint64_t)G * (uint64_t)(N / 8) * 4 + (uint64_t)G * 2;
    return CK_OK;
}

void qnt_host_linear_exl2_perm(qnt_host_linear *l, uint64_t seed)
{
    if (l->format != QNT_EXL2 || !l->q_invperm)
        return;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 11;
    for (int64_t k = 0; k < l->K; k++)
        l->q_invperm[k] = (int32_t)k;
    shuffle(l->q_invperm, l->K, &s);
}

ck_status qnt_host_linear_random(const qnt_config *q, int64_t K, int64_t N, uint64_t seed, qnt_host_linear *out,
                                 ck_error *err)
{
    memset(out, 0, sizeof *out);
    if (K <= 0 || N <= 0 || K > (1 << 24) || N > (1 << 24))
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "random quantized linear: bad shape [%lld, %lld]", (long long)N,
                       (long long)K);
    out->K = K;
    out->N = N;
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 7;
    ck_status st;
    if (q->format == QNT_GPTQ)
        st = random_gptq(q, K, N, &s, out, err);
    else if (q->format == QNT_EXL2)
        st = random_exl2(q, K, N, &s, out, err);
    else
        st = ck_fail(err, CK_E_INVALID_ARGUMENT, "random quantized linear: no format");
    if (st != CK_OK)
        qnt_host_linear_free(out);
    else
        out->widen = q->format == QNT_EXL2 ? q->exl2_widen : QNT_WIDEN_NONE;
    return st;
}
