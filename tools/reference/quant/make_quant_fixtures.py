#!/usr/bin/env python3
"""Quantized reference fixtures for chaski (issue 7): tiny random Llama models packed as GPTQ and EXL2
by qpack.py (written from FORMATS.md, independently of the C loader), the float32 weights they stand
for, and transformers' float32 outputs on those weights.

Each fixture directory holds:
  config.json          the model config with its quantization_config
  model.safetensors    the quantized checkpoint (unquantized tensors in F16)
  dequant.safetensors  F32 [out, in] of every quantized linear: what the checkpoint dequantizes to
  logits_<i>.f32       transformers' last-position logits (float32) for prompt i
  reference.json       prompts (ids, greedy 32 tokens), perplexity, versions, the command
Definitions as tools/reference/make_fixtures.py (its greedy and perplexity functions are reused).
Token ids are random (no tokenizer: vocabulary 512).

Run on the GPU machine (torch, transformers, safetensors; everything on the CPU in float32):
    python3 tools/reference/quant/make_quant_fixtures.py --out tests/fixtures/quant
--no-reference writes only the checkpoints and dequantized weights (standard library alone).
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qpack  # noqa: E402

COMMAND = "python3 tools/reference/quant/make_quant_fixtures.py --out tests/fixtures/quant"
BASE = dict(hidden=64, inter=128, vocab=512, layers=2, heads=4, kv_heads=2)
GREEDY_TOKENS = 32
PPL_WINDOW = 32


def exl2_mix_a(layer, suffix, K):
    """Layer groups of EXL2 fixture A: the down projection (K = 128) mixes all six widths."""
    if K == 128:
        return [(8, 16), (6, 16), (5, 32), (4, 16), (3, 32), (2, 16)]
    table = {
        "self_attn.q_proj": [(6, 32), (4, 32)],
        "self_attn.k_proj": [(8, 32), (5, 32)],
        "self_attn.v_proj": [(5, 32), (3, 32)],
        "self_attn.o_proj": [(4, 32), (2, 32)],
        "mlp.gate_proj": [(8, 16), (6, 16), (4, 16), (2, 16)],
        "mlp.up_proj": [(6, 16), (5, 32), (2, 16)] if layer == 0 else [(4, 64)],
    }
    return table[suffix]


def exl2_mix_b(layer, suffix, K):
    """EXL2 fixture B: mostly low widths (a ~2.5 bpw file), 2-bit groups of 16 rows."""
    if K == 128:
        return [(6, 32), (3, 32), (2, 16), (2, 16), (2, 32)]
    if suffix in ("self_attn.q_proj", "self_attn.k_proj"):
        return [(4, 32), (3, 32)]
    return [(3, 32), (2, 16), (2, 16)]


def spec(**kw):
    s = dict(BASE)
    s.update(kw)
    return s


FIXTURES = [
    ("gptq_b4_g128_act_sym", spec(format="gptq", bits=4, group_size=128, desc_act=True, sym=True, v2=False)),
    ("gptq_b4_g32_asym_bias", spec(format="gptq", bits=4, group_size=32, desc_act=False, sym=False, v2=False,
                                   attention_bias=True)),
    ("gptq_b4_g64_act_asym_v2", spec(format="gptq", bits=4, group_size=64, desc_act=True, sym=False, v2=True)),
    ("gptq_b4_gall_sym_v2", spec(format="gptq", bits=4, group_size=-1, desc_act=False, sym=True, v2=True)),
    ("gptq_b8_g128_sym_v2", spec(format="gptq", bits=8, group_size=128, desc_act=False, sym=True, v2=True)),
    ("gptq_b8_g32_act_asym", spec(format="gptq", bits=8, group_size=32, desc_act=True, sym=False, v2=False)),
    ("gptq_b8_g64_act_sym", spec(format="gptq", bits=8, group_size=64, desc_act=True, sym=True, v2=False)),
    ("exl2_mixed_head6", spec(format="exl2", bpw=4.6, head_bits=6, tied=False, groups=exl2_mix_a,
                              head_groups=lambda K: [(6, K)])),
    ("exl2_low_head8", spec(format="exl2", bpw=2.6, head_bits=8, tied=False, groups=exl2_mix_b,
                            head_groups=lambda K: [(8, 32), (6, K - 32)])),
]


def describe(s):
    keys = ("format", "bits", "group_size", "desc_act", "sym", "v2", "bpw", "head_bits", "attention_bias", "tied")
    return {k: s[k] for k in keys if k in s}


def write_checkpoint(d, s, m):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(m["config"], f, indent=1)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(qpack.st_image(m["model"]))
    with open(os.path.join(d, "dequant.safetensors"), "wb") as f:
        f.write(qpack.dequant_image(m["dequant"]))


def prompts_and_ppl(rng, V):
    p0 = [1] + [rng.randrange(3, V) for _ in range(10)]
    p1 = [1] + [rng.randrange(3, V) for _ in range(22)]
    ppl = [rng.randrange(3, V) for _ in range(96)]
    return [p0, p1], ppl


def reference(d, s, m, idx):
    """transformers' float32 outputs on the dequantized weights (GPU machine)."""
    import torch
    import transformers
    sys.path.insert(0, os.path.dirname(HERE))
    import make_fixtures as mf  # greedy, perplexity, make_config: the same definitions as the float fixtures

    torch.set_grad_enabled(False)
    torch.set_num_threads(8)

    class Tok:
        bos_token_id, eos_token_id = 1, 2

    extra = dict(hidden_size=s["hidden"], intermediate_size=s["inter"], num_attention_heads=s["heads"],
                 num_key_value_heads=s["kv_heads"], tie_word_embeddings=s.get("tied", True),
                 attention_bias=s.get("attention_bias", False), mlp_bias=False)
    cfg = mf.make_config("llama", s["vocab"], extra, Tok)
    model = transformers.LlamaForCausalLM(cfg)
    values = {}
    for name, (vals, shape) in m["floats"].items():
        values[name] = torch.tensor(vals, dtype=torch.float32).reshape(shape)
    for name, (N, K, W) in m["dequant"].items():
        values[name] = torch.tensor(W, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "lm_head.weight" and s.get("tied", True):
                p.copy_(values["model.embed_tokens.weight"])  # tying not yet applied: same values
                continue
            if name not in values:
                raise KeyError("no value for parameter %s" % name)
            p.copy_(values[name])
    tmp = tempfile.mkdtemp(prefix="chaski_quant_ref_")
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        # chaski reads the same config transformers wrote, plus the quantization block
        with open(os.path.join(tmp, "config.json")) as f:
            c = json.load(f)
        c["quantization_config"] = m["config"]["quantization_config"]
        c.pop("torch_dtype", None)
        c["dtype"] = "float16"  # what model.safetensors stores its unquantized tensors in
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=1)

        def fresh():
            mod = transformers.LlamaForCausalLM.from_pretrained(tmp, dtype=torch.float32,
                                                                attn_implementation="eager").eval()
            sd = dict(mod.named_parameters())
            for name, v in values.items():
                if not torch.equal(sd[name].detach(), v):
                    raise AssertionError("reloaded %s differs from the dequantized weights" % name)
            return mod

        rng = random.Random(5000 + idx)
        prompts_ids, ppl_ids = prompts_and_ppl(rng, s["vocab"])
        prompts = []
        for pi, ids in enumerate(prompts_ids):
            logits = fresh()(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
            fn = "logits_%d.f32" % pi
            logits.astype("<f4").tofile(os.path.join(d, fn))
            prompts.append(dict(ids=ids, logits_file=fn, greedy=mf.greedy(fresh(), ids, GREEDY_TOKENS)))
        ppl, nll, n = mf.perplexity(fresh(), ppl_ids, PPL_WINDOW, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(
        made_by="tools/reference/quant/make_quant_fixtures.py", command=COMMAND,
        transformers=transformers.__version__, torch=torch.__version__,
        quant=describe(s), dequant_file="dequant.safetensors",
        quantized=sorted(m["dequant"]),
        dequant_exact=True,
        prompts=prompts,
        perplexity=dict(ids=ppl_ids, window=PPL_WINDOW, bos=1, ppl=ppl, nll=nll, n_scored=n),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-reference", action="store_true", help="checkpoints only (standard library alone)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = 0
    names = []
    for idx, (name, s) in enumerate(FIXTURES):
        if args.only and name not in args.only:
            continue
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        m = qpack.build_model(s, 7000 + idx)
        qpack.self_check(s, m)
        write_checkpoint(d, s, m)
        if not args.no_reference:
            ref = reference(d, s, m, idx)
            with open(os.path.join(d, "reference.json"), "w") as f:
                json.dump(ref, f, indent=1)
            msg = "ppl %.4f, greedy[0][:8] %s" % (ref["perplexity"]["ppl"], ref["prompts"][0]["greedy"][:8])
        else:
            msg = "no reference"
        size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
        total += size
        names.append(name)
        print("%s: %.2f MB, %s" % (name, size / 1e6, msg), flush=True)
    with open(os.path.join(args.out, "fixtures.json"), "w") as f:
        json.dump(dict(made_by=COMMAND, fixtures=[n for n, _ in FIXTURES]), f, indent=1)
    print("total MB %.2f" % (total / 1e6))


if __name__ == "__main__":
    main()
