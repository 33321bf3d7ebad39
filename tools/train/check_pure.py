# Checks of the pure-Python parts of train.py without torch (run here, on Debian):
#   apt-get install python3-numpy python3-regex; /usr/bin/python3 tools/train/check_pure.py
# (after tools/train/prepare_corpus.sh). Verifies that cutting the corpus into pieces at
# safe_split_points gives exactly the pre-tokens of the whole text, the LR schedule and
# the windowing arithmetic.
import sys, types, math, importlib.util
# stub the GPU-only modules so the pure-Python parts of train.py can be imported
for m in ["torch", "torch.nn", "torch.nn.functional", "tokenizers", "transformers"]:
    sys.modules[m] = types.ModuleType(m)
sys.modules["torch"].no_grad = lambda: (lambda f: f); sys.modules["torch"].nn = sys.modules["torch.nn"]; sys.modules["torch.nn"].functional = sys.modules["torch.nn.functional"]
for n in ["Regex", "Tokenizer", "decoders", "models", "pre_tokenizers", "processors", "trainers"]:
    setattr(sys.modules["tokenizers"], n, None)
spec = importlib.util.spec_from_file_location("train", "tools/train/train.py")
tr = importlib.util.module_from_spec(spec); spec.loader.exec_module(tr)
import regex, numpy as np
pat = regex.compile(tr.SPLIT_PATTERN)
for f in ["train", "heldout", "valid"]:
    text = open("data/corpus/%s.txt" % f, encoding="utf-8").read()
    pieces = tr.safe_split_points(text, 16384)
    assert "".join(pieces) == text
    whole = pat.findall(text)
    split = [t for p in pieces for t in pat.findall(p)]
    assert whole == split, f
    print(f, len(pieces), "pieces; pre-tokens identical:", len(whole), "max piece", max(map(len, pieces)))
# lr schedule
tot, w = 2440, 100
lrs = [tr.lr_at(s, tot, w, 1e-3, 1e-4) for s in range(tot)]
print("lr", lrs[0], lrs[99], lrs[100], lrs[1270], lrs[-1])
assert abs(lrs[99] - 1e-3) < 1e-12 and lrs[-1] > 1e-4 and abs(lrs[-1]-1e-4) < 1e-8
# windowing definition on fake ids
ids = list(range(1000)); W = 256
nwin = len(ids) // W
rows = [[0] + ids[w*W:(w+1)*W] for w in range(nwin)]
assert nwin == 3 and all(len(r) == 257 for r in rows) and rows[2][-1] == 767
# Batcher epoch logic (numpy part)
class FakeRng: pass
stream = np.arange(10000, dtype=np.uint16)
seq, batch = 128, 8
rng = np.random.default_rng(1)
shift = int(rng.integers(0, seq)); starts = np.arange(shift, len(stream) - seq + 1, seq)
assert starts[-1] + seq <= len(stream)
print("steps/epoch", (len(stream) - seq) // seq // batch, "chunks", len(starts))
print("ok")
