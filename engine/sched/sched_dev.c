/* sched_dev.c: the dispatch rules of device sampling (see sched_dev.h). */
#include "sched_dev.h"

#include <stddef.h>

static int default_order(const smp_params *p)
{
    if (!p->order)
        return 1;
    if (p->n_order != SMP_DEFAULT_ORDER_LEN)
        return 0;
    for (size_t i = 0; i < p->n_order; i++)
        if (p->order[i] != smp_default_order[i])
            return 0;
    return 1;
}

int sched_dev_chain_ok(const smp_params *p, const char **why)
{
    const char *no = NULL;
    if (!default_order(p))
        no = "a stage order other than the default";
    else if (p->dynatemp_range > 0.0f)
        no = "dynamic temperature";
    else if (p->smoothing_factor > 0.0f)
        no = "smoothing";
    else if (p->top_a > 0.0f)
        no = "top-a";
    else if (p->typical_p < 1.0f)
        no = "typical";
    else if (p->tfs_z < 1.0f)
        no = "tail-free sampling";
    else if (p->top_n_sigma > 0.0f)
        no = "top-n-sigma";
    else if (p->xtc_probability > 0.0f)
        no = "XTC";
    else if (p->dry_multiplier > 0.0f)
        no = "DRY";
    else if (p->mirostat != 0)
        no = "mirostat";
    else if (p->skew != 0.0f)
        no = "skew";
    else if (p->n_banned > 0)
        no = "banned tokens";
    else if (p->n_allowed > 0)
        no = "an allowed set";
    else if (p->penalty_decay > 0.0f)
        no = "penalty decay";
    else if (p->n_logit_bias > BE_SAMPLE_MAX_BIAS)
        no = "a logit bias of more than BE_SAMPLE_MAX_BIAS entries";
    if (why)
        *why = no;
    return no == NULL;
}

uint8_t sched_dev_row_mode(int wants_token, int chain_ok, int has_sample_hook, int bans_this_step, int top_n)
{
    if (!wants_token)
        return BE_ROW_DROP;
    if (has_sample_hook || bans_this_step || top_n > 0 || !chain_ok)
        return BE_ROW_LOGITS;
    return BE_ROW_SAMPLE;
}

void sched_dev_split_bias(const smp_params *p, int32_t *ids, float *values)
{
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        ids[i] = p->logit_bias[i].id;
        values[i] = p->logit_bias[i].bias;
    }
}

void sched_dev_fill_row(be_sample_row *r, const smp_params *p, const int32_t *bias_ids, const float *bias_values,
                        const int32_t *history, int n_history, uint64_t hist_id, uint64_t step)
{
    r->temperature = p->temperature;
    r->top_p = p->top_p;
    r->min_p = p->min_p;
    r->repetition_penalty = p->repetition_penalty;
    r->frequency_penalty = p->frequency_penalty;
    r->presence_penalty = p->presence_penalty;
    r->top_k = p->top_k;
    r->penalty_range = p->penalty_range;
    r->n_bias = (int32_t)p->n_logit_bias;
    r->bias_ids = p->n_logit_bias ? bias_ids : NULL;
    r->bias_values = p->n_logit_bias ? bias_values : NULL;
    int pen = p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
    r->hist_id = pen ? hist_id : 0;
    r->history = pen ? history : NULL;
    r->n_history = pen ? n_history : 0;
    r->seed = p->seed;
    r->counter = step;
}
