/* plan.h: the memory planner (prefix pl_).
 *
 * Before anything is allocated, the planner sizes what a model will hold on its backend: the
 * weights, the KV pages, the forward activations and the backend's own scratch (step metadata,
 * attention split-K partials, cuBLAS workspace, float32 logits), plus a reserve for the allocator
 * and the runtime. pl_check compares the total with the backend's free memory and refuses a plan
 * that does not fit with the numbers, so that a model too large fails at load, never halfway
 * through a request. Pure arithmetic except pl_check (which asks the backend); any thread. */
#ifndef CK_PLAN_H
#define CK_PLAN_H

#include <stddef.h>

#include "backend.h"
#include "ck_error.h"
#include "config.h"

typedef struct pl_request {
    int max_tokens;      /* tokens per forward step (prefill chunk or batch budget) */
    int max_seqs;        /* sequences per step */
    int kv_pages;        /* KV pages in each layer's pool */
    int page_size;       /* tokens per page */
} pl_request;

typedef struct pl_plan {
    size_t weights;      /* every weight tensor once uploaded */
    size_t kv;           /* K and V pools of every layer */
    size_t activations;  /* the forward workspace (fwd_workspace) */
    size_t workspace;    /* backend scratch */
    size_t reserve;      /* headroom: allocator granularity, graphs, library handles */
    size_t total;
} pl_plan;

/* Elements of all weights the config implies (embedding, layers, norms, untied lm_head). */
size_t pl_weight_elems(const cfg_config *c);

/* Size a plan. weight_elem / act_elem: bytes per weight and activation element on the backend;
 * float32 logits are counted on top (the cuda backend keeps them in float32). */
void pl_make(const cfg_config *c, size_t weight_elem, size_t act_elem, const pl_request *r, pl_plan *out);

/* The plan for a backend (element sizes from its ops, checkpoint dtype `dtype`). */
void pl_make_for(be_backend *be, const cfg_config *c, st_dtype dtype, const pl_request *r, pl_plan *out);

/* Quantized linears (GPTQ, EXL2) in the weights: on a backend that keeps them quantized (upload_quant),
 * their dense bytes are replaced by the bytes the quantized kernels hold (qnt_model_sizes) and their
 * workspace is added, with the permuted activations of a prefill chunk of r->max_tokens rows (act-order
 * GPTQ and EXL2 gather them before the dequantized product, as cq_prepare sizes it); elsewhere they are
 * dequantized to dense weights, as pl_make counted them. q NULL: the format read off the tensors. Errors:
 * those of the quantized tensors' checks. */
struct qnt_config;
ck_status pl_add_quant(be_backend *be, const cfg_config *c, const st_set *ws, const struct qnt_config *q,
                       st_dtype dtype, const pl_request *r, pl_plan *p, ck_error *err);

/* The request a load is planned against (mdl_load_for): `need` raised to at least the least a step needs, one
 * 512-token chunk, one sequence and 256 tokens of KV (KV_DEFAULT_PAGE_SIZE; in pages of need's size); NULL: that
 * least, what mdl_load refuses a model against. */
void pl_load_request(const pl_request *need, pl_request *out);

/* EXL2 on a backend that keeps linears quantized: sets q->exl2_widen, the qnt_widen level its linears are held at
 * (2/3-bit groups at 4 bits and 5/6-bit at 8; at QNT_WIDEN_8 a linear that then mixes 4 and 8, mostly 8, all at 8:
 * the tensor-core decode kernels' fast variants take one width of 4 or 8 bits, the others run slower kernels:
 * docs/quant.md). CHASKI_EXL2_WIDEN=0/1/2 forces a level; by default (qnt_exl2_widen_mode -1) the widest level
 * whose plan for request r (weights widened, KV, activations, workspace) fits the backend's free memory. Either
 * way a level whose bytes equal the level below's (it widens nothing more in this model) gives way to it, so the
 * level says what was done. QNT_WIDEN_NONE for every other format and backend. Errors: those of the quantized
 * tensors' checks (pl_add_quant). */
ck_status pl_choose_exl2_widen(be_backend *be, const cfg_config *c, const st_set *ws, struct qnt_config *q,
                               st_dtype dtype, const pl_request *r, ck_error *err);

/* CK_OK when the plan fits the backend's free memory (or the backend cannot tell);
 * CK_E_OUT_OF_MEMORY with "what needs N bytes (weights ..., KV ..., ...); F free of T" otherwise. */
ck_status pl_check(be_backend *be, const pl_plan *p, const char *what, ck_error *err);

/* How many KV pages of page_size tokens fit in the free memory once `p` (without its KV) is
 * allocated; 0 when the backend cannot tell or none fit. */
int pl_kv_pages_that_fit(be_backend *be, const cfg_config *c, const pl_plan *p, int page_size);

#endif
