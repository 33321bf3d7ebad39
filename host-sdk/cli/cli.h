/* cli.h: the chaski command-line host, built only on the host SDK. */
#ifndef CHASKI_CLI_H
#define CHASKI_CLI_H

#include <stdio.h>

#include "chaski_host.h"

/* Options every subcommand shares. */
typedef struct cli_common {
    const char *plugin;      /* --plugin PATH, or NULL: next to the executable */
    const char *model;       /* --model DIR, or NULL: the bundled model */
    const char *backend;     /* --backend NAME */
    int json;                /* --json */
    int n_ctx;               /* --ctx N */
} cli_common;

/* An open plugin + loaded model, and the lease the command uses. */
typedef struct cli_session {
    chaski_host_plugin *plugin;
    chaski_host_model *hm;
    const chaski_api *api;
    chaski_model *model;
    char model_dir[4096];
} cli_session;

/* Parse a shared option at argv[*i]; returns 1 if consumed (advancing *i), 0 if not, -1 on error. */
int cli_common_arg(cli_common *c, int argc, char **argv, int *i);
/* Open the plugin and load the model (vocab_only for tokenizer-only commands). Prints errors. */
int cli_open(const cli_common *c, int vocab_only, cli_session *s);
void cli_close(cli_session *s);
/* The last error of the session's model. */
const char *cli_model_error(cli_session *s);

/* helpers */
char *cli_read_file(const char *path, size_t *len);  /* malloc'd, NUL-terminated; NULL + message on failure */
char *cli_read_stream(FILE *f, size_t *len);
void cli_json_string(FILE *f, const char *s, size_t len);
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double *out);

/* subcommands: return the process exit status */
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_info(int argc, char **argv);

#define CLI_COMMON_HELP                                                                           \
    "  --model DIR        model directory (default: $CHASKI_MODEL, else the bundled model)\n"     \
    "  --plugin PATH      plugin to load (default: libchaski.so next to this executable)\n"      \
    "  --backend NAME     cpu, cuda or auto (default auto)\n"                                    \
    "  --ctx N            context length per job (default: min(trained context, 4096))\n"        \
    "  --json             machine-readable output\n"                                             \
    "  --help             this text\n"

#endif
