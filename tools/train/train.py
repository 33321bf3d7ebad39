#!/usr/bin/env python3
"""Train chaski's bundled default model (issue 8) on the GPU machine.

    python3 tools/train/train.py --corpus data/corpus --out models/chaski-pd-16m \\
        --tar "$OUT/chaski-pd-16m.tar"

Steps: byte-level BPE tokenizer (HF tokenizers) trained on train.txt; a Llama
model (transformers LlamaForCausalLM: RMSNorm, RoPE, SwiGLU, GQA) trained on the
packed train tokens with AdamW, warm-up + cosine, bf16 autocast; the checkpoint
with the lowest loss on valid.txt is saved in BF16 with save_pretrained; then the
saved directory is reloaded in float32 and evaluated: held-out perplexity (the
exact definition chaski reproduces, see reference_perplexity) and greedy
references for three prompts (an explicit float32 argmax loop, no EOS stop).

--smoke: tiny tokenizer and model, 30 steps, same code paths, ~1 minute.

Dependencies: Python 3 stdlib, torch, transformers, tokenizers, safetensors, numpy.
"""
import argparse
import hashlib
import io
import json
import math
import os
import platform
import random
import sys
import tarfile
import time

T_START = time.time()

import numpy as np
import torch
import torch.nn.functional as F

import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS, EOS = "<|bos|>", "<|eos|>"
# GPT-2's pre-tokenizer pattern (what ByteLevel(use_regex=True) applies), written
# out as an explicit Split so that tokenizer.json states it.
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

EVAL_CHARS = 32768
EVAL_WINDOW = 256
PROMPTS = ["In the beginning", "And the LORD said unto Moses,", "Blessed are"]
GEN_TOKENS = 64


def log(*a):
    msg = " ".join(str(x) for x in a)
    line = "[%7.1fs] %s" % (time.time() - T_START, msg)
    print(line, flush=True)
    if LOG_FILE is not None:
        LOG_FILE.write(line + "\n")
        LOG_FILE.flush()


LOG_FILE = None


def read_text(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


# --------------------------------------------------------------------------- tokenizer

def build_tokenizer(train_text, vocab_size, max_len):
    tok = Tokenizer(models.BPE())  # no unk: byte-level covers every input
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # pieces of the text with their newlines, cut where pre-tokenization is unaffected
    pieces = safe_split_points(train_text, 16384)
    tok.train_from_iterator(pieces, trainer=trainer, length=len(pieces))
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    assert (bos_id, eos_id) == (0, 1), (bos_id, eos_id)
    tok.post_processor = processors.TemplateProcessing(
        single=BOS + " $A:0",
        pair=BOS + " $A:0 " + BOS + " $B:1",
        special_tokens=[(BOS, bos_id)],
    )
    return tok


def save_tokenizer(tok, out, max_len):
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS}, f, indent=2)
        f.write("\n")


def safe_split_points(text, piece_chars):
    """Cut text into pieces of about piece_chars just after a "\\n" that follows a
    non-space character and precedes either a non-space character or one more
    "\\n" and then a non-space character ("x\\n|Y", "x\\n|\\nY"). With the GPT-2
    split pattern the pre-tokens on either side of such a cut are the same as in
    the whole text, so encoding the pieces separately gives exactly the ids of
    encoding the whole text (checked on a prefix by encode_stream, and on the
    whole corpus against the regex by tools/train/README.md's check)."""
    pieces, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + piece_chars)
        if end < n:
            k = end
            while k < n - 2 and not (text[k] == "\n" and not text[k - 1].isspace() and (
                    not text[k + 1].isspace() or (text[k + 1] == "\n" and not text[k + 2].isspace()))):
                k += 1
            end = k + 1 if k < n - 2 else n
        pieces.append(text[start:end])
        start = end
    assert "".join(pieces) == text
    return pieces


def encode_stream(tok, text):
    """Token ids of text without special tokens, as uint16 numpy array."""
    pieces = safe_split_points(text, 16384)
    encs = tok.encode_batch(pieces, add_special_tokens=False)
    ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64)
    # check the piecewise encoding against one-shot encoding on a prefix
    probe = "".join(pieces[:8])
    whole = tok.encode(probe, add_special_tokens=False).ids
    n = sum(len(e.ids) for e in encs[:8])
    if whole != ids[:n].tolist():
        log("WARNING: piecewise encoding differs from whole-text encoding; encoding whole text")
        ids = np.asarray(tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)
    assert ids.max() < 65536
    return ids.astype(np.uint16)


# --------------------------------------------------------------------------- model

def model_config(vocab, smoke, max_pos):
    from transformers import LlamaConfig
    if smoke:
        dims = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1)
    else:
        dims = dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                    num_attention_heads=6, num_key_value_heads=2)
    return LlamaConfig(
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        initializer_range=0.02,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        use_cache=False,
        bos_token_id=0,
        eos_token_id=1,
        **dims,
    )


def add_dropout_hooks(model, p):
    """Dropout on the embedding output and on each attention and MLP output
    (training only; nothing of it is saved). Llama has no residual dropout."""
    def hook(module, inputs, output):
        if not module.training or p <= 0:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, True),) + tuple(output[1:])
        return F.dropout(output, p, True)
    handles = [model.model.embed_tokens.register_forward_hook(hook)]
    for layer in model.model.layers:
        handles.append(layer.self_attn.register_forward_hook(hook))
        handles.append(layer.mlp.register_forward_hook(hook))
    return handles


class Batcher:
    """Seeded packed batches: each sample is BOS + T consecutive stream tokens
    (T+1 ids); inputs are the first T, targets the last T. Each epoch uses
    non-overlapping chunks from a random offset, in a random order."""

    def __init__(self, stream, seq, batch, seed, bos_id, device):
        self.stream = torch.from_numpy(stream.astype(np.int64)).to(device)
        self.seq, self.batch, self.bos = seq, batch, bos_id
        self.rng = np.random.default_rng(seed)
        self.queue = np.empty(0, dtype=np.int64)
        self.epoch = 0
        self.device = device
        self.steps_per_epoch = (len(stream) - seq) // seq // batch

    def _refill(self):
        n = len(self.stream)
        shift = int(self.rng.integers(0, self.seq))
        starts = np.arange(shift, n - self.seq + 1, self.seq, dtype=np.int64)
        self.rng.shuffle(starts)
        self.queue = np.concatenate([self.queue, starts])
        self.epoch += 1

    def next(self):
        while len(self.queue) < self.batch:
            self._refill()
        starts, self.queue = self.queue[:self.batch], self.queue[self.batch:]
        idx = torch.from_numpy(starts).to(self.device)[:, None] + torch.arange(self.seq, device=self.device)[None, :]
        toks = self.stream[idx]
        bos = torch.full((self.batch, 1), self.bos, dtype=torch.long, device=self.device)
        full = torch.cat([bos, toks], dim=1)
        return full[:, :-1].contiguous(), full[:, 1:].contiguous()


@torch.no_grad()
def window_nll(model, ids, window, bos_id, device, batch=64, autocast=False):
    """Sum of NLL over non-overlapping windows of `window` tokens, each with BOS
    prepended, tokens 1..window predicted. Returns (total_nll, n_tokens, per_window)."""
    nwin = len(ids) // window
    per = []
    for b0 in range(0, nwin, batch):
        b1 = min(nwin, b0 + batch)
        rows = [[bos_id] + list(map(int, ids[w * window:(w + 1) * window])) for w in range(b0, b1)]
        x = torch.tensor(rows, dtype=torch.long, device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x, use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)
        per.extend(nll.double().sum(dim=1).tolist())
    return math.fsum(per), nwin * window, per


def lr_at(step, total, warmup, peak, floor):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * t))


# --------------------------------------------------------------------------- main

def main():
    global LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--out", default=None, help="model directory (default models/chaski-pd-16m; /tmp/chaski-smoke with --smoke)")
    ap.add_argument("--tar", default=None, help="also write the model directory as one tar here (split into PATH.partNN if over --split-mib)")
    ap.add_argument("--split-mib", type=float, default=15.0)
    ap.add_argument("--log", default=None, help="append the log to this file too")
    ap.add_argument("--smoke", action="store_true", help="tiny tokenizer and model, 30 steps")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=512, help="training context (tokens after BOS)")
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--epochs", type=float, default=40.0, help="planned passes over train.txt (cosine horizon)")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of steps (overrides --epochs and the time fit)")
    ap.add_argument("--train-seconds", type=float, default=300.0, help="wall-clock cap on the training loop")
    ap.add_argument("--eval-every", type=int, default=0, help="steps between valid evaluations (default: ~1/2 epoch)")
    args = ap.parse_args()

    if args.smoke:
        args.vocab = min(args.vocab, 1024)
        args.seq, args.batch, args.steps, args.warmup = 128, 8, 30, 5
        args.eval_every = 10
        args.max_pos = 512
    out = args.out or ("/tmp/chaski-smoke" if args.smoke else "models/chaski-pd-16m")
    os.makedirs(out, exist_ok=True)
    if args.log:
        LOG_FILE = open(args.log, "a", encoding="utf-8")
    name = os.path.basename(os.path.normpath(out))
    cmdline = "python3 tools/train/train.py " + " ".join(sys.argv[1:])

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.cuda.manual_seed_all(args.seed)
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    log("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
        "python", platform.python_version(), "gpu", gpu, "smoke" if args.smoke else "")

    # ---- corpus
    train_text = read_text(os.path.join(args.corpus, "train.txt"))
    valid_text = read_text(os.path.join(args.corpus, "valid.txt"))
    heldout_text = read_text(os.path.join(args.corpus, "heldout.txt"))
    corpus_sha = {k: hashlib.sha256(v.encode("utf-8")).hexdigest()
                  for k, v in (("train.txt", train_text), ("valid.txt", valid_text), ("heldout.txt", heldout_text))}
    if args.smoke:
        train_text = train_text[:1_000_000]
        valid_text = valid_text[:50_000]
    log("corpus chars: train %d valid %d heldout %d" % (len(train_text), len(valid_text), len(heldout_text)))

    # ---- tokenizer
    t0 = time.time()
    tok = build_tokenizer(train_text, args.vocab, args.max_pos)
    vocab = tok.get_vocab_size()
    save_tokenizer(tok, out, args.max_pos)
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))  # use exactly what was saved
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    log("tokenizer: vocab %d, trained in %.1fs" % (vocab, time.time() - t0))
    t0 = time.time()
    train_ids = encode_stream(tok, train_text)
    valid_ids = encode_stream(tok, valid_text)
    log("tokens: train %d (%.2f chars/token) valid %d, encoded in %.1fs"
        % (len(train_ids), len(train_text) / len(train_ids), len(valid_ids), time.time() - t0))

    # ---- model
    from transformers import GenerationConfig, LlamaForCausalLM
    cfg = model_config(vocab, args.smoke, args.max_pos)
    model = LlamaForCausalLM(cfg).to(device=dev, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d params (%.2fM), attn %s, %s" % (n_params, n_params / 1e6, getattr(model.config, "_attn_implementation", "?"),
        {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads")}))
    hooks = add_dropout_hooks(model, args.dropout)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    torch.set_float32_matmul_precision("high")  # TF32 allowed while training

    batcher = Batcher(train_ids, args.seq, args.batch, args.seed, bos_id, dev)
    spe = max(1, batcher.steps_per_epoch)
    planned = args.steps if args.steps > 0 else max(args.warmup + 10, int(round(args.epochs * spe)))
    eval_every = args.eval_every or max(10, spe // 2)
    log("train: seq %d batch %d (%d tokens/step), %d steps/epoch, planned %d steps (%.1f epochs), eval every %d"
        % (args.seq, args.batch, args.seq * args.batch, spe, planned, planned / spe, eval_every))

    def valid_loss():
        model.eval()
        tot, n, _ = window_nll(model, valid_ids, args.seq, bos_id, dev, batch=32, autocast=True)
        model.train()
        return tot / n

    best = (float("inf"), -1, None)
    history = []
    model.train()
    t_train = time.time()
    step, fitted, loss_ema, last_loss = 0, args.steps > 0, None, float("nan")
    stopped_by_time = False
    while step < planned:
        lr = lr_at(step, planned, args.warmup, args.lr, args.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batcher.next()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == planned:
            last_loss = loss.item()
            loss_ema = last_loss if loss_ema is None else 0.9 * loss_ema + 0.1 * last_loss
        if not fitted and step == 60:
            # Fit the plan into the time cap from the measured speed of steps 20..60.
            torch.cuda.synchronize()
            per_step = (time.time() - t20) / 40
            fit = int((args.train_seconds - (time.time() - t_train)) / (per_step * 1.08)) + step
            if fit < planned:
                log("plan of %d steps does not fit in %.0fs at %.1f ms/step: shortened to %d"
                    % (planned, args.train_seconds, per_step * 1e3, fit))
                planned = max(step + 1, fit)
            else:
                log("%.1f ms/step: plan of %d steps fits (~%.0fs)" % (per_step * 1e3, planned, planned * per_step))
            fitted = True
        if step == 20:
            torch.cuda.synchronize()
            t20 = time.time()
        if step % eval_every == 0 or step == planned:
            vl = valid_loss()
            history.append((step, round(last_loss, 4), round(vl, 4)))
            flag = ""
            if vl < best[0]:
                best = (vl, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                flag = " *"
            log("step %5d/%d epoch %5.2f lr %.2e loss %.4f valid %.4f (ppl %.2f)%s"
                % (step, planned, step / spe, lr, last_loss, vl, math.exp(vl), flag))
        if time.time() - t_train > args.train_seconds:
            log("time cap of %.0fs reached at step %d" % (args.train_seconds, step))
            stopped_by_time = True
            break
    torch.cuda.synchronize()
    train_secs = time.time() - t_train
    if not history or history[-1][0] != step:  # stopped by the time cap between evaluations
        vl = valid_loss()
        history.append((step, round(last_loss, 4), round(vl, 4)))
        if vl < best[0]:
            best = (vl, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
        log("step %5d final valid %.4f" % (step, vl))
    for h in hooks:
        h.remove()
    best_valid, best_step, best_state = best
    model.load_state_dict(best_state)
    log("trained %d steps in %.1fs; best valid loss %.4f at step %d" % (step, train_secs, best_valid, best_step))
    # training loss of the kept checkpoint, dropout off, on a fixed sample of train windows
    model.eval()
    probe = train_ids[:min(len(train_ids), 64 * args.seq * 8)]
    tl_tot, tl_n, _ = window_nll(model, probe, args.seq, bos_id, dev, batch=32, autocast=True)
    train_loss_eval = tl_tot / tl_n

    # ---- save (BF16)
    model.to(torch.bfloat16)
    model.config.use_cache = True
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                                               do_sample=False)
    model.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    log_config(out)
    del model, opt, best_state, batcher
    torch.cuda.empty_cache()

    # ---- evaluate the saved directory in float32 (no TF32)
    torch.set_float32_matmul_precision("highest")  # true float32 for the references
    ref_model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").to(dev).eval()
    eval_text = heldout_text[:EVAL_CHARS]
    with open(os.path.join(out, "heldout_eval.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(eval_text)
    eval_ids = tok.encode(eval_text, add_special_tokens=False).ids
    e_nll, e_n, e_per = window_nll(ref_model, eval_ids, EVAL_WINDOW, bos_id, dev, batch=32)
    ppl = math.exp(e_nll / e_n)
    whole_text = heldout_text if not args.smoke else heldout_text[:200_000]
    whole_ids = encode_stream(tok, whole_text)
    w_nll, w_n, _ = window_nll(ref_model, whole_ids, EVAL_WINDOW, bos_id, dev, batch=32)
    ppl_whole = math.exp(w_nll / w_n)
    log("held-out perplexity: eval slice %.6f over %d tokens; whole held-out %.4f over %d tokens"
        % (ppl, e_n, ppl_whole, w_n))

    # greedy references: explicit float32 argmax loop over the full sequence, no cache, no EOS stop
    greedy = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=True).ids
            assert ids[0] == bos_id
            seq = list(ids)
            gen, margins = [], []
            for _ in range(GEN_TOKENS):
                logits = ref_model(input_ids=torch.tensor([seq], device=dev), use_cache=False).logits[0, -1].float()
                top2 = torch.topk(logits, 2)
                nxt = int(torch.argmax(logits).item())
                gen.append(nxt)
                margins.append(float(top2.values[0] - top2.values[1]))
                seq.append(nxt)
            greedy.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": gen,
                           "text": tok.decode(gen, skip_special_tokens=False),
                           "top1_top2_logit_margins": [round(m, 6) for m in margins],
                           "min_margin": round(min(margins), 6)})
            log("greedy %r -> %r (min top1-top2 margin %.4f)" % (prompt, greedy[-1]["text"][:160], min(margins)))

    # cross-check transformers' AutoTokenizer against tokenizers
    auto_ok, auto_err = False, None
    try:
        from transformers import AutoTokenizer
        at = AutoTokenizer.from_pretrained(out)
        a1 = at(eval_text, add_special_tokens=False)["input_ids"]
        a2 = [at(p, add_special_tokens=True)["input_ids"] for p in PROMPTS]
        auto_ok = (list(a1) == list(eval_ids)) and all(list(a) == g["prompt_ids"] for a, g in zip(a2, greedy))
        if not auto_ok:
            auto_err = "ids differ: eval %s, prompts %s" % (list(a1) == list(eval_ids),
                                                          [list(a) == g["prompt_ids"] for a, g in zip(a2, greedy)])
    except Exception as e:  # report, do not lose the run
        auto_err = "%s: %s" % (type(e).__name__, e)
    log("AutoTokenizer matches tokenizers: %s%s" % (auto_ok, "" if auto_ok else " (%s)" % auto_err))
    del ref_model

    # ---- reference.json
    total_secs = time.time() - T_START
    ref = {
        "model": name,
        "perplexity": {
            "definition": "tokenize the first `chars` characters of heldout.txt (this directory's heldout_eval.txt) "
                          "without special tokens; cut into consecutive non-overlapping windows of `window` tokens, "
                          "dropping the last partial window; prepend BOS to each window; sum -log p of tokens 1..window "
                          "given the prefix; ppl = exp(total_nll / tokens). Model loaded from this directory in float32.",
            "chars": EVAL_CHARS, "window": EVAL_WINDOW, "bos_prepended": True, "bos_id": bos_id,
            "eval_text_file": "heldout_eval.txt",
            "eval_text_sha256": hashlib.sha256(eval_text.encode("utf-8")).hexdigest(),
            "ppl": ppl, "total_nll": e_nll, "tokens": e_n, "windows": len(e_per),
            "window_nll": e_per,
            "eval_token_ids": list(eval_ids),
        },
        "perplexity_whole_heldout": {"ppl": ppl_whole, "tokens": w_n, "windows": w_n // EVAL_WINDOW,
                                     "chars": len(whole_text)},
        "greedy": {"method": "float32, full recompute per step, argmax (first index on ties), no EOS stop",
                   "new_tokens": GEN_TOKENS, "cases": greedy},
        "autotokenizer_matches": auto_ok, "autotokenizer_error": auto_err,
        "training": {"seed": args.seed, "steps": step, "planned_steps": planned, "best_step": best_step,
                     "stopped_by_time_cap": stopped_by_time, "train_seconds": round(train_secs, 1),
                     "best_valid_loss": best_valid, "train_loss_eval": train_loss_eval,
                     "final_batch_loss_ema": loss_ema, "history": history,
                     "tokens_per_step": args.seq * args.batch, "train_tokens": int(len(train_ids)),
                     "args": vars(args), "command": cmdline, "corpus_sha256": corpus_sha,
                     "gpu": gpu, "torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")

    # ---- model card
    write_card(out, name, cfg, n_params, vocab, args, cmdline, gpu, step, best_step, train_secs, total_secs,
               train_loss_eval, best_valid, ppl, e_n, ppl_whole, w_n, len(train_ids), spe)

    files = sorted(os.listdir(out))
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in files}
    total_bytes = sum(sizes.values())
    if args.tar:
        write_tar(out, name, files, args.tar, args.split_mib)
    log("files: " + ", ".join("%s %d" % (f, s) for f, s in sizes.items()))
    log("SUMMARY %s: params %d (%.2fM), dir %d bytes (%.1f MB), model.safetensors %d bytes, "
        "ppl(eval slice, %d tok) %.4f, ppl(whole held-out) %.4f, train loss %.4f, valid loss %.4f, "
        "steps %d (best %d), train %.0fs, total %.0fs, AutoTokenizer %s"
        % (name, n_params, n_params / 1e6, total_bytes, total_bytes / 1e6, sizes.get("model.safetensors", 0),
           e_n, ppl, ppl_whole, train_loss_eval, best_valid, step, best_step, train_secs, time.time() - T_START,
           "ok" if auto_ok else "MISMATCH"))
    if total_bytes > 40_000_000 and not args.smoke:
        log("WARNING: model directory is over 40 MB")


def rope_theta(cfg):
    """transformers 5 keeps RoPE settings in cfg.rope_parameters; older ones in cfg.rope_theta."""
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and rp.get("rope_theta") is not None:
        return float(rp["rope_theta"])
    return float(getattr(cfg, "rope_theta", 10000.0) or 10000.0)


def log_config(out):
    """Log the keys of the written config.json that a reader must find (transformers 5
    writes RoPE settings as "rope_parameters" and the dtype as "dtype")."""
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    log("config.json: " + json.dumps({k: c.get(k) for k in ("architectures", "rope_theta", "rope_parameters",
                                                            "dtype", "torch_dtype", "head_dim", "tie_word_embeddings",
                                                            "bos_token_id", "eos_token_id")}))


def write_card(out, name, cfg, n_params, vocab, args, cmdline, gpu, steps, best_step, train_secs, total_secs,
               train_loss, valid_loss, ppl, e_n, ppl_whole, w_n, n_train_tokens, spe):
    card = f"""# {name}

chaski's bundled default model: a small Llama-architecture language model trained by the
chaski project from scratch on public-domain English text (the King James Bible, Jane Austen's
novels, Ambrose Bierce's *The Devil's Dictionary*). It exists so that `chaski run` works on a
machine without network access and so that tests have a real trained model; it is a toy, not
an assistant: it continues text in the style of its corpus and knows nothing else.

## Data and licence

| source | Debian package | why it is public domain |
|---|---|---|
| King James Version of the Bible (1611), all 66 books | `bible-kjv-text` (via `bible` of `bible-kjv`) | published 1611; copyright long expired (the package's copyright file says so). The Crown's letters patent in the UK are not a copyright and do not restrict this use elsewhere. |
| Jane Austen: *Sense and Sensibility*, *Pride and Prejudice*, *Mansfield Park*, *Emma*, *Northanger Abbey*, *Persuasion* | `r-cran-janeaustenr` | published 1811-1818, author died 1817; the texts are Project Gutenberg's. The R package (MIT) adds no text of its own; the modern "note on the text" appended to *Northanger Abbey* is removed. |
| Ambrose Bierce, *The Devil's Dictionary* | `dict-devil` | published 1911, author died 1914; "A Public Domain Text, Copyright Expired" (the package's copyright file). |

The corpus is built by `tools/train/prepare_corpus.sh` (cleaned: verse numbers dropped, prose
paragraphs unwrapped, italics underscores removed). Each source is cut into units (chapters,
dictionary entries); unit *i* is held out if `i % 20 == 10`, used for checkpoint selection
(`valid.txt`) if `i % 40 == 25`, and trained on otherwise.

**Weights: CC0 1.0** (public domain dedication). The training data is public domain and the
model is the project's own work; dedicating the weights to the public domain keeps the bundled
default free of any condition for anyone who copies chaski, and nothing in the data asks for
more. The training code is under the project's licence.

## Model

- Architecture: `LlamaForCausalLM` (RMSNorm, RoPE, SwiGLU MLP, grouped-query attention)
- hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} attention heads
  (head dim {cfg.hidden_size // cfg.num_attention_heads}), {cfg.num_key_value_heads} KV heads,
  MLP {cfg.intermediate_size}, RoPE theta {rope_theta(cfg):g}, RMSNorm eps {cfg.rms_norm_eps:g},
  max positions {cfg.max_position_embeddings}, untied input/output embeddings
- Parameters: {n_params:,} ({n_params / 1e6:.2f}M); weights stored in BF16 (`model.safetensors`)
- Tokenizer: byte-level BPE (HF `tokenizers`), vocabulary {vocab} including `<|bos|>` (id 0) and
  `<|eos|>` (id 1); GPT-2's pre-tokenizer split pattern; BOS is added to every encoding, EOS never
  (the model was not trained with EOS: it continues until told to stop)

## Training

```
tools/train/prepare_corpus.sh            # Debian machine: writes data/corpus/
{cmdline}
```

- Seed {args.seed}; AdamW (betas 0.9/0.95, weight decay {args.weight_decay}), peak LR {args.lr:g}, {args.warmup} warm-up
  steps, cosine decay to {args.min_lr:g}, gradient clipping 1.0, dropout {args.dropout} (embeddings, attention
  and MLP outputs; training only), bf16 autocast
- Packed sequences of BOS + {args.seq} tokens, batch {args.batch} ({args.seq * args.batch:,} tokens per step);
  {n_train_tokens:,} training tokens, {spe} steps per epoch
- {steps} steps ({steps / spe:.1f} epochs) in {train_secs:.0f} s on one {gpu}; whole script {total_secs:.0f} s.
  The checkpoint kept is the one with the lowest validation loss (step {best_step}).
- Loss of the kept checkpoint (dropout off): train {train_loss:.4f}, validation {valid_loss:.4f}

## Held-out perplexity

Computed by transformers from this directory loaded in float32:

- **{ppl:.4f}** on the reference slice: the first {EVAL_CHARS} characters of the held-out split
  (`heldout_eval.txt`, King James text), {e_n} tokens in windows of {EVAL_WINDOW} tokens, each with BOS prepended
  (the exact definition, per-window sums and token ids are in `reference.json`; `chaski perplexity` must agree
  within 1e-3 relative)
- {ppl_whole:.4f} on the whole held-out split (all three sources), {w_n} tokens, same windowing

## Sample output

(filled in from `chaski run` by the lead)
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)


def write_tar(out, name, files, path, split_mib):
    """Deterministic uncompressed tar of the directory (entries NAME/FILE).
    If larger than split_mib MiB it is written as PATH.part00, PATH.part01, ...
    instead (join with: cat PATH.part* > PATH)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for f in files:
            data = open(os.path.join(out, f), "rb").read()
            ti = tarfile.TarInfo(name + "/" + f)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 0, 0o644, 0, 0, "", ""
            tf.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    limit = int(split_mib * 1024 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    if len(data) <= limit:
        open(path, "wb").write(data)
        written = [path]
    else:
        written = []
        for i in range(0, len(data), limit):
            p = "%s.part%02d" % (path, i // limit)
            open(p, "wb").write(data[i:i + limit])
            written.append(p)
    with open(path + ".sha256", "w") as f:
        f.write("%s  %s\n" % (sha, os.path.basename(path)))
    log("tar: %d bytes, sha256 %s -> %s" % (len(data), sha, ", ".join(written)))


if __name__ == "__main__":
    main()
