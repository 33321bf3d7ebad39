/* host_internal.h: the host library's types, shared by its files (never installed). */
#ifndef CHASKI_HOST_INTERNAL_H
#define CHASKI_HOST_INTERNAL_H

#include <pthread.h>

#include "chaski_host.h"

#define HOST_HIDDEN __attribute__((visibility("hidden")))

struct chaski_host_plugin {
    void *handle;            /* dlopen */
    const chaski_api *api;
    char *path;
    int refs;                /* the opener + one per host model using it; guarded by a global lock */
};

HOST_HIDDEN void host_plugin_ref(chaski_host_plugin *p);
HOST_HIDDEN void host_plugin_unref(chaski_host_plugin *p);
HOST_HIDDEN void host_errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
