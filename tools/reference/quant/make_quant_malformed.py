#!/usr/bin/env python3
"""Malformed quantized checkpoints: one model directory per broken rule of FORMATS.md (GPTQ, EXL2), and a
manifest of what chaski must answer (a status name and words its message must contain). Each case starts
from a valid tiny quantized Llama (qpack.py, standard library only) and breaks exactly one rule.
    python3 tools/reference/quant/make_quant_malformed.py tests/fixtures/quant_malformed
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qpack  # noqa: E402

SMALL = dict(hidden=32, inter=64, vocab=32, layers=1, heads=2, kv_heads=2)
Q = "model.layers.0.self_attn.q_proj"
D = "model.layers.0.mlp.down_proj"


def exl2_groups(layer, suffix, K):
    return [(8, 16), (5, 32), (2, 16)] if K == 64 else [(6, 16), (4, 16)]


GPTQ = dict(SMALL, format="gptq", bits=4, group_size=16, desc_act=True, sym=False, v2=False)
EXL2 = dict(SMALL, format="exl2", bpw=4.5, head_bits=6, tied=False, groups=exl2_groups,
            head_groups=lambda K: [(6, K)])


def base(spec):
    m = qpack.build_model(spec, 99)
    return m["config"], dict(m["model"])


def ints(t, code="i"):
    dt, shape, data = t
    return list(struct.unpack("<%d%s" % (len(data) // struct.calcsize(code), code), data))


def with_ints(t, vals, code="i"):
    dt, shape, _ = t
    return (dt, shape, struct.pack("<%d%s" % (len(vals), code), *vals))


CASES = []


def case(name, status, words, cfg, tensors):
    CASES.append((name, status, words, cfg, tensors))


def edit(spec, fn=None, cfg_fn=None):
    cfg, t = base(spec)
    if fn:
        fn(t)
    if cfg_fn:
        cfg_fn(cfg)
    return cfg, t


# ---- GPTQ ----
case("gptq_valid_control", "ok", [], *edit(GPTQ))


def g_idx_set(value):
    def f(t):
        v = ints(t[Q + ".g_idx"])
        v[5] = value
        t[Q + ".g_idx"] = with_ints(t[Q + ".g_idx"], v)
    return f


case("gptq_g_idx_out_of_range", "format", [Q + ".g_idx", "g_idx[5] = 2", "outside [0, 2)"], *edit(GPTQ, g_idx_set(2)))
case("gptq_g_idx_negative", "format", [Q + ".g_idx", "g_idx[5] = -1"], *edit(GPTQ, g_idx_set(-1)))
case("gptq_g_idx_huge", "format", [Q + ".g_idx", "outside"], *edit(GPTQ, g_idx_set(2 ** 31 - 1)))


def qweight_rows(t):  # [K/8, N] -> [K/8 - 1, N]
    dt, shape, data = t[Q + ".qweight"]
    t[Q + ".qweight"] = (dt, [shape[0] - 1, shape[1]], data[:(shape[0] - 1) * shape[1] * 4])


case("gptq_qweight_shape_disagrees", "shape", [Q + ".qweight", "[3, 32]", "config.json", "[4, 32]"],
     *edit(GPTQ, qweight_rows))


def scales_extra_group(t):
    dt, shape, data = t[Q + ".scales"]
    t[Q + ".scales"] = (dt, [shape[0] + 1, shape[1]], data + data[:shape[1] * 2])


case("gptq_scales_groups_disagree", "shape", [Q + ".scales", "[3, 32]", "2 groups"], *edit(GPTQ, scales_extra_group))


def scales_f32(t):
    dt, shape, data = t[Q + ".scales"]
    vals = struct.unpack("<%de" % (len(data) // 2), data)
    t[Q + ".scales"] = ("F32", shape, struct.pack("<%df" % len(vals), *vals))


case("gptq_scales_dtype", "shape", [Q + ".scales", "F32", "F16"], *edit(GPTQ, scales_f32))
case("gptq_missing_qzeros", "missing", [Q + ".qzeros", "missing"], *edit(GPTQ, lambda t: t.pop(Q + ".qzeros")))
case("gptq_desc_act_without_g_idx", "missing", [Q + ".g_idx", "desc_act"], *edit(GPTQ, lambda t: t.pop(Q + ".g_idx")))
case("gptq_bits_3", "unsupported", ["config.json", "bits 3"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(bits=3)))
case("gptq_bits_config_disagrees", "shape", [Q + ".qweight", "8-bit"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(bits=8)))
case("gptq_group_size_not_power_of_two", "config", ["config.json", "group_size 24", "power of two"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(group_size=24)))
case("gptq_group_size_disagrees", "shape", [Q + ".qzeros", "group_size 8"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(group_size=8)))
case("gptq_no_quantization_config", "config", ["config.json", "GPTQ tensors", "quantization_config"],
     *edit(GPTQ, cfg_fn=lambda c: c.pop("quantization_config")))
case("gptq_checkpoint_format_unknown", "unsupported", ["config.json", "checkpoint_format 'marlin'"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(checkpoint_format="marlin")))
case("quant_method_unknown", "unsupported", ["config.json", "quant_method 'awq'"],
     *edit(GPTQ, cfg_fn=lambda c: c["quantization_config"].update(quant_method="awq")))
case("gptq_linear_missing_entirely", "missing", [Q + ".qweight"],
     *edit(GPTQ, lambda t: [t.pop(k) for k in list(t) if k.startswith(Q + ".")]))

# ---- EXL2 ----
case("exl2_valid_control", "ok", [], *edit(EXL2))


def invperm(fn):
    def f(t):
        v = ints(t[D + ".q_invperm"])
        fn(v)
        t[D + ".q_invperm"] = with_ints(t[D + ".q_invperm"], v)
    return f


case("exl2_invperm_duplicate", "format", [D + ".q_invperm", "not a permutation", "appears twice"],
     *edit(EXL2, invperm(lambda v: v.__setitem__(7, v[3]))))
case("exl2_invperm_out_of_range", "format", [D + ".q_invperm", "not a permutation", "outside [0, 64)"],
     *edit(EXL2, invperm(lambda v: v.__setitem__(7, 64))))
case("exl2_invperm_negative", "format", [D + ".q_invperm", "outside"], *edit(EXL2, invperm(lambda v: v.__setitem__(0, -5))))


def groups(fn):
    def f(t):
        v = ints(t[D + ".q_groups"], "h")
        fn(v)
        t[D + ".q_groups"] = with_ints(t[D + ".q_groups"], v, "h")
    return f


# down_proj groups: (8 bits, row 0), (5 bits, row 4), (2 bits, row 9); q_weight has 10 packed rows
case("exl2_groups_overrun_q_weight", "format", [D + ".q_groups", "overruns", "10 packed rows"],
     *edit(EXL2, groups(lambda v: v.__setitem__(5, 40))))
case("exl2_group_start_huge", "format", [D + ".q_groups", "overruns"], *edit(EXL2, groups(lambda v: v.__setitem__(3, 32767))))
case("exl2_group_start_negative", "format", [D + ".q_groups"], *edit(EXL2, groups(lambda v: v.__setitem__(3, -4))))
case("exl2_bits_7", "format", [D + ".q_groups", "7 bits", "allowed"], *edit(EXL2, groups(lambda v: v.__setitem__(2, 7))))
case("exl2_bits_1", "format", [D + ".q_groups", "1 bits"], *edit(EXL2, groups(lambda v: v.__setitem__(4, 1))))
case("exl2_bits_not_descending", "format", [D + ".q_groups", "descending"],
     *edit(EXL2, groups(lambda v: v.__setitem__(4, 6))))
case("exl2_first_group_not_at_zero", "format", [D + ".q_groups", "not 0"], *edit(EXL2, groups(lambda v: v.__setitem__(1, 1))))


def q_weight_long(t):  # one more packed row: the last (2-bit) group now holds 32 rows, 80 in all
    dt, shape, data = t[D + ".q_weight"]
    t[D + ".q_weight"] = (dt, [shape[0] + 1, shape[1]], data + data[:shape[1] * 4])


case("exl2_rows_not_summing_to_K", "format", [D + ".q_groups", "80 rows", "in_features 64"],
     *edit(EXL2, q_weight_long))


def q_groups_odd(t):
    dt, shape, data = t[D + ".q_groups"]
    t[D + ".q_groups"] = (dt, [shape[0] - 1], data[:-2])


case("exl2_q_groups_odd_length", "shape", [D + ".q_groups", "pairs"], *edit(EXL2, q_groups_odd))


def q_scale_shape(t):
    dt, shape, data = t[D + ".q_scale"]
    t[D + ".q_scale"] = (dt, [shape[0] - 1, shape[1]], data[:(shape[0] - 1) * shape[1] * 4])


case("exl2_q_scale_shape", "shape", [D + ".q_scale", "[2, 4]", "[3, 4]"], *edit(EXL2, q_scale_shape))


def q_weight_cols(t):
    dt, shape, data = t[D + ".q_weight"]
    t[D + ".q_weight"] = (dt, [shape[0] * 2, shape[1] // 2], data)


case("exl2_q_weight_wrong_out_features", "shape", [D + ".q_weight", "out_features"], *edit(EXL2, q_weight_cols))
case("exl2_missing_q_scale_max", "missing", [D + ".q_scale_max", "missing"],
     *edit(EXL2, lambda t: t.pop(D + ".q_scale_max")))


def head_invperm(t):
    v = ints(t["lm_head.q_invperm"])
    v[0] = v[1]
    t["lm_head.q_invperm"] = with_ints(t["lm_head.q_invperm"], v)


case("exl2_head_invperm_duplicate", "format", ["lm_head.q_invperm", "not a permutation"], *edit(EXL2, head_invperm))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/quant_malformed"
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    manifest = []
    for name, status, words, cfg, tensors in CASES:
        d = os.path.join(out, name)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(qpack.st_image(tensors))
        manifest.append(dict(case=name, status=status, message_contains=words))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(dict(made_by="python3 tools/reference/quant/make_quant_malformed.py tests/fixtures/quant_malformed",
                       cases=manifest), f, indent=1)
    print("%d cases in %s" % (len(CASES), out))


if __name__ == "__main__":
    main()
