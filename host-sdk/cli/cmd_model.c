/* cmd_model.c: `chaski info` and `chaski perplexity`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char k_info_help[] =
    "usage: chaski info [options]\n"
    "Prints what the model is (architecture, size, context, vocabulary, special tokens, chat\n"
    "template), its quantization (GPTQ/EXL2: bits per weight in total, per layer and of a quantized\n"
    "lm_head, everything stored counted) and how much memory loading it will take on the backend,\n"
    "without loading the weights.\n" CLI_COMMON_HELP;

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

int cmd_info(int argc, char **argv)
{
    cli_common c = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_info_help, stdout);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski info: unknown option '%s'\n%s", argv[i], k_info_help);
            return 2;
        }
    }
    cli_session s;
    if (!cli_open(&c, 1, &s))
        return 1;
    chaski_model_info mi;
    CHASKI_INIT(&mi);
    s.api->model_info(s.model, &mi);
    /* the estimate needs a runtime of its own (the session's lives inside the host model) */
    const chaski_api *api = s.api;
    chaski_runtime_params rp;
    CHASKI_INIT(&rp);
    api->runtime_params_default(&rp);
    if (c.backend)
        rp.backend = c.backend;
    chaski_runtime *rt = NULL;
    char err[1024];
    int rc = 0;
    chaski_memory_estimate me;
    CHASKI_INIT(&me);
    if (api->runtime_create(&rp, &rt, err, sizeof err) != CHASKI_OK) {
        fprintf(stderr, "chaski info: %s\n", err);
        rc = 1;
    } else {
        chaski_model_params mp;
        CHASKI_INIT(&mp);
        api->model_params_default(&mp);
        mp.path = s.model_dir;
        if (c.n_ctx)
            mp.n_ctx = c.n_ctx;
        if (api->model_estimate(rt, &mp, &me) != CHASKI_OK) {
            api->runtime_last_error(rt, err, sizeof err);
            fprintf(stderr, "chaski info: memory estimate: %s\n", err);
            rc = 1;
        }
    }
    chaski_device_info di;
    CHASKI_INIT(&di);
    if (rt)
        api->device_info(rt, 0, &di);
    if (rc == 0) {
        if (c.json) {
            printf("{\"path\":");
            cli_json_string(stdout, s.model_dir, strlen(s.model_dir));
            printf(",\"architecture\":");
            cli_json_string(stdout, mi.architecture, strlen(mi.architecture));
            printf(",\"parameters\":%llu,\"context_length\":%d,\"vocab_size\":%d,\"bos_id\":%d,\"eos_ids\":[",
                   (unsigned long long)me.n_params, mi.n_ctx_train, mi.vocab_size, mi.bos_id);
            for (int i = 0; i < mi.n_eos; i++)
                printf("%s%d", i ? "," : "", mi.eos_ids[i]);
            printf("],\"layers\":%d,\"hidden_size\":%d,\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,", mi.n_layers,
                   mi.hidden_size, mi.n_heads, mi.n_kv_heads, mi.head_dim);
            printf("\"dtype\":");
            cli_json_string(stdout, mi.dtype, strlen(mi.dtype));
            printf(",\"quantization\":\"%s\",\"has_chat_template\":%s,", mi.quantization,
                   mi.has_chat_template ? "true" : "false");
            printf("\"quant\":{\"params\":%llu,\"bytes\":%llu,\"bits_per_weight\":%.6f,\"head_bits_per_weight\":%.6f,"
                   "\"layer_bits_per_weight\":[",
                   (unsigned long long)me.quant_params, (unsigned long long)me.quant_bytes, me.quant_bits_per_weight,
                   me.head_bits_per_weight);
            for (int i = 0; i < me.n_layer_bits && me.quant_params; i++)
                printf("%s%.6f", i ? "," : "", (double)me.layer_bits_per_weight[i]);
            printf("]},");
            printf("\"memory\":{\"backend\":\"%s\",\"weights_bytes\":%llu,\"kv_bytes\":%llu,\"kv_pages\":%d,"
                   "\"activations_bytes\":%llu,\"total_bytes\":%llu,\"device_free_bytes\":%llu,\"fits\":%s}}\n",
                   di.backend, (unsigned long long)me.weights_bytes, (unsigned long long)me.kv_bytes, me.kv_pages,
                   (unsigned long long)me.activations_bytes, (unsigned long long)me.total_bytes,
                   (unsigned long long)me.device_free_bytes, me.fits ? "true" : "false");
        } else {
            printf("model         %s\n", s.model_dir);
            printf("architecture  %s\n", mi.architecture);
            printf("parameters    %llu (%.2f M)\n", (unsigned long long)me.n_params, (double)me.n_params / 1e6);
            printf("layers        %d (hidden %d, heads %d, kv heads %d, head dim %d)\n", mi.n_layers,
                   mi.hidden_size, mi.n_heads, mi.n_kv_heads, mi.head_dim);
            printf("context       %d tokens (trained)\n", mi.n_ctx_train);
            printf("vocabulary    %d tokens, BOS %d, EOS", mi.vocab_size, mi.bos_id);
            for (int i = 0; i < mi.n_eos; i++)
                printf(" %d", mi.eos_ids[i]);
            printf("\ndtype         %s, quantization %s\n", mi.dtype[0] ? mi.dtype : "(unset)", mi.quantization);
            if (me.quant_params) {
                printf("quantized     %llu parameters in %llu bytes: %.3f bits per weight", (unsigned long long)me.quant_params,
                       (unsigned long long)me.quant_bytes, me.quant_bits_per_weight);
                if (me.head_bits_per_weight > 0)
                    printf(" (lm_head %.3f)", me.head_bits_per_weight);
                printf("\n  per layer  ");
                for (int i = 0; i < me.n_layer_bits; i++)
                    printf("%s%d: %.3f", i ? (i % 8 ? ", " : "\n             ") : "", i,
                           (double)me.layer_bits_per_weight[i]);
                printf("\n");
            }
            printf("chat template %s\n", mi.has_chat_template ? "yes" : "no");
            printf("memory on %s (%s):\n", di.backend, di.name);
            printf("  weights     %.3f GiB\n", gib(me.weights_bytes));
            printf("  KV cache    %.3f GiB (%d pages)\n", gib(me.kv_bytes), me.kv_pages);
            printf("  activations %.3f GiB\n", gib(me.activations_bytes));
            printf("  total       %.3f GiB of %.3f GiB free: %s\n", gib(me.total_bytes), gib(me.device_free_bytes),
                   me.fits ? "fits" : "does NOT fit");
        }
    }
    if (rt)
        api->runtime_destroy(rt);
    cli_close(&s);
    return rc;
}

static const char k_ppl_help[] =
    "usage: chaski perplexity [options] --file TEXT\n"
    "Prints the perplexity of a text file. The file is tokenized without special tokens and cut into\n"
    "consecutive windows of --window tokens (the last partial window is dropped); each window is\n"
    "scored from a fresh context that starts with the model's BOS token (not scored itself), so\n"
    "every token of a window is predicted from the BOS and the tokens before it in its window.\n"
    "perplexity = exp(total negative log-likelihood / tokens scored).\n"
    "\n"
    "\n"
    "With --whole, the file is scored as transformers scores a text that fits the context: tokenized\n"
    "with the tokenizer's default special tokens (BOS where the model has one), every token after the\n"
    "first predicted from all the tokens before it; a file longer than the context (--ctx, default\n"
    "min(trained context, 4096)) is cut into windows of the context length, each scored the same way\n"
    "from its own first token (the last partial window is dropped).\n"
    "\n"
    "  --file TEXT        the text file (required)\n"
    "  --window N         tokens per window (default 256; at most the context length - 1)\n"
    "  --whole            the whole-file definition above instead of BOS-prefixed windows\n" CLI_COMMON_HELP;

int cmd_perplexity(int argc, char **argv)
{
    cli_common c = {0};
    const char *file = NULL;
    long window = 256;
    int whole = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(k_ppl_help, stdout);
            return 0;
        }
        int k = cli_common_arg(&c, argc, argv, &i);
        if (k == 0 && !strcmp(argv[i], "--file") && i + 1 < argc) {
            file = argv[++i];
            k = 1;
        } else if (k == 0 && !strcmp(argv[i], "--whole")) {
            whole = 1;
            k = 1;
        } else if (k == 0 && !strcmp(argv[i], "--window")) {
            if (i + 1 >= argc || !cli_parse_int(argv[i + 1], 2, 1 << 24, &window)) {
                fprintf(stderr, "chaski perplexity: --window needs a number >= 2\n");
                return 2;
            }
            i++;
            k = 1;
        }
        if (k <= 0) {
            if (k == 0)
                fprintf(stderr, "chaski perplexity: unknown option '%s'\n%s", argv[i], k_ppl_help);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "chaski perplexity: --file TEXT is required\n");
        return 2;
    }
    size_t len = 0;
    char *text = cli_read_file(file, &len);
    if (!text)
        return 1;
    cli_session s;
    if (!cli_open(&c, 0, &s)) {
        free(text);
        return 1;
    }
    size_t n = 0;
    int32_t *ids = NULL;
    uint32_t flags = whole ? CHASKI_TOKENIZE_ADD_SPECIAL : 0;
    chaski_status st = s.api->tokenize(s.model, text, len, flags, NULL, 0, &n);
    if (st == CHASKI_OK) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        st = ids ? s.api->tokenize(s.model, text, len, flags, ids, n, &n) : CHASKI_E_OUT_OF_MEMORY;
    }
    chaski_score_result res;
    CHASKI_INIT(&res);
    if (st == CHASKI_OK) {
        chaski_score_params sp;
        CHASKI_INIT(&sp);
        s.api->score_params_default(&sp);
        sp.window = (int32_t)window;
        if (whole) {
            chaski_model_info mi;
            CHASKI_INIT(&mi);
            s.api->model_info(s.model, &mi);
            sp.bos_id = -1; /* the tokenizer's BOS is already in ids; nothing is prepended */
            sp.window = n < (size_t)mi.n_ctx ? (int32_t)n : mi.n_ctx;
            window = sp.window;
        }
        st = s.api->score(s.model, ids, n, &sp, &res);
    }
    int rc = 0;
    if (st != CHASKI_OK) {
        fprintf(stderr, "chaski perplexity: %s\n", cli_model_error(&s));
        rc = 1;
    } else if (c.json) {
        printf("{\"perplexity\":%.10g,\"tokens\":%lld,\"windows\":%lld,\"window\":%ld,\"nll\":%.10g}\n",
               res.perplexity, (long long)res.n_scored, (long long)res.n_windows, window, res.total_nll);
    } else {
        printf("perplexity %.8g (%lld tokens scored in %lld windows of %ld; file %zu tokens)\n", res.perplexity,
               (long long)res.n_scored, (long long)res.n_windows, window, n);
    }
    free(ids);
    free(text);
    cli_close(&s);
    return rc;
}
