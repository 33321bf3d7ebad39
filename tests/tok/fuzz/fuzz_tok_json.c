/* fuzz_tok_json.c: libFuzzer target for tokenizer.json (+ tokenizer_config.json) parsing.
 *
 * Input: tokenizer.json bytes, optionally followed by "\n\x01CFG\n" and a
 * tokenizer_config.json. Whatever loads is then exercised a little (encode of a fixed
 * mixed string with and without special tokens, decode of the ids, of every id below 64
 * and of a stream), so a tokenizer that loads must also be usable.
 * Built by tests/tok/fuzz/build_fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

static const char SAMPLE[] = "Hello world, it's 2024! \xC3\xA9t\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD <s> </s>\n\t  x"
                             "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD <|endoftext|> 12345 \xE2\x96\x81";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n\x01" "CFG\n";
    const char *js = (const char *)data, *cfg = NULL;
    size_t js_len = size, cfg_len = 0;
    for (size_t i = 0; i + sizeof sep - 1 <= size; i++) {
        if (!memcmp(data + i, sep, sizeof sep - 1)) {
            js_len = i;
            cfg = (const char *)data + i + sizeof sep - 1;
            cfg_len = size - i - (sizeof sep - 1);
            break;
        }
    }
    tok_tokenizer *t = NULL;
    ck_error err;
    if (tok_create_from_json(js, js_len, cfg, cfg_len, &t, &err) != CK_OK) return 0;
    int32_t ids[512];
    for (int sp = 0; sp < 2; sp++) {
        tok_encode_opts o = {sp, sp};
        size_t n = 0;
        if (tok_encode(t, SAMPLE, sizeof SAMPLE - 1, &o, ids, 512, &n, &err) != CK_OK) continue;
        if (n > 512) n = 512;
        char out[8192];
        size_t len;
        (void)tok_decode(t, ids, n, sp, out, sizeof out, &len, &err);
        tok_stream *s;
        if (tok_stream_create(t, sp, &s, &err) == CK_OK) {
            for (size_t i = 0; i < n; i++) (void)tok_stream_push(s, ids[i], out, sizeof out, &len, &err);
            (void)tok_stream_flush(s, out, sizeof out, &len, &err);
            tok_stream_destroy(s);
        }
    }
    int32_t nv = tok_vocab_size(t);
    for (int32_t id = 0; id < nv && id < 64; id++) {
        char out[256];
        size_t len;
        (void)tok_token_to_piece(t, id, out, sizeof out, &len, &err);
        (void)tok_decode(t, &id, 1, 0, out, sizeof out, &len, &err);
        const char *s = tok_id_to_token(t, id);
        if (s && tok_token_to_id(t, s, strlen(s)) < 0) abort(); /* a vocabulary string maps back */
    }
    (void)tok_bos_id(t);
    (void)tok_eos_id(t);
    (void)tok_chat_template(t);
    tok_destroy(t);
    return 0;
}
