#!/usr/bin/env python3
"""Reference fixtures for chaski's native tokenizer (engine/tok).

Runs the reference implementation -- Hugging Face `tokenizers` and `transformers`
(AutoTokenizer) -- over the committed corpus tests/tok/fixtures/corpus.bin (made by
make_tok_corpus.py: >= 1 MB, ~3900 cases) and writes, per tokenizer directory, one
compact binary fixture tests/tok/fixtures/<name>.tokfx, which
tests/tok/test_tok_parity.c compares chaski against.

Command (where tokenizers + transformers are installed: the lead's GPU machine):

    python3 tools/reference/tokenizer/make_tok_fixtures.py \
        --tokdir third_party/tokenizers --out tests/tok/fixtures \
        [--model bundled=models/<name>]

--tokdir: every subdirectory holding a tokenizer.json becomes one fixture, named after
the subdirectory (an unpacked third_party/devpack/tokenizers.tar.xz works: see
pack_for_device.sh). --model name=dir adds one more (repeatable). --only a,b limits
the names. Deterministic: same corpus, same libraries -> same bytes (the meta holds no
timings; the summary printed does).

--loader fast (or --loader NAME=fast, repeatable): load with transformers'
PreTrainedTokenizerFast.from_pretrained(dir) in place of AutoTokenizer and write
<name>.fast.tokfx. PreTrainedTokenizerFast (TokenizersBackend in transformers 5) keeps
tokenizer.json's pipeline; AutoTokenizer maps a config's tokenizer_class
"LlamaTokenizerFast" to transformers 5's LlamaTokenizer, which replaces a byte-level
pre-tokenizer and decoder with Metaspace (transformers issue #45488): deepseek_v3 loses
every space. Made for deepseek_v3 (docs/tokenizer.md):

    python3 tools/reference/tokenizer/make_tok_fixtures.py --tokdir /tmp/tok \
        --only deepseek_v3 --loader fast --out $OUT      # -> $OUT/deepseek_v3.fast.tokfx

Per fixture, for every corpus case: ids (AutoTokenizer.encode, add_special_tokens False
and True), the raw `tokenizers` encode where it differs from AutoTokenizer's, decode of
the add_special_tokens=True ids with and without skip_special_tokens, both by the raw
Tokenizer (decode, decode_skip) and by transformers (hf_decode, hf_decode_skip).
Also seeded random id sequences with their four decodes, and a sample of pieces
(id_to_token and the one-id decode).

File format (all integers unsigned LEB128 varints unless said otherwise):
  b"CKTOKFX1\n", u32 little-endian meta length, meta JSON (UTF-8: library versions,
  command, corpus sha256, counts);
  n_cases (== the corpus's); per case:
    ids:           n, ids...
    ids_special:   as a diff against ids: p, s, m, m ids (ids_special = ids[:p] + mid +
                   ids[len-s:], p and s the common prefix and suffix)
    flags:         bit 0: raw ids follow, as diffs: raw_ids vs ids, raw_ids_special vs
                   ids_special
    4 strings as diffs (p, s, m, m bytes, against a base string, in bytes):
                   decode vs text, decode_skip vs text, hf_decode vs decode,
                   hf_decode_skip vs decode_skip
  n_decode_cases; per case: ids (n, ids...), decode and decode_skip (len, bytes),
                   hf_decode vs decode and hf_decode_skip vs decode_skip (diffs)
  n_pieces; per piece: id, token (len, bytes), decode (len, bytes)
  b"END\n"

Only the standard library, tokenizers and transformers are used.
"""
import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
from make_tok_corpus import read_corpus  # noqa: E402

MAGIC = b"CKTOKFX1\n"


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



class Writer:
    def __init__(self):
        self.b = bytearray()

    def uv(self, x):
        if x < 0:
            raise ValueError("negative varint %d" % x)
        while True:
            c = x & 0x7F
            x >>= 7
            if x:
                self.b.append(c | 0x80)
            else:
                self.b.append(c)
                return

    def ids(self, ids):
        self.uv(len(ids))
        for i in ids:
            self.uv(i)

    def bytes_(self, s):
        if isinstance(s, str):
            s = s.encode("utf-8")
        self.uv(len(s))
        self.b += s

    def diff(self, want, base, ids=False):
        """want as (common prefix p, common suffix s, middle) against base."""
        if not ids:
            want = want.encode("utf-8")
            base = base.encode("utf-8")
        n = min(len(want), len(base))
        p = 0
        while p < n and want[p] == base[p]:
            p += 1
        s = 0
        while s < n - p and want[len(want) - 1 - s] == base[len(base) - 1 - s]:
            s += 1
        self.uv(p)
        self.uv(s)
        mid = want[p:len(want) - s]
        if ids:
            self.ids(mid)
        else:
            self.bytes_(mid)


def make_fixture(name, tokdir, corpus, corpus_sha, args, loader="auto"):
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    t0 = time.time()
    if loader == "fast":
        hf = PreTrainedTokenizerFast.from_pretrained(tokdir)
    else:
        hf = AutoTokenizer.from_pretrained(tokdir)
    raw = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    t_load = time.time() - t0
    vocab_size = raw.get_vocab_size(with_added_tokens=True)
    added = raw.get_added_tokens_decoder()  # {id: AddedToken}
    added_ids = sorted(added.keys())
    special_ids = sorted(i for i, a in added.items() if a.special)

    t0 = time.time()
    w = Writer()
    w.uv(len(corpus))
    n_raw_diff = n_ids = 0
    for text in corpus:
        ids_n = list(hf.encode(text, add_special_tokens=False))
        ids_s = list(hf.encode(text, add_special_tokens=True))
        n_ids += len(ids_n)
        w.ids(ids_n)
        w.diff(ids_s, ids_n, ids=True)
        r_n = raw.encode(text, add_special_tokens=False).ids
        r_s = raw.encode(text, add_special_tokens=True).ids
        if r_s != ids_s or r_n != ids_n:
            n_raw_diff += 1
            w.uv(1)
            w.diff(r_n, ids_n, ids=True)
            w.diff(r_s, ids_s, ids=True)
        else:
            w.uv(0)
        d = raw.decode(ids_s, skip_special_tokens=False)
        ds = raw.decode(ids_s, skip_special_tokens=True)
        w.diff(d, text)
        w.diff(ds, text)
        w.diff(hf.decode(ids_s, skip_special_tokens=False), d)
        w.diff(hf.decode(ids_s, skip_special_tokens=True), ds)

    pieces_ids = sample_ids(raw, vocab_size, added_ids, args.seed + 1)
    seqs = random_id_sequences(vocab_size, special_ids, pieces_ids, args.seed + 2, args.n_decode)
    w.uv(len(seqs))
    for seq in seqs:
        w.ids(seq)
        d = raw.decode(seq, skip_special_tokens=False)
        ds = raw.decode(seq, skip_special_tokens=True)
        w.bytes_(d)
        w.bytes_(ds)
        w.diff(hf.decode(seq, skip_special_tokens=False), d)
        w.diff(hf.decode(seq, skip_special_tokens=True), ds)
    w.uv(len(pieces_ids))
    for i in pieces_ids:
        w.uv(i)
        w.bytes_(raw.id_to_token(i))
        w.bytes_(raw.decode([i], skip_special_tokens=False))
    w.b += b"END\n"

    meta = {
        "format": "CKTOKFX1",
        "name": name,
        "tokdir": os.path.basename(os.path.normpath(tokdir)),
        "tokenizer_json_sha256": hashlib.sha256(open(os.path.join(tokdir, "tokenizer.json"), "rb").read()).hexdigest(),
        "corpus_sha256": corpus_sha,
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "python": sys.version.split()[0],
        "command": "python3 tools/reference/tokenizer/make_tok_fixtures.py " + " ".join(args.argv),
        "hf_class": type(hf).__name__,
        "hf_loader": "PreTrainedTokenizerFast.from_pretrained" if loader == "fast" else "AutoTokenizer.from_pretrained",
        "vocab_size": vocab_size,
        "bos_token_id": hf.bos_token_id,
        "eos_token_id": hf.eos_token_id,
        "n_cases": len(corpus),
        "n_ids": n_ids,
        "n_cases_raw_differs": n_raw_diff,
        "n_decode_cases": len(seqs),
        "n_pieces": len(pieces_ids),
    }
    mj = json.dumps(meta, sort_keys=True).encode("utf-8")
    data = MAGIC + struct.pack("<I", len(mj)) + mj + bytes(w.b)
    return data, meta, t_load, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokdir", help="directory whose subdirectories each hold a tokenizer.json")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="one more tokenizer directory (repeatable)")
    ap.add_argument("--only", default="", help="comma-separated names to make (default: all found)")
    ap.add_argument("--out", required=True, help="output directory (tests/tok/fixtures, or $OUT)")
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests", "tok", "fixtures", "corpus.bin"))
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--n-decode", type=int, default=300, help="seeded random id sequences for decode")
    ap.add_argument("--loader", action="append", default=[], metavar="[NAME=]fast",
                    help="PreTrainedTokenizerFast instead of AutoTokenizer (for NAME, or all); writes NAME.fast.tokfx")
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
    if args.only:
        want = set(args.only.split(","))
        dirs = [x for x in dirs if x[0] in want]
    if not dirs:
        ap.error("no tokenizer directories found")

    corpus = read_corpus(args.corpus)
    corpus_sha = hashlib.sha256(open(args.corpus, "rb").read()).hexdigest()
    print("corpus %s: %d cases, %d bytes, sha256 %s" % (args.corpus, len(corpus),
          sum(len(c.encode("utf-8")) for c in corpus), corpus_sha[:16]))
    os.makedirs(args.out, exist_ok=True)
    total = 0
    print("%-14s %6s %9s %9s %8s %7s %8s %9s" % ("tokenizer", "cases", "ids", "raw!=hf", "decodes", "pieces", "load s",
                                                  "KB"))
    fast = set()
    for spec in args.loader:
        n, _, kind = spec.rpartition("=")
        if kind != "fast":
            ap.error("--loader wants fast or NAME=fast, got %r" % spec)
        fast.add(n or "*")
    for name, d in dirs:
        loader = "fast" if ("*" in fast or name in fast) else "auto"
        data, m, t_load, t_run = make_fixture(name, d, corpus, corpus_sha, args, loader)
        path = os.path.join(args.out, name + (".fast" if loader == "fast" else "") + ".tokfx")
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
        print("%-14s %6d %9d %9d %8d %7d %8.2f %9.0f  (%s, %.1f s, tokenizers %s, transformers %s)"
              % (name, m["n_cases"], m["n_ids"], m["n_cases_raw_differs"], m["n_decode_cases"], m["n_pieces"],
                 t_load, len(data) / 1024, path, t_run, m["tokenizers_version"], m["transformers_version"]))
        sys.stdout.flush()
    print("total %.2f MB in %d fixture files" % (total / 1e6, len(dirs)))


if __name__ == "__main__":
    main()
