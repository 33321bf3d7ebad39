/* main.c: the `chaski` command: subcommand dispatch, plugin and model discovery. */
#include <dirent.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#ifndef CHASKI_SOURCE_DIR
#define CHASKI_SOURCE_DIR "."
#endif

static const char k_usage[] =
    "usage: chaski <command> [options]\n"
    "\n"
    "commands:\n"
    "  run          generate text from a prompt (streamed to stdout)\n"
    "  chat         interactive multi-turn chat through the model's chat template\n"
    "  tokenize     UTF-8 on stdin -> JSON array of ids\n"
    "  detokenize   JSON array of ids on stdin -> text\n"
    "  template     render a chat (messages JSON) through a chat template\n"
    "  perplexity   perplexity of a text file\n"
    "  info         what a model is and how much memory it takes\n"
    "  bench        prompt processing, generation, batch sweep and time to first token against the\n"
    "               device's measured ceilings (runs chaski-bench, built with CUDA; --help for its options)\n"
    "\n"
    "`chaski <command> --help` shows each command's options.\n";

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The directory of this executable (from /proc/self/exe), or "". */
static void exe_dir(char *out, size_t cap)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, cap, "%s", buf);
}

/* The bundled model: the first directory under <root>/models that has a config.json. */
static int find_bundled(const char *root, char *out, size_t cap)
{
    char models[PATH_MAX];
    if (snprintf(models, sizeof models, "%s/models", root) >= (int)sizeof models)
        return 0;
    DIR *d = opendir(models);
    if (!d)
        return 0;
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cfg[PATH_MAX];
        if (snprintf(cfg, sizeof cfg, "%s/%s/config.json", models, e->d_name) >= (int)sizeof cfg)
            continue;
        if (file_exists(cfg) && (!best[0] || strcmp(e->d_name, best) < 0) &&
            snprintf(best, sizeof best, "%s", e->d_name) >= (int)sizeof best)
            best[0] = '\0';
    }
    closedir(d);
    if (!best[0])
        return 0;
    return snprintf(out, cap, "%s/%s", models, best) < (int)cap;
}

static int resolve_model(const cli_common *c, char *out, size_t cap)
{
    if (c->model) {
        snprintf(out, cap, "%s", c->model);
        return 1;
    }
    const char *env = getenv("CHASKI_MODEL");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 1;
    }
    char dir[PATH_MAX], root[PATH_MAX + 8];
    exe_dir(dir, sizeof dir);
    const char *roots[4];
    int n = 0;
    char r1[PATH_MAX + 8], r2[PATH_MAX + 8];
    snprintf(r1, sizeof r1, "%s/..", dir);     /* installed: <prefix>/bin -> <prefix>/models? */
    snprintf(r2, sizeof r2, "%s/../..", dir);  /* build/host-sdk/chaski -> source tree */
    roots[n++] = r2;
    roots[n++] = r1;
    roots[n++] = CHASKI_SOURCE_DIR;
    for (int i = 0; i < n; i++) {
        snprintf(root, sizeof root, "%s", roots[i]);
        if (find_bundled(root, out, cap))
            return 1;
    }
    fprintf(stderr,
            "chaski: no model given and no bundled model found: pass --model DIR or set CHASKI_MODEL. The bundled\n"
            "model is a directory models/<name>/ with config.json, model.safetensors and tokenizer files; looked in\n"
            "%s/models, %s/models and %s/models.\n",
            r2, r1, CHASKI_SOURCE_DIR);
    return 0;
}

static int open_plugin(const cli_common *c, chaski_host_plugin **out)
{
    char err[1024];
    if (c->plugin) {
        if (chaski_host_open(c->plugin, out, err, sizeof err) != CHASKI_OK) {
            fprintf(stderr, "chaski: %s\n", err);
            return 0;
        }
        return 1;
    }
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    char cand[3][PATH_MAX + 32];
    snprintf(cand[0], sizeof cand[0], "%s/../plugin/libchaski.so", dir); /* the build tree */
    snprintf(cand[1], sizeof cand[1], "%s/libchaski.so", dir);
    snprintf(cand[2], sizeof cand[2], "%s/../lib/libchaski.so", dir);    /* an installed prefix */
    for (int i = 0; i < 3; i++)
        if (file_exists(cand[i])) {
            if (chaski_host_open(cand[i], out, err, sizeof err) != CHASKI_OK) {
                fprintf(stderr, "chaski: %s\n", err);
                return 0;
            }
            return 1;
        }
    if (chaski_host_open_search(NULL, NULL, out, err, sizeof err) == CHASKI_OK)
        return 1;
    fprintf(stderr, "chaski: no plugin: looked for %s, %s, %s and in $CHASKI_PLUGIN_PATH (%s); pass --plugin PATH\n",
            cand[0], cand[1], cand[2], err);
    return 0;
}

int cli_common_arg(cli_common *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;
    if (!strcmp(a, "--plugin"))
        slot = &c->plugin;
    else if (!strcmp(a, "--model"))
        slot = &c->model;
    else if (!strcmp(a, "--backend"))
        slot = &c->backend;
    else if (!strcmp(a, "--json")) {
        c->json = 1;
        return 1;
    } else if (!strcmp(a, "--ctx")) {
        long v;
        if (*i + 1 >= argc || !cli_parse_int(argv[*i + 1], 2, 1 << 24, &v)) {
            fprintf(stderr, "chaski: --ctx needs a number >= 2\n");
            return -1;
        }
        c->n_ctx = (int)v;
        (*i)++;
        return 1;
    }
    if (!slot)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "chaski: %s needs a value\n", a);
        return -1;
    }
    *slot = argv[++(*i)];
    return 1;
}

int cli_open(const cli_common *c, int vocab_only, cli_session *s)
{
    memset(s, 0, sizeof *s);
    if (!resolve_model(c, s->model_dir, sizeof s->model_dir))
        return 0;
    if (!open_plugin(c, &s->plugin))
        return 0;
    const chaski_api *api = chaski_host_api(s->plugin);
    chaski_runtime_params rp;
    CHASKI_INIT(&rp);
    api->runtime_params_default(&rp);
    if (c->backend)
        rp.backend = c->backend;
    chaski_model_params mp;
    CHASKI_INIT(&mp);
    api->model_params_default(&mp);
    mp.path = s->model_dir;
    mp.vocab_only = vocab_only;
    if (c->n_ctx)
        mp.n_ctx = c->n_ctx;
    char err[2048];
    if (chaski_host_model_open(s->plugin, &rp, &mp, &s->hm, err, sizeof err) != CHASKI_OK) {
        fprintf(stderr, "chaski: %s\n", err);
        chaski_host_close(s->plugin);
        s->plugin = NULL;
        return 0;
    }
    if (chaski_host_model_lease(s->hm, &s->api, &s->model) != CHASKI_OK) {
        fprintf(stderr, "chaski: the model is not usable\n");
        cli_close(s);
        return 0;
    }
    return 1;
}

void cli_close(cli_session *s)
{
    if (s->model)
        chaski_host_model_unlease(s->hm);
    s->model = NULL;
    chaski_host_model_close(s->hm);
    s->hm = NULL;
    chaski_host_close(s->plugin);
    s->plugin = NULL;
}

const char *cli_model_error(cli_session *s)
{
    static char buf[2048];
    buf[0] = '\0';
    if (s->api && s->model)
        s->api->model_last_error(s->model, buf, sizeof buf);
    return buf;
}

/* `chaski bench`: the benchmark lives in the engine-level program chaski-bench (it builds random
 * models of named shapes directly in GPU memory, which no ABI call should offer); find it beside this
 * executable, in the build tree, or on PATH, and run it with the remaining arguments. */
static int cmd_bench(int argc, char **argv)
{
    char dir[PATH_MAX], path[PATH_MAX + 64];
    const char *env = getenv("CHASKI_BENCH");
    exe_dir(dir, sizeof dir);
    const char *candidates[] = {"%s/chaski-bench", "%s/../tools/bench/chaski-bench"};
    argv[0] = "chaski-bench";
    if (env && *env)
        execv(env, argv);
    for (size_t i = 0; dir[0] && i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(path, sizeof path, candidates[i], dir);
        if (access(path, X_OK) == 0)
            execv(path, argv);
    }
    execvp("chaski-bench", argv);
    fprintf(stderr, "chaski: bench needs the chaski-bench program, which is built only with CUDA "
                    "(-DCHASKI_CUDA=ON); looked beside %s, in its build tree, on PATH and in $CHASKI_BENCH\n",
            dir[0] ? dir : "this executable");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(k_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", cmd_run},           {"chat", cmd_chat},         {"tokenize", cmd_tokenize},
        {"detokenize", cmd_detokenize}, {"template", cmd_template}, {"perplexity", cmd_perplexity},
        {"info", cmd_info},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "chaski: unknown command '%s'\n\n%s", cmd, k_usage);
    return 2;
}
