/* The cuda backend against the cpu backend (the float32 reference of the same engine) on a mid-size
 * random model with the fast kernels' shapes: head_dim 128, GQA (8 query heads, 2 kv heads), llama3
 * rope (theta 500000, factor 8, original length 256 so that every band of the llama3 table is used
 * within the prompts), hidden 512, 2 layers, vocab 256, context 4096. No transformers involved: a
 * difference here is the cuda backend's alone.
 *
 * Both backends get the same weights (host float32 values rounded to BF16, uploaded with be_ops.write).
 * Weight scale as a Llama-3-8B at init (std 0.02 * sqrt(4096 / 512)), so the attention scores have a
 * spread of ~1.6 and the attention output depends on the rope angles and on every key.
 *
 * Scenarios, each row of logits compared by rel L2 (cuda vs cpu):
 *   prefill N      one step of N = 16, 64, 300, 700 tokens (prefill kernel, pages of 256);
 *   chunked 700    the 700 tokens as chunks of 128 (prefill over a cached prefix), every chunk's last row;
 *   decode         300 prefill then 24 single-token steps (decode kernel, CUDA graphs), every step;
 *   page16 270     a cache of 16-token pages (the most that the workspace's page table holds at 4096);
 *   batch2         two sequences (64 and 300 tokens) in one step, then 8 decode steps of both.
 * Limits: FP16 compute 1e-2; BF16 compute 3e-2 (BF16 keeps 8 significant bits: the 2-layer model's BF16
 * rounding noise alone measures ~1e-2, the bugs this test is for give 0.1 to 1). And, for each dtype,
 * the error of the 700-token prefill may not exceed 2x the 16-token one + 5e-3 (an error that grows
 * with length is the signature of a position or key-range defect). Exit 0 pass, 1 fail, 77 no GPU.
 * --quant[=FORMAT] (default gptq4-g128): the linears quantized (random weights of engine/quant's FORMAT at the
 * dense model's std; the cuda backend runs its quantized kernels, the cpu backend the float32 dequantization) on a
 * model of hidden 2048 (16 q / 4 kv heads, intermediate 2048), where the decode launches take their 8B forms;
 * scenarios prefill 16 (the decode kernel at 16 rows), prefill 64 (dequantize + cuBLASLt), decode and batch2 (1
 * and 2 rows), FP16 and BF16, same limits; the backend's counters must show the decode launches, the dequantize
 * path, (GPTQ without act-order) gate, up and SwiGLU in one launch and (GPTQ 4-bit g128, FP16 and BF16) the folded
 * zero points (gpu_qlinear_fold_calls).
 * ctest runs gptq4-g128, gptq4-g128-act and exl2-4.0; exl2-3.25, exl2-4.5 and exl2-5.5 widened to 4/8-bit groups
 * (CHASKI_EXL2_WIDEN=1; H200 2026-11-29: 3.25 and 5.5 PASS, worst BF16 0.017 / 0.019), exl2-4.5 with its mixed
 * linears at 8 bits (=2; without the switch this test takes that widest level, as the loader does where the model
 * fits: pl_choose_exl2_widen), and exl2-5.5 as stored (=0: the units kernels). EXL2's codes are centred on the
 * zero point here (make_q):
 * engine/quant draws them uniform, so q - 2^(b-1) averages -1/2, a bias of one sign in every weight, and with that
 * bias the model was ill-conditioned at a few decode rows (H200: FP16 decode row 10 at 0.016, BF16 batch2 row 3 at
 * 0.063, every other row far below; the cpu backend against itself with only the weights rounded to FP16 moved
 * row 10 by 0.005 and the others by 6e-5 to 6e-4). Centred, every row moves by 0.0009 to 0.0012 under that
 * perturbation, as the GPTQ models do, and the H200 run of exl2-4.0 passes (FP16 worst 0.0022, BF16 0.018).
 * Usage: test_cuda_vs_cpu [--quick] [--cpu-only] [--rows] [--quant[=FORMAT]]   (--cpu-only: the harness itself,
 * cpu against cpu, no GPU; --rows: every row's error, for diagnosis) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "config.h"
#include "forward.h"
#include "kv_cache.h"
#include "model.h"
#include "plan.h"
#include "quant/quant.h"
#include "ref_util.h"
#include "backend_cuda_quant.h"

#define HD 128
#define NL 2
#define VOC 256
#define CTX 4096

static int g_fail;

/* The model's shape: the dense run's (BF16 weights), or --quant's: q, k, v, o, gate, up and down quantized
 * (random weights of engine/quant's format `quant`; the lm_head stays dense), hidden 2048 so that the decode
 * launches take their 8B forms (gate, up and SwiGLU in one launch; the folded zero points at one row). */
static struct {
    int h, nh, nkv, ff;
    const char *quant; /* NULL: dense */
} g_m = {512, 8, 2, 1024, NULL};

static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void cfg_make(cfg_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = CFG_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM");
    c->hidden_size = g_m.h;
    c->intermediate_size = g_m.ff;
    c->n_layers = NL;
    c->n_heads = g_m.nh;
    c->n_kv_heads = g_m.nkv;
    c->head_dim = HD;
    c->vocab_size = VOC;
    c->max_position_embeddings = CTX;
    c->rms_norm_eps = 1e-5;
    c->rope.type = CFG_ROPE_LLAMA3;
    c->rope.theta = 500000.0;
    c->rope.factor = 8.0;
    c->rope.low_freq_factor = 1.0;
    c->rope.high_freq_factor = 4.0;
    c->rope.original_max_position = 256;
    c->rope.partial_rotary_factor = 1.0;
    c->rope.beta_fast = 32.0;
    c->rope.beta_slow = 1.0;
    c->rope.truncate = true;
    c->bos_token_id = 1;
    snprintf(c->dtype, sizeof c->dtype, "bfloat16");
}

/* one weight: n values, uniform with the given mean and std, seeded, rounded to BF16 */
static ck_status make_w(be_backend *be, size_t n, uint64_t seed, float mean, float std, be_buf **out, ck_error *err)
{
    float *h = malloc(n * sizeof *h);
    if (!h)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    const float a = std * 1.7320508f;
    for (size_t i = 0; i < n; i++) {
        float u = (float)(ref_mix64(seed * 0x100000001B3ull ^ ref_mix64(i)) >> 40) * (2.0f / 16777216.0f) - 1.0f;
        h[i] = bf16_round(mean + a * u);
    }
    ck_status st = be->ops->alloc(be, n, out, err);
    if (st == CK_OK)
        st = be->ops->write(be, *out, 0, h, n, err);
    free(h);
    return st;
}

/* --rows: every row's error (diagnosis) */
static int g_rows;

/* one quantized linear [n, k] of format g_m.quant (engine/quant's random weights, seeded), its scales (GPTQ) or
 * scale maxima (EXL2) multiplied so that the weights' std is `std`, the dense model's (engine/quant draws GPTQ
 * weights of std ~0.02 and EXL2 ones of ~0.07). The cuda backend takes the linear as it is (upload_quant: its
 * quantized kernels), the cpu backend its float32 dequantization (the reference: engine/quant, held to the Python
 * packer by tests/quant). */
static ck_status make_q(be_backend *be, int64_t k, int64_t n, uint64_t seed, int input, float std, be_buf **out,
                        ck_error *err)
{
    qnt_config q;
    qnt_host_linear l;
    ck_status st = qnt_parse_format_name(g_m.quant, &q, err);
    q.exl2_widen = qnt_exl2_widen_mode() < 0 ? QNT_WIDEN_8 : qnt_exl2_widen_mode(); /* the loader's, where it fits */
    if (st == CK_OK)
        st = qnt_host_linear_random(&q, k, n, seed, &l, err);
    if (st != CK_OK)
        return st;
    qnt_host_linear_exl2_perm(&l, 40 + (uint64_t)input); /* EXL2: one permutation per input, as real files */
    const size_t nk = (size_t)n * (size_t)k;
    /* EXL2: engine/quant draws the codes uniform, so q - 2^(b-1) averages -1/2: a bias of the same sign in every
     * weight, which layer after layer leaves the model ill-conditioned (see the header). Real layers' codes centre
     * on the zero point: here code 0 becomes 2^(b-1) in every group (value i of a column: bits i b.. of its
     * little-endian stream over the group's packed rows, which 3-, 5- and 6-bit values cross). */
    if (l.format == QNT_EXL2)
        for (int g = 0; g < l.n_groups; g++) {
            const int b = l.q_groups[2 * g], r0 = l.q_groups[2 * g + 1];
            const int64_t r1 = g + 1 < l.n_groups ? l.q_groups[2 * g + 3] : l.packed_rows, rows = (r1 - r0) * 32 / b;
            for (int64_t i = 0; i < rows; i++) {
                const int64_t wi = r0 + i * b / 32;
                const int sh = (int)(i * b % 32), spill = sh + b > 32;
                for (size_t c = 0; c < (size_t)n; c++) {
                    uint32_t *w0 = &l.q_weight[(size_t)wi * (size_t)n + c], *w1 = w0 + (spill ? n : 0);
                    uint64_t word = *w0 | (spill ? (uint64_t)*w1 << 32 : 0);
                    if ((word >> sh) & ((1u << b) - 1))
                        continue;
                    word |= (uint64_t)(1u << (b - 1)) << sh;
                    *w0 = (uint32_t)word;
                    if (spill)
                        *w1 = (uint32_t)(word >> 32);
                }
            }
        }
    float *w = malloc(nk * sizeof *w);
    st = w ? qnt_host_linear_dequantize(&l, w, err) : ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    if (st == CK_OK) {
        double ss = 0.0;
        for (size_t i = 0; i < nk; i++)
            ss += (double)w[i] * w[i];
        const float f = ss > 0.0 ? std / (float)sqrt(ss / (double)nk) : 1.0f;
        if (l.format == QNT_GPTQ)
            for (size_t i = 0; i < (size_t)l.n_groups * (size_t)n; i++)
                l.scales[i] = qnt_float_to_half(qnt_half_to_float(l.scales[i]) * f);
        else
            for (int g = 0; g < l.n_groups; g++)
                l.q_scale_max[g] = qnt_float_to_half(qnt_half_to_float(l.q_scale_max[g]) * f);
        st = qnt_host_linear_dequantize(&l, w, err); /* the rescaled weights, exactly */
    }
    if (st == CK_OK && be->ops->upload_quant) {
        st = be->ops->upload_quant(be, "linear", &l, out, err);
    } else if (st == CK_OK) {
        st = be->ops->alloc(be, nk, out, err);
        if (st == CK_OK)
            st = be->ops->write(be, *out, 0, w, nk, err);
    }
    free(w);
    qnt_host_linear_free(&l);
    return st;
}

static ck_status model_make(be_backend *be, mdl_model **out, ck_error *err)
{
    mdl_model *m = calloc(1, sizeof *m);
    if (!m)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    cfg_make(&m->cfg);
    m->be = be;
    m->layers = calloc(NL, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    const float ws = 0.02f * sqrtf(4096.0f / g_m.h); /* std of q/k/v/gate/up (k = hidden) */
    const size_t Q = (size_t)g_m.nh * HD, KV = (size_t)g_m.nkv * HD;
    uint64_t seed = 77;
    ck_status st = make_w(be, (size_t)VOC * g_m.h, seed++, 0.0f, 0.02f, &m->embed, err);
    for (int l = 0; l < NL && st == CK_OK; l++) {
        mdl_layer *L = &m->layers[l];
        /* rows x cols (a norm: one row); the linears (rows > 1) quantized with --quant */
        /* input: which activations the linear reads (EXL2: one permutation each, per layer) */
        struct { be_buf **b; size_t rows, cols; float mean, std; int input; } w[] = {
            {&L->attn_norm, 1, g_m.h, 1.0f, 0.05f, 0},
            {&L->wq, Q, g_m.h, 0.0f, ws, 0},
            {&L->wk, KV, g_m.h, 0.0f, ws, 0},
            {&L->wv, KV, g_m.h, 0.0f, ws, 0},
            {&L->wo, g_m.h, Q, 0.0f, 0.02f * sqrtf(4096.0f / (float)Q), 1},
            {&L->mlp_norm, 1, g_m.h, 1.0f, 0.05f, 0},
            {&L->w_gate, g_m.ff, g_m.h, 0.0f, ws, 2},
            {&L->w_up, g_m.ff, g_m.h, 0.0f, ws, 2},
            {&L->w_down, g_m.h, g_m.ff, 0.0f, 0.02f * sqrtf(4096.0f / g_m.ff), 3},
        };
        for (size_t i = 0; i < sizeof w / sizeof w[0] && st == CK_OK; i++)
            st = g_m.quant && w[i].rows > 1
                     ? make_q(be, (int64_t)w[i].cols, (int64_t)w[i].rows, seed++, 4 * l + w[i].input, w[i].std,
                              w[i].b, err)
                     : make_w(be, w[i].rows * w[i].cols, seed++, w[i].mean, w[i].std, w[i].b, err);
    }
    if (st == CK_OK)
        st = make_w(be, g_m.h, seed++, 1.0f, 0.05f, &m->final_norm, err);
    if (st == CK_OK)
        st = make_w(be, (size_t)VOC * g_m.h, seed++, 0.0f, ws, &m->lm_head, err);
    m->n_params = pl_weight_elems(&m->cfg);
    if (st != CK_OK) {
        mdl_destroy(m);
        return st;
    }
    *out = m;
    return CK_OK;
}

/* A scenario: n_seqs sequences of len[s] tokens; steps feed up to `chunk` tokens of each sequence
 * (0: all of the prefill part at once) until only `decode` tokens are left, which go one per step. */
typedef struct scen {
    const char *name;
    int page, n_seqs, len[2], chunk, decode;
} scen;

static int32_t tok_of(int s, int i)
{
    return i == 0 ? 1 : (int32_t)(ref_mix64((uint64_t)(s * 100003 + i) * 7919u) % VOC);
}

/* Runs a scenario; returns the logits rows (each step's last row per sequence) in *rows_out. */
static ck_status run_scen(mdl_model *m, const scen *sc, float **rows_out, int *n_rows_out, ck_error *err)
{
    *rows_out = NULL;
    *n_rows_out = 0;
    int total = 0, maxlen = 0;
    for (int s = 0; s < sc->n_seqs; s++) {
        total += sc->len[s];
        if (sc->len[s] > maxlen)
            maxlen = sc->len[s];
    }
    kv_cache *kv = NULL;
    fwd_workspace *ws = NULL;
    int pages = sc->n_seqs * ((maxlen + sc->page - 1) / sc->page + 1);
    ck_status st = kv_cache_create(m->be, &m->cfg, pages, sc->page, &kv, err);
    if (st == CK_OK)
        st = fwd_workspace_create(m, total, 4, &ws, err);
    int cap_rows = total + 8;
    float *rows = malloc((size_t)cap_rows * VOC * sizeof *rows);
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    float *lg = malloc((size_t)4 * VOC * sizeof *lg);
    kv_seq seq[2];
    kv_seq_init(&seq[0]);
    kv_seq_init(&seq[1]);
    int done[2] = {0, 0}, n_rows = 0;
    if (st == CK_OK && (!rows || !ids || !lg))
        st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    while (st == CK_OK) {
        kv_seq *sp[2];
        int32_t starts[3] = {0, 0, 0};
        int ns = 0, T = 0;
        for (int s = 0; s < sc->n_seqs; s++) {
            int left = sc->len[s] - done[s];
            if (left <= 0)
                continue;
            int pre = left - sc->decode; /* tokens before the decode tail */
            int take = pre > 0 ? (sc->chunk > 0 && pre > sc->chunk ? sc->chunk : pre) : 1;
            for (int i = 0; i < take; i++)
                ids[T + i] = tok_of(s, done[s] + i);
            st = kv_seq_reserve(kv, &seq[s], done[s] + take, err);
            if (st != CK_OK)
                break;
            sp[ns] = &seq[s];
            T += take;
            starts[++ns] = T;
            done[s] += take;
        }
        if (st != CK_OK || ns == 0)
            break;
        fwd_batch b = {ns, sp, ids, starts, NULL};
        st = fwd_run(m, kv, ws, &b, lg, err);
        if (st == CK_OK && n_rows + ns <= cap_rows) {
            memcpy(rows + (size_t)n_rows * VOC, lg, (size_t)ns * VOC * sizeof *lg);
            n_rows += ns;
        }
    }
    kv_seq_release(kv, &seq[0]);
    kv_seq_release(kv, &seq[1]);
    free(ids);
    free(lg);
    fwd_workspace_destroy(ws);
    kv_cache_destroy(kv);
    if (st != CK_OK) {
        free(rows);
        return st;
    }
    *rows_out = rows;
    *n_rows_out = n_rows;
    return CK_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int quick = 0, cpu_only = 0;
    for (int a = 1; a < argc; a++) {
        quick |= !strcmp(argv[a], "--quick");
        cpu_only |= !strcmp(argv[a], "--cpu-only");
        g_rows |= !strcmp(argv[a], "--rows");
        if (!strcmp(argv[a], "--quant") || !strncmp(argv[a], "--quant=", 8)) {
            g_m.h = 2048;
            g_m.nh = 16;
            g_m.nkv = 4;
            g_m.ff = 2048;
            g_m.quant = argv[a][7] == '=' ? argv[a] + 8 : "gptq4-g128";
        }
    }
    static const scen k_scen[] = {
        {"prefill 16", 256, 1, {16, 0}, 0, 0},
        {"prefill 64", 256, 1, {64, 0}, 0, 0},
        {"prefill 300", 256, 1, {300, 0}, 0, 0},
        {"prefill 700", 256, 1, {700, 0}, 0, 0},
        {"chunked 700 (128)", 256, 1, {700, 0}, 128, 0},
        {"decode 300+24", 256, 1, {324, 0}, 0, 24},
        {"page16 270", 16, 1, {270, 0}, 0, 0}, /* forward.c sizes page tables for 256-token pages: 17 here */
        {"batch2 64+300, 8 decode", 256, 2, {72, 308}, 0, 8},
    };
    /* --quant: the decode launches at 1, 2 and 16 rows (one sequence; two; a 16-token prefill) and the dequantize
     * path (64 tokens), on a model four times as wide: prefill 16, prefill 64, decode, batch2 */
    static const int k_quant_scen[] = {0, 1, 5, 7};
    const int n_scen = g_m.quant ? (int)(sizeof k_quant_scen / sizeof k_quant_scen[0])
                       : quick   ? 4
                                 : (int)(sizeof k_scen / sizeof k_scen[0]);
#define SCEN(i) (g_m.quant ? &k_scen[k_quant_scen[i]] : &k_scen[i])
    ck_error err = {0};
    be_backend *cpu = NULL, *gpu = NULL;
    ck_status st = be_create(cpu_only ? "cpu" : "cuda:bf16", &gpu, &err);
    if (st != CK_OK) {
        printf("cuda vs cpu: no cuda backend (%s): skipped\n", err.msg);
        return st == CK_E_UNSUPPORTED ? 77 : 1;
    }
    be_destroy(gpu);
    gpu = NULL;
    if ((st = be_create("cpu", &cpu, &err)) != CK_OK) {
        printf("cuda vs cpu: cpu backend: %s\n", err.msg);
        return 1;
    }
    mdl_model *mc = NULL;
    if ((st = model_make(cpu, &mc, &err)) != CK_OK) {
        printf("cuda vs cpu: cpu model: %s\n", err.msg);
        return 1;
    }
    printf("cuda vs cpu: hidden %d, %d q heads / %d kv heads, head_dim %d, %d layers, llama3 rope (theta 5e5, "
           "factor 8, original 256), vocab %d, %s linears\n", g_m.h, g_m.nh, g_m.nkv, HD, NL, VOC,
           g_m.quant ? g_m.quant : "BF16");
    /* the float32 reference once per scenario */
    float *ref[16] = {0};
    int nref[16] = {0};
    double t0 = now_s();
    for (int i = 0; i < n_scen; i++) {
        if ((st = run_scen(mc, SCEN(i), &ref[i], &nref[i], &err)) != CK_OK) {
            printf("cuda vs cpu: cpu run of %s: %s\n", SCEN(i)->name, err.msg);
            return 1;
        }
    }
    printf("cuda vs cpu: cpu reference in %.1f s\n", now_s() - t0);
    /* FP16 with the separate q/k/v and gate/up weights, then FP16 and BF16 fused as mdl_load makes them
     * (--quant: FP16 and BF16, mdl_fuse called as mdl_load does; quantized weights stay apart) */
    const char *dts[3] = {"cuda:f16", "cuda:f16", "cuda:bf16"};
    const int fuse[3] = {0, 1, 1};
    if (cpu_only)
        dts[0] = dts[1] = dts[2] = "cpu";
    const double lim[3] = {1e-2, 1e-2, 3e-2};
    for (int d = g_m.quant ? 1 : 0; d < 3; d++) {
        if ((st = be_create(dts[d], &gpu, &err)) != CK_OK) {
            printf("cuda vs cpu: %s: %s\n", dts[d], err.msg);
            return 1;
        }
        mdl_model *mg = NULL;
        if ((st = model_make(gpu, &mg, &err)) != CK_OK) {
            printf("cuda vs cpu: %s model: %s\n", dts[d], err.msg);
            return 1;
        }
        if (fuse[d] && (st = mdl_fuse(mg, &err)) != CK_OK) {
            printf("cuda vs cpu: %s fuse: %s\n", dts[d], err.msg);
            return 1;
        }
        const int want_fused = fuse[d] && !g_m.quant;
        if (!cpu_only && want_fused != (mg->layers[0].wqkv != NULL && mg->layers[0].w_gu != NULL)) {
            printf("  FAIL  %s: weights %sfused, expected %sfused\n", dts[d], mg->layers[0].wqkv ? "" : "not ",
                   want_fused ? "" : "not ");
            g_fail++;
        }
        printf("cuda vs cpu: %s, %s weights\n", dts[d], want_fused ? "fused" : "separate");
        const unsigned long long folds0 = cpu_only ? 0 : gpu_qlinear_fold_calls();
        const unsigned long long general0 = cpu_only ? 0 : gpu_qlinear_general_calls();
        double first = -1.0;
        for (int i = 0; i < n_scen; i++) {
            float *got = NULL;
            int ng = 0;
            st = run_scen(mg, SCEN(i), &got, &ng, &err);
            if (st != CK_OK) {
                printf("  FAIL  %-10s %-26s error: %s\n", dts[d], SCEN(i)->name, err.msg);
                g_fail++;
                continue;
            }
            double worst = 0.0;
            int at = 0;
            for (int r = 0; r < ng && r < nref[i]; r++) {
                double e = rel_l2(got + (size_t)r * VOC, ref[i] + (size_t)r * VOC, VOC);
                if (g_rows)
                    printf("%s%.2g", r ? " " : "    rows:", e);
                if (e > worst || isinf(e))
                    worst = e, at = r;
            }
            if (g_rows)
                printf("\n");
            int ok = ng == nref[i] && worst <= lim[d];
            if (i == 0)
                first = worst;
            if (!g_m.quant && i == 3 && first >= 0.0 && worst > 2.0 * first + 5e-3) {
                printf("  FAIL  %-10s %-26s rel L2 %.4g grows from %.4g at 16 tokens (limit 2x + 5e-3)\n", dts[d],
                       SCEN(i)->name, worst, first);
                g_fail++;
            }
            printf("  %s  %-10s %-26s %2d rows, worst rel L2 %.4g (row %d; limit %.0e)\n", ok ? "ok  " : "FAIL",
                   dts[d], SCEN(i)->name, ng, worst, at, lim[d]);
            g_fail += !ok;
            free(got);
        }
        if (g_m.quant && !cpu_only) { /* proof that the quantized kernels computed the rows compared above */
            cq_stats qs;
            be_cuda_quant_stats(gpu, &qs);
            /* the one-launch SwiGLU takes regular GPTQ weights without act-order (BF16: 4-bit only, so far) */
            const int want_swiglu = !strncmp(g_m.quant, "gptq", 4) && !strstr(g_m.quant, "act") &&
                                    !(strstr(dts[d], "bf16") && !strncmp(g_m.quant, "gptq8", 5));
            /* EXL2: gate and up share a permutation here (make_q, as real files), so 4-bit pairs take it too;
             * the other widths depend on the widening level (-1: not checked) */
            const int want_swiglu_q = !strcmp(g_m.quant, "exl2-4.0") ? 1
                                      : !strncmp(g_m.quant, "exl2", 4) ? -1 : want_swiglu;
            /* the folded zero points: one row, groups of 4 chunks or more (GPTQ 4-bit g128 here), FP16 and BF16 */
            const int want_fold = !strncmp(g_m.quant, "gptq4-g128", 10);
            const unsigned long long folds = gpu_qlinear_fold_calls() - folds0;
            /* the general decode variant: exl2-4.5's linears (half their 32-row groups at 5 bits, half at 4) mix 4
             * and 8 bits when widened at level 1, and go all to 8 at level 2 (the default); every other format
             * here widens to one width, or none takes the tensor-core layout as stored (-1: not known here) */
            const int level = qnt_exl2_widen_mode() < 0 ? QNT_WIDEN_8 : qnt_exl2_widen_mode();
            const int known = !strncmp(g_m.quant, "gptq", 4) || !strcmp(g_m.quant, "exl2-3.25") ||
                              !strcmp(g_m.quant, "exl2-4.0") || !strcmp(g_m.quant, "exl2-4.5") ||
                              !strcmp(g_m.quant, "exl2-5.5");
            const int want_general = !known ? -1 : !strcmp(g_m.quant, "exl2-4.5") && level == QNT_WIDEN_4_8;
            const unsigned long long general = gpu_qlinear_general_calls() - general0;
            /* activations written in the permuted weights' order by their producers (be_ops.order_for): EXL2 and
             * act-order GPTQ permute, in the tensor-core layout (EXL2 held as stored, CHASKI_EXL2_WIDEN=0: the units
             * kernels, which gather); the others never read such a copy */
            const int want_xin = strstr(g_m.quant, "act") != NULL || !strcmp(g_m.quant, "exl2-4.0") ||
                                 (!strncmp(g_m.quant, "exl2", 4) && qnt_exl2_widen_mode() != 0);
            /* the RMSNorm split around the o / down launch and the next one (cq_matmul_add_norm): every split taken
             * by the launch after it, none settled, where both are regular 4-bit weights (-1: not checked); in
             * FP16 too (the loader's norm weights have a known largest element: the numerators' shift), none at
             * CHASKI_NORM_SPLIT=0 */
            const char *ns = getenv("CHASKI_NORM_SPLIT");
            const int mode = ns ? atoi(ns) : 1;
            const int want_split = mode == 0 ? 0
                                   : !strcmp(g_m.quant, "gptq4-g128") || !strcmp(g_m.quant, "exl2-4.0") ? 1 : -1;
            const int split_ok = want_split < 0 || ((want_split ? qs.norm_splits > 0 && qs.norm_takes == qs.norm_splits
                                                                : qs.norm_splits == 0) && qs.norm_settles == 0);
            const int ok = qs.fused_calls > 0 && (want_swiglu_q < 0 || (qs.swiglu_calls > 0) == want_swiglu_q) &&
                           qs.dequant_calls > 0 && (qs.xin_calls > 0) == want_xin &&
                           (!want_fold || folds > 0) && (want_general < 0 || (general > 0) == want_general) && split_ok;
            printf("  %s  %-10s quantized kernels (host calls; graph replays not counted): %llu decode (%llu with "
                   "SwiGLU, %llu folded, %llu general, %llu on producer-ordered activations, %llu norms split / %llu "
                   "taken / %llu settled), %llu dequant+cuBLASLt\n",
                   ok ? "ok  " : "FAIL", dts[d], (unsigned long long)qs.fused_calls,
                   (unsigned long long)qs.swiglu_calls, folds, general, (unsigned long long)qs.xin_calls,
                   (unsigned long long)qs.norm_splits, (unsigned long long)qs.norm_takes,
                   (unsigned long long)qs.norm_settles, (unsigned long long)qs.dequant_calls);
            g_fail += !ok;
        }
        mdl_destroy(mg);
        be_destroy(gpu);
        gpu = NULL;
    }
    for (int i = 0; i < n_scen; i++)
        free(ref[i]);
    mdl_destroy(mc);
    be_destroy(cpu);
    printf("cuda vs cpu: %s\n", g_fail ? "FAIL" : "PASS");
    return g_fail ? 1 : 0;
}
