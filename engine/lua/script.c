/* script.c: the engine-neutral half of scripting: limits, the run context (budget
 * and deadline accounting), the built-in script catalogue and the directory
 * override, template picking. No Lua here (script_lua.c is the glue). */
#include "script.h"
#include "script_builtin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void scr_limits_default(scr_limits *l)
{
    memset(l, 0, sizeof *l);
    l->struct_size = sizeof *l;
    l->memory_bytes = (size_t)32 << 20;
    l->instructions = 100000000ULL;
    l->deadline_ms = 1000;
}

int64_t scr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void scr_run_begin(scr_run *run, const scr_limits *l)
{
    run->budget = l->instructions;
    run->used = 0;
    run->deadline_ns = scr_now_ns() + (int64_t)l->deadline_ms * 1000000LL;
    run->stopped = 0;
}

int scr_run_tick(scr_run *run, uint64_t n)
{
    if (run->stopped)
        return run->stopped;
    run->used += n;
    if (run->used > run->budget)
        run->stopped = 1;
    else if (scr_now_ns() > run->deadline_ns)
        run->stopped = 2;
    return run->stopped;
}

/* ---- built-in scripts ----------------------------------------------------------- */

size_t scr_builtin_count(void)
{
    return scr_builtin_n_;
}

void scr_builtin_at(size_t i, const char **out_name, const char **out_text, size_t *out_len)
{
    *out_name = scr_builtins_[i].name;
    *out_text = scr_builtins_[i].text;
    *out_len = scr_builtins_[i].len;
}

static ck_status read_file(const char *path, char **out_text, size_t *out_len, int *missing,
                           ck_error *err)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            *missing = 1;
            return CK_E_MISSING;
        }
        return ck_fail(err, CK_E_IO, "%s: %s", path, strerror(errno));
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", path);
        }
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ck_fail(err, CK_E_IO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out_text = buf;
    *out_len = len;
    return CK_OK;
}

ck_status scr_script_text(const char *dir, const char *name, char **out_text, size_t *out_len,
                          ck_error *err)
{
    if (!name || !out_text || !out_len)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script: NULL name or output");
    *out_text = NULL;
    *out_len = 0;
    size_t nl = strlen(name);
    int missing;
    if (nl > 4 && strcmp(name + nl - 4, ".lua") == 0) {
        ck_status st = read_file(name, out_text, out_len, &missing, err);
        if (missing)
            return ck_fail(err, CK_E_MISSING, "script file %s: not found", name);
        return st;
    }
    if (dir) {
        size_t n = strlen(dir) + nl + 6;
        char *path = malloc(n);
        if (!path)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "script: out of memory");
        snprintf(path, n, "%s/%s.lua", dir, name);
        ck_status st = read_file(path, out_text, out_len, &missing, err);
        free(path);
        if (!missing)
            return st;
    }
    for (size_t i = 0; i < scr_builtin_n_; i++) {
        if (strcmp(scr_builtins_[i].name, name) == 0) {
            char *t = malloc(scr_builtins_[i].len + 1);
            if (!t)
                return ck_fail(err, CK_E_OUT_OF_MEMORY, "script: out of memory");
            memcpy(t, scr_builtins_[i].text, scr_builtins_[i].len + 1);
            *out_text = t;
            *out_len = scr_builtins_[i].len;
            return CK_OK;
        }
    }
    return ck_fail(err, CK_E_MISSING, "script '%s': no such script%s%s", name,
                   dir ? " in the built-ins or in " : " among the built-ins", dir ? dir : "");
}

ck_status scr_create_named(scr_kind kind, const char *dir, const char *name,
                           const scr_limits *limits, scr_state **out_state, ck_error *err)
{
    char *text;
    size_t len;
    ck_status st = scr_script_text(dir, name, &text, &len, err);
    if (st != CK_OK)
        return st;
    st = scr_create(kind, name, text, len, limits, out_state, err);
    free(text);
    return st;
}

ck_status scr_template_pick(const char *dir, const char *chat_template, size_t template_len,
                            const scr_limits *limits, char *out_name, size_t name_cap,
                            int *out_found, ck_error *err)
{
    if (!chat_template || !out_name || name_cap == 0 || !out_found)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "template pick: NULL argument");
    *out_found = 0;
    out_name[0] = '\0';
    for (size_t i = 0; i < scr_builtin_n_; i++) {
        const char *name = scr_builtins_[i].name;
        if (strncmp(name, "templates/", 10) != 0)
            continue;
        scr_state *s = NULL;
        ck_error e = {0};
        if (scr_create_named(SCR_TEMPLATE, dir, name, limits, &s, &e) != CK_OK)
            continue;
        int match = 0;
        ck_status st = scr_template_match(s, chat_template, template_len, &match, &e);
        scr_destroy(s);
        if (st == CK_OK && match) {
            if (strlen(name) + 1 > name_cap)
                return ck_fail(err, CK_E_INVALID_ARGUMENT, "template pick: name_cap too small");
            memcpy(out_name, name, strlen(name) + 1);
            *out_found = 1;
            return CK_OK;
        }
    }
    return CK_OK;
}
