/* chaski-bench: engine-level benchmark of the cuda backend, in the style of llama-bench.
 *
 *   pp512, pp2048   prompt processing: one fwd_run of the whole prompt at context depth d;
 *                   FLOPs (2 x matmul params x tokens + causal attention 4 x hd x heads x layers x
 *                   sum of keys, + the last row's lm_head) over the measured dense BF16 matrix rate;
 *   tg128           generation: 128 decode steps of one sequence at depth d (CUDA graphs replayed);
 *                   bytes per token (every weight but the embedding table, + the K and V read) over
 *                   the measured copy bandwidth gives the roofline;
 *   batch sweep     B = 1..256 sequences decoding together at depth 512 (--batch-depth D: at D): tokens/s
 *                   in total and per sequence, against the roofline of (weights + B x KV) bytes per step;
 *   ttft            time to first token of a 512 and a 2048-token prompt at depth 0 (one fwd_run,
 *                   metadata upload and float32 logits to the host included).
 * Prefill steps go through fwd_run (the last row's float32 logits copied to the host). Decode steps
 * (tg, batch sweep) pick each sequence's next token greedily on the device (fwd_run_rows, as the
 * scheduler does for built-in chains: only token ids come back) and feed it back as the next input;
 * --host-logits copies every row's float32 logits to the host instead (B x vocab x 4 bytes a step); --sample
 * draws on the device with a whole chain instead of greedy (T 0.8, top-k 40, top-p 0.95, min-p 0.05, repetition
 * penalty 1.1 over the last 64 tokens fed, seeded per sequence): the rate a sampling frontend sees.
 * Depth d is set up by declaring d tokens already cached
 * over KV pages filled with random values (the kernels read them all the same).
 * Ceilings measured in the same run: device-to-device cudaMemcpy of 1 GiB (bytes read + written)
 * and a cuBLASLt BF16 8192^3 matrix product (kernels/cuda gpu_linear), medians of 10 after warm-up.
 *
 * Usage: chaski-bench [--shape llama3-8b|llama2-7b|llama3-70b|tiny | --model DIR] [--json PATH]
 *                     [--quant gptq4-g128|gptq8-g128|gptq4-g128-act|exl2-4.0|exl2-2.5|...] [--ctx N]
 *                     [--depths 0,4096,32768] [--batches 1,2,4,...,256] [--no-graphs] [--host-logits] [--sample]
 *                     [--quick] [--no-pp] [--batch-depth D] [--step-times]
 * --step-times prints, for each decode test, the timed pass's fastest, median and slowest step and its first one
 * (a slow first step or a spread says the row's mean holds something other than the steady step).
 * --no-pp leaves out the prompt tests (pp, ttft): a profiler then sees the decode steps' kernels first.
 * A random-weight shape is built directly in GPU memory (no checkpoint); the memory planner refuses
 * a shape that does not fit (llama3-405b in BF16 on any one GPU; a 70B in BF16 fits an H200) with the numbers.
 * --quant: the shape's linears are random quantized weights of that format (engine/quant
 * qnt_host_linear_random, one per distinct linear shape and input on the host (EXL2: the linears of one input
 * share one permutation, as ExLlamaV2's converter writes them: qnt_host_linear_exl2_perm), uploaded once
 * through the cuda backend's upload_quant, then copied device-to-device into each layer's own memory); the lm_head is
 * BF16 for GPTQ and 6-bit EXL2 for EXL2. Bytes per token are summed over the actual device tensors
 * (gpu_qweight.bytes of each quantized linear, the dense norms and head; the embedding table reads one
 * row per token and is left out), plus the KV read. --ctx N: one sequence of N tokens must fit (KV
 * pages for it), and the depth N - 2304 (a pp2048 and a tg128 fit after it) is measured too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "backend_cuda_quant.h"
#include "config.h"
#include "cuda_ops.h"
#include "forward.h"
#include "kv_cache.h"
#include "model.h"
#include "plan.h"
#include "quant/quant.h"

typedef struct shape {
    const char *name;
    int H, I, L, nh, nkv, hd, V, ctx;
    double theta;
} shape;

static const shape k_shapes[] = {
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128, 128256, 131072, 500000.0},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 128, 32000, 4096, 10000.0},
    {"llama3-70b", 8192, 28672, 80, 64, 8, 128, 128256, 131072, 500000.0},
    {"tiny", 512, 1408, 4, 8, 2, 64, 32000, 131072, 10000.0},
    /* 405B in BF16 (~810 GB): for the planner's refusal on any single GPU (tools/device/gpu-e2e.sh) */
    {"llama3-405b", 16384, 53248, 126, 128, 8, 128, 128256, 131072, 500000.0},
};

#define MAX_REC 128
typedef struct rec {
    char test[32];
    int depth, batch, tokens;
    double seconds, tok_s, tok_s_seq, frac;
    const char *ceiling; /* "bw" or "mm" */
    double work;         /* bytes per step (bw) or FLOPs (mm) */
} rec;

static rec g_rec[MAX_REC];
static int g_nrec;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define DIE(...)                                                                                               \
    do {                                                                                                       \
        fprintf(stderr, "chaski-bench: " __VA_ARGS__);                                                         \
        fprintf(stderr, "\n");                                                                                 \
        return 1;                                                                                              \
    } while (0)

#define CUDA_OK(call)                                                                                          \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess)                                                                                 \
            DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                           \
    } while (0)

/* ---- ceilings -------------------------------------------------------------------------------- */

static int measure_ceilings(be_backend *be, double *bw_gbs, double *mm_tflops)
{
    ck_error err = {0};
    cudaStream_t s = (cudaStream_t)be_cuda_stream(be);
    size_t bytes = (size_t)1 << 30;
    be_buf *a = NULL, *b = NULL;
    if (be->ops->alloc(be, bytes / 2, &a, &err) != CK_OK || be->ops->alloc(be, bytes / 2, &b, &err) != CK_OK)
        DIE("ceilings: %s", err.msg);
    if (be_cuda_fill_random(be, a, 1, 0.0f, 1.0f, &err) != CK_OK)
        DIE("ceilings: %s", err.msg);
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    double t[10];
    for (int i = -2; i < 10; i++) {
        CUDA_OK(cudaEventRecord(e0, s));
        CUDA_OK(cudaMemcpyAsync(be_cuda_ptr(b), be_cuda_ptr(a), bytes, cudaMemcpyDeviceToDevice, s));
        CUDA_OK(cudaEventRecord(e1, s));
        CUDA_OK(cudaEventSynchronize(e1));
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 0)
            t[i] = ms * 1e-3;
    }
    *bw_gbs = 2.0 * (double)bytes / median(t, 10) / 1e9;
    be->ops->free(be, a);
    be->ops->free(be, b);

    const int N = 8192;
    be_buf *x = NULL, *w = NULL, *o = NULL;
    size_t n2 = (size_t)N * N;
    if (be->ops->alloc(be, n2, &x, &err) != CK_OK || be->ops->alloc(be, n2, &w, &err) != CK_OK ||
        be->ops->alloc(be, n2, &o, &err) != CK_OK)
        DIE("ceilings: %s", err.msg);
    if (be_cuda_fill_random(be, x, 2, 0.0f, 1.0f, &err) != CK_OK || be_cuda_fill_random(be, w, 3, 0.0f, 1.0f, &err))
        DIE("ceilings: %s", err.msg);
    void *ws = NULL;
    size_t wsz = 0;
    gpu_blas *blas = (gpu_blas *)be_cuda_blas(be, &ws, &wsz);
    gpu_dtype dt = (gpu_dtype)be_cuda_dtype(be);
    for (int i = -2; i < 10; i++) {
        CUDA_OK(cudaEventRecord(e0, s));
        int rc = gpu_linear(blas, dt, be_cuda_ptr(o), be_cuda_ptr(x), be_cuda_ptr(w), NULL, N, N, N,
                            GPU_LINEAR_BLASLT, ws, wsz, s);
        if (rc != GPU_OK)
            DIE("ceilings: gpu_linear: %s", gpu_last_error());
        CUDA_OK(cudaEventRecord(e1, s));
        CUDA_OK(cudaEventSynchronize(e1));
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 0)
            t[i] = ms * 1e-3;
    }
    *mm_tflops = 2.0 * (double)N * N * N / median(t, 10) / 1e12;
    be->ops->free(be, x);
    be->ops->free(be, w);
    be->ops->free(be, o);
    (void)cudaEventDestroy(e0);
    (void)cudaEventDestroy(e1);
    return 0;
}

/* ---- the model -------------------------------------------------------------------------------- */

static void cfg_of_shape(const shape *sh, cfg_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = CFG_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM");
    c->hidden_size = sh->H;
    c->intermediate_size = sh->I;
    c->n_layers = sh->L;
    c->n_heads = sh->nh;
    c->n_kv_heads = sh->nkv;
    c->head_dim = sh->hd;
    c->vocab_size = sh->V;
    c->max_position_embeddings = sh->ctx;
    c->rms_norm_eps = 1e-5;
    c->rope.type = CFG_ROPE_DEFAULT;
    c->rope.theta = sh->theta;
    c->rope.factor = 1.0;
    c->rope.partial_rotary_factor = 1.0;
    c->bos_token_id = 1;
    snprintf(c->dtype, sizeof c->dtype, "bfloat16");
}

static ck_status rand_buf(be_backend *be, size_t n, uint64_t seed, float mean, float std, be_buf **out, ck_error *err)
{
    ck_status st = be->ops->alloc(be, n, out, err);
    if (st == CK_OK)
        st = be_cuda_fill_random(be, *out, seed, mean, std, err);
    return st;
}

/* Random weights of a shape, made in device memory: linear weights U(+-0.02 sqrt 3), norms ~1. */
static ck_status random_model(be_backend *be, const cfg_config *c, mdl_model **out, ck_error *err)
{
    mdl_model *m = calloc(1, sizeof *m);
    if (!m)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    m->cfg = *c;
    m->be = be;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    uint64_t seed = 1000;
    ck_status st = rand_buf(be, V * H, seed++, 0.0f, 0.02f, &m->embed, err);
    for (int l = 0; l < c->n_layers && st == CK_OK; l++) {
        mdl_layer *L = &m->layers[l];
        struct { be_buf **b; size_t n; float mean, std; } w[] = {
            {&L->attn_norm, H, 1.0f, 0.02f}, {&L->wq, Q * H, 0.0f, 0.02f}, {&L->wk, KV * H, 0.0f, 0.02f},
            {&L->wv, KV * H, 0.0f, 0.02f},   {&L->wo, H * Q, 0.0f, 0.02f}, {&L->mlp_norm, H, 1.0f, 0.02f},
            {&L->w_gate, I * H, 0.0f, 0.02f}, {&L->w_up, I * H, 0.0f, 0.02f}, {&L->w_down, H * I, 0.0f, 0.02f},
        };
        for (size_t i = 0; i < sizeof w / sizeof w[0] && st == CK_OK; i++)
            st = rand_buf(be, w[i].n, seed++, w[i].mean, w[i].std, w[i].b, err);
    }
    if (st == CK_OK)
        st = rand_buf(be, H, seed++, 1.0f, 0.02f, &m->final_norm, err);
    if (st == CK_OK)
        st = rand_buf(be, V * H, seed++, 0.0f, 0.02f, &m->lm_head, err);
    m->n_params = pl_weight_elems(c);
    if (st == CK_OK)
        st = be_cuda_sync(be, err);
    if (st == CK_OK)
        st = mdl_fuse(m, err); /* [wq; wk; wv] and [w_gate; w_up], as mdl_load does */
    if (st != CK_OK) {
        mdl_destroy(m);
        return st;
    }
    *out = m;
    return CK_OK;
}

/* Random quantized linears of a shape (--quant): one host linear per distinct [N, K], uploaded once and
 * copied on the device into every layer's own memory; norms and the embedding table random BF16; the
 * head BF16 (GPTQ) or 6-bit EXL2 (EXL2). The plan is checked with the real quantized bytes first. */
typedef struct qtemplate {
    int64_t N, K;
    int input; /* which input the linear reads (EXL2: one permutation per input, qnt_host_linear_exl2_perm) */
    be_buf *buf; /* uploaded once; layer 0's copy */
    int used;
} qtemplate;

static ck_status quant_template(be_backend *be, const qnt_config *q, qtemplate *t, int n_t, int64_t N, int64_t K,
                                int input, const char *name, uint64_t seed, be_buf **out, ck_error *err)
{
    for (int i = 0; i < n_t; i++)
        if (t[i].buf && t[i].N == N && t[i].K == K && t[i].input == input) {
            if (!t[i].used) { /* layer 0 takes the upload itself */
                t[i].used = 1;
                *out = t[i].buf;
                return CK_OK;
            }
            return be_cuda_copy_quant(be, t[i].buf, out, err);
        }
    for (int i = 0; i < n_t; i++)
        if (!t[i].buf) {
            qnt_host_linear l;
            ck_status st = qnt_host_linear_random(q, K, N, seed, &l, err);
            if (st == CK_OK) {
                qnt_host_linear_exl2_perm(&l, 300 + (uint64_t)input); /* as ExLlamaV2 files: one per input */
                st = be->ops->upload_quant(be, name, &l, &t[i].buf, err);
            }
            qnt_host_linear_free(&l);
            if (st != CK_OK)
                return st;
            t[i].N = N;
            t[i].K = K;
            t[i].input = input;
            return quant_template(be, q, t, n_t, N, K, input, name, seed, out, err);
        }
    return ck_fail(err, CK_E_INTERNAL, "too many distinct linear shapes");
}

static ck_status random_quant_model(be_backend *be, const cfg_config *c, const qnt_config *q, pl_plan *plan,
                                    const char *what, mdl_model **out, ck_error *err)
{
    if (!be->ops->upload_quant)
        return ck_fail(err, CK_E_UNSUPPORTED, "backend %s cannot hold quantized weights", be->ops->name);
    mdl_model *m = calloc(1, sizeof *m);
    if (!m)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    m->cfg = *c;
    m->be = be;
    snprintf(m->quantization, sizeof m->quantization, "%.31s", what);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    const char *names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    const int64_t shp[7][2] = {{Q, H}, {KV, H}, {KV, H}, {H, Q}, {I, H}, {I, H}, {H, I}};
    const int input[7] = {0, 0, 0, 1, 2, 2, 3}; /* q, k, v read one input, o another, gate and up a third, down a 4th */
    qtemplate t[8];
    memset(t, 0, sizeof t);
    double t0 = now_s();
    /* the templates first (host random + one upload each): their exact device bytes size the plan */
    ck_status st = CK_OK;
    mdl_layer *L0 = &m->layers[0];
    be_buf **lin0[7] = {&L0->wq, &L0->wk, &L0->wv, &L0->wo, &L0->w_gate, &L0->w_up, &L0->w_down};
    for (int i = 0; i < 7 && st == CK_OK; i++)
        st = quant_template(be, q, t, 8, shp[i][0], shp[i][1], input[i], names[i], 500 + (uint64_t)i, lin0[i],
                            err);
    qnt_config qh = *q;
    if (st == CK_OK && q->format == QNT_EXL2) {
        qh.exl2_bits = 6.0; /* the head at 6 bits, as EXL2 files hold it */
        qnt_host_linear l;
        st = qnt_host_linear_random(&qh, H, V, 900, &l, err);
        if (st == CK_OK)
            st = be->ops->upload_quant(be, "lm_head", &l, &m->lm_head, err);
        qnt_host_linear_free(&l);
    }
    double t_host = now_s() - t0;
    if (st == CK_OK) {
        size_t layer_q = 0, head = m->lm_head ? be_cuda_buf_bytes(m->lm_head) : (size_t)(V * H * 2);
        for (int i = 0; i < 7; i++)
            layer_q += be_cuda_buf_bytes(*lin0[i]);
        size_t ws = 0;
        for (int i = 0; i < 8; i++)
            if (t[i].buf) {
                const gpu_qweight *w = be_cuda_qweight(t[i].buf);
                size_t d = gpu_qlinear_workspace_size(w, GPU_QLINEAR_MAX_FUSED_ROWS + 1, GPU_QLINEAR_DEQUANT);
                if (d > ws)
                    ws = d;
            }
        size_t dense = (size_t)(pl_weight_elems(c) - (size_t)c->n_layers * (size_t)(2 * Q * H + 2 * KV * H + 3 * I * H)) * 2;
        if (m->lm_head)
            dense -= (size_t)(V * H) * 2;
        plan->weights = dense + (size_t)c->n_layers * layer_q + (m->lm_head ? head : 0);
        plan->workspace += ws;
        size_t sub = plan->weights + plan->kv + plan->activations + plan->workspace;
        plan->reserve = (64u << 20) + sub / 50;
        plan->total = sub + plan->reserve;
        /* the weights are partly allocated: what is left must hold the rest */
        size_t free_b = 0, total_b = 0;
        if (be->ops->mem_info(be, &free_b, &total_b, err) == CK_OK) {
            size_t held = layer_q + (m->lm_head ? head : 0);
            for (int i = 0; i < 8; i++)
                if (t[i].buf && !t[i].used)
                    held += be_cuda_buf_bytes(t[i].buf);
            if (plan->total > free_b + held)
                st = ck_fail(err, CK_E_OUT_OF_MEMORY, "%s does not fit: it needs %.2f GiB (quantized weights %.2f, "
                             "KV %.2f, activations and workspace %.2f GiB), %.2f GiB free", what,
                             (double)plan->total / (1 << 30), (double)plan->weights / (1 << 30),
                             (double)plan->kv / (1 << 30), (double)(plan->activations + plan->workspace) / (1 << 30),
                             (double)(free_b + held) / (1 << 30));
        }
    }
    for (int l = 1; l < c->n_layers && st == CK_OK; l++) {
        mdl_layer *L = &m->layers[l];
        be_buf **lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7 && st == CK_OK; i++)
            st = quant_template(be, q, t, 8, shp[i][0], shp[i][1], input[i], names[i], 0, lin[i], err);
    }
    for (int i = 0; i < 8; i++) /* a template no layer took (none in practice) */
        if (t[i].buf && !t[i].used)
            be->ops->free(be, t[i].buf);
    uint64_t seed = 2000;
    if (st == CK_OK)
        st = rand_buf(be, (size_t)(V * H), seed++, 0.0f, 0.02f, &m->embed, err);
    for (int l = 0; l < c->n_layers && st == CK_OK; l++) {
        st = rand_buf(be, (size_t)H, seed++, 1.0f, 0.02f, &m->layers[l].attn_norm, err);
        if (st == CK_OK)
            st = rand_buf(be, (size_t)H, seed++, 1.0f, 0.02f, &m->layers[l].mlp_norm, err);
    }
    if (st == CK_OK)
        st = rand_buf(be, (size_t)H, seed++, 1.0f, 0.02f, &m->final_norm, err);
    if (st == CK_OK && !m->lm_head)
        st = rand_buf(be, (size_t)(V * H), seed++, 0.0f, 0.02f, &m->lm_head, err);
    m->n_params = pl_weight_elems(c);
    if (st == CK_OK)
        st = be_cuda_sync(be, err);
    if (st != CK_OK) {
        mdl_destroy(m);
        return st;
    }
    printf("quantized %s: host random + first uploads %.1f s, all layers %.1f s\n", what, t_host, now_s() - t0);
    *out = m;
    return CK_OK;
}

/* Bytes a decode step reads from the weights: every device tensor but the embedding table (one row per
 * token), quantized linears at their gpu_qweight.bytes; a tied head reads the table. */
static double weight_read_bytes(const mdl_model *m)
{
    double b = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        be_buf *const *bufs = (be_buf *const *)&m->layers[l];
        for (size_t i = 0; i < sizeof(mdl_layer) / sizeof(be_buf *); i++)
            if (bufs[i])
                b += (double)be_cuda_buf_bytes(bufs[i]);
    }
    b += (double)be_cuda_buf_bytes(m->final_norm) + (double)be_cuda_buf_bytes(m->lm_head);
    return b;
}

/* ---- measurements ----------------------------------------------------------------------------- */

typedef struct ctx {
    mdl_model *m;
    kv_cache *kv;
    fwd_workspace *ws;
    float *logits;
    int32_t *tokens;
    double bw, mm;             /* GB/s, TFLOP/s */
    double weight_read_bytes;  /* per decode step */
    double kv_bytes_per_token; /* K and V of one position, all layers */
    double matmul_params;      /* per token (layers), without the lm_head */
} ctx;

static void add_rec(const char *test, int depth, int batch, int tokens, double sec, double tok_s, double tok_s_seq,
                    double frac, const char *ceiling, double work)
{
    if (g_nrec >= MAX_REC)
        return;
    rec *r = &g_rec[g_nrec++];
    snprintf(r->test, sizeof r->test, "%s", test);
    r->depth = depth;
    r->batch = batch;
    r->tokens = tokens;
    r->seconds = sec;
    r->tok_s = tok_s;
    r->tok_s_seq = tok_s_seq;
    r->frac = frac;
    r->ceiling = ceiling;
    r->work = work;
}

static int g_step_times; /* --step-times: each decode test's step times (min, median, max, first) */
static int g_host_logits; /* --host-logits: decode steps return float32 logits, sampled nowhere */
static int g_sample;      /* --sample: the device draws with the whole chain (g_chain), not greedy */
static uint64_t g_hist_next = 1; /* hist_id of the next history the device has not seen (a rewind takes a new one) */
/* --sample's chain: what a chat frontend commonly sets */
static const be_sample_row g_chain = {.temperature = 0.8f, .top_p = 0.95f, .min_p = 0.05f,
                                      .repetition_penalty = 1.1f, .top_k = 40, .penalty_range = 64};

static void fill_tokens(ctx *x, int n, int salt)
{
    for (int i = 0; i < n; i++)
        x->tokens[i] = (int32_t)((1 + (uint64_t)(i + 1) * 2654435761u + (uint64_t)salt * 40503u) % (uint64_t)x->m->cfg.vocab_size);
}

/* One sequence at depth d, prompt of p tokens in one step; median of reps. */
static int bench_pp(ctx *x, int d, int p, int reps, double *sec_out)
{
    ck_error err = {0};
    kv_seq seq;
    kv_seq_init(&seq);
    if (kv_seq_reserve(x->kv, &seq, d + p, &err) != CK_OK)
        DIE("pp%d at depth %d: %s", p, d, err.msg);
    kv_seq *sp[1] = {&seq};
    int32_t starts[2] = {0, p};
    double t[8];
    fill_tokens(x, p, d);
    for (int r = -1; r < reps; r++) {
        seq.n_tokens = d;
        fwd_batch b = {1, sp, x->tokens, starts, NULL};
        double t0 = now_s();
        if (fwd_run(x->m, x->kv, x->ws, &b, x->logits, &err) != CK_OK)
            DIE("pp%d at depth %d: %s", p, d, err.msg);
        if (r >= 0)
            t[r] = now_s() - t0;
    }
    kv_seq_release(x->kv, &seq);
    *sec_out = median(t, reps);
    return 0;
}

/* B sequences at depth d, `steps` decode steps (after one untimed pass of the same steps). */
static int bench_tg(ctx *x, int d, int B, int steps, double *sec_out)
{
    ck_error err = {0};
    kv_seq *seqs = calloc((size_t)B, sizeof *seqs);
    kv_seq **sp = calloc((size_t)B, sizeof *sp);
    int32_t *starts = calloc((size_t)B + 1, sizeof *starts);
    if (!seqs || !sp || !starts)
        DIE("out of memory");
    for (int s = 0; s < B; s++) {
        kv_seq_init(&seqs[s]);
        sp[s] = &seqs[s];
        starts[s] = s;
        if (kv_seq_reserve(x->kv, &seqs[s], d + steps + 1, &err) != CK_OK)
            DIE("tg at depth %d, batch %d: %s", d, B, err.msg);
    }
    starts[B] = B;
    /* greedy on the device (or --sample's chain): only the token ids come back */
    const int dev = !g_host_logits && fwd_can_end_rows(x->m);
    if (g_sample && !dev)
        DIE("--sample: this backend does not sample on the device (or --host-logits was given)");
    uint8_t *mode = calloc((size_t)B, 1);
    be_sample_row *rows = calloc((size_t)B, sizeof *rows);
    int32_t *next = calloc((size_t)B, sizeof *next);
    int32_t *hist = g_sample ? calloc((size_t)B * steps, sizeof *hist) : NULL; /* [B][steps]: the tokens fed */
    if (!mode || !rows || !next || (g_sample && !hist))
        DIE("out of memory");
    for (int s = 0; s < B; s++) {
        mode[s] = BE_ROW_SAMPLE;
        if (g_sample) {
            rows[s] = g_chain;
            rows[s].history = hist + (size_t)s * steps;
            rows[s].seed = (uint64_t)s + 1;
        } else {
            rows[s].temperature = 0.0f;
            rows[s].top_p = 1.0f;
            rows[s].repetition_penalty = 1.0f;
        }
    }
    be_step_out out = {B, x->m->cfg.vocab_size, mode, rows, NULL, next, NULL};
    double sec = 0.0, *st_ms = calloc((size_t)steps, sizeof *st_ms);
    if (!st_ms)
        DIE("out of memory");
    for (int pass = 0; pass < 2; pass++) {
        for (int s = 0; s < B; s++) {
            seqs[s].n_tokens = d;
            if (g_sample) /* each pass starts a new history */
                rows[s].hist_id = g_hist_next++;
        }
        double t0 = now_s();
        for (int i = 0; i < steps; i++) {
            if (i == 0 || !dev)
                fill_tokens(x, B, i + 7 * pass);
            else
                memcpy(x->tokens, next, (size_t)B * sizeof *next); /* the tokens the device picked */
            for (int s = 0; g_sample && s < B; s++) { /* the penalties see every token fed so far */
                hist[(size_t)s * steps + i] = x->tokens[s];
                rows[s].n_history = i + 1;
                rows[s].counter = (uint64_t)i;
            }
            fwd_batch b = {B, sp, x->tokens, starts, NULL};
            ck_status st = dev ? fwd_run_rows(x->m, x->kv, x->ws, &b, &out, &err)
                               : fwd_run(x->m, x->kv, x->ws, &b, x->logits, &err);
            if (st != CK_OK)
                DIE("tg at depth %d, batch %d, step %d: %s", d, B, i, err.msg);
            st_ms[i] = (now_s() - t0) * 1e3; /* the pass's time so far; differenced below */
        }
        sec = now_s() - t0;
    }
    if (g_step_times) {
        for (int i = steps - 1; i > 0; i--)
            st_ms[i] -= st_ms[i - 1];
        const double first = st_ms[0];
        const double med = median(st_ms, steps); /* sorts */
        printf("steps (depth %d, batch %d, %d steps): min %.3f, median %.3f, max %.3f, first %.3f ms\n", d, B, steps,
               st_ms[0], med, st_ms[steps - 1], first);
        fflush(stdout);
    }
    free(st_ms);
    for (int s = 0; s < B; s++)
        kv_seq_release(x->kv, &seqs[s]);
    free(mode);
    free(rows);
    free(next);
    free(hist);
    free(seqs);
    free(sp);
    free(starts);
    *sec_out = sec;
    return 0;
}

static double prefill_flops(const ctx *x, int d, int p)
{
    const cfg_config *c = &x->m->cfg;
    double attn = 4.0 * c->head_dim * c->n_heads * c->n_layers * ((double)p * d + (double)p * (p + 1) / 2.0);
    return 2.0 * x->matmul_params * p + attn + 2.0 * (double)c->hidden_size * c->vocab_size;
}

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (s && *s && n < cap) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (s)
            s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *shape_name = "llama3-8b", *model_dir = NULL, *json = NULL, *bname = "cuda:bf16";
    int depths[8] = {0, 4096, 32768}, nd = 3;
    int batches[16] = {1, 2, 4, 8, 16, 32, 64, 128, 256}, nb = 9;
    int graphs = 1, quick = 0, ctx_len = 0, depths_given = 0, no_pp = 0, bdepth = 512;
    const char *quant = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape_name = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_dir = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--depths") && i + 1 < argc)
            nd = parse_list(argv[++i], depths, 8), depths_given = 1;
        else if (!strcmp(argv[i], "--quant") && i + 1 < argc)
            quant = argv[++i];
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc)
            ctx_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            nb = parse_list(argv[++i], batches, 16);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            bname = argv[++i];
        else if (!strcmp(argv[i], "--host-logits"))
            g_host_logits = 1;
        else if (!strcmp(argv[i], "--sample"))
            g_sample = 1;
        else if (!strcmp(argv[i], "--no-graphs"))
            graphs = 0;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-pp"))
            no_pp = 1;
        else if (!strcmp(argv[i], "--step-times"))
            g_step_times = 1;
        else if (!strcmp(argv[i], "--batch-depth") && i + 1 < argc)
            bdepth = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: chaski-bench [--shape llama3-8b|llama2-7b|llama3-70b|tiny | --model DIR] "
                            "[--quant gptq4-g128|gptq8-g128|exl2-4.0|exl2-2.5|...] [--ctx N] "
                            "[--json PATH] [--depths 0,4096,32768] [--batches 1,2,...,256] [--no-graphs] [--host-logits] "
                            "[--sample] [--quick] [--no-pp] [--batch-depth D] [--step-times]\n");
            return 2;
        }
    }
    qnt_config qcfg;
    memset(&qcfg, 0, sizeof qcfg);
    ck_error qerr = {0};
    if (quant && model_dir)
        DIE("--quant builds a random shape: it does not apply to --model (a quantized checkpoint is read as it is)");
    if (quant && qnt_parse_format_name(quant, &qcfg, &qerr) != CK_OK)
        DIE("--quant: %s", qerr.msg);
    /* EXL2 groups of 2/3/5/6 bits held at 4/8 bits, and mixed linears at 8, as the loader does where the model fits
     * (pl_choose_exl2_widen; CHASKI_EXL2_WIDEN=0/1/2: that level); the roofline counts the bytes held */
    qcfg.exl2_widen = qnt_exl2_widen_mode() < 0 ? QNT_WIDEN_8 : qnt_exl2_widen_mode();
    if (bdepth < 0)
        DIE("--batch-depth %d: a depth is 0 or more", bdepth);
    if (ctx_len < 0 || (ctx_len > 0 && ctx_len < 2560))
        DIE("--ctx %d: at least 2560 (a pp2048 and a tg128 after a depth)", ctx_len);
    if (ctx_len && !depths_given) {
        depths[0] = 0;
        depths[1] = ctx_len - 2304;
        nd = 2;
    }
    ck_error err = {0};
    be_backend *be = NULL;
    if (be_create(model_dir ? "cuda" : bname, &be, &err) != CK_OK)
        DIE("%s", err.msg);
    if (!be_is_cuda(be))
        DIE("the cuda backend is needed");
    be_cuda_set_graphs(be, graphs);
    struct cudaDeviceProp prop;
    int dev = 0;
    CUDA_OK(cudaGetDevice(&dev));
    CUDA_OK(cudaGetDeviceProperties(&prop, dev));

    double bw = 0, mm = 0;
    if (measure_ceilings(be, &bw, &mm))
        return 1;
    printf("device: %s (%d SMs, %.1f GiB)\n", prop.name, prop.multiProcessorCount,
           (double)prop.totalGlobalMem / (1u << 30));
    printf("ceilings: copy %.0f GB/s (device-to-device, read + write), BF16 matrix %.1f TFLOP/s (cuBLASLt 8192^3)\n",
           bw, mm);

    /* the model */
    ctx x = {0};
    x.bw = bw;
    x.mm = mm;
    cfg_config cfg;
    const shape *sh = NULL;
    if (!model_dir) {
        for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
            if (!strcmp(k_shapes[i].name, shape_name))
                sh = &k_shapes[i];
        if (!sh)
            DIE("unknown shape '%s' (llama3-8b, llama2-7b, llama3-70b, tiny)", shape_name);
        cfg_of_shape(sh, &cfg);
    } else if (cfg_load_dir(model_dir, &cfg, &err) != CK_OK) {
        DIE("%s", err.msg);
    }
    int max_batch = 0;
    for (int i = 0; i < nb; i++)
        if (batches[i] > max_batch)
            max_batch = batches[i];
    int max_depth = 0;
    for (int i = 0; i < nd; i++)
        if (depths[i] > max_depth && depths[i] + 2048 <= cfg_context_length(&cfg))
            max_depth = depths[i];
    int page = KV_DEFAULT_PAGE_SIZE;
    int pages_single = (max_depth + 2048 + page - 1) / page + 1;
    if (ctx_len && (ctx_len + page - 1) / page + 1 > pages_single)
        pages_single = (ctx_len + page - 1) / page + 1;
    int pages_sweep = max_batch * ((bdepth + 64 + page - 1) / page);
    int pages = pages_single > pages_sweep ? pages_single : pages_sweep;
    pl_request req = {2048, max_batch > 1 ? max_batch : 1, pages, page};
    pl_plan plan;
    pl_make_for(be, &cfg, ST_BF16, &req, &plan);
    char what[256];
    snprintf(what, sizeof what, "%s%s%s (%d KV pages)", model_dir ? model_dir : sh->name, quant ? " " : "",
             quant ? quant : "", pages);
    if (!quant && pl_check(be, &plan, what, &err) != CK_OK) /* --quant: checked with the quantized bytes */
        DIE("%s", err.msg);
    double t0 = now_s();
    ck_status st = model_dir ? mdl_load(model_dir, be, NULL, NULL, &x.m, &err)
                   : quant  ? random_quant_model(be, &cfg, &qcfg, &plan, what, &x.m, &err)
                            : random_model(be, &cfg, &x.m, &err);
    if (st != CK_OK)
        DIE("%s", err.msg);
    const cfg_config *c = &x.m->cfg;
    double H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    double Q = (double)c->n_heads * c->head_dim, KVd = (double)c->n_kv_heads * c->head_dim;
    x.matmul_params = c->n_layers * (Q * H + 2 * KVd * H + H * Q + 3 * I * H);
    x.weight_read_bytes = weight_read_bytes(x.m); /* the device tensors as they are, all but the embedding table */
    x.kv_bytes_per_token = 2.0 * 2.0 * c->n_layers * KVd;
    printf("model: %s%s%s, %.2f B parameters, %.2f GB read per decode step (weights, %.3f bits per parameter), "
           "made in %.1f s\n", model_dir ? model_dir : sh->name, quant ? " " : "", quant ? quant : "",
           (double)x.m->n_params / 1e9, x.weight_read_bytes / 1e9,
           8.0 * x.weight_read_bytes / ((double)pl_weight_elems(c) - V * H), now_s() - t0);

    if ((st = kv_cache_create(be, c, pages, page, &x.kv, &err)) != CK_OK)
        DIE("%s", err.msg);
    for (int l = 0; l < c->n_layers && st == CK_OK; l++) {
        st = be_cuda_fill_random(be, x.kv->k_pool[l], 77 + l, 0.0f, 1.0f, &err);
        if (st == CK_OK)
            st = be_cuda_fill_random(be, x.kv->v_pool[l], 177 + l, 0.0f, 1.0f, &err);
    }
    if (st != CK_OK || (st = fwd_workspace_create(x.m, 2048, max_batch > 1 ? max_batch : 1, &x.ws, &err)) != CK_OK)
        DIE("%s", err.msg);
    x.logits = malloc((size_t)(max_batch > 2048 ? max_batch : 2048) * (size_t)V * sizeof(float));
    x.tokens = malloc((size_t)(max_batch > 2048 ? max_batch : 2048) * sizeof(int32_t));
    if (!x.logits || !x.tokens)
        DIE("out of memory");

    if (g_sample)
        printf("decode sampling: T %.2f, top-k %d, top-p %.2f, min-p %.2f, repetition penalty %.2f over the last %d "
               "tokens (seeded, on the device)\n", g_chain.temperature, g_chain.top_k, g_chain.top_p, g_chain.min_p,
               g_chain.repetition_penalty, g_chain.penalty_range);
    int reps = quick ? 2 : 3, tg_steps = quick ? 32 : 128;
    for (int di = 0; di < nd; di++) {
        int d = depths[di];
        if (d + 2048 > cfg_context_length(c)) {
            printf("depth %d: skipped (context %d)\n", d, cfg_context_length(c));
            continue;
        }
        int pps[2] = {512, 2048};
        for (int k = 0; k < (no_pp ? 0 : 2); k++) {
            double sec;
            if (bench_pp(&x, d, pps[k], reps, &sec))
                return 1;
            double fl = prefill_flops(&x, d, pps[k]);
            char name[32];
            snprintf(name, sizeof name, "pp%d", pps[k]);
            add_rec(name, d, 1, pps[k], sec, pps[k] / sec, pps[k] / sec, fl / sec / (mm * 1e12), "mm", fl);
            if (d == 0) {
                snprintf(name, sizeof name, "ttft%d", pps[k]);
                add_rec(name, d, 1, pps[k], sec, pps[k] / sec, pps[k] / sec, fl / sec / (mm * 1e12), "mm", fl);
            }
            fflush(stdout);
        }
        double sec;
        if (bench_tg(&x, d, 1, tg_steps, &sec))
            return 1;
        double bytes = x.weight_read_bytes + x.kv_bytes_per_token * (d + tg_steps / 2.0);
        double tps = tg_steps / sec;
        char name[32];
        snprintf(name, sizeof name, "tg%d", tg_steps);
        add_rec(name, d, 1, tg_steps, sec, tps, tps, tps / (bw * 1e9 / bytes), "bw", bytes);
    }
    for (int bi = 0; bi < nb; bi++) {
        int B = batches[bi], steps = quick ? 8 : 16;
        double sec;
        if (bench_tg(&x, bdepth, B, steps, &sec))
            return 1;
        double bytes = x.weight_read_bytes + B * x.kv_bytes_per_token * (bdepth + steps / 2.0);
        double sps = steps / sec;
        add_rec("batch", bdepth, B, B * steps, sec, B * sps, sps, sps / (bw * 1e9 / bytes), "bw", bytes);
    }
    be_cuda_counters cnt;
    be_cuda_counters_get(be, &cnt);

    /* the table */
    printf("\n%-9s %6s %5s %7s %10s %12s %10s %8s  %s\n", "test", "depth", "batch", "tokens", "ms", "tok/s",
           "tok/s/seq", "frac", "ceiling");
    for (int i = 0; i < g_nrec; i++) {
        rec *r = &g_rec[i];
        printf("%-9s %6d %5d %7d %10.2f %12.1f %10.1f %7.1f%%  %s\n", r->test, r->depth, r->batch, r->tokens,
               r->seconds * 1e3, r->tok_s, r->tok_s_seq, 100.0 * r->frac,
               !strcmp(r->ceiling, "bw") ? "memory roofline (weights + KV bytes / copy bw)"
                                         : "FLOPs / dense BF16 matrix rate");
    }
    printf("graphs: %llu captured, %llu replayed, %llu failed%s%s%s; %llu eager steps; %llu device allocations in all\n",
           (unsigned long long)cnt.graph_captures, (unsigned long long)cnt.graph_replays,
           (unsigned long long)cnt.graph_failures, *be_cuda_graph_error(be) ? " (" : "", be_cuda_graph_error(be),
           *be_cuda_graph_error(be) ? ")" : "",
           (unsigned long long)cnt.eager_steps, (unsigned long long)cnt.device_allocs);
    if (json) {
        FILE *fp = fopen(json, "w");
        if (!fp)
            DIE("cannot write %s", json);
        fprintf(fp, "{\n  \"device\": \"%s\",\n  \"model\": \"%s\",\n  \"params\": %llu,\n", prop.name,
                model_dir ? model_dir : sh->name, (unsigned long long)x.m->n_params);
        fprintf(fp, "  \"quant\": \"%s\",\n  \"ctx\": %d,\n", quant ? quant : x.m->quantization[0] ? x.m->quantization : "none", ctx_len);
        fprintf(fp, "  \"copy_bw_gbs\": %.1f,\n  \"bf16_tflops\": %.2f,\n  \"graphs\": %d,\n", bw, mm, graphs);
        fprintf(fp, "  \"decode_sampling\": \"%s\",\n", g_sample ? "chain" : "greedy");
        fprintf(fp, "  \"weight_read_bytes\": %.0f,\n  \"results\": [\n", x.weight_read_bytes);
        for (int i = 0; i < g_nrec; i++) {
            rec *r = &g_rec[i];
            fprintf(fp, "    {\"test\": \"%s\", \"depth\": %d, \"batch\": %d, \"tokens\": %d, \"seconds\": %.6f, "
                        "\"tok_s\": %.2f, \"tok_s_per_seq\": %.2f, \"ceiling\": \"%s\", \"work\": %.0f, "
                        "\"frac\": %.4f}%s\n",
                    r->test, r->depth, r->batch, r->tokens, r->seconds, r->tok_s, r->tok_s_seq, r->ceiling, r->work,
                    r->frac, i + 1 < g_nrec ? "," : "");
        }
        fprintf(fp, "  ]\n}\n");
        fclose(fp);
    }
    free(x.logits);
    free(x.tokens);
    fwd_workspace_destroy(x.ws);
    kv_cache_destroy(x.kv);
    mdl_destroy(x.m);
    be_destroy(be);
    return 0;
}
