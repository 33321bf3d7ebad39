/* bench_script.c: per-token cost of Lua samplers over the same chain in C, at a
 * 128k vocabulary (not a test: run by hand, `bench_script [n_steps]`).
 *   C chain        smp_sample with top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
 *   Lua default    samplers/default.lua (ctx:chain(); ctx:pick()) on the same settings
 *   Lua top_k_lua  samplers/top_k_lua.lua with k = 100 (candidates + plain-Lua draw)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script.h"

#define NV 128256

static double run(scr_state *s, smp_state *smp, const float *logits, int steps)
{
    ck_error err = {0};
    int32_t tok;
    int64_t t0 = scr_now_ns();
    for (int i = 0; i < steps; i++) {
        ck_status st = s ? scr_sample(s, smp, logits, NULL, 0, (uint64_t)i, &tok, &err)
                         : smp_sample(smp, logits, NULL, 0, (uint64_t)i, &tok, &err);
        if (st != CK_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
    }
    return (double)(scr_now_ns() - t0) / 1e3 / steps;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 2000;
    float *logits = malloc(NV * sizeof *logits);
    uint64_t x = 12345;
    for (int i = 0; i < NV; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        logits[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 20.0 - 10.0);
    }
    smp_params p;
    smp_params_default(&p);
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.temperature = 0.8f;
    smp_state *smp = NULL;
    ck_error err = {0};
    scr_state *def = NULL, *lk = NULL;
    if (smp_state_create(&p, NV, &smp, &err) != CK_OK ||
        scr_create_named(SCR_SAMPLER, NULL, "samplers/default", NULL, &def, &err) != CK_OK ||
        scr_create_named(SCR_SAMPLER, NULL, "samplers/top_k_lua", NULL, &lk, &err) != CK_OK ||
        scr_set_param_number(lk, "k", 100, &err) != CK_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    run(NULL, smp, logits, steps / 10 + 1); /* warm up */
    /* rounds alternate the variants; the minimum of each is reported, so that a
     * busy machine inflates the figures as little as possible */
    double c = 1e30, l = 1e30, k = 1e30;
    for (int round = 0; round < 5; round++) {
        double t;
        if ((t = run(NULL, smp, logits, steps)) < c) c = t;
        if ((t = run(def, smp, logits, steps)) < l) l = t;
        if ((t = run(lk, smp, logits, steps)) < k) k = t;
    }
    printf("vocab %d, %d steps, best of 5 rounds\n", NV, steps);
    printf("C chain            %8.1f us/token\n", c);
    printf("Lua default.lua    %8.1f us/token (%+.1f over C)\n", l, l - c);
    printf("Lua top_k_lua k100 %8.1f us/token\n", k);
    /* the fixed cost of the Lua call, where the chain itself costs little */
    smp_state *small = NULL;
    if (smp_state_create(&p, 1024, &small, &err) != CK_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double cs = 1e30, ls = 1e30;
    for (int round = 0; round < 5; round++) {
        double t;
        if ((t = run(NULL, small, logits, steps * 10)) < cs) cs = t;
        if ((t = run(def, small, logits, steps * 10)) < ls) ls = t;
    }
    printf("vocab 1024: C chain %.2f us/token, default.lua %.2f us/token (%+.2f: the Lua call)\n",
           cs, ls, ls - cs);
    smp_state_destroy(small);
    scr_destroy(def);
    scr_destroy(lk);
    smp_state_destroy(smp);
    free(logits);
    return 0;
}
