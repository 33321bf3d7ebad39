/* cmd_run.c: `chaski run` and `chaski chat`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char k_run_help[] =
    "usage: chaski run [options] --prompt TEXT\n"
    "Generate a continuation of TEXT; only the generated text goes to stdout (statistics to stderr).\n"
    "The prompt is a raw completion prompt with the tokenizer's default special tokens (BOS where\n"
    "the model has one), unless --chat.\n"
    "\n"
    "  --prompt TEXT        the prompt (required)\n"
    "  --max-tokens N       tokens to generate at most (default 128)\n"
    "  --seed N             seed of the sampler's draws (default 0)\n"
    "  --greedy             always pick the most likely token\n"
    "  --temperature T      default 0.8\n"
    "  --top-k K            default 40 (0 = off)\n"
    "  --top-p P            default 0.95 (1 = off)\n"
    "  --min-p P            default 0.05 (0 = off)\n"
    "  --sampler FILE.lua   a Lua sampler script instead of the built-in chain\n"
    "  --stop STR           stop before STR (repeatable)\n"
    "  --stop-script FILE.lua  a Lua stop script\n"
    "  --chat               the prompt becomes one user message through the chat template\n"
    "  --template NAME|FILE.lua  the chat template (default: the one matching the model)\n"
    "  --system TEXT        a system message (with --chat)\n" CLI_COMMON_HELP;

typedef struct gen_opts {
    long max_tokens, seed;
    int greedy, chat;
    double temperature, top_p, min_p;
    long top_k;
    const char *sampler_file, *stop_script_file, *template_arg, *system;
    const char **stops;
    size_t n_stops;
} gen_opts;

static int parse_gen_opt(gen_opts *g, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int ok = 1, takes = 1;
    if (!strcmp(a, "--greedy")) {
        g->greedy = 1;
        takes = 0;
    } else if (!strcmp(a, "--chat")) {
        g->chat = 1;
        takes = 0;
    } else if (!strcmp(a, "--max-tokens"))
        ok = cli_parse_int(v, 1, 1 << 24, &g->max_tokens);
    else if (!strcmp(a, "--seed"))
        ok = cli_parse_int(v, 0, INT64_MAX, &g->seed);
    else if (!strcmp(a, "--temperature"))
        ok = cli_parse_float(v, &g->temperature);
    else if (!strcmp(a, "--top-k"))
        ok = cli_parse_int(v, 0, 1 << 24, &g->top_k);
    else if (!strcmp(a, "--top-p"))
        ok = cli_parse_float(v, &g->top_p);
    else if (!strcmp(a, "--min-p"))
        ok = cli_parse_float(v, &g->min_p);
    else if (!strcmp(a, "--sampler"))
        g->sampler_file = v, ok = v != NULL;
    else if (!strcmp(a, "--stop-script"))
        g->stop_script_file = v, ok = v != NULL;
    else if (!strcmp(a, "--template"))
        g->template_arg = v, ok = v != NULL;
    else if (!strcmp(a, "--system"))
        g->system = v, ok = v != NULL;
    else if (!strcmp(a, "--stop")) {
        ok = v != NULL;
        if (ok) {
            const char **s = realloc(g->stops, (g->n_stops + 1) * sizeof *s);
            if (!s)
                return -1;
            g->stops = s;
            g->stops[g->n_stops++] = v;
        }
    } else
        return 0;
    if (!ok) {
        fprintf(stderr, "chaski: %s needs a valid value\n", a);
        return -1;
    }
    *i += takes;
    return 1;
}

static void gen_defaults(gen_opts *g)
{
    memset(g, 0, sizeof *g);
    g->max_tokens = 128;
    g->temperature = 0.8;
    g->top_k = 40;
    g->top_p = 0.95;
    g->min_p = 0.05;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Render messages through the template; returns a malloc'd prompt or NULL. */
static char *render_chat(cli_session *s, const char *template_arg, const chaski_chat_message *msgs, size_t n,
                         size_t *out_len)
{
    chaski_chat_params cp;
    CHASKI_INIT(&cp);
    s->api->chat_params_default(&cp);
    cp.add_generation_prompt = 1;
    char *script = NULL;
    if (template_arg) {
        if (ends_with(template_arg, ".lua")) {
            script = cli_read_file(template_arg, &cp.template_script_len);
            if (!script)
                return NULL;
            cp.template_script = script;
        } else {
            cp.template_name = template_arg;
        }
    }
    size_t len = 0;
    char *out = NULL;
    chaski_status st = s->api->chat_apply(s->model, msgs, n, &cp, NULL, 0, &len);
    if (st == CHASKI_OK) {
        out = malloc(len + 1);
        st = out ? s->api->chat_apply(s->model, msgs, n, &cp, out, len + 1, &len) : CHASKI_E_OUT_OF_MEMORY;
    }
    free(script);
    if (st != CHASKI_OK) {
        fprintf(stderr, "chaski: chat template: %s\n", cli_model_error(s));
        free(out);
        return NULL;
    }
    *out_len = len;
    return out;
}

static const char *finish_name(uint32_t r)
{
    switch (r) {
    case CHASKI_FINISH_STOP: return "stop";
    case CHASKI_FINISH_LENGTH: return "length";
    case CHASKI_FINISH_CANCELLED: return "cancelled";
    default: return "error";
    }
}

typedef struct gen_result {
    int32_t *tokens;
    size_t n_tokens, cap_tokens;
    char *text;
    size_t text_len, text_cap;
    uint32_t finish;
    chaski_job_stats stats;
    char error[1024];
} gen_result;

static void append_text(gen_result *r, const char *t, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        size_t c = (r->text_len + n + 1) * 2;
        char *p = realloc(r->text, c);
        if (!p)
            return;
        r->text = p;
        r->text_cap = c;
    }
    memcpy(r->text + r->text_len, t, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
}

/* Submit and stream; text goes to `out` as it arrives (NULL: collect only). Returns 0 on success. */
static int generate(cli_session *s, const gen_opts *g, const char *prompt, size_t prompt_len, int raw_prompt,
                    FILE *out, gen_result *r)
{
    memset(r, 0, sizeof *r);
    char *sampler = NULL, *stop_script = NULL;
    chaski_job_params jp;
    CHASKI_INIT(&jp);
    s->api->job_params_default(&jp);
    jp.prompt = prompt;
    jp.prompt_len = prompt_len;
    jp.add_special = raw_prompt;
    jp.parse_special = !raw_prompt;
    jp.max_new_tokens = (int32_t)g->max_tokens;
    jp.seed = (uint64_t)g->seed;
    jp.greedy = g->greedy;
    jp.temperature = (float)g->temperature;
    jp.top_k = (int32_t)g->top_k;
    jp.top_p = (float)g->top_p;
    jp.min_p = (float)g->min_p;
    jp.stop_strings = g->stops;
    jp.n_stop_strings = g->n_stops;
    if (g->sampler_file) {
        sampler = cli_read_file(g->sampler_file, &jp.sampler_script_len);
        if (!sampler)
            return 1;
        jp.sampler_script = sampler;
        jp.sampler_script_name = g->sampler_file;
    }
    if (g->stop_script_file) {
        stop_script = cli_read_file(g->stop_script_file, &jp.stop_script_len);
        if (!stop_script) {
            free(sampler);
            return 1;
        }
        jp.stop_script = stop_script;
    }
    chaski_host_job *job = NULL;
    char err[2048];
    chaski_status st = chaski_host_submit(s->hm, &jp, NULL, NULL, &job, err, sizeof err);
    free(sampler);
    free(stop_script);
    if (st != CHASKI_OK) {
        fprintf(stderr, "chaski: %s: %s\n", s->api->status_name(st), err);
        return 1;
    }
    chaski_event ev;
    CHASKI_INIT(&ev);
    while ((st = chaski_host_job_poll(job, &ev, UINT32_MAX)) == CHASKI_OK) {
        if (ev.type == CHASKI_EVENT_TOKEN && r->n_tokens + 1 > r->cap_tokens) {
            size_t c = r->cap_tokens ? r->cap_tokens * 2 : 64;
            int32_t *p = realloc(r->tokens, c * sizeof *p);
            if (p) {
                r->tokens = p;
                r->cap_tokens = c;
            }
        }
        if (ev.type == CHASKI_EVENT_TOKEN && r->n_tokens < r->cap_tokens)
            r->tokens[r->n_tokens++] = ev.token;
        if (ev.text_len) {
            append_text(r, ev.text, ev.text_len);
            if (out) {
                fwrite(ev.text, 1, ev.text_len, out);
                fflush(out);
            }
        }
        if (ev.type == CHASKI_EVENT_FINISHED)
            r->finish = ev.finish_reason;
    }
    CHASKI_INIT(&r->stats);
    chaski_host_job_stats(job, &r->stats);
    chaski_host_job_error(job, r->error, sizeof r->error);
    chaski_host_job_release(job);
    if (!r->text)
        append_text(r, "", 0);
    return 0;
}

static void print_stats(const gen_result *r)
{
    fprintf(stderr, "\n[chaski] prompt %d tokens, generated %d tokens (%s); ttft %.1f ms, %.2f tokens/s\n",
            r->stats.n_prompt_tokens, r->stats.n_generated_tokens, finish_name(r->finish),
            r->stats.time_to_first_token_ms, r->stats.generate_tokens_per_s);
}

int cmd_run(int argc, char **argv)
{
    cli_common c = {0};
    gen_opts g;
    gen_defaults(&g);
    const char *prompt = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_run_help, stdout);
            free(g.stops);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0)
            k = parse_gen_opt(&g, argc, argv, &i);
        if (k == 0 && !strcmp(argv[i], "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
            k = 1;
        }
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski run: unknown option '%s'\n%s", argv[i], k_run_help);
            free(g.stops);
            return 2;
        }
    }
    if (!prompt) {
        fprintf(stderr, "chaski run: --prompt TEXT is required\n");
        free(g.stops);
        return 2;
    }
    cli_session s;
    if (!cli_open(&c, 0, &s)) {
        free(g.stops);
        return 1;
    }
    char *rendered = NULL;
    size_t plen = strlen(prompt);
    if (g.chat) {
        chaski_chat_message m[2];
        size_t n = 0;
        if (g.system) {
            CHASKI_INIT(&m[n]);
            m[n].role = "system";
            m[n].content = g.system;
            m[n].content_len = strlen(g.system);
            n++;
        }
        CHASKI_INIT(&m[n]);
        m[n].role = "user";
        m[n].content = prompt;
        m[n].content_len = plen;
        n++;
        rendered = render_chat(&s, g.template_arg, m, n, &plen);
        if (!rendered) {
            cli_close(&s);
            free(g.stops);
            return 1;
        }
        prompt = rendered;
    }
    gen_result r;
    int rc = generate(&s, &g, prompt, plen, !g.chat, c.json ? NULL : stdout, &r);
    if (rc == 0) {
        if (c.json) {
            fputs("{\"text\":", stdout);
            cli_json_string(stdout, r.text, r.text_len);
            fputs(",\"tokens\":[", stdout);
            for (size_t i = 0; i < r.n_tokens; i++)
                printf("%s%d", i ? "," : "", (int)r.tokens[i]);
            printf("],\"prompt_tokens\":%d,\"finish_reason\":\"%s\",", r.stats.n_prompt_tokens,
                   finish_name(r.finish));
            printf("\"timings\":{\"queued_ms\":%.3f,\"prefill_ms\":%.3f,\"time_to_first_token_ms\":%.3f,"
                   "\"generate_ms\":%.3f,\"total_ms\":%.3f,\"prefill_tokens_per_s\":%.3f,"
                   "\"generate_tokens_per_s\":%.3f}",
                   r.stats.queued_ms, r.stats.prefill_ms, r.stats.time_to_first_token_ms, r.stats.generate_ms,
                   r.stats.total_ms, r.stats.prefill_tokens_per_s, r.stats.generate_tokens_per_s);
            if (r.finish == CHASKI_FINISH_ERROR) {
                fputs(",\"error\":", stdout);
                cli_json_string(stdout, r.error, strlen(r.error));
            }
            fputs("}\n", stdout);
        } else {
            print_stats(&r);
        }
        if (r.finish == CHASKI_FINISH_ERROR) {
            fprintf(stderr, "chaski: the job failed: %s\n", r.error);
            rc = 1;
        }
    }
    free(r.tokens);
    free(r.text);
    free(rendered);
    free(g.stops);
    cli_close(&s);
    return rc;
}

static const char k_chat_help[] =
    "usage: chaski chat [options]\n"
    "An interactive multi-turn chat through the model's chat template: type a message and press\n"
    "Enter; the answer streams back, followed by a line of tokens/s on stderr. End with EOF (Ctrl-D).\n"
    "\n"
    "  --system TEXT        a system message\n"
    "  --template NAME|FILE.lua  the chat template (default: the one matching the model)\n"
    "  --max-tokens N, --seed N, --greedy, --temperature T, --top-k K, --top-p P, --min-p P,\n"
    "  --sampler FILE.lua, --stop STR, --stop-script FILE.lua   as for `chaski run`\n" CLI_COMMON_HELP;

int cmd_chat(int argc, char **argv)
{
    cli_common c = {0};
    gen_opts g;
    gen_defaults(&g);
    g.max_tokens = 512;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_chat_help, stdout);
            free(g.stops);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0)
            k = parse_gen_opt(&g, argc, argv, &i);
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski chat: unknown option '%s'\n%s", argv[i], k_chat_help);
            free(g.stops);
            return 2;
        }
    }
    cli_session s;
    if (!cli_open(&c, 0, &s)) {
        free(g.stops);
        return 1;
    }
    size_t n = 0, cap = 16;
    chaski_chat_message *msgs = calloc(cap, sizeof *msgs);
    char **owned = calloc(cap, sizeof *owned);
    int rc = msgs && owned ? 0 : 1;
    if (!rc && g.system) {
        CHASKI_INIT(&msgs[n]);
        msgs[n].role = "system";
        msgs[n].content = g.system;
        msgs[n].content_len = strlen(g.system);
        n++;
    }
    int tty = isatty(0);
    char line[8192];
    while (!rc) {
        if (tty)
            fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin))
            break;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len)
            continue;
        if (n + 2 > cap) {
            cap *= 2;
            chaski_chat_message *m2 = realloc(msgs, cap * sizeof *m2);
            if (m2)
                msgs = m2;
            char **o2 = realloc(owned, cap * sizeof *o2);
            if (o2)
                owned = o2;
            if (!m2 || !o2) {
                rc = 1;
                break;
            }
        }
        owned[n] = strdup(line);
        CHASKI_INIT(&msgs[n]);
        msgs[n].role = "user";
        msgs[n].content = owned[n];
        msgs[n].content_len = len;
        n++;
        size_t plen = 0;
        char *prompt = render_chat(&s, g.template_arg, msgs, n, &plen);
        if (!prompt) {
            rc = 1;
            break;
        }
        gen_result r;
        if (generate(&s, &g, prompt, plen, 0, stdout, &r) != 0) {
            free(prompt);
            rc = 1;
            break;
        }
        free(prompt);
        fputc('\n', stdout);
        fprintf(stderr, "[%d tokens, %.2f tokens/s]\n", r.stats.n_generated_tokens, r.stats.generate_tokens_per_s);
        owned[n] = r.text; /* the answer becomes the assistant's turn */
        r.text = NULL;
        CHASKI_INIT(&msgs[n]);
        msgs[n].role = "assistant";
        msgs[n].content = owned[n] ? owned[n] : "";
        msgs[n].content_len = owned[n] ? r.text_len : 0;
        n++;
        free(r.tokens);
    }
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    free(g.stops);
    cli_close(&s);
    return rc;
}
