#!/usr/bin/env python3
"""Reference fixtures for chaski's native tokenizer (engine/tok).

Runs the reference implementation -- Hugging Face `tokenizers` and `transformers`
(AutoTokenizer) -- over a corpus of test strings and writes, for each tokenizer
directory, tests/tok/fixtures/<name>.json, which tests/tok/test_tok_parity.c
compares chaski against.

Command (run where tokenizers + transformers are installed; the lead's GPU machine):

    python3 tools/reference/tokenizer/make_tok_fixtures.py \
        --tokdir third_party/tokenizers --out tests/tok/fixtures \
        [--model bundled=models/<name>]

--tokdir: every subdirectory holding a tokenizer.json becomes one fixture, named
after the subdirectory. --model name=dir adds one more (repeatable).

Per fixture:
  meta:   library versions, the command, the tokenizer's name
  cases:  for each string: text, ids (AutoTokenizer.encode, add_special_tokens=True
          and False), decode of the add_special_tokens=True ids with and without
          skip_special_tokens, both as transformers decodes them (hf_*, which applies
          clean_up_tokenization_spaces from the config) and as the raw `tokenizers`
          Tokenizer decodes them. raw_ids / raw_ids_special are written only where the
          raw `tokenizers` encode differs from AutoTokenizer's.
  decode_cases: seeded random id sequences (mixing special, byte and ordinary
          tokens) with their raw and transformers decodes.
  pieces: a sample of ids with their vocabulary string (id_to_token) and the raw
          decode of that one id.

Only the standard library, tokenizers and transformers are used.
"""
import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# A mixed alphabet for the seeded random strings: ASCII, whitespace of every kind,
# Latin accents, combining marks, Greek, Cyrillic, Arabic, Hebrew, Devanagari, CJK,
# Hangul, emoji with modifiers and joiners, digits of several scripts, oddities.
ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" " * 12) + ["\t", "\n", "\r\n", "\r", "\u00a0", "\u200b", "\u3000", "\u2009", "\u200d", "\ufeff"]
    + list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`")
    + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"]
    + list("éèêëàâäôöûüçñßøåæœÉÀÇÑ") + ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303"]
    + list("αβγδεζηθλμπσωΑΒΓΔΩ") + list("абвгдежзийклмнопрстуфхцчшщъыьэюяЖЩЯ")
    + list("مرحبابالعالم") + list("שלוםעולם") + list("नमस्तेदुनिया") + list("你好世界中文字测试的一是")
    + list("こんにちはカタカナ") + list("안녕하세요세계한국어")
    + ["😀", "👍", "🏽", "👨", "👩", "👧", "❤", "\ufe0f", "🇺", "🇸", "🌍", "🤖", "✓"]
    + list("٠١٢٣٤٥٦٧٨٩") + list("０１２３ＡＢＣ") + ["ﬁ", "①", "½", "™", "Ⅻ", "\x00", "\x7f", "\ue000", "\U0010ffff"]
)

SPECIAL_SNIPPETS = ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>",
                    "<|endoftext|>", "<think>", "</think>", "<bos>", "<eos>", "<0x41>"]


def random_strings(seed, count):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.03:
                parts.append(rng.choice(SPECIAL_SNIPPETS))
            elif r < 0.25:
                # a run of one character (spaces, digits, letters)
                parts.append(rng.choice(ALPHABET) * rng.randint(2, 6))
            else:
                parts.append(rng.choice(ALPHABET))
        out.append("".join(parts))
    return out


def load_corpus(path, seed, n_random):
    with open(path, encoding="utf-8") as f:
        fixed = json.load(f)
    return fixed + random_strings(seed, n_random)


def sample_ids(tok_raw, vocab_size, added_ids, seed):
    rng = random.Random(seed)
    ids = set(range(min(300, vocab_size)))
    ids.update(added_ids)
    ids.update(rng.randrange(vocab_size) for _ in range(700))
    ids.update(range(max(0, vocab_size - 20), vocab_size))
    return sorted(i for i in ids if tok_raw.id_to_token(i) is not None)


def random_id_sequences(vocab_size, special_ids, piece_ids, seed, count):
    rng = random.Random(seed)
    seqs = []
    for _ in range(count):
        n = rng.randint(1, 24)
        seq = []
        for _ in range(n):
            r = rng.random()
            if r < 0.1 and special_ids:
                seq.append(rng.choice(special_ids))
            elif r < 0.4:
                seq.append(rng.choice(piece_ids[:300]))  # low ids: bytes / short pieces
            else:
                seq.append(rng.randrange(vocab_size))
        seqs.append(seq)
    return seqs


def make_fixture(name, tokdir, corpus, args):
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tokdir)
    raw = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    vocab_size = raw.get_vocab_size(with_added_tokens=True)
    added = raw.get_added_tokens_decoder()  # {id: AddedToken}
    added_ids = sorted(added.keys())
    special_ids = sorted(i for i, a in added.items() if a.special)

    t0 = time.time()
    cases = []
    n_raw_diff = 0
    for text in corpus:
        ids_s = list(hf.encode(text, add_special_tokens=True))
        ids_n = list(hf.encode(text, add_special_tokens=False))
        case = {
            "text": text,
            "ids": ids_n,
            "ids_special": ids_s,
            "decode": raw.decode(ids_s, skip_special_tokens=False),
            "decode_skip": raw.decode(ids_s, skip_special_tokens=True),
            "hf_decode": hf.decode(ids_s, skip_special_tokens=False),
            "hf_decode_skip": hf.decode(ids_s, skip_special_tokens=True),
        }
        r_s = raw.encode(text, add_special_tokens=True).ids
        r_n = raw.encode(text, add_special_tokens=False).ids
        if r_s != ids_s or r_n != ids_n:
            case["raw_ids"] = r_n
            case["raw_ids_special"] = r_s
            n_raw_diff += 1
        cases.append(case)

    pieces_ids = sample_ids(raw, vocab_size, added_ids, args.seed + 1)
    pieces = [{"id": i, "token": raw.id_to_token(i), "decode": raw.decode([i], skip_special_tokens=False)}
              for i in pieces_ids]

    decode_cases = []
    for seq in random_id_sequences(vocab_size, special_ids, pieces_ids, args.seed + 2, args.n_decode):
        decode_cases.append({
            "ids": seq,
            "decode": raw.decode(seq, skip_special_tokens=False),
            "decode_skip": raw.decode(seq, skip_special_tokens=True),
            "hf_decode": hf.decode(seq, skip_special_tokens=False),
            "hf_decode_skip": hf.decode(seq, skip_special_tokens=True),
        })

    meta = {
        "name": name,
        "tokdir": tokdir,
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "python": sys.version.split()[0],
        "command": "python3 tools/reference/tokenizer/make_tok_fixtures.py " + " ".join(args.argv),
        "hf_class": type(hf).__name__,
        "vocab_size": vocab_size,
        "bos_token_id": hf.bos_token_id,
        "eos_token_id": hf.eos_token_id,
        "n_cases": len(cases),
        "n_cases_raw_differs": n_raw_diff,
        "seconds": round(time.time() - t0, 2),
    }
    return {"meta": meta, "cases": cases, "decode_cases": decode_cases, "pieces": pieces}


def add_hex_for_nul(item):
    """cJSON strings end at NUL: beside any string field holding U+0000, also write
    <field>_hex, the UTF-8 bytes in hex, which the C tests prefer when present."""
    for k in list(item.keys()):
        v = item[k]
        if isinstance(v, str) and "\x00" in v:
            item[k + "_hex"] = v.encode("utf-8").hex()
    return item


def write_fixture(path, fx):
    # One case per line: small diffs when a fixture is regenerated.
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n\"meta\": " + json.dumps(fx["meta"], ensure_ascii=False, sort_keys=True) + ",\n")
        for key in ("cases", "decode_cases", "pieces"):
            f.write("\"%s\": [\n" % key)
            items = fx[key]
            for i, item in enumerate(items):
                f.write(json.dumps(add_hex_for_nul(item), ensure_ascii=False) + (",\n" if i + 1 < len(items) else "\n"))
            f.write("]" + (",\n" if key != "pieces" else "\n"))
        f.write("}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokdir", help="directory whose subdirectories each hold a tokenizer.json")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="one more tokenizer directory (repeatable)")
    ap.add_argument("--out", required=True, help="output directory (tests/tok/fixtures)")
    ap.add_argument("--strings", default=os.path.join(HERE, "strings.json"))
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--n-random", type=int, default=300, help="seeded random strings added to the corpus")
    ap.add_argument("--n-decode", type=int, default=200, help="seeded random id sequences for decode")
    args = ap.parse_args()
    args.argv = sys.argv[1:]

    dirs = []
    if args.tokdir:
        for sub in sorted(os.listdir(args.tokdir)):
            d = os.path.join(args.tokdir, sub)
            if os.path.isfile(os.path.join(d, "tokenizer.json")):
                dirs.append((sub, d))
    for spec in args.model:
        if "=" not in spec:
            ap.error("--model wants NAME=DIR, got %r" % spec)
        name, d = spec.split("=", 1)
        if not os.path.isfile(os.path.join(d, "tokenizer.json")):
            ap.error("--model %s: no tokenizer.json in %s" % (name, d))
        dirs.append((name, d))
    if not dirs:
        ap.error("no tokenizer directories found")

    corpus = load_corpus(args.strings, args.seed, args.n_random)
    os.makedirs(args.out, exist_ok=True)
    for name, d in dirs:
        fx = make_fixture(name, d, corpus, args)
        path = os.path.join(args.out, name + ".json")
        write_fixture(path, fx)
        m = fx["meta"]
        print("%s: %d cases (%d where raw tokenizers != AutoTokenizer), %d decode cases, %d pieces, %s (%.0f KB) in %ss"
              % (name, m["n_cases"], m["n_cases_raw_differs"], len(fx["decode_cases"]), len(fx["pieces"]),
                 path, os.path.getsize(path) / 1024, m["seconds"]))


if __name__ == "__main__":
    main()
