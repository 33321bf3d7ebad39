/* quant.c: detection of a quantized checkpoint, per-linear dispatch to the GPTQ / EXL2 readers, and the
 * in-memory linears that benches and kernel checks use. */
#include "quant_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "config.h"

const char *qnt_format_name(qnt_format f)
{
    switch (f) {
    case QNT_GPTQ: return "gptq";
    case QNT_EXL2: return "exl2";
    default: return "none";
    }
}

/* ---- fp16 ------------------------------------------------------------------------------------ */

float qnt_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qnt_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u : 0));
    if (ax >= 0x477FF000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7C00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((ax >> 13) - ((127u - 15u) << 10));
    uint32_t rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

/* ---- shared tensor checks -------------------------------------------------------------------- */

const st_tensor *qnt_find(const st_set *ws, const char *prefix, const char *suffix)
{
    char name[512];
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return NULL;
    return st_set_find(ws, name);
}

ck_status qnt_need(const st_set *ws, const char *prefix, const char *suffix, const char *format_name,
                   const st_tensor **out, ck_error *err)
{
    *out = qnt_find(ws, prefix, suffix);
    if (!*out)
        return ck_fail(err, CK_E_MISSING, "tensor '%s.%s' is missing (%s linear '%s')", prefix, suffix,
                       format_name, prefix);
    return CK_OK;
}

ck_status qnt_expect(const st_tensor *t, st_dtype dt, st_dtype dt_alt, int n_dims, int64_t d0, int64_t d1,
                     const char *why, ck_error *err)
{
    if (t->dtype != dt && t->dtype != dt_alt)
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': dtype %s, the format stores %s", t->file_path, t->name,
                       st_dtype_name(t->dtype), st_dtype_name(dt));
    int ok = t->n_dims == n_dims && t->shape[0] == d0 && (n_dims < 2 || t->shape[1] == d1);
    if (!ok) {
        char got[96];
        size_t at = (size_t)snprintf(got, sizeof got, "[");
        for (int i = 0; i < t->n_dims && at < sizeof got; i++)
            at += (size_t)snprintf(got + at, sizeof got - at, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        if (at < sizeof got)
            snprintf(got + at, sizeof got - at, "]");
        if (n_dims == 1)
            return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': shape %s, %s implies [%lld]", t->file_path, t->name,
                           got, why, (long long)d0);
        return ck_fail(err, CK_E_SHAPE, "%s: tensor '%s': shape %s, %s implies [%lld, %lld]", t->file_path,
                       t->name, got, why, (long long)d0, (long long)d1);
    }
    return CK_OK;
}

/* ---- detection ------------------------------------------------------------------------------- */

static int set_has_suffix(const st_set *ws, const char *suffix)
{
    size_t ls = strlen(suffix);
    for (size_t i = 0; i < st_set_count(ws); i++) {
        const char *n = st_set_at(ws, i)->name;
        size_t ln = strlen(n);
        if (ln > ls && n[ln - ls - 1] == '.' && !strcmp(n + ln - ls, suffix))
            return 1;
    }
    return 0;
}

ck_status qnt_detect(const char *dir, const st_set *ws, qnt_config *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    char path[1200];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_status st = cfg_read_file(path, 16u << 20, &text, &len, err);
    if (st != CK_OK)
        return st;
    st = qnt_parse_config(text, len, path, out, err);
    free(text);
    if (st != CK_OK)
        return st;
    if (out->format == QNT_NONE) { /* older GPTQ files keep the block in quantize_config.json */
        ck_error e2;
        snprintf(path, sizeof path, "%s/quantize_config.json", dir);
        if (cfg_read_file(path, 1u << 20, &text, &len, &e2) == CK_OK) {
            /* the file is the block itself: wrap it */
            size_t wl = len + 32;
            char *wrapped = malloc(wl);
            if (!wrapped) {
                free(text);
                return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
            }
            int n = snprintf(wrapped, wl, "{\"quantization_config\":%s}", text);
            free(text);
            st = qnt_parse_config(wrapped, (size_t)n, path, out, err);
            free(wrapped);
            if (st != CK_OK)
                return st;
            if (out->format != QNT_NONE && out->format != QNT_GPTQ)
                return ck_fail(err, CK_E_CONFIG, "%s: quant_method must be 'gptq' here", path);
        }
    }
    if (!ws)
        return CK_OK;
    int has_gptq = set_has_suffix(ws, "qweight"), has_exl2 = set_has_suffix(ws, "q_weight");
    if (out->format == QNT_NONE) {
        if (has_exl2) {
            out->format = QNT_EXL2;
            return CK_OK;
        }
        if (has_gptq)
            return ck_fail(err, CK_E_CONFIG, "%s/config.json: the weights hold GPTQ tensors (*.qweight) but there "
                           "is no quantization_config (bits, group_size unknown)", dir);
        return CK_OK;
    }
    if (out->format == QNT_GPTQ && !has_gptq)
        return ck_fail(err, CK_E_MISSING, "%s/config.json: quantization_config says gptq but no tensor ends in "
                       "'.qweight'", dir);
    if (out->format == QNT_EXL2 && !has_exl2)
        return ck_fail(err, CK_E_MISSING, "%s/config.json: quantization_config says exl2 but no tensor ends in "
                       "'.q_weight'", dir);
    return CK_OK;
}

bool qnt_linear_is_quantized(const qnt_config *q, const st_set *ws, const char *prefix)
{
    if (!q || q->format == QNT_NONE)
        return false;
    return qnt_find(ws, prefix, q->format == QNT_GPTQ ? "qweight" : "q_weight") != NULL;
}

int qnt_linear_expected(const qnt_config *q, const char *prefix, char *names, size_t name_cap, int cap,
                        int *n_required)
{
    static const char *const gptq[] = {"qweight", "qzeros", "scales", "g_idx"};
    static const char *const exl2[] = {"q_invperm", "q_groups", "q_weight", "q_scale", "q_scale_max"};
    const char *const *list = q->format == QNT_GPTQ ? gptq : exl2;
    int n = q->format == QNT_GPTQ ? 4 : q->format == QNT_EXL2 ? 5 : 0;
    if (n_required)
        *n_required = q->format == QNT_GPTQ ? 3 : n;
    for (int i = 0; i < n && i < cap; i++)
        snprintf(names + (size_t)i * name_cap, name_cap, "%s.%s", prefix, list[i]);
    return n;
}

/* ---- one linear from a file ------------------------------------------------------------------ */

static ck_status view_of(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                         qnt_view *v, ck_error *err)
{
    if (K <= 0 || N <= 0 || K > INT32_MAX || N > INT32_MAX)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "linear '%s': bad dimensions K %lld, N %lld", prefix,
                       (long long)K, (long long)N);
    if (q->format == QNT_GPTQ)
        return qnt_gptq_view(q, ws, prefix, K, N, v, err);
    if (q->format == QNT_EXL2)
        return qnt_exl2_view(ws, prefix, K, N, v, err);
    return ck_fail(err, CK_E_INVALID_ARGUMENT, "linear '%s': the checkpoint is not quantized", prefix);
}

static ck_status check_view(const qnt_view *v, qnt_linear_info *info, ck_error *err)
{
    int64_t rows_at[9] = {0};
    ck_status st;
    if (v->format == QNT_GPTQ) {
        st = qnt_gptq_check_values(v, err);
        rows_at[v->bits] = v->K;
    } else {
        st = qnt_exl2_check_values(v, rows_at, err);
    }
    if (st == CK_OK && info) {
        memset(info, 0, sizeof *info);
        info->format = v->format;
        info->K = v->K;
        info->N = v->N;
        info->n_groups = v->n_groups;
        info->bytes = v->bytes;
        info->bits_per_weight = (double)v->bytes * 8.0 / ((double)v->K * (double)v->N);
        memcpy(info->rows_at_bits, rows_at, sizeof rows_at);
    }
    return st;
}

ck_status qnt_check_linear(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                           qnt_linear_info *info, ck_error *err)
{
    qnt_view v;
    ck_status st = view_of(q, ws, prefix, K, N, &v, err);
    return st == CK_OK ? check_view(&v, info, err) : st;
}

static ck_status dequant_view(const qnt_view *v, float *out, ck_error *err)
{
    if (v->format == QNT_GPTQ) {
        qnt_gptq_dequant(v, out);
        return CK_OK;
    }
    return qnt_exl2_dequant(v, out, err);
}

ck_status qnt_dequantize_linear(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                                float *out, ck_error *err)
{
    qnt_view v;
    ck_status st = view_of(q, ws, prefix, K, N, &v, err);
    if (st == CK_OK)
        st = check_view(&v, NULL, err);
    if (st == CK_OK)
        st = dequant_view(&v, out, err);
    return st;
}

/* ---- in-memory linears ----------------------------------------------------------------------- */

void qnt_host_linear_free(qnt_host_linear *l)
{
    if (!l)
        return;
    free(l->qweight);
    free(l->qzeros);
    free(l->scales);
    free(l->g_idx);
    free(l->q_invperm);
    free(l->q_groups);
    free(l->q_weight);
    free(l->q_scale);
    free(l->q_scale_max);
    memset(l, 0, sizeof *l);
}

static void host_view(const qnt_host_linear *l, qnt_view *v)
{
    memset(v, 0, sizeof *v);
    v->format = l->format;
    v->K = l->K;
    v->N = l->N;
    v->bits = l->bits;
    v->group_size = l->group_size == -1 ? (int)l->K : l->group_size;
    v->n_groups = l->n_groups;
    v->v2 = l->v2;
    v->qweight = (const uint8_t *)l->qweight;
    v->qzeros = (const uint8_t *)l->qzeros;
    v->scales = (const uint8_t *)l->scales;
    v->g_idx = (const uint8_t *)l->g_idx;
    v->q_invperm = (const uint8_t *)l->q_invperm;
    v->q_groups = (const uint8_t *)l->q_groups;
    v->q_weight = (const uint8_t *)l->q_weight;
    v->q_scale = (const uint8_t *)l->q_scale;
    v->q_scale_max = (const uint8_t *)l->q_scale_max;
    v->packed_rows = l->packed_rows;
    v->bytes = l->bytes;
    v->prefix = "in-memory linear";
    v->file = "memory";
}

ck_status qnt_host_linear_dequantize(const qnt_host_linear *l, float *out, ck_error *err)
{
    qnt_view v;
    host_view(l, &v);
    if ((v.format == QNT_GPTQ && (!v.qweight || !v.qzeros || !v.scales)) ||
        (v.format == QNT_EXL2 && (!v.q_invperm || !v.q_groups || !v.q_weight || !v.q_scale || !v.q_scale_max)) ||
        v.format == QNT_NONE)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "in-memory linear: arrays missing for format %s",
                       qnt_format_name(v.format));
    ck_status st = check_view(&v, NULL, err);
    if (st == CK_OK)
        st = dequant_view(&v, out, err);
    return st;
}

static void *dup_bytes(const uint8_t *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* The width a group of b bits is stored at by qnt_host_linear_exl2_widen at `level`: 4 for 2..4, 8 for 5..8; 8 for
 * every group of a linear with `to8` (QNT_WIDEN_8 and qnt_exl2_all_to_8); b itself at QNT_WIDEN_NONE. */
static int widened_bits(int b, int level, bool to8)
{
    if (level <= QNT_WIDEN_NONE)
        return b;
    if (level >= QNT_WIDEN_8 && to8)
        return 8;
    return b <= 4 ? 4 : 8;
}
/* QNT_WIDEN_8's rule for one linear: rows (of K) at 2..4 bits and at 5..8, both present and the wider at least
 * half. Measured (H200, 8B, BF16, tokens/s at batches 1 / 4 / 16): exl2-4.5 (half its rows at 5 bits) 240 / 826 /
 * 1580 as 4 + 8 bits against 291 / 868 / 1877 all at 8; exl2-4.25 (a quarter) 269 / 933 / 1956 against 291 / 867 /
 * 1878: doubling a 4-bit majority's bytes costs more than the general kernel does. */
bool qnt_exl2_all_to_8(int64_t narrow_rows, int64_t wide_rows)
{
    return narrow_rows > 0 && wide_rows > 0 && wide_rows >= narrow_rows;
}
static bool exl2_to8(const qnt_host_linear *l)
{
    int64_t narrow = 0, wide = 0;
    for (int g = 0; g < l->n_groups; g++) {
        const int b = l->q_groups[2 * g];
        if (b < 2 || b > 8)
            continue; /* not validated yet (qnt_exl2_widen_changes): the widening's validation refuses it */
        const int64_t r1 = g + 1 < l->n_groups ? l->q_groups[2 * g + 3] : l->packed_rows;
        const int64_t rows = (r1 - l->q_groups[2 * g + 1]) * 32 / b;
        *(b <= 4 ? &narrow : &wide) += rows;
    }
    return qnt_exl2_all_to_8(narrow, wide);
}

bool qnt_exl2_widen_changes(const qnt_host_linear *l, int level)
{
    if (l->format != QNT_EXL2 || !l->q_groups)
        return false;
    const bool to8 = exl2_to8(l);
    for (int g = 0; g < l->n_groups; g++)
        if (widened_bits(l->q_groups[2 * g], level, to8) != l->q_groups[2 * g])
            return true;
    return false;
}

int qnt_exl2_widen_mode(void)
{
    const char *e = getenv("CHASKI_EXL2_WIDEN");
    if (e && (!strcmp(e, "0") || !strcmp(e, "1") || !strcmp(e, "2")))
        return e[0] - '0';
    return -1;
}

ck_status qnt_host_linear_exl2_widen(const qnt_host_linear *l, int level, qnt_host_linear *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    if (l->format != QNT_EXL2 || !l->q_invperm || !l->q_groups || !l->q_weight || !l->q_scale || !l->q_scale_max)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "EXL2 widening: the linear is not a complete EXL2 one");
    if (level != QNT_WIDEN_4_8 && level != QNT_WIDEN_8)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "EXL2 widening: level %d (1 or 2)", level);
    qnt_view v;
    host_view(l, &v);
    ck_status st = check_view(&v, NULL, err);
    if (st != CK_OK)
        return st;
    const int G = l->n_groups;
    const int64_t N = l->N;
    const bool to8 = exl2_to8(l);
    /* the widened groups' first packed rows: each group's rows at its new width, in order */
    int64_t rows_out = 0;
    for (int g = 0; g < G; g++) {
        const int b = l->q_groups[2 * g];
        const int64_t r0 = l->q_groups[2 * g + 1], r1 = g + 1 < G ? l->q_groups[2 * g + 3] : l->packed_rows;
        /* whole: a group's rows are 16 k (b = 2, 6) or 32 k */
        rows_out += (r1 - r0) * 32 / b * widened_bits(b, level, to8) / 32;
    }
    if (rows_out > INT16_MAX)
        return ck_fail(err, CK_E_UNSUPPORTED, "EXL2 widening: %lld packed rows do not fit q_groups' int16 row starts",
                       (long long)rows_out);
    *out = *l;
    out->q_invperm = malloc((size_t)l->K * sizeof *out->q_invperm);
    out->q_groups = malloc((size_t)G * 2 * sizeof *out->q_groups);
    out->q_weight = calloc((size_t)rows_out * (size_t)N, sizeof *out->q_weight);
    out->q_scale = malloc((size_t)G * (size_t)(N / 8) * sizeof *out->q_scale);
    out->q_scale_max = malloc((size_t)G * sizeof *out->q_scale_max);
    out->qweight = NULL;
    out->qzeros = NULL;
    out->scales = NULL;
    out->g_idx = NULL;
    if (!out->q_invperm || !out->q_groups || !out->q_weight || !out->q_scale || !out->q_scale_max) {
        qnt_host_linear_free(out);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "EXL2 widening: out of memory");
    }
    memcpy(out->q_invperm, l->q_invperm, (size_t)l->K * sizeof *out->q_invperm);
    memcpy(out->q_scale, l->q_scale, (size_t)G * (size_t)(N / 8) * sizeof *out->q_scale);
    memcpy(out->q_scale_max, l->q_scale_max, (size_t)G * sizeof *out->q_scale_max);
    out->packed_rows = rows_out;
    out->widen = QNT_WIDEN_NONE; /* done */
    int64_t at = 0; /* the current group's first packed row in the output */
    for (int g = 0; g < G; g++) {
        const int b = l->q_groups[2 * g], B = widened_bits(b, level, to8);
        const int64_t r0 = l->q_groups[2 * g + 1], r1 = g + 1 < G ? l->q_groups[2 * g + 3] : l->packed_rows;
        const int64_t rows = (r1 - r0) * 32 / b;
        const uint32_t shift = (1u << (B - 1)) - (1u << (b - 1));
        out->q_groups[2 * g] = (int16_t)B;
        out->q_groups[2 * g + 1] = (int16_t)at;
        for (int64_t i = 0; i < rows; i++) {
            const int64_t wo = at + i * B / 32; /* B divides 32: no value crosses a row at the new width */
            const int sho = (int)(i * B % 32);
            for (int64_t n = 0; n < N; n++)
                out->q_weight[wo * N + n] |= (qnt_exl2_value(v.q_weight, N, r0, b, i, n) + shift) << sho;
        }
        at += rows * B / 32;
    }
    out->bytes = (uint64_t)l->K * 4 + (uint64_t)G * 4 + (uint64_t)rows_out * (uint64_t)N * 4 +
                 (uint64_t)G * (uint64_t)(N / 8) * 4 + (uint64_t)G * 2;
    return CK_OK;
}

ck_status qnt_host_linear_from_set(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                                   qnt_host_linear *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    qnt_view v;
    ck_status st = view_of(q, ws, prefix, K, N, &v, err);
    if (st == CK_OK)
        st = check_view(&v, NULL, err);
    if (st != CK_OK)
        return st;
    out->format = v.format;
    out->K = K;
    out->N = N;
    out->bits = v.bits;
    out->group_size = v.group_size;
    out->n_groups = v.n_groups;
    out->v2 = v.v2;
    out->packed_rows = v.packed_rows;
    out->bytes = v.bytes;
    out->widen = v.format == QNT_EXL2 && q ? q->exl2_widen : QNT_WIDEN_NONE;
    int ok = 1;
    if (v.format == QNT_GPTQ) {
        int per = 32 / v.bits;
        out->qweight = dup_bytes(v.qweight, (size_t)(K / per) * (size_t)N * 4);
        out->qzeros = dup_bytes(v.qzeros, (size_t)v.n_groups * (size_t)(N / per) * 4);
        out->scales = dup_bytes(v.scales, (size_t)v.n_groups * (size_t)N * 2);
        out->g_idx = malloc((size_t)K * 4);
        ok = out->qweight && out->qzeros && out->scales && out->g_idx;
        if (ok)
            for (int64_t k = 0; k < K; k++)
                out->g_idx[k] = v.g_idx ? qv_i32(v.g_idx, k) : (int32_t)(k / v.group_size);
    } else {
        out->q_invperm = dup_bytes(v.q_invperm, (size_t)K * 4);
        out->q_groups = dup_bytes(v.q_groups, (size_t)v.n_groups * 4);
        out->q_weight = dup_bytes(v.q_weight, (size_t)v.packed_rows * (size_t)N * 4);
        out->q_scale = dup_bytes(v.q_scale, (size_t)v.n_groups * (size_t)(N / 8) * 4);
        out->q_scale_max = dup_bytes(v.q_scale_max, (size_t)v.n_groups * 2);
        ok = out->q_invperm && out->q_groups && out->q_weight && out->q_scale && out->q_scale_max;
    }
    if (!ok) {
        qnt_host_linear_free(out);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "linear '%s': out of memory", prefix);
    }
    return CK_OK;
}
