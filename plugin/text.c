/* text.c: tokenize, detokenize, token-to-piece, chat templates. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CHASKI_HAVE_SCRIPT
#include "script.h"
#endif

chaski_status tx_tokenize(chaski_model *model, const char *text, size_t text_len, uint32_t flags, int32_t *out_ids,
                          size_t cap, size_t *out_n)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if ((!text && text_len) || !out_n || (!out_ids && cap))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "tokenize: text, out_n or out_ids is NULL");
    tok_encode_opts o = tok_encode_opts_default();
    o.add_special = (flags & CHASKI_TOKENIZE_ADD_SPECIAL) != 0;
    o.parse_special = (flags & CHASKI_TOKENIZE_PARSE_SPECIAL) != 0;
    ck_error err;
    ck_error_clear(&err);
    size_t n = 0;
    ck_status st = tok_encode(model->tok, text ? text : "", text_len, &o, out_ids, out_ids ? cap : 0, &n, &err);
    if (st != CK_OK)
        return lerr_fail(&model->err, &err);
    *out_n = n;
    if (out_ids && n > cap)
        return lerr_failf(&model->err, CHASKI_E_BUFFER_TOO_SMALL, "tokenize: %zu ids do not fit a buffer of %zu", n,
                          cap);
    return CHASKI_OK;
}

chaski_status tx_detokenize(chaski_model *model, const int32_t *ids, size_t n_ids, uint32_t flags, char *out,
                            size_t cap, size_t *out_len)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if ((!ids && n_ids) || !out_len || (!out && cap))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "detokenize: ids, out_len or out is NULL");
    ck_error err;
    ck_error_clear(&err);
    size_t n = 0;
    static const int32_t none[1] = {0};
    ck_status st = tok_decode(model->tok, ids ? ids : none, n_ids, (flags & CHASKI_DETOKENIZE_SKIP_SPECIAL) != 0,
                              out, out ? cap : 0, &n, &err);
    if (st != CK_OK)
        return lerr_fail(&model->err, &err);
    *out_len = n;
    if (out && n > cap)
        return lerr_failf(&model->err, CHASKI_E_BUFFER_TOO_SMALL, "detokenize: %zu bytes do not fit a buffer of %zu",
                          n, cap);
    if (out && n < cap)
        out[n] = '\0';
    return CHASKI_OK;
}

chaski_status tx_token_to_piece(chaski_model *model, int32_t token, char *out, size_t cap, size_t *out_len)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if (!out_len || (!out && cap))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "token_to_piece: out_len or out is NULL");
    ck_error err;
    ck_error_clear(&err);
    size_t n = 0;
    ck_status st = tok_token_to_piece(model->tok, token, out, out ? cap : 0, &n, &err);
    if (st != CK_OK)
        return lerr_fail(&model->err, &err);
    *out_len = n;
    if (out && n > cap)
        return lerr_failf(&model->err, CHASKI_E_BUFFER_TOO_SMALL,
                          "token_to_piece: %zu bytes do not fit a buffer of %zu", n, cap);
    if (out && n < cap)
        out[n] = '\0';
    return CHASKI_OK;
}

void tx_chat_params_default(chaski_chat_params *p)
{
    if (!p)
        return;
    chaski_chat_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.add_generation_prompt = 1;
    versioned_out(p, &d, sizeof d);
}

#ifdef CHASKI_HAVE_SCRIPT
/* "llama3" -> "templates/llama3"; paths ("x.lua") and qualified names stay as they are. */
static void template_script_name(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 4 && strcmp(name + n - 4, ".lua") == 0))
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "templates/%s", name);
}

static char *token_text(const tok_tokenizer *t, int32_t id)
{
    const char *s = id >= 0 ? tok_id_to_token(t, id) : NULL;
    return s ? strdup(s) : NULL;
}
#endif

chaski_status tx_chat_apply(chaski_model *model, const chaski_chat_message *messages, size_t n_messages,
                            const chaski_chat_params *hp, char *out, size_t cap, size_t *out_len)
{
    if (!model)
        return CHASKI_E_INVALID_ARGUMENT;
    if ((!messages && n_messages) || !out_len || (!out && cap))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "chat_apply: messages, out_len or out is NULL");
    chaski_chat_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    tx_chat_params_default(&p);
    if (hp && !versioned_in(&p, sizeof p, hp))
        return lerr_failf(&model->err, CHASKI_E_INVALID_ARGUMENT, "chat_apply: params->struct_size is %u",
                          (unsigned)hp->struct_size);
#ifdef CHASKI_HAVE_SCRIPT
    ck_error err;
    ck_error_clear(&err);
    const char *dir = model->rt->script_dir;
    scr_state *st = NULL;
    ck_status s = CK_OK;
    if (p.template_script) {
        s = scr_create(SCR_TEMPLATE, "template script", p.template_script, p.template_script_len, NULL, &st, &err);
    } else {
        char name[512];
        if (p.template_name) {
            template_script_name(p.template_name, name, sizeof name);
        } else {
            const char *tmpl = tok_chat_template(model->tok);
            if (!tmpl)
                return lerr_failf(&model->err, CHASKI_E_MISSING,
                                  "chat_apply: %s has no chat_template in tokenizer_config.json; name a template",
                                  model->dir);
            int found = 0;
            s = scr_template_pick(dir, tmpl, strlen(tmpl), NULL, name, sizeof name, &found, &err);
            if (s == CK_OK && !found)
                return lerr_failf(&model->err, CHASKI_E_MISSING,
                                  "chat_apply: no built-in template recognises the chat_template of %s; name a "
                                  "template (template_name) or pass a template script",
                                  model->dir);
        }
        if (s == CK_OK)
            s = scr_create_named(SCR_TEMPLATE, dir, name, NULL, &st, &err);
    }
    scr_message *msgs = NULL;
    if (s == CK_OK && n_messages) {
        msgs = calloc(n_messages, sizeof *msgs);
        if (!msgs)
            s = ck_fail(&err, CK_E_OUT_OF_MEMORY, "chat_apply: out of memory");
        for (size_t i = 0; msgs && i < n_messages; i++) {
            if (messages[i].struct_size < sizeof(uint32_t) || !messages[i].role ||
                (!messages[i].content && messages[i].content_len)) {
                s = ck_fail(&err, CK_E_INVALID_ARGUMENT, "chat_apply: message %zu has no role or content", i);
                break;
            }
            msgs[i].role = messages[i].role;
            msgs[i].content = messages[i].content ? messages[i].content : "";
            msgs[i].content_len = messages[i].content_len;
        }
    }
    char *text = NULL;
    size_t len = 0;
    char *bos = NULL, *eos = NULL;
    if (s == CK_OK) {
        bos = token_text(model->tok, tok_bos_id(model->tok));
        eos = token_text(model->tok, tok_eos_id(model->tok));
        scr_template_opts o = {.add_generation_prompt = p.add_generation_prompt != 0, .bos_token = bos,
                               .eos_token = eos};
        s = scr_template_render(st, msgs, n_messages, &o, &text, &len, &err);
    }
    free(bos);
    free(eos);
    free(msgs);
    scr_destroy(st);
    if (s != CK_OK) {
        free(text);
        return lerr_fail(&model->err, &err);
    }
    chaski_status cs = copy_out(text, len, out, cap, out_len);
    free(text);
    if (cs != CHASKI_OK)
        lerr_failf(&model->err, cs, "chat_apply: %zu bytes do not fit a buffer of %zu", len, cap);
    return cs;
#else
    (void)out;
    (void)cap;
    return lerr_failf(&model->err, CHASKI_E_UNSUPPORTED, "chat_apply: this plugin was built without Lua templates");
#endif
}
