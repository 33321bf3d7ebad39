/* engine/cuda/backend_cuda_quant.h: quantized linears (GPTQ, EXL2) in the cuda backend (prefix cq_),
 * on the kernels of kernels/cuda/quant_ops.h. backend_cuda.c owns a cq_state and calls these from its
 * upload_quant hook, op_matmul, op_lm_head and cuda_prepare; tests and the bench read the counters.
 *
 * Memory: each linear is uploaded once (gpu_qweight_upload_*: its own device arrays, never a dense
 * copy). One workspace, sized by cq_prepare for the largest linear at the workspace's most rows:
 * the fused path (<= 16 rows) for every linear, the dequantize-then-cuBLASLt path for more rows (never
 * for the lm_head, which runs 16 rows at a time through the fused path into a dt scratch, then to
 * float32 logits). The ops allocate nothing and only queue kernels on the given stream, so decode
 * steps can be captured as CUDA graphs. Not thread-safe: the backend's single-thread contract. */
#ifndef CK_BACKEND_CUDA_QUANT_H
#define CK_BACKEND_CUDA_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_ops.h"
#include "quant_ops.h"

typedef struct cq_state cq_state;

/* What the quantized path has done (tests: proof that the kernels ran and nothing dense was made). */
typedef struct cq_stats {
    uint64_t uploads;          /* quantized linears uploaded (live or freed) */
    uint64_t live;             /* quantized linears now held */
    uint64_t live_bytes;       /* their device bytes (gpu_qweight.bytes summed) */
    uint64_t fused_calls;      /* gpu_qlinear calls on the fused path (matmul and lm_head chunks) */
    uint64_t dequant_calls;    /* on the dequantize + cuBLASLt path */
    uint64_t multi_calls;      /* gpu_qlinear_multi launches (several weights of one input; also in fused_calls) */
    uint64_t swiglu_calls;     /* gate, up + SwiGLU in one launch (gpu_qlinear_swiglu; also in multi_calls) */
    uint64_t head_calls;       /* quantized lm_head ops */
    uint64_t xin_calls;        /* decode launches that read activations a producer wrote in their order (cq_order_for;
                                * also in fused_calls) */
    uint64_t norm_splits;      /* residual-add launches that left their RMSNorm's scales to the next one
                                * (cq_matmul_add_norm; also in fused_calls) */
    uint64_t norm_takes;       /* decode launches that took those scales */
    uint64_t norm_settles;     /* settle launches (cq_settle): a split norm that no launch took */
    size_t workspace_bytes;    /* the prepared workspace */
} cq_stats;

ck_status cq_create(cq_state **out, ck_error *err);
void cq_destroy(cq_state *s); /* accepts NULL; the weights are freed by cq_free_weight */

/* Upload a validated linear (engine/quant's qnt_host_linear); `name` for messages ("lm_head": the head,
 * which only cq_logits runs). */
ck_status cq_upload(cq_state *s, const char *name, const struct qnt_host_linear *l, gpu_qweight **out,
                    ck_error *err);
void cq_free_weight(cq_state *s, gpu_qweight *w); /* accepts NULL */
/* A copy of an uploaded linear in fresh device memory (device-to-device; benches: one per layer). */
ck_status cq_clone(cq_state *s, const gpu_qweight *src, gpu_qweight **out, ck_error *err);

/* Size the workspace for steps of up to max_rows rows (activation rows per matmul, logit rows per
 * lm_head). *grew = 1 when it was reallocated (captured graphs hold the old address: drop them). */
ck_status cq_prepare(cq_state *s, int max_rows, int vocab, int *grew, ck_error *err);

/* out[n, m] = x[n, k] W^T (+ bias), dt activations. */
ck_status cq_matmul(cq_state *s, gpu_blas *blas, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w,
                    const void *bias, int n, int k, int m, cudaStream_t stream, ck_error *err);

/* out = silu(x w_gate^T + b_gate) * (x w_up^T + b_up) in one decode launch (gpu_qlinear_swiglu). CK_E_UNSUPPORTED
 * when that launch does not take the pair or the rows (the caller then runs cq_matmul_many and the SwiGLU). */
ck_status cq_swiglu(cq_state *s, gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate,
                    const gpu_qweight *w_up, const void *b_gate, const void *b_up, int n, int k, int f,
                    cudaStream_t stream, ck_error *err);
/* outs[i][n, ms[i]] = x[n, k] W_i^T (+ biases[i]) for n_w <= 3 weights of one input (q, k, v; gate, up):
 * one gpu_qlinear_multi launch where it applies (n <= 16, all in the tensor-core layout), else one
 * cq_matmul per weight. */
ck_status cq_matmul_many(cq_state *s, gpu_blas *blas, gpu_dtype dt, void *const *outs, const int *ms, const void *x,
                         const gpu_qweight *const *ws, const void *const *biases, int n_w, int n, int k,
                         cudaStream_t stream, ck_error *err);

/* Activations in a permuted weight's order, written by the op that produces them (be_ops.order_for), so the
 * decode kernel of that weight skips its gather launch:
 *   cq_order_for: the next producer of `buf` should also write it in w's packed order (w NULL, dense or not
 *     permuted: none; buf NULL: also forget the copy last written, at a step's start);
 *   cq_produce: called by each op that writes n rows of width d to `out` (the backend's producers: rmsnorm,
 *     add_rmsnorm, decode attention, gate, up + SwiGLU); drops a copy of `out` written before, and returns the
 *     buffer to write this one into in the order of *w (its perm or pos), or NULL when none is wanted or possible
 *     (more than GPU_QLINEAR_MAX_FUSED_ROWS rows);
 *   cq_produced: after that op's launch succeeded: cq_matmul, cq_matmul_many and cq_swiglu of weights of that
 *     permutation on `out` (n rows) then read the copy.
 * Host-side bookkeeping only (a captured graph replays what the ops launched). */
void cq_order_for(cq_state *s, const void *buf, const gpu_qweight *w);
void *cq_produce(cq_state *s, const void *out, int n, int d, const gpu_qweight **w);
/* An op wrote `out` without a copy (the quantized matmuls call it for their outputs; op_swiglu): a copy of out
 * written before is dropped. */
void cq_wrote(cq_state *s, const void *out);
void cq_produced(cq_state *s, const void *out, int n);

/* The residual add and RMSNorm after a decode step's o and down projections, without a launch of their own:
 * resid += x W^T (+ bias) (the product rounded to dt first), xn = rmsnorm(resid) * nw, where the decode launch of W
 * adds to the residual and writes xn's numerators resid * nw and their sums of squares (gpu_qx.resid), and the next
 * decode launch that reads xn (cq_matmul_many, cq_swiglu) scales its outputs by the norm (gpu_qx.ss_in). Until then
 * xn holds the numerators: every other op that may read it calls cq_settle first. Taken only where the weight that
 * reads xn next (cq_order_for(s, xn, w) before this call) and W are regular 4/8-bit weights of the tensor-core
 * layout and n == 1 (a step of one sequence); CK_E_UNSUPPORTED otherwise, nothing launched and no error recorded
 * (the caller runs cq_matmul and add_rmsnorm). with_copy: xn is also written in that weight's order when it is
 * permuted (cq_produce). nw_shift (-30..30; the backend takes -30..4): the numerators are resid * nw *
 * 2^-nw_shift (gpu_qx.ss_shift), and their consumer and the settle launch scale by 2^nw_shift.
 * cq_settle: finishes a pending norm (gpu_rms_settle: xn and its copy in the next weight's order scaled in place);
 * no-op when none is pending. */
ck_status cq_matmul_add_norm(cq_state *s, gpu_dtype dt, void *xn, void *resid, const void *x, const gpu_qweight *w,
                             const void *bias, const void *nw, int nw_shift, int n, int k, int m, float eps,
                             int with_copy, cudaStream_t stream, ck_error *err);
ck_status cq_settle(cq_state *s, gpu_dtype dt, cudaStream_t stream, ck_error *err);
/* Drop a pending norm without finishing it: buf NULL (a failed step), or the buffer (or its copy) being freed. */
void cq_forget(cq_state *s, const void *buf);

/* logits[n, m] float32 (device) = x[n, k] W^T. */
ck_status cq_logits(cq_state *s, gpu_blas *blas, gpu_dtype dt, float *logits, const void *x, const gpu_qweight *w,
                    int n, int k, int m, cudaStream_t stream, ck_error *err);

void cq_stats_get(const cq_state *s, cq_stats *out);

/* ---- extras defined in backend_cuda.c (need struct be_buf / the backend) ---------------------- */
/* The quantized-path counters of a cuda backend (zeros before anything was quantized). */
void be_cuda_quant_stats(const be_backend *be, cq_stats *out);
/* The quantized weight a buffer holds, or NULL for a dense buffer. */
const gpu_qweight *be_cuda_qweight(const be_buf *b);
/* Device bytes a buffer holds (quantized: gpu_qweight.bytes; dense: elements x 2). */
size_t be_cuda_buf_bytes(const be_buf *b);
/* A quantized buffer copied into fresh device memory (cq_clone). */
ck_status be_cuda_copy_quant(be_backend *be, const be_buf *src, be_buf **out, ck_error *err);

#endif
