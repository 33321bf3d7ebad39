/* make_tiny_model: `make_tiny_model DIR TOKENIZER_DIR [SEED]` writes the tiny test model (tiny_model.h). */
#include <stdio.h>
#include <stdlib.h>

#include "tiny_model.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: make_tiny_model DIR TOKENIZER_DIR [SEED]\n");
        return 2;
    }
    char err[512];
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    if (tiny_model_write(argv[1], argv[2], seed, 512, err, sizeof err) != 0) {
        fprintf(stderr, "make_tiny_model: %s\n", err);
        return 1;
    }
    return 0;
}
