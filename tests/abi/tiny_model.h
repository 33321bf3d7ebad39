/* tiny_model.h: write a tiny random-weight Llama model directory for end-to-end tests. */
#ifndef CHASKI_TEST_TINY_MODEL_H
#define CHASKI_TEST_TINY_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Create dir (which must not exist yet, or be empty) holding config.json, model.safetensors (F32,
 * tied embeddings, weights drawn from `seed`) and the tokenizer files copied from tok_dir
 * (third_party/tokenizers/llama2). max_pos is max_position_embeddings. Returns 0 or -1 with a message
 * in err. */
int tiny_model_write(const char *dir, const char *tok_dir, uint64_t seed, int max_pos, char *err, size_t err_cap);
/* Remove what tiny_model_write created. */
void tiny_model_remove(const char *dir);

#endif
