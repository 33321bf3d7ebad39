"""`chaski info` on the quantized fixtures (tests/fixtures/quant, CPU backend): the format, bits per weight in
total, per layer and of a quantized lm_head, and the weights' memory, against numbers computed here from the
safetensors headers and config.json alone (tensor byte ranges and the linears' shapes), independently of the
engine's quant code.

Environment: CHASKI_BIN, CHASKI_PLUGIN, CHASKI_TEST_TOKDIR (tokenizer files copied beside each fixture:
the fixtures hold only weights), CHASKI_SOURCE_DIR."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

BIN = os.environ["CHASKI_BIN"]
PLUGIN = os.environ["CHASKI_PLUGIN"]
TOKDIR = os.environ["CHASKI_TEST_TOKDIR"]
FIXDIR = os.path.join(os.environ["CHASKI_SOURCE_DIR"], "tests", "fixtures", "quant")

GPTQ = ("qweight", "qzeros", "scales", "g_idx")
EXL2 = ("q_invperm", "q_groups", "q_weight", "q_scale", "q_scale_max")
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items()}


def expected(fix):
    with open(os.path.join(fix, "config.json")) as f:
        cfg = json.load(f)
    sizes = header(os.path.join(fix, "model.safetensors"))
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or H // cfg["num_attention_heads"]
    Q, KV = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    shapes = dict(zip(LINEARS, ((Q, H), (KV, H), (KV, H), (H, Q), (I, H), (I, H), (H, I))))

    def quant_bytes(prefix):
        for names in (GPTQ, EXL2):
            if prefix + "." + names[0] in sizes or prefix + "." + names[2] in sizes:
                if prefix + ".qweight" in sizes or prefix + ".q_weight" in sizes:
                    return sum(sizes.get(prefix + "." + s, 0) for s in names)
        return None

    layers, params, total = [], 0, 0
    for l in range(cfg["num_hidden_layers"]):
        lp, lb = 0, 0
        for lin in LINEARS:
            b = quant_bytes("model.layers.%d.%s" % (l, lin))
            if b is not None:
                n, k = shapes[lin]
                lp += n * k
                lb += b
        layers.append(8.0 * lb / lp if lp else 0.0)
        params += lp
        total += lb
    head = 0.0
    if not cfg.get("tie_word_embeddings", False):
        b = quant_bytes("lm_head")
        if b is not None:
            head = 8.0 * b / (V * H)
            params += V * H
            total += b
    # the CPU backend holds every weight as float32 (quantized linears dequantized)
    n_weights = V * H + cfg["num_hidden_layers"] * (2 * Q * H + 2 * KV * H + 3 * I * H + 2 * H) + H
    if not cfg.get("tie_word_embeddings", False):
        n_weights += V * H
    if cfg.get("attention_bias"):  # llama's attention_bias: q, k, v and o
        n_weights += cfg["num_hidden_layers"] * (Q + 2 * KV + H)
    if cfg.get("mlp_bias"):
        n_weights += cfg["num_hidden_layers"] * (2 * I + H)
    return cfg, params, total, layers, head, n_weights * 4


class QuantInfoTest(unittest.TestCase):
    def test_info_reports_the_quantization_of_every_fixture(self):
        fixtures = sorted(d for d in os.listdir(FIXDIR) if os.path.isfile(os.path.join(FIXDIR, d, "model.safetensors")))
        self.assertGreaterEqual(len(fixtures), 9)
        tmp = tempfile.mkdtemp(prefix="chaski-qinfo-")
        try:
            for name in fixtures:
                with self.subTest(fixture=name):
                    fix = os.path.join(FIXDIR, name)
                    d = os.path.join(tmp, name)
                    os.mkdir(d)
                    for f in ("config.json", "model.safetensors"):
                        os.symlink(os.path.join(fix, f), os.path.join(d, f))
                    for f in os.listdir(TOKDIR):
                        shutil.copy(os.path.join(TOKDIR, f), d)
                    p = subprocess.run([BIN, "info", "--model", d, "--plugin", PLUGIN, "--backend", "cpu", "--json"],
                                       capture_output=True, timeout=300)
                    self.assertEqual(p.returncode, 0, p.stderr.decode())
                    j = json.loads(p.stdout)
                    cfg, params, total, layers, head, cpu_weights = expected(fix)
                    fmt = cfg["quantization_config"]["quant_method"]
                    self.assertTrue(j["quantization"].startswith(fmt), j["quantization"])
                    q = j["quant"]
                    self.assertEqual(q["params"], params)
                    self.assertEqual(q["bytes"], total)
                    self.assertAlmostEqual(q["bits_per_weight"], 8.0 * total / params, places=5)
                    self.assertAlmostEqual(q["head_bits_per_weight"], head, places=5)
                    self.assertEqual(len(q["layer_bits_per_weight"]), len(layers))
                    for got, want in zip(q["layer_bits_per_weight"], layers):
                        self.assertAlmostEqual(got, want, places=4)
                    self.assertEqual(j["memory"]["weights_bytes"], cpu_weights)
                    text = subprocess.run([BIN, "info", "--model", d, "--plugin", PLUGIN, "--backend", "cpu"],
                                          capture_output=True, timeout=300, check=True).stdout.decode()
                    self.assertIn("%.3f bits per weight" % (8.0 * total / params), text)
                    print("%-26s %s: %.3f bits per weight (layers %s%s)" % (
                        name, j["quantization"], 8.0 * total / params, ", ".join("%.3f" % b for b in layers),
                        ", head %.3f" % head if head else ""))
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
