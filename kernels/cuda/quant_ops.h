/* kernels/cuda/quant_ops.h: quantized linear layers on the GPU (GPTQ 4/8-bit, EXL2 2..8-bit mixed).
 *
 * out[n, m] = x[n, k] @ W[m, k]^T (+ bias[m]) where W is a quantized weight in device memory, laid out by
 * gpu_qweight_upload_* from the file arrays of FORMATS.md (the engine validates them first: engine/quant).
 * Same conventions as cuda_ops.h: raw device pointers, activations in `dt` (FP16 or BF16) with float32
 * accumulation, nothing allocated by the launcher (workspace from gpu_qlinear_workspace_size), the
 * work queued on `stream`, GPU_UNSUPPORTED for anything outside the compiled list.
 *
 * Paths (the layout is chosen at upload, see gpu_qweight.layout and docs/kernels.md):
 *   GPU_QLINEAR_FUSED (1 <= n <= 16), one launch (two for a permuted weight with n >= 4: the activations
 *     gathered once): tensor-core layout (4/8-bit): each lane's 16-byte weight load is its mma.sync
 *     A fragments (exact q - z in f16/bf16), the activations of a block's k-slice in shared memory,
 *     float32 accumulation with the scales applied per group in float32, deterministic split-K (the
 *     blocks of a column tile form a cluster; rank 0 sums their partials from distributed shared
 *     memory); launched with programmatic dependent launch; gpu_qlinear_multi runs up to 3 weights of
 *     one input in the same launch (qmv_kernel, quant_linear.cu); units layout (2/3/5/6-bit EXL2):
 *     the activations gathered in float32, scalar dequantization, float atomics, a finalize.
 *     Each weight byte is read once per call either way.
 *   GPU_QLINEAR_DEQUANT (any n): W is dequantized to a dt [m, k] tile in the workspace whose rows are in
 *     packed order (both layouts; the activations of a permuted weight are gathered to it), then the dense
 *     cuBLASLt path of gpu_linear.
 *   GPU_QLINEAR_AUTO: fused for n <= 16, else dequant.
 * Supported: m % 8 == 0; GPTQ with every group (after the act-order sort) a multiple of 32 / bits rows;
 * EXL2 with groups whose rows * bits is a multiple of 32 (all real files). Only launches on `stream`
 * (CUDA-graph capture works); with gpu_qlinear_qmv(0) (the first decode kernel), a weight's split-K
 * counters (tile_sync) allow one call at a time per weight. */
#ifndef CK_KERNELS_CUDA_QUANT_OPS_H
#define CK_KERNELS_CUDA_QUANT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GPU_Q_GPTQ = 1, GPU_Q_EXL2 = 2 };
enum { GPU_QLINEAR_AUTO = 0, GPU_QLINEAR_FUSED = 1, GPU_QLINEAR_DEQUANT = 2 };
#define GPU_QLINEAR_MAX_FUSED_ROWS 16
/* the most rows of a decode launch that takes gpu_qx's split RMSNorm (resid, ss_in) */
#define GPU_QLINEAR_NORM_ROWS 4

/* One quantized linear in device memory. */
typedef struct gpu_qweight {
    int format;            /* GPU_Q_GPTQ or GPU_Q_EXL2 */
    int k, m;              /* in_features, out_features */
    int bits, v2;          /* GPTQ */
    int n_groups, n_units;
    uint32_t *qweight;     /* GPTQ [k * bits / 32, m], rows in group order | EXL2 q_weight [packed_rows, m] */
    uint32_t *qzeros;      /* GPTQ [G, m * bits / 32] */
    uint16_t *scales;      /* GPTQ fp16 [G, m] */
    uint32_t *q_scale;     /* EXL2 [G, m / 8] */
    uint16_t *q_scale_max; /* EXL2 fp16 [G] */
    int32_t *perm;         /* [k]: the input row of packed-order row i */
    int32_t *pos;          /* MMA, permuted: [k], the packed-order row of input row j (pos[perm[i]] = i), for the
                            * kernels that write this weight's activations in its order (gpu_qx); NULL otherwise */
    int32_t *units;        /* [n_units, 4]: bits, first packed row, first row (packed order), rows | group << 8 */
    size_t bytes;          /* device bytes one pass over the weight reads (every array above) */
    /* Tensor-core layout (GPU_QLAYOUT_MMA; quant_linear.cu): 4- and 8-bit weights whose every 4 packed rows
     * lie in one group (GPTQ group sizes >= 32 / 16 rows; EXL2 layers of 4/8-bit groups with whole
     * 4-row chunks). qweight [packed_rows, mp] with the values of each word interleaved, qzeros /
     * scales / q_scale padded to mp columns, all four stored tile-major (each 32-column tile's rows
     * contiguous, so a decode block streams its tile); other weights keep GPU_QLAYOUT_UNITS (the arrays
     * above, as in the file). */
    int layout;            /* GPU_QLAYOUT_UNITS or GPU_QLAYOUT_MMA */
    int mp;                /* MMA: m rounded up to 32 */
    int n_chunks;          /* MMA: packed_rows / 4 */
    int perm_identity;     /* perm is the identity (GPTQ without act-order): the activations are not gathered */
    uint64_t perm_label;   /* MMA, permuted: weights of equal nonzero labels have equal perm arrays (compared in full
                            * at upload against the last few permutations uploaded: q, k, v and gate, up of a real
                            * EXL2 file share theirs), so one launch gathers their activations once and gate, up
                            * and SwiGLU may share a launch; 0: not known to equal any other */
    int32_t *chunks;       /* MMA: [n_chunks, 2]: first row (packed order), group | bits << 24 */
    int chunk_bits;        /* MMA: every chunk's width when the chunk table is regular, else 0. Regular:
                            * chunk c starts at packed-order row c * 128 / bits and lies in group
                            * c >> group_shift (GPTQ of any group size, act-order too; EXL2 layers of
                            * one width); the decode kernel then computes instead of reading the table */
    int group_shift;       /* MMA, regular: log2 of the chunks per group (30: one group) */
    uint32_t *tile_sync;   /* MMA: [mp / 32] split-K arrival counters, zero between calls (so one weight must
                            * not be used by two gpu_qlinear calls running at the same time on two streams) */
} gpu_qweight;

enum { GPU_QLAYOUT_UNITS = 0, GPU_QLAYOUT_MMA = 1 };
/* Benches and tests: 0 makes later uploads keep GPU_QLAYOUT_UNITS (the scalar kernels) even where the
 * tensor-core layout applies; 1 (the default) lets them use it. Not thread-safe; load time only. */
void gpu_qweight_allow_mma(int allow);

/* Upload (allocates device memory; load time only; host arrays in the file layout, already validated
 * by the engine; the indexes used here are checked again). Returns GPU_OK, GPU_UNSUPPORTED (layout
 * outside the list above, or an index out of range) or GPU_ELAUNCH. */
int gpu_qweight_upload_gptq(gpu_qweight *out, const uint32_t *qweight /* [k*bits/32, m] */,
                            const uint32_t *qzeros /* [G, m*bits/32] */, const uint16_t *scales /* [G, m] */,
                            const int32_t *g_idx /* [k] or NULL: k / group_size */, int n_groups, int bits,
                            int group_size /* -1: one group */, int v2, int k, int m);
int gpu_qweight_upload_exl2(gpu_qweight *out, const int32_t *q_invperm /* [k] */,
                            const int16_t *q_groups /* [2G] */, int n_groups, const uint32_t *q_weight,
                            int packed_rows, const uint32_t *q_scale /* [G, m/8] */,
                            const uint16_t *q_scale_max /* [G] */, int k, int m);
/* dst = a device copy of src (allocates; load time only: the bench's per-layer weights). */
int gpu_qweight_clone(gpu_qweight *dst, const gpu_qweight *src);
void gpu_qweight_free(gpu_qweight *w); /* accepts NULL and zeroed structs */

/* Workspace bytes for gpu_qlinear with n rows on `path` (the dequant path includes 32 MiB for cuBLASLt). */
size_t gpu_qlinear_workspace_size(const gpu_qweight *w, int n, int path);

int gpu_qlinear(gpu_blas *blas, gpu_dtype dt, void *out /* [n, m] */, const void *x /* [n, k] */,
                const gpu_qweight *w, const void *bias /* [m] or NULL */, int n, int path, void *workspace,
                size_t workspace_size, cudaStream_t stream);

/* Benches and tests: 0 makes the fused path of tensor-core weights use the first kernel (qmma_kernel: one
 * weight per launch, split-K through the workspace) instead of qmv_kernel (the default; also CHASKI_QMV=0);
 * gpu_qlinear_multi then answers GPU_UNSUPPORTED. Not thread-safe. */
void gpu_qlinear_qmv(int on);
/* Tests: the decode calls (this process, all devices) that took the folded zero points (one FP16 row, regular
 * weights whose every group spans 4 chunks or more; CHASKI_QFOLD=0 turns it off). Counted per host call: the
 * replays of a captured graph are not. */
unsigned long long gpu_qlinear_fold_calls(void);
/* Tests: the decode calls (counted as gpu_qlinear_fold_calls) that took qmv_general_kernel: tensor-core weights
 * without one regular width (EXL2 linears mixing 4- and 8-bit groups, or parts of one launch whose widths differ). */
unsigned long long gpu_qlinear_general_calls(void);

/* Benches and tests: force the decode kernel's split-K s (1..8) and column tiles per block t (1..8) where the
 * weights allow them; 0 leaves either to the launch plan, -1 to the environment (CHASKI_QV_SPLIT / CHASKI_QV_TPB,
 * read once; the default). Not thread-safe. */
void gpu_qlinear_qv_plan(int split, int tpb);
/* Benches and tests: SwiGLU's balanced split (quant_linear.cu, qv_swbal) on (1) or off (0) for the launches that
 * follow; -1: the environment's CHASKI_QV_SWBAL (read once; off unless set). Not thread-safe. The calls so far that
 * took it: gpu_qlinear_qv_swbal_calls. */
void gpu_qlinear_qv_swbal(int on);
long gpu_qlinear_qv_swbal_calls(void);
/* Tests: permuted activations gathered once by a separate kernel from n rows on (1, the default: always; 17: never,
 * every block of the decode kernel gathers its own slice); n < 1 restores CHASKI_QV_PREGATHER's choice. */
void gpu_qlinear_qv_pregather(int n);

/* Activations in a permuted weight's packed order, written by the kernel that produced them (gpu_rmsnorm_x,
 * gpu_attention_x, a gate, up + SwiGLU launch's xout or a residual launch's, below), so the decode kernel skips its
 * gather launch:
 *   xin:  x's rows with xin[r, i] = x[r, xin_w->perm[i]] (16-byte aligned; NULL: none). Every permuted weight of the
 *         call whose permutation equals xin_w's (the same perm_label) reads it; the others are gathered as before.
 *   xout: gpu_qlinear_swiglu_x and resid (below) only: out's rows also written as xout[r, xout_w->pos[j]] =
 *         out[r, j] (NULL: none; xout_w permuted, its k the output's width; not aliasing x, xin, out or resid). */
/* An RMSNorm split around two decode launches, so that no launch of its own stands between them (the decode step's
 * add_rmsnorm; docs/kernels.md):
 *   resid (gpu_qlinear_multi_x, one weight): the producer. With h = x W^T (+ bias) rounded to dt (what out would
 *         hold), resid[r, j] = resid[r, j] + h rounded to dt (in place, as gpu_add_rmsnorm), out[r, j] = resid[r, j] *
 *         nw[j] * 2^-ss_shift rounded to dt (the norm's numerator: not yet divided by the row's rms), xout (if set)
 *         as for gpu_qlinear_swiglu_x, and ss_out[r * (mp / 32) + t] = the float sum of resid[r, j]^2 over column tile t's
 *         columns j < m (mp / 32 tiles). nw [m] dt; resid [n, m]; neither aliasing x or out.
 *   ss_in (any decode launch but a producer): every output, before its bias, times rsqrt(sum_t ss_in[r * ss_tiles
 *         + t] / ss_d + ss_eps) 2^ss_shift: a producer's sums, its numerators as this launch's input.
 * The one-row variant of the decode kernel of regular 4/8-bit weights (qmv_kernel's ONE: n == 1) and its 4-bit
 * rounds at 2 to GPU_QLINEAR_NORM_ROWS rows (V = 6) take both, in instantiations of their own; GPU_UNSUPPORTED
 * otherwise, before anything is launched (measured, H200: 1-3% slower launches with this code in every variant,
 * and at 2-16 rows no gain from the split then; docs/PERFORMANCE.md, twenty-third run; the 2-4-row instantiations
 * are the thirty-third run's, for the two norm launches its kernel trace timed at 2.5-3.7 us each).
 * gpu_rms_settle finishes a producer's output where no launch takes ss_in. */
typedef struct gpu_qx {
    const void *xin;
    const gpu_qweight *xin_w;
    void *xout;
    const gpu_qweight *xout_w;
    void *resid;
    const void *nw;
    float *ss_out;
    const float *ss_in;
    int ss_tiles, ss_d;
    float ss_eps;
    /* the numerators' power-of-two scale, -30..30: a producer writes resid * nw * 2^-ss_shift, a consumer (ss_in)
     * multiplies its scale by 2^ss_shift. With |nw| <= 2^ss_shift the numerators are no larger than the residual, so
     * an FP16 numerator cannot overflow where the residual did not (the backend's choice: backend_cuda.c) */
    int ss_shift;
} gpu_qx;

/* Up to 3 weights that read the same input (q, k, v; gate, up) in one launch of the fused path (decode):
 * outs[i][n, ws[i]->m] = x[n, k] @ W_i^T (+ biases[i]), 1 <= n <= 16. Needs every weight in the
 * tensor-core layout, of one format, zero convention and k; a workspace of gpu_qlinear_workspace_size(any of
 * them, 16, GPU_QLINEAR_FUSED) bytes (permuted weights have their activations gathered there).
 * GPU_UNSUPPORTED otherwise (the caller then runs gpu_qlinear per weight). gpu_qlinear's fused path on one
 * such weight is this launch. */
int gpu_qlinear_multi(gpu_dtype dt, void *const *outs, const void *x, const gpu_qweight *const *ws,
                      const void *const *biases /* [n_w] or NULL */, int n_w, int n, void *workspace,
                      size_t workspace_size, cudaStream_t stream);
int gpu_qlinear_multi_x(gpu_dtype dt, void *const *outs, const void *x, const gpu_qweight *const *ws,
                        const void *const *biases, int n_w, int n, const gpu_qx *qx /* or NULL */, void *workspace,
                        size_t workspace_size, cudaStream_t stream);

/* out[n, m] = silu(x W_gate^T + b_gate) * (x W_up^T + b_up) in one launch of the decode kernel (gate and up
 * rounded to dt first, then as gpu_swiglu: the same values as gpu_qlinear_multi + gpu_swiglu), 1 <= n <= 16.
 * Needs two regular GPTQ weights (one width, no act-order) of one shape in the tensor-core layout whose chunks
 * fit one block's shared memory (no split-K); GPU_UNSUPPORTED otherwise (the caller then runs the two steps). */
int gpu_qlinear_swiglu(gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate, const gpu_qweight *w_up,
                       const void *b_gate /* [m] or NULL */, const void *b_up, int n, void *workspace,
                       size_t workspace_size, cudaStream_t stream);
int gpu_qlinear_swiglu_x(gpu_dtype dt, void *out, const void *x, const gpu_qweight *w_gate, const gpu_qweight *w_up,
                         const void *b_gate, const void *b_up, int n, const gpu_qx *qx /* or NULL */, void *workspace,
                         size_t workspace_size, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
