/* quant_internal.h: what the quant files share (not part of the engine's API).
 * A qnt_view points at one quantized linear's arrays wherever they live (a mapped file, whose data may
 * be misaligned, or host memory): every read goes through memcpy, never a typed load. */
#ifndef CK_QUANT_INTERNAL_H
#define CK_QUANT_INTERNAL_H

#include <string.h>

#include "quant.h"

typedef struct qnt_view {
    qnt_format format;
    int64_t K, N;
    int bits, group_size, n_groups;
    bool v2;
    const uint8_t *qweight, *qzeros, *scales, *g_idx; /* g_idx NULL: row k is in group k / group_size */
    const uint8_t *q_invperm, *q_groups, *q_weight, *q_scale, *q_scale_max;
    int64_t packed_rows;
    uint64_t bytes;
    const char *prefix; /* for messages */
    const char *file;
} qnt_view;

static inline uint32_t qv_u32(const uint8_t *p, int64_t i)
{
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}
static inline int32_t qv_i32(const uint8_t *p, int64_t i)
{
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}
static inline int16_t qv_i16(const uint8_t *p, int64_t i)
{
    int16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}
static inline float qv_f16(const uint8_t *p, int64_t i)
{
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return qnt_half_to_float(v);
}

/* EXL2: value i (0-based, in packed order) of column n of a b-bit group starting at packed row r0: bits i b.. of
 * the column's little-endian bit stream over the group's 32-bit rows (3-, 5- and 6-bit values cross into the next
 * row). q_weight is [packed rows, N] as stored. */
static inline uint32_t qnt_exl2_value(const uint8_t *q_weight, int64_t N, int64_t r0, int b, int64_t i, int64_t n)
{
    const int64_t pos = i * b, w = r0 + pos / 32;
    const int sh = (int)(pos % 32);
    uint64_t word = qv_u32(q_weight, w * N + n);
    if (sh + b > 32)
        word |= (uint64_t)qv_u32(q_weight, (w + 1) * N + n) << 32;
    return (uint32_t)(word >> sh) & ((1u << b) - 1);
}

/* GPTQ (quant_gptq.c) */
ck_status qnt_gptq_view(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                        qnt_view *v, ck_error *err);
ck_status qnt_gptq_check_values(const qnt_view *v, ck_error *err);
void qnt_gptq_dequant(const qnt_view *v, float *out);

/* EXL2 (quant_exl2.c) */
ck_status qnt_exl2_view(const st_set *ws, const char *prefix, int64_t K, int64_t N, qnt_view *v, ck_error *err);
ck_status qnt_exl2_check_values(const qnt_view *v, int64_t rows_at_bits[9], ck_error *err);
ck_status qnt_exl2_dequant(const qnt_view *v, float *out, ck_error *err);

/* shared tensor checks (quant.c) */
const st_tensor *qnt_find(const st_set *ws, const char *prefix, const char *suffix);
ck_status qnt_need(const st_set *ws, const char *prefix, const char *suffix, const char *format_name,
                   const st_tensor **out, ck_error *err);
ck_status qnt_expect(const st_tensor *t, st_dtype dt, st_dtype dt_alt, int n_dims, int64_t d0, int64_t d1,
                     const char *why, ck_error *err);

#endif
