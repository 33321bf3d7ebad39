/* test_tok_unit.c: behaviour of the native tokenizer on small hand-made tokenizer.json
 * files (exact expected ids worked out by hand) and robustness on the real ones.
 * usage: test_tok_unit <dir holding llama2/ llama3/ qwen3/> (tests needing them skip). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <cmocka.h>

#include "tok.h"

static const char *g_tokdir;

/* ---- helpers ------------------------------------------------------------------------ */
static tok_tokenizer *load(const char *json, const char *cfg)
{
    tok_tokenizer *t = NULL;
    ck_error err = {0};
    ck_status st = tok_create_from_json(json, strlen(json), cfg, cfg ? strlen(cfg) : 0, &t, &err);
    if (st) fprintf(stderr, "load: %s\n", err.msg);
    assert_int_equal(st, CK_OK);
    return t;
}

static ck_status load_fails(const char *json, const char *must_contain)
{
    tok_tokenizer *t = NULL;
    ck_error err = {0};
    ck_status st = tok_create_from_json(json, strlen(json), NULL, 0, &t, &err);
    assert_int_not_equal(st, CK_OK);
    assert_null(t);
    if (!strstr(err.msg, must_contain)) fprintf(stderr, "message was: %s\n", err.msg);
    assert_non_null(strstr(err.msg, must_contain));
    return st;
}

static size_t enc(const tok_tokenizer *t, const char *text, int add_special, int parse_special, int32_t *ids, size_t cap)
{
    tok_encode_opts o = {add_special, parse_special};
    size_t n = 0;
    ck_error err;
    assert_int_equal(tok_encode(t, text, strlen(text), &o, ids, cap, &n, &err), CK_OK);
    return n;
}

static void expect_ids(const tok_tokenizer *t, const char *text, int add_special, const int32_t *want, size_t n_want)
{
    int32_t ids[256];
    size_t n = enc(t, text, add_special, 1, ids, 256);
    if (n != n_want || memcmp(ids, want, n * sizeof *ids)) {
        fprintf(stderr, "text \"%s\": got", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, n_want);
    assert_memory_equal(ids, want, n * sizeof *ids);
}

static char *dec(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip)
{
    static char buf[4096];
    size_t len;
    ck_error err;
    assert_int_equal(tok_decode(t, ids, n, skip, buf, sizeof buf - 1, &len, &err), CK_OK);
    assert_true(len < sizeof buf);
    buf[len] = 0;
    return buf;
}

/* A SentencePiece-style BPE (Llama 2 layout): "▁" prefix, byte fallback. */
static const char SP_JSON[] =
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"<0xC3>\":3,\"<0xA9>\":4,\"<0xE2>\":5,\"<0x82>\":6,\"<0xAC>\":7,"
    "\"\\u2581\":8,\"h\":9,\"e\":10,\"l\":11,\"o\":12,\"he\":13,\"ll\":14,\"\\u2581he\":15,\"\\u2581hell\":16,\"\\u2581hello\":17,"
    "\"w\":18,\"\\u2581w\":19},"
    "\"merges\":[\"h e\",\"l l\",\"\\u2581 he\",\"\\u2581he ll\",\"\\u2581hell o\",\"\\u2581 w\"]}}";

static void sp_bpe_should_merge_by_rank_and_fall_back_to_bytes(void **state)
{
    tok_tokenizer *t = load(SP_JSON, NULL);
    expect_ids(t, "hello", 0, (int32_t[]){17}, 1);
    expect_ids(t, "hello", 1, (int32_t[]){1, 17}, 2);
    expect_ids(t, "hello w", 0, (int32_t[]){17, 19}, 2);
    /* é has no token: bytes C3 A9; € (E2 82 AC) too */
    expect_ids(t, "h\xC3\xA9", 0, (int32_t[]){8, 9, 3, 4}, 4);
    expect_ids(t, "\xE2\x82\xAC", 0, (int32_t[]){8, 5, 6, 7}, 4);
    /* special tokens are matched before normalization; Prepend applies per segment */
    expect_ids(t, "<s>hello</s>", 0, (int32_t[]){1, 17, 2}, 3);
    assert_string_equal(dec(t, (int32_t[]){1, 17, 19}, 3, 0), "<s> hello w");
    assert_string_equal(dec(t, (int32_t[]){1, 17, 19}, 3, 1), "hello w");
    assert_string_equal(dec(t, (int32_t[]){8, 9, 3, 4}, 4, 0), "h\xC3\xA9");
    /* an invalid byte run becomes one U+FFFD per byte */
    assert_string_equal(dec(t, (int32_t[]){9, 3, 3}, 3, 0), "h\xEF\xBF\xBD\xEF\xBF\xBD");
    char piece[16];
    size_t pl;
    ck_error err;
    assert_int_equal(tok_token_to_piece(t, 3, piece, sizeof piece, &pl, &err), CK_OK);
    assert_int_equal(pl, 1);
    assert_int_equal((unsigned char)piece[0], 0xC3);
    assert_int_equal(tok_token_to_piece(t, 17, piece, sizeof piece, &pl, &err), CK_OK);
    assert_int_equal(pl, 6);
    assert_memory_equal(piece, " hello", 6);
    assert_int_equal(tok_vocab_size(t), 20);
    assert_true(tok_is_special(t, 1));
    assert_false(tok_is_special(t, 17));
    tok_destroy(t);
}

static void sp_bpe_should_fuse_unknown_chars_without_byte_tokens(void **state)
{
    /* ß (C3 9F) lacks <0x9F>: not all bytes exist, so it becomes <unk>; two in a row fuse */
    tok_tokenizer *t = load(SP_JSON, NULL);
    expect_ids(t, "h\xC3\x9F\xC3\x9F", 0, (int32_t[]){8, 9, 0}, 3);
    tok_destroy(t);
}

static void config_should_drive_bos_and_eos(void **state)
{
    const char *cfg = "{\"tokenizer_class\":\"LlamaTokenizer\",\"add_bos_token\":false,\"add_eos_token\":true,"
                      "\"bos_token\":\"<s>\",\"eos_token\":{\"content\":\"</s>\"},\"chat_template\":\"{{x}}\"}";
    tok_tokenizer *t = load(SP_JSON, cfg);
    expect_ids(t, "hello", 1, (int32_t[]){17, 2}, 2);
    assert_int_equal(tok_bos_id(t), 1);
    assert_int_equal(tok_eos_id(t), 2);
    assert_string_equal(tok_chat_template(t), "{{x}}");
    tok_destroy(t);
}

/* A byte-level BPE: vocab = the 256 GPT-2 byte symbols + a few merges, built here. */
static char *byte_level_json(int pair_merges, const char *added)
{
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
        "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
        "\"decoder\":{\"type\":\"ByteLevel\"},\"added_tokens\":[%s],"
        "\"model\":{\"type\":\"BPE\",\"ignore_merges\":false,\"vocab\":{", added);
    /* ids 0..255: GPT-2 mapped bytes in byte order */
    for (int b = 0; b < 256; b++) {
        unsigned cp;
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) cp = (unsigned)b;
        else if (b <= 0x20) cp = 256u + (unsigned)b;
        else if (b <= 0xA0) cp = 289u + (unsigned)(b - 0x7F);
        else cp = 323u;
        if (cp == '"' || cp == '\\') n += (size_t)snprintf(s + n, cap - n, "\"\\%c\":%d,", (char)cp, b);
        else n += (size_t)snprintf(s + n, cap - n, "\"\\u%04x\":%d,", cp, b);
    }
    n += (size_t)snprintf(s + n, cap - n,
        "\"\\u0120t\":256,\"he\":257,\"\\u0120the\":258,\"\\u0120th\":259},\"merges\":[%s]}}",
        pair_merges ? "[\"\\u0120\",\"t\"],[\"h\",\"e\"],[\"\\u0120t\",\"he\"],[\"\\u0120t\",\"h\"]"
                    : "\"\\u0120 t\",\"h e\",\"\\u0120t he\",\"\\u0120t h\"");
    return s;
}

static void byte_level_should_accept_both_merge_encodings(void **state)
{
    for (int pairs = 0; pairs < 2; pairs++) {
        char *js = byte_level_json(pairs, "");
        tok_tokenizer *t = load(js, NULL);
        free(js);
        /* " the": merges by rank: (Ġ t)=0 -> Ġt, (h e)=1 -> he, (Ġt he)=2 -> Ġthe */
        expect_ids(t, "a the", 0, (int32_t[]){'a', 258}, 2);
        /* " th": Ġt then (Ġt h) */
        expect_ids(t, " th", 0, (int32_t[]){259}, 1);
        /* bytes of é (C3 A9) are ids 0xC3, 0xA9; the regex isolates "12" "345" */
        expect_ids(t, "\xC3\xA9" "12345", 0, (int32_t[]){0xC3, 0xA9, '1', '2', '3', '4', '5'}, 7);
        assert_string_equal(dec(t, (int32_t[]){'a', 258, 0xC3, 0xA9}, 4, 0), "a the\xC3\xA9");
        /* a lone continuation byte decodes to U+FFFD */
        assert_string_equal(dec(t, (int32_t[]){'a', 0xA9}, 2, 0), "a\xEF\xBF\xBD");
        tok_destroy(t);
    }
}

static void added_tokens_should_honour_strip_and_single_word(void **state)
{
    char *js = byte_level_json(0,
        "{\"id\":300,\"content\":\"<L>\",\"special\":true,\"lstrip\":true,\"normalized\":false},"
        "{\"id\":301,\"content\":\"<R>\",\"special\":true,\"rstrip\":true,\"normalized\":false},"
        "{\"id\":302,\"content\":\"cat\",\"special\":false,\"single_word\":true,\"normalized\":false},"
        "{\"id\":303,\"content\":\"<L>x\",\"special\":false,\"normalized\":false}");
    tok_tokenizer *t = load(js, NULL);
    free(js);
    expect_ids(t, "a  <L>b", 0, (int32_t[]){'a', 300, 'b'}, 3);
    expect_ids(t, "a<R>  b", 0, (int32_t[]){'a', 301, 'b'}, 3);
    expect_ids(t, "cat", 0, (int32_t[]){302}, 1);
    expect_ids(t, "a cat!", 0, (int32_t[]){'a', ' ', 302, '!'}, 4);
    /* inside a word, "cat" is not the added token: c a t by bytes */
    expect_ids(t, "cats", 0, (int32_t[]){'c', 'a', 't', 's'}, 4);
    /* the longest added token wins */
    expect_ids(t, "<L>x", 0, (int32_t[]){303}, 1);
    /* parse_special = 0: special tokens are text, non-special ones still match */
    int32_t ids[64];
    size_t n = enc(t, "<R>cat", 0, 0, ids, 64);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], '<');
    assert_int_equal(ids[3], 302);
    assert_string_equal(dec(t, (int32_t[]){'a', 300, 'b'}, 3, 0), "a<L>b");
    assert_string_equal(dec(t, (int32_t[]){'a', 300, 'b'}, 3, 1), "ab");
    tok_destroy(t);
}

static void nfc_and_nfkc_should_compose_and_fold(void **state)
{
    const char *base = "{\"normalizer\":{\"type\":\"%s\"},\"pre_tokenizer\":null,\"decoder\":null,"
                       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u00e9\":0,\"f\":1,\"i\":2,\"\\uac01\":3,\"e\":4,\"\\u0301\":5,"
                       "\"\\u1100\":6,\"\\u1161\":7,\"\\u11a8\":8},\"merges\":[]}}";
    char js[1024];
    snprintf(js, sizeof js, base, "NFC");
    tok_tokenizer *t = load(js, NULL);
    expect_ids(t, "e\xCC\x81", 0, (int32_t[]){0}, 1);           /* e + U+0301 -> é */
    expect_ids(t, "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", 0, (int32_t[]){3}, 1); /* jamo -> 각 */
    tok_destroy(t);
    snprintf(js, sizeof js, base, "NFKC");
    t = load(js, NULL);
    expect_ids(t, "\xEF\xAC\x81", 0, (int32_t[]){1, 2}, 2);     /* ﬁ -> f i */
    tok_destroy(t);
    snprintf(js, sizeof js, base, "NFD");
    t = load(js, NULL);
    expect_ids(t, "\xC3\xA9", 0, (int32_t[]){4, 5}, 2);
    expect_ids(t, "\xEA\xB0\x81", 0, (int32_t[]){6, 7, 8}, 3);
    tok_destroy(t);
}

static void load_should_reject_bad_files_with_a_named_field(void **state)
{
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "merges[0]");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
               "merged token");
    assert_int_equal(load_fails("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram"), CK_E_UNSUPPORTED);
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "merges[0]");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
               "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}}",
               "pre_tokenizer Split: regex does not compile");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"CTC\"}}",
               "decoder type \"CTC\"");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [] ", "malformed JSON");
    load_fails("{\"normalizer\": null}", "\"model\"");
    /* 100000 nested arrays: refused before cJSON recurses */
    size_t n = 200000;
    char *deep = malloc(2 * n + 16);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    load_fails(deep, "nested deeper");
    free(deep);
    tok_tokenizer *t = NULL;
    ck_error err;
    assert_int_equal(tok_create_from_dir("/nonexistent/dir", &t, &err), CK_E_MISSING);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
}

/* model.vocab / model.merges are read by tok_json_scan.c, not cJSON: JSON escapes
 * (\uXXXX, surrogate pairs, \n, \", \\, \/), whitespace between tokens, merges before
 * vocab, both merge encodings, the first of duplicate keys (as cJSON picks), and strict
 * refusals with the byte named. Expected ids worked out by hand. */
static void fast_vocab_scanner_should_unescape_and_validate(void **state)
{
    (void)state;
    /* vocab: "é"=0 written \u00e9, "😀"=1 as a surrogate pair, "\n"=2, "\""=3, "é😀"=4,
       "a/b\\"=5; merges before vocab, one "a b" string with escapes and one pair */
    const char *js =
        "{ \"model\" : { \"type\": \"BPE\",\n"
        "  \"merges\" : [ \"\\u00e9 \\ud83d\\ude00\" , [ \"\\n\" , \"\\\"\" ] ] ,\n"
        "  \"vocab\" : { \"\\u00E9\" : 0, \"\\uD83D\\uDE00\":1 ,\"\\n\":2, \"\\\"\" :3,"
        " \"\\u00e9\\ud83d\\ude00\": 4, \"a\\/b\\\\\": 5, \"\\n\\\"\": 6 },\n"
        "  \"vocab\": {\"ignored\": 0}, \"merges\": [\"ignored\"] } }\n";
    tok_tokenizer *t = load(js, NULL);
    assert_string_equal(tok_id_to_token(t, 0), "\xC3\xA9");
    assert_string_equal(tok_id_to_token(t, 1), "\xF0\x9F\x98\x80");
    assert_string_equal(tok_id_to_token(t, 2), "\n");
    assert_string_equal(tok_id_to_token(t, 3), "\"");
    assert_string_equal(tok_id_to_token(t, 5), "a/b\\");
    assert_int_equal(tok_token_to_id(t, "ignored", 7), -1);
    expect_ids(t, "\xC3\xA9\xF0\x9F\x98\x80", 0, (int32_t[]){4}, 1); /* merge 0 */
    expect_ids(t, "\n\"", 0, (int32_t[]){6}, 1);                     /* merge 1 */
    tok_destroy(t);
    /* a \u0000 escape ends the string, as it does for cJSON's strings elsewhere */
    t = load("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\\u0000zz\":0,\"b\":1},\"merges\":[]}}", NULL);
    assert_string_equal(tok_id_to_token(t, 0), "a");
    tok_destroy(t);

    static const char *const bad[][2] = {
        {"{\"model\":{\"vocab\":{\"\\ud83d\":0},\"merges\":[]}}", "high surrogate"},
        {"{\"model\":{\"vocab\":{\"\\ude00\":0},\"merges\":[]}}", "low surrogate"},
        {"{\"model\":{\"vocab\":{\"\\u12g4\":0},\"merges\":[]}}", "four hex digits"},
        {"{\"model\":{\"vocab\":{\"\\x\":0},\"merges\":[]}}", "unknown escape"},
        {"{\"model\":{\"vocab\":{\"a\tb\":0},\"merges\":[]}}", "control character"},
        {"{\"model\":{\"vocab\":{\"a\":0,},\"merges\":[]}}", "expected a string key"},
        {"{\"model\":{\"vocab\":{\"a\":01},\"merges\":[]}}", "expected ',' or '}'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"a b\",]}}", "unexpected character"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[[\"a\",\"b\"]}}", "expected ',' or ']'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}} x", "text after the top-level value"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"a", "unterminated string"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"x\":tru}", "unexpected character"},
        {"{\"model\":{\"vocab\":{\"a\":1.5},\"merges\":[]}}", "model.vocab[\"a\"]: id must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":\"0\"},\"merges\":[]}}", "model.vocab[\"a\"]: id must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[[\"a\",\"b\",\"c\"]]}}", "merges[0]: neither"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"a  b\"]}}", "merges[0]: \"a  b\" is not two tokens"},
        {"{\"model\":{\"vocab\":{},\"merges\":[\"\"]}}", "merges[0]: \"\" is not two tokens"}, /* fuzz: NULL + 0 */
        {"{\"model\":{\"vocab\":[],\"merges\":[]}}", "model.vocab is missing or not an object"},
        {"{\"model\":{\"vocab\":{},\"merges\":{}}}", "model.merges is missing or not an array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_status st = load_fails(bad[i][0], bad[i][1]);
        assert_true(st == CK_E_FORMAT || st == CK_E_MISSING);
    }
    /* 1e0 and 2.0E0 are integers, as cJSON's strtod reads them */
    t = load("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e0,\"b\":2.0E0,\"c\":0},\"merges\":[]}}", NULL);
    assert_int_equal(tok_token_to_id(t, "b", 1), 2);
    tok_destroy(t);
}

/* decode(skip) as transformers 5 (TOK_SKIP_SPECIAL) also drops the tokens that
 * tokenizer_config.json names, or that the tokenizer class names by default (GemmaTokenizer:
 * mask_token "<mask>"), though tokenizer.json marks them non-special; as the `tokenizers`
 * library (TOK_SKIP_SPECIAL_JSON) only tokenizer.json's special ones. */
static void skip_special_should_follow_the_config_names_or_the_file_alone(void **state)
{
    (void)state;
    const char *js =
        "{\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true},{\"id\":3,\"content\":\"<mask>\",\"special\":false},"
        "{\"id\":4,\"content\":\"<img>\",\"special\":false},{\"id\":5,\"content\":\"<t>\",\"special\":false}],"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,\"a\":1,\"b\":2,\"<mask>\":3,\"<img>\":4,\"<t>\":5},\"merges\":[]},"
        "\"decoder\":{\"type\":\"Fuse\"}}";
    const char *gemma = "{\"tokenizer_class\":\"GemmaTokenizerFast\",\"bos_token\":\"<s>\",\"add_bos_token\":false,"
                        "\"extra_special_tokens\":{\"image_token\":\"<img>\"}}";
    const int32_t ids[] = {0, 1, 3, 4, 5, 2};
    tok_tokenizer *t = load(js, gemma);
    assert_string_equal(dec(t, ids, 6, TOK_KEEP_SPECIAL), "<s>a<mask><img><t>b");
    assert_string_equal(dec(t, ids, 6, TOK_SKIP_SPECIAL_JSON), "a<mask><img><t>b");
    assert_string_equal(dec(t, ids, 6, TOK_SKIP_SPECIAL), "a<t>b"); /* class default <mask>, extra <img> */
    tok_destroy(t);
    /* a class without defaults here: only what the config names; mask_token: null names none */
    t = load(js, "{\"tokenizer_class\":\"PreTrainedTokenizerFast\",\"additional_special_tokens\":[{\"content\":\"<t>\"}],"
                 "\"mask_token\":null}");
    assert_string_equal(dec(t, ids, 6, TOK_SKIP_SPECIAL), "a<mask><img>b");
    tok_destroy(t);
    t = load(js, "{\"tokenizer_class\":\"GemmaTokenizer\",\"mask_token\":null,\"add_bos_token\":false}");
    assert_string_equal(dec(t, ids, 6, TOK_SKIP_SPECIAL), "a<mask><img><t>b");
    tok_destroy(t);
    t = load(js, NULL); /* no config: the file alone */
    assert_string_equal(dec(t, ids, 6, TOK_SKIP_SPECIAL), "a<mask><img><t>b");
    tok_destroy(t);
}

static void hostile_regex_should_fail_not_hang(void **state)
{
    /* catastrophic backtracking: (a+)+$ on "aaaa...b" */
    const char *js = "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a+)+$\"},\"behavior\":\"Isolated\"},"
                     "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}";
    tok_tokenizer *t = load(js, NULL);
    char text[4096];
    memset(text, 'a', sizeof text - 2);
    text[sizeof text - 2] = 'b';
    text[sizeof text - 1] = 0;
    size_t n;
    ck_error err;
    clock_t c0 = clock();
    ck_status st = tok_encode(t, text, strlen(text), NULL, NULL, 0, &n, &err);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    /* PCRE2's JIT may prove no match quickly; otherwise the match limit stops it */
    assert_true(st == CK_OK || st == CK_E_UNSUPPORTED);
    assert_true(secs < 30.0);
    tok_destroy(t);
}

static void two_call_sizing_should_report_the_full_count(void **state)
{
    tok_tokenizer *t = load(SP_JSON, NULL);
    size_t n;
    ck_error err;
    int32_t one[1];
    assert_int_equal(tok_encode(t, "hello w", 7, NULL, one, 1, &n, &err), CK_OK);
    assert_int_equal(n, 3); /* <s> ▁hello ▁w */
    assert_int_equal(one[0], 1);
    char small[3];
    size_t len;
    assert_int_equal(tok_decode(t, (int32_t[]){17, 19}, 2, 0, small, sizeof small, &len, &err), CK_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(small, "hel", 3);
    assert_int_equal(tok_decode(t, (int32_t[]){99}, 1, 0, NULL, 0, &len, &err), CK_E_INVALID_ARGUMENT);
    tok_destroy(t);
}

static void stream_should_release_only_complete_utf8(void **state)
{
    char *js = byte_level_json(0, "");
    tok_tokenizer *t = load(js, NULL);
    free(js);
    tok_stream *s;
    ck_error err;
    char out[64];
    size_t len;
    assert_int_equal(tok_stream_create(t, 0, &s, &err), CK_OK);
    /* € = E2 82 AC, one byte token each */
    assert_int_equal(tok_stream_push(s, 'a', out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 1);
    assert_int_equal(tok_stream_push(s, 0xE2, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 0);
    assert_int_equal(tok_stream_push(s, 0x82, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 0);
    assert_int_equal(tok_stream_push(s, 0xAC, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "\xE2\x82\xAC", 3);
    /* an incomplete tail comes out as U+FFFD on flush */
    assert_int_equal(tok_stream_push(s, 0xE2, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 0);
    assert_int_equal(tok_stream_flush(s, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);
    /* a too-small buffer consumes nothing */
    assert_int_equal(tok_stream_push(s, 258, out, 1, &len, &err), CK_E_INVALID_ARGUMENT);
    assert_int_equal(len, 4);
    assert_int_equal(tok_stream_push(s, 258, out, sizeof out, &len, &err), CK_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(out, " the", 4);
    tok_stream_destroy(s);
    tok_destroy(t);
}

/* ---- on the real tokenizer files ----------------------------------------------------------- */
static tok_tokenizer *load_real(const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_tokdir, name);
    tok_tokenizer *t = NULL;
    ck_error err;
    if (tok_create_from_dir(dir, &t, &err)) return NULL;
    return t;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void stream_should_equal_decode_on_random_ids(void **state)
{
    const char *names[5] = {"llama2", "llama3", "qwen3", "deepseek_v3", "gemma3"};
    int ran = 0;
    for (int k = 0; k < 3; k++) {
        tok_tokenizer *t = load_real(names[k]);
        if (!t) continue;
        ran++;
        int32_t vs = tok_vocab_size(t);
        for (int round = 0; round < 300; round++) {
            int32_t ids[40];
            size_t n = 1 + rnd() % 40;
            for (size_t i = 0; i < n; i++) ids[i] = (rnd() % 3) ? (int32_t)(rnd() % 600) : (int32_t)(rnd() % (uint32_t)vs);
            int skip = round & 1;
            size_t full_len, got, acc = 0;
            ck_error err;
            static char full[65536], out[65536], buf[65536];
            assert_int_equal(tok_decode(t, ids, n, skip, full, sizeof full, &full_len, &err), CK_OK);
            tok_stream *s;
            assert_int_equal(tok_stream_create(t, skip, &s, &err), CK_OK);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(tok_stream_push(s, ids[i], buf, sizeof buf, &got, &err), CK_OK);
                memcpy(out + acc, buf, got);
                acc += got;
            }
            assert_int_equal(tok_stream_flush(s, buf, sizeof buf, &got, &err), CK_OK);
            memcpy(out + acc, buf, got);
            acc += got;
            tok_stream_destroy(s);
            assert_int_equal(acc, full_len);
            assert_memory_equal(out, full, full_len);
        }
        tok_destroy(t);
    }
    if (!ran) skip();
}

static double encode_secs(const tok_tokenizer *t, const char *text, size_t len, size_t *n)
{
    ck_error err;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_status st = tok_encode(t, text, len, NULL, NULL, 0, n, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (st) fprintf(stderr, "encode: %s\n", err.msg);
    assert_int_equal(st, CK_OK);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

/* 1 MB of one character, 1 MB without spaces: time grows in proportion to size. */
static void pathological_inputs_should_take_linear_time(void **state)
{
    const char *names[5] = {"llama2", "llama3", "qwen3", "deepseek_v3", "gemma3"};
    const size_t big = 1 << 20, small = big / 8;
    char *text = malloc(big);
    int ran = 0;
    for (int k = 0; k < 5; k++) {
        tok_tokenizer *t = load_real(names[k]);
        if (!t) continue;
        ran++;
        for (int kind = 0; kind < 4; kind++) {
            for (size_t i = 0; i < big; i++)
                text[i] = kind == 0 ? 'a' : kind == 1 ? ' ' : kind == 2 ? (char)('a' + rnd() % 26) : (char)('0' + rnd() % 10);
            size_t n_small, n_big;
            double ts = encode_secs(t, text, small, &n_small), tb = encode_secs(t, text, big, &n_big);
            fprintf(stderr, "  %s kind %d: %zu bytes %.3fs (%zu ids), %zu bytes %.3fs (%zu ids)\n", names[k], kind, small,
                    ts, n_small, big, tb, n_big);
            assert_true(n_big >= n_small);
            assert_true(tb < 20.0);
            assert_true(tb < 8.0 * 4.0 * ts + 0.5); /* 8x the size: well under quadratic */
        }
        tok_destroy(t);
    }
    free(text);
    if (!ran) skip();
}

typedef struct job {
    const tok_tokenizer *t;
    const char *text;
    int32_t ids[4096];
    size_t n;
} job;

static void *run_job(void *p)
{
    job *j = p;
    ck_error err;
    for (int r = 0; r < 50; r++)
        if (tok_encode(j->t, j->text, strlen(j->text), NULL, j->ids, 4096, &j->n, &err)) j->n = (size_t)-1;
    return NULL;
}

static void tokenizer_should_be_shareable_between_threads(void **state)
{
    tok_tokenizer *t = load_real("llama3");
    if (!t) skip();
    const char *text = "Hello, world! Ünïcödé text, numbers 12345 and code: for (i = 0; i < n; i++) {}\n\n"
                       "<|begin_of_text|> 日本語 한국어 😀👍🏽";
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].t = t;
        jobs[i].text = text;
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(jobs[i].n, jobs[0].n);
        assert_memory_equal(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t));
    }
    tok_destroy(t);
}

int main(int argc, char **argv)
{
    g_tokdir = argc > 1 ? argv[1] : "third_party/tokenizers";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sp_bpe_should_merge_by_rank_and_fall_back_to_bytes),
        cmocka_unit_test(sp_bpe_should_fuse_unknown_chars_without_byte_tokens),
        cmocka_unit_test(config_should_drive_bos_and_eos),
        cmocka_unit_test(byte_level_should_accept_both_merge_encodings),
        cmocka_unit_test(added_tokens_should_honour_strip_and_single_word),
        cmocka_unit_test(nfc_and_nfkc_should_compose_and_fold),
        cmocka_unit_test(load_should_reject_bad_files_with_a_named_field),
        cmocka_unit_test(fast_vocab_scanner_should_unescape_and_validate),
        cmocka_unit_test(skip_special_should_follow_the_config_names_or_the_file_alone),
        cmocka_unit_test(hostile_regex_should_fail_not_hang),
        cmocka_unit_test(two_call_sizing_should_report_the_full_count),
        cmocka_unit_test(stream_should_release_only_complete_utf8),
        cmocka_unit_test(stream_should_equal_decode_on_random_ids),
        cmocka_unit_test(pathological_inputs_should_take_linear_time),
        cmocka_unit_test(tokenizer_should_be_shareable_between_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
