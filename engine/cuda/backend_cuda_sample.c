/* engine/cuda/backend_cuda_sample.c: the per-row end of a step (be_ops.step_end_rows): rows that
 * the caller samples with the built-in chain are sampled on the device (gpu_sample, after the step's
 * graph replay, eagerly) and only their token ids and logprobs come back; rows whose logits the host
 * needs (a Lua sampler, a rewind's bans, a stage the GPU chain lacks) are copied to pinned memory,
 * only those rows; the others are dropped.
 *
 * Data flow per step, with no allocation (everything is sized by prepare):
 *   - ONE host-to-device copy of a pinned staging buffer: the sampled rows' gpu_sample_params, their
 *     logit-bias entries (at most BE_SAMPLE_MAX_BIAS per row) and the history tokens appended since
 *     the last step as (arena index, token) pairs, which a small kernel scatters;
 *   - the histories live on the device in an arena of one slot of max_ctx tokens per sequence
 *     (max_seqs slots), keyed by the caller's hist_id: a row sends only the tokens past what its
 *     slot holds (one per decode step). A new id (a new job, or a rewind) takes the least recently
 *     used slot and sends its whole history once: straight from the caller's array when it is longer
 *     than APPEND_MAX tokens (a prompt), so the staging stays small;
 *   - gpu_sample over each run of consecutive sampled rows, reading the logits in place;
 *   - device-to-host copies of the wanted logit rows (runs) and of the tokens and logprobs.
 * Bytes per decode step at batch B: B * (64 + 12) up, B * 8 down, plus 4 * vocab per logits row. */
#include <stdlib.h>
#include <string.h>

#include "backend_cuda_internal.h"

#define APPEND_MAX 64 /* history tokens one row may send through the staging in a step */

int cku_hist_scatter(int32_t *arena, const int64_t *idx, const int32_t *tok, int n, cudaStream_t stream);

typedef struct cuda_smp {
    int rows;              /* logit rows of a step (params, tokens, logprobs) */
    int ws_rows;           /* rows of one gpu_sample launch (its workspace) */
    int vocab, ctx;
    int n_slots;           /* history slots (sequences) */
    void *ws;
    size_t ws_size;
    /* staging: pinned host mirror and device copy, packed per step */
    unsigned char *h_stage, *d_stage;
    size_t stage_bytes;
    size_t bias_cap, app_cap;
    int32_t *d_out, *h_out; /* [2 * rows]: tokens, then logprobs (float bits) */
    int32_t *d_hist;        /* [n_slots, ctx] */
    uint64_t *slot_id, *slot_use;
    int32_t *slot_len;
    uint64_t clock;
    int *row_slot;          /* [rows] scratch */
} cuda_smp;

static ck_status cu_err(ck_error *err, cudaError_t e, const char *what, int line)
{
    return ck_fail(err, e == cudaErrorMemoryAllocation ? CK_E_OUT_OF_MEMORY : CK_E_DEVICE,
                   "%s:%d: cuda backend: %s: %s (%s)", __FILE__, line, what, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}
#define CUS(call, what)                                                                                        \
    do {                                                                                                       \
        cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess)                                                                                 \
            return cu_err(err, e_, (what), __LINE__);                                                          \
    } while (0)

/* counted allocation (be_cuda_counters), as backend_cuda.c's */
static ck_status dalloc(cuda_be *c, void **p, size_t bytes, const char *what, ck_error *err)
{
    *p = NULL;
    CUS(cudaMalloc(p, bytes ? bytes : 16), what);
    c->cnt.device_allocs++;
    return CK_OK;
}
static ck_status halloc(cuda_be *c, void **p, size_t bytes, const char *what, ck_error *err)
{
    *p = NULL;
    CUS(cudaMallocHost(p, bytes ? bytes : 16), what);
    c->cnt.host_allocs++;
    return CK_OK;
}
static void dfree_(cuda_be *c, void *p)
{
    if (p && cudaFree(p) == cudaSuccess)
        c->cnt.device_frees++;
}
static void hfree_(cuda_be *c, void *p)
{
    if (p && cudaFreeHost(p) == cudaSuccess)
        c->cnt.host_frees++;
}

static void smp_free(cuda_be *c, cuda_smp *s)
{
    dfree_(c, s->ws);
    dfree_(c, s->d_stage);
    hfree_(c, s->h_stage);
    dfree_(c, s->d_out);
    hfree_(c, s->h_out);
    dfree_(c, s->d_hist);
    free(s->slot_id);
    free(s->slot_use);
    free(s->slot_len);
    free(s->row_slot);
    free(s);
}

void cuda_smp_destroy(cuda_be *c)
{
    if (c->smp)
        smp_free(c, c->smp);
    c->smp = NULL;
}

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* The staging's sections while a step is packed (fixed places), in the order of the upload */
typedef struct stage_layout {
    size_t aidx, atok, bids, bval, end;
} stage_layout;

static stage_layout layout(size_t params_bytes, size_t n_app, size_t n_bias)
{
    stage_layout l;
    l.aidx = align256(params_bytes);
    l.atok = align16(l.aidx + n_app * 8);
    l.bids = align16(l.atok + n_app * 4);
    l.bval = align16(l.bids + n_bias * 4);
    l.end = l.bval + n_bias * 4;
    return l;
}

ck_status cuda_smp_prepare(cuda_be *c, int rows, int vocab, int max_ctx, ck_error *err)
{
    int slots = c->Scap, ws_rows = c->Scap;
    cuda_smp *o = c->smp;
    if (o && rows <= o->rows && slots <= o->n_slots && vocab == o->vocab && max_ctx <= o->ctx)
        return CK_OK; /* buffers only grow */
    if (o) {
        rows = rows > o->rows ? rows : o->rows;
        slots = slots > o->n_slots ? slots : o->n_slots;
        max_ctx = max_ctx > o->ctx ? max_ctx : o->ctx;
    }
    if (rows <= 0 || vocab <= 0 || max_ctx <= 0 || slots <= 0)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: sampling buffers for %d rows, vocab %d, context %d",
                       rows, vocab, max_ctx);
    if (ws_rows > rows)
        ws_rows = rows;
    cuda_smp_destroy(c); /* between steps: each step ended with a synchronize, nothing uses them */
    cuda_smp *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of memory (sampling state)");
    s->rows = rows;
    s->ws_rows = ws_rows;
    s->vocab = vocab;
    s->ctx = max_ctx;
    s->n_slots = slots;
    s->bias_cap = (size_t)rows * BE_SAMPLE_MAX_BIAS;
    s->app_cap = (size_t)rows * APPEND_MAX;
    s->stage_bytes = layout((size_t)rows * sizeof(gpu_sample_params), s->app_cap, s->bias_cap).end;
    s->ws_size = gpu_sample_workspace_size(ws_rows, vocab);
    s->slot_id = calloc((size_t)slots, sizeof *s->slot_id);
    s->slot_use = calloc((size_t)slots, sizeof *s->slot_use);
    s->slot_len = calloc((size_t)slots, sizeof *s->slot_len);
    s->row_slot = calloc((size_t)rows, sizeof *s->row_slot);
    ck_status st = CK_OK;
    if (!s->slot_id || !s->slot_use || !s->slot_len || !s->row_slot)
        st = ck_fail(err, CK_E_OUT_OF_MEMORY, "cuda backend: out of memory (sampling slots)");
    if (st == CK_OK)
        st = dalloc(c, &s->ws, s->ws_size, "sampling workspace", err);
    if (st == CK_OK)
        st = dalloc(c, (void **)&s->d_stage, s->stage_bytes, "sampling staging", err);
    if (st == CK_OK)
        st = halloc(c, (void **)&s->h_stage, s->stage_bytes, "sampling staging", err);
    if (st == CK_OK)
        st = dalloc(c, (void **)&s->d_out, (size_t)rows * 2 * sizeof(int32_t), "sampled tokens", err);
    if (st == CK_OK)
        st = halloc(c, (void **)&s->h_out, (size_t)rows * 2 * sizeof(int32_t), "sampled tokens", err);
    if (st == CK_OK)
        st = dalloc(c, (void **)&s->d_hist, (size_t)slots * (size_t)max_ctx * sizeof(int32_t), "token histories",
                    err);
    if (st != CK_OK) {
        smp_free(c, s);
        return st;
    }
    c->smp = s;
    return CK_OK;
}

/* The slot of hist_id (a new or least recently used one; never one already used this step). */
static int find_slot(cuda_smp *s, uint64_t id)
{
    int lru = -1;
    for (int i = 0; i < s->n_slots; i++) {
        if (s->slot_id[i] == id)
            return i;
        if (s->slot_use[i] != s->clock && (lru < 0 || s->slot_use[i] < s->slot_use[lru]))
            lru = i;
    }
    if (lru >= 0) {
        s->slot_id[lru] = id;
        s->slot_len[lru] = 0;
    }
    return lru;
}

static int pen_on(const be_sample_row *r)
{
    return r->repetition_penalty != 1.0f || r->frequency_penalty != 0.0f || r->presence_penalty != 0.0f;
}

/* Forget every device history (a model, workspace or cache went away: cuda_invalidate), or only the
 * slots this step touched (it failed part-way: their lengths may claim tokens never uploaded). The
 * next use of a forgotten history resends it whole. */
static void forget_slots(cuda_smp *s, int only_this_step)
{
    for (int i = 0; s && i < s->n_slots; i++)
        if (!only_this_step || s->slot_use[i] == s->clock) {
            s->slot_id[i] = 0;
            s->slot_len[i] = 0;
            s->slot_use[i] = 0;
        }
}

void cuda_smp_forget(cuda_be *c)
{
    forget_slots(c->smp, 0);
}

static ck_status step_end_rows(cuda_be *c, cuda_smp *s, const be_step_out *out, ck_error *err);

ck_status cuda_step_end_rows(be_backend *be, int ok, const be_step_out *out, ck_error *err)
{
    cuda_be *c = (cuda_be *)be;
    ck_status st = cuda_step_finish(c, ok, err);
    if (st != CK_OK)
        return st;
    st = step_end_rows(c, c->smp, out, err);
    if (st != CK_OK)
        forget_slots(c->smp, 1);
    return st;
}

static ck_status step_end_rows(cuda_be *c, cuda_smp *s, const be_step_out *out, ck_error *err)
{
    const int n = out->n_rows, V = out->vocab;
    if (!s || n > s->rows || V != s->vocab || (size_t)n * (size_t)V > c->logits_cap)
        return ck_fail(err, CK_E_INTERNAL, "cuda backend: %d logit rows of vocab %d beyond the prepared %d x %d", n,
                       V, s ? s->rows : 0, s ? s->vocab : 0);
    /* pack the staging: params | append indices | append tokens | bias ids | bias values, each
     * section at its fixed place while packing, then moved down so that one copy of the used bytes
     * sends them all */
    unsigned char *h = s->h_stage;
    const stage_layout fix = layout((size_t)s->rows * sizeof(gpu_sample_params), s->app_cap, s->bias_cap);
    gpu_sample_params *P = (gpu_sample_params *)h;
    int64_t *aidx = (int64_t *)(h + fix.aidx);
    int32_t *atok = (int32_t *)(h + fix.atok);
    int32_t *bids = (int32_t *)(h + fix.bids);
    float *bval = (float *)(h + fix.bval);
    size_t n_bias = 0, n_app = 0;
    int n_sample = 0, first = n, last = -1;
    s->clock++;
    for (int r = 0; r < n; r++) {
        s->row_slot[r] = -1;
        if (out->mode[r] != BE_ROW_SAMPLE)
            continue;
        const be_sample_row *q = &out->sample[r];
        if (q->n_bias < 0 || q->n_bias > BE_SAMPLE_MAX_BIAS || q->n_history < 0 || (q->n_bias && (!q->bias_ids || !q->bias_values)))
            return ck_fail(err, CK_E_INVALID_ARGUMENT, "cuda backend: sampled row %d: %d bias entries (at most %d), "
                           "%d history tokens", r, (int)q->n_bias, BE_SAMPLE_MAX_BIAS, (int)q->n_history);
        gpu_sample_params *p = &P[r];
        memset(p, 0, sizeof *p);
        p->temperature = q->temperature;
        p->top_p = q->top_p;
        p->min_p = q->min_p;
        p->repetition_penalty = q->repetition_penalty;
        p->frequency_penalty = q->frequency_penalty;
        p->presence_penalty = q->presence_penalty;
        p->top_k = q->top_k;
        p->seed = q->seed;
        p->counter = q->counter;
        p->bias_offset = (int64_t)n_bias;
        p->n_bias = q->n_bias;
        memcpy(bids + n_bias, q->bias_ids, (size_t)q->n_bias * sizeof *bids);
        memcpy(bval + n_bias, q->bias_values, (size_t)q->n_bias * sizeof *bval);
        n_bias += (size_t)q->n_bias;
        if (pen_on(q) && q->n_history > 0) {
            if (q->hist_id == 0 || !q->history)
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "cuda backend: sampled row %d has penalties but no "
                               "history id", r);
            if (q->n_history > s->ctx)
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "cuda backend: sampled row %d: a history of %d tokens "
                               "beyond the context (%d)", r, (int)q->n_history, s->ctx);
            int slot = find_slot(s, q->hist_id);
            if (slot < 0 || s->slot_use[slot] == s->clock)
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "cuda backend: sampled row %d: history %llu used twice in a "
                               "step, or more histories than sequences (%d)", r, (unsigned long long)q->hist_id,
                               s->n_slots);
            s->slot_use[slot] = s->clock;
            s->row_slot[r] = slot;
            if (s->slot_len[slot] > q->n_history)
                s->slot_len[slot] = 0; /* shrunk: the caller broke the append-only contract; resend it */
            int have = s->slot_len[slot], add = q->n_history - have;
            int32_t *dslot = s->d_hist + (size_t)slot * s->ctx;
            if (add > APPEND_MAX) {
                /* a new history (a prompt): straight from the caller's memory, once */
                CUS(cudaMemcpyAsync(dslot + have, q->history + have, (size_t)add * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, c->stream), "history upload");
            } else {
                for (int i = 0; i < add; i++) {
                    aidx[n_app] = (int64_t)slot * s->ctx + have + i;
                    atok[n_app++] = q->history[have + i];
                }
            }
            s->slot_len[slot] = q->n_history;
            int nh = q->n_history;
            if (q->penalty_range > 0 && q->penalty_range < nh)
                nh = q->penalty_range;
            p->n_history = nh;
            p->history_offset = (int64_t)slot * s->ctx + (q->n_history - nh);
        }
        n_sample++;
        first = r < first ? r : first;
        last = r;
    }
    /* one upload of the used bytes (each section moved down to its packed place, in order: a
     * section's packed place never lies above its fixed one, nor its end past the next's start) */
    const stage_layout pk = layout(n_sample > 0 ? (size_t)(last + 1) * sizeof *P : 0, n_app, n_bias);
    if (n_sample > 0) {
        memmove(h + pk.aidx, aidx, n_app * 8);
        memmove(h + pk.atok, atok, n_app * 4);
        memmove(h + pk.bids, bids, n_bias * 4);
        memmove(h + pk.bval, bval, n_bias * 4);
        CUS(cudaMemcpyAsync(s->d_stage, h, pk.end, cudaMemcpyHostToDevice, c->stream), "sampling upload");
        if (n_app) {
            int rc = cku_hist_scatter(s->d_hist, (const int64_t *)(s->d_stage + pk.aidx),
                                      (const int32_t *)(s->d_stage + pk.atok), (int)n_app, c->stream);
            if (rc != GPU_OK)
                return ck_fail(err, CK_E_DEVICE, "cuda backend: history scatter: %s", gpu_last_error());
        }
    }
    const gpu_sample_params *dP = (const gpu_sample_params *)s->d_stage;
    const int32_t *d_bids = (const int32_t *)(s->d_stage + pk.bids);
    const float *d_bval = (const float *)(s->d_stage + pk.bval);
    float *d_lp = (float *)(s->d_out + s->rows);
    /* sample each run of consecutive sampled rows (in launches of at most ws_rows) */
    for (int r = first; r <= last;) {
        if (out->mode[r] != BE_ROW_SAMPLE) {
            r++;
            continue;
        }
        int e = r;
        while (e < n && out->mode[e] == BE_ROW_SAMPLE && e - r < s->ws_rows)
            e++;
        int rc = gpu_sample(s->d_out + r, d_lp + r, c->d_logits + (size_t)r * V, V, e - r, V, dP + r, s->d_hist,
                            d_bids, d_bval, s->ws, s->ws_size, c->stream);
        if (rc != GPU_OK)
            return ck_fail(err, rc == GPU_UNSUPPORTED ? CK_E_UNSUPPORTED : CK_E_DEVICE, "cuda backend: sample: %s",
                           gpu_last_error());
        r = e;
    }
    /* the wanted logit rows, by runs */
    uint64_t lbytes = 0;
    for (int r = 0; r < n;) {
        if (out->mode[r] != BE_ROW_LOGITS) {
            r++;
            continue;
        }
        int e = r;
        while (e < n && out->mode[e] == BE_ROW_LOGITS)
            e++;
        size_t b = (size_t)(e - r) * (size_t)V * sizeof(float);
        CUS(cudaMemcpyAsync(c->h_logits + (size_t)r * V, c->d_logits + (size_t)r * V, b, cudaMemcpyDeviceToHost,
                            c->stream), "logits copy");
        lbytes += b;
        r = e;
    }
    if (n_sample > 0) {
        CUS(cudaMemcpyAsync(s->h_out, s->d_out, (size_t)(last + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                            c->stream), "sampled tokens copy");
        CUS(cudaMemcpyAsync(s->h_out + s->rows, d_lp, (size_t)(last + 1) * sizeof(float), cudaMemcpyDeviceToHost,
                            c->stream), "logprobs copy");
    }
    CUS(cudaStreamSynchronize(c->stream), "sampling step");
    for (int r = 0; r < n; r++) {
        if (out->mode[r] == BE_ROW_LOGITS) {
            memcpy(out->logits + (size_t)r * V, c->h_logits + (size_t)r * V, (size_t)V * sizeof(float));
        } else if (out->mode[r] == BE_ROW_SAMPLE) {
            out->tokens[r] = s->h_out[r];
            if (out->logprobs)
                memcpy(&out->logprobs[r], &s->h_out[s->rows + r], sizeof(float));
        }
    }
    c->cnt.logit_bytes_to_host += lbytes;
    c->cnt.sampled_rows += (uint64_t)n_sample;
    return CK_OK;
}
