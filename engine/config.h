/* config.h: a model's config.json (and generation_config.json), parsed and checked (prefix cfg_).
 * Only config_json.c touches cJSON; everything else sees this plain struct. */
#ifndef CK_CONFIG_H
#define CK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "ck_error.h"

typedef enum cfg_arch { CFG_ARCH_LLAMA, CFG_ARCH_MISTRAL, CFG_ARCH_QWEN2 } cfg_arch;

typedef enum cfg_rope_type {
    CFG_ROPE_DEFAULT,
    CFG_ROPE_LINEAR,
    CFG_ROPE_DYNAMIC, /* dynamic NTK: base grows with the sequence past the original length */
    CFG_ROPE_YARN,
    CFG_ROPE_LLAMA3,
} cfg_rope_type;

typedef struct cfg_rope {
    cfg_rope_type type;
    double theta;                    /* rope_theta (default 10000) */
    double factor;                   /* scaling factor (linear, dynamic, yarn, llama3) */
    double low_freq_factor;          /* llama3 */
    double high_freq_factor;         /* llama3 */
    int original_max_position;       /* llama3, yarn (and dynamic: max_position_embeddings) */
    double beta_fast, beta_slow;     /* yarn (32, 1) */
    double attention_factor;         /* yarn: multiplies cos and sin; <= 0 means "derive from factor" */
    double mscale, mscale_all_dim;   /* yarn (DeepSeek-style), 0 when absent */
    bool truncate;                   /* yarn: floor/ceil the correction range (default true) */
    double partial_rotary_factor;    /* fraction of head_dim that rotates (default 1) */
} cfg_rope;

#define CFG_MAX_EOS 16

typedef struct cfg_config {
    cfg_arch arch;
    char arch_name[64];         /* architectures[0] as written */
    int hidden_size;
    int intermediate_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;               /* explicit head_dim, or hidden_size / n_heads */
    int vocab_size;
    int max_position_embeddings;
    double rms_norm_eps;
    cfg_rope rope;
    int sliding_window;         /* 0 = full attention */
    bool qkv_bias;              /* q, k, v projections have a bias (Qwen2; Llama attention_bias) */
    bool o_bias;                /* o_proj has a bias (Llama attention_bias) */
    bool mlp_bias;              /* gate, up, down have a bias (Llama mlp_bias) */
    bool tie_word_embeddings;
    int bos_token_id;           /* -1 if none */
    int eos_ids[CFG_MAX_EOS];   /* config.json's and generation_config.json's, deduplicated */
    int n_eos;
    char dtype[16];             /* torch_dtype / dtype as written ("bfloat16"), or "" */
} cfg_config;

/* Parse config.json text. `path` names the file in messages. */
ck_status cfg_parse(const char *json, size_t len, const char *path, cfg_config *out, ck_error *err);

/* Add the EOS ids of a generation_config.json text (an int or a list) to cfg. */
ck_status cfg_parse_generation(const char *json, size_t len, const char *path, cfg_config *cfg, ck_error *err);

/* Read dir/config.json and, if present, dir/generation_config.json. */
ck_status cfg_load_dir(const char *dir, cfg_config *out, ck_error *err);

/* Whether id is one of the EOS ids. */
bool cfg_is_eos(const cfg_config *cfg, int id);

/* The longest sequence the model accepts: max_position_embeddings, or for dynamic NTK and YaRN the
 * original length times the scaling factor (their reason to exist). */
int cfg_context_length(const cfg_config *cfg);

/* Number of dims of each head that rotate (head_dim * partial_rotary_factor, even). */
int cfg_rotary_dims(const cfg_config *cfg);

/* Fill inv_freq[rot/2] for a sequence whose longest position + 1 is seq_len (dynamic NTK uses it);
 * returns the factor that multiplies cos and sin (YaRN's attention factor, else 1). */
float cfg_rope_inv_freq(const cfg_config *cfg, int seq_len, float *inv_freq);

/* Read a whole small file (config, index, tokenizer) into a NUL-terminated buffer. */
ck_status cfg_read_file(const char *path, size_t max_bytes, char **out, size_t *len, ck_error *err);

#endif
