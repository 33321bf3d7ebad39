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

#endif
