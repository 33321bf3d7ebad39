/* quant_exl2.c: EXL2 linears (per-group widths 2, 3, 4, 5, 6, 8), FORMATS.md "EXL2".
 *   q_invperm   int32 [K]: packed row q_invperm[k] holds input row k (q_perm = argsort(q_invperm))
 *   q_groups    int16 [2G]: (bits, first packed 32-bit row) per group, bits descending
 *   q_weight    int32 [packed_rows, N]: per column a little-endian bit stream along each group's rows
 *   q_scale     int32 [G, N / 8]: 4-bit code per (group, column), lowest nibble first
 *   q_scale_max fp16  [G]
 *   w = (q - 2^(b-1)) * (code + 1)^2 * scale_max / 256 */
#include "quant_internal.h"

#include <stdio.h>
#include <stdlib.h>

static int bits_allowed(int b)
{
    return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8;
}

ck_status qnt_exl2_view(const st_set *ws, const char *prefix, int64_t K, int64_t N, qnt_view *v, ck_error *err)
{
    memset(v, 0, sizeof *v);
    v->format = QNT_EXL2;
    v->K = K;
    v->N = N;
    v->prefix = prefix;
    const st_tensor *tp, *tg, *tw, *ts, *tm;
    ck_status st;
    if ((st = qnt_need(ws, prefix, "q_invperm", "EXL2", &tp, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "q_groups", "EXL2", &tg, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "q_weight", "EXL2", &tw, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "q_scale", "EXL2", &ts, err)) != CK_OK ||
        (st = qnt_need(ws, prefix, "q_scale_max", "EXL2", &tm, err)) != CK_OK)
        return st;
    v->file = tw->file_path;
    char why[160];
    snprintf(why, sizeof why, "config.json (in %lld, out %lld)", (long long)K, (long long)N);
    if ((st = qnt_expect(tp, ST_I32, ST_I32, 1, K, 0, why, err)) != CK_OK)
        return st;
    if (tg->dtype != ST_I16 || tg->n_dims != 1 || tg->shape[0] < 2 || tg->shape[0] % 2)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': dtype %s, %d dims, %lld elements; the format stores I16 "
                       "[2 * groups] (pairs of bits, first row)", tg->file_path, tg->name, st_dtype_name(tg->dtype),
                       tg->n_dims, tg->n_dims ? (long long)tg->shape[0] : 0LL);
    if (tg->shape[0] / 2 > K)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': %lld groups for %lld rows", tg->file_path, tg->name,
                       (long long)(tg->shape[0] / 2), (long long)K);
    v->n_groups = (int)(tg->shape[0] / 2);
    if (tw->dtype != ST_I32 && tw->dtype != ST_U32)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': dtype %s, the format stores I32", tw->file_path, tw->name,
                       st_dtype_name(tw->dtype));
    if (tw->n_dims != 2 || tw->shape[1] != N || tw->shape[0] < 1)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': shape must be [packed rows, %lld] (out_features from "
                       "config.json)", tw->file_path, tw->name, (long long)N);
    if (N % 8)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': out_features %lld is not a multiple of 8 (q_scale packs 8 "
                       "columns per word)", ts->file_path, ts->name, (long long)N);
    snprintf(why, sizeof why, "q_groups (%d groups) and config.json (out %lld)", v->n_groups, (long long)N);
    if ((st = qnt_expect(ts, ST_I32, ST_U32, 2, v->n_groups, N / 8, why, err)) != CK_OK ||
        (st = qnt_expect(tm, ST_F16, ST_F16, 1, v->n_groups, 0, why, err)) != CK_OK)
        return st;
    v->packed_rows = tw->shape[0];
    v->q_invperm = tp->data;
    v->q_groups = tg->data;
    v->q_weight = tw->data;
    v->q_scale = ts->data;
    v->q_scale_max = tm->data;
    v->bytes = tp->n_bytes + tg->n_bytes + tw->n_bytes + ts->n_bytes + tm->n_bytes;
    return CK_OK;
}

ck_status qnt_exl2_check_values(const qnt_view *v, int64_t rows_at_bits[9], ck_error *err)
{
    const int64_t K = v->K;
    /* q_invperm: a permutation of [0, K) */
    uint8_t *seen = calloc((size_t)(K + 7) / 8, 1);
    if (!seen)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    for (int64_t k = 0; k < K; k++) {
        int32_t p = qv_i32(v->q_invperm, k);
        if (p < 0 || p >= K) {
            free(seen);
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_invperm' is not a permutation: q_invperm[%lld] = %d "
                           "is outside [0, %lld)", v->file, v->prefix, (long long)k, p, (long long)K);
        }
        if (seen[p / 8] & (1u << (p % 8))) {
            free(seen);
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_invperm' is not a permutation: %d appears twice "
                           "(again at %lld)", v->file, v->prefix, p, (long long)k);
        }
        seen[p / 8] |= (uint8_t)(1u << (p % 8));
    }
    free(seen);
    /* q_groups: widths allowed and descending, rows monotonic, inside q_weight, whole, summing to K */
    int64_t total = 0;
    int prev_bits = 8;
    for (int g = 0; g < v->n_groups; g++) {
        int bits = qv_i16(v->q_groups, 2 * g), r0 = qv_i16(v->q_groups, 2 * g + 1);
        int64_t r1 = g + 1 < v->n_groups ? qv_i16(v->q_groups, 2 * g + 3) : v->packed_rows;
        if (!bits_allowed(bits))
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': group %d has %d bits (allowed: 2, 3, 4, 5, "
                           "6, 8)", v->file, v->prefix, g, bits);
        if (bits > prev_bits)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': group %d has %d bits after a group of %d: "
                           "groups must be ordered by bits descending", v->file, v->prefix, g, bits, prev_bits);
        prev_bits = bits;
        if (g == 0 && r0 != 0)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': the first group starts at packed row %d, "
                           "not 0", v->file, v->prefix, r0);
        if (r0 < 0 || r0 >= v->packed_rows || r1 > v->packed_rows)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': group %d (packed rows %d..%lld) overruns "
                           "q_weight's %lld packed rows", v->file, v->prefix, g, r0, (long long)r1,
                           (long long)v->packed_rows);
        if (r1 <= r0)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': group %d starts at packed row %d and the "
                           "next at %lld: rows must increase", v->file, v->prefix, g, r0, (long long)r1);
        int64_t bits_total = (r1 - r0) * 32;
        if (bits_total % bits)
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': group %d spans %lld packed rows, not a whole "
                           "number of %d-bit values", v->file, v->prefix, g, (long long)(r1 - r0), bits);
        int64_t rows = bits_total / bits;
        total += rows;
        if (rows_at_bits)
            rows_at_bits[bits] += rows;
        if (total > K)
            break;
    }
    if (total != K)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s.q_groups': the groups hold %lld rows, config.json implies "
                       "in_features %lld", v->file, v->prefix, (long long)total, (long long)K);
    return CK_OK;
}

ck_status qnt_exl2_dequant(const qnt_view *v, float *out, ck_error *err)
{
    const int64_t K = v->K, N = v->N;
    int32_t *perm = malloc((size_t)K * sizeof *perm); /* perm[packed row] = input row */
    float *scale = malloc((size_t)N * sizeof *scale);  /* of the current group, per column */
    if (!perm || !scale) {
        free(perm);
        free(scale);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "linear '%s': out of memory", v->prefix);
    }
    for (int64_t k = 0; k < K; k++)
        perm[qv_i32(v->q_invperm, k)] = (int32_t)k; /* a permutation: checked before */
    int64_t row = 0;
    for (int g = 0; g < v->n_groups; g++) {
        const int bits = qv_i16(v->q_groups, 2 * g), r0 = qv_i16(v->q_groups, 2 * g + 1);
        const int64_t r1 = g + 1 < v->n_groups ? qv_i16(v->q_groups, 2 * g + 3) : v->packed_rows;
        const int64_t rows = (r1 - r0) * 32 / bits;
        const int32_t off = 1 << (bits - 1);
        const float smax = qv_f16(v->q_scale_max, g);
        for (int64_t n = 0; n < N; n++) {
            uint32_t code = (qv_u32(v->q_scale, (int64_t)g * (N / 8) + n / 8) >> ((n % 8) * 4)) & 15u;
            scale[n] = (float)((code + 1) * (code + 1)) * smax / 256.0f; /* exact */
        }
        for (int64_t i = 0; i < rows; i++, row++) {
            const int64_t k = perm[row];
            for (int64_t n = 0; n < N; n++)
                out[n * K + k] = (float)((int32_t)qnt_exl2_value(v->q_weight, N, r0, bits, i, n) - off) * scale[n];
        }
    }
    free(perm);
    free(scale);
    return CK_OK;
}
