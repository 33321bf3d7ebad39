/* runtime.c: runtime create/destroy, devices. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rt_params_default(chaski_runtime_params *p)
{
    if (!p)
        return;
    chaski_runtime_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.backend = "auto";
    d.n_threads = 0;
    d.script_dir = NULL;
    versioned_out(p, &d, sizeof d);
}

chaski_status rt_create(const chaski_runtime_params *hp, chaski_runtime **out, char *errbuf, size_t cap)
{
    if (errbuf && cap)
        errbuf[0] = '\0';
    if (!out) {
        if (errbuf && cap)
            snprintf(errbuf, cap, "runtime_create: out is NULL");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    *out = NULL;
    chaski_runtime_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    rt_params_default(&p);
    if (hp && !versioned_in(&p, sizeof p, hp)) {
        if (errbuf && cap)
            snprintf(errbuf, cap, "runtime_create: params->struct_size is %u (set it, e.g. with CHASKI_INIT)",
                     (unsigned)hp->struct_size);
        return CHASKI_E_INVALID_ARGUMENT;
    }
    const char *want = p.backend ? p.backend : "auto";
    const char *name = strcmp(want, "auto") == 0 ? "cuda" : want;
    ck_error err;
    ck_error_clear(&err);
    be_backend *be = NULL;
    ck_status st = be_create(name, &be, &err);
    if (st != CK_OK && strcmp(want, "auto") == 0) {
        name = "cpu";
        ck_error_clear(&err);
        st = be_create(name, &be, &err);
    }
    if (st != CK_OK) {
        if (errbuf && cap)
            snprintf(errbuf, cap, "runtime_create: %s", err.msg);
        return (chaski_status)st;
    }
    chaski_runtime *rt = calloc(1, sizeof *rt);
    char *dir = p.script_dir ? strdup(p.script_dir) : NULL;
    if (!rt || (p.script_dir && !dir)) {
        free(rt);
        free(dir);
        be_destroy(be);
        if (errbuf && cap)
            snprintf(errbuf, cap, "runtime_create: out of memory");
        return CHASKI_E_OUT_OF_MEMORY;
    }
    rt->be = be;
    snprintf(rt->backend, sizeof rt->backend, "%s", name);
    rt->n_threads = p.n_threads;
    rt->script_dir = dir;
    lerr_init(&rt->err);
    pthread_mutex_init(&rt->mu, NULL);
    *out = rt;
    return CHASKI_OK;
}

void rt_destroy(chaski_runtime *rt)
{
    if (!rt)
        return;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        chaski_model *m = rt->models;
        pthread_mutex_unlock(&rt->mu);
        if (!m)
            break;
        md_unload(m);
    }
    be_destroy(rt->be);
    free(rt->script_dir);
    lerr_destroy(&rt->err);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

size_t rt_last_error(chaski_runtime *rt, char *buf, size_t cap)
{
    if (!rt) {
        if (buf && cap)
            buf[0] = '\0';
        return 0;
    }
    return lerr_get(&rt->err, buf, cap);
}

chaski_status rt_device_count(chaski_runtime *rt, int32_t *out_n)
{
    if (!rt || !out_n)
        return CHASKI_E_INVALID_ARGUMENT;
    *out_n = 1; /* one device per backend in this build */
    return CHASKI_OK;
}

/* MemTotal and MemAvailable from /proc/meminfo, in bytes (0 when unknown). */
static void system_memory(uint64_t *total, uint64_t *avail)
{
    *total = *avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb = 0;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = (uint64_t)kb * 1024u;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *avail = (uint64_t)kb * 1024u;
    }
    fclose(f);
}

chaski_status rt_device_info(chaski_runtime *rt, int32_t index, chaski_device_info *out)
{
    if (!rt || !out)
        return CHASKI_E_INVALID_ARGUMENT;
    if (index != 0)
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "device_info: device %d does not exist (1 device)",
                          (int)index);
    chaski_device_info d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.index = 0;
    snprintf(d.backend, sizeof d.backend, "%s", rt->backend);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(d.name, sizeof d.name, "%s (%ld threads)", strcmp(rt->backend, "cpu") == 0 ? "CPU" : rt->backend,
             n_cpu);
    /* the backend's own figures (cudaMemGetInfo on CUDA, /proc/meminfo on the CPU) */
    size_t free_b = 0, total_b = 0;
    ck_error err;
    if (rt->be && rt->be->ops->mem_info && rt->be->ops->mem_info(rt->be, &free_b, &total_b, &err) == CK_OK &&
        total_b > 0) {
        d.total_bytes = total_b;
        d.free_bytes = free_b;
    } else {
        system_memory(&d.total_bytes, &d.free_bytes);
    }
    if (!versioned_out(out, &d, sizeof d))
        return lerr_failf(&rt->err, CHASKI_E_INVALID_ARGUMENT, "device_info: out->struct_size is %u",
                          (unsigned)out->struct_size);
    return CHASKI_OK;
}
