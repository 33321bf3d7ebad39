/* test_stop.c: stop-string hold-back and banned-string detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "stop.h"

static uint64_t rng = 0x243f6a8885a308d3ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)((rng >> 20) % n);
}

typedef struct { char s[4096]; size_t n; } text;

static void put(text *t, const char *p, size_t n)
{
    assert_true(t->n + n < sizeof t->s);
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static void stop_should_hold_back_a_split_stop_string_and_release_the_rest(void **st)
{
    (void)st;
    const char *stops[] = {"</s>", "\n\nUser:"};
    smp_stop *g = NULL;
    ck_error err = {0};
    assert_int_equal(smp_stop_create(stops, NULL, 2, &g, &err), CK_OK);
    const char *out; size_t n; int which;
    assert_int_equal(smp_stop_feed(g, "Hello <", 7, &out, &n, &which, &err), CK_OK);
    assert_int_equal(which, -1);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "Hello ", 6);
    assert_int_equal(smp_stop_feed(g, "/", 1, &out, &n, &which, &err), CK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(smp_stop_feed(g, "x>", 2, &out, &n, &which, &err), CK_OK); /* not a stop after all */
    assert_int_equal(which, -1);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "</x>", 4);
    assert_int_equal(smp_stop_feed(g, "ok\n", 3, &out, &n, &which, &err), CK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(smp_stop_feed(g, "\nUs", 3, &out, &n, &which, &err), CK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(smp_stop_feed(g, "er: hi", 6, &out, &n, &which, &err), CK_OK);
    assert_int_equal(which, 1);
    assert_int_equal(n, 0);
    assert_int_equal(smp_stop_feed(g, "more", 4, &out, &n, &which, &err), CK_OK);
    assert_int_equal(n, 0); /* nothing after a stop */
    smp_stop_flush(g, &out, &n);
    assert_int_equal(n, 0);
    smp_stop_destroy(g);
}

static void stop_flush_should_release_a_held_partial_match(void **st)
{
    (void)st;
    const char *stops[] = {"STOP"};
    smp_stop *g = NULL;
    ck_error err = {0};
    assert_int_equal(smp_stop_create(stops, NULL, 1, &g, &err), CK_OK);
    const char *out; size_t n; int which;
    assert_int_equal(smp_stop_feed(g, "abcST", 5, &out, &n, &which, &err), CK_OK);
    assert_int_equal(n, 3);
    smp_stop_flush(g, &out, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "ST", 2);
    smp_stop_destroy(g);
    assert_int_equal(smp_stop_create((const char *[]){""}, NULL, 1, &g, &err), CK_E_INVALID_ARGUMENT);
    assert_null(g);
}

/* Property: over random texts and random splits, the released text is exactly the
 * text before the earliest stop (or all of it), and at no point does the released
 * text run past that point. */
static void stop_released_text_should_never_contain_any_byte_of_a_stop(void **st)
{
    (void)st;
    const char *stops[] = {"aab", "ba", "abca"};
    for (int trial = 0; trial < 2000; trial++) {
        char full[64];
        size_t len = 1 + rnd(40);
        for (size_t i = 0; i < len; i++) full[i] = "abc"[rnd(3)];
        full[len] = '\0';
        size_t stop_at = len;
        int want = -1;
        for (size_t p = 0; p < len && want < 0; p++)
            for (int k = 0; k < 3; k++)
                if (strncmp(full + p, stops[k], strlen(stops[k])) == 0) { stop_at = p; want = k; break; }
        smp_stop *g = NULL;
        ck_error err = {0};
        assert_int_equal(smp_stop_create(stops, NULL, 3, &g, &err), CK_OK);
        text rel = {0};
        int got = -1;
        for (size_t p = 0; p < len;) {
            size_t k = 1 + rnd(5);
            if (p + k > len) k = len - p;
            const char *out; size_t n; int which;
            assert_int_equal(smp_stop_feed(g, full + p, k, &out, &n, &which, &err), CK_OK);
            put(&rel, out, n);
            assert_true(rel.n <= stop_at);
            if (which >= 0) { got = which; break; }
            p += k;
        }
        if (got < 0) {
            const char *out; size_t n;
            smp_stop_flush(g, &out, &n);
            put(&rel, out, n);
        }
        assert_int_equal(got, want);
        assert_int_equal(rel.n, stop_at);
        assert_memory_equal(rel.s, full, stop_at);
        smp_stop_destroy(g);
    }
}

static void ban_should_report_the_token_where_the_banned_string_began(void **st)
{
    (void)st;
    const char *banned[] = {"darn it"};
    smp_ban_gate *b = NULL;
    ck_error err = {0};
    assert_int_equal(smp_ban_create(banned, NULL, 1, &b, &err), CK_OK);
    const char *out; size_t n; int which; int64_t rw;
    assert_int_equal(smp_ban_feed(b, "Oh", 2, 0, &out, &n, &which, &rw, &err), CK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(smp_ban_feed(b, " da", 3, 1, &out, &n, &which, &rw, &err), CK_OK);
    assert_int_equal(n, 0); /* " da": token 1 may begin the banned string, held whole */
    assert_int_equal(smp_ban_feed(b, "rn", 2, 2, &out, &n, &which, &rw, &err), CK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(smp_ban_feed(b, " it!", 4, 3, &out, &n, &which, &rw, &err), CK_OK);
    assert_int_equal(which, 0);
    assert_int_equal(rw, 1);
    assert_int_equal(n, 0);
    assert_int_equal(smp_ban_feed(b, "x", 1, 4, &out, &n, &which, &rw, &err), CK_E_INVALID_ARGUMENT);
    smp_ban_rewind(b, 1);
    assert_int_equal(smp_ban_feed(b, " dear", 5, 1, &out, &n, &which, &rw, &err), CK_OK);
    assert_int_equal(which, -1);
    assert_int_equal(n, 5);
    assert_memory_equal(out, " dear", 5);
    smp_ban_flush(b, &out, &n);
    assert_int_equal(n, 0);
    smp_ban_destroy(b);
}

/* Property: a generator that emits random tokens, rewinding and banning as told,
 * never releases a banned string, and what it releases is the final text. */
static void ban_released_text_should_never_contain_a_banned_string(void **st)
{
    (void)st;
    const char *banned[] = {"abc", "cc"};
    const char *pieces[] = {"a", "b", "c", "ab", "bc", "ca", "cab", " "};
    for (int trial = 0; trial < 500; trial++) {
        smp_ban_gate *b = NULL;
        ck_error err = {0};
        assert_int_equal(smp_ban_create(banned, NULL, 2, &b, &err), CK_OK);
        int toks[64];
        int ntok = 0;
        text rel = {0};
        unsigned char ban_at[64][8] = {{0}};
        int guard = 0;
        while (ntok < 30 && guard++ < 1000) {
            int choice = -1;
            for (int tries = 0; tries < 32; tries++) {
                int c = (int)rnd(8);
                if (!ban_at[ntok][c]) { choice = c; break; }
            }
            if (choice < 0) choice = 7; /* " " can never be banned */
            toks[ntok] = choice;
            const char *out; size_t n; int which; int64_t rw;
            assert_int_equal(smp_ban_feed(b, pieces[choice], strlen(pieces[choice]), ntok,
                                          &out, &n, &which, &rw, &err), CK_OK);
            put(&rel, out, n);
            assert_null(strstr(rel.s, "abc"));
            assert_null(strstr(rel.s, "cc"));
            if (which >= 0) {
                assert_true(rw >= 0 && rw <= ntok);
                for (int k = (int)rw + 1; k <= ntok; k++) memset(ban_at[k], 0, 8);
                ban_at[rw][toks[rw]] = 1;
                smp_ban_rewind(b, rw);
                ntok = (int)rw;
            } else {
                ntok++;
            }
        }
        const char *out; size_t n;
        smp_ban_flush(b, &out, &n);
        put(&rel, out, n);
        text final = {0};
        for (int k = 0; k < ntok; k++) put(&final, pieces[toks[k]], strlen(pieces[toks[k]]));
        assert_int_equal(rel.n, final.n);
        assert_memory_equal(rel.s, final.s, final.n);
        assert_null(strstr(rel.s, "abc"));
        assert_null(strstr(rel.s, "cc"));
        smp_ban_destroy(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_should_hold_back_a_split_stop_string_and_release_the_rest),
        cmocka_unit_test(stop_flush_should_release_a_held_partial_match),
        cmocka_unit_test(stop_released_text_should_never_contain_any_byte_of_a_stop),
        cmocka_unit_test(ban_should_report_the_token_where_the_banned_string_began),
        cmocka_unit_test(ban_released_text_should_never_contain_a_banned_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
