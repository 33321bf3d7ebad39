/* model.h: a loaded model: config, weights on a backend, rope tables (prefix mdl_). */
#ifndef CK_MODEL_H
#define CK_MODEL_H

#include <stdint.h>

#include "backend.h"
#include "ck_error.h"
#include "config.h"
#include "safetensors.h"

typedef struct mdl_layer {
    be_buf *attn_norm;                 /* [hidden] */
    be_buf *wq, *wk, *wv, *wo;         /* [n_heads*hd, hidden], [n_kv*hd, hidden] x2, [hidden, n_heads*hd] */
    be_buf *bq, *bk, *bv, *bo;         /* biases or NULL */
    be_buf *mlp_norm;                  /* [hidden] */
    be_buf *w_gate, *w_up, *w_down;    /* [inter, hidden] x2, [hidden, inter] */
    be_buf *b_gate, *b_up, *b_down;    /* biases or NULL */
    /* fused by mdl_fuse on backends that have fused ops (then the parts above are NULL):
     * [wq; wk; wv] and its bias, [w_gate; w_up] and its bias */
    be_buf *wqkv, *bqkv, *w_gu, *b_gu;
} mdl_layer;

typedef struct mdl_model {
    cfg_config cfg;
    be_backend *be;                    /* not owned */
    mdl_layer *layers;                 /* [n_layers] */
    be_buf *embed;                     /* [vocab, hidden] */
    be_buf *final_norm;                /* [hidden] */
    be_buf *lm_head;                   /* [vocab, hidden]; == embed when tied */
    uint64_t n_params;
    char quantization[32];             /* "none", "gptq-4bit-g128", "exl2-4.00bpw", ... */
    int exl2_widened;                  /* EXL2: the qnt_widen level its linears are held at (pl_choose_exl2_widen) */
    char dir[1024];
} mdl_model;

/* Progress: frac in [0, 1]; return nonzero to abort the load (CK_E_CANCELLED). */
typedef int (*mdl_progress_fn)(void *user_data, float frac);

/* Load a HF model directory onto backend `be`: config checked, every tensor's shape checked
 * against the config before anything is allocated, then weights uploaded. */
ck_status mdl_load(const char *dir, be_backend *be, mdl_progress_fn progress, void *user_data, mdl_model **out,
                   ck_error *err);
/* mdl_load for a caller that will then allocate `need` (KV pages, batch, sequences; NULL: one 512-token chunk
 * and one page, as mdl_load): choices that trade memory for speed (EXL2 widening, pl_choose_exl2_widen) are
 * made against it. The load is refused only when the weights with mdl_load's minimal request do not fit. */
struct pl_request;
ck_status mdl_load_for(const char *dir, be_backend *be, const struct pl_request *need, mdl_progress_fn progress,
                       void *user_data, mdl_model **out, ck_error *err);

/* Fuse each layer's q/k/v and gate/up weights (and biases) into one buffer each where the backend
 * has fused ops (be_ops.fuse_rows, matmul_split, matmul_swiglu), freeing the parts; layers whose
 * weights cannot be fused (quantized, mixed biases) keep them. mdl_load calls it; a caller that
 * builds a model by hand (the bench, tests) may call it too. */
ck_status mdl_fuse(mdl_model *m, ck_error *err);
void mdl_destroy(mdl_model *m);

/* Check that a weight set matches a config (names, shapes, dtypes) without allocating. */
ck_status mdl_check_weights(const cfg_config *cfg, const st_set *w, uint64_t *n_params, ck_error *err);

#endif
