/* cmd_text.c: `chaski tokenize`, `detokenize` and `template` (tokenizer files only). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- a minimal JSON reader for the two inputs these commands take ---- */

typedef struct jr {
    const char *s, *end;
} jr;

static void skip_ws(jr *r)
{
    while (r->s < r->end && (*r->s == ' ' || *r->s == '\n' || *r->s == '\r' || *r->s == '\t'))
        r->s++;
}

static int eat(jr *r, char c)
{
    skip_ws(r);
    if (r->s < r->end && *r->s == c) {
        r->s++;
        return 1;
    }
    return 0;
}

static void put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80)
        out[(*n)++] = (char)cp;
    else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        *v <<= 4;
        if (c >= '0' && c <= '9')
            *v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            *v |= (uint32_t)(c - 'A' + 10);
        else
            return 0;
    }
    return 1;
}

/* A JSON string: malloc'd bytes in *out (NUL-terminated), length in *len. */
static int read_string(jr *r, char **out, size_t *len)
{
    if (!eat(r, '"'))
        return 0;
    char *buf = malloc((size_t)(r->end - r->s) + 1);
    size_t n = 0;
    if (!buf)
        return 0;
    while (r->s < r->end && *r->s != '"') {
        char c = *r->s++;
        if (c != '\\') {
            buf[n++] = c;
            continue;
        }
        if (r->s >= r->end)
            break;
        c = *r->s++;
        switch (c) {
        case 'n': buf[n++] = '\n'; break;
        case 't': buf[n++] = '\t'; break;
        case 'r': buf[n++] = '\r'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'u': {
            uint32_t cp, lo;
            if (r->end - r->s < 4 || !hex4(r->s, &cp)) {
                free(buf);
                return 0;
            }
            r->s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->s >= 6 && r->s[0] == '\\' && r->s[1] == 'u' &&
                hex4(r->s + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r->s += 6;
            }
            put_utf8(buf, &n, cp);
            break;
        }
        default: buf[n++] = c;
        }
    }
    if (!eat(r, '"')) {
        free(buf);
        return 0;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 1;
}

/* ---- tokenize / detokenize ---- */

static const char k_tok_help[] =
    "usage: chaski tokenize [options] < text\n"
    "Reads UTF-8 from stdin and prints the token ids as a JSON array. Needs only the tokenizer\n"
    "files (tokenizer.json, tokenizer_config.json) in the model directory.\n"
    "\n"
    "  --no-special       add no special tokens (no BOS)\n"
    "  --parse-special    turn special-token text (\"<|eot_id|>\") into the special token\n" CLI_COMMON_HELP;

int cmd_tokenize(int argc, char **argv)
{
    cli_common c = {0};
    uint32_t flags = CHASKI_TOKENIZE_ADD_SPECIAL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_tok_help, stdout);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0 && !strcmp(argv[i], "--no-special")) {
            flags &= ~CHASKI_TOKENIZE_ADD_SPECIAL;
            k = 1;
        } else if (k == 0 && !strcmp(argv[i], "--parse-special")) {
            flags |= CHASKI_TOKENIZE_PARSE_SPECIAL;
            k = 1;
        }
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski tokenize: unknown option '%s'\n%s", argv[i], k_tok_help);
            return 2;
        }
    }
    size_t len = 0;
    char *text = cli_read_stream(stdin, &len);
    if (!text) {
        fprintf(stderr, "chaski tokenize: cannot read stdin\n");
        return 1;
    }
    cli_session s;
    if (!cli_open(&c, 1, &s)) {
        free(text);
        return 1;
    }
    size_t n = 0;
    int32_t *ids = NULL;
    chaski_status st = s.api->tokenize(s.model, text, len, flags, NULL, 0, &n);
    if (st == CHASKI_OK) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        st = ids ? s.api->tokenize(s.model, text, len, flags, ids, n, &n) : CHASKI_E_OUT_OF_MEMORY;
    }
    int rc = 0;
    if (st != CHASKI_OK) {
        fprintf(stderr, "chaski tokenize: %s\n", cli_model_error(&s));
        rc = 1;
    } else {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ", %d" : "%d", (int)ids[i]);
        puts("]");
    }
    free(ids);
    free(text);
    cli_close(&s);
    return rc;
}

static const char k_detok_help[] =
    "usage: chaski detokenize [options] < ids.json\n"
    "Reads a JSON array of token ids from stdin and prints the text (no added newline).\n"
    "\n"
    "  --skip-special     leave special tokens out of the text\n" CLI_COMMON_HELP;

int cmd_detokenize(int argc, char **argv)
{
    cli_common c = {0};
    uint32_t flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_detok_help, stdout);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0 && !strcmp(argv[i], "--skip-special")) {
            flags |= CHASKI_DETOKENIZE_SKIP_SPECIAL;
            k = 1;
        }
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski detokenize: unknown option '%s'\n%s", argv[i], k_detok_help);
            return 2;
        }
    }
    size_t len = 0;
    char *in = cli_read_stream(stdin, &len);
    if (!in)
        return 1;
    size_t n = 0, cap = 64;
    int32_t *ids = malloc(cap * sizeof *ids);
    jr r = {in, in + len};
    int ok = ids && eat(&r, '[');
    if (ok && !eat(&r, ']')) {
        for (;;) {
            skip_ws(&r);
            char *e = NULL;
            long v = strtol(r.s, &e, 10);
            if (e == r.s || v < INT32_MIN || v > INT32_MAX) {
                ok = 0;
                break;
            }
            r.s = e;
            if (n == cap) {
                int32_t *p = realloc(ids, cap * 2 * sizeof *p);
                if (!p) {
                    ok = 0;
                    break;
                }
                ids = p;
                cap *= 2;
            }
            ids[n++] = (int32_t)v;
            if (eat(&r, ']'))
                break;
            if (!eat(&r, ',')) {
                ok = 0;
                break;
            }
        }
    }
    free(in);
    if (!ok) {
        fprintf(stderr, "chaski detokenize: stdin is not a JSON array of integers\n");
        free(ids);
        return 1;
    }
    cli_session s;
    if (!cli_open(&c, 1, &s)) {
        free(ids);
        return 1;
    }
    size_t out_len = 0;
    char *text = NULL;
    chaski_status st = s.api->detokenize(s.model, ids, n, flags, NULL, 0, &out_len);
    if (st == CHASKI_OK) {
        text = malloc(out_len + 1);
        st = text ? s.api->detokenize(s.model, ids, n, flags, text, out_len + 1, &out_len) : CHASKI_E_OUT_OF_MEMORY;
    }
    int rc = 0;
    if (st != CHASKI_OK) {
        fprintf(stderr, "chaski detokenize: %s\n", cli_model_error(&s));
        rc = 1;
    } else {
        fwrite(text, 1, out_len, stdout);
    }
    free(text);
    free(ids);
    cli_close(&s);
    return rc;
}

/* ---- template ---- */

static const char k_tmpl_help[] =
    "usage: chaski template [options] --messages FILE.json\n"
    "Renders a chat ([{\"role\": ..., \"content\": ...}, ...]) through a chat template and prints the\n"
    "prompt exactly, with no added newline. Needs only the tokenizer files in the model directory.\n"
    "\n"
    "  --messages FILE.json       the messages (required)\n"
    "  --add-generation-prompt    end with the opening of the assistant's turn\n"
    "  --template NAME|FILE.lua   the template (default: the one matching the model's chat_template)\n"
    CLI_COMMON_HELP;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int cmd_template(int argc, char **argv)
{
    cli_common c = {0};
    const char *messages_file = NULL, *template_arg = NULL;
    int add_gen = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_tmpl_help, stdout);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0 && !strcmp(argv[i], "--add-generation-prompt")) {
            add_gen = 1;
            k = 1;
        } else if (k == 0 && !strcmp(argv[i], "--messages") && i + 1 < argc) {
            messages_file = argv[++i];
            k = 1;
        } else if (k == 0 && !strcmp(argv[i], "--template") && i + 1 < argc) {
            template_arg = argv[++i];
            k = 1;
        }
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski template: unknown option '%s'\n%s", argv[i], k_tmpl_help);
            return 2;
        }
    }
    if (!messages_file) {
        fprintf(stderr, "chaski template: --messages FILE.json is required\n");
        return 2;
    }
    size_t len = 0;
    char *json = cli_read_file(messages_file, &len);
    if (!json)
        return 1;
    /* [{"role": "...", "content": "..."}, ...]; other keys are skipped if they hold strings */
    size_t n = 0, cap = 8;
    chaski_chat_message *msgs = calloc(cap, sizeof *msgs);
    char **owned = calloc(cap * 2, sizeof *owned);
    size_t n_owned = 0;
    jr r = {json, json + len};
    int ok = msgs && owned && eat(&r, '[');
    if (ok && !eat(&r, ']')) {
        for (;;) {
            if (!eat(&r, '{')) {
                ok = 0;
                break;
            }
            if (n == cap) {
                chaski_chat_message *m2 = realloc(msgs, cap * 2 * sizeof *m2);
                char **o2 = m2 ? realloc(owned, cap * 4 * sizeof *o2) : NULL;
                if (m2)
                    msgs = m2;
                if (!o2) {
                    ok = 0;
                    break;
                }
                owned = o2;
                cap *= 2;
            }
            CHASKI_INIT(&msgs[n]);
            while (ok && !eat(&r, '}')) {
                char *key = NULL, *val = NULL;
                size_t kl = 0, vl = 0;
                if (!read_string(&r, &key, &kl) || !eat(&r, ':') || !read_string(&r, &val, &vl)) {
                    free(key);
                    ok = 0;
                    break;
                }
                if (!strcmp(key, "role") && !msgs[n].role) {
                    msgs[n].role = val;
                    owned[n_owned++] = val;
                } else if (!strcmp(key, "content") && !msgs[n].content) {
                    msgs[n].content = val;
                    msgs[n].content_len = vl;
                    owned[n_owned++] = val;
                } else {
                    free(val);
                }
                free(key);
                eat(&r, ',');
            }
            if (!ok)
                break;
            if (!msgs[n].role || !msgs[n].content) {
                ok = 0;
                break;
            }
            n++;
            if (eat(&r, ']'))
                break;
            if (!eat(&r, ',')) {
                ok = 0;
                break;
            }
        }
    }
    free(json);
    int rc = 0;
    cli_session s;
    if (!ok) {
        fprintf(stderr, "chaski template: %s is not a JSON array of {\"role\": string, \"content\": string}\n",
                messages_file);
        rc = 1;
    } else if (!cli_open(&c, 1, &s)) {
        rc = 1;
    } else {
        chaski_chat_params cp;
        CHASKI_INIT(&cp);
        s.api->chat_params_default(&cp);
        cp.add_generation_prompt = add_gen;
        char *script = NULL;
        if (template_arg && ends_with(template_arg, ".lua")) {
            script = cli_read_file(template_arg, &cp.template_script_len);
            cp.template_script = script;
            if (!script)
                rc = 1;
        } else {
            cp.template_name = template_arg;
        }
        size_t out_len = 0;
        char *out = NULL;
        chaski_status st = rc ? CHASKI_E_IO : s.api->chat_apply(s.model, msgs, n, &cp, NULL, 0, &out_len);
        if (st == CHASKI_OK) {
            out = malloc(out_len + 1);
            st = out ? s.api->chat_apply(s.model, msgs, n, &cp, out, out_len + 1, &out_len) : CHASKI_E_OUT_OF_MEMORY;
        }
        if (st == CHASKI_OK) {
            fwrite(out, 1, out_len, stdout);
        } else {
            if (!rc)
                fprintf(stderr, "chaski template: %s\n", cli_model_error(&s));
            rc = 1;
        }
        free(out);
        free(script);
        cli_close(&s);
    }
    for (size_t i = 0; owned && i < n_owned; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    return rc;
}
