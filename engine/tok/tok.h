/* tok.h: the native tokenizer (module prefix tok_).
 *
 * Reads the tokenizer.json that Hugging Face model repositories ship (plus
 * tokenizer_config.json) and produces the same ids as the `tokenizers` library:
 *   - BPE models: byte-level BPE with a regex pre-tokenizer (Llama 3, Qwen 2/3, ...)
 *     and SentencePiece-style BPE with byte fallback (Llama 2, Mistral, ...);
 *   - normalizers: Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Strip;
 *   - pre-tokenizers: Sequence, Split, ByteLevel, Metaspace, Digits;
 *   - added tokens with lstrip / rstrip / single_word / normalized;
 *   - post-processors: TemplateProcessing, ByteLevel, Roberta/Bert, Sequence,
 *     overridden by add_bos_token / add_eos_token for Llama-class configs;
 *   - decoders: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence.
 * Regexes run on PCRE2 (JIT when available) under a match limit.
 *
 * Threads: a tok_tokenizer is immutable after creation; every function taking a
 * `const tok_tokenizer *` may be called from many threads at once [any thread].
 * A tok_stream belongs to one thread at a time [not concurrently with itself].
 *
 * Errors: every failing function returns a ck_status and fills the caller's
 * ck_error (which may be NULL) with a message naming the file, field or input.
 * Buffers: output buffers are caller-owned with two-call sizing: the total size is
 * always stored in *n_out / *len_out; at most cap items are written; a too-small
 * buffer is not an error (call again with cap >= the size). Text out is not
 * NUL-terminated.
 */
#ifndef TOK_H
#define TOK_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"

typedef struct tok_tokenizer tok_tokenizer;

/* Load model_dir/tokenizer.json, model_dir/tokenizer_config.json (optional) and
 * model_dir/special_tokens_map.json (optional). On success *out owns everything;
 * free it with tok_destroy. Errors: CK_E_IO (file unreadable), CK_E_MISSING (no
 * tokenizer.json / required field), CK_E_FORMAT (malformed JSON or field),
 * CK_E_UNSUPPORTED (a component type this module does not implement),
 * CK_E_OUT_OF_MEMORY. */
ck_status tok_create_from_dir(const char *model_dir, tok_tokenizer **out, ck_error *err);

/* The same from memory. tokenizer_config_json may be NULL (cfg_len ignored).
 * The buffers are only read during the call. */
ck_status tok_create_from_json(const char *tokenizer_json, size_t len,
                               const char *tokenizer_config_json, size_t cfg_len,
                               tok_tokenizer **out, ck_error *err);

/* Free a tokenizer; NULL is fine. No stream created from it may outlive it. */
void tok_destroy(tok_tokenizer *t);

typedef struct tok_encode_opts {
    int add_special;   /* add BOS/EOS etc. as the post-processor and the config say */
    int parse_special; /* match special added tokens in the text (1, the reference's
                          default); 0 treats them as plain text (non-special added
                          tokens are still matched, as in the reference) */
} tok_encode_opts;

/* Defaults: add_special = 1, parse_special = 1. */
tok_encode_opts tok_encode_opts_default(void);

/* Encode text_len bytes of UTF-8 (invalid bytes are encoded as U+FFFD would be,
 * never refused). opts may be NULL (defaults). Writes at most cap ids to out_ids
 * (which may be NULL when cap is 0) and the total count to *n_out.
 * Errors: CK_E_INVALID_ARGUMENT, CK_E_OUT_OF_MEMORY, CK_E_UNSUPPORTED (the
 * regex hit its match limit on this input). [any thread] */
ck_status tok_encode(const tok_tokenizer *t, const char *text, size_t text_len,
                     const tok_encode_opts *opts, int32_t *out_ids, size_t cap,
                     size_t *n_out, ck_error *err);

/* What decode drops (the skip_special argument of tok_decode and tok_stream_create). */
enum {
    TOK_KEEP_SPECIAL = 0,
    /* as transformers' decode(skip_special_tokens=True): tokenizer.json's special added
       tokens, and every token that tokenizer_config.json names as special (bos_token,
       eos_token, unk_token, sep_token, pad_token, cls_token, mask_token,
       additional_special_tokens, extra_special_tokens; a name the config leaves out takes
       the tokenizer_class's default, e.g. GemmaTokenizer's mask_token "<mask>"). Without
       a tokenizer_config.json this equals TOK_SKIP_SPECIAL_JSON. Any other non-zero value
       means this too. */
    TOK_SKIP_SPECIAL = 1,
    /* as the `tokenizers` library's Tokenizer.decode(skip_special_tokens=True): only the
       added tokens that tokenizer.json marks "special": true */
    TOK_SKIP_SPECIAL_JSON = 2
};

/* Decode ids to UTF-8 text as the reference's Tokenizer.decode does (decoder chain,
 * invalid UTF-8 replaced by U+FFFD; no clean_up_tokenization_spaces, see
 * tok_clean_up_spaces). skip_special: TOK_KEEP_SPECIAL, TOK_SKIP_SPECIAL or
 * TOK_SKIP_SPECIAL_JSON (above).
 * Errors: CK_E_INVALID_ARGUMENT (an id outside [0, vocab size)). [any thread] */
ck_status tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                     char *out, size_t cap, size_t *len_out, ck_error *err);

/* The raw bytes one token stands for (no leading-space stripping, no UTF-8
 * repair: a byte token yields its single byte). [any thread] */
ck_status tok_token_to_piece(const tok_tokenizer *t, int32_t id, char *out, size_t cap,
                             size_t *len_out, ck_error *err);

/* The token's string as written in the vocabulary (e.g. "Ġthe", "▁the", "<0x0A>"),
 * NUL-terminated, owned by t; NULL for an id out of range. */
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id);

/* The id of a vocabulary or added-token string, or -1. */
int32_t tok_token_to_id(const tok_tokenizer *t, const char *token, size_t token_len);

int32_t tok_vocab_size(const tok_tokenizer *t); /* 1 + the largest id (model and added) */
int32_t tok_bos_id(const tok_tokenizer *t);     /* -1 if none */
int32_t tok_eos_id(const tok_tokenizer *t);     /* -1 if none */
int tok_is_special(const tok_tokenizer *t, int32_t id); /* 1 for special added tokens (tokenizer.json) */

/* tokenizer_config.json's chat_template (the default one when it is a list), or
 * NULL. Owned by t. */
const char *tok_chat_template(const tok_tokenizer *t);

/* tokenizer_config.json's clean_up_tokenization_spaces (transformers applies it in
 * its decode; tok_decode does not). */
int tok_clean_up_spaces(const tok_tokenizer *t);

/* transformers' clean_up_tokenization: in place on text[0..len), returns the new
 * length (" ." -> ".", " n't" -> "n't", ...). */
size_t tok_apply_clean_up(char *text, size_t len);

/* Streaming detokenizer: push ids one at a time; each push releases only complete
 * UTF-8 text, and the concatenation of everything released (pushes then flush)
 * equals tok_decode of all ids pushed. The stream keeps a pointer to t. */
typedef struct tok_stream tok_stream;
/* skip_special: as tok_decode's. */
ck_status tok_stream_create(const tok_tokenizer *t, int skip_special, tok_stream **out,
                            ck_error *err);
/* Two-call sizing does not apply here: if cap is too small nothing is consumed,
 * *len_out says the size needed and CK_E_INVALID_ARGUMENT is returned; push the same
 * id again with a larger buffer. */
ck_status tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap, size_t *len_out,
                          ck_error *err);
/* Release whatever is held back (incomplete UTF-8 becomes U+FFFD) and reset. */
ck_status tok_stream_flush(tok_stream *s, char *out, size_t cap, size_t *len_out,
                           ck_error *err);
void tok_stream_destroy(tok_stream *s); /* NULL ok */

#endif
