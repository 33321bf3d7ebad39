/* engine/cuda/backend_cuda_quant.c: quantized linears in the cuda backend (backend_cuda_quant.h).
 * Upload: the file arrays of a validated linear (engine/quant) go to gpu_qweight_upload_gptq / _exl2,
 * which lay them out for the kernels (act-order rows sorted by group, 32-row units, the permutation
 * kept for the activations). Run: gpu_qlinear, AUTO path (fused for <= 16 rows, else dequantize to a
 * dt tile and cuBLASLt), in one workspace sized by cq_prepare. */
#include "backend_cuda_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_util.h"
#include "quant/quant.h"

struct cq_state {
    void *ws;             /* the workspace (device) */
    size_t ws_size;
    void *head_out;       /* dt [GPU_QLINEAR_MAX_FUSED_ROWS, vocab]: one chunk of lm_head rows */
    size_t head_out_size;
    size_t need_fused;    /* largest fused-path workspace of any linear */
    size_t need_dequant;  /* largest dequant-path workspace of any linear but the head (at 17 rows) */
    int max_k;            /* widest input of those: the dequant path may also permute n x k activations */
    /* Activations written in a permuted weight's packed order by the op that produces them (cq_order_for):
     * two slots of dt [GPU_QLINEAR_MAX_FUSED_ROWS, max_k], used in turn (a gate, up + SwiGLU launch reads one and
     * writes the other). want: the order the next producer of `buf` should write; ready: the last one written. */
    void *xp[2];
    size_t xp_size;       /* bytes of each slot */
    int xp_next;          /* the slot the next producer writes */
    struct {
        const void *buf;
        const gpu_qweight *w;
    } want;
    struct {
        const void *buf;
        const gpu_qweight *w;
        int n, slot;
    } ready;
    /* An RMSNorm a decode launch left unfinished (cq_matmul_add_norm): buf's rows, and xp (the copy in the next
     * weight's order) when not NULL, hold the numerators and ss the sums of squares ([n][tiles], d per row); the next
     * decode launch on buf takes the scales (gpu_qx.ss_in), any other op settles first (cq_settle). buf NULL: none */
    struct {
        void *buf, *xp;
        int n, d, tiles, shift; /* shift: the numerators' gpu_qx.ss_shift */
        float eps;
    } pend;
    float *ss;            /* [GPU_QLINEAR_MAX_FUSED_ROWS][max_tiles] */
    size_t ss_size;
    int max_tiles;        /* 32-column tiles of the widest linear */
    const void *next_buf;      /* cq_order_for's buf and w (permuted or not): the weight that reads buf next */
    const gpu_qweight *next_w;
    cq_stats st;
};

static ck_status gpu_st(int rc, const char *what, const char *name, ck_error *err)
{
    if (rc == GPU_OK)
        return CK_OK;
    return ck_fail(err, rc == GPU_UNSUPPORTED ? CK_E_UNSUPPORTED : rc == GPU_ELAUNCH ? CK_E_DEVICE : CK_E_INTERNAL,
                   "cuda backend: %s%s%s: %s", what, name ? " " : "", name ? name : "", gpu_last_error());
}

ck_status cq_create(cq_state **out, ck_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    return CK_OK;
}

void cq_destroy(cq_state *s)
{
    if (!s)
        return;
    if (s->ws)
        (void)cudaFree(s->ws);
    if (s->head_out)
        (void)cudaFree(s->head_out);
    for (int i = 0; i < 2; i++)
        if (s->xp[i])
            (void)cudaFree(s->xp[i]);
    if (s->ss)
        (void)cudaFree(s->ss);
    free(s);
}

ck_status cq_upload(cq_state *s, const char *name, const qnt_host_linear *l, gpu_qweight **out, ck_error *err)
{
    *out = NULL;
    /* l->widen (qnt_config.exl2_widen, chosen by the loader: pl_choose_exl2_widen): EXL2 linears with 2-, 3-, 5- or
     * 6-bit groups (at QNT_WIDEN_8 also those mixing 4 and 8) are widened on the host to 4 and 8 bits (the same
     * weights, more bytes) so they take the tensor-core decode kernels' fast variants instead of the scalar
     * units kernels or the general variant (docs/PERFORMANCE.md, fourteenth run). */
    if (qnt_exl2_widen_changes(l, l->widen)) {
        qnt_host_linear wide;
        ck_status st = qnt_host_linear_exl2_widen(l, l->widen, &wide, err);
        if (st == CK_OK) {
            st = cq_upload(s, name, &wide, out, err); /* all 4- or 8-bit now: no second widening */
            qnt_host_linear_free(&wide);
            return st;
        }
        if (st != CK_E_UNSUPPORTED) /* CK_E_UNSUPPORTED: more packed rows than q_groups' int16 starts hold */
            return st;
        ck_error_clear(err); /* held as stored: fewer bytes than the plan counted */
    }
    if (l->K > INT32_MAX / 32 || l->N > INT32_MAX / 32 || l->packed_rows > INT32_MAX)
        return ck_fail(err, CK_E_UNSUPPORTED, "cuda backend: quantized linear %s: [%lld, %lld] is too large", name,
                       (long long)l->N, (long long)l->K);
    gpu_qweight *w = calloc(1, sizeof *w);
    if (!w)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    int rc;
    if (l->format == QNT_GPTQ)
        rc = gpu_qweight_upload_gptq(w, l->qweight, l->qzeros, l->scales, l->g_idx, l->n_groups, l->bits,
                                     l->group_size, l->v2 ? 1 : 0, (int)l->K, (int)l->N);
    else if (l->format == QNT_EXL2)
        rc = gpu_qweight_upload_exl2(w, l->q_invperm, l->q_groups, l->n_groups, l->q_weight, (int)l->packed_rows,
                                     l->q_scale, l->q_scale_max, (int)l->K, (int)l->N);
    else {
        free(w);
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: quantized linear %s: format %d", name, (int)l->format);
    }
    ck_status st = gpu_st(rc, "upload of the quantized linear", name, err);
    if (st != CK_OK) {
        free(w);
        return st;
    }
    size_t f = gpu_qlinear_workspace_size(w, GPU_QLINEAR_MAX_FUSED_ROWS, GPU_QLINEAR_FUSED);
    if (f > s->need_fused)
        s->need_fused = f;
    if (strcmp(name, "lm_head") != 0) {
        size_t d = gpu_qlinear_workspace_size(w, GPU_QLINEAR_MAX_FUSED_ROWS + 1, GPU_QLINEAR_DEQUANT);
        if (d > s->need_dequant)
            s->need_dequant = d;
        if (w->k > s->max_k)
            s->max_k = w->k;
    }
    if ((w->m + 31) / 32 > s->max_tiles)
        s->max_tiles = (w->m + 31) / 32;
    s->st.uploads++;
    s->st.live++;
    s->st.live_bytes += w->bytes;
    *out = w;
    return CK_OK;
}

ck_status cq_clone(cq_state *s, const gpu_qweight *src, gpu_qweight **out, ck_error *err)
{
    *out = NULL;
    gpu_qweight *w = calloc(1, sizeof *w);
    if (!w)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of host memory");
    int rc = gpu_qweight_clone(w, src);
    if (rc != GPU_OK) {
        free(w);
        return ck_fail(err, rc == GPU_UNSUPPORTED ? CK_E_INTERNAL : CK_E_OUT_OF_MEMORY,
                       "cuda backend: copy of a quantized linear: %s", gpu_last_error());
    }
    s->st.uploads++;
    s->st.live++;
    s->st.live_bytes += w->bytes;
    *out = w;
    return CK_OK;
}

void cq_free_weight(cq_state *s, gpu_qweight *w)
{
    if (!w)
        return;
    if (s && (s->want.w == w || s->ready.w == w || s->next_w == w)) { /* no pointer to a freed weight kept */
        memset(&s->want, 0, sizeof s->want);
        memset(&s->ready, 0, sizeof s->ready);
        s->next_w = NULL;
    }
    if (s && s->st.live) {
        s->st.live--;
        s->st.live_bytes -= w->bytes <= s->st.live_bytes ? w->bytes : s->st.live_bytes;
    }
    gpu_qweight_free(w);
    free(w);
}

static ck_status grow(void **p, size_t *size, size_t need, const char *what, ck_error *err)
{
    if (need <= *size)
        return CK_OK;
    if (*p)
        (void)cudaFree(*p);
    *p = NULL;
    *size = 0;
    cudaError_t e = cudaMalloc(p, need);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: cannot allocate %zu bytes for the %s: %s", need, what,
                       cudaGetErrorString(e));
    }
    *size = need;
    return CK_OK;
}

ck_status cq_prepare(cq_state *s, int max_rows, int vocab, int *grew, ck_error *err)
{
    *grew = 0;
    memset(&s->pend, 0, sizeof s->pend); /* between steps: nothing pending (and the buffers may move) */
    if (!s->st.live)
        return CK_OK;
    size_t need = s->need_fused;
    /* the dequant path's need grows with the rows (permuted activations): a bound for max_rows */
    size_t dq = s->need_dequant + ((size_t)max_rows * (size_t)s->max_k * 2 + 255) / 256 * 256;
    if (max_rows > GPU_QLINEAR_MAX_FUSED_ROWS && dq > need)
        need = dq;
    if (need > s->ws_size) {
        *grew = 1;
        ck_status st = grow(&s->ws, &s->ws_size, need, "quantized-linear workspace", err);
        if (st != CK_OK)
            return st;
    }
    size_t head = (size_t)GPU_QLINEAR_MAX_FUSED_ROWS * (size_t)(vocab > 0 ? vocab : 1) * 2;
    if (head > s->head_out_size) {
        *grew = 1;
        ck_status st = grow(&s->head_out, &s->head_out_size, head, "quantized lm_head scratch", err);
        if (st != CK_OK)
            return st;
    }
    /* the producer-written activations (cq_order_for): two slots of the fused path's most rows at the widest input */
    size_t xp = ((size_t)GPU_QLINEAR_MAX_FUSED_ROWS * (size_t)s->max_k * 2 + 255) / 256 * 256;
    if (xp > s->xp_size) {
        *grew = 1;
        size_t got[2] = {s->xp_size, s->xp_size};
        for (int i = 0; i < 2; i++) {
            ck_status st = grow(&s->xp[i], &got[i], xp, "permuted-activation buffer", err);
            if (st != CK_OK) {
                s->xp_size = 0; /* neither slot is used until both are sized */
                return st;
            }
        }
        s->xp_size = xp;
        memset(&s->ready, 0, sizeof s->ready);
    }
    /* the split RMSNorm's sums (cq_matmul_add_norm) */
    size_t ss = (size_t)GPU_QLINEAR_MAX_FUSED_ROWS * (size_t)s->max_tiles * sizeof(float);
    if (ss > s->ss_size) {
        *grew = 1;
        ck_status st = grow((void **)&s->ss, &s->ss_size, ss, "split-norm sums", err);
        if (st != CK_OK)
            return st;
    }
    s->st.workspace_bytes = s->ws_size + s->head_out_size + 2 * s->xp_size + s->ss_size;
    return CK_OK;
}

void cq_order_for(cq_state *s, const void *buf, const gpu_qweight *w)
{
    if (!buf) { /* a step's start: no copy of an earlier step's is read, no norm of one is pending */
        memset(&s->ready, 0, sizeof s->ready);
        memset(&s->pend, 0, sizeof s->pend);
    }
    s->next_buf = buf;
    s->next_w = buf ? w : NULL;
    s->want.buf = w && w->pos && w->layout == GPU_QLAYOUT_MMA ? buf : NULL;
    s->want.w = s->want.buf ? w : NULL;
}

void cq_wrote(cq_state *s, const void *out)
{
    if (s->ready.buf == out) /* out is written again: its copy is stale */
        memset(&s->ready, 0, sizeof s->ready);
}

void *cq_produce(cq_state *s, const void *out, int n, int d, const gpu_qweight **w)
{
    *w = NULL;
    cq_wrote(s, out);
    if (!s->want.buf || s->want.buf != out || n < 1 || n > GPU_QLINEAR_MAX_FUSED_ROWS || d != s->want.w->k ||
        !s->xp_size || (size_t)n * (size_t)d * 2 > s->xp_size)
        return NULL;
    *w = s->want.w;
    return s->xp[s->xp_next];
}

void cq_produced(cq_state *s, const void *out, int n)
{
    s->ready.buf = out;
    s->ready.w = s->want.w;
    s->ready.n = n;
    s->ready.slot = s->xp_next;
    s->xp_next ^= 1;
}

/* The producer-written copy of x (n rows) in w's packed order as gpu_qx's input (xin NULL: none). */
static gpu_qx xin_for(const cq_state *s, const void *x, int n, const gpu_qweight *w)
{
    gpu_qx qx = {0};
    if (!s->ready.buf || s->ready.buf != x || s->ready.n != n || w->perm_identity || w->layout != GPU_QLAYOUT_MMA)
        return qx;
    if (w != s->ready.w && !(w->perm_label && w->perm_label == s->ready.w->perm_label))
        return qx;
    qx.xin = s->xp[s->ready.slot];
    qx.xin_w = s->ready.w;
    return qx;
}

void cq_forget(cq_state *s, const void *buf)
{
    if (s && s->pend.buf && (!buf || buf == s->pend.buf || buf == s->pend.xp))
        memset(&s->pend, 0, sizeof s->pend);
}

ck_status cq_settle(cq_state *s, gpu_dtype dt, cudaStream_t stream, ck_error *err)
{
    if (!s || !s->pend.buf)
        return CK_OK;
    const int rc = gpu_rms_settle(dt, s->pend.buf, s->pend.xp, s->ss, s->pend.tiles, s->pend.n, s->pend.d,
                                  s->pend.eps, s->pend.shift, stream);
    memset(&s->pend, 0, sizeof s->pend);
    s->st.norm_settles++;
    return gpu_st(rc, "the end of a split RMSNorm", NULL, err);
}

/* x's pending norm (cq_state.pend) as the scales of the decode launch that reads x's n rows; 0: none pending there */
static int norm_in(const cq_state *s, const void *x, int n, gpu_qx *qx)
{
    if (!s->pend.buf || s->pend.buf != x || s->pend.n != n)
        return 0;
    qx->ss_in = s->ss;
    qx->ss_tiles = s->pend.tiles;
    qx->ss_d = s->pend.d;
    qx->ss_eps = s->pend.eps;
    qx->ss_shift = s->pend.shift;
    return 1;
}

ck_status cq_matmul_add_norm(cq_state *s, gpu_dtype dt, void *xn, void *resid, const void *x, const gpu_qweight *w,
                             const void *bias, const void *nw, int nw_shift, int n, int k, int m, float eps,
                             int with_copy, cudaStream_t stream, ck_error *err)
{
    ck_status st = cq_settle(s, dt, stream, err); /* not expected (the forward pass consumed it), but first */
    if (st != CK_OK)
        return st;
    /* up to GPU_QLINEAR_NORM_ROWS rows (the decode kernel's one-row variant and its 2-4-row rounds of 4-bit weights
     * have the split's instantiations: quant_ops.h), and the weight that reads xn next (cq_order_for) a regular one,
     * which takes ss_in there: else its launch would decline the scales and a settle launch would stand where
     * add_rmsnorm stood. At 2-4 rows both weights 4-bit (the rounds': 8-bit ones would decline) */
    const gpu_qweight *c = s->next_buf == xn ? s->next_w : NULL;
    if (n < 1 || n > GPU_QLINEAR_NORM_ROWS || !c || (n > 1 && (w->chunk_bits != 4 || c->chunk_bits != 4)) ||
        c->layout != GPU_QLAYOUT_MMA ||
        (c->chunk_bits != 4 && c->chunk_bits != 8) || c->k != m || w->layout != GPU_QLAYOUT_MMA ||
        (w->chunk_bits != 4 && w->chunk_bits != 8) || w->m != m || w->k != k ||
        (size_t)n * (size_t)(w->mp / 32) * sizeof(float) > s->ss_size)
        return CK_E_UNSUPPORTED;
    gpu_qx qx = xin_for(s, x, n, w);
    if (with_copy)
        qx.xout = cq_produce(s, xn, n, m, &qx.xout_w);
    else
        cq_wrote(s, xn);
    qx.resid = resid;
    qx.nw = nw;
    qx.ss_shift = nw_shift;
    qx.ss_out = s->ss;
    void *o1[1] = {xn};
    const void *b1[1] = {bias};
    const int rc = gpu_qlinear_multi_x(dt, o1, x, &w, b1, 1, n, &qx, s->ws, s->ws_size, stream);
    if (rc == GPU_UNSUPPORTED)
        return CK_E_UNSUPPORTED; /* nothing launched: the caller runs the matmul and add_rmsnorm */
    st = gpu_st(rc, "quantized matmul", "(+ residual, RMSNorm's sums)", err);
    if (st != CK_OK)
        return st;
    s->st.fused_calls++;
    s->st.xin_calls += qx.xin != NULL;
    s->st.norm_splits++;
    if (qx.xout)
        cq_produced(s, xn, n);
    s->pend.buf = xn;
    s->pend.xp = qx.xout;
    s->pend.n = n;
    s->pend.d = m;
    s->pend.tiles = w->mp / 32;
    s->pend.eps = eps;
    s->pend.shift = nw_shift;
    return CK_OK;
}

static ck_status check_shape(const gpu_qweight *w, int k, int m, const char *op, ck_error *err)
{
    if (w->k != k || w->m != m)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: %s of a quantized [%d, %d] weight as [%d, %d]", op, w->m,
                       w->k, m, k);
    return CK_OK;
}

ck_status cq_matmul(cq_state *s, gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w,
                    const void *bias, int n, int k, int m, cudaStream_t stream, ck_error *err)
{
    ck_status st = check_shape(w, k, m, "matmul", err);
    if (st == CK_OK)
        st = cq_settle(s, dt, stream, err); /* one weight's launch does not take a pending norm's scales */
    if (st != CK_OK)
        return st;
    cq_wrote(s, out);
    int path = n <= GPU_QLINEAR_MAX_FUSED_ROWS ? GPU_QLINEAR_FUSED : GPU_QLINEAR_DEQUANT;
    const gpu_qx qx = path == GPU_QLINEAR_FUSED ? xin_for(s, x, n, w) : (gpu_qx){0};
    if (qx.xin) { /* the activations in w's order, written by the op that produced them: one launch, no gather */
        void *o1[1] = {out};
        const void *b1[1] = {bias};
        const int rc = gpu_qlinear_multi_x(dt, o1, x, &w, b1, 1, n, &qx, s->ws, s->ws_size, stream);
        if (rc == GPU_OK) {
            s->st.fused_calls++;
            s->st.xin_calls++;
            return CK_OK;
        }
        if (rc != GPU_UNSUPPORTED)
            return gpu_st(rc, "quantized matmul", NULL, err);
    }
    size_t need = gpu_qlinear_workspace_size(w, n, path);
    if (!s->ws || need > s->ws_size)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: quantized matmul of %d rows needs a %zu-byte workspace, %zu "
                       "prepared (fwd_workspace_create prepares it after the model is loaded)", n, need, s->ws_size);
    st = gpu_st(gpu_qlinear(blas, dt, out, x, w, bias, n, path, s->ws, s->ws_size, stream), "quantized matmul", NULL,
                err);
    if (st == CK_OK) {
        if (path == GPU_QLINEAR_FUSED)
            s->st.fused_calls++;
        else
            s->st.dequant_calls++;
    }
    return st;
}

ck_status cq_matmul_many(cq_state *s, gpu_blas *blas, gpu_dtype dt, void *const *outs, const int *ms, const void *x,
                         const gpu_qweight *const *ws, const void *const *biases, int n_w, int n, int k,
                         cudaStream_t stream, ck_error *err)
{
    ck_status st = CK_OK;
    for (int i = 0; i < n_w && st == CK_OK; i++)
        st = check_shape(ws[i], k, ms[i], "matmul", err);
    if (st != CK_OK)
        return st;
    for (int i = 0; i < n_w; i++)
        cq_wrote(s, outs[i]);
    int one_launch = n <= GPU_QLINEAR_MAX_FUSED_ROWS && n_w <= 3;
    for (int i = 0; i < n_w && one_launch; i++) /* the layouts it takes (no failing call per step otherwise) */
        one_launch = ws[i]->layout == GPU_QLAYOUT_MMA && ws[i]->format == ws[0]->format;
    if (one_launch) {
        gpu_qx qx = {0};
        for (int i = 0; i < n_w && !qx.xin; i++)
            qx = xin_for(s, x, n, ws[i]);
        const int scaled = norm_in(s, x, n, &qx);
        if (!scaled && (st = cq_settle(s, dt, stream, err)) != CK_OK) /* a norm pending elsewhere: finished first */
            return st;
        const int rc = gpu_qlinear_multi_x(dt, outs, x, ws, biases, n_w, n, qx.xin || scaled ? &qx : NULL, s->ws,
                                           s->ws_size, stream);
        if (rc == GPU_OK) {
            s->st.multi_calls++;
            s->st.fused_calls++;
            s->st.xin_calls += qx.xin != NULL;
            if (scaled) {
                memset(&s->pend, 0, sizeof s->pend);
                s->st.norm_takes++;
            }
            return CK_OK;
        }
        if (rc != GPU_UNSUPPORTED)
            return gpu_st(rc, "quantized matmul", "(several weights)", err);
        /* not one launch (layouts or formats differ): one call per weight below */
    }
    for (int i = 0; i < n_w && st == CK_OK; i++)
        st = cq_matmul(s, blas, dt, outs[i], x, ws[i], biases ? biases[i] : NULL, n, k, ms[i], stream, err);
    return st;
}

ck_status cq_swiglu(cq_state *s, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate,
                    const gpu_qweight *w_up, const void *b_gate, const void *b_up, int n, int k, int f,
                    cudaStream_t stream, ck_error *err)
{
    ck_status st = check_shape(w_gate, k, f, "matmul", err);
    if (st == CK_OK)
        st = check_shape(w_up, k, f, "matmul", err);
    if (st != CK_OK)
        return st;
    /* a consumer of x (its copy in gate's order, if written) and a producer of out (in the down projection's) */
    gpu_qx qx = xin_for(s, x, n, w_gate);
    qx.xout = cq_produce(s, out, n, f, &qx.xout_w);
    const int scaled = norm_in(s, x, n, &qx);
    if (!scaled && (st = cq_settle(s, dt, stream, err)) != CK_OK) /* a norm pending elsewhere: finished first */
        return st;
    const int rc = gpu_qlinear_swiglu_x(dt, out, x, w_gate, w_up, b_gate, b_up, n,
                                        qx.xin || qx.xout || scaled ? &qx : NULL, s->ws, s->ws_size, stream);
    if (rc == GPU_UNSUPPORTED)
        return CK_E_UNSUPPORTED; /* no error recorded: the caller takes the two-step path (a pending norm with it) */
    st = gpu_st(rc, "quantized matmul", "(gate, up + SwiGLU)", err);
    if (st == CK_OK) {
        s->st.multi_calls++;
        s->st.fused_calls++;
        s->st.swiglu_calls++;
        s->st.xin_calls += qx.xin != NULL;
        if (scaled) {
            memset(&s->pend, 0, sizeof s->pend);
            s->st.norm_takes++;
        }
        if (qx.xout)
            cq_produced(s, out, n);
    }
    return st;
}

ck_status cq_logits(cq_state *s, gpu_blas *blas, gpu_dtype dt, float *logits, const void *x, const gpu_qweight *w,
                    int n, int k, int m, cudaStream_t stream, ck_error *err)
{
    ck_status st = check_shape(w, k, m, "lm_head", err);
    if (st != CK_OK)
        return st;
    const int R = GPU_QLINEAR_MAX_FUSED_ROWS;
    size_t need = gpu_qlinear_workspace_size(w, R, GPU_QLINEAR_FUSED);
    if (!s->ws || need > s->ws_size || (size_t)R * (size_t)m * 2 > s->head_out_size)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: quantized lm_head: workspace not prepared for a vocabulary "
                       "of %d (fwd_workspace_create prepares it after the model is loaded)", m);
    for (int r = 0; r < n && st == CK_OK; r += R) {
        int nr = n - r < R ? n - r : R;
        const char *xr = (const char *)x + (size_t)r * (size_t)k * 2;
        st = gpu_st(gpu_qlinear(blas, dt, s->head_out, xr, w, NULL, nr, GPU_QLINEAR_FUSED, s->ws, s->ws_size, stream),
                    "quantized lm_head", NULL, err);
        if (st == CK_OK)
            st = gpu_st(cku_to_f32(dt, logits + (size_t)r * (size_t)m, s->head_out, (size_t)nr * (size_t)m, stream),
                        "lm_head logits to float32", NULL, err);
        if (st == CK_OK)
            s->st.fused_calls++;
    }
    if (st == CK_OK)
        s->st.head_calls++;
    return st;
}

void cq_stats_get(const cq_state *s, cq_stats *out)
{
    if (s)
        *out = s->st;
    else
        memset(out, 0, sizeof *out);
}
