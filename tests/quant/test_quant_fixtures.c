/* Quantized reference fixtures (tools/reference/quant/make_quant_fixtures.py, tests/fixtures/quant):
 *   every quantized linear dequantizes to exactly the packer's float32 weights (bit for bit: GPTQ is an
 *   integer times an fp16 scale, EXL2 one float32 rounding of an exact product; see quant.h);
 *   with reference.json (transformers' float32 outputs on those weights), on the CPU backend:
 *   last-position logits within 1e-4 relative L2, 32 greedy tokens identical, perplexity within 1e-3.
 * `--backend cuda` (ctest label gpu): logits within 1e-2 and perplexity within 1e-2 on the CUDA backend
 * (FP16/BF16 activations), skipped (77) without a device.
 * The models load through the production loader, mdl_load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "forward.h"
#include "generate.h"
#include "model.h"
#include "plan.h"
#include "quant.h"
#include "ref_util.h"

#define FIXDIR CHASKI_SOURCE_DIR "/tests/fixtures/quant"

static const char *const k_fixtures[] = {
    "gptq_b4_g128_act_sym", "gptq_b4_g32_asym_bias", "gptq_b4_g64_act_asym_v2", "gptq_b4_gall_sym_v2",
    "gptq_b8_g128_sym_v2",  "gptq_b8_g32_act_asym",  "gptq_b8_g64_act_sym",     "exl2_mixed_head6",
    "exl2_low_head8",
};
#define N_FIX (sizeof k_fixtures / sizeof k_fixtures[0])

static const char *g_backend = "cpu";

typedef struct fixture {
    char dir[1024];
    be_backend *be;
    mdl_model *model;
    cJSON *ref;
} fixture;

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static float *prompt_logits(const mdl_model *m, const int32_t *ids, int n);

/* ---- dequantization, exact ------------------------------------------------------------------- */

static void dequantized_weights_should_equal_the_packers(void **state)
{
    const char *name = *state;
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", FIXDIR, name);
    snprintf(path, sizeof path, "%s/dequant.safetensors", dir);
    ck_error err = {0};
    st_set *ws = NULL;
    st_file *ref = NULL;
    qnt_config q;
    if (st_set_open_dir(dir, &ws, &err) != CK_OK || st_open(path, &ref, &err) != CK_OK ||
        qnt_detect(dir, ws, &q, &err) != CK_OK)
        fail_msg("%s: %s", name, err.msg);
    size_t n_lin = 0, n_weights = 0;
    double bits = 0;
    for (size_t i = 0; i < st_count(ref); i++) {
        const st_tensor *t = st_at(ref, i);
        char prefix[256];
        assert_true(qnt_weight_prefix(t->name, prefix, sizeof prefix));
        int64_t N = t->shape[0], K = t->shape[1];
        assert_true(qnt_linear_is_quantized(&q, ws, prefix));
        qnt_linear_info info;
        if (qnt_check_linear(&q, ws, prefix, K, N, &info, &err) != CK_OK)
            fail_msg("%s: %s", prefix, err.msg);
        float *got = malloc((size_t)(N * K) * sizeof *got), *want = malloc((size_t)(N * K) * sizeof *want);
        if (qnt_dequantize_linear(&q, ws, prefix, K, N, got, &err) != CK_OK)
            fail_msg("%s: %s", prefix, err.msg);
        assert_int_equal(st_to_f32(t, 0, t->n_elems, want, &err), CK_OK);
        size_t bad = 0;
        for (size_t j = 0; j < (size_t)(N * K); j++)
            if (memcmp(&got[j], &want[j], sizeof(float)) != 0 && bad++ < 3)
                print_error("  %s[%zu, %zu]: %.9g, packer %.9g\n", prefix, j / (size_t)K, j % (size_t)K,
                            (double)got[j], (double)want[j]);
        if (bad)
            fail_msg("%s: %zu of %lld weights differ from the packer's", prefix, bad, (long long)(N * K));
        /* the in-memory copy dequantizes the same */
        qnt_host_linear hl;
        assert_int_equal(qnt_host_linear_from_set(&q, ws, prefix, K, N, &hl, &err), CK_OK);
        assert_int_equal(qnt_host_linear_dequantize(&hl, got, &err), CK_OK);
        assert_memory_equal(got, want, (size_t)(N * K) * sizeof(float));
        assert_true(hl.bytes == info.bytes);
        qnt_host_linear_free(&hl);
        bits += info.bits_per_weight * (double)(N * K);
        n_weights += (size_t)(N * K);
        n_lin++;
        free(got);
        free(want);
    }
    print_message("  %-26s %s: %zu linears bit-exact, %.3f bits per weight\n", name, qnt_format_name(q.format), n_lin,
                  bits / (double)n_weights);
    assert_true(n_lin >= 14);
    st_close(ref);
    st_set_close(ws);
}

/* ---- the memory plan of a backend that keeps quantized linears quantized ------------------------ */

static size_t two_bytes_w(be_backend *be, st_dtype dtype)
{
    (void)be;
    (void)dtype;
    return 2;
}
static size_t two_bytes_a(be_backend *be)
{
    (void)be;
    return 2;
}
static ck_status no_upload(be_backend *be, const char *name, const struct qnt_host_linear *l, be_buf **out,
                           ck_error *err)
{
    (void)be, (void)name, (void)l, (void)out;
    return ck_fail(err, CK_E_INTERNAL, "not called by the planner");
}

/* Fixture `name`'s config, tensors and quantization, and the ops of a 16-bit planner backend with upload_quant. */
static void open_for_planner(const char *name, cfg_config *c, st_set **ws, qnt_config *q, be_ops *ops)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", FIXDIR, name);
    ck_error err = {0};
    if (cfg_load_dir(dir, c, &err) != CK_OK || st_set_open_dir(dir, ws, &err) != CK_OK ||
        qnt_detect(dir, *ws, q, &err) != CK_OK)
        fail_msg("%s: %s", name, err.msg);
    memset(ops, 0, sizeof *ops);
    ops->name = "planner-test";
    ops->weight_elem_size = two_bytes_w;
    ops->act_elem_size = two_bytes_a;
    ops->upload_quant = no_upload;
}

/* pl_add_quant on a 16-bit backend with upload_quant (the cuda backend's shape, without a device): the
 * quantized linears' dense bytes are replaced by the bytes the kernels hold, their workspace is added, and
 * every row of a prefill chunk gets room for its permuted activations at the widest layer input (the
 * dequantize path gathers them: cq_prepare), so a larger chunk plans exactly that much more. */
static void planner_should_hold_quantized_bytes_and_prefill_gathers(void **state)
{
    const char *name = *state;
    ck_error err = {0};
    st_set *ws = NULL;
    qnt_config q;
    cfg_config c;
    be_ops ops;
    open_for_planner(name, &c, &ws, &q, &ops);
    be_backend be = {&ops};
    qnt_model_sizes_t z;
    assert_int_equal(qnt_model_sizes(&q, ws, &c, &z, &err), CK_OK);
    assert_true(z.n_linears >= 14);
    pl_plan dense, p16, p512, p2048;
    const pl_request r16 = {16, 1, 4, 16}, r512 = {512, 1, 4, 16}, r2048 = {2048, 1, 4, 16};
    pl_make_for(&be, &c, ST_F16, &r16, &dense);
    p16 = dense;
    assert_int_equal(pl_add_quant(&be, &c, ws, &q, ST_F16, &r16, &p16, &err), CK_OK);
    /* weights: every element at 2 bytes, less the quantized ones, plus what the kernels hold for them */
    assert_true(p16.weights == dense.weights - (size_t)z.weights * 2 + (size_t)z.device_bytes);
    assert_true(p16.weights < dense.weights);
    /* up to 16 rows: the fused path, no gathered prefill rows */
    assert_true(p16.workspace == dense.workspace + (size_t)z.workspace);
    pl_make_for(&be, &c, ST_F16, &r512, &p512);
    pl_make_for(&be, &c, ST_F16, &r2048, &p2048);
    size_t d512 = p512.workspace, d2048 = p2048.workspace;
    assert_int_equal(pl_add_quant(&be, &c, ws, &q, ST_F16, &r512, &p512, &err), CK_OK);
    assert_int_equal(pl_add_quant(&be, &c, ws, &q, ST_F16, &r2048, &p2048, &err), CK_OK);
    size_t k = (size_t)c.intermediate_size; /* the widest input of these models' layer linears (down) */
    if ((size_t)c.hidden_size > k)
        k = (size_t)c.hidden_size;
    size_t g512 = p512.workspace - d512 - (size_t)z.workspace, g2048 = p2048.workspace - d2048 - (size_t)z.workspace;
    assert_true(g512 >= (size_t)(512 + 17) * k * 2 && g512 < (size_t)(512 + 17) * k * 2 + 512);
    assert_true(g2048 >= (size_t)(2048 + 17) * k * 2 && g2048 < (size_t)(2048 + 17) * k * 2 + 512);
    assert_true(p2048.total > p512.total && p512.total > p16.total);
    st_set_close(ws);
}

/* pl_choose_exl2_widen on the same planner backend with a free-memory figure: EXL2 fixtures are held at the widest
 * qnt_widen level whose plan still fits (QNT_WIDEN_8, else QNT_WIDEN_4_8, else as stored; a level that widens
 * nothing more than the one below gives way to it), CHASKI_EXL2_WIDEN=0/1/2 force a level, and GPTQ never is
 * widened. The planner's bytes at each level are held to the widening itself:
 * summed over the linears, they exceed the stored ones by the packed words qnt_host_linear_exl2_widen adds. */
static size_t g_free_bytes;
static ck_status fixed_mem(be_backend *be, size_t *free_b, size_t *total_b, ck_error *err)
{
    (void)be, (void)err;
    *free_b = g_free_bytes;
    *total_b = g_free_bytes;
    return CK_OK;
}
/* The packed words qnt_host_linear_exl2_widen adds at `level`, over every quantized linear of the model. */
static uint64_t words_widening_adds(const qnt_config *q, const st_set *ws, const cfg_config *c, int level)
{
    static const char *const lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                       "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    const int64_t H = c->hidden_size, I = c->intermediate_size, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t NK[7][2] = {{Q, H}, {KV, H}, {KV, H}, {H, Q}, {I, H}, {I, H}, {H, I}};
    uint64_t added = 0;
    for (int j = 0; j <= c->n_layers * 7; j++) {
        char prefix[128];
        int64_t K, N;
        if (j < c->n_layers * 7) {
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", j / 7, lin[j % 7]);
            N = NK[j % 7][0];
            K = NK[j % 7][1];
        } else {
            if (c->tie_word_embeddings)
                break;
            snprintf(prefix, sizeof prefix, "lm_head");
            N = c->vocab_size;
            K = c->hidden_size;
        }
        if (!qnt_linear_is_quantized(q, ws, prefix))
            continue;
        qnt_host_linear l, w;
        ck_error err = {0};
        assert_int_equal(qnt_host_linear_from_set(q, ws, prefix, K, N, &l, &err), CK_OK);
        assert_int_equal(l.widen, q->exl2_widen);
        if (qnt_exl2_widen_changes(&l, level)) {
            assert_int_equal(qnt_host_linear_exl2_widen(&l, level, &w, &err), CK_OK);
            added += (uint64_t)(w.packed_rows - l.packed_rows) * (uint64_t)N * 4;
            qnt_host_linear_free(&w);
        }
        qnt_host_linear_free(&l);
    }
    return added;
}
static void planner_should_widen_exl2_where_it_fits(void **state)
{
    const char *name = *state;
    ck_error err = {0};
    st_set *ws = NULL;
    qnt_config q;
    cfg_config c;
    be_ops ops;
    open_for_planner(name, &c, &ws, &q, &ops);
    ops.mem_info = fixed_mem;
    be_backend be = {&ops};
    const pl_request r = {512, 4, 64, 16};
    pl_plan p[3];
    qnt_model_sizes_t z[3];
    const bool exl2 = q.format == QNT_EXL2;
    for (int level = QNT_WIDEN_NONE; level <= QNT_WIDEN_8; level++) {
        q.exl2_widen = level;
        pl_make_for(&be, &c, ST_F16, &r, &p[level]);
        assert_int_equal(pl_add_quant(&be, &c, ws, &q, ST_F16, &r, &p[level], &err), CK_OK);
        assert_int_equal(qnt_model_sizes(&q, ws, &c, &z[level], &err), CK_OK);
        const uint64_t added = level && exl2 ? words_widening_adds(&q, ws, &c, level) : 0;
        assert_true(z[level].device_bytes == z[0].device_bytes + added);
        assert_true(p[level].weights == p[0].weights + added);
    }
    if (exl2) /* both EXL2 fixtures mix in 2/3/5/6-bit groups */
        assert_true(p[1].total > p[0].total && p[2].total >= p[1].total);
    print_message("  %-24s plan %zu / %zu / %zu bytes at widen levels 0 / 1 / 2\n", name, p[0].total, p[1].total,
                  p[2].total);
    /* the level taken: a level that adds no bytes over the one below widens nothing more, and gives way to it
     * (exl2_low_head8 has no linear that level 2 takes to 8 bits: its levels 1 and 2 plan the same bytes) */
    unsetenv("CHASKI_EXL2_WIDEN");
    const size_t frees[] = {p[2].total, p[2].total - 1, p[1].total, p[1].total - 1, p[0].total};
    for (size_t i = 0; i < sizeof frees / sizeof frees[0]; i++) {
        g_free_bytes = frees[i];
        int want = !exl2 ? 0 : p[2].total <= frees[i] ? 2 : p[1].total <= frees[i] ? 1 : 0;
        while (want > 0 && p[want].total == p[want - 1].total)
            want--;
        assert_int_equal(pl_choose_exl2_widen(&be, &c, ws, &q, ST_F16, &r, &err), CK_OK);
        assert_int_equal(q.exl2_widen, want);
    }
    g_free_bytes = p[0].total; /* forced levels, fit or not */
    for (int level = QNT_WIDEN_NONE; level <= QNT_WIDEN_8; level++) {
        char v[2] = {(char)('0' + level), 0};
        setenv("CHASKI_EXL2_WIDEN", v, 1);
        int want = exl2 ? level : 0;
        while (want > 0 && p[want].total == p[want - 1].total)
            want--;
        assert_int_equal(pl_choose_exl2_widen(&be, &c, ws, &q, ST_F16, &r, &err), CK_OK);
        assert_int_equal(q.exl2_widen, want);
    }
    if (!strcmp(name, "exl2_mixed_head6")) /* it widens at both levels: the reduction does not hide them */
        assert_true(p[2].total > p[1].total);
    unsetenv("CHASKI_EXL2_WIDEN");
    g_free_bytes = p[2].total * 2;
    ops.upload_quant = NULL; /* a backend that dequantizes: nothing to widen */
    assert_int_equal(pl_choose_exl2_widen(&be, &c, ws, &q, ST_F16, &r, &err), CK_OK);
    assert_int_equal(q.exl2_widen, 0);
    st_set_close(ws);
}

/* Without reference.json: the model still loads through the quant hooks and gives finite logits. */
static void model_should_load_and_run(void **state)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", FIXDIR, (const char *)*state);
    ck_error err = {0};
    be_backend *be;
    mdl_model *m;
    assert_int_equal(be_cpu_create(&be, &err), CK_OK);
    if (mdl_load(dir, be, NULL, NULL, &m, &err) != CK_OK)
        fail_msg("%s: %s", dir, err.msg);
    /* the model reports its format, as chaski_model_info.quantization shows it to hosts */
    const char *name = (const char *)*state;
    assert_memory_equal(m->quantization, name, 4); /* "gptq..." / "exl2..." fixtures */
    int32_t ids[5] = {1, 17, 300, 42, 7};
    float *logits = prompt_logits(m, ids, 5);
    for (int i = 0; i < m->cfg.vocab_size; i++)
        assert_true(isfinite(logits[i]));
    free(logits);
    mdl_destroy(m);
    be_destroy(be);
}

/* ---- parity with transformers ---------------------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/%s", FIXDIR, (const char *)*state);
    ck_error err = {0};
    ck_status st = be_create(g_backend, &f->be, &err);
    if (st != CK_OK)
        fail_msg("backend %s: %s", g_backend, err.msg);
    if (mdl_load(f->dir, f->be, NULL, NULL, &f->model, &err) != CK_OK)
        fail_msg("%s: %s", f->dir, err.msg);
    f->ref = read_reference(f->dir);
    assert_non_null(f->ref);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cJSON_Delete(f->ref);
    mdl_destroy(f->model);
    be_destroy(f->be);
    free(f);
    return 0;
}

static float *prompt_logits(const mdl_model *m, const int32_t *ids, int n)
{
    ck_error err = {0};
    kv_cache *kv;
    fwd_workspace *ws;
    kv_seq seq;
    kv_seq_init(&seq);
    assert_int_equal(kv_cache_create(m->be, &m->cfg, 4, 64, &kv, &err), CK_OK);
    assert_int_equal(fwd_workspace_create(m, n, 1, &ws, &err), CK_OK);
    assert_int_equal(kv_seq_reserve(kv, &seq, n, &err), CK_OK);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    kv_seq *seqs[1] = {&seq};
    int32_t starts[2] = {0, n};
    fwd_batch b = {1, seqs, ids, starts, NULL};
    if (fwd_run(m, kv, ws, &b, logits, &err) != CK_OK)
        fail_msg("fwd_run: %s", err.msg);
    kv_seq_release(kv, &seq);
    fwd_workspace_destroy(ws);
    kv_cache_destroy(kv);
    return logits;
}

static int on_cpu(void)
{
    return !strcmp(g_backend, "cpu");
}

static void logits_should_match_transformers(void **state)
{
    fixture *f = *state;
    const double tol = on_cpu() ? 1e-4 : 1e-2;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(f->ref, "prompts"))
    {
        int n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(p, "ids"), &n);
        size_t V = (size_t)f->model->cfg.vocab_size;
        float *want = read_f32(f->dir, cJSON_GetObjectItem(p, "logits_file")->valuestring, V);
        assert_non_null(want);
        float *got = prompt_logits(f->model, ids, n);
        double rel = rel_l2(got, want, V);
        print_message("  %s [%s]: %d prompt tokens, logits rel L2 %.3g\n", f->dir + strlen(FIXDIR) + 1, g_backend, n,
                      rel);
        assert_true(rel <= tol);
        free(got);
        free(want);
        free(ids);
    }
}

static void greedy_tokens_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(f->ref, "prompts"))
    {
        int n, n_want;
        int32_t *ids = json_ids(cJSON_GetObjectItem(p, "ids"), &n);
        int32_t *want = json_ids(cJSON_GetObjectItem(p, "greedy"), &n_want);
        gen_params gp;
        gen_params_default(&gp);
        gp.max_new_tokens = n_want;
        gp.stop_at_eos = 0;
        gp.prefill_chunk = 7;
        int32_t got[64];
        int n_got = 0;
        ck_error err = {0};
        if (gen_generate(f->model, ids, n, &gp, NULL, NULL, got, 64, &n_got, &err) != CK_OK)
            fail_msg("gen_generate: %s", err.msg);
        assert_int_equal(n_got, n_want);
        for (int i = 0; i < n_want; i++)
            if (got[i] != want[i])
                fail_msg("greedy token %d: got %d, transformers %d", i, got[i], want[i]);
        free(ids);
        free(want);
    }
}

static void perplexity_should_match_transformers(void **state)
{
    fixture *f = *state;
    const cJSON *pp = cJSON_GetObjectItem(f->ref, "perplexity");
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(pp, "ids"), &n);
    double want = cJSON_GetObjectItem(pp, "ppl")->valuedouble, got = 0.0;
    int scored = 0;
    ck_error err = {0};
    if (gen_perplexity(f->model, ids, n, (int)cJSON_GetObjectItem(pp, "window")->valuedouble,
                       (int)cJSON_GetObjectItem(pp, "bos")->valuedouble, &got, NULL, &scored, &err) != CK_OK)
        fail_msg("gen_perplexity: %s", err.msg);
    assert_int_equal(scored, (int)cJSON_GetObjectItem(pp, "n_scored")->valuedouble);
    print_message("  perplexity %.6f (transformers %.6f)\n", got, want);
    assert_true(fabs(got - want) / want <= (on_cpu() ? 1e-3 : 1e-2));
    free(ids);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--backend"))
            g_backend = argv[++i];
    if (!on_cpu()) {
        be_backend *be = NULL;
        ck_error err = {0};
        if (be_create(g_backend, &be, &err) != CK_OK) {
            printf("backend %s unavailable (%s): skipped\n", g_backend, err.msg);
            return 77;
        }
        be_destroy(be);
    }
    struct CMUnitTest tests[N_FIX * 6];
    size_t n = 0, present = 0, with_ref = 0;
    for (size_t i = 0; i < N_FIX; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/model.safetensors", FIXDIR, k_fixtures[i]);
        if (!exists(path))
            continue;
        present++;
        void *name = (void *)k_fixtures[i];
        if (on_cpu()) {
            tests[n++] = (struct CMUnitTest){"dequantized_weights_should_equal_the_packers",
                                             dequantized_weights_should_equal_the_packers, NULL, NULL, name};
            tests[n++] = (struct CMUnitTest){"planner_should_hold_quantized_bytes_and_prefill_gathers",
                                             planner_should_hold_quantized_bytes_and_prefill_gathers, NULL, NULL,
                                             name};
            tests[n++] = (struct CMUnitTest){"planner_should_widen_exl2_where_it_fits",
                                             planner_should_widen_exl2_where_it_fits, NULL, NULL, name};
        }
        snprintf(path, sizeof path, "%s/%s/reference.json", FIXDIR, k_fixtures[i]);
        if (!exists(path)) {
            if (on_cpu())
                tests[n++] = (struct CMUnitTest){"model_should_load_and_run", model_should_load_and_run, NULL, NULL,
                                                 name};
            continue;
        }
        with_ref++;
        tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(logits_should_match_transformers,
                                                                               setup, teardown, name);
        if (on_cpu())
            tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
                greedy_tokens_should_match_transformers, setup, teardown, name);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(perplexity_should_match_transformers,
                                                                               setup, teardown, name);
    }
    if (present == 0 || n == 0) {
        fprintf(stderr, "quant fixtures absent: run %s\n",
                "python3 tools/reference/quant/make_quant_fixtures.py --out tests/fixtures/quant");
        return 77;
    }
    if (with_ref < present)
        fprintf(stderr, "quant fixtures: %zu of %zu have transformers outputs (reference.json); parity tests of the "
                "others skipped until make_quant_fixtures.py runs on the GPU machine\n", with_ref, present);
    return _cmocka_run_group_tests(on_cpu() ? "quant_fixtures" : "quant_fixtures_cuda", tests, n, NULL, NULL);
}
