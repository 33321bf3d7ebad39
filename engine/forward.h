/* forward.h: the Llama-family forward pass over a varlen batch and the paged KV cache (prefix fwd_).
 *
 * One step takes, for each sequence, its new tokens (a prefill chunk or one decode token),
 * appends their K and V to the sequence's pages, and returns logits only for the rows asked. */
#ifndef CK_FORWARD_H
#define CK_FORWARD_H

#include <stdint.h>

#include "ck_error.h"
#include "kv_cache.h"
#include "model.h"

typedef struct fwd_batch {
    int n_seqs;
    kv_seq **seqs;              /* [n_seqs]; new tokens go at positions seqs[s]->n_tokens.. */
    const int32_t *tokens;      /* [n_tokens], sequence s owns [seq_start[s], seq_start[s+1]) */
    const int32_t *seq_start;   /* [n_seqs + 1], seq_start[0] == 0 */
    const uint8_t *all_logits;  /* [n_seqs] or NULL: 1 = logits for every new token, 0 = the last only */
} fwd_batch;

typedef struct fwd_workspace fwd_workspace;

/* Workspace for batches of at most max_tokens tokens and max_seqs sequences. */
ck_status fwd_workspace_create(const mdl_model *m, int max_tokens, int max_seqs, fwd_workspace **out,
                               ck_error *err);
/* The same for a KV cache whose pages hold page_size tokens (fwd_workspace_create: the default 256);
 * the page tables it passes to the backend have room for the whole context in such pages. */
ck_status fwd_workspace_create_paged(const mdl_model *m, int max_tokens, int max_seqs, int page_size,
                                     fwd_workspace **out, ck_error *err);
void fwd_workspace_destroy(fwd_workspace *ws);
int fwd_workspace_max_tokens(const fwd_workspace *ws);

/* Number of logit rows fwd_run writes for this batch. */
int fwd_logit_rows(const fwd_batch *b);

/* Run one step. Pages must already be reserved (kv_seq_reserve) for the new tokens; on success each
 * seqs[s]->n_tokens grows by its new tokens. logits: [fwd_logit_rows(b), vocab] float32, host memory,
 * rows in sequence order. */
ck_status fwd_run(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b, float *logits,
                  ck_error *err);

/* Whether the model's backend can end a step per row (be_ops.step_end_rows: device sampling). */
int fwd_can_end_rows(const mdl_model *m);
/* fwd_run with the step's rows handled as out->mode says (be_step_out, backend.h): sampled on the
 * device (token ids and logprobs back), copied as float32 logits (only those rows), or dropped.
 * out->n_rows == fwd_logit_rows(b). CK_E_UNSUPPORTED when !fwd_can_end_rows(m). */
ck_status fwd_run_rows(const mdl_model *m, kv_cache *kv, fwd_workspace *ws, const fwd_batch *b,
                       const be_step_out *out, ck_error *err);

#endif
