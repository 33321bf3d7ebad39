/* kernels/cuda/quant_ops.h: quantized linear layers on the GPU (GPTQ 4/8-bit, EXL2 2..8-bit mixed).
 *
 * out[n, m] = x[n, k] @ W[m, k]^T (+ bias[m]) where W is a quantized weight in device memory, laid out by
 * gpu_qweight_upload_* from the file arrays of FORMATS.md (the engine validates them first: engine/quant).
 * Same conventions as cuda_ops.h: raw device pointers, activations in `dt` (FP16 or BF16) with float32
 * accumulation, nothing allocated by the launcher (workspace from gpu_qlinear_workspace_size), the
 * work queued on `stream`, GPU_UNSUPPORTED for anything outside the compiled list.
 *
 * Paths:
 *   GPU_QLINEAR_FUSED (1 <= n <= 16): the activations are first gathered into packed-row order (the
 *     act-order / EXL2 row permutation folded into the activations, float32 in the workspace); then each
 *     thread streams 16-byte loads of 4 adjacent columns' packed words, dequantizes in registers and
 *     accumulates all n rows at once, so each weight byte is read once per call; split-K partial sums
 *     are added in float32 in the workspace, then rounded to dt (+ bias).
 *   GPU_QLINEAR_DEQUANT (any n): W is dequantized to a dt [m, k] tile in the workspace (original row
 *     order), then the dense cuBLASLt path of gpu_linear.
 *   GPU_QLINEAR_AUTO: fused for n <= 16, else dequant.
 * Supported: m % 8 == 0; GPTQ with every group (after the act-order sort) a multiple of 32 / bits rows;
 * EXL2 with groups whose rows * bits is a multiple of 32 (all real files). */
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
    int32_t *units;        /* [n_units, 4]: bits, first packed row, first row (packed order), rows | group << 8 */
    size_t bytes;          /* device bytes one pass over the weight reads (every array above) */
} gpu_qweight;

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
void gpu_qweight_free(gpu_qweight *w); /* accepts NULL and zeroed structs */

/* Workspace bytes for gpu_qlinear with n rows on `path` (the dequant path includes 32 MiB for cuBLASLt). */
size_t gpu_qlinear_workspace_size(const gpu_qweight *w, int n, int path);

int gpu_qlinear(gpu_blas *blas, gpu_dtype dt, void *out /* [n, m] */, const void *x /* [n, k] */,
                const gpu_qweight *w, const void *bias /* [m] or NULL */, int n, int path, void *workspace,
                size_t workspace_size, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
