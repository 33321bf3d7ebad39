/* quant_gptq.c: GPTQ linears (4-bit and 8-bit; act-order; gptq and gptq_v2 zeros), FORMATS.md "GPTQ".
 *   qweight int32 [K * bits / 32, N]: row k in word k / (32 / bits), bits [(k % per) * bits, + bits)
 *   qzeros  int32 [G, N * bits / 32]: packed along N the same way
 *   scales  fp16  [G, N]
 *   g_idx   int32 [K] (optional without act-order: k / group_size)
 *   w[k][n] = (q - z') * s[g][n], g = g_idx[k], z' = stored + 1 (gptq) or stored (gptq_v2) */
#include "quant_internal.h"

#include <stdio.h>

ck_status qnt_gptq_view(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                        qnt_view *v, ck_error *err)
{
    memset(v, 0, sizeof *v);
    v->format = QNT_GPTQ;
    v->K = K;
    v->N = N;
    v->bits = q->bits;
    v->v2 = q->v2;
    v->prefix = prefix;
    const st_tensor *tw, *tz, *ts, *tg;
    ck_status st;
    if ((st = qnt_need(ws, prefix, "qweight", "GPTQ", &tw, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "qzeros", "GPTQ", &tz, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "scales", "GPTQ", &ts, err)) != CK_OK)
        return st;
    qnt_config inferred = *q;
    if (q->bits == 0) { /* qnt_detect_set: no config at hand, read bits and groups from the shapes */
        inferred.bits = tw->n_dims == 2 && tw->shape[0] * 32 == K * 4 ? 4 : 8;
        int64_t G = ts->n_dims == 2 && ts->shape[0] > 0 ? ts->shape[0] : 1;
        inferred.group_size = G == 1 ? -1 : (int)((K + G - 1) / G);
        inferred.desc_act = false;
        q = &inferred;
        v->bits = q->bits;
    }
    if (q->bits != 4 && q->bits != 8)
        return ck_fail(err, CK_E_UNSUPPORTED, "linear '%s': GPTQ bits %d is not supported (4 or 8)", prefix, q->bits);
    int per = 32 / q->bits;
    v->group_size = q->group_size == -1 ? (int)K : q->group_size;
    if (v->group_size <= 0)
        return ck_fail(err, CK_E_CONFIG, "linear '%s': GPTQ group_size %d", prefix, q->group_size);
    v->n_groups = (int)((K + v->group_size - 1) / v->group_size);
    v->file = tw->file_path;
    char why[160];
    snprintf(why, sizeof why, "config.json (in %lld, out %lld, %d-bit)", (long long)K, (long long)N, q->bits);
    if (K % per || N % per)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': in_features %lld and out_features %lld must be multiples "
                       "of %d for %d-bit GPTQ", tw->file_path, tw->name, (long long)K, (long long)N, per, q->bits);
    if ((st = qnt_expect(tw, ST_I32, ST_U32, 2, K / per, N, why, err)) != CK_OK)
        return st;
    snprintf(why, sizeof why, "config.json (in %lld, out %lld, group_size %d: %d groups, %d-bit)", (long long)K,
             (long long)N, q->group_size, v->n_groups, q->bits);
    if ((st = qnt_expect(tz, ST_I32, ST_U32, 2, v->n_groups, N / per, why, err)) != CK_OK ||
        (st = qnt_expect(ts, ST_F16, ST_F16, 2, v->n_groups, N, why, err)) != CK_OK)
        return st;
    tg = qnt_find(ws, prefix, "g_idx");
    if (!tg && q->desc_act)
        return ck_fail(err, CK_E_MISSING, "tensor '%s.g_idx' is missing (GPTQ linear '%s' with desc_act true)",
                       prefix, prefix);
    if (tg && (st = qnt_expect(tg, ST_I32, ST_I32, 1, K, 0, why, err)) != CK_OK)
        return st;
    v->qweight = tw->data;
    v->qzeros = tz->data;
    v->scales = ts->data;
    v->g_idx = tg ? tg->data : NULL;
    v->bytes = tw->n_bytes + tz->n_bytes + ts->n_bytes + (tg ? tg->n_bytes : 0);
    return CK_OK;
}

ck_status qnt_gptq_check_values(const qnt_view *v, ck_error *err)
{
    if (!v->g_idx)
        return CK_OK;
    for (int64_t k = 0; k < v->K; k++) {
        int32_t g = qv_i32(v->g_idx, k);
        if (g < 0 || g >= v->n_groups)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.g_idx': g_idx[%lld] = %d is outside [0, %d) (the "
                           "groups of scales and qzeros)", v->file, v->prefix, (long long)k, g, v->n_groups);
    }
    return CK_OK;
}

void qnt_gptq_dequant(const qnt_view *v, float *out)
{
    const int bits = v->bits, per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1;
    const int64_t K = v->K, N = v->N, NZ = N / per;
    for (int64_t k = 0; k < K; k++) {
        int64_t g = v->g_idx ? qv_i32(v->g_idx, k) : k / v->group_size;
        int shift = (int)(k % per) * bits;
        const uint8_t *wrow = v->qweight + (size_t)(k / per) * (size_t)N * 4;
        const uint8_t *zrow = v->qzeros + (size_t)g * (size_t)NZ * 4;
        const uint8_t *srow = v->scales + (size_t)g * (size_t)N * 2;
        for (int64_t n = 0; n < N; n++) {
            int32_t qv = (int32_t)((qv_u32(wrow, n) >> shift) & mask);
            int32_t z = (int32_t)((qv_u32(zrow, n / per) >> ((n % per) * bits)) & mask) + (v->v2 ? 0 : 1);
            out[n * K + k] = (float)(qv - z) * qv_f16(srow, n);
        }
    }
}
