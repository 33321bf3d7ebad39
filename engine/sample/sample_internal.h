/* sample_internal.h: the smp_state layout, shared by the files of engine/sample. */
#ifndef SMP_SAMPLE_INTERNAL_H
#define SMP_SAMPLE_INTERNAL_H

#include "sample.h"

struct smp_state {
    smp_params params;          /* own copy; pointer fields point into the arrays below */
    smp_logit_bias *bias;       /* (n_logit_bias) */
    int32_t *banned;            /* (n_banned) */
    int32_t *allowed;           /* (n_allowed) */
    int32_t *breaker_tokens;    /* (sum of breaker lengths) */
    uint32_t *breaker_lengths;  /* (n_dry_breakers) */
    smp_stage *order;           /* (n_order) */

    size_t n_vocab;
    smp_cand *cands;            /* (n_vocab) the candidate set, first n_cands live */
    size_t n_cands;
    size_t n_sorted;            /* cands[0..n_sorted) sorted by logit desc, and the
                                   rest are all <= cands[n_sorted-1] */
    int probs_valid;            /* cands[i].prob = softmax over the set */
    float *vocab_f;             /* (n_vocab) scratch per token, kept at 0 between uses */
    int32_t *vocab_i;           /* (n_vocab) scratch per token, kept at 0 between uses */
    unsigned char *vocab_mark;  /* (n_vocab) scratch per token, kept at 0 between uses */

    void *typ_keys;             /* (n_vocab) typical-sampling scratch, made on first use */
    smp_cand *typ_tmp;          /* (n_vocab) */
    int32_t *hist_i;            /* (hist_cap) DRY scratch */
    int32_t *hist_j;            /* (hist_cap) DRY scratch */
    size_t hist_cap;

    const int32_t *history;     /* borrowed for the step */
    size_t n_history;
    uint64_t step;
    float mirostat_mu;
};

/* Comparison helpers shared between files. */
int smp_cand_cmp_logit_desc(const void *a, const void *b);

#endif
