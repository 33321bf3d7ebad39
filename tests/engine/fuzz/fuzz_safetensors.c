/* libFuzzer target: any bytes as a safetensors file. st_open_memory must return a status (never
 * crash, never read outside the buffer: ASan runs with it) and, when it accepts the file, every
 * tensor it hands out must lie inside the buffer and convert cleanly when it is a float type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    st_file *f = NULL;
    ck_error err;
    if (st_open_memory(copy, size, "fuzz.safetensors", &f, &err) == CK_OK) {
        for (size_t i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_at(f, i);
            if (t->data < copy || t->data + t->n_bytes > copy + size)
                abort(); /* a validated tensor outside the file: the bug this target hunts */
            if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) && t->n_elems && t->n_elems < 4096) {
                float *out = malloc(t->n_elems * sizeof *out);
                if (out && st_to_f32(t, 0, t->n_elems, out, &err) != CK_OK)
                    abort();
                free(out);
            }
        }
        st_close(f);
    }
    free(copy);
    return 0;
}
