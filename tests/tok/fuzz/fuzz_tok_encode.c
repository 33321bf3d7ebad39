/* fuzz_tok_encode.c: libFuzzer target for encode / decode / streaming on real tokenizers.
 *
 * Loads, once, the reference tokenizers found under $CHASKI_FUZZ_TOKDIR (default: the
 * repository's third_party/tokenizers): llama2, llama3, qwen3, gemma3, deepseek_v3
 * (those present). Input byte 0 picks the tokenizer and the options; the rest is text.
 * Checks (abort on failure, which libFuzzer reports):
 *   - encode succeeds (or fails only with the regex limit error) and gives ids in range;
 *   - byte-level tokenizers without normalizer round-trip valid UTF-8 text exactly
 *     (decode(encode(text, parse_special = 0)) == text);
 *   - the streaming detokenizer's releases concatenate to the full decode, for the ids
 *     of the text and for ids taken from the input bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

#ifndef CHASKI_FUZZ_DEFAULT_TOKDIR
#define CHASKI_FUZZ_DEFAULT_TOKDIR "third_party/tokenizers"
#endif

static const char *const NAMES[] = {"llama2", "llama3", "qwen3", "gemma3", "deepseek_v3"};
static const int ROUNDTRIP[] = {0, 1, 0, 0, 1}; /* no normalizer (qwen3 has NFC) */
static tok_tokenizer *g_t[5];
static int g_rt[5];
static int g_n;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("CHASKI_FUZZ_TOKDIR");
    if (!dir) dir = CHASKI_FUZZ_DEFAULT_TOKDIR;
    for (int i = 0; i < 5; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, NAMES[i]);
        ck_error err;
        tok_tokenizer *t;
        if (tok_create_from_dir(path, &t, &err) == CK_OK) {
            g_rt[g_n] = ROUNDTRIP[i];
            g_t[g_n++] = t;
        }
    }
    if (!g_n) {
        fprintf(stderr, "fuzz_tok_encode: no tokenizer under %s\n", dir);
        exit(1); /* a test harness, not library code */
    }
    return 0;
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void check_stream(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip)
{
    ck_error err;
    size_t full_len;
    if (tok_decode(t, ids, n, skip, NULL, 0, &full_len, &err) != CK_OK) abort();
    char *full = malloc(full_len + 1), *acc = malloc(full_len + 1);
    if (tok_decode(t, ids, n, skip, full, full_len, &full_len, &err) != CK_OK) abort();
    tok_stream *s;
    if (tok_stream_create(t, skip, &s, &err) != CK_OK) abort();
    size_t acc_len = 0, got;
    char buf[1 << 14];
    for (size_t i = 0; i < n; i++) {
        if (tok_stream_push(s, ids[i], buf, sizeof buf, &got, &err) != CK_OK) abort();
        if (!valid_utf8((const uint8_t *)buf, got) || acc_len + got > full_len) abort();
        memcpy(acc + acc_len, buf, got);
        acc_len += got;
    }
    if (tok_stream_flush(s, buf, sizeof buf, &got, &err) != CK_OK) abort();
    if (acc_len + got != full_len) abort();
    memcpy(acc + acc_len, buf, got);
    acc_len += got;
    if (memcmp(acc, full, full_len)) abort();
    tok_stream_destroy(s);
    free(full);
    free(acc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    int which = (ctl & 7) % g_n;
    const tok_tokenizer *t = g_t[which];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    tok_encode_opts o = {(ctl >> 3) & 1, (ctl >> 4) & 1};
    ck_error err;
    size_t n = 0;
    ck_status st = tok_encode(t, text, len, &o, NULL, 0, &n, &err);
    if (st == CK_E_UNSUPPORTED) return 0; /* the regex limit: a clear refusal */
    if (st != CK_OK) abort();
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    size_t n2;
    if (tok_encode(t, text, len, &o, ids, n, &n2, &err) != CK_OK || n2 != n) abort();
    int32_t nv = tok_vocab_size(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) abort();
    if (g_rt[which] && !o.parse_special && !o.add_special && valid_utf8((const uint8_t *)text, len)) {
        size_t dl;
        if (tok_decode(t, ids, n, 0, NULL, 0, &dl, &err) != CK_OK) abort();
        char *d = malloc(dl + 1);
        if (tok_decode(t, ids, n, 0, d, dl, &dl, &err) != CK_OK) abort();
        if (dl != len || memcmp(d, text, len)) abort();
        free(d);
    }
    check_stream(t, ids, n, (ctl >> 5) & 1);
    free(ids);
    /* ids straight from the input bytes (3 bytes each) */
    if (ctl & 0x40) {
        size_t m = len / 3;
        int32_t *r = malloc((m + 1) * sizeof *r);
        for (size_t i = 0; i < m; i++) {
            uint32_t v = (uint32_t)(uint8_t)text[3 * i] | (uint32_t)(uint8_t)text[3 * i + 1] << 8 |
                         (uint32_t)(uint8_t)text[3 * i + 2] << 16;
            r[i] = (int32_t)(v % (uint32_t)nv);
        }
        check_stream(t, r, m, (ctl >> 7) & 1);
        free(r);
    }
    return 0;
}
