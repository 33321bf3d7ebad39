/* script.h: Lua scripting for samplers, stop conditions and prompt templates
 * (prefix scr_). DESIGN.md "Lua scripting" is the contract; docs/scripting.md
 * documents the Lua side (the ctx API, the sandbox, the shipped scripts).
 *
 * Two layers (as in Redis): script.c is the engine-neutral part (limits, the run
 * context that enforces the instruction budget and the deadline, the catalogue of
 * scripts compiled into the plugin and the directory override, template picking);
 * script_lua.c is the Lua glue (one sandboxed lua_State per scr_state, the ctx
 * bindings from luaL_Reg tables, the run context under one registry key).
 *
 * One scr_state runs one script for one job: a sampler (`sample(ctx)`), a stop
 * script (`check(ctx)`) or a template (`render(messages, opts)`, `match(tmpl)`).
 * A state is never shared between jobs, so one job's script cannot see or break
 * another's. Calls on one state must not overlap; different states may run on
 * different threads at once.
 *
 * Every failure of a script (a Lua error, the budget, the deadline, the memory
 * cap, a bad result) returns CK_E_SCRIPT with the script's name, the line and a
 * traceback in err->msg; the state stays usable for the next call (the job is
 * expected to fail, but nothing else is affected).
 */
#ifndef SCR_SCRIPT_H
#define SCR_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
#include "sample.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-state limits, configurable per model and per job. */
typedef struct scr_limits {
    size_t struct_size;      /* sizeof(scr_limits), set by scr_limits_default */
    size_t memory_bytes;     /* cap on the state's Lua heap; default 32 MiB */
    uint64_t instructions;   /* VM instructions per call; default 100,000,000 */
    uint32_t deadline_ms;    /* wall clock per call; default 1000 ms */
} scr_limits;

void scr_limits_default(scr_limits *limits);

typedef enum scr_kind {
    SCR_SAMPLER = 0,  /* returns a table with sample(ctx) */
    SCR_STOP,         /* returns a table with check(ctx) */
    SCR_TEMPLATE,     /* returns a table with render(messages, opts) and match(tmpl) */
} scr_kind;

typedef struct scr_state scr_state;

/* Load a script: text[text_len] is a Lua text chunk (binary chunks are refused)
 * named `name` in messages (e.g. "samplers/default"). The chunk runs once, under
 * the limits, and must return a table with the function(s) its kind requires.
 * text is copied; limits may be NULL (defaults). Errors: CK_E_SCRIPT (syntax,
 * runtime error, missing function), CK_E_INVALID_ARGUMENT, CK_E_OUT_OF_MEMORY. */
ck_status scr_create(scr_kind kind, const char *name, const char *text, size_t text_len,
                     const scr_limits *limits, scr_state **out_state, ck_error *err);
/* Close the Lua state and free everything; NULL is accepted. */
void scr_destroy(scr_state *state);

const char *scr_name(const scr_state *state);
/* Bytes the state's Lua heap uses now. */
size_t scr_memory_used(const scr_state *state);
/* Change the limits for later calls (e.g. a job's own limits on a model default). */
ck_status scr_set_limits(scr_state *state, const scr_limits *limits, ck_error *err);

/* The job's parameters, visible to the script as ctx.params: a JSON object
 * (replaces the table), or single keys. Errors: CK_E_INVALID_ARGUMENT (not a
 * JSON object), CK_E_SCRIPT (out of script memory). */
ck_status scr_set_params_json(scr_state *state, const char *json, size_t json_len, ck_error *err);
ck_status scr_set_param_number(scr_state *state, const char *key, double value, ck_error *err);
ck_status scr_set_param_string(scr_state *state, const char *key, const char *value, ck_error *err);

/* ---- samplers ------------------------------------------------------------------ */

/* One step of a sampler script: smp_begin(sampler, logits, history, step) then
 * sample(ctx). The ctx primitives run on `sampler`'s candidate set (the job's
 * smp_state, whose parameters are the defaults of the primitives). The result must
 * be an integer in [0, n_vocab). Borrowed pointers are used only during the call.
 * Errors: CK_E_SCRIPT, CK_E_INVALID_ARGUMENT (NaN logits, NULL pointers). */
ck_status scr_sample(scr_state *state, smp_state *sampler, const float *logits,
                     const int32_t *history, size_t n_history, uint64_t step,
                     int32_t *out_token, ck_error *err);

/* ---- stop scripts -------------------------------------------------------------- */

/* check(ctx) after a token: ctx.text = text[text_len] generated so far, ctx.token,
 * ctx.step (tokens generated, counting this one). *out_stop = 1 and the reason
 * copied (NUL-terminated, truncated to reason_cap) when it returns a string;
 * *out_stop = 0 when it returns nil or false. Errors: CK_E_SCRIPT. */
ck_status scr_stop_check(scr_state *state, const char *text, size_t text_len, int32_t token,
                         uint64_t step, int *out_stop, char *out_reason, size_t reason_cap,
                         ck_error *err);

/* ---- templates ------------------------------------------------------------------ */

typedef struct scr_message {
    const char *role;     /* NUL-terminated */
    const char *content;  /* content_len bytes (may hold NULs) */
    size_t content_len;
} scr_message;

typedef struct scr_template_opts {
    int add_generation_prompt;
    const char *bos_token;  /* NULL: absent (nil in Lua) */
    const char *eos_token;  /* NULL: absent */
} scr_template_opts;

/* render(messages, opts). *out_text is malloc'd (NUL-terminated; free() it).
 * Errors: CK_E_SCRIPT, CK_E_OUT_OF_MEMORY. */
ck_status scr_template_render(scr_state *state, const scr_message *messages, size_t n_messages,
                              const scr_template_opts *opts, char **out_text, size_t *out_len,
                              ck_error *err);
/* match(chat_template): *out_match = 1 when it returns true. */
ck_status scr_template_match(scr_state *state, const char *chat_template, size_t template_len,
                             int *out_match, ck_error *err);

/* ---- the scripts compiled into the plugin, and the directory override ---------- */

/* The number of built-in scripts and the i-th one's name ("templates/llama3") and
 * text (static storage). Names are sorted. */
size_t scr_builtin_count(void);
void scr_builtin_at(size_t i, const char **out_name, const char **out_text, size_t *out_len);

/* A script's text by name: with script_dir not NULL, script_dir/<name>.lua wins
 * over the built-in; a name ending in ".lua" is a file path read as is. *out_text
 * is malloc'd (free() it). Errors: CK_E_MISSING, CK_E_IO, CK_E_OUT_OF_MEMORY. */
ck_status scr_script_text(const char *script_dir, const char *name, char **out_text,
                          size_t *out_len, ck_error *err);

/* Create a state for a script named as scr_script_text does. */
ck_status scr_create_named(scr_kind kind, const char *script_dir, const char *name,
                           const scr_limits *limits, scr_state **out_state, ck_error *err);

/* Pick the template for a model: every built-in "templates/..." script (overridden
 * from script_dir where it has a file of that name) is asked match(chat_template),
 * in name order; the first that says true is copied to out_name (e.g.
 * "templates/llama3"). *out_found = 0 when none matches. A template whose match
 * fails is skipped. */
ck_status scr_template_pick(const char *script_dir, const char *chat_template,
                            size_t template_len, const scr_limits *limits, char *out_name,
                            size_t name_cap, int *out_found, ck_error *err);

/* ---- the run context (engine-neutral; used by the Lua glue) --------------------- */

typedef struct scr_run {
    uint64_t budget;       /* instructions allowed in this call */
    uint64_t used;
    int64_t deadline_ns;   /* monotonic clock */
    int stopped;           /* 1 budget, 2 deadline: every later tick fails too */
} scr_run;

void scr_run_begin(scr_run *run, const scr_limits *limits);
/* Account n instructions; returns 0 to go on, else 1 (budget) or 2 (deadline). */
int scr_run_tick(scr_run *run, uint64_t n);
int64_t scr_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
