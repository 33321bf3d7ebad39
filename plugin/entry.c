/* entry.c: the one exported symbol, the function table, and the helpers every file uses. */
#define CHASKI_BUILDING_PLUGIN 1
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef CHASKI_PLUGIN_VERSION
#define CHASKI_PLUGIN_VERSION "0.0.0"
#endif

/* The oldest and newest ABI versions this plugin speaks. */
#define PLUGIN_MIN_VERSION CHASKI_ABI_VERSION(1, 0)
#define PLUGIN_MAX_VERSION CHASKI_ABI_CURRENT

static const char *status_name(chaski_status st)
{
    switch (st) {
    case CHASKI_OK: return "ok";
    case CHASKI_NO_EVENT: return "no-event";
    case CHASKI_END: return "end";
    case CHASKI_E_INVALID_ARGUMENT: return "invalid-argument";
    case CHASKI_E_IO: return "io";
    case CHASKI_E_FORMAT: return "format";
    case CHASKI_E_CONFIG: return "config";
    case CHASKI_E_SHAPE: return "shape";
    case CHASKI_E_MISSING: return "missing";
    case CHASKI_E_UNSUPPORTED: return "unsupported";
    case CHASKI_E_OUT_OF_MEMORY: return "out-of-memory";
    case CHASKI_E_CANCELLED: return "cancelled";
    case CHASKI_E_CONTEXT_OVERFLOW: return "context-overflow";
    case CHASKI_E_SCRIPT: return "script";
    case CHASKI_E_DEVICE: return "device";
    case CHASKI_E_INTERNAL: return "internal";
    case CHASKI_E_BUFFER_TOO_SMALL: return "buffer-too-small";
    case CHASKI_E_VERSION: return "version";
    case CHASKI_E_STATE: return "state";
    case CHASKI_E_NOT_FOUND: return "not-found";
    case CHASKI_E_NOT_SHARED_OBJECT: return "not-shared-object";
    case CHASKI_E_NO_ENTRY: return "no-entry";
    default: return "unknown";
    }
}

static const chaski_api k_api = {
    .struct_size = sizeof(chaski_api),
    .abi_version = CHASKI_ABI_CURRENT,
    .plugin_name = "chaski",
    .plugin_version = CHASKI_PLUGIN_VERSION,
    .status_name = status_name,
    .runtime_params_default = rt_params_default,
    .runtime_create = rt_create,
    .runtime_destroy = rt_destroy,
    .runtime_last_error = rt_last_error,
    .device_count = rt_device_count,
    .device_info = rt_device_info,
    .model_params_default = md_params_default,
    .model_estimate = md_estimate,
    .model_load = md_load,
    .model_unload = md_unload,
    .model_last_error = md_last_error,
    .model_info = md_info,
    .model_chat_template = md_chat_template,
    .model_stats = md_stats,
    .tokenize = tx_tokenize,
    .detokenize = tx_detokenize,
    .token_to_piece = tx_token_to_piece,
    .chat_params_default = tx_chat_params_default,
    .chat_apply = tx_chat_apply,
    .job_params_default = jb_params_default,
    .job_submit = jb_submit,
    .job_poll = jb_poll,
    .job_wait = jb_wait,
    .job_cancel = jb_cancel,
    .job_release = jb_release,
    .job_stats = jb_stats,
    .job_last_error = jb_last_error,
    .score_params_default = md_score_params_default,
    .score = md_score,
};

const chaski_api *chaski_plugin_entry(uint32_t min_version, uint32_t max_version, char *reason, size_t reason_cap)
{
    /* pick the highest version inside both ranges; minors of one major are compatible
     * downwards, so within major 1 the plugin's table serves any host minor <= ours, and a
     * host asking for a newer minor gets ours (it checks struct_size before newer entries) */
    uint32_t pick = 0;
    if (min_version <= max_version && CHASKI_ABI_VERSION_MAJOR(min_version) <= CHASKI_ABI_MAJOR &&
        CHASKI_ABI_VERSION_MAJOR(max_version) >= CHASKI_ABI_MAJOR && min_version <= PLUGIN_MAX_VERSION)
        pick = PLUGIN_MAX_VERSION;
    if (pick && (pick < min_version || CHASKI_ABI_VERSION_MAJOR(pick) != CHASKI_ABI_MAJOR))
        pick = 0;
    if (!pick) {
        if (reason && reason_cap)
            snprintf(reason, reason_cap,
                     "chaski plugin %s speaks ABI %u.%u..%u.%u; the host asked for %u.%u..%u.%u",
                     CHASKI_PLUGIN_VERSION, (unsigned)CHASKI_ABI_VERSION_MAJOR(PLUGIN_MIN_VERSION),
                     (unsigned)CHASKI_ABI_VERSION_MINOR(PLUGIN_MIN_VERSION),
                     (unsigned)CHASKI_ABI_VERSION_MAJOR(PLUGIN_MAX_VERSION),
                     (unsigned)CHASKI_ABI_VERSION_MINOR(PLUGIN_MAX_VERSION),
                     (unsigned)CHASKI_ABI_VERSION_MAJOR(min_version), (unsigned)CHASKI_ABI_VERSION_MINOR(min_version),
                     (unsigned)CHASKI_ABI_VERSION_MAJOR(max_version), (unsigned)CHASKI_ABI_VERSION_MINOR(max_version));
        return NULL;
    }
    if (reason && reason_cap)
        reason[0] = '\0';
    return &k_api;
}

/* ---- helpers ------------------------------------------------------------------------------ */

void lerr_init(last_error *e)
{
    pthread_mutex_init(&e->mu, NULL);
    e->msg[0] = '\0';
}

void lerr_destroy(last_error *e)
{
    pthread_mutex_destroy(&e->mu);
}

void lerr_set(last_error *e, const char *msg)
{
    pthread_mutex_lock(&e->mu);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    pthread_mutex_unlock(&e->mu);
}

size_t lerr_get(last_error *e, char *buf, size_t cap)
{
    pthread_mutex_lock(&e->mu);
    size_t n = strlen(e->msg);
    if (buf && cap) {
        size_t c = n < cap ? n : cap - 1;
        memcpy(buf, e->msg, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

chaski_status lerr_fail(last_error *e, const ck_error *err)
{
    lerr_set(e, err->msg);
    return err->status == CK_OK ? CHASKI_E_INTERNAL : (chaski_status)err->status;
}

chaski_status lerr_failf(last_error *e, chaski_status st, const char *fmt, ...)
{
    char msg[CK_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lerr_set(e, msg);
    return st;
}

int versioned_in(void *dst, size_t dst_size, const void *src)
{
    uint32_t n = *(const uint32_t *)src;
    if (n < sizeof(uint32_t))
        return 0;
    memcpy(dst, src, n < dst_size ? n : dst_size);
    *(uint32_t *)dst = (uint32_t)dst_size;
    return 1;
}

int versioned_out(void *dst, const void *src, size_t src_size)
{
    uint32_t n = *(uint32_t *)dst;
    if (n < sizeof(uint32_t))
        return 0;
    size_t c = n < src_size ? n : src_size;
    memcpy((char *)dst + sizeof(uint32_t), (const char *)src + sizeof(uint32_t), c - sizeof(uint32_t));
    return 1;
}

chaski_status copy_out(const char *src, size_t len, char *out, size_t cap, size_t *out_len)
{
    if (out_len)
        *out_len = len;
    if (!out)
        return CHASKI_OK;
    if (cap < len)
        return CHASKI_E_BUFFER_TOO_SMALL;
    if (len)
        memcpy(out, src, len);
    if (len < cap)
        out[len] = '\0';
    return CHASKI_OK;
}
