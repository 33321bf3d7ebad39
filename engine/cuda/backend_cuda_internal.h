/* engine/cuda/backend_cuda_internal.h: the cuda backend's state, shared by backend_cuda.c and
 * backend_cuda_sample.c (the per-row step end: device sampling, selective logit copies). */
#ifndef CK_BACKEND_CUDA_INTERNAL_H
#define CK_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "backend_cuda.h"
#include "backend_cuda_quant.h"
#include "cuda_ops.h"
#include "cuda_util.h"

#define MAX_GRAPHS 96

struct cuda_smp; /* backend_cuda_sample.c */

struct be_buf {
    void *p;
    size_t n;     /* elements */
    size_t bytes;
    gpu_qweight *q; /* a quantized linear (backend_cuda_quant.c; p NULL, n 0), else NULL */
    float absmax;   /* the largest |element| as uploaded (1-D tensors) or written whole; INFINITY: not known. The
                     * split RMSNorm's FP16 numerators are scaled by it (op_matmul_add_rmsnorm) */
};

typedef struct graph_entry {
    const void *owner, *kv;
    int B, C;
    cudaGraphExec_t exec;
    uint64_t last_use;
} graph_entry;

typedef struct cuda_be {
    be_backend base; /* first: the op table */
    int device;
    gpu_dtype dt;
    int dt_locked;
    cudaStream_t stream, copy_stream;
    cudaEvent_t meta_ready;
    gpu_blas *blas;
    cublasHandle_t cublas;
    void *blas_ws;
    /* step metadata: host pinned mirror and device copy, sections at fixed offsets (int32 units) */
    int32_t *h_meta, *d_meta;
    size_t meta_ints;
    int Tcap, Scap, page_cap, inv_cap;
    size_t off_tokens, off_pos, off_seq, off_rows, off_inv, off_pt;
    void *attn_ws;
    size_t attn_ws_size;
    float *d_logits, *h_logits; /* [rows_cap, vocab] */
    size_t logits_cap;          /* floats */
    /* upload staging */
    float *h_stage, *d_stage;
    /* the current step */
    int in_step, capturing, T, S, R, max_ctx, max_q_len;
    const void *cur_owner, *cur_kv;
    int cur_B, cur_C;
    /* graphs */
    graph_entry graphs[MAX_GRAPHS];
    int n_graphs;
    uint64_t clock;
    int graphs_on;
    char graph_error[256]; /* why graphs were turned off, "" if they were not */
    size_t fake_free;
    be_cuda_counters cnt;
    struct cuda_smp *smp; /* device sampling buffers (backend_cuda_sample.c) */
    cq_state *quant; /* quantized linears: workspace and counters */
    /* a decode step's rope and cache write (op_rope_kv) left to the attention after it, which does them in its own
     * launch (gpu_attention_rope_x); any other op launches them first (rope_settle) */
    struct {
        int on, n_q_heads, row, rot;
        void *q, *k;
        const void *v;
        float mscale;
        gpu_paged_kv kv;
    } rope_pend;
} cuda_be;

/* backend_cuda_sample.c */
ck_status cuda_smp_prepare(cuda_be *c, int rows, int vocab, int max_ctx, ck_error *err);
void cuda_smp_destroy(cuda_be *c);
/* Forget the device copies of every token history (resent whole at their next use). */
void cuda_smp_forget(cuda_be *c);
ck_status cuda_step_end_rows(be_backend *be, int ok, const be_step_out *out, ck_error *err);
/* backend_cuda.c: end of the graph/eager part of a step (capture end, replay, error drain) */
ck_status cuda_step_finish(cuda_be *c, int ok, ck_error *err);

#endif
