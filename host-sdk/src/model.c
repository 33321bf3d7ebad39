/* model.c: host models (a runtime + a model in some plugin), hot-swap, host jobs. */
#include "host_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One queued event with its own copies (host memory: survives the plugin). */
typedef struct hevent {
    chaski_event ev;
    char *text;
    chaski_top_logprob *top;
    struct hevent *next;
} hevent;

struct chaski_host_job {
    chaski_host_model *hm;
    chaski_host_job *prev, *next;   /* hm's list of jobs with a plugin job (guarded by hm->mu) */
    const chaski_api *api;          /* of the plugin running it (guarded by hm->mu) */
    chaski_job *pj;                 /* the plugin's job, NULL once released (guarded by hm->mu) */
    chaski_host_event_fn on_event;
    void *user_data;

    pthread_mutex_t mu;             /* guards the rest */
    pthread_cond_t cv;
    int detached;                   /* its plugin job is released: hm is not touched any more */
    int finished;
    chaski_job_stats final_stats;
    char error[512];
    hevent *head, *tail, *cur;
    int end;
};

struct chaski_host_model {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chaski_host_plugin *plugin;     /* NULL when broken */
    const chaski_api *api;
    chaski_runtime *rt;
    chaski_model *model;
    int swapping;
    int leases;                     /* api calls in flight (lease, submit) */
    uint64_t swaps;
    chaski_host_job *jobs;          /* jobs whose plugin job is not released yet */
    /* copies of the params, reused by swaps */
    chaski_runtime_params rtp;
    int has_rtp;
    char *rt_backend, *rt_script_dir;
    chaski_model_params mp;
    char *path;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Create a runtime and load the model in plugin p. */
static chaski_status load_in(chaski_host_plugin *p, const chaski_runtime_params *rtp, const chaski_model_params *mp,
                             chaski_runtime **out_rt, chaski_model **out_model, char *err, size_t cap)
{
    const chaski_api *api = p->api;
    char msg[1024] = "";
    chaski_runtime *rt = NULL;
    chaski_status st = api->runtime_create(rtp, &rt, msg, sizeof msg);
    if (st != CHASKI_OK) {
        host_errf(err, cap, "plugin '%s': runtime_create: %s", p->path, msg);
        return st;
    }
    chaski_model *m = NULL;
    st = api->model_load(rt, mp, &m);
    if (st != CHASKI_OK) {
        api->runtime_last_error(rt, msg, sizeof msg);
        api->runtime_destroy(rt);
        host_errf(err, cap, "plugin '%s': model_load: %s", p->path, msg);
        return st;
    }
    *out_rt = rt;
    *out_model = m;
    return CHASKI_OK;
}

/* Copy host params into hm (strings duplicated). */
static chaski_status keep_params(chaski_host_model *hm, const chaski_runtime_params *rtp,
                                 const chaski_model_params *mp)
{
    if (rtp) {
        size_t n = rtp->struct_size < sizeof hm->rtp ? rtp->struct_size : sizeof hm->rtp;
        memset(&hm->rtp, 0, sizeof hm->rtp);
        memcpy(&hm->rtp, rtp, n);
        hm->rtp.struct_size = (uint32_t)n;
        free(hm->rt_backend);
        free(hm->rt_script_dir);
        hm->rt_backend = dup_or_null(rtp->backend);
        hm->rt_script_dir = n >= offsetof(chaski_runtime_params, script_dir) + sizeof(char *)
                                ? dup_or_null(rtp->script_dir)
                                : NULL;
        hm->rtp.backend = hm->rt_backend;
        if (n >= offsetof(chaski_runtime_params, script_dir) + sizeof(char *))
            hm->rtp.script_dir = hm->rt_script_dir;
        hm->has_rtp = 1;
    }
    if (mp) {
        size_t n = mp->struct_size < sizeof hm->mp ? mp->struct_size : sizeof hm->mp;
        memset(&hm->mp, 0, sizeof hm->mp);
        memcpy(&hm->mp, mp, n);
        hm->mp.struct_size = (uint32_t)n;
        free(hm->path);
        hm->path = dup_or_null(mp->path);
        hm->mp.path = hm->path;
        if (mp->path && !hm->path)
            return CHASKI_E_OUT_OF_MEMORY;
    }
    return CHASKI_OK;
}

chaski_status chaski_host_model_open(chaski_host_plugin *p, const chaski_runtime_params *rt_params,
                                     const chaski_model_params *model_params, chaski_host_model **out, char *err,
                                     size_t err_cap)
{
    host_errf(err, err_cap, "%s", "");
    if (!out || !p || !model_params || !model_params->path) {
        host_errf(err, err_cap, "chaski_host_model_open: plugin, model params with a path, and out are required");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    *out = NULL;
    chaski_host_model *hm = calloc(1, sizeof *hm);
    if (!hm) {
        host_errf(err, err_cap, "chaski_host_model_open: out of memory");
        return CHASKI_E_OUT_OF_MEMORY;
    }
    pthread_mutex_init(&hm->mu, NULL);
    pthread_cond_init(&hm->cv, NULL);
    chaski_status st = keep_params(hm, rt_params, model_params);
    if (st == CHASKI_OK)
        st = load_in(p, hm->has_rtp ? &hm->rtp : NULL, &hm->mp, &hm->rt, &hm->model, err, err_cap);
    if (st != CHASKI_OK) {
        if (st == CHASKI_E_OUT_OF_MEMORY && err && !err[0])
            host_errf(err, err_cap, "chaski_host_model_open: out of memory");
        hm->plugin = NULL;
        chaski_host_model_close(hm);
        return st;
    }
    host_plugin_ref(p);
    hm->plugin = p;
    hm->api = p->api;
    *out = hm;
    return CHASKI_OK;
}

chaski_host_plugin *chaski_host_model_plugin(chaski_host_model *hm)
{
    pthread_mutex_lock(&hm->mu);
    chaski_host_plugin *p = hm->plugin;
    pthread_mutex_unlock(&hm->mu);
    return p;
}

uint64_t chaski_host_model_swaps(chaski_host_model *hm)
{
    pthread_mutex_lock(&hm->mu);
    uint64_t n = hm->swaps;
    pthread_mutex_unlock(&hm->mu);
    return n;
}

/* Wait for the host job's FINISHED event. */
static void job_wait_finished(chaski_host_job *j)
{
    pthread_mutex_lock(&j->mu);
    while (!j->finished)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

/* With hm->swapping set and no leases: finish every plugin job (drain or cancel), release them,
 * unload the model, destroy the runtime. hm->mu held on entry and exit. Jobs cannot be freed
 * meanwhile: chaski_host_job_release waits while hm->swapping is set. */
static void retire_plugin_side(chaski_host_model *hm, int cancel)
{
    if (cancel)
        for (chaski_host_job *j = hm->jobs; j; j = j->next)
            hm->api->job_cancel(j->pj);
    for (chaski_host_job *j = hm->jobs; j; j = j->next) {
        pthread_mutex_unlock(&hm->mu);
        job_wait_finished(j);
        pthread_mutex_lock(&hm->mu);
    }
    while (hm->jobs) {
        chaski_host_job *j = hm->jobs;
        hm->jobs = j->next;
        j->next = j->prev = NULL;
        hm->api->job_release(j->pj); /* finished: returns once its last callback has returned */
        j->pj = NULL;
        j->api = NULL;
        pthread_mutex_lock(&j->mu);
        j->detached = 1;
        pthread_mutex_unlock(&j->mu);
    }
    if (hm->api) {
        hm->api->model_unload(hm->model);
        hm->api->runtime_destroy(hm->rt); /* joins every plugin thread */
    }
    hm->model = NULL;
    hm->rt = NULL;
}

void chaski_host_model_close(chaski_host_model *hm)
{
    if (!hm)
        return;
    pthread_mutex_lock(&hm->mu);
    while (hm->swapping || hm->leases)
        pthread_cond_wait(&hm->cv, &hm->mu);
    hm->swapping = 1;
    retire_plugin_side(hm, 1);
    chaski_host_plugin *p = hm->plugin;
    hm->plugin = NULL;
    hm->api = NULL;
    pthread_mutex_unlock(&hm->mu);
    if (p)
        host_plugin_unref(p);
    free(hm->rt_backend);
    free(hm->rt_script_dir);
    free(hm->path);
    pthread_cond_destroy(&hm->cv);
    pthread_mutex_destroy(&hm->mu);
    free(hm);
}

chaski_status chaski_host_model_swap(chaski_host_model *hm, chaski_host_plugin *to,
                                     const chaski_runtime_params *rt_params, int policy, char *err, size_t err_cap)
{
    host_errf(err, err_cap, "%s", "");
    if (!hm || !to || (policy != CHASKI_HOST_SWAP_DRAIN && policy != CHASKI_HOST_SWAP_CANCEL)) {
        host_errf(err, err_cap, "chaski_host_model_swap: model, target plugin and a policy (drain or cancel) are required");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&hm->mu);
    while (hm->swapping)
        pthread_cond_wait(&hm->cv, &hm->mu);
    if (!hm->plugin) {
        pthread_mutex_unlock(&hm->mu);
        host_errf(err, err_cap, "chaski_host_model_swap: the host model is broken (an earlier swap failed twice)");
        return CHASKI_E_STATE;
    }
    hm->swapping = 1; /* new submits and leases wait from here */
    while (hm->leases)
        pthread_cond_wait(&hm->cv, &hm->mu);
    retire_plugin_side(hm, policy == CHASKI_HOST_SWAP_CANCEL);
    chaski_host_plugin *old = hm->plugin;
    chaski_status st = CHASKI_OK;
    if (rt_params)
        st = keep_params(hm, rt_params, NULL);
    chaski_runtime *rt = NULL;
    chaski_model *m = NULL;
    if (st == CHASKI_OK)
        st = load_in(to, hm->has_rtp ? &hm->rtp : NULL, &hm->mp, &rt, &m, err, err_cap);
    chaski_host_plugin *now = to;
    if (st != CHASKI_OK) {
        /* back into the old plugin, so the host keeps a working model */
        char again[256];
        now = old;
        if (load_in(old, hm->has_rtp ? &hm->rtp : NULL, &hm->mp, &rt, &m, again, sizeof again) != CHASKI_OK)
            now = NULL;
    }
    if (now)
        host_plugin_ref(now);
    hm->plugin = now;
    hm->api = now ? now->api : NULL;
    hm->rt = rt;
    hm->model = m;
    if (st == CHASKI_OK)
        hm->swaps++;
    hm->swapping = 0;
    pthread_cond_broadcast(&hm->cv);
    pthread_mutex_unlock(&hm->mu);
    host_plugin_unref(old); /* dlclose when nothing else holds it */
    return st;
}

chaski_status chaski_host_model_lease(chaski_host_model *hm, const chaski_api **out_api, chaski_model **out_model)
{
    if (!hm || !out_api || !out_model)
        return CHASKI_E_INVALID_ARGUMENT;
    pthread_mutex_lock(&hm->mu);
    while (hm->swapping)
        pthread_cond_wait(&hm->cv, &hm->mu);
    if (!hm->plugin) {
        pthread_mutex_unlock(&hm->mu);
        return CHASKI_E_STATE;
    }
    hm->leases++;
    *out_api = hm->api;
    *out_model = hm->model;
    pthread_mutex_unlock(&hm->mu);
    return CHASKI_OK;
}

void chaski_host_model_unlease(chaski_host_model *hm)
{
    pthread_mutex_lock(&hm->mu);
    if (--hm->leases == 0)
        pthread_cond_broadcast(&hm->cv);
    pthread_mutex_unlock(&hm->mu);
}

/* ---- host jobs ---------------------------------------------------------------------------- */

static void hevent_free(hevent *e)
{
    if (e) {
        free(e->text);
        free(e->top);
        free(e);
    }
}

/* [plugin engine thread] */
static void on_plugin_event(void *user_data, chaski_job *pj, const chaski_event *ev)
{
    chaski_host_job *j = user_data;
    /* read only what the plugin's event covers */
    chaski_event e;
    memset(&e, 0, sizeof e);
    memcpy(&e, ev, ev->struct_size < sizeof e ? ev->struct_size : sizeof e);
    e.struct_size = sizeof e;
    if (!e.text)
        e.text_len = 0;
    if (!e.top)
        e.n_top = 0;
    if (e.type == CHASKI_EVENT_FINISHED) {
        /* snapshot what must outlive the plugin's job */
        chaski_job_stats s;
        memset(&s, 0, sizeof s);
        s.struct_size = sizeof s;
        j->api->job_stats(pj, &s);
        s.state = CHASKI_JOB_FINISHED;
        s.finish_reason = e.finish_reason;
        char msg[512] = "";
        if (e.status != CHASKI_OK)
            j->api->job_last_error(pj, msg, sizeof msg);
        pthread_mutex_lock(&j->mu);
        j->final_stats = s;
        memcpy(j->error, msg, sizeof msg);
        pthread_mutex_unlock(&j->mu);
    }
    hevent *q = NULL;
    if (j->on_event) {
        j->on_event(j->user_data, j, &e);
    } else {
        q = calloc(1, sizeof *q);
        if (q) {
            q->ev = e;
            q->text = malloc(e.text_len + 1);
            q->top = e.n_top ? malloc(e.n_top * sizeof *q->top) : NULL;
            if (q->text) {
                if (e.text_len)
                    memcpy(q->text, e.text, e.text_len);
                q->text[e.text_len] = '\0';
            } else {
                q->ev.text_len = 0;
            }
            if (q->top)
                memcpy(q->top, e.top, e.n_top * sizeof *q->top);
            else
                q->ev.n_top = 0;
            q->ev.text = q->text ? q->text : "";
            q->ev.top = q->top;
        }
    }
    pthread_mutex_lock(&j->mu);
    if (q) {
        if (j->tail)
            j->tail->next = q;
        else
            j->head = q;
        j->tail = q;
    }
    if (e.type == CHASKI_EVENT_FINISHED)
        j->finished = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int is_detached(chaski_host_job *j)
{
    pthread_mutex_lock(&j->mu);
    int d = j->detached;
    pthread_mutex_unlock(&j->mu);
    return d;
}

static void host_job_free(chaski_host_job *j)
{
    hevent_free(j->cur);
    while (j->head) {
        hevent *q = j->head;
        j->head = q->next;
        hevent_free(q);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

chaski_status chaski_host_submit(chaski_host_model *hm, const chaski_job_params *p, chaski_host_event_fn on_event,
                                 void *user_data, chaski_host_job **out, char *err, size_t err_cap)
{
    host_errf(err, err_cap, "%s", "");
    if (!hm || !p || !out) {
        host_errf(err, err_cap, "chaski_host_submit: model, params and out are required");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (p->struct_size < offsetof(chaski_job_params, user_data) + sizeof(void *)) {
        host_errf(err, err_cap, "chaski_host_submit: params->struct_size %u is older than ABI 1.0's",
                  (unsigned)p->struct_size);
        return CHASKI_E_INVALID_ARGUMENT;
    }
    chaski_host_job *j = calloc(1, sizeof *j);
    if (!j) {
        host_errf(err, err_cap, "chaski_host_submit: out of memory");
        return CHASKI_E_OUT_OF_MEMORY;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->hm = hm;
    j->on_event = on_event;
    j->user_data = user_data;
    /* the host's params with our callback (copy only what the caller's struct holds) */
    chaski_job_params jp;
    size_t n = p->struct_size < sizeof jp ? p->struct_size : sizeof jp;
    memset(&jp, 0, sizeof jp);
    memcpy(&jp, p, n);
    jp.struct_size = (uint32_t)n;
    jp.on_event = on_plugin_event;
    jp.user_data = j;

    pthread_mutex_lock(&hm->mu);
    while (hm->swapping)
        pthread_cond_wait(&hm->cv, &hm->mu);
    if (!hm->plugin) {
        pthread_mutex_unlock(&hm->mu);
        host_job_free(j);
        host_errf(err, err_cap, "chaski_host_submit: the host model is broken (an earlier swap failed twice)");
        return CHASKI_E_STATE;
    }
    const chaski_api *api = hm->api;
    chaski_model *model = hm->model;
    j->api = api;
    hm->leases++;
    pthread_mutex_unlock(&hm->mu);

    chaski_job *pj = NULL;
    chaski_status st = api->job_submit(model, &jp, &pj);
    if (st != CHASKI_OK) {
        char msg[1024] = "";
        api->model_last_error(model, msg, sizeof msg);
        host_errf(err, err_cap, "%s", msg);
    }

    pthread_mutex_lock(&hm->mu);
    if (st == CHASKI_OK) {
        j->pj = pj;
        j->next = hm->jobs;
        if (hm->jobs)
            hm->jobs->prev = j;
        hm->jobs = j;
    }
    if (--hm->leases == 0)
        pthread_cond_broadcast(&hm->cv);
    pthread_mutex_unlock(&hm->mu);
    if (st != CHASKI_OK) {
        host_job_free(j);
        return st;
    }
    *out = j;
    return CHASKI_OK;
}

static struct timespec deadline_after(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

chaski_status chaski_host_job_poll(chaski_host_job *j, chaski_event *out, uint32_t timeout_ms)
{
    if (!j || !out || out->struct_size < sizeof(uint32_t))
        return CHASKI_E_INVALID_ARGUMENT;
    if (j->on_event)
        return CHASKI_E_STATE;
    struct timespec dl = deadline_after(timeout_ms);
    pthread_mutex_lock(&j->mu);
    hevent_free(j->cur);
    j->cur = NULL;
    while (!j->head && !j->end && timeout_ms != 0) {
        int rc = timeout_ms == UINT32_MAX ? pthread_cond_wait(&j->cv, &j->mu)
                                          : pthread_cond_timedwait(&j->cv, &j->mu, &dl);
        if (rc == ETIMEDOUT)
            break;
    }
    chaski_status st = CHASKI_NO_EVENT;
    if (j->head) {
        hevent *q = j->head;
        j->head = q->next;
        if (!j->head)
            j->tail = NULL;
        j->cur = q;
        if (q->ev.type == CHASKI_EVENT_FINISHED)
            j->end = 1;
        uint32_t size = out->struct_size;
        memcpy(out, &q->ev, size < sizeof q->ev ? size : sizeof q->ev);
        out->struct_size = size;
        st = CHASKI_OK;
    } else if (j->end) {
        st = CHASKI_END;
    }
    pthread_mutex_unlock(&j->mu);
    return st;
}

chaski_status chaski_host_job_wait(chaski_host_job *j, uint32_t timeout_ms)
{
    if (!j)
        return CHASKI_E_INVALID_ARGUMENT;
    struct timespec dl = deadline_after(timeout_ms);
    pthread_mutex_lock(&j->mu);
    while (!j->finished) {
        int rc = timeout_ms == UINT32_MAX ? pthread_cond_wait(&j->cv, &j->mu)
                                          : pthread_cond_timedwait(&j->cv, &j->mu, &dl);
        if (rc == ETIMEDOUT)
            break;
    }
    int fin = j->finished;
    pthread_mutex_unlock(&j->mu);
    return fin ? CHASKI_OK : CHASKI_NO_EVENT;
}

chaski_status chaski_host_job_cancel(chaski_host_job *j)
{
    if (!j)
        return CHASKI_E_INVALID_ARGUMENT;
    if (is_detached(j))
        return CHASKI_OK;
    chaski_host_model *hm = j->hm;
    pthread_mutex_lock(&hm->mu);
    if (j->pj)
        j->api->job_cancel(j->pj);
    pthread_mutex_unlock(&hm->mu);
    return CHASKI_OK;
}

chaski_status chaski_host_job_stats(chaski_host_job *j, chaski_job_stats *out)
{
    if (!j || !out || out->struct_size < sizeof(uint32_t))
        return CHASKI_E_INVALID_ARGUMENT;
    chaski_job_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    pthread_mutex_lock(&j->mu);
    int fin = j->finished;
    if (fin)
        s = j->final_stats;
    pthread_mutex_unlock(&j->mu);
    chaski_status st = CHASKI_OK;
    if (!fin && !is_detached(j)) {
        chaski_host_model *hm = j->hm;
        pthread_mutex_lock(&hm->mu);
        if (j->pj)
            st = j->api->job_stats(j->pj, &s);
        pthread_mutex_unlock(&hm->mu);
    }
    uint32_t size = out->struct_size;
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    out->struct_size = size;
    return st;
}

size_t chaski_host_job_error(chaski_host_job *j, char *buf, size_t cap)
{
    if (!j)
        return 0;
    pthread_mutex_lock(&j->mu);
    size_t n = strlen(j->error);
    if (buf && cap) {
        size_t c = n < cap ? n : cap - 1;
        memcpy(buf, j->error, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

void chaski_host_job_release(chaski_host_job *j)
{
    if (!j)
        return;
    chaski_host_model *hm = j->hm;
    chaski_host_job_cancel(j);
    job_wait_finished(j);
    if (!is_detached(j)) {
        pthread_mutex_lock(&hm->mu);
        while (hm->swapping) /* a swap owns the job list until it ends */
            pthread_cond_wait(&hm->cv, &hm->mu);
        if (j->pj) {
            if (j->prev)
                j->prev->next = j->next;
            else
                hm->jobs = j->next;
            if (j->next)
                j->next->prev = j->prev;
            j->api->job_release(j->pj);
            j->pj = NULL;
        }
        pthread_mutex_unlock(&hm->mu);
    }
    host_job_free(j);
}
