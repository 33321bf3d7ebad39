/* plugin.c: open, negotiate, close (the host side of ABI rule 1 and 2). */
#include "host_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_open;

void host_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static void vstr(uint32_t v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u.%u", (unsigned)CHASKI_ABI_VERSION_MAJOR(v), (unsigned)CHASKI_ABI_VERSION_MINOR(v));
}

/* Whether the file starts with the ELF magic. */
static int is_elf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char m[4] = {0};
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
}

chaski_status chaski_host_open_range(const char *path, uint32_t min_version, uint32_t max_version,
                                     chaski_host_plugin **out, char *err, size_t err_cap)
{
    host_errf(err, err_cap, "%s", "");
    if (!out) {
        host_errf(err, err_cap, "chaski_host_open: out is NULL");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!path || !path[0]) {
        host_errf(err, err_cap, "chaski_host_open: no plugin path given");
        return CHASKI_E_INVALID_ARGUMENT;
    }
    char hmin[16], hmax[16];
    vstr(min_version, hmin, sizeof hmin);
    vstr(max_version, hmax, sizeof hmax);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        host_errf(err, err_cap, "plugin '%s': no such file (%s)", path, strerror(errno));
        return CHASKI_E_NOT_FOUND;
    }
    if (!S_ISREG(sb.st_mode)) {
        host_errf(err, err_cap, "plugin '%s': not a shared object (not a regular file)", path);
        return CHASKI_E_NOT_SHARED_OBJECT;
    }
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        host_errf(err, err_cap, "plugin '%s': not a loadable shared object%s (dlopen: %s)", path,
                  is_elf(path) ? "" : " (no ELF header)", why ? why : "unknown error");
        return CHASKI_E_NOT_SHARED_OBJECT;
    }
    dlerror();
    void *sym = dlsym(h, CHASKI_PLUGIN_ENTRY_NAME);
    if (!sym) {
        dlclose(h);
        host_errf(err, err_cap, "plugin '%s': does not export %s (not a chaski plugin)", path,
                  CHASKI_PLUGIN_ENTRY_NAME);
        return CHASKI_E_NO_ENTRY;
    }
    chaski_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer, as POSIX allows */
    char reason[512] = "";
    const chaski_api *api = entry(min_version, max_version, reason, sizeof reason);
    if (!api) {
        dlclose(h);
        host_errf(err, err_cap, "plugin '%s': incompatible ABI: the host speaks %s..%s; the plugin refused: %s", path,
                  hmin, hmax, reason[0] ? reason : "(no reason given)");
        return CHASKI_E_VERSION;
    }
    char pv[16];
    vstr(api->abi_version, pv, sizeof pv);
    if (CHASKI_ABI_VERSION_MAJOR(api->abi_version) < CHASKI_ABI_VERSION_MAJOR(min_version) ||
        CHASKI_ABI_VERSION_MAJOR(api->abi_version) > CHASKI_ABI_VERSION_MAJOR(max_version) ||
        api->abi_version < CHASKI_ABI_VERSION(CHASKI_ABI_VERSION_MAJOR(min_version), 0)) {
        dlclose(h);
        host_errf(err, err_cap, "plugin '%s': incompatible ABI: the plugin answered %s, the host speaks %s..%s", path, pv,
                  hmin, hmax);
        return CHASKI_E_VERSION;
    }
    /* the 1.0 table must be complete: everything up to and including `score` */
    uint32_t table_size = api->struct_size;
    if (table_size < offsetof(chaski_api, score) + sizeof api->score) {
        dlclose(h); /* api points into the object: read nothing from it after this */
        host_errf(err, err_cap, "plugin '%s': ABI %s table of %u bytes is shorter than any 1.x table (%zu)", path, pv,
                  (unsigned)table_size, offsetof(chaski_api, score) + sizeof api->score);
        return CHASKI_E_VERSION;
    }
    chaski_host_plugin *p = calloc(1, sizeof *p);
    char *pcopy = strdup(path);
    if (!p || !pcopy) {
        free(p);
        free(pcopy);
        dlclose(h);
        host_errf(err, err_cap, "chaski_host_open: out of memory");
        return CHASKI_E_OUT_OF_MEMORY;
    }
    p->handle = h;
    p->api = api;
    p->path = pcopy;
    p->refs = 1;
    pthread_mutex_lock(&g_mu);
    g_open++;
    pthread_mutex_unlock(&g_mu);
    *out = p;
    return CHASKI_OK;
}

chaski_status chaski_host_open(const char *path, chaski_host_plugin **out, char *err, size_t err_cap)
{
    return chaski_host_open_range(path, CHASKI_ABI_VERSION(CHASKI_ABI_MAJOR, 0), CHASKI_ABI_CURRENT, out, err,
                                  err_cap);
}

chaski_status chaski_host_open_search(const char *name, const char *search_path, chaski_host_plugin **out, char *err,
                                      size_t err_cap)
{
    if (out)
        *out = NULL;
    if (!name)
        name = "libchaski.so";
    if (!search_path)
        search_path = getenv("CHASKI_PLUGIN_PATH");
    if (!search_path || !search_path[0]) {
        host_errf(err, err_cap, "plugin '%s': no search path (set CHASKI_PLUGIN_PATH or pass one)", name);
        return CHASKI_E_NOT_FOUND;
    }
    const char *s = search_path;
    while (*s) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0) {
            size_t len = n + 1 + strlen(name) + 1;
            char *full = malloc(len);
            if (!full) {
                host_errf(err, err_cap, "chaski_host_open_search: out of memory");
                return CHASKI_E_OUT_OF_MEMORY;
            }
            snprintf(full, len, "%.*s/%s", (int)n, s, name);
            struct stat sb;
            if (stat(full, &sb) == 0) {
                chaski_status st = chaski_host_open(full, out, err, err_cap);
                free(full);
                return st;
            }
            free(full);
        }
        if (!e)
            break;
        s = e + 1;
    }
    host_errf(err, err_cap, "plugin '%s': not found in the search path '%s'", name, search_path);
    return CHASKI_E_NOT_FOUND;
}

void host_plugin_ref(chaski_host_plugin *p)
{
    pthread_mutex_lock(&g_mu);
    p->refs++;
    pthread_mutex_unlock(&g_mu);
}

void host_plugin_unref(chaski_host_plugin *p)
{
    pthread_mutex_lock(&g_mu);
    int last = --p->refs == 0;
    if (last)
        g_open--;
    pthread_mutex_unlock(&g_mu);
    if (!last)
        return;
    /* every runtime of this plugin was destroyed (runtime_destroy joins its threads) */
    dlclose(p->handle);
    free(p->path);
    free(p);
}

void chaski_host_close(chaski_host_plugin *p)
{
    if (p)
        host_plugin_unref(p);
}

const chaski_api *chaski_host_api(const chaski_host_plugin *p)
{
    return p ? p->api : NULL;
}

const char *chaski_host_path(const chaski_host_plugin *p)
{
    return p ? p->path : NULL;
}

uint32_t chaski_host_version(const chaski_host_plugin *p)
{
    return p ? p->api->abi_version : 0;
}

int chaski_host_plugins_open(void)
{
    pthread_mutex_lock(&g_mu);
    int n = g_open;
    pthread_mutex_unlock(&g_mu);
    return n;
}
