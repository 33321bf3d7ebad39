/* chaski_host.h: the host loader library (libchaski-host; prefix chaski_host_).
 *
 * What a C host links instead of calling dlopen itself:
 *   - open a plugin by path or from a search path, negotiate the ABI version, and get clear,
 *     typed errors (no such file, not a shared object, no entry symbol, incompatible version,
 *     each with the path and the versions in the message);
 *   - keep several plugins open at once (a CUDA build and a CPU build, two versions, ...);
 *   - run a model through a "host model" that can be hot-swapped from one plugin to another
 *     while jobs run: the swap stops admitting, drains or cancels the running jobs (the host
 *     picks), unloads, loads the model in the other plugin, destroys the old runtime and drops
 *     the old plugin; jobs submitted during the swap wait and then run on the new plugin.
 *
 * Host jobs keep their events and final statistics on the host side, so a job handle stays
 * valid (for polling, stats and release) across swaps and after the plugin that ran it is gone.
 *
 * Errors: functions that create something take a caller buffer (err, err_cap; may be NULL) for
 * the message; the others return a chaski_status, and the plugin's message is readable through
 * the leased api's *_last_error functions.
 * Threads: every function is [any thread] unless its declaration says otherwise.
 */
#ifndef CHASKI_HOST_H
#define CHASKI_HOST_H

#include "chaski.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CHASKI_HOST_API
#elif defined(__GNUC__)
#define CHASKI_HOST_API __attribute__((visibility("default")))
#else
#define CHASKI_HOST_API
#endif

typedef struct chaski_host_plugin chaski_host_plugin; /* one dlopen'd plugin */
typedef struct chaski_host_model chaski_host_model;   /* a runtime + a model inside some plugin */
typedef struct chaski_host_job chaski_host_job;       /* a job, independent of the plugin that runs it */

/* ---- plugins ---- */

/* Open the plugin at `path` and negotiate the versions this header speaks
 * (CHASKI_ABI_VERSION(CHASKI_ABI_MAJOR, 0) .. CHASKI_ABI_CURRENT).
 * Errors: CHASKI_E_NOT_FOUND (no such file), CHASKI_E_NOT_SHARED_OBJECT (not loadable: not ELF,
 * wrong architecture, missing dependency), CHASKI_E_NO_ENTRY (no chaski_plugin_entry),
 * CHASKI_E_VERSION (no common version: both ranges named), CHASKI_E_OUT_OF_MEMORY.
 * The caller owns *out and closes it with chaski_host_close. */
CHASKI_HOST_API chaski_status chaski_host_open(const char *path, chaski_host_plugin **out, char *err,
                                               size_t err_cap);
/* The same with an explicit range of versions the host speaks. */
CHASKI_HOST_API chaski_status chaski_host_open_range(const char *path, uint32_t min_version, uint32_t max_version,
                                                     chaski_host_plugin **out, char *err, size_t err_cap);
/* Look for `name` (NULL: "libchaski.so") in each directory of search_path (':'-separated; NULL:
 * the CHASKI_PLUGIN_PATH environment variable) and open the first file that exists.
 * CHASKI_E_NOT_FOUND names every directory searched. */
CHASKI_HOST_API chaski_status chaski_host_open_search(const char *name, const char *search_path,
                                                      chaski_host_plugin **out, char *err, size_t err_cap);
/* Drop the caller's reference. The plugin is dlclose'd once no host model uses it any more.
 * A runtime created directly through chaski_host_api must be destroyed before this call.
 * p may be NULL. */
CHASKI_HOST_API void chaski_host_close(chaski_host_plugin *p);
/* The negotiated table (valid until chaski_host_close), the file, the version picked. */
CHASKI_HOST_API const chaski_api *chaski_host_api(const chaski_host_plugin *p);
CHASKI_HOST_API const char *chaski_host_path(const chaski_host_plugin *p);
CHASKI_HOST_API uint32_t chaski_host_version(const chaski_host_plugin *p);
/* Plugins open in this process right now (dlopen handles held by the library). */
CHASKI_HOST_API int chaski_host_plugins_open(void);

/* ---- host models (hot-swappable) ---- */

/* Create a runtime in plugin p (rt_params may be NULL: the plugin's defaults) and load a model
 * (model_params->path required). The params are copied (strings too), so a swap can reuse them.
 * Takes a reference on p. */
CHASKI_HOST_API chaski_status chaski_host_model_open(chaski_host_plugin *p, const chaski_runtime_params *rt_params,
                                                     const chaski_model_params *model_params,
                                                     chaski_host_model **out, char *err, size_t err_cap);
/* Cancel the model's jobs, unload it, destroy its runtime, drop its plugin reference. Host jobs not
 * yet released stay valid (finished). hm may be NULL. [not concurrently with a swap of hm] */
CHASKI_HOST_API void chaski_host_model_close(chaski_host_model *hm);

#define CHASKI_HOST_SWAP_DRAIN 0  /* running jobs finish on the old plugin first */
#define CHASKI_HOST_SWAP_CANCEL 1 /* running jobs are cancelled (FINISHED, CHASKI_FINISH_CANCELLED) */

/* Move the model to plugin `to` (which may be the one it is in: a reload). New submits wait;
 * running jobs are drained or cancelled by `policy`; then unload, destroy the old runtime, create
 * a runtime in `to` (rt_params NULL: the ones given at open) and load the model there. If loading
 * in `to` fails, the model is loaded back into the old plugin and the error is returned; if that
 * fails too, the host model is broken and later calls return CHASKI_E_STATE.
 * [not from a job callback] */
CHASKI_HOST_API chaski_status chaski_host_model_swap(chaski_host_model *hm, chaski_host_plugin *to,
                                                     const chaski_runtime_params *rt_params, int policy, char *err,
                                                     size_t err_cap);
/* The plugin the model is in now (no reference taken). */
CHASKI_HOST_API chaski_host_plugin *chaski_host_model_plugin(chaski_host_model *hm);
/* Swaps done so far. */
CHASKI_HOST_API uint64_t chaski_host_model_swaps(chaski_host_model *hm);

/* Lease the current api and model handle for direct calls (tokenize, info, score, ...): a swap
 * waits until every lease is returned. Blocks while a swap runs. Return the lease with
 * chaski_host_model_unlease. Errors: CHASKI_E_STATE (the host model is broken). */
CHASKI_HOST_API chaski_status chaski_host_model_lease(chaski_host_model *hm, const chaski_api **out_api,
                                                      chaski_model **out_model);
CHASKI_HOST_API void chaski_host_model_unlease(chaski_host_model *hm);

/* ---- host jobs ---- */

/* A host job's events. Pointers in the event are valid during the call. [plugin engine thread]
 * May call chaski_host_job_cancel and chaski_host_job_stats; nothing else of this library. */
typedef void (*chaski_host_event_fn)(void *user_data, chaski_host_job *job, const chaski_event *event);

/* Submit p (its on_event/user_data are ignored: pass on_event here, or NULL to poll). Waits while
 * a swap runs. Errors: those of the plugin's job_submit (message in err). */
CHASKI_HOST_API chaski_status chaski_host_submit(chaski_host_model *hm, const chaski_job_params *p,
                                                 chaski_host_event_fn on_event, void *user_data,
                                                 chaski_host_job **out, char *err, size_t err_cap);
/* As the plugin's job_poll; the event's pointers stay valid until the next poll or release.
 * [not concurrently with poll or release of the same job] */
CHASKI_HOST_API chaski_status chaski_host_job_poll(chaski_host_job *j, chaski_event *out, uint32_t timeout_ms);
/* CHASKI_OK once finished, CHASKI_NO_EVENT on timeout (UINT32_MAX waits forever). [not from a callback] */
CHASKI_HOST_API chaski_status chaski_host_job_wait(chaski_host_job *j, uint32_t timeout_ms);
CHASKI_HOST_API chaski_status chaski_host_job_cancel(chaski_host_job *j);
/* Live stats while running, the final snapshot after. */
CHASKI_HOST_API chaski_status chaski_host_job_stats(chaski_host_job *j, chaski_job_stats *out);
/* The job's error message ("" if none), copied; returns its length. */
CHASKI_HOST_API size_t chaski_host_job_error(chaski_host_job *j, char *buf, size_t cap);
/* Cancel if running, wait, free. j may be NULL. [not from a callback] */
CHASKI_HOST_API void chaski_host_job_release(chaski_host_job *j);

#ifdef __cplusplus
}
#endif
#endif /* CHASKI_HOST_H */
