/* libFuzzer target: any bytes as config.json (then as generation_config.json on top of a good one).
 * cfg_parse must return a status; an accepted config must satisfy every invariant the loader relies
 * on, and its rope tables must be finite. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg_config c;
    ck_error err;
    if (cfg_parse((const char *)data, size, "fuzz/config.json", &c, &err) == CK_OK) {
        if (c.hidden_size <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads ||
            c.head_dim <= 0 || c.head_dim % 2 || c.vocab_size <= 0 || c.n_layers <= 0 || c.n_eos > CFG_MAX_EOS)
            abort();
        float inv[1024];
        int rot = cfg_rotary_dims(&c);
        if (rot < 0 || rot / 2 > 1024)
            abort();
        float ms = cfg_rope_inv_freq(&c, c.max_position_embeddings + 7, inv);
        (void)ms;
        (void)cfg_context_length(&c);
        cfg_parse_generation((const char *)data, size, "fuzz/generation_config.json", &c, &err);
    }
    return 0;
}
