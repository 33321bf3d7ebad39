/* abi_test.h: shared setup of the ABI tests: the real plugin, a tiny model in a temp dir. */
#ifndef CHASKI_ABI_TEST_H
#define CHASKI_ABI_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chaski_host.h"
#include "tiny_model.h"

/* Make a fresh temp dir holding a tiny model; returns a malloc'd path. */
static inline char *abi_make_model(uint64_t seed, int max_pos)
{
    char tmpl[] = "/tmp/chaski-abi-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *dir = malloc(strlen(d) + 8);
    assert_non_null(dir);
    sprintf(dir, "%s/m", d);
    char err[512];
    int rc = tiny_model_write(dir, CHASKI_TEST_TOKDIR, seed, max_pos, err, sizeof err);
    if (rc != 0)
        fail_msg("tiny model: %s", err);
    return dir;
}

/* Copy a file (a second build of the plugin, as far as dlopen can tell). */
static inline void abi_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static inline void abi_remove_model(char *dir)
{
    tiny_model_remove(dir);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    rmdir(dir);
    free(dir);
}

/* One plugin, a CPU runtime and a tiny model loaded in it: the fixture of the end-to-end tests. */
typedef struct abi_fixture {
    char *dir;
    chaski_host_plugin *plugin;
    const chaski_api *api;
    chaski_runtime *rt;
    chaski_model *model;
} abi_fixture;

static inline void abi_fixture_open(abi_fixture *f, uint64_t seed, int n_ctx, int page_size, int max_jobs)
{
    char err[1024];
    f->dir = abi_make_model(seed, 512);
    if (chaski_host_open(CHASKI_TEST_PLUGIN, &f->plugin, err, sizeof err) != CHASKI_OK)
        fail_msg("open: %s", err);
    f->api = chaski_host_api(f->plugin);
    chaski_runtime_params rp;
    CHASKI_INIT(&rp);
    f->api->runtime_params_default(&rp);
    rp.backend = "cpu";
    assert_int_equal(f->api->runtime_create(&rp, &f->rt, err, sizeof err), CHASKI_OK);
    chaski_model_params mp;
    CHASKI_INIT(&mp);
    f->api->model_params_default(&mp);
    mp.path = f->dir;
    mp.n_ctx = n_ctx;
    mp.kv_page_size = page_size;
    mp.max_jobs = max_jobs;
    if (f->api->model_load(f->rt, &mp, &f->model) != CHASKI_OK) {
        f->api->runtime_last_error(f->rt, err, sizeof err);
        fail_msg("model_load: %s", err);
    }
}

/* Destroy the runtime (which unloads the model), close the plugin, remove the model files. */
static inline void abi_fixture_close(abi_fixture *f)
{
    f->api->runtime_destroy(f->rt);
    chaski_host_close(f->plugin);
    assert_int_equal(chaski_host_plugins_open(), 0);
    abi_remove_model(f->dir);
}

#endif
