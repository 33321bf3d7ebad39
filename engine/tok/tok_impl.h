/* tok_impl.h: the tokenizer's internal representation, shared by the files of
 * engine/tok/ and nothing else.
 *
 * Invariants (established by tok_load.c, never changed afterwards):
 *   - ids run over [0, n_vocab); tokens[id] is the vocabulary string (HF form:
 *     "Ġthe", "▁the", "<0x0A>", or an added token's content) or NULL for a hole;
 *   - the BPE works on "symbol" bytes: raw bytes for byte-level models (the GPT-2
 *     byte-to-unicode mapping is undone at load), the vocabulary string otherwise;
 *   - normalizer, pre-tokenizer, decoder and post-processor Sequences are flattened
 *     into arrays of steps.
 */
#ifndef TOK_IMPL_H
#define TOK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"
#include "tok.h"

/* ---- growable buffers ------------------------------------------------------ */
typedef struct tok_buf {
    char *p;
    size_t len, cap;
} tok_buf;
int tok_buf_reserve(tok_buf *b, size_t extra); /* 0 ok, -1 out of memory */
int tok_buf_put(tok_buf *b, const void *data, size_t n);
void tok_buf_free(tok_buf *b);

typedef struct tok_ivec {
    int32_t *p;
    size_t len, cap;
} tok_ivec;
int tok_ivec_push(tok_ivec *v, int32_t x);
void tok_ivec_free(tok_ivec *v);

/* ---- hash maps (tok_map.c) ---------------------------------------------------- */
/* bytes -> id; keys are borrowed (they must outlive the map). Open addressing, linear
 * probing, load <= 1/2; one 16-byte slot per entry so that a probe touches one cache
 * line (these tables are larger than the caches: 128k-280k entries). */
typedef struct tok_strmap_slot {
    const char *key; /* NULL = empty */
    uint32_t len;
    int32_t val;
} tok_strmap_slot;
typedef struct tok_strmap {
    tok_strmap_slot *slots;
    size_t cap, count; /* cap: a power of two */
} tok_strmap;
int tok_strmap_init(tok_strmap *m, size_t expected);
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val); /* 1 added, 0 existed, -1 oom */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);   /* -1 if absent */
void tok_strmap_free(tok_strmap *m);
/* The same with the key's hash computed beforehand (tok_hash_bytes), so that a loop over
 * many keys can hash a block of them, prefetch their slots, then probe: the tables
 * are bigger than the caches and each probe is otherwise a memory round trip. */
uint64_t tok_hash_bytes(const char *key, size_t len);
int tok_strmap_put_h(tok_strmap *m, const char *key, size_t len, uint64_t hash, int32_t val);
int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t hash);
static inline void tok_strmap_prefetch(const tok_strmap *m, uint64_t hash)
{
    if (m->cap) __builtin_prefetch(&m->slots[hash & (m->cap - 1)]);
}

/* (left id, right id) -> (rank, merged id), 16-byte slots as above, load <= 3/4 */
typedef struct tok_pairmap_slot {
    uint64_t key; /* UINT64_MAX = empty */
    int32_t rank, merged;
} tok_pairmap_slot;
typedef struct tok_pairmap {
    tok_pairmap_slot *slots;
    size_t cap, count;
} tok_pairmap;
int tok_pairmap_init(tok_pairmap *m, size_t expected);
int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged); /* 1, 0 dup, -1 */
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void tok_pairmap_free(tok_pairmap *m);
uint64_t tok_pair_hash(int32_t a, int32_t b);
int tok_pairmap_put_h(tok_pairmap *m, int32_t a, int32_t b, uint64_t hash, int32_t rank, int32_t merged);
static inline void tok_pairmap_prefetch(const tok_pairmap *m, uint64_t hash)
{
    if (m->cap) __builtin_prefetch(&m->slots[hash & (m->cap - 1)], 1);
}

/* ---- UTF-8 and bytes (tok_utf8.c) ----------------------------------------------- */
/* Decode one code point at s[0..n) (n >= 1); returns its length in bytes, or 0 if
 * the bytes there are not well-formed (then *cp is undefined). */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
size_t tok_utf8_encode(uint32_t cp, char out[4]);
/* Length of the maximal ill-formed subpart starting at s (>= 1), as Unicode's
 * "substitution of maximal subparts" (and Rust's from_utf8_lossy) counts it. */
size_t tok_utf8_bad_len(const unsigned char *s, size_t n);
int tok_utf8_valid(const char *s, size_t n);
/* Append s to b with every ill-formed subpart replaced by U+FFFD. */
int tok_utf8_lossy_append(tok_buf *b, const char *s, size_t n);
/* 1 if s[n-k..n) is a proper prefix of a well-formed sequence for some k in 1..3
 * (text that may still become valid when more bytes come). */
int tok_utf8_incomplete_tail(const char *s, size_t n);
int tok_is_white_space(uint32_t cp); /* Unicode White_Space (Rust char::is_whitespace) */
/* GPT-2 byte-to-unicode mapping. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 if cp is not in the mapping */

/* ---- regex (tok_regex.c) ------------------------------------------------------------ */
typedef struct tok_regex tok_regex;
/* Compile an Oniguruma-style pattern (as tokenizer.json holds) with PCRE2 (UTF, UCP,
 * JIT when available, match and depth limits). what names it in messages. */
ck_status tok_regex_compile(const char *pattern, size_t len, const char *what, tok_regex **out,
                            ck_error *err);
void tok_regex_free(tok_regex *re);
/* Per-call match state (one per thread at a time). */
typedef struct tok_match tok_match;
tok_match *tok_match_create(void);
void tok_match_free(tok_match *m);
/* Find the first match in s[0..n) at or after start. Returns 1 (found: [*ms, *me)),
 * 0 (none) or a ck_status error (> 0 would clash, so: -1 = limit hit / error). */
int tok_regex_find(const tok_regex *re, tok_match *m, const char *s, size_t n, size_t start,
                   size_t *ms, size_t *me);

/* ---- tokenizer.json's big members without cJSON (tok_json_scan.c) ------------------------- */
enum { TOK_JSON_MAX_DEPTH = 64 }; /* deeper nesting is refused (cJSON would recurse) */
typedef struct tok_json_vocab_entry {
    uint32_t off, len; /* the key in vocab_str (NUL-terminated there) */
    int is_number;     /* 0: the value was not a number */
    double id;         /* the number, as strtod gives it */
} tok_json_vocab_entry;
typedef enum tok_json_merge_kind {
    TOK_MERGE_SPLIT,      /* "a b": merge_str[off..] holds "ab", a_len + b_len bytes */
    TOK_MERGE_PAIR,       /* ["a", "b"]: the same */
    TOK_MERGE_BAD_STRING, /* a string without exactly one space: a_len bytes at off */
    TOK_MERGE_OTHER       /* neither form */
} tok_json_merge_kind;
typedef struct tok_json_merge {
    uint32_t off, a_len, b_len;
    tok_json_merge_kind kind;
} tok_json_merge;
typedef struct tok_json_scan {
    int has_vocab;               /* model.vocab is an object: */
    size_t vocab_beg, vocab_end; /* its span in the text */
    tok_buf vocab_str;           /* keys, unescaped, each NUL-terminated */
    tok_json_vocab_entry *vocab; /* [n_vocab] in file order */
    size_t n_vocab;
    int has_merges;              /* model.merges is an array: */
    size_t merges_beg, merges_end;
    tok_buf merge_str;
    tok_json_merge *merges;      /* [n_merges] in file order (= rank) */
    size_t n_merges;
} tok_json_scan;
/* Validate text[0..len) as strict JSON and extract model.vocab / model.merges (see the
 * file's comment). what names the file in messages. On error *out is empty. */
ck_status tok_json_scan_run(const char *what, const char *text, size_t len, tok_json_scan *out, ck_error *err);
void tok_json_scan_free(tok_json_scan *sc); /* and reset */
/* text with the extracted values replaced by {} / [] (malloc'd, NUL-terminated). */
ck_status tok_json_scan_cut(const tok_json_scan *sc, const char *text, size_t len, char **out, size_t *out_len,
                            ck_error *err);

/* ---- pipeline components ----------------------------------------------------------------- */
typedef enum tok_norm_kind {
    TN_PREPEND, TN_REPLACE_STR, TN_REPLACE_RE, TN_NFC, TN_NFKC, TN_NFD, TN_NFKD, TN_STRIP
} tok_norm_kind;
typedef struct tok_norm_step {
    tok_norm_kind kind;
    char *a; size_t a_len;  /* prepend text / replace pattern */
    char *b; size_t b_len;  /* replace content */
    tok_regex *re;
    int left, right;        /* strip */
} tok_norm_step;

typedef enum tok_split_behavior {
    TS_REMOVED, TS_ISOLATED, TS_MERGED_PREV, TS_MERGED_NEXT, TS_CONTIGUOUS
} tok_split_behavior;
typedef enum tok_pre_kind { TP_SPLIT, TP_BYTELEVEL, TP_METASPACE, TP_DIGITS } tok_pre_kind;
typedef enum tok_prepend_scheme { TPS_ALWAYS, TPS_FIRST, TPS_NEVER } tok_prepend_scheme;
typedef struct tok_pre_step {
    tok_pre_kind kind;
    tok_regex *re;            /* Split with a Regex pattern, ByteLevel with use_regex */
    char *str; size_t str_len;/* Split with a String pattern; Metaspace replacement */
    tok_split_behavior behavior;
    int invert;
    int add_prefix_space;     /* ByteLevel */
    tok_prepend_scheme scheme;/* Metaspace */
    int split;                /* Metaspace */
    int individual_digits;    /* Digits */
} tok_pre_step;

typedef enum tok_dec_kind {
    TD_BYTELEVEL, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_REPLACE, TD_METASPACE
} tok_dec_kind;
typedef struct tok_dec_step {
    tok_dec_kind kind;
    char *a; size_t a_len;    /* Strip content / Replace pattern / Metaspace replacement */
    char *b; size_t b_len;    /* Replace content */
    int start, stop;          /* Strip */
    int prepend;              /* Metaspace: strip the first token's leading space */
} tok_dec_step;

typedef struct tok_added {
    char *content; size_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

struct tok_tokenizer {
    int32_t n_vocab;
    char **tokens;        /* [n_vocab] vocabulary strings, NUL-terminated, or NULL */
    uint32_t *token_len;  /* [n_vocab] */
    char **orphans;       /* model strings whose id an added token took over */
    size_t n_orphans;
    uint8_t *flags;       /* [n_vocab] TOKF_* */
    tok_strmap vocab;     /* vocabulary string -> id (model vocab and added tokens) */
    tok_strmap symbols;   /* BPE symbol bytes -> id (== vocab when !byte_level) */
    tok_pairmap merges;
    int byte_level;       /* symbols are raw bytes */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    int32_t byte_ids[256];/* byte-level: id of the 1-byte symbol; byte_fallback: <0xNN> */
    char *sym_store;      /* storage of byte-level symbol keys */
    char *vocab_store;    /* the model vocabulary's strings (tokens[id] point here, */
    size_t vocab_store_len; /* except added tokens' own copies, which are malloc'd) */

    tok_norm_step *norm; size_t n_norm;
    tok_pre_step *pre; size_t n_pre;
    tok_dec_step *dec; size_t n_dec;
    int32_t *post_prefix; size_t n_post_prefix; /* ids the post-processor puts first */
    int32_t *post_suffix; size_t n_post_suffix; /* ... and last */

    tok_added *added; size_t n_added; /* sorted by content length, longest first */
    int has_normalized_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    /* added[] indices grouped by their first two bytes (tokens of 2+ bytes) and by their
       one byte (1-byte tokens), each group in added[]'s longest-first order:
       added_idx2[added_start2[k] .. added_start2[k + 1]) for k = b0 * 256 + b1. */
    uint32_t *added_idx2, *added_start2; /* [n_added], [65537] */
    uint32_t *added_idx1, added_start1[257];

    int32_t bos_id, eos_id;
    char *chat_template;
    int clean_up_spaces;
};

enum {
    TOKF_ADDED = 1,
    TOKF_SPECIAL = 2, /* a special added token of tokenizer.json */
    TOKF_BYTE = 4,    /* <0xNN> byte-fallback token */
    TOKF_NAMED = 8    /* named by tokenizer_config.json (bos_token, ..., additional_special_tokens) or by
                         its tokenizer_class's defaults: skipped by TOK_SKIP_SPECIAL as transformers does */
};
/* The flags that skip_special (TOK_KEEP_SPECIAL / TOK_SKIP_SPECIAL / TOK_SKIP_SPECIAL_JSON) drops. */
static inline uint8_t tok_skip_flags(int skip_special)
{
    return skip_special == TOK_KEEP_SPECIAL ? 0
           : skip_special == TOK_SKIP_SPECIAL_JSON ? (uint8_t)TOKF_SPECIAL
                                                   : (uint8_t)(TOKF_SPECIAL | TOKF_NAMED);
}

/* tok_norm.c: apply the normalizer steps to s[0..n), appending to out. */
ck_status tok_normalize(const tok_tokenizer *t, tok_match *m, const char *s, size_t n, tok_buf *out,
                        tok_buf *tmp, ck_error *err);
/* Unicode normalization forms on valid UTF-8 (form: TN_NFC..TN_NFKD). */
int tok_unicode_normalize(tok_norm_kind form, const char *s, size_t n, tok_buf *out);

/* tok_decode.c: run the decoder chain over the raw pieces (raw = 1: token_to_piece
 * mode, no stripping and no UTF-8 repair). */
ck_status tok_decode_tokens(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                            int raw, tok_buf *out, ck_error *err);

#endif
