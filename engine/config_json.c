/* config_json.c: config.json and generation_config.json through cJSON (the only cJSON user of the
 * model loader). Typed getters check each field's type, copy the value out, and name the file and
 * field in every message. */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ck_status cfg_read_file(const char *path, size_t max_bytes, char **out, size_t *len, ck_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ck_fail(err, errno == ENOENT ? CK_E_MISSING : CK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return ck_fail(err, CK_E_IO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    if (size < 0 || (size_t)size > max_bytes) {
        fclose(f);
        return ck_fail(err, CK_E_FORMAT, "%s: size %ld is over the limit of %zu bytes", path, size, max_bytes);
    }
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: cannot allocate %ld bytes", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        return ck_fail(err, CK_E_IO, "%s: short read (%zu of %ld bytes)", path, got, size);
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    return CK_OK;
}

/* ---- typed getters: absent -> default; present with the wrong type -> CK_E_CONFIG ---- */

typedef struct reader {
    const cJSON *obj;
    const char *path;
    const char *prefix; /* "rope_scaling." etc. for messages */
    ck_error *err;
    ck_status st;
} reader;

static const cJSON *field(const reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int get_int(reader *r, const char *key, int def, int required)
{
    if (r->st != CK_OK)
        return def;
    const cJSON *v = field(r, key);
    if (!v) {
        if (required)
            r->st = ck_fail(r->err, CK_E_CONFIG, "%s: field '%s%s' is required (an integer)", r->path, r->prefix, key);
        return def;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < -2147483648.0 || d > 2147483647.0) {
        r->st = ck_fail(r->err, CK_E_CONFIG, "%s: field '%s%s' must be an integer, got %s", r->path, r->prefix, key,
                        cJSON_IsNumber(v) ? "a non-integral or out-of-range number" : "another type");
        return def;
    }
    return (int)d;
}

static double get_num(reader *r, const char *key, double def)
{
    if (r->st != CK_OK)
        return def;
    const cJSON *v = field(r, key);
    if (!v)
        return def;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        r->st = ck_fail(r->err, CK_E_CONFIG, "%s: field '%s%s' must be a finite number", r->path, r->prefix, key);
        return def;
    }
    return v->valuedouble;
}

static int get_bool(reader *r, const char *key, int def)
{
    if (r->st != CK_OK)
        return def;
    const cJSON *v = field(r, key);
    if (!v)
        return def;
    if (!cJSON_IsBool(v)) {
        r->st = ck_fail(r->err, CK_E_CONFIG, "%s: field '%s%s' must be true or false", r->path, r->prefix, key);
        return def;
    }
    return cJSON_IsTrue(v);
}

static const char *get_str(reader *r, const char *key)
{
    if (r->st != CK_OK)
        return NULL;
    const cJSON *v = field(r, key);
    if (!v)
        return NULL;
    if (!cJSON_IsString(v)) {
        r->st = ck_fail(r->err, CK_E_CONFIG, "%s: field '%s%s' must be a string", r->path, r->prefix, key);
        return NULL;
    }
    return v->valuestring;
}

static void add_eos(cfg_config *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return;
    if (c->n_eos < CFG_MAX_EOS)
        c->eos_ids[c->n_eos++] = id;
}

/* eos_token_id: an int or a list of ints. */
static ck_status read_eos(const cJSON *obj, const char *path, cfg_config *c, ck_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "eos_token_id");
    if (!v || cJSON_IsNull(v))
        return CK_OK;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 2147483647.0)
            return ck_fail(err, CK_E_CONFIG, "%s: field 'eos_token_id' must be a non-negative integer", path);
        add_eos(c, (int)v->valuedouble);
        return CK_OK;
    }
    if (!cJSON_IsArray(v))
        return ck_fail(err, CK_E_CONFIG, "%s: field 'eos_token_id' must be an integer or a list of integers", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 2147483647.0)
            return ck_fail(err, CK_E_CONFIG, "%s: field 'eos_token_id' holds a non-integer element", path);
        add_eos(c, (int)e->valuedouble);
    }
    return CK_OK;
}

static ck_status read_rope(const cJSON *root, const char *path, cfg_config *c, ck_error *err)
{
    cfg_rope *rp = &c->rope;
    reader top = {root, path, "", err, CK_OK};
    rp->type = CFG_ROPE_DEFAULT;
    rp->theta = get_num(&top, "rope_theta", 10000.0);
    rp->partial_rotary_factor = get_num(&top, "partial_rotary_factor", 1.0);
    rp->factor = 1.0;
    rp->beta_fast = 32.0;
    rp->beta_slow = 1.0;
    rp->truncate = true;
    rp->original_max_position = c->max_position_embeddings;
    if (top.st != CK_OK)
        return top.st;

    /* transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; older files rope_scaling. */
    const char *key = "rope_scaling";
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rs && !cJSON_IsNull(rs))
        key = "rope_parameters";
    else
        rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs))
        return CK_OK;
    if (!cJSON_IsObject(rs))
        return ck_fail(err, CK_E_CONFIG, "%s: field '%s' must be an object or null", path, key);

    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", key);
    reader r = {rs, path, prefix, err, CK_OK};
    const char *type = get_str(&r, "rope_type");
    if (!type)
        type = get_str(&r, "type");
    rp->theta = get_num(&r, "rope_theta", rp->theta);
    rp->partial_rotary_factor = get_num(&r, "partial_rotary_factor", rp->partial_rotary_factor);
    if (r.st != CK_OK)
        return r.st;
    if (!type || !strcmp(type, "default"))
        return CK_OK;

    rp->factor = get_num(&r, "factor", 1.0);
    if (!strcmp(type, "linear")) {
        rp->type = CFG_ROPE_LINEAR;
    } else if (!strcmp(type, "dynamic")) {
        rp->type = CFG_ROPE_DYNAMIC;
    } else if (!strcmp(type, "llama3")) {
        rp->type = CFG_ROPE_LLAMA3;
        rp->low_freq_factor = get_num(&r, "low_freq_factor", 1.0);
        rp->high_freq_factor = get_num(&r, "high_freq_factor", 4.0);
        rp->original_max_position = get_int(&r, "original_max_position_embeddings", 8192, 0);
        if (r.st == CK_OK && rp->high_freq_factor <= rp->low_freq_factor)
            return ck_fail(err, CK_E_CONFIG, "%s: %shigh_freq_factor (%g) must exceed low_freq_factor (%g)", path,
                           prefix, rp->high_freq_factor, rp->low_freq_factor);
    } else if (!strcmp(type, "yarn")) {
        rp->type = CFG_ROPE_YARN;
        rp->original_max_position = get_int(&r, "original_max_position_embeddings", c->max_position_embeddings, 0);
        rp->beta_fast = get_num(&r, "beta_fast", 32.0);
        rp->beta_slow = get_num(&r, "beta_slow", 1.0);
        rp->attention_factor = get_num(&r, "attention_factor", 0.0);
        rp->mscale = get_num(&r, "mscale", 0.0);
        rp->mscale_all_dim = get_num(&r, "mscale_all_dim", 0.0);
        rp->truncate = get_bool(&r, "truncate", 1);
    } else {
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: %srope_type '%s' is not supported (supported: default, linear, "
                       "dynamic, yarn, llama3)", path, prefix, type);
    }
    if (r.st != CK_OK)
        return r.st;
    if (!(rp->factor > 0.0))
        return ck_fail(err, CK_E_CONFIG, "%s: %sfactor must be positive, got %g", path, prefix, rp->factor);
    return CK_OK;
}

static ck_status check_config(const cfg_config *c, const char *path, ck_error *err)
{
    struct { const char *name; int v; } pos[] = {
        {"hidden_size", c->hidden_size}, {"intermediate_size", c->intermediate_size},
        {"num_hidden_layers", c->n_layers}, {"num_attention_heads", c->n_heads},
        {"num_key_value_heads", c->n_kv_heads}, {"head_dim", c->head_dim}, {"vocab_size", c->vocab_size},
        {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return ck_fail(err, CK_E_CONFIG, "%s: field '%s' must be positive, got %d", path, pos[i].name, pos[i].v);
    if (c->n_heads % c->n_kv_heads)
        return ck_fail(err, CK_E_CONFIG,
                       "%s: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", path, c->n_heads,
                       c->n_kv_heads);
    if (c->head_dim % 2)
        return ck_fail(err, CK_E_CONFIG, "%s: head_dim (%d) must be even for rotary embeddings", path, c->head_dim);
    /* Limits that keep every size computed from them inside 64-bit and int ranges. */
    if (c->hidden_size > (1 << 16) || c->intermediate_size > (1 << 18) || c->n_layers > 1024 ||
        c->n_heads > 1024 || c->head_dim > 1024 || c->vocab_size > (1 << 22))
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: dimensions beyond this build's limits (hidden %d, intermediate "
                       "%d, layers %d, heads %d, head_dim %d, vocab %d)", path, c->hidden_size, c->intermediate_size,
                       c->n_layers, c->n_heads, c->head_dim, c->vocab_size);
    if (!(c->rms_norm_eps > 0.0) || c->rms_norm_eps > 1.0)
        return ck_fail(err, CK_E_CONFIG, "%s: rms_norm_eps must be in (0, 1], got %g", path, c->rms_norm_eps);
    if (!(c->rope.theta > 0.0))
        return ck_fail(err, CK_E_CONFIG, "%s: rope_theta must be positive, got %g", path, c->rope.theta);
    if (!(c->rope.partial_rotary_factor > 0.0) || c->rope.partial_rotary_factor > 1.0)
        return ck_fail(err, CK_E_CONFIG, "%s: partial_rotary_factor must be in (0, 1]", path);
    if (c->sliding_window < 0)
        return ck_fail(err, CK_E_CONFIG, "%s: sliding_window must be positive or null, got %d", path,
                       c->sliding_window);
    if (c->bos_token_id >= c->vocab_size)
        return ck_fail(err, CK_E_CONFIG, "%s: bos_token_id %d is outside the vocabulary (%d)", path, c->bos_token_id,
                       c->vocab_size);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] >= c->vocab_size)
            return ck_fail(err, CK_E_CONFIG, "%s: eos_token_id %d is outside the vocabulary (%d)", path,
                           c->eos_ids[i], c->vocab_size);
    return CK_OK;
}

static ck_status parse_root(const cJSON *root, const char *path, cfg_config *c, ck_error *err)
{
    /* Vision-language files nest the text model under text_config. */
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!archs || !cJSON_IsArray(archs) || cJSON_GetArraySize(archs) < 1 ||
        !cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        return ck_fail(err, CK_E_CONFIG, "%s: field 'architectures' must be a non-empty list of strings", path);
    const char *arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    if (!strcmp(arch, "LlamaForCausalLM"))
        c->arch = CFG_ARCH_LLAMA;
    else if (!strcmp(arch, "MistralForCausalLM"))
        c->arch = CFG_ARCH_MISTRAL;
    else if (!strcmp(arch, "Qwen2ForCausalLM"))
        c->arch = CFG_ARCH_QWEN2;
    else
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: LlamaForCausalLM, "
                       "MistralForCausalLM, Qwen2ForCausalLM)", path, arch);
    if (text && cJSON_IsObject(text))
        root = text;

    reader r = {root, path, "", err, CK_OK};
    c->hidden_size = get_int(&r, "hidden_size", 0, 1);
    c->intermediate_size = get_int(&r, "intermediate_size", 0, 1);
    c->n_layers = get_int(&r, "num_hidden_layers", 0, 1);
    c->n_heads = get_int(&r, "num_attention_heads", 0, 1);
    c->n_kv_heads = get_int(&r, "num_key_value_heads", c->n_heads, 0);
    c->vocab_size = get_int(&r, "vocab_size", 0, 1);
    c->max_position_embeddings = get_int(&r, "max_position_embeddings", 2048, 0);
    c->rms_norm_eps = get_num(&r, "rms_norm_eps", 1e-6);
    c->bos_token_id = get_int(&r, "bos_token_id", -1, 0);
    c->tie_word_embeddings = get_bool(&r, "tie_word_embeddings", c->arch == CFG_ARCH_QWEN2 ? 0 : 0);
    int attention_bias = get_bool(&r, "attention_bias", 0);
    c->mlp_bias = get_bool(&r, "mlp_bias", 0);
    const char *dt = get_str(&r, "dtype");
    if (!dt)
        dt = get_str(&r, "torch_dtype");
    const char *hidden_act = get_str(&r, "hidden_act");
    if (r.st != CK_OK)
        return r.st;
    snprintf(c->dtype, sizeof c->dtype, "%s", dt ? dt : "");
    if (hidden_act && strcmp(hidden_act, "silu") != 0)
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", path, hidden_act);

    if (c->n_heads > 0 && c->hidden_size > 0 && !field(&r, "head_dim") && c->hidden_size % c->n_heads)
        return ck_fail(err, CK_E_CONFIG, "%s: num_attention_heads (%d) does not divide hidden_size (%d) and no "
                       "head_dim is given", path, c->n_heads, c->hidden_size);
    c->head_dim = get_int(&r, "head_dim", c->n_heads > 0 ? c->hidden_size / c->n_heads : 0, 0);
    if (r.st != CK_OK)
        return r.st;

    if (c->arch == CFG_ARCH_QWEN2) {
        c->qkv_bias = true; /* Qwen2 always carries q/k/v biases, o_proj none */
        c->o_bias = false;
        int use_sw = get_bool(&r, "use_sliding_window", 0);
        int sw = get_int(&r, "sliding_window", 0, 0);
        if (r.st != CK_OK)
            return r.st;
        if (use_sw)
            return ck_fail(err, CK_E_UNSUPPORTED, "%s: Qwen2 use_sliding_window (per-layer windows) is not supported",
                           path);
        (void)sw;
    } else {
        c->qkv_bias = c->o_bias = attention_bias;
        if (c->arch == CFG_ARCH_MISTRAL)
            c->sliding_window = get_int(&r, "sliding_window", 0, 0);
    }
    if (r.st != CK_OK)
        return r.st;

    ck_status st = read_eos(root, path, c, err);
    if (st == CK_OK)
        st = read_rope(root, path, c, err);
    return st;
}

ck_status cfg_parse(const char *json, size_t len, const char *path, cfg_config *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return ck_fail(err, CK_E_CONFIG, "%s: not valid JSON (near byte %ld)", path,
                       cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L);
    ck_status st;
    if (!cJSON_IsObject(root))
        st = ck_fail(err, CK_E_CONFIG, "%s: the top level must be a JSON object", path);
    else
        st = parse_root(root, path, out, err);
    cJSON_Delete(root);
    if (st == CK_OK)
        st = check_config(out, path, err);
    return st;
}

ck_status cfg_parse_generation(const char *json, size_t len, const char *path, cfg_config *cfg, ck_error *err)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return ck_fail(err, CK_E_CONFIG, "%s: not valid JSON", path);
    ck_status st = cJSON_IsObject(root) ? read_eos(root, path, cfg, err)
                                        : ck_fail(err, CK_E_CONFIG, "%s: the top level must be a JSON object", path);
    cJSON_Delete(root);
    if (st == CK_OK)
        st = check_config(cfg, path, err);
    return st;
}

ck_status cfg_load_dir(const char *dir, cfg_config *out, ck_error *err)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_status st = cfg_read_file(path, 16u << 20, &text, &len, err);
    if (st != CK_OK)
        return st;
    st = cfg_parse(text, len, path, out, err);
    free(text);
    if (st != CK_OK)
        return st;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    ck_error gerr;
    st = cfg_read_file(path, 16u << 20, &text, &len, &gerr);
    if (st == CK_E_MISSING)
        return CK_OK;
    if (st != CK_OK) {
        *err = gerr;
        return st;
    }
    st = cfg_parse_generation(text, len, path, out, err);
    free(text);
    return st;
}

bool cfg_is_eos(const cfg_config *cfg, int id)
{
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_ids[i] == id)
            return true;
    return false;
}
