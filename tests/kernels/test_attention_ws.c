/* test_attention_ws.c: gpu_attention_workspace_size(.., max_ctx, ..) is enough for every decode call of the same
 * batch and heads at a context up to max_ctx. The cuda backend sizes one workspace at the model's context and replays
 * decode graphs at every context bucket below it, so the size must never shrink as max_ctx grows; decode attention
 * changes its head grouping at short contexts (attention_decode.cu dec_gt), where a context a little over a short
 * limit can need less than the limit itself. Host code only: it runs without a GPU (the split counts then assume
 * 132 SMs); on a GPU, with the device's count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "cuda_ops.h"

/* the batch sizes and head shapes of Llama-family models: MHA, GQA 2/4/8 (the 8B's 32/8, the 70B's 64/8), MQA */
static const int k_seqs[] = {1, 2, 3, 4, 8, 12, 16, 32, 64, 128, 256};
static const int k_heads[][2] = {{8, 8}, {16, 8}, {32, 8}, {64, 8}, {16, 1}, {32, 1}, {128, 8}};
/* contexts around the short-context limits (256; 8192 for GQA 8) and the split counts' steps, up to 32k */
static const int k_ctx[] = {1, 17, 32, 64, 100, 200, 255, 256, 257, 300, 384, 511, 512, 513, 1000, 1024,
                            2048, 4096, 8191, 8192, 8193, 16384, 32768};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_monotone_in_context(void **state)
{
    (void)state;
    int checked = 0;
    for (int hd = 64; hd <= 128; hd += 64) /* the tensor-core loop's rules apply at 128 only */
        for (size_t h = 0; h < N(k_heads); h++)
            for (size_t s = 0; s < N(k_seqs); s++)
                for (size_t i = 0; i < N(k_ctx); i++) {
                    const int n = k_seqs[s], hq = k_heads[h][0], hk = k_heads[h][1];
                    const size_t big = gpu_attention_workspace_size(n, n, hq, hk, hd, k_ctx[i], 0);
                    for (size_t j = 0; j < i; j++) {
                        const size_t small = gpu_attention_workspace_size(n, n, hq, hk, hd, k_ctx[j], 0);
                        if (small > big)
                            fail_msg("n_seqs %d, heads %d/%d x %d: %zu bytes at max_ctx %d but %zu at %d", n, hq, hk,
                                     hd, big, k_ctx[i], small, k_ctx[j]);
                        checked++;
                    }
                }
    assert_true(checked > 20000);
}

/* prefill takes none; a decode with splits takes the counters and a partial per (sequence, head, split) */
static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(gpu_attention_workspace_size(1, 7, 32, 8, 128, 4096, 0), 0);
    const size_t w = gpu_attention_workspace_size(1, 1, 32, 8, 128, 32768, 4); /* 4 splits asked for */
    assert_int_equal(w, GPU_ATTENTION_WS_ZERO_BYTES + (size_t)32 * 4 * (128 + 1) * sizeof(float) + 256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotone_in_context),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
