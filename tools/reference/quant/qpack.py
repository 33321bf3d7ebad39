"""qpack: GPTQ and EXL2 packing written from /work/shared/FORMATS.md (docs/quant.md), standard library only.

Used by make_quant_fixtures.py (the reference fixtures, with transformers' outputs) and by
make_quant_malformed.py (the malformed corpus). Nothing here is derived from the C loader: both follow
the byte layout of FORMATS.md independently, and the tests hold them to each other.

Weights are lists of rows: W[n][k] with N = out_features rows and K = in_features columns (the HF
[out, in] layout). Every dequantized value is computed so that it is exactly representable or rounded
once to float32, in the same order the spec gives:
  GPTQ: w = (q - z') * s, z' = stored zero + 1 (gptq) or stored zero (gptq_v2); integer times fp16,
        exact in float32.
  EXL2: scale = (code + 1)^2 * scale_max / 256 (exact), w = (q - 2^(b-1)) * scale rounded once to float32.
"""
import json
import math
import random
import struct

# ---- scalar rounding -------------------------------------------------------------------------

def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16_list(xs):
    n = len(xs)
    return list(struct.unpack("<%de" % n, struct.pack("<%de" % n, *xs)))


def f32_list(xs):
    n = len(xs)
    return list(struct.unpack("<%df" % n, struct.pack("<%df" % n, *xs)))


def flat(rows):
    return [v for r in rows for v in r]


# ---- safetensors writer ----------------------------------------------------------------------

_FMT = {"F32": ("f", 4), "F16": ("e", 2), "I32": ("i", 4), "U32": ("I", 4), "I16": ("h", 2), "BF16": (None, 2)}


def tensor(dtype, shape, values):
    """A tensor entry: (dtype, shape, bytes). values: a flat list (U32 packs unsigned words as I32 bytes)."""
    n = 1
    for d in shape:
        n *= d
    if len(values) != n:
        raise ValueError("tensor of shape %s needs %d values, got %d" % (shape, n, len(values)))
    if dtype == "I32u":  # unsigned 32-bit words stored as I32
        return ("I32", list(shape), struct.pack("<%dI" % n, *[v & 0xFFFFFFFF for v in values]))
    code, _ = _FMT[dtype]
    return (dtype, list(shape), struct.pack("<%d%s" % (n, code), *values))


def st_image(tensors, header_edit=None):
    """safetensors bytes of {name: (dtype, shape, bytes)}; header padded to 8; data ordered as the reference
    writer orders it (wider dtypes first, then by name), so every tensor is aligned to its dtype."""
    hdr, chunks, off = {}, [], 0
    for name in sorted(tensors, key=lambda n: (-_FMT[tensors[n][0]][1], n)):
        dt, shape, data = tensors[name]
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    if header_edit:
        header_edit(hdr)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def st_read(path):
    """{name: (dtype, shape, bytes)} of a safetensors file (for tools and self-checks)."""
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], buf[8 + n + b:8 + n + e])
    return out


# ---- GPTQ ------------------------------------------------------------------------------------

def gptq_quantize(W, bits, group_size, desc_act, sym, v2, rng, bias=None):
    """Round-to-nearest GPTQ of W [N][K]. Returns (tensors by suffix, dequantized W [N][K]).

    g_idx: desc_act false -> k // group_size; true -> a random row order whose i-th row gets group
    i // group_size (so g_idx is not monotonic). group_size -1 means one group over all of K."""
    N, K = len(W), len(W[0])
    if bits not in (4, 8):
        raise ValueError("GPTQ bits must be 4 or 8")
    per = 32 // bits
    if K % per or N % per:
        raise ValueError("K and N must be multiples of %d for %d-bit GPTQ" % (per, bits))
    gsz = K if group_size == -1 else group_size
    G = (K + gsz - 1) // gsz
    if desc_act:
        order = list(range(K))
        rng.shuffle(order)
        g_idx = [0] * K
        for i, k in enumerate(order):
            g_idx[k] = i // gsz
    else:
        g_idx = [k // gsz for k in range(K)]
    rows_of = [[] for _ in range(G)]
    for k in range(K):
        rows_of[g_idx[k]].append(k)
    maxq = (1 << bits) - 1
    Q = [[0] * K for _ in range(N)]
    Wd = [[0.0] * K for _ in range(N)]
    zeros = [[0] * N for _ in range(G)]   # the zero point itself
    scales = [[0.0] * N for _ in range(G)]
    for g in range(G):
        rows = rows_of[g]
        for n in range(N):
            vals = [W[n][k] for k in rows]
            if sym:
                amax = max(abs(v) for v in vals) or 1e-3
                scale = 2.0 * amax / maxq
                zero = (maxq + 1) // 2
            else:
                lo, hi = min(min(vals), 0.0), max(max(vals), 0.0)
                if hi - lo < 1e-6:
                    hi = lo + 1e-3
                scale = (hi - lo) / maxq
                zero = int(round(-lo / scale))
            # v1 files store zero - 1 in an unsigned field: a zero of 0 cannot be written there
            zero = max(1 if not v2 else 0, min(maxq, zero))
            s = f16(scale)
            if s == 0.0:
                s = f16(1e-3)
            scales[g][n] = s
            zeros[g][n] = zero
            for k in rows:
                q = max(0, min(maxq, int(round(W[n][k] / s)) + zero))
                Q[n][k] = q
                Wd[n][k] = float((q - zero) * s)  # integer x fp16: exact in float32
    # qweight [K*bits/32, N]: row k in word k // per at bit (k % per) * bits, per column
    qweight = [[0] * N for _ in range(K // per)]
    for k in range(K):
        w, sh = k // per, (k % per) * bits
        row = qweight[w]
        for n in range(N):
            row[n] |= Q[n][k] << sh
    stored = [[z - (0 if v2 else 1) for z in zr] for zr in zeros]
    qzeros = [[0] * (N // per) for _ in range(G)]
    for g in range(G):
        for n in range(N):
            qzeros[g][n // per] |= stored[g][n] << ((n % per) * bits)
    t = {
        "qweight": tensor("I32u", [K // per, N], flat(qweight)),
        "qzeros": tensor("I32u", [G, N // per], flat(qzeros)),
        "scales": tensor("F16", [G, N], flat(scales)),
        "g_idx": tensor("I32", [K], g_idx),
    }
    if bias is not None:
        t["bias"] = tensor("F16", [N], bias)
    return t, Wd


def gptq_dequantize(t, K, N, bits, v2):
    """Dequantize GPTQ tensors (by suffix) back to W [N][K], straight from FORMATS.md (self-check)."""
    per = 32 // bits
    mask = (1 << bits) - 1
    qw = struct.unpack("<%dI" % (len(t["qweight"][2]) // 4), t["qweight"][2])
    G = t["scales"][1][0]
    qz = struct.unpack("<%dI" % (len(t["qzeros"][2]) // 4), t["qzeros"][2])
    sc = struct.unpack("<%de" % (G * N), t["scales"][2])
    gi = struct.unpack("<%di" % K, t["g_idx"][2])
    W = [[0.0] * K for _ in range(N)]
    for k in range(K):
        g = gi[k]
        for n in range(N):
            q = (qw[(k // per) * N + n] >> ((k % per) * bits)) & mask
            z = (qz[g * (N // per) + n // per] >> ((n % per) * bits)) & mask
            W[n][k] = float((q - (z if v2 else z + 1)) * sc[g * N + n])
    return W


# ---- EXL2 ------------------------------------------------------------------------------------

EXL2_BITS = (8, 6, 5, 4, 3, 2)


def exl2_quantize(W, groups, rng):
    """EXL2 of W [N][K] with groups [(bits, rows), ...] in file order (bits descending).
    Returns (tensors by suffix, dequantized W [N][K])."""
    N, K = len(W), len(W[0])
    if sum(r for _, r in groups) != K:
        raise ValueError("group rows must sum to K")
    if N % 8:
        raise ValueError("N must be a multiple of 8")
    perm = list(range(K))
    rng.shuffle(perm)           # packed row i holds input row perm[i]
    invperm = [0] * K
    for i, k in enumerate(perm):
        invperm[k] = i
    Wd = [[0.0] * K for _ in range(N)]
    qweight_rows = []           # list of word rows [N]
    q_groups, q_scale, q_scale_max = [], [], []
    row0, qrow = 0, 0
    for bits, rows in groups:
        if bits not in EXL2_BITS or (rows * bits) % 32:
            raise ValueError("bad group (%d bits, %d rows)" % (bits, rows))
        off = 1 << (bits - 1)
        src = [perm[i] for i in range(row0, row0 + rows)]
        need = [max(abs(W[n][k]) for k in src) / off for n in range(N)]
        smax = f16(max(need) or 1e-3)
        if smax == 0.0:
            smax = f16(1e-3)
        codes = []
        for n in range(N):
            c = int(math.ceil(math.sqrt(need[n] / smax * 256.0))) - 1
            codes.append(max(0, min(15, c)))
        n_words = rows * bits // 32
        words = [[0] * N for _ in range(n_words)]
        for n in range(N):
            scale = (codes[n] + 1) ** 2 * smax / 256.0       # exact
            for i, k in enumerate(src):
                q = max(0, min((1 << bits) - 1, int(round(W[n][k] / scale)) + off))
                Wd[n][k] = f32((q - off) * scale)             # one rounding to float32
                pos = i * bits
                w, sh = pos // 32, pos % 32
                words[w][n] |= (q << sh) & 0xFFFFFFFF
                if sh + bits > 32:
                    words[w + 1][n] |= q >> (32 - sh)
        qweight_rows.extend(words)
        q_groups += [bits, qrow]
        sw = [0] * (N // 8)
        for n in range(N):
            sw[n // 8] |= codes[n] << ((n % 8) * 4)
        q_scale.append(sw)
        q_scale_max.append(smax)
        row0 += rows
        qrow += n_words
    G = len(groups)
    t = {
        "q_invperm": tensor("I32", [K], invperm),
        "q_groups": tensor("I16", [2 * G], q_groups),
        "q_weight": tensor("I32u", [qrow, N], flat(qweight_rows)),
        "q_scale": tensor("I32u", [G, N // 8], flat(q_scale)),
        "q_scale_max": tensor("F16", [G], q_scale_max),
    }
    return t, Wd


def exl2_dequantize(t, K, N):
    """Dequantize EXL2 tensors back to W [N][K], straight from FORMATS.md (self-check)."""
    inv = struct.unpack("<%di" % K, t["q_invperm"][2])
    grp = struct.unpack("<%dh" % (len(t["q_groups"][2]) // 2), t["q_groups"][2])
    G = len(grp) // 2
    QR = t["q_weight"][1][0]
    qw = struct.unpack("<%dI" % (QR * N), t["q_weight"][2])
    qs = struct.unpack("<%dI" % (G * N // 8), t["q_scale"][2])
    qm = struct.unpack("<%de" % G, t["q_scale_max"][2])
    perm = [0] * K
    for k, i in enumerate(inv):
        perm[i] = k
    W = [[0.0] * K for _ in range(N)]
    row = 0
    for g in range(G):
        bits, r0 = grp[2 * g], grp[2 * g + 1]
        r1 = grp[2 * g + 3] if g + 1 < G else QR
        rows = (r1 - r0) * 32 // bits
        for n in range(N):
            code = (qs[g * (N // 8) + n // 8] >> ((n % 8) * 4)) & 15
            scale = f32(f32((code + 1) ** 2 * qm[g]) / 256.0)
            for i in range(rows):
                pos = i * bits
                w, sh = r0 + pos // 32, pos % 32
                v = qw[w * N + n] >> sh
                if sh + bits > 32:
                    v |= qw[(w + 1) * N + n] << (32 - sh)
                q = v & ((1 << bits) - 1)
                W[n][perm[row + i]] = f32((q - (1 << (bits - 1))) * scale)
        row += rows
    return W


# ---- a tiny Llama, quantized -----------------------------------------------------------------

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def linear_shapes(H, I, heads, kv_heads, head_dim):
    """suffix -> (N, K)."""
    Q, KV = heads * head_dim, kv_heads * head_dim
    return {"self_attn.q_proj": (Q, H), "self_attn.k_proj": (KV, H), "self_attn.v_proj": (KV, H),
            "self_attn.o_proj": (H, Q), "mlp.gate_proj": (I, H), "mlp.up_proj": (I, H), "mlp.down_proj": (H, I)}


def rand_matrix(rng, N, K, std):
    return [[rng.gauss(0.0, std) for _ in range(K)] for _ in range(N)]


def build_model(spec, seed):
    """A tiny quantized Llama from spec (see make_quant_fixtures.FIXTURES). Returns a dict:
      config: config.json dict (old layout; quantization_config included),
      model: {name: tensor entry} for model.safetensors,
      dequant: {prefix.weight: (N, K, W)} of every quantized linear,
      floats: {name: flat float list, shape} of every unquantized float parameter (as stored, F16 values)."""
    rng = random.Random(seed)
    H, I, V, L = spec["hidden"], spec["inter"], spec["vocab"], spec["layers"]
    heads, kvh = spec["heads"], spec["kv_heads"]
    hd = H // heads
    tied = spec.get("tied", True)
    abias = spec.get("attention_bias", False)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=H, intermediate_size=I,
               num_hidden_layers=L, num_attention_heads=heads, num_key_value_heads=kvh, vocab_size=V,
               max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=tied,
               attention_bias=abias, mlp_bias=False, bos_token_id=1, eos_token_id=2, hidden_act="silu",
               torch_dtype="float16")
    fmt = spec["format"]
    if fmt == "gptq":
        cfg["quantization_config"] = dict(quant_method="gptq", bits=spec["bits"], group_size=spec["group_size"],
                                          desc_act=spec["desc_act"], sym=spec["sym"],
                                          checkpoint_format="gptq_v2" if spec["v2"] else "gptq")
    else:
        cfg["quantization_config"] = dict(quant_method="exl2", version="0.2.0", bits=spec["bpw"],
                                          head_bits=spec["head_bits"])
    model, dequant, floats = {}, {}, {}

    def put_float(name, shape, vals):
        vals = f16_list(vals)
        model[name] = tensor("F16", shape, vals)
        floats[name] = (vals, shape)

    put_float("model.embed_tokens.weight", [V, H], [rng.gauss(0.0, 0.5) for _ in range(V * H)])
    put_float("model.norm.weight", [H], [1.0 + 0.2 * rng.gauss(0.0, 1.0) for _ in range(H)])
    shapes = linear_shapes(H, I, heads, kvh, hd)
    for l in range(L):
        p = "model.layers.%d." % l
        put_float(p + "input_layernorm.weight", [H], [1.0 + 0.2 * rng.gauss(0.0, 1.0) for _ in range(H)])
        put_float(p + "post_attention_layernorm.weight", [H], [1.0 + 0.2 * rng.gauss(0.0, 1.0) for _ in range(H)])
        for li, suf in enumerate(LINEARS):
            N, K = shapes[suf]
            W = rand_matrix(rng, N, K, 1.5 / math.sqrt(K))
            prefix = p + suf
            if fmt == "gptq":
                bias = None
                if abias and suf.startswith("self_attn"):
                    bias = f16_list([rng.gauss(0.0, 0.2) for _ in range(N)])
                    floats[prefix + ".bias"] = (bias, [N])
                t, Wd = gptq_quantize(W, spec["bits"], spec["group_size"], spec["desc_act"], spec["sym"],
                                      spec["v2"], rng, bias)
            else:
                t, Wd = exl2_quantize(W, spec["groups"](l, suf, K), rng)
            for k, v in t.items():
                model[prefix + "." + k] = v
            dequant[prefix + ".weight"] = (N, K, Wd)
    if not tied:
        W = rand_matrix(rng, V, H, 1.5 / math.sqrt(H))
        if fmt == "exl2":
            t, Wd = exl2_quantize(W, spec["head_groups"](H), rng)
            for k, v in t.items():
                model["lm_head." + k] = v
            dequant["lm_head.weight"] = (V, H, Wd)
        else:
            put_float("lm_head.weight", [V, H], flat(W))
    return dict(config=cfg, model=model, dequant=dequant, floats=floats)


def dequant_image(dequant):
    return st_image({name: tensor("F32", [N, K], flat(W)) for name, (N, K, W) in dequant.items()})


def self_check(spec, m):
    """Unpack every quantized linear again from its bytes and compare with the packer's own dequant."""
    for name, (N, K, Wd) in m["dequant"].items():
        prefix = name[:-len(".weight")]
        t = {k[len(prefix) + 1:]: v for k, v in m["model"].items() if k.startswith(prefix + ".")}
        if spec["format"] == "gptq":
            W2 = gptq_dequantize(t, K, N, spec["bits"], spec["v2"])
        else:
            W2 = exl2_dequantize(t, K, N)
        if any(f32(a) != f32(b) for ra, rb in zip(Wd, W2) for a, b in zip(ra, rb)):
            raise AssertionError("self-check: %s does not unpack to its dequantized weights" % name)
