/* internal.h: the plugin's handle types and helpers shared by its files (never installed). */
#ifndef CHASKI_PLUGIN_INTERNAL_H
#define CHASKI_PLUGIN_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "chaski.h"
#include "ck_error.h"
#include "model.h"
#include "sched.h"
#include "tok/tok.h"

#define PLUGIN_HIDDEN __attribute__((visibility("hidden")))

/* A per-handle last-error slot. */
typedef struct last_error {
    pthread_mutex_t mu;
    char msg[CK_ERROR_MSG_MAX];
} last_error;

struct chaski_runtime {
    be_backend *be;
    char backend[16];
    int n_threads;
    char *script_dir;               /* or NULL */
    last_error err;
    pthread_mutex_t mu;             /* guards models */
    chaski_model *models;           /* loaded models, linked through next */
};

struct chaski_model {
    chaski_runtime *rt;
    chaski_model *next;
    mdl_model *m;                   /* NULL for a vocab-only load */
    tok_tokenizer *tok;
    cfg_config cfg;                 /* valid when has_cfg */
    int has_cfg;
    char dir[1024];
    sched *sch;
    int n_ctx;
    sched_params sp;
    last_error err;
};

PLUGIN_HIDDEN void lerr_init(last_error *e);
PLUGIN_HIDDEN void lerr_destroy(last_error *e);
PLUGIN_HIDDEN void lerr_set(last_error *e, const char *msg);
PLUGIN_HIDDEN size_t lerr_get(last_error *e, char *buf, size_t cap);
/* Record err in e and return its status as a chaski_status. */
PLUGIN_HIDDEN chaski_status lerr_fail(last_error *e, const ck_error *err);
PLUGIN_HIDDEN chaski_status lerr_failf(last_error *e, chaski_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Versioned structs: copy the bytes both sides cover. `in` reads a host struct over a
 * plugin struct holding defaults; `out` writes a plugin struct into a host struct, keeping
 * the host's struct_size. Both return 0 when the host's struct_size is too small to be valid. */
PLUGIN_HIDDEN int versioned_in(void *dst, size_t dst_size, const void *src);
PLUGIN_HIDDEN int versioned_out(void *dst, const void *src, size_t src_size);

/* Copy a string into a host buffer with two-call sizing. */
PLUGIN_HIDDEN chaski_status copy_out(const char *src, size_t len, char *out, size_t cap, size_t *out_len);

/* ---- the table entries, by file ---- */
/* runtime.c */
PLUGIN_HIDDEN void rt_params_default(chaski_runtime_params *p);
PLUGIN_HIDDEN chaski_status rt_create(const chaski_runtime_params *p, chaski_runtime **out, char *err, size_t cap);
PLUGIN_HIDDEN void rt_destroy(chaski_runtime *rt);
PLUGIN_HIDDEN size_t rt_last_error(chaski_runtime *rt, char *buf, size_t cap);
PLUGIN_HIDDEN chaski_status rt_device_count(chaski_runtime *rt, int32_t *out_n);
PLUGIN_HIDDEN chaski_status rt_device_info(chaski_runtime *rt, int32_t index, chaski_device_info *out);
/* model.c */
PLUGIN_HIDDEN void md_params_default(chaski_model_params *p);
PLUGIN_HIDDEN chaski_status md_estimate(chaski_runtime *rt, const chaski_model_params *p, chaski_memory_estimate *out);
PLUGIN_HIDDEN chaski_status md_load(chaski_runtime *rt, const chaski_model_params *p, chaski_model **out);
PLUGIN_HIDDEN void md_unload(chaski_model *model);
PLUGIN_HIDDEN size_t md_last_error(chaski_model *model, char *buf, size_t cap);
PLUGIN_HIDDEN chaski_status md_info(chaski_model *model, chaski_model_info *out);
PLUGIN_HIDDEN chaski_status md_chat_template(chaski_model *model, char *out, size_t cap, size_t *out_len);
PLUGIN_HIDDEN chaski_status md_stats(chaski_model *model, chaski_model_stats *out);
PLUGIN_HIDDEN void md_score_params_default(chaski_score_params *p);
PLUGIN_HIDDEN chaski_status md_score(chaski_model *model, const int32_t *ids, size_t n_ids,
                                     const chaski_score_params *p, chaski_score_result *out);
/* text.c */
PLUGIN_HIDDEN chaski_status tx_tokenize(chaski_model *model, const char *text, size_t text_len, uint32_t flags,
                                        int32_t *out_ids, size_t cap, size_t *out_n);
PLUGIN_HIDDEN chaski_status tx_detokenize(chaski_model *model, const int32_t *ids, size_t n_ids, uint32_t flags,
                                          char *out, size_t cap, size_t *out_len);
PLUGIN_HIDDEN chaski_status tx_token_to_piece(chaski_model *model, int32_t token, char *out, size_t cap,
                                              size_t *out_len);
PLUGIN_HIDDEN void tx_chat_params_default(chaski_chat_params *p);
PLUGIN_HIDDEN chaski_status tx_chat_apply(chaski_model *model, const chaski_chat_message *messages, size_t n_messages,
                                          const chaski_chat_params *p, char *out, size_t cap, size_t *out_len);
/* job.c */
PLUGIN_HIDDEN void jb_params_default(chaski_job_params *p);
PLUGIN_HIDDEN chaski_status jb_submit(chaski_model *model, const chaski_job_params *p, chaski_job **out);
PLUGIN_HIDDEN chaski_status jb_poll(chaski_job *job, chaski_event *out, uint32_t timeout_ms);
PLUGIN_HIDDEN chaski_status jb_wait(chaski_job *job, uint32_t timeout_ms);
PLUGIN_HIDDEN chaski_status jb_cancel(chaski_job *job);
PLUGIN_HIDDEN void jb_release(chaski_job *job);
PLUGIN_HIDDEN chaski_status jb_stats(chaski_job *job, chaski_job_stats *out);
PLUGIN_HIDDEN size_t jb_last_error(chaski_job *job, char *buf, size_t cap);

#endif
