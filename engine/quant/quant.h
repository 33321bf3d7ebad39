/* quant.h: quantized weights, GPTQ (4/8-bit) and EXL2 (2..8-bit mixed): detection, validation and
 * the CPU reference dequantization (prefix qnt_). Byte layouts: /work/shared/FORMATS.md, docs/quant.md.
 *
 * A quantized checkpoint replaces a linear's `<prefix>.weight` [N, K] (N = out_features, K = in_features)
 * by the format's tensors (qnt_linear_expected lists them). Which linears are quantized is decided per
 * linear by the tensors present (`<prefix>.qweight` for GPTQ, `<prefix>.q_weight` for EXL2); the others
 * keep a float `.weight`. The embedding table is never quantized; EXL2 may quantize `lm_head`.
 *
 * Every value read from a file that is later used as an index or a size (g_idx, q_invperm, q_groups,
 * shapes) is checked by qnt_check_linear before anything else reads it; each violation is a typed
 * ck_error whose message names the tensor:
 *   CK_E_MISSING     a tensor the format needs is absent
 *   CK_E_SHAPE       a shape or dtype disagrees with config.json / quantization_config
 *   CK_E_FORMAT      a value is out of range (g_idx, q_invperm, q_groups bits / rows)
 *   CK_E_CONFIG      quantization_config is malformed
 *   CK_E_UNSUPPORTED valid input this build does not handle (quant_method 'awq', GPTQ 3-bit, ...)
 * All functions may be called from any thread; none keeps a pointer to its arguments. */
#ifndef CK_QUANT_H
#define CK_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
#include "safetensors.h"

typedef enum qnt_format { QNT_NONE = 0, QNT_GPTQ = 1, QNT_EXL2 = 2 } qnt_format;

typedef struct qnt_config {
    qnt_format format;
    /* GPTQ */
    int bits;          /* 4 or 8 */
    int group_size;    /* a power of two, or -1: one group over all of K */
    bool desc_act;     /* act-order: g_idx is not monotonic */
    bool sym;          /* informational: zeros are read from qzeros either way */
    bool v2;           /* checkpoint_format gptq_v2: qzeros hold the zero itself (gptq: zero - 1) */
    /* EXL2 (informational: each layer's q_groups say its widths) */
    double exl2_bits;
    double exl2_head_bits;
    /* Not read from the file: how a backend that keeps linears quantized stores EXL2 groups (qnt_widen,
     * qnt_host_linear_exl2_widen). The loader sets it (pl_choose_exl2_widen); the memory plan (qnt_model_sizes)
     * and the upload (qnt_host_linear_from_set -> qnt_host_linear.widen) follow it. */
    int exl2_widen;
} qnt_config;

/* EXL2 widths as the cuda backend's tensor-core decode kernels hold them (their fast variants take 4 and 8 bits,
 * one width per linear; docs/quant.md): each value stored as q + 2^(B-1) - 2^(b-1) at the new width B, so every
 * weight dequantizes to the same float. */
typedef enum {
    QNT_WIDEN_NONE = 0, /* as stored */
    QNT_WIDEN_4_8 = 1,  /* groups of 2 or 3 bits at 4, of 5 or 6 at 8 */
    QNT_WIDEN_8 = 2,    /* as 4_8, and a linear whose groups would then mix 4 and 8 bits, with at least half its rows
                           at 8, all at 8 (qnt_exl2_all_to_8) */
} qnt_widen;
/* QNT_WIDEN_8's rule for one linear with narrow_rows rows (of K) in groups of 2..4 bits and wide_rows in 5..8. */
bool qnt_exl2_all_to_8(int64_t narrow_rows, int64_t wide_rows);

const char *qnt_format_name(qnt_format f); /* "none", "gptq", "exl2" */
/* The format for people: "gptq-4bit-g128-act", "gptq-8bit-g-1", "exl2-4.60bpw", "none". */
void qnt_describe(const qnt_config *q, char *out, size_t cap);

/* Parse the quantization_config object of a config.json text (absent: format QNT_NONE).
 * `path` names the file in messages. (quant_config_json.c: the only cJSON user here.) */
ck_status qnt_parse_config(const char *json, size_t len, const char *path, qnt_config *out, ck_error *err);

/* The quantization of a model directory: dir/config.json's quantization_config, else (old GPTQ files)
 * dir/quantize_config.json; then, when `ws` is not NULL, cross-checked against the tensors: EXL2
 * tensors without a config block are EXL2 (the block is informational for EXL2); GPTQ tensors without
 * one are CK_E_CONFIG (bits and group size would be unknown); a config that names a format whose
 * tensors are absent is CK_E_MISSING. */
ck_status qnt_detect(const char *dir, const st_set *ws, qnt_config *out, ck_error *err);

/* Whether the linear `prefix` (e.g. "model.layers.0.mlp.down_proj", "lm_head") is stored quantized. */
bool qnt_linear_is_quantized(const qnt_config *q, const st_set *ws, const char *prefix);

/* The tensor names a quantized linear has instead of `<prefix>.weight`, required ones first.
 * Writes up to `cap` names of at most `name_cap` bytes each; returns how many the format has
 * (GPTQ: qweight, qzeros, scales, then optional g_idx; EXL2: q_invperm, q_groups, q_weight, q_scale,
 * q_scale_max). `n_required` (optional) gets how many of them are required. */
int qnt_linear_expected(const qnt_config *q, const char *prefix, char *names, size_t name_cap, int cap,
                        int *n_required);

/* What one quantized linear holds (for `chaski info`, memory plans and benches). */
#define QNT_MAX_GROUP_BITS 6
typedef struct qnt_linear_info {
    qnt_format format;
    int64_t K, N;
    int n_groups;
    uint64_t bytes;          /* bytes of its quantized tensors as stored */
    double bits_per_weight;  /* bytes * 8 / (K * N): everything counted (scales, zeros, g_idx, perms) */
    int64_t rows_at_bits[9]; /* EXL2: rows of K stored at 2..8 bits (index = bits); GPTQ: [bits] = K */
} qnt_linear_info;

/* Check every tensor of the quantized linear `prefix` against K (in) and N (out) from config.json and
 * q, and every index and size value inside them. Allocates at most K bits of scratch. `info` optional. */
ck_status qnt_check_linear(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                           qnt_linear_info *info, ck_error *err);

/* Dequantize to float32 out[N, K] (row n = output feature n, the layout cpu_matmul takes).
 * Runs qnt_check_linear first. Values are exact: GPTQ (q - z) * s is an integer times an fp16 scale;
 * EXL2 scale = (code + 1)^2 * scale_max / 256 is exact and (q - 2^(b-1)) * scale is rounded once to
 * float32. */
ck_status qnt_dequantize_linear(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                                float *out, ck_error *err);

/* ---- hooks for the model loader (quant_model.c) ------------------------------------------------ */

/* The format from the tensors alone (no config.json at hand, e.g. a memory estimate): GPTQ bits and
 * groups are then read from each linear's shapes (enough to validate; mdl_load uses qnt_detect). */
void qnt_detect_set(const st_set *ws, qnt_config *out);

/* "<prefix>.weight" -> prefix; false for any other name. */
bool qnt_weight_prefix(const char *name, char *prefix, size_t cap);

/* For one expected tensor of the model (name, 2-D shape [N, K]): when it is a linear weight stored
 * quantized, sets *handled, checks it (qnt_check_linear) and gives its N * K parameters in *n_elems;
 * otherwise leaves it to the caller (*handled = false, CK_OK). q may be NULL or QNT_NONE. */
ck_status qnt_model_check_tensor(const qnt_config *q, const st_set *ws, const char *name, int n_dims,
                                 const int64_t *shape, bool *handled, uint64_t *n_elems, ck_error *err);

/* The same, uploading. A backend with an upload_quant hook (cuda) gets the linear as stored
 * (qnt_host_linear_from_set: checked, copied) and keeps it quantized; any other (cpu) gets it
 * dequantized to float32 [N, K] on the host (a temporary of N * K floats) through be->ops->upload. */
struct be_backend;
struct be_buf;
ck_status qnt_model_upload_tensor(struct be_backend *be, const qnt_config *q, const st_set *ws, const char *name,
                                  int n_dims, const int64_t *shape, struct be_buf **out, bool *handled,
                                  ck_error *err);
ck_status qnt_upload_linear(struct be_backend *be, const qnt_config *q, const st_set *ws, const char *prefix,
                            int64_t K, int64_t N, struct be_buf **out, ck_error *err);

/* Device bytes the quantized CUDA kernels hold for a linear (kernels/cuda/quant_ops.h layout: packed
 * weights, zeros and scales as stored, an int32 row permutation, 16-byte units; EXL2 units counted at
 * their bound K/32 + groups, a few bytes over). */
uint64_t qnt_linear_device_bytes(const qnt_linear_info *info, int exl2_widen);

/* What a model's quantized linears hold (memory planner, `chaski info`). Layers past
 * QNT_MAX_INFO_LAYERS count in the totals only. */
#define QNT_MAX_INFO_LAYERS 256
typedef struct qnt_model_sizes_t {
    uint64_t n_linears;
    uint64_t weights;       /* N * K summed: parameters the quantized linears stand for */
    uint64_t file_bytes;    /* their tensors as stored (qnt_linear_info.bytes) */
    uint64_t device_bytes;  /* as the quantized kernels hold them (qnt_linear_device_bytes) */
    uint64_t workspace;     /* the cuda backend's quantized-linear workspace for prefill chunks (> 16 rows) */
    uint64_t layer_weights[QNT_MAX_INFO_LAYERS], layer_file_bytes[QNT_MAX_INFO_LAYERS];
    uint64_t head_weights, head_file_bytes; /* a quantized lm_head (EXL2), else 0 */
} qnt_model_sizes_t;
struct cfg_config;
/* Check and count every quantized linear the config implies (q QNT_NONE: all zeros). */
ck_status qnt_model_sizes(const qnt_config *q, const st_set *ws, const struct cfg_config *c, qnt_model_sizes_t *out,
                          ck_error *err);

/* ---- in-memory quantized linears (benches, kernel checks, `chaski bench --quant`) ---------------- */

/* A quantized linear in host memory, in the file layout (FORMATS.md), dtype of each array as on disk.
 * Arrays a format does not use are NULL. Owned by the struct: free with qnt_host_linear_free. */
typedef struct qnt_host_linear {
    qnt_format format;
    int64_t K, N;
    int bits, group_size, n_groups; /* GPTQ bits and group size; n_groups both formats */
    bool v2;
    /* GPTQ */
    uint32_t *qweight;   /* [K * bits / 32, N] */
    uint32_t *qzeros;    /* [G, N * bits / 32] */
    uint16_t *scales;    /* fp16 [G, N] */
    int32_t *g_idx;      /* [K] */
    /* EXL2 */
    int32_t *q_invperm;  /* [K] */
    int16_t *q_groups;   /* [2G]: (bits, first packed row) */
    uint32_t *q_weight;  /* [packed_rows, N] */
    int64_t packed_rows;
    uint32_t *q_scale;   /* [G, N / 8] */
    uint16_t *q_scale_max; /* fp16 [G] */
    uint64_t bytes;      /* bytes of all arrays above (what a kernel reads per pass over the weights) */
    int widen;           /* EXL2: how the backend may store it (qnt_widen; qnt_config.exl2_widen) */
} qnt_host_linear;

/* Parse a format name: "gptq4-g128", "gptq8-g32", "gptq4-g128-act", "gptq4-gall", "exl2-4.0", "exl2-2.5",
 * ... (EXL2: bits per weight in [2, 8], head-style widths mixed to reach it). */
ck_status qnt_parse_format_name(const char *name, qnt_config *out, ck_error *err);

/* Random weights of format `q` for a [N, K] linear (seeded; values like a real layer's). For EXL2 the
 * group widths are chosen to reach `q->exl2_bits` bits per weight (8..2, 32-row groups). */
ck_status qnt_host_linear_random(const qnt_config *q, int64_t K, int64_t N, uint64_t seed, qnt_host_linear *out,
                                 ck_error *err);
void qnt_host_linear_free(qnt_host_linear *l);
/* An EXL2 linear's q_invperm replaced by the random permutation of `seed` (for one K, one seed gives one
 * permutation; GPTQ: nothing). ExLlamaV2's converter gives the linears that read one input one permutation: k and v
 * take q's quantizer state, gate takes up's (`reuse_h`, which copies the Hessian's order `perm`), so a model of a real
 * file gives q, k, v one seed and gate, up another. The kernels then gather those activations once and run gate, up
 * and SwiGLU in one launch (docs/quant.md). */
void qnt_host_linear_exl2_perm(qnt_host_linear *l, uint64_t seed);

/* Dequantize an in-memory linear to float32 out[N, K] (the same rules as qnt_dequantize_linear; the
 * arrays are validated first). */
ck_status qnt_host_linear_dequantize(const qnt_host_linear *l, float *out, ck_error *err);

/* EXL2: an equal linear (validated first; copies) at widen level `level` (QNT_WIDEN_4_8 or QNT_WIDEN_8): groups
 * of 2 or 3 bits widened to 4, of 5 or 6 to 8, and at QNT_WIDEN_8, where groups of 4 and 8 bits would then mix
 * with at least half the rows at 8, every group at 8; each value stored as q + 2^(B-1) - 2^(b-1), so
 * q' - 2^(B-1) = q - 2^(b-1) and every weight dequantizes to the same float. q_invperm, q_scale and q_scale_max are unchanged; q_groups' row starts and
 * packed_rows grow (a 32-row group of 3 bits: 3 packed rows -> 4; of 6 bits: 6 -> 8): a group's bytes grow by up
 * to 2x at level 1 (2 bits at 4), and at level 2 up to 4x (a 2-bit group in a linear that goes all to 8). */
ck_status qnt_host_linear_exl2_widen(const qnt_host_linear *l, int level, qnt_host_linear *out, ck_error *err);
/* Whether qnt_host_linear_exl2_widen at `level` changes any group of l (false for GPTQ and level NONE). */
bool qnt_exl2_widen_changes(const qnt_host_linear *l, int level);
/* CHASKI_EXL2_WIDEN in the environment: "0", "1", "2" force that qnt_widen level; unset or anything else: -1,
 * auto (the widest level the model still fits at: pl_choose_exl2_widen). Read at each call (load time only). */
int qnt_exl2_widen_mode(void);

/* Wrap a file's linear as a qnt_host_linear (copies; validated first). */
ck_status qnt_host_linear_from_set(const qnt_config *q, const st_set *ws, const char *prefix, int64_t K, int64_t N,
                                   qnt_host_linear *out, ck_error *err);

/* fp16 bits -> float (exact). */
float qnt_half_to_float(uint16_t h);
uint16_t qnt_float_to_half(float f); /* round to nearest even */

#endif
