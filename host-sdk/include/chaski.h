/* chaski.h: the chaski plugin ABI (the contract between a host and libchaski.so).
 *
 * A host dlopen()s a plugin, looks up the one exported symbol `chaski_plugin_entry`, and calls
 * it with the range of ABI versions it speaks. The plugin answers with a pointer to a const,
 * append-only function table (`chaski_api`) for the version it picked, or NULL and a reason.
 * Everything else goes through that table. docs/abi.md explains the rules with examples.
 *
 * Rules that hold for every declaration below:
 *
 *  - Versions. CHASKI_ABI_MAJOR.MINOR. A major change breaks the contract; a minor change only
 *    appends: new functions at the end of chaski_api, new fields at the end of structs, each
 *    under a `since 1.N` line. Nothing is ever removed, reordered or retyped within a major.
 *
 *  - struct_size. The table and every struct that crosses the boundary start with
 *    `uint32_t struct_size`, set by whoever fills the struct (use the CHASKI_INIT macro or a
 *    `*_params_default` function). Each side reads only the fields that the other side's size
 *    covers: a plugin given a smaller (older) struct uses its own defaults for the fields past
 *    its end; a plugin filling a host struct writes only the fields that the host's size covers.
 *    Before calling a table entry, check CHASKI_API_HAS(api, entry): an older plugin's table
 *    is shorter.
 *
 *  - Status. Every function that can fail returns chaski_status: CHASKI_OK (0), an error (> 0),
 *    or a non-error outcome (< 0: CHASKI_NO_EVENT, CHASKI_END). On an error the message is kept
 *    per handle (runtime, model, job) and read with the matching `*_last_error` function; it
 *    says what failed, where and what was expected. Creation functions, which have no handle
 *    yet, take a caller buffer for the message.
 *
 *  - Memory. No function frees memory that the other side allocated. Variable-sized results use
 *    two-call sizing: pass out=NULL/cap=0 (or a too-small buffer) to learn the size through
 *    *out_len / *out_n (CHASKI_E_BUFFER_TOO_SMALL when a non-NULL buffer was too small), then call
 *    again with a buffer that large. Strings are UTF-8 with an explicit length; text written
 *    to a host buffer is NUL-terminated when the buffer has room for the NUL (the length never
 *    counts it). Pointers that the plugin hands out say until when they stay valid.
 *
 *  - Threads. Each declaration says which thread may call it: [any thread] (safe concurrently
 *    with anything, on any handle), [not concurrently with X], or [engine thread: callback]
 *    (the plugin calls the host back on one of its own threads; the callback must return
 *    quickly and must not call functions marked "not from a callback").
 *
 *  - Lifetime. runtime_destroy joins every plugin thread and frees every allocation the
 *    runtime made; after the last runtime is destroyed, dlclose() is safe.
 *
 * The header compiles as C11 and as C++ (-Wall -Wextra -pedantic).
 */
#ifndef CHASKI_H
#define CHASKI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions ----------------------------------------------------------------------------- */

#define CHASKI_ABI_MAJOR 1
#define CHASKI_ABI_MINOR 1
/* A version as one number: major in the high 16 bits, minor in the low 16. */
#define CHASKI_ABI_VERSION(major, minor) ((((uint32_t)(major)) << 16) | ((uint32_t)(minor) & 0xffffu))
#define CHASKI_ABI_VERSION_MAJOR(v) ((uint32_t)(v) >> 16)
#define CHASKI_ABI_VERSION_MINOR(v) ((uint32_t)(v) & 0xffffu)
#define CHASKI_ABI_CURRENT CHASKI_ABI_VERSION(CHASKI_ABI_MAJOR, CHASKI_ABI_MINOR)

/* Zero a struct and set its struct_size: `chaski_model_info info; CHASKI_INIT(&info);` */
#define CHASKI_INIT(ptr)                                                                        \
    do {                                                                                        \
        unsigned char *chaski_init_p_ = (unsigned char *)(ptr);                                 \
        for (size_t chaski_init_i_ = 0; chaski_init_i_ < sizeof *(ptr); chaski_init_i_++)       \
            chaski_init_p_[chaski_init_i_] = 0;                                                 \
        (ptr)->struct_size = (uint32_t)sizeof *(ptr);                                           \
    } while (0)

/* Whether a table (or any versioned struct) of size s->struct_size covers `field`. */
#define CHASKI_HAS_FIELD(s, type, field) \
    ((s)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))
#define CHASKI_API_HAS(api, field) ((api) != NULL && CHASKI_HAS_FIELD(api, chaski_api, field) && (api)->field != NULL)

/* ---- status codes ------------------------------------------------------------------------- */

typedef int32_t chaski_status;

#define CHASKI_OK 0
/* non-error outcomes (< 0) */
#define CHASKI_NO_EVENT (-1)        /* job_poll: nothing arrived before the timeout */
#define CHASKI_END (-2)             /* job_poll: the job's last event was already delivered */
/* errors (> 0); 1..13 mirror the engine's own codes */
#define CHASKI_E_INVALID_ARGUMENT 1 /* a caller passed something the contract forbids */
#define CHASKI_E_IO 2               /* a file could not be opened, read or mapped */
#define CHASKI_E_FORMAT 3           /* a file's bytes break its format's rules */
#define CHASKI_E_CONFIG 4           /* config.json (or a sibling) is wrong or inconsistent */
#define CHASKI_E_SHAPE 5            /* a tensor's shape or dtype disagrees with the config */
#define CHASKI_E_MISSING 6          /* a required tensor, field or file is absent */
#define CHASKI_E_UNSUPPORTED 7      /* valid input this build does not handle (or an older table) */
#define CHASKI_E_OUT_OF_MEMORY 8    /* an allocation failed or the memory plan does not fit */
#define CHASKI_E_CANCELLED 9        /* the caller asked to stop (load aborted, job cancelled) */
#define CHASKI_E_CONTEXT_OVERFLOW 10 /* a request is longer than the context allows */
#define CHASKI_E_SCRIPT 11          /* a Lua script failed or returned a bad value */
#define CHASKI_E_DEVICE 12          /* a GPU call failed */
#define CHASKI_E_INTERNAL 13        /* a broken invariant inside the plugin */
#define CHASKI_E_BUFFER_TOO_SMALL 14 /* two-call sizing: *out_len / *out_n says what is needed */
#define CHASKI_E_VERSION 15         /* no ABI version both sides speak */
#define CHASKI_E_STATE 16           /* the handle is in a state that forbids the call */
#define CHASKI_E_NOT_FOUND 17       /* host SDK: no such file or no plugin on the search path */
#define CHASKI_E_NOT_SHARED_OBJECT 18 /* host SDK: the file is not a loadable shared object */
#define CHASKI_E_NO_ENTRY 19        /* host SDK: the object does not export chaski_plugin_entry */

/* ---- opaque handles ----------------------------------------------------------------------- */

typedef struct chaski_runtime chaski_runtime; /* threads, devices; owns models */
typedef struct chaski_model chaski_model;     /* weights, tokenizer, KV cache, one engine thread */
typedef struct chaski_job chaski_job;         /* one generation request */

/* ---- plain data ----------------------------------------------------------------------------- */

typedef struct chaski_runtime_params {
    uint32_t struct_size;
    const char *backend;     /* "cpu", "cuda" or "auto" (default "auto": cuda when present);
                                read during runtime_create only */
    int32_t n_threads;       /* CPU threads for the cpu backend; 0 = the engine's choice */
    const char *script_dir;  /* directory whose samplers/, stops/, templates/ override the built-in
                                Lua scripts; NULL = built-ins only; copied */
} chaski_runtime_params;

typedef struct chaski_device_info {
    uint32_t struct_size;
    int32_t index;
    char backend[16];        /* "cpu" or "cuda" */
    char name[128];          /* "NVIDIA H200", "x86_64 CPU (16 threads)" */
    uint64_t total_bytes;    /* memory of the device (system RAM for the cpu backend) */
    uint64_t free_bytes;     /* free now */
} chaski_device_info;

/* Progress while loading: frac in [0, 1]. Return nonzero to abort the load, which then fails
 * with CHASKI_E_CANCELLED and frees everything it took. [called on the thread that called
 * model_load; may not call into the same runtime] */
typedef int (*chaski_progress_fn)(void *user_data, float frac);

typedef struct chaski_model_params {
    uint32_t struct_size;
    const char *path;               /* HF model directory (config.json, *.safetensors, tokenizer files) */
    int32_t n_ctx;                  /* context length per job; 0 = min(trained context, 4096) */
    int32_t max_jobs;               /* sequences decoded together; default 8 */
    int32_t max_batch_tokens;       /* token budget of one engine step (decode + prefill chunks); default 512 */
    int32_t kv_page_size;           /* tokens per KV page; default 256 */
    int32_t kv_pages;               /* pages in the pool; 0 = enough for max_jobs full contexts, within
                                       kv_max_bytes */
    uint64_t kv_max_bytes;          /* cap on the pool when kv_pages == 0; default 2 GiB */
    chaski_progress_fn progress;    /* may be NULL */
    void *progress_user_data;
    int32_t vocab_only;             /* 1: load only the tokenizer files (tokenizer.json,
                                       tokenizer_config.json, config.json if present): tokenize,
                                       detokenize, chat_apply and model_info work; job_submit and
                                       score return CHASKI_E_STATE (default 0) */
} chaski_model_params;

#define CHASKI_MAX_LAYER_BITS 256

/* What a model will cost, computed from its config and safetensors headers without loading it. */
typedef struct chaski_memory_estimate {
    uint32_t struct_size;
    uint64_t n_params;
    uint64_t weights_bytes;         /* in the backend's weight format */
    uint64_t kv_bytes;              /* the KV page pool that model_load would allocate */
    uint64_t activations_bytes;     /* workspace and logits for one step, and the runtime's headroom */
    uint64_t total_bytes;
    uint64_t device_free_bytes;     /* free memory of the device it would load on */
    int32_t fits;                   /* 1 if total_bytes <= device_free_bytes */
    int32_t kv_pages;               /* the pool size the plan chose */
    /* since 1.1: the quantized linears (GPTQ, EXL2), read from the tensors; all zero when there are none.
     * Bits per weight count everything stored (packed weights, scales, zeros, g_idx, permutations). */
    uint64_t quant_params;          /* parameters (N x K) of the quantized linears */
    uint64_t quant_bytes;           /* their tensors as stored */
    double quant_bits_per_weight;   /* quant_bytes x 8 / quant_params */
    double head_bits_per_weight;    /* a quantized lm_head (EXL2), else 0 */
    int32_t n_layer_bits;           /* entries of layer_bits_per_weight: the layers, at most CHASKI_MAX_LAYER_BITS */
    float layer_bits_per_weight[CHASKI_MAX_LAYER_BITS]; /* per decoder layer, over its quantized linears (0: none) */
} chaski_memory_estimate;

#define CHASKI_MAX_EOS 16

typedef struct chaski_model_info {
    uint32_t struct_size;
    char architecture[64];          /* config.json architectures[0] ("LlamaForCausalLM") */
    char backend[16];               /* where it runs: "cpu" or "cuda" */
    char quantization[32];          /* "none", "gptq-4bit", "exl2-4.65bpw", ...; EXL2 held at
                                       4/8 bits for speed: "exl2-4.65bpw widened" (mixed linears
                                       at 8: "... widened8") */
    char dtype[16];                 /* the checkpoint's dtype as written ("bfloat16"), or "" */
    uint64_t n_params;
    int32_t n_ctx_train;            /* max_position_embeddings */
    int32_t n_ctx;                  /* context per job in this load */
    int32_t vocab_size;             /* rows of the output layer */
    int32_t bos_id;                 /* -1 if none */
    int32_t eos_id;                 /* the first EOS id, -1 if none */
    int32_t n_eos;
    int32_t eos_ids[CHASKI_MAX_EOS];
    int32_t n_layers, hidden_size, n_heads, n_kv_heads, head_dim;
    int32_t has_chat_template;      /* 1 when tokenizer_config.json has a chat_template */
} chaski_model_info;

/* Flags of tokenize. */
#define CHASKI_TOKENIZE_ADD_SPECIAL 1u   /* add what the tokenizer adds by default (BOS, ...) */
#define CHASKI_TOKENIZE_PARSE_SPECIAL 2u /* "<|eot_id|>" in the text becomes the special token */
/* Flags of detokenize. */
#define CHASKI_DETOKENIZE_SKIP_SPECIAL 1u /* leave special tokens (BOS, EOS, ...) out of the text */

typedef struct chaski_chat_message {
    uint32_t struct_size;
    const char *role;               /* "system", "user", "assistant", ... (NUL-terminated) */
    const char *content;            /* UTF-8, content_len bytes */
    size_t content_len;
} chaski_chat_message;

typedef struct chaski_chat_params {
    uint32_t struct_size;
    int32_t add_generation_prompt;  /* 1: end with the assistant turn's opening (default 1) */
    const char *template_name;      /* a built-in or script-dir template name ("llama3", "chatml"),
                                       NULL = the one that matches the model's chat_template */
    const char *template_script;    /* Lua template source text (wins over template_name); NULL = none */
    size_t template_script_len;
} chaski_chat_params;

typedef struct chaski_logit_bias {
    int32_t token;
    float bias;                     /* added to the token's logit; -INFINITY bans it */
} chaski_logit_bias;

/* Why a job ended. */
#define CHASKI_FINISH_NONE 0        /* still running */
#define CHASKI_FINISH_STOP 1        /* an EOS token, a stop token id, a stop string or a stop script */
#define CHASKI_FINISH_LENGTH 2      /* max_new_tokens, or the context is full */
#define CHASKI_FINISH_CANCELLED 3   /* job_cancel, job_release, model_unload, or a host SDK swap */
#define CHASKI_FINISH_ERROR 4       /* the job failed: job_last_error says why */

/* Event types. */
#define CHASKI_EVENT_TOKEN 1        /* one generated token */
#define CHASKI_EVENT_FINISHED 2     /* the job ended; always the last event of a job */

typedef struct chaski_top_logprob {
    int32_t token;
    float logprob;
} chaski_top_logprob;

typedef struct chaski_event {
    uint32_t struct_size;
    uint32_t type;                  /* CHASKI_EVENT_* */
    int32_t token;                  /* TOKEN: the id; FINISHED: -1 */
    int32_t index;                  /* TOKEN: 0 for the first generated token */
    float logprob;                  /* TOKEN: log-probability of the token under the model's
                                       distribution (log-softmax of the raw logits) */
    const char *text;               /* text that is now complete (whole UTF-8, past any possible
                                       stop string); may be empty. FINISHED: the rest of the held-back
                                       text. Owned by the plugin: valid during the callback, or until
                                       the next job_poll / job_release of this job */
    size_t text_len;
    const chaski_top_logprob *top;  /* TOKEN: the n_top most likely tokens, best first (same
                                       ownership as text) */
    uint32_t n_top;
    uint32_t finish_reason;         /* FINISHED: CHASKI_FINISH_* */
    chaski_status status;           /* FINISHED: CHASKI_OK, or the error when finish_reason is ERROR */
} chaski_event;

/* A job's events, on an engine thread. Must return quickly. May call: job_cancel, job_stats,
 * job_last_error, model_stats, and read-only functions on the model. Must not call job_release,
 * job_wait, model_unload or runtime_destroy. After the FINISHED event no further call is made
 * for this job. [engine thread: callback] */
typedef void (*chaski_event_fn)(void *user_data, chaski_job *job, const chaski_event *event);

typedef struct chaski_job_params {
    uint32_t struct_size;
    /* prompt: tokens win when n_prompt_tokens > 0, else text. Both are copied during job_submit. */
    const char *prompt;             /* UTF-8 */
    size_t prompt_len;
    const int32_t *prompt_tokens;
    size_t n_prompt_tokens;
    int32_t add_special;            /* text prompts: add the tokenizer's default special tokens (default 1) */
    int32_t parse_special;          /* text prompts: parse special-token text (default 0) */
    /* lengths */
    int32_t max_new_tokens;         /* default 256; clamped so the job fits the context */
    int32_t min_new_tokens;         /* EOS and stop token ids are ignored before this many (default 0) */
    /* sampling (the built-in chain, in the order of its fields) */
    uint64_t seed;                  /* the same seed and settings give the same tokens (default 0) */
    int32_t greedy;                 /* 1: argmax, sampler settings ignored (default 0) */
    float temperature;              /* default 0.8; <= 0 is greedy */
    int32_t top_k;                  /* default 40; 0 = off */
    float top_p;                    /* default 0.95; 1 = off */
    float min_p;                    /* default 0.05; 0 = off */
    float typical_p;                /* default 1 = off */
    float repetition_penalty;       /* default 1 = off */
    float presence_penalty;         /* default 0 */
    float frequency_penalty;        /* default 0 */
    int32_t penalty_last_n;         /* tokens the penalties look back over; default 64, 0 or -1 = all */
    const char *sampler_script;     /* Lua sampler source (returns a table with sample(ctx));
                                       NULL = the built-in chain; copied */
    size_t sampler_script_len;
    const char *sampler_script_name; /* name for messages ("my_sampler.lua"); may be NULL; copied */
    /* stopping */
    const char *const *stop_strings; /* n_stop_strings NUL-terminated strings; copied */
    size_t n_stop_strings;
    const int32_t *stop_tokens;     /* extra stop ids (the model's EOS ids always stop); copied */
    size_t n_stop_tokens;
    int32_t ignore_eos;             /* 1: EOS does not stop the job (default 0) */
    const char *stop_script;        /* Lua stop script source (returns a table with check(ctx)); copied */
    size_t stop_script_len;
    /* shaping */
    const chaski_logit_bias *logit_bias; /* copied */
    size_t n_logit_bias;
    const char *const *banned_strings; /* text that must never appear in the output; copied */
    size_t n_banned_strings;
    /* output */
    int32_t top_n_logprobs;         /* alternatives per token event, 0..20 (default 0) */
    /* delivery: with on_event set, events go to the callback; otherwise they queue for job_poll */
    chaski_event_fn on_event;
    void *user_data;
} chaski_job_params;

/* Job states (chaski_job_stats.state). */
#define CHASKI_JOB_QUEUED 1         /* waiting for KV pages or a batch slot */
#define CHASKI_JOB_PREFILL 2        /* its prompt is being processed */
#define CHASKI_JOB_GENERATING 3
#define CHASKI_JOB_FINISHED 4

typedef struct chaski_job_stats {
    uint32_t struct_size;
    uint32_t state;                 /* CHASKI_JOB_* */
    uint32_t finish_reason;         /* CHASKI_FINISH_* (NONE while running) */
    int32_t n_prompt_tokens;
    int32_t n_generated_tokens;
    double queued_ms;               /* submit -> admitted */
    double prefill_ms;              /* admitted -> first token sampled */
    double time_to_first_token_ms;  /* submit -> first token */
    double generate_ms;             /* first token -> last token */
    double total_ms;                /* submit -> finished (or now) */
    double prefill_tokens_per_s;
    double generate_tokens_per_s;
} chaski_job_stats;

typedef struct chaski_model_stats {
    uint32_t struct_size;
    uint64_t weights_bytes;
    uint64_t kv_bytes;              /* the whole page pool */
    int32_t kv_page_size;
    int32_t kv_pages_total;
    int32_t kv_pages_free;
    int32_t jobs_active;            /* admitted, not finished */
    int32_t jobs_queued;            /* submitted, not admitted */
    uint64_t jobs_finished;
    uint64_t prompt_tokens_total;
    uint64_t generated_tokens_total;
    uint64_t steps;                 /* engine steps run */
    double generate_tokens_per_s;   /* generated tokens over engine busy time, recent window */
} chaski_model_stats;

typedef struct chaski_score_params {
    uint32_t struct_size;
    int32_t window;                 /* tokens per window (default: the model's n_ctx - 1) */
    int32_t bos_id;                 /* prepended to each window and not scored; default -2 = the
                                       model's BOS (none when the model has none); -1 = none */
} chaski_score_params;

typedef struct chaski_score_result {
    uint32_t struct_size;
    double perplexity;              /* exp(total_nll / n_scored) */
    double total_nll;               /* natural log */
    int64_t n_scored;               /* tokens scored */
    int64_t n_windows;
} chaski_score_result;

/* ---- the function table ------------------------------------------------------------------- */

typedef struct chaski_api {
    uint32_t struct_size;           /* sizeof the plugin's table: check CHASKI_API_HAS before a call */
    uint32_t abi_version;           /* the version the plugin picked: CHASKI_ABI_VERSION(major, minor) */
    const char *plugin_name;        /* "chaski"; static */
    const char *plugin_version;     /* build description ("0.1.0 cpu+cuda"); static */

    /* A stable lower-case name for a status ("context-overflow"); static. [any thread] */
    const char *(*status_name)(chaski_status status);

    /* ---- runtime ---- */

    /* Fill p with the plugin's defaults (p->struct_size set by the caller says how much to fill).
     * [any thread] */
    void (*runtime_params_default)(chaski_runtime_params *p);
    /* Create a runtime. On failure *out = NULL and err (err_cap bytes, may be NULL) holds the message.
     * The caller owns *out and destroys it with runtime_destroy. [any thread] */
    chaski_status (*runtime_create)(const chaski_runtime_params *p, chaski_runtime **out, char *err,
                                    size_t err_cap);
    /* Unload every model still loaded (cancelling their jobs), join every plugin thread, free every
     * allocation. rt may be NULL. Job handles the host has not released become invalid.
     * [not concurrently with any other call on rt or its models and jobs; not from a callback] */
    void (*runtime_destroy)(chaski_runtime *rt);
    /* Copy the runtime's last error message into buf (two-call sizing via the return value: the
     * message length, excluding the NUL). [any thread] */
    size_t (*runtime_last_error)(chaski_runtime *rt, char *buf, size_t buf_cap);

    /* ---- devices ---- */

    /* Number of devices the runtime's backend can use. [any thread] */
    chaski_status (*device_count)(chaski_runtime *rt, int32_t *out_n);
    /* Device `index` (0..count-1), including its memory now. [any thread] */
    chaski_status (*device_info)(chaski_runtime *rt, int32_t index, chaski_device_info *out);

    /* ---- models ---- */

    /* [any thread] */
    void (*model_params_default)(chaski_model_params *p);
    /* What loading p->path with p would take, without loading it (reads config.json and the
     * safetensors headers). Errors: the same as model_load's checks. [any thread] */
    chaski_status (*model_estimate)(chaski_runtime *rt, const chaski_model_params *p,
                                    chaski_memory_estimate *out);
    /* Load a model: checks the config and every tensor before allocating, plans memory (refused
     * with the numbers when it does not fit), uploads weights (calling p->progress), loads the
     * tokenizer, starts the model's engine thread. The runtime owns *out until model_unload.
     * On failure *out = NULL and runtime_last_error says why. [any thread] */
    chaski_status (*model_load)(chaski_runtime *rt, const chaski_model_params *p, chaski_model **out);
    /* Cancel the model's jobs (each gets a FINISHED event with CHASKI_FINISH_CANCELLED), stop its
     * engine thread, free it. Unreleased job handles stay valid for job_poll/job_stats/job_release.
     * model may be NULL. [not concurrently with any other call on this model; not from a callback] */
    void (*model_unload)(chaski_model *model);
    /* [any thread] */
    size_t (*model_last_error)(chaski_model *model, char *buf, size_t buf_cap);
    /* [any thread] */
    chaski_status (*model_info)(chaski_model *model, chaski_model_info *out);
    /* The model's HF chat_template text (tokenizer_config.json), two-call sizing; out_len = 0 when the
     * model has none. [any thread] */
    chaski_status (*model_chat_template)(chaski_model *model, char *out, size_t cap, size_t *out_len);
    /* [any thread] */
    chaski_status (*model_stats)(chaski_model *model, chaski_model_stats *out);

    /* ---- tokenizer ---- */

    /* Text -> ids with CHASKI_TOKENIZE_* flags. Two-call sizing: *out_n = ids needed.
     * [any thread] */
    chaski_status (*tokenize)(chaski_model *model, const char *text, size_t text_len, uint32_t flags,
                              int32_t *out_ids, size_t cap, size_t *out_n);
    /* Ids -> text with CHASKI_DETOKENIZE_* flags (invalid UTF-8 becomes U+FFFD). Two-call sizing.
     * Errors: CHASKI_E_INVALID_ARGUMENT for an id outside the vocabulary. [any thread] */
    chaski_status (*detokenize)(chaski_model *model, const int32_t *ids, size_t n_ids, uint32_t flags,
                                char *out, size_t cap, size_t *out_len);
    /* The raw bytes one token stands for (may be part of a UTF-8 character). Two-call sizing.
     * [any thread] */
    chaski_status (*token_to_piece)(chaski_model *model, int32_t token, char *out, size_t cap,
                                    size_t *out_len);
    /* [any thread] */
    void (*chat_params_default)(chaski_chat_params *p);
    /* Render messages through a chat template (p may be NULL: defaults). Two-call sizing; the
     * output is the exact prompt text. Errors: CHASKI_E_MISSING when no template applies,
     * CHASKI_E_SCRIPT when a template script fails. [any thread] */
    chaski_status (*chat_apply)(chaski_model *model, const chaski_chat_message *messages, size_t n_messages,
                                const chaski_chat_params *p, char *out, size_t cap, size_t *out_len);

    /* ---- jobs ---- */

    /* [any thread] */
    void (*job_params_default)(chaski_job_params *p);
    /* Submit a job: its prompt is tokenized and checked now (CHASKI_E_CONTEXT_OVERFLOW when the
     * prompt leaves no room in the context, CHASKI_E_SCRIPT when a script does not compile,
     * CHASKI_E_INVALID_ARGUMENT for a bad id or setting); then it queues for the engine thread.
     * Everything p points to is copied. The caller owns *out and must job_release it.
     * On failure *out = NULL and model_last_error says why. [any thread] */
    chaski_status (*job_submit)(chaski_model *model, const chaski_job_params *p, chaski_job **out);
    /* Next event of a job without on_event, waiting up to timeout_ms (0: do not wait; UINT32_MAX:
     * forever). Returns CHASKI_OK with *out filled, CHASKI_NO_EVENT on timeout, CHASKI_END once the
     * FINISHED event has been delivered, CHASKI_E_STATE for a job with on_event.
     * Pointers in *out stay valid until the next job_poll or job_release of this job.
     * [not concurrently with job_poll or job_release of the same job] */
    chaski_status (*job_poll)(chaski_job *job, chaski_event *out, uint32_t timeout_ms);
    /* Wait until the job has finished (its FINISHED event emitted or queued), up to timeout_ms.
     * CHASKI_OK when finished, CHASKI_NO_EVENT on timeout. [any thread; not from a callback] */
    chaski_status (*job_wait)(chaski_job *job, uint32_t timeout_ms);
    /* Ask the job to stop: the engine frees its KV pages at its next step (within one step) and
     * emits FINISHED with CHASKI_FINISH_CANCELLED (unless it had already finished). Idempotent.
     * [any thread, including the job's callback] */
    chaski_status (*job_cancel)(chaski_job *job);
    /* Cancel if running, wait until no callback of the job runs, free the handle. job may be NULL.
     * [not concurrently with other calls on the same job; not from a callback] */
    void (*job_release)(chaski_job *job);
    /* [any thread] */
    chaski_status (*job_stats)(chaski_job *job, chaski_job_stats *out);
    /* The job's error (script failure, ...). [any thread] */
    size_t (*job_last_error)(chaski_job *job, char *buf, size_t buf_cap);

    /* ---- scoring ---- */

    /* [any thread] */
    void (*score_params_default)(chaski_score_params *p);
    /* Negative log-likelihood of ids[n_ids] in consecutive windows of p->window tokens, the last
     * partial window dropped, each window preceded by p->bos_id (not scored): perplexity as
     * `chaski perplexity` reports it. Runs on the model's engine thread between steps (other jobs
     * pause meanwhile). Errors: CHASKI_E_INVALID_ARGUMENT when no whole window fits in n_ids,
     * CHASKI_E_CONTEXT_OVERFLOW when window + 1 exceeds the context. [any thread; not from a callback] */
    chaski_status (*score)(chaski_model *model, const int32_t *ids, size_t n_ids, const chaski_score_params *p,
                           chaski_score_result *out);

    /* 1.1 appended fields to chaski_memory_estimate only; new entries go here, at the end only */
} chaski_api;

/* The one exported symbol. The host passes the range of ABI versions it speaks
 * ([min_version, max_version], each CHASKI_ABI_VERSION(major, minor)); the plugin returns its
 * static table for the version it picks (api->abi_version), or NULL with a NUL-terminated reason
 * naming both ranges in reason[reason_cap] (reason may be NULL). The table is valid until the
 * plugin is unloaded. [any thread] */
#define CHASKI_PLUGIN_ENTRY_NAME "chaski_plugin_entry"
typedef const chaski_api *(*chaski_plugin_entry_fn)(uint32_t min_version, uint32_t max_version, char *reason,
                                                   size_t reason_cap);

#if defined(CHASKI_BUILDING_PLUGIN)
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const chaski_api *chaski_plugin_entry(uint32_t min_version, uint32_t max_version, char *reason,
                                      size_t reason_cap);
#endif

#ifdef __cplusplus
}
#endif

#endif /* CHASKI_H */
