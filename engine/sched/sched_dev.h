/* sched_dev.h: which logit rows of a scheduler step are sampled on the device (prefix sched_dev_).
 *
 * A backend with a per-row step end (fwd_can_end_rows: cuda) samples rows with the built-in chain
 * on the device and sends back only the token id and its logprob; the rows whose logits the host
 * needs are copied, only those. A job's row is sampled on the device when
 *   - no Lua sampler runs (sample_hook), no banned-string rewind bans ids at this step, and no top
 *     logprobs are asked (the device returns the chosen token's logprob only);
 *   - its chain is one the GPU chain computes the same way (sched_dev_chain_ok): the default stage
 *     order, and only penalties (without decay), logit bias (at most BE_SAMPLE_MAX_BIAS entries),
 *     top-k, top-p, min-p and temperature, with the seeded draw or greedy.
 * Pure functions: tests/sched checks them without a GPU. */
#ifndef CK_SCHED_DEV_H
#define CK_SCHED_DEV_H

#include <stdint.h>

#include "backend.h"
#include "sample.h"

/* 1 when params' chain is fully expressible on the GPU chain, else 0 (and *why, if not NULL, names
 * the first feature that is not). */
int sched_dev_chain_ok(const smp_params *params, const char **why);

/* The mode of a job's row at this step: BE_ROW_DROP when no token is sampled from it (a prefill
 * chunk before the prompt's end), BE_ROW_SAMPLE when the device samples it, else BE_ROW_LOGITS. */
uint8_t sched_dev_row_mode(int wants_token, int chain_ok, int has_sample_hook, int bans_this_step, int top_n);

/* The device chain's settings for a job's row: params' values, its logit bias as two arrays
 * (sched_dev_split_bias), the history (the job's tokens, oldest first; sent under hist_id, see
 * be_sample_row; only when a penalty is on) and the draw's counter (the step). */
void sched_dev_fill_row(be_sample_row *row, const smp_params *params, const int32_t *bias_ids,
                        const float *bias_values, const int32_t *history, int n_history, uint64_t hist_id,
                        uint64_t step);
/* params' logit bias into ids[n_logit_bias] and values[n_logit_bias]. */
void sched_dev_split_bias(const smp_params *params, int32_t *ids, float *values);

#endif
