/* bench_tok.c: tokenizer speed (a program, not a test).
 *
 * usage: bench_tok <corpus file or -> <tokenizer dir>...
 * Encodes the corpus on one thread with each tokenizer (best of 3 runs) and prints
 * load time, MB/s and tokens/s. With "-" a ~10 MB mixed corpus is generated
 * (prose, code, numbers, CJK, emoji, whitespace runs) from a fixed seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *make_corpus(size_t target, size_t *len)
{
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog. ", "It's what they're saying: we've got 12345 reasons.\n",
        "def main(argc, argv):\n    return [x * 2 for x in range(10)]\n", "{\"key\": \"value\", \"n\": [1, 2, 3]}\n",
        "日本語のテキストと中文文本。", "한국어 문장입니다. ", "Привет, мир! Ελληνικά. ", "مرحبا بالعالم ",
        "😀👍🏽 👨‍👩‍👧 ", "    indented\tline\r\n", "Numbers: 3.14159, 2024-06-07, $1,234.56 ", "café naïve résumé ",
    };
    size_t np = sizeof parts / sizeof *parts, n = 0;
    char *s = malloc(target + 256);
    unsigned long x = 12345;
    while (n < target) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        const char *p = parts[(x >> 33) % np];
        size_t l = strlen(p);
        memcpy(s + n, p, l);
        n += l;
    }
    *len = n;
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <corpus file or -> <tokenizer dir>...\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *text;
    if (!strcmp(argv[1], "-")) text = make_corpus(10u << 20, &len);
    else {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", argv[1]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc(len + 1);
        if (fread(text, 1, len, f) != len) len = 0;
        fclose(f);
    }
    printf("%-40s %10s %10s %12s %12s\n", "tokenizer", "load ms", "MB/s", "tokens/s", "tokens");
    for (int a = 2; a < argc; a++) {
        tok_tokenizer *t;
        ck_error err;
        double t0 = now();
        if (tok_create_from_dir(argv[a], &t, &err)) {
            fprintf(stderr, "%s: %s\n", argv[a], err.msg);
            continue;
        }
        double load = now() - t0, best = 1e30;
        size_t n = 0;
        tok_encode_opts o = {0, 1};
        for (int r = 0; r < 3; r++) {
            double s = now();
            if (tok_encode(t, text, len, &o, NULL, 0, &n, &err)) {
                fprintf(stderr, "%s: %s\n", argv[a], err.msg);
                break;
            }
            double e = now() - s;
            if (e < best) best = e;
        }
        printf("%-40s %10.1f %10.2f %12.0f %12zu\n", argv[a], load * 1e3, (double)len / 1e6 / best, (double)n / best, n);
        tok_destroy(t);
    }
    free(text);
    return 0;
}
