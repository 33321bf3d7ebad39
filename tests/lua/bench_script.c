/* bench_script.c: per-token cost of Lua samplers over the same chain in C, at a
 * 128k vocabulary and at 1024 (not a test: run by hand, `bench_script [n_steps] [rounds]`).
 *   C chain          smp_sample with top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
 *   Lua default      samplers/default.lua (ctx:chain(); ctx:pick()) on the same settings
 *   Lua primitives   the same stages called one by one from Lua (ctx:top_k(40),
 *                    ctx:top_p(0.95), ctx:min_p(0.05), ctx:temperature(0.8), ctx:sample())
 *   C top-k 100      smp_sample with top-k 100 only, temperature 1 (the work top_k_lua does)
 *   Lua top_k_lua    samplers/top_k_lua.lua with k = 100 (ctx:candidates(100), then the
 *                    softmax and the draw in plain Lua)
 * Times are CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), so that other processes on a
 * shared machine inflate them as little as possible; each round runs every variant for
 * n_steps tokens, and the median over the rounds is reported (with the wall-clock median
 * beside it). The overhead of Lua is the median of the per-round differences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script.h"

#define NV 128256
#define MAX_ROUNDS 101

enum { V_C, V_DEF, V_PRIM, V_CK, V_LK, N_VAR };
static const char *k_names[N_VAR] = {"C chain", "Lua default.lua", "Lua primitives", "C top-k 100",
                                     "Lua top_k_lua k=100"};

static const char k_primitives[] =
    "return { sample = function(ctx)\n"
    "  ctx:top_k(40); ctx:top_p(0.95); ctx:min_p(0.05); ctx:temperature(0.8)\n"
    "  return ctx:sample()\n"
    "end }\n";

static double now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* us per token: *cpu (thread CPU time) and *wall. */
static void run(scr_state *s, smp_state *smp, const float *logits, int steps, double *cpu, double *wall)
{
    ck_error err = {0};
    int32_t tok;
    double c0 = now_ns(CLOCK_THREAD_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < steps; i++) {
        ck_status st = s ? scr_sample(s, smp, logits, NULL, 0, (uint64_t)i, &tok, &err)
                         : smp_sample(smp, logits, NULL, 0, (uint64_t)i, &tok, &err);
        if (st != CK_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
    }
    *cpu = (now_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e3 / steps;
    *wall = (now_ns(CLOCK_MONOTONIC) - w0) / 1e3 / steps;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static smp_state *make_smp(size_t n_vocab, int top_k, float top_p, float min_p, float temp)
{
    smp_params p;
    smp_params_default(&p);
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.temperature = temp;
    smp_state *smp = NULL;
    ck_error err = {0};
    if (smp_state_create(&p, n_vocab, &smp, &err) != CK_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    return smp;
}

static void bench_vocab(size_t nv, const float *logits, int steps, int rounds, scr_state **scripts)
{
    smp_state *chain = make_smp(nv, 40, 0.95f, 0.05f, 0.8f);
    smp_state *k100 = make_smp(nv, 100, 1.0f, 0.0f, 1.0f);
    /* the primitives script sets its own stages: give it a state with none of them on */
    smp_state *bare = make_smp(nv, 0, 1.0f, 0.0f, 1.0f);
    smp_state *smps[N_VAR] = {chain, chain, bare, k100, k100};
    scr_state *scr[N_VAR] = {NULL, scripts[0], scripts[1], NULL, scripts[2]};
    static double cpu[N_VAR][MAX_ROUNDS], wall[N_VAR][MAX_ROUNDS], d_def[MAX_ROUNDS], d_prim[MAX_ROUNDS],
        d_lk[MAX_ROUNDS];
    double c, w;
    for (int v = 0; v < N_VAR; v++)
        run(scr[v], smps[v], logits, steps / 4 + 1, &c, &w); /* warm up */
    for (int r = 0; r < rounds; r++) {
        for (int v = 0; v < N_VAR; v++)
            run(scr[v], smps[v], logits, steps, &cpu[v][r], &wall[v][r]);
        d_def[r] = cpu[V_DEF][r] - cpu[V_C][r];
        d_prim[r] = cpu[V_PRIM][r] - cpu[V_C][r];
        d_lk[r] = cpu[V_LK][r] - cpu[V_CK][r];
    }
    printf("vocab %zu: %d rounds of %d tokens per variant; medians, us/token\n", nv, rounds, steps);
    for (int v = 0; v < N_VAR; v++) {
        double mc = median(cpu[v], rounds), mw = median(wall[v], rounds);
        printf("  %-20s cpu %9.2f   wall %9.2f\n", k_names[v], mc, mw);
    }
    printf("  Lua overhead over the C chain: default.lua %+.2f, primitives %+.2f (budget 50)\n",
           median(d_def, rounds), median(d_prim, rounds));
    printf("  top_k_lua over C top-k 100: %+.2f (its whole cost %.2f; budget 100)\n", median(d_lk, rounds),
           median(cpu[V_LK], rounds));
    smp_state_destroy(chain);
    smp_state_destroy(k100);
    smp_state_destroy(bare);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    int rounds = argc > 2 ? atoi(argv[2]) : 21;
    if (steps < 1) steps = 1;
    if (rounds < 1) rounds = 1;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    float *logits = malloc(NV * sizeof *logits);
    if (!logits)
        return 1;
    uint64_t x = 12345;
    for (int i = 0; i < NV; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        logits[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 20.0 - 10.0);
    }
    ck_error err = {0};
    scr_state *scripts[3] = {NULL, NULL, NULL};
    if (scr_create_named(SCR_SAMPLER, NULL, "samplers/default", NULL, &scripts[0], &err) != CK_OK ||
        scr_create(SCR_SAMPLER, "primitives.lua", k_primitives, sizeof k_primitives - 1, NULL, &scripts[1],
                   &err) != CK_OK ||
        scr_create_named(SCR_SAMPLER, NULL, "samplers/top_k_lua", NULL, &scripts[2], &err) != CK_OK ||
        scr_set_param_number(scripts[2], "k", 100, &err) != CK_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    bench_vocab(NV, logits, steps, rounds, scripts);
    bench_vocab(1024, logits, steps * 20, rounds, scripts);
    for (int i = 0; i < 3; i++)
        scr_destroy(scripts[i]);
    free(logits);
    return 0;
}
