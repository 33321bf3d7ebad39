/* tiny_model.c: a tiny Llama (2 layers, hidden 32, vocab of the llama2 tokenizer) in safetensors. */
#include "tiny_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TM_VOCAB 32000
#define TM_HIDDEN 32
#define TM_INTER 64
#define TM_LAYERS 2
#define TM_HEADS 4
#define TM_KV_HEADS 2
#define TM_HEAD_DIM (TM_HIDDEN / TM_HEADS)

typedef struct tensor_spec {
    char name[96];
    int64_t rows, cols; /* cols 0: a vector */
    int is_norm;
} tensor_spec;

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s)
{
    return (float)((next_u64(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int copy_file(const char *from, const char *to, char *err, size_t cap)
{
    FILE *in = fopen(from, "rb");
    if (!in) {
        snprintf(err, cap, "cannot open %s: %s", from, strerror(errno));
        return -1;
    }
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        snprintf(err, cap, "cannot create %s: %s", to, strerror(errno));
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    if (rc)
        snprintf(err, cap, "cannot write %s", to);
    return rc;
}

static int list_tensors(tensor_spec *t)
{
    int n = 0;
#define ADD(r, c, norm, ...)                                      \
    do {                                                          \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);       \
        t[n].rows = (r);                                          \
        t[n].cols = (c);                                          \
        t[n].is_norm = (norm);                                    \
        n++;                                                      \
    } while (0)
    ADD(TM_VOCAB, TM_HIDDEN, 0, "model.embed_tokens.weight");
    for (int l = 0; l < TM_LAYERS; l++) {
        ADD(TM_HIDDEN, 0, 1, "model.layers.%d.input_layernorm.weight", l);
        ADD(TM_HEADS * TM_HEAD_DIM, TM_HIDDEN, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(TM_KV_HEADS * TM_HEAD_DIM, TM_HIDDEN, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(TM_KV_HEADS * TM_HEAD_DIM, TM_HIDDEN, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(TM_HIDDEN, TM_HEADS * TM_HEAD_DIM, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(TM_HIDDEN, 0, 1, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(TM_INTER, TM_HIDDEN, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(TM_INTER, TM_HIDDEN, 0, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(TM_HIDDEN, TM_INTER, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(TM_HIDDEN, 0, 1, "model.norm.weight");
#undef ADD
    return n;
}

static int write_safetensors(const char *path, uint64_t seed, char *err, size_t cap)
{
    tensor_spec t[4 + TM_LAYERS * 9];
    int n = list_tensors(t);
    /* header JSON */
    size_t hcap = 16384, hlen = 0;
    char *h = malloc(hcap);
    if (!h) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t elems = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            hlen += (size_t)snprintf(h + hlen, hcap - hlen,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                     i ? "," : "", t[i].name, (long long)t[i].rows, (long long)t[i].cols,
                                     (unsigned long long)off, (unsigned long long)(off + elems * 4));
        else
            hlen += (size_t)snprintf(h + hlen, hcap - hlen,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                     i ? "," : "", t[i].name, (long long)t[i].rows, (unsigned long long)off,
                                     (unsigned long long)(off + elems * 4));
        off += elems * 4;
    }
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "}");
    while (hlen % 8)
        h[hlen++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        snprintf(err, cap, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen;
    free(h);
    uint64_t rng = seed;
    float buf[1024];
    for (int i = 0; ok && i < n; i++) {
        uint64_t elems = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        float scale = t[i].cols ? 1.0f / (float)t[i].cols : 0.0f;
        /* uniform(-a, a) with variance 1/fan_in * 3: a = sqrt(3/fan_in); embeddings larger */
        float a = t[i].cols ? (i == 0 ? 1.0f : 1.7f * sqrtf(scale)) : 0.0f;
        for (uint64_t done = 0; ok && done < elems;) {
            size_t k = elems - done < 1024 ? (size_t)(elems - done) : 1024;
            for (size_t j = 0; j < k; j++)
                buf[j] = t[i].is_norm ? 1.0f + 0.1f * uniform(&rng) : a * uniform(&rng);
            ok = fwrite(buf, sizeof(float), k, f) == k;
            done += k;
        }
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        snprintf(err, cap, "cannot write %s", path);
    return ok ? 0 : -1;
}

int tiny_model_write(const char *dir, const char *tok_dir, uint64_t seed, int max_pos, char *err, size_t cap)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096], from[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, cap, "cannot create %s", path);
        return -1;
    }
    fprintf(f,
            "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%d,"
            "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
            "\"num_key_value_heads\":%d,\"vocab_size\":%d,\"max_position_embeddings\":%d,\"rms_norm_eps\":1e-5,"
            "\"rope_theta\":10000.0,\"bos_token_id\":1,\"eos_token_id\":2,\"tie_word_embeddings\":true,"
            "\"hidden_act\":\"silu\",\"torch_dtype\":\"float32\"}\n",
            TM_HIDDEN, TM_INTER, TM_LAYERS, TM_HEADS, TM_KV_HEADS, TM_VOCAB, max_pos);
    if (fclose(f) != 0) {
        snprintf(err, cap, "cannot write %s", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (write_safetensors(path, seed, err, cap) != 0)
        return -1;
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", tok_dir, files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (copy_file(from, path, err, cap) != 0)
            return -1;
    }
    return 0;
}

void tiny_model_remove(const char *dir)
{
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
    char path[4096];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}
