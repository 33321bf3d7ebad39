/* engine/quant unit tests: quantization_config parsing, format names, fp16 conversion, random in-memory
 * linears (dequantized, validated), and every value check on corrupted in-memory linears. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "plan.h"
#include "quant.h"

static ck_status parse(const char *json, qnt_config *q, ck_error *err)
{
    return qnt_parse_config(json, strlen(json), "config.json", q, err);
}

static void gptq_config_should_parse_every_field(void **state)
{
    qnt_config q;
    ck_error err = {0};
    assert_int_equal(parse("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 8, \"group_size\": 32, "
                           "\"desc_act\": true, \"sym\": false, \"checkpoint_format\": \"gptq_v2\"}}", &q, &err), CK_OK);
    assert_int_equal(q.format, QNT_GPTQ);
    assert_int_equal(q.bits, 8);
    assert_int_equal(q.group_size, 32);
    assert_true(q.desc_act && !q.sym && q.v2);
    assert_int_equal(parse("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}}", &q, &err), CK_OK);
    assert_true(q.group_size == -1 && !q.desc_act && q.sym && !q.v2);
    assert_int_equal(parse("{\"hidden_size\": 8}", &q, &err), CK_OK);
    assert_int_equal(q.format, QNT_NONE);
    assert_int_equal(parse("{\"quantization_config\": {\"quant_method\": \"exl2\", \"bits\": 4.25, \"head_bits\": 6}}",
                           &q, &err), CK_OK);
    assert_int_equal(q.format, QNT_EXL2);
    assert_true(q.exl2_bits == 4.25 && q.exl2_head_bits == 6);
}

static void bad_quantization_configs_should_be_refused_with_their_status(void **state)
{
    static const struct { const char *json; ck_status st; const char *words; } cases[] = {
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 3}}", CK_E_UNSUPPORTED, "bits 3"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 5}}", CK_E_CONFIG, "4 or 8"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\"}}", CK_E_CONFIG, "bits is required"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 48}}", CK_E_CONFIG,
         "power of two"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 0}}", CK_E_CONFIG,
         "group_size"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": \"4\"}}", CK_E_CONFIG, "integer"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"desc_act\": 1}}", CK_E_CONFIG,
         "desc_act"},
        {"{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"checkpoint_format\": \"marlin\"}}",
         CK_E_UNSUPPORTED, "marlin"},
        {"{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4}}", CK_E_UNSUPPORTED, "awq"},
        {"{\"quantization_config\": {\"bits\": 4}}", CK_E_CONFIG, "quant_method"},
        {"{\"quantization_config\": 4}", CK_E_CONFIG, "object"},
        {"{\"quantization_config\": {\"quant_method\": \"exl2\", \"bits\": \"4.0\"}}", CK_E_CONFIG, "bits"},
        {"[1]", CK_E_CONFIG, "object"},
        {"{", CK_E_CONFIG, "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qnt_config q;
        ck_error err = {0};
        ck_status st = parse(cases[i].json, &q, &err);
        if (st != cases[i].st || !strstr(err.msg, cases[i].words) || !strstr(err.msg, "config.json"))
            fail_msg("%s: got %s '%s', want %s with '%s'", cases[i].json, ck_status_name(st), err.msg,
                     ck_status_name(cases[i].st), cases[i].words);
    }
}

static void format_names_should_parse(void **state)
{
    qnt_config q;
    ck_error err = {0};
    assert_int_equal(qnt_parse_format_name("gptq4-g128", &q, &err), CK_OK);
    assert_true(q.format == QNT_GPTQ && q.bits == 4 && q.group_size == 128 && !q.desc_act);
    assert_int_equal(qnt_parse_format_name("gptq8-gall-act-v2", &q, &err), CK_OK);
    assert_true(q.bits == 8 && q.group_size == -1 && q.desc_act && q.v2);
    assert_int_equal(qnt_parse_format_name("exl2-2.5", &q, &err), CK_OK);
    assert_true(q.format == QNT_EXL2 && q.exl2_bits == 2.5);
    const char *bad[] = {"gptq3-g128", "gptq4-g100", "gptq4", "exl2-9", "exl2-", "awq4", "gptq4-g128-x", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(qnt_parse_format_name(bad[i], &q, &err), CK_E_INVALID_ARGUMENT);
}

static void fp16_conversion_should_round_trip_every_value(void **state)
{
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu))
            continue; /* NaN */
        float f = qnt_half_to_float((uint16_t)h);
        if (qnt_float_to_half(f) != h)
            fail_msg("half 0x%04x -> %g -> 0x%04x", h, (double)f, qnt_float_to_half(f));
    }
    assert_true(qnt_half_to_float(0x3C00) == 1.0f);
    assert_int_equal(qnt_float_to_half(1.0f + 1.0f / 4096), 0x3C00); /* ties to even */
    assert_int_equal(qnt_float_to_half(65520.0f), 0x7C00);
}

static void dequant(const qnt_host_linear *l, ck_status want, const char *words)
{
    float *w = malloc((size_t)(l->K * l->N) * sizeof *w);
    ck_error err = {0};
    ck_status st = qnt_host_linear_dequantize(l, w, &err);
    if (st != want || (words && !strstr(err.msg, words)))
        fail_msg("got %s '%s', want %s with '%s'", ck_status_name(st), err.msg, ck_status_name(want),
                 words ? words : "");
    if (st == CK_OK)
        for (size_t i = 0; i < (size_t)(l->K * l->N); i++)
            assert_true(isfinite(w[i]) && fabsf(w[i]) < 10.0f);
    free(w);
}

static void random_linears_should_dequantize_and_hit_their_bits(void **state)
{
    const char *names[] = {"gptq4-g128", "gptq4-g32-act", "gptq8-g64-v2", "gptq8-gall", "exl2-4.0", "exl2-2.5",
                           "exl2-6.0", "exl2-8.0", "exl2-3.25", NULL};
    for (int i = 0; names[i]; i++) {
        qnt_config q;
        qnt_host_linear l;
        ck_error err = {0};
        assert_int_equal(qnt_parse_format_name(names[i], &q, &err), CK_OK);
        assert_int_equal(qnt_host_linear_random(&q, 512, 96, 42 + (uint64_t)i, &l, &err), CK_OK);
        dequant(&l, CK_OK, NULL);
        double bpw = (double)l.bytes * 8.0 / (512.0 * 96.0);
        double want = q.format == QNT_GPTQ ? q.bits : q.exl2_bits;
        print_message("  %-14s %.3f bits per weight (all arrays counted)\n", names[i], bpw);
        assert_true(bpw >= want && bpw < want + 1.3);
        qnt_host_linear_free(&l);
    }
}

/* qnt_host_linear_exl2_perm: one seed gives linears of one K one permutation (and only the permutation changes, so
 * each weight keeps its input row's weights: the dequantization permutes its columns), another seed another; GPTQ
 * linears are left alone. */
static void exl2_perm_should_give_one_input_one_permutation(void **state)
{
    (void)state;
    qnt_config q;
    qnt_host_linear a, b, c;
    ck_error err = {0};
    const int64_t K = 256, N = 64;
    assert_int_equal(qnt_parse_format_name("exl2-4.0", &q, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, K, N, 11, &a, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, K, 32, 12, &b, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, K, N, 11, &c, &err), CK_OK);
    float *w0 = malloc((size_t)(N * K) * sizeof *w0), *w1 = malloc((size_t)(N * K) * sizeof *w1);
    assert_non_null(w0);
    assert_non_null(w1);
    assert_int_equal(qnt_host_linear_dequantize(&a, w0, &err), CK_OK);
    qnt_host_linear_exl2_perm(&a, 5);
    qnt_host_linear_exl2_perm(&b, 5);
    qnt_host_linear_exl2_perm(&c, 6);
    assert_memory_equal(a.q_invperm, b.q_invperm, (size_t)K * 4);
    assert_memory_not_equal(a.q_invperm, c.q_invperm, (size_t)K * 4);
    assert_int_equal(qnt_host_linear_dequantize(&a, w1, &err), CK_OK); /* validated: still a permutation */
    /* packed row p held input row old_inv^-1(p) and now holds new_inv^-1(p): weight [n, k] moves to the input row
     * whose new packed row is k's old one */
    qnt_host_linear o;
    assert_int_equal(qnt_host_linear_random(&q, K, N, 11, &o, &err), CK_OK);
    int32_t *inv_new = malloc((size_t)K * sizeof *inv_new);
    assert_non_null(inv_new);
    for (int64_t k = 0; k < K; k++)
        inv_new[a.q_invperm[k]] = (int32_t)k; /* packed row -> input row, after */
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            assert_true(w0[n * K + k] == w1[n * K + inv_new[o.q_invperm[k]]]);
    free(inv_new);
    qnt_host_linear_free(&o);
    assert_int_equal(qnt_parse_format_name("gptq4-g128-act", &q, &err), CK_OK);
    qnt_host_linear g;
    assert_int_equal(qnt_host_linear_random(&q, K, N, 13, &g, &err), CK_OK);
    int32_t *g_idx = malloc((size_t)K * sizeof *g_idx);
    assert_non_null(g_idx);
    memcpy(g_idx, g.g_idx, (size_t)K * sizeof *g_idx);
    qnt_host_linear_exl2_perm(&g, 5);
    assert_memory_equal(g.g_idx, g_idx, (size_t)K * sizeof *g_idx);
    free(g_idx);
    free(w0);
    free(w1);
    qnt_host_linear_free(&a);
    qnt_host_linear_free(&b);
    qnt_host_linear_free(&c);
    qnt_host_linear_free(&g);
}

static void corrupted_linears_should_be_refused(void **state)
{
    qnt_config q;
    qnt_host_linear l;
    ck_error err = {0};
    assert_int_equal(qnt_parse_format_name("gptq4-g64-act", &q, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, 256, 64, 1, &l, &err), CK_OK);
    l.g_idx[17] = 4; /* G = 4 */
    dequant(&l, CK_E_FORMAT, "g_idx[17] = 4 is outside [0, 4)");
    l.g_idx[17] = -1;
    dequant(&l, CK_E_FORMAT, "g_idx[17] = -1");
    qnt_host_linear_free(&l);

    assert_int_equal(qnt_parse_format_name("exl2-4.5", &q, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, 256, 64, 2, &l, &err), CK_OK);
    int32_t keep = l.q_invperm[3];
    l.q_invperm[3] = l.q_invperm[4];
    dequant(&l, CK_E_FORMAT, "not a permutation");
    l.q_invperm[3] = 256;
    dequant(&l, CK_E_FORMAT, "outside [0, 256)");
    l.q_invperm[3] = keep;
    dequant(&l, CK_OK, NULL);
    int16_t b0 = l.q_groups[0];
    l.q_groups[0] = 7;
    dequant(&l, CK_E_FORMAT, "7 bits");
    l.q_groups[0] = b0;
    l.q_groups[2 * 7] = 8; /* a wider group after narrower ones */
    dequant(&l, CK_E_FORMAT, "descending");
    l.q_groups[2 * 7] = l.q_groups[2 * 6];
    int16_t r = l.q_groups[2 * 7 + 1];
    l.q_groups[2 * 7 + 1] = (int16_t)(l.packed_rows + 3);
    dequant(&l, CK_E_FORMAT, "overruns");
    l.q_groups[2 * 7 + 1] = l.q_groups[2 * 6 + 1]; /* two groups at one start */
    dequant(&l, CK_E_FORMAT, "rows must increase");
    l.q_groups[2 * 7 + 1] = r;
    l.packed_rows -= 2; /* a shorter q_weight: the groups no longer hold K rows */
    dequant(&l, CK_E_FORMAT, "config.json implies in_features 256");
    l.packed_rows += 2;
    l.q_groups[1] = 1;
    dequant(&l, CK_E_FORMAT, "not 0");
    l.q_groups[1] = 0;
    dequant(&l, CK_OK, NULL);
    qnt_host_linear_free(&l);
}

/* Widening keeps every weight: random linears of each EXL2 mix dequantize to the same floats before and after,
 * every group is 4 or 8 bits wide afterwards, and the packed rows are what the new widths need. */
static void exl2_widening_should_keep_every_weight(void **state)
{
    const char *names[] = {"exl2-2.0", "exl2-2.5", "exl2-3.0", "exl2-3.25", "exl2-4.0", "exl2-4.25", "exl2-4.5",
                           "exl2-5.5", "exl2-6.0", "exl2-7.0", "exl2-8.0", NULL};
    const int64_t K = 512, N = 96;
    for (int level = QNT_WIDEN_4_8; level <= QNT_WIDEN_8; level++)
        for (int i = 0; names[i]; i++) {
            qnt_config q;
            qnt_host_linear l, w;
            ck_error err = {0};
            assert_int_equal(qnt_parse_format_name(names[i], &q, &err), CK_OK);
            assert_int_equal(qnt_host_linear_random(&q, K, N, 7 + (uint64_t)i, &l, &err), CK_OK);
            assert_int_equal(qnt_host_linear_exl2_widen(&l, level, &w, &err), CK_OK);
            /* level 2: a linear with rows in groups of both 2..4 and 5..8 bits, at least half in the wider, goes all
             * to 8 (of these mixes: exl2-4.5, half its rows at 5 bits; not exl2-4.25, a quarter) */
            int64_t narrow = 0, wide = 0;
            bool changed = false;
            for (int g = 0; g < l.n_groups; g++) {
                const int b = l.q_groups[2 * g];
                const int64_t r1 = g + 1 < l.n_groups ? l.q_groups[2 * g + 3] : l.packed_rows;
                *(b <= 4 ? &narrow : &wide) += (r1 - l.q_groups[2 * g + 1]) * 32 / b;
            }
            const bool to8 = level == 2 && narrow > 0 && wide > 0 && 2 * wide >= K;
            int64_t want_rows = 0;
            for (int g = 0; g < l.n_groups; g++) {
                const int b = l.q_groups[2 * g], want_b = to8 ? 8 : b <= 4 ? 4 : 8;
                const int64_t r1 = g + 1 < l.n_groups ? l.q_groups[2 * g + 3] : l.packed_rows;
                want_rows += (r1 - l.q_groups[2 * g + 1]) * 32 / b * want_b / 32;
                assert_int_equal(w.q_groups[2 * g], want_b);
                changed = changed || want_b != b;
            }
            assert_int_equal(qnt_exl2_widen_changes(&l, level), changed);
            assert_int_equal(w.packed_rows, want_rows);
            assert_int_equal(w.n_groups, l.n_groups);
            float *a = malloc((size_t)(K * N) * sizeof *a), *b = malloc((size_t)(K * N) * sizeof *b);
            assert_non_null(a);
            assert_non_null(b);
            assert_int_equal(qnt_host_linear_dequantize(&l, a, &err), CK_OK);
            assert_int_equal(qnt_host_linear_dequantize(&w, b, &err), CK_OK);
            assert_memory_equal(a, b, (size_t)(K * N) * sizeof *a);
            print_message("  %-10s level %d: %.3f -> %.3f bits per weight\n", names[i], level,
                          (double)l.bytes * 8.0 / (double)(K * N), (double)w.bytes * 8.0 / (double)(K * N));
            free(a);
            free(b);
            qnt_host_linear_free(&w);
            qnt_host_linear_free(&l);
        }
}

/* One 6-bit group of 32 rows packed by hand (a bit array, each value's bits set one by one, so values cross word
 * boundaries), widened: value i of column n must be byte i % 4 of 8-bit packed row i / 4, plus 128 - 32. And a
 * GPTQ linear or a corrupted EXL2 one is refused. */
static void exl2_widening_should_place_each_value(void **state)
{
    enum { K = 32, N = 8, B = 6 };
    uint32_t words[B * N] = {0}; /* [6 packed rows, N] */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < K; i++) {
            const unsigned v = (unsigned)(i * 5 + n * 7) & 63u;
            for (int bit = 0; bit < B; bit++)
                if (v >> bit & 1u) {
                    const int at = i * B + bit; /* position in the column's stream */
                    words[(at / 32) * N + n] |= 1u << (at % 32);
                }
        }
    int32_t invperm[K];
    for (int k = 0; k < K; k++)
        invperm[k] = k;
    int16_t groups[2] = {B, 0};
    uint32_t qscale[N / 8] = {0x76543210u};
    uint16_t qsmax[1] = {qnt_float_to_half(0.5f)};
    qnt_host_linear l = {0};
    l.format = QNT_EXL2;
    l.K = K;
    l.N = N;
    l.n_groups = 1;
    l.q_invperm = invperm;
    l.q_groups = groups;
    l.q_weight = words;
    l.packed_rows = B;
    l.q_scale = qscale;
    l.q_scale_max = qsmax;
    qnt_host_linear w;
    ck_error err = {0};
    assert_int_equal(qnt_host_linear_exl2_widen(&l, QNT_WIDEN_4_8, &w, &err), CK_OK);
    assert_int_equal(w.packed_rows, 8);
    assert_int_equal(w.q_groups[0], 8);
    assert_int_equal(w.q_groups[1], 0);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < K; i++) {
            const unsigned v = (unsigned)(i * 5 + n * 7) & 63u;
            assert_int_equal((w.q_weight[(i / 4) * N + n] >> (8 * (i % 4))) & 255u, v + 96u);
        }
    qnt_host_linear_free(&w);

    groups[0] = 7; /* not an EXL2 width: refused by the validation, nothing allocated */
    assert_int_equal(qnt_host_linear_exl2_widen(&l, QNT_WIDEN_4_8, &w, &err), CK_E_FORMAT);
    assert_null(w.q_weight);
    groups[0] = B;
    assert_int_equal(qnt_host_linear_exl2_widen(&l, QNT_WIDEN_NONE, &w, &err), CK_E_INVALID_ARGUMENT);
    assert_int_equal(qnt_host_linear_exl2_widen(&l, 3, &w, &err), CK_E_INVALID_ARGUMENT);
    assert_null(w.q_weight);
    qnt_config q;
    qnt_host_linear g;
    assert_int_equal(qnt_parse_format_name("gptq4-g128", &q, &err), CK_OK);
    assert_int_equal(qnt_host_linear_random(&q, 256, 64, 3, &g, &err), CK_OK);
    assert_int_equal(qnt_host_linear_exl2_widen(&g, QNT_WIDEN_4_8, &w, &err), CK_E_INVALID_ARGUMENT);
    assert_false(qnt_exl2_widen_changes(&g, QNT_WIDEN_8));
    qnt_host_linear_free(&g);
}

/* The request a load's EXL2 widening is chosen against: the host's, raised to at least what mdl_load refuses a
 * model against (a 512-token chunk, one sequence, 256 tokens of KV), in the host's page size. */
static void load_request_should_cover_the_least_a_load_needs(void **state)
{
    (void)state;
    pl_request r;
    pl_load_request(NULL, &r);
    assert_int_equal(r.max_tokens, 512);
    assert_int_equal(r.max_seqs, 1);
    assert_int_equal(r.kv_pages, 1);
    assert_int_equal(r.page_size, KV_DEFAULT_PAGE_SIZE);
    const pl_request small = {16, 0, 1, 16}, big = {2048, 8, 4000, 16}, odd = {600, 2, 1, 100};
    pl_load_request(&small, &r);
    assert_int_equal(r.max_tokens, 512);
    assert_int_equal(r.max_seqs, 1);
    assert_int_equal(r.kv_pages, 16); /* 256 tokens in pages of 16 */
    assert_int_equal(r.page_size, 16);
    pl_load_request(&big, &r);
    assert_memory_equal(&r, &big, sizeof r);
    pl_load_request(&odd, &r);
    assert_int_equal(r.max_tokens, 600);
    assert_int_equal(r.kv_pages, 3); /* 256 tokens need 3 pages of 100 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gptq_config_should_parse_every_field),
        cmocka_unit_test(bad_quantization_configs_should_be_refused_with_their_status),
        cmocka_unit_test(format_names_should_parse),
        cmocka_unit_test(fp16_conversion_should_round_trip_every_value),
        cmocka_unit_test(random_linears_should_dequantize_and_hit_their_bits),
        cmocka_unit_test(exl2_perm_should_give_one_input_one_permutation),
        cmocka_unit_test(corrupted_linears_should_be_refused),
        cmocka_unit_test(exl2_widening_should_keep_every_weight),
        cmocka_unit_test(exl2_widening_should_place_each_value),
        cmocka_unit_test(load_request_should_cover_the_least_a_load_needs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
