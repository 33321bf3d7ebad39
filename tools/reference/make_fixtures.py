#!/usr/bin/env python3
"""Reference fixtures for chaski's parity tests, computed by transformers (the reference).

Builds tiny random models of every supported architecture and feature, saves them as HF model
directories, and records transformers' float32 outputs: last-position logits for fixed prompts,
a 32-token greedy continuation (incremental decoding with the KV cache, as `generate` does), and
the perplexity of a fixed text. Token ids come from the reference tokenizer (HF `tokenizers`
through transformers.AutoTokenizer) on the tokenizer.json files that tools/install-deps.sh fetches.

Run on the GPU machine (torch, transformers, tokenizers are there); everything runs on the CPU in
float32 so the numbers do not depend on TF32 or kernel choice:
    python3 tools/reference/make_fixtures.py --tokdir third_party/tokenizers --out tests/fixtures/models
"""
import argparse
import json
import math
import os
import shutil

import torch
import transformers
from transformers import AutoTokenizer

PROMPTS = [
    "The quick brown fox jumps over the lazy dog because it wanted to see what lay beyond the hill.",
    "In 1492, Columbus sailed the ocean blue; numbers like 3.14159 and names like O'Brien test the tokenizer.",
]
PPL_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way."
)
PPL_WINDOW = 32
GREEDY_TOKENS = 32

# name, architecture, tokenizer, dtype, extra config, save options
FIXTURES = [
    ("llama2_mha_f32", "llama", "llama2", torch.float32,
     dict(num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True), {}),
    ("llama2_mqa_f16_sharded", "llama", "llama2", torch.float16,
     dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False), dict(max_shard_size="600KB")),
    ("llama3_gqa_headdim_rope3_bf16", "llama", "llama3", torch.bfloat16,
     dict(num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True, rope_theta=500000.0,
          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                            original_max_position_embeddings=32),
          eos_token_id=[128001, 128009], bos_token_id=128000), {}),
    ("mistral_sliding_f16", "mistral", "llama2", torch.float16,
     dict(num_attention_heads=4, num_key_value_heads=2, sliding_window=6, tie_word_embeddings=False), {}),
    ("qwen2_bias_bf16", "qwen2", "qwen3", torch.bfloat16,
     dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1000000.0), {}),
    ("llama2_rope_linear_f16", "llama", "llama2", torch.float16,
     dict(num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
          rope_scaling=dict(rope_type="linear", factor=2.0)), {}),
    ("llama2_rope_yarn_f16", "llama", "llama2", torch.float16,
     dict(num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True, max_position_embeddings=64,
          rope_scaling=dict(rope_type="yarn", factor=4.0)), {}),
    ("llama2_rope_dynamic_f16", "llama", "llama2", torch.float16,
     dict(num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True, max_position_embeddings=24,
          rope_scaling=dict(rope_type="dynamic", factor=4.0)), {}),
    ("llama2_biases_f16", "llama", "llama2", torch.float16,
     dict(num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True, attention_bias=True,
          mlp_bias=True), {}),
]


def make_config(arch, vocab, extra, tok):
    base = dict(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                max_position_embeddings=512, rms_norm_eps=1e-5, initializer_range=0.2,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    extra = dict(extra)
    theta = extra.pop("rope_theta", 10000.0)
    scaling = extra.pop("rope_scaling", None)
    base.update(extra)
    if "rope_parameters" in transformers.LlamaConfig().to_dict():
        # transformers 5: one rope_parameters object holds theta, type and scaling fields
        rp = dict(rope_type="default", rope_theta=theta)
        rp.update(scaling or {})
        base["rope_parameters"] = rp
    else:
        base["rope_theta"] = theta
        if scaling:
            base["rope_scaling"] = scaling
    cls = {"llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig,
           "qwen2": transformers.Qwen2Config}[arch]
    return cls(**base)


def randomize(model, gen):
    """Every parameter random (biases and norm weights too, which HF initialises to 0 and 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def greedy(model, ids, n):
    """Incremental greedy decoding with the KV cache: one prefill, then one token per step."""
    out = []
    with torch.no_grad():
        res = model(input_ids=torch.tensor([ids]), use_cache=True)
        past = res.past_key_values
        for _ in range(n):
            tok = int(torch.argmax(res.logits[0, -1]))
            out.append(tok)
            res = model(input_ids=torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
    return out


def perplexity(model, ids, window, bos):
    nll, n = 0.0, 0
    with torch.no_grad():
        for w0 in range(0, len(ids) - window + 1, window):
            seq = ([bos] if bos >= 0 else []) + ids[w0:w0 + window]
            logits = model(input_ids=torch.tensor([seq])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            for i in range(len(seq) - 1):
                nll -= float(logp[i, seq[i + 1]])
                n += 1
    return math.exp(nll / n), nll, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(8)
    os.makedirs(args.out, exist_ok=True)
    summary = []
    for idx, (name, arch, tokname, dtype, extra, save_opts) in enumerate(FIXTURES):
        if args.only and name not in args.only:
            continue
        tok = AutoTokenizer.from_pretrained(os.path.join(args.tokdir, tokname))
        vocab = len(tok)
        cfg = make_config(arch, vocab, extra, tok)
        cls = {"llama": transformers.LlamaForCausalLM, "mistral": transformers.MistralForCausalLM,
               "qwen2": transformers.Qwen2ForCausalLM}[arch]
        torch.manual_seed(1000 + idx)
        model = cls(cfg)
        randomize(model, torch.Generator().manual_seed(2000 + idx))
        model = model.to(dtype)
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, safe_serialization=True, **save_opts)
        # Reload what was saved, computing in float32 on the CPU: the reference for chaski.
        # A fresh model for every measurement: transformers' dynamic-NTK rope keeps the longest length
        # it has seen in the module's state, so reusing one instance would make each output depend on
        # what ran before it.
        def fresh():
            return cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()

        prompts = []
        for pi, text in enumerate(PROMPTS):
            ids = tok(text, add_special_tokens=True)["input_ids"]
            logits = fresh()(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
            fn = f"logits_{pi}.f32"
            logits.astype("<f4").tofile(os.path.join(d, fn))
            prompts.append(dict(text=text, ids=ids, logits_file=fn, greedy=greedy(fresh(), ids, GREEDY_TOKENS)))
        ppl_ids = tok(PPL_TEXT, add_special_tokens=False)["input_ids"]
        bos = tok.bos_token_id if tok.bos_token_id is not None else -1  # no BOS: nothing prepended
        ppl, nll, n = perplexity(fresh(), ppl_ids, PPL_WINDOW, bos)
        reference = dict(
            made_by="tools/reference/make_fixtures.py",
            command="python3 tools/reference/make_fixtures.py --tokdir third_party/tokenizers --out tests/fixtures/models",
            transformers=transformers.__version__, torch=torch.__version__,
            tokenizer=tokname, architecture=arch, storage_dtype=str(dtype).replace("torch.", ""),
            prompts=prompts,
            perplexity=dict(text=PPL_TEXT, ids=ppl_ids, window=PPL_WINDOW, bos=bos, ppl=ppl, nll=nll, n_scored=n),
        )
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(reference, f, indent=1)
        size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
        summary.append((name, size, ppl))
        print(f"{name}: {size / 1e6:.2f} MB, ppl {ppl:.4f}, greedy[0][:8] {prompts[0]['greedy'][:8]}", flush=True)
    print("total MB", sum(s for _, s, _ in summary) / 1e6)


if __name__ == "__main__":
    main()
