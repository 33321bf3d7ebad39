#!/usr/bin/env python3
"""Tokenizer speed: chaski's bench_tok beside Python `tokenizers`, same machine, same run.

Writes a ~10 MB mixed corpus (the parity corpus tests/tok/fixtures/corpus.bin, its cases
repeated in a seeded order, joined by newlines: prose, code, JSON, numbers, CJK, Korean,
Arabic, Devanagari, Cyrillic, Greek, emoji, whitespace, special-token strings), then for
each tokenizer: chaski (bench_tok: load time, best of 3 encodes on one thread) and the
reference (tokenizers.Tokenizer.from_file load time, best of 3 `encode(text,
add_special_tokens=False)` on one thread: TOKENIZERS_PARALLELISM=false,
RAYON_NUM_THREADS=1). Both parse special tokens in the text (the default). Prints a table.

    python3 tools/reference/tokenizer/bench_compare.py --bench build/tests/tok/bench_tok \\
        --tokdir third_party/tokenizers [--mb 10] [--only llama3,qwen3]
"""
import argparse
import os
import random
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
from make_tok_corpus import read_corpus  # noqa: E402

NAMES = ["llama2", "llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]


def make_text(mb, seed):
    cases = read_corpus(os.path.join(ROOT, "tests", "tok", "fixtures", "corpus.bin"))
    rng = random.Random(seed)
    out, n, target = [], 0, int(mb * 1e6)
    while n < target:
        c = rng.choice(cases)
        out.append(c)
        n += len(c.encode("utf-8")) + 1
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to bench_tok")
    ap.add_argument("--tokdir", default=os.path.join(ROOT, "third_party", "tokenizers"))
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default="")
    ap.add_argument("--text-out", default="/tmp/chaski_tok_bench.txt")
    args = ap.parse_args()
    names = [n for n in NAMES if not args.only or n in args.only.split(",")]
    names = [n for n in names if os.path.isfile(os.path.join(args.tokdir, n, "tokenizer.json"))]
    text = make_text(args.mb, args.seed)
    data = text.encode("utf-8")
    with open(args.text_out, "wb") as f:
        f.write(data)
    mb = len(data) / 1e6
    print("corpus: %s, %.2f MB, %d characters" % (args.text_out, mb, len(text)))

    ours = {}
    r = subprocess.run([args.bench, args.text_out] + [os.path.join(args.tokdir, n) for n in names],
                       capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:  # name, load ms (median of 5), load cpu ms, MB/s, tokens/s, tokens
            ours[os.path.basename(f[0].rstrip("/"))] = (float(f[1]), float(f[3]), int(f[5]))

    ref = {}
    try:
        import tokenizers
        from tokenizers import Tokenizer
        ver = tokenizers.__version__
    except ImportError:
        Tokenizer, ver = None, None
    for n in names:
        if Tokenizer is None:
            break
        loads = []
        for _ in range(5):  # median of 5, as bench_tok
            t0 = time.perf_counter()
            tk = Tokenizer.from_file(os.path.join(args.tokdir, n, "tokenizer.json"))
            loads.append(time.perf_counter() - t0)
        load = sorted(loads)[2]
        best, count = 1e30, 0
        for _ in range(3):
            t0 = time.perf_counter()
            enc = tk.encode(text, add_special_tokens=False)
            best = min(best, time.perf_counter() - t0)
            count = len(enc.ids)
        ref[n] = (load * 1e3, mb / best, count)

    print("\n%-12s | %12s %10s %10s | %12s %10s %10s | %8s" % ("tokenizer", "chaski load", "MB/s", "tokens",
                                                             "ref load", "MB/s", "tokens", "speedup"))
    print("%-12s | %12s %10s %10s | %12s %10s %10s |" % ("", "(ms)", "", "", "(ms)", "", ""))
    for n in names:
        o = ours.get(n)
        p = ref.get(n)
        os_ = "%12.1f %10.2f %10d" % o if o else "%12s %10s %10s" % ("-", "-", "-")
        ps = "%12.1f %10.2f %10d" % p if p else "%12s %10s %10s" % ("-", "-", "-")
        sp = "%7.2fx" % (o[1] / p[1]) if o and p else "-"
        print("%-12s | %s | %s | %8s" % (n, os_, ps, sp))
    print("\none thread each; reference: tokenizers %s (TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1);"
          " token counts differ only if ids differ" % ver)


if __name__ == "__main__":
    main()
