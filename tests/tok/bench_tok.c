/* bench_tok.c: tokenizer speed (a program, not a test).
 *
 * usage: bench_tok [--loads N] [--load-only] <corpus file or -> <tokenizer dir>...
 * Loads each tokenizer N times (default 5; the files are read each time, so after the
 * first load they come from the page cache) and prints the median load time, wall
 * clock and this thread's CPU time (the CPU figure is the steadier one on a shared
 * machine); then encodes the corpus on one thread (best of 3 runs) and prints MB/s
 * and tokens/s, unless --load-only. With "-" a ~10 MB mixed corpus is generated
 * (prose, code, numbers, CJK, emoji, whitespace runs) from a fixed seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"

static double clock_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
    int loads = 5, load_only = 0, a0 = 1;
    for (; a0 < argc && !strncmp(argv[a0], "--", 2); a0++) {
        if (!strcmp(argv[a0], "--loads") && a0 + 1 < argc) loads = atoi(argv[++a0]);
        else if (!strcmp(argv[a0], "--load-only")) load_only = 1;
        else break;
    }
    if (argc - a0 < 2 || loads < 1 || loads > 1000) {
        fprintf(stderr, "usage: %s [--loads N] [--load-only] <corpus file or -> <tokenizer dir>...\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *text = NULL;
    if (load_only) ;
    else if (!strcmp(argv[a0], "-")) text = make_corpus(10u << 20, &len);
    else {
        FILE *f = fopen(argv[a0], "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", argv[a0]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc(len + 1);
        if (fread(text, 1, len, f) != len) len = 0;
        fclose(f);
    }
    printf("%-40s %10s %12s %10s %12s %12s\n", "tokenizer", "load ms", "load cpu ms", "MB/s", "tokens/s", "tokens");
    double *wall = malloc((size_t)loads * sizeof *wall), *cpu = malloc((size_t)loads * sizeof *cpu);
    for (int a = a0 + 1; a < argc; a++) {
        tok_tokenizer *t = NULL;
        ck_error err;
        int ok = 1;
        for (int r = 0; r < loads && ok; r++) {
            double w0 = now(), c0 = cpu_now();
            if (tok_create_from_dir(argv[a], &t, &err)) {
                fprintf(stderr, "%s: %s\n", argv[a], err.msg);
                ok = 0;
                break;
            }
            cpu[r] = cpu_now() - c0;
            wall[r] = now() - w0;
            if (r + 1 < loads) tok_destroy(t);
        }
        if (!ok) continue;
        double load = median(wall, loads), load_cpu = median(cpu, loads), best = 1e30;
        size_t n = 0;
        tok_encode_opts o = {0, 1};
        for (int r = 0; r < 3 && !load_only; r++) {
            double s = now();
            if (tok_encode(t, text, len, &o, NULL, 0, &n, &err)) {
                fprintf(stderr, "%s: %s\n", argv[a], err.msg);
                break;
            }
            double e = now() - s;
            if (e < best) best = e;
        }
        if (load_only) printf("%-40s %10.1f %12.1f %10s %12s %12s\n", argv[a], load * 1e3, load_cpu * 1e3, "-", "-", "-");
        else
            printf("%-40s %10.1f %12.1f %10.2f %12.0f %12zu\n", argv[a], load * 1e3, load_cpu * 1e3,
                   (double)len / 1e6 / best, (double)n / best, n);
        tok_destroy(t);
    }
    free(wall);
    free(cpu);
    free(text);
    return 0;
}
