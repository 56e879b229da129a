#!/usr/bin/python3
"""Independent PyTorch reference logits for tiny Qwen3 and Mistral models.

Run with Debian's torch (the pyenv `python3` on PATH has no torch):

    /usr/bin/python3 tests/model/ref/make_arch_refs.py

For every case it writes tests/model/ref/<case>/{config.json, model.safetensors,
expected.json}.  No `transformers` / `safetensors` package is used: the forward
passes below re-implement, in plain float64 torch, the semantics of

  * transformers/src/transformers/models/qwen3/modeling_qwen3.py
      (Qwen3RMSNorm, Qwen3MLP, Qwen3RotaryEmbedding.compute_default_rope_parameters,
       rotate_half, apply_rotary_pos_emb, repeat_kv, eager_attention_forward,
       Qwen3Attention, Qwen3DecoderLayer, Qwen3Model, Qwen3ForCausalLM)
  * transformers/src/transformers/models/mistral/modular_mistral.py /
    modeling_mistral.py (MistralAttention = LlamaAttention without q/k norm,
       with head_dim from config, and the sliding-window mask chosen in
       MistralModel.forward: create_causal_mask if config.sliding_window is None
       else create_sliding_window_causal_mask)
  * transformers/src/transformers/masking_utils.py
       causal_mask_function:      kv_idx <= q_idx
       sliding_window_overlay(W): kv_idx >  q_idx - W
       sliding_window_causal_mask_function = and_masks(both)
    => query position i attends key position j iff  i - W < j <= i
       (exactly W keys, the query itself included).

Weights are drawn in float32 with a fixed torch.Generator, written to the
safetensors file, READ BACK from that file, and only then upcast to float64, so
the float64 reference is computed from exactly the float32-rounded weights the
C++ engine will load.
"""

import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64

# --------------------------------------------------------------------------
# safetensors (hand-written; format: u64 LE header length, JSON header,
# raw little-endian tensor bytes; data_offsets are relative to the byte
# buffer that follows the header)
# --------------------------------------------------------------------------


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for n in names:
        t = tensors[n].detach().to(torch.float32).contiguous()
        b = t.numpy().astype("<f4").tobytes()
        header[n] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad header to 8 bytes, like the official writer
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(info["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out


# --------------------------------------------------------------------------
# HF building blocks, float64
# --------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    # Qwen3RMSNorm / MistralRMSNorm (== LlamaRMSNorm == T5LayerNorm):
    #   hs = x.to(float32); var = hs.pow(2).mean(-1, keepdim=True)
    #   hs = hs * rsqrt(var + eps); return weight * hs.to(input_dtype)
    # i.e. normalise in (at least) fp32, cast back, THEN multiply by weight.
    # No mean subtraction, no bias, weight is used as-is (not 1+weight).
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def linear(x, w):
    # nn.Linear(bias=False): y = x @ W^T, W stored [out_features, in_features]
    return x @ w.t()


def rope_cos_sin(T, head_dim, theta):
    # compute_default_rope_parameters:
    #   inv_freq = 1 / base ** (arange(0, dim, 2) / dim)      (dim = head_dim)
    # forward: freqs = pos * inv_freq; emb = cat(freqs, freqs); cos/sin(emb)
    # NOTE: HF computes inv_freq / cos / sin in float32 even for fp64 models;
    # here everything is float64 (differences ~1e-7 relative).
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=DT) / head_dim))
    pos = torch.arange(T, dtype=DT)  # position_ids = 0..T-1
    freqs = pos[:, None] * inv_freq[None, :]  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    return emb.cos(), emb.sin()


def rotate_half(x):
    # HF rotate_half: pairs are (x[d], x[d + D/2]) -- NOT interleaved (x[2d], x[2d+1]).
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    # x: [H, T, D]; cos/sin: [T, D]
    return x * cos + rotate_half(x) * sin


def allowed_mask(T, sliding_window):
    """masking_utils: causal_mask_function (kv_idx <= q_idx), and with a window
    sliding_window_overlay (kv_idx > q_idx - sliding_window)."""
    q = torch.arange(T)[:, None]
    kv = torch.arange(T)[None, :]
    m = kv <= q
    if sliding_window is not None:
        m = m & (kv > q - sliding_window)
    return m


def attention(x, lw, cfg, cos, sin, mask, qk_norm):
    T = x.shape[0]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    q = linear(x, lw["self_attn.q_proj.weight"]).view(T, H, D)  # .view(hidden_shape)
    k = linear(x, lw["self_attn.k_proj.weight"]).view(T, KV, D)
    v = linear(x, lw["self_attn.v_proj.weight"]).view(T, KV, D)
    if qk_norm:
        # Qwen3Attention: q_norm(q_proj(h).view(B,T,H,D)) -> RMSNorm over the
        # LAST dim (head_dim), per head, one shared [head_dim] weight for all
        # heads; k_norm likewise on the KV heads.  Applied AFTER the reshape to
        # heads and BEFORE RoPE.  (V is not normalised.)
        q = rms_norm(q, lw["self_attn.q_norm.weight"], eps)
        k = rms_norm(k, lw["self_attn.k_norm.weight"], eps)
    q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, T, D]
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    # repeat_kv: kv head g serves query heads g*n_rep .. g*n_rep+n_rep-1,
    # i.e. query head h uses kv head h // (H // KV).
    n_rep = H // KV
    k = k[:, None].expand(KV, n_rep, T, D).reshape(H, T, D)
    v = v[:, None].expand(KV, n_rep, T, D).reshape(H, T, D)
    scaling = D ** -0.5  # self.scaling = head_dim ** -0.5 (config head_dim, not hidden/heads)
    w = (q @ k.transpose(1, 2)) * scaling
    w = w.masked_fill(~mask[None], float("-inf"))  # HF adds finfo.min; same result
    w = torch.softmax(w, dim=-1)
    o = (w @ v).transpose(0, 1).reshape(T, H * D)  # heads concatenated in order
    return linear(o, lw["self_attn.o_proj.weight"])


def mlp(x, lw):
    # down_proj(act_fn(gate_proj(x)) * up_proj(x)), hidden_act = "silu"
    g = linear(x, lw["mlp.gate_proj.weight"])
    u = linear(x, lw["mlp.up_proj.weight"])
    return linear(torch.nn.functional.silu(g) * u, lw["mlp.down_proj.weight"])


def forward(cfg, W, tokens, qk_norm, sliding_window):
    """Full causal forward (no cache) -> logits [T, V] in float64."""
    W = {k: v.to(DT) for k, v in W.items()}
    T = len(tokens)
    eps = cfg["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][torch.tensor(tokens)]  # no embedding scaling
    cos, sin = rope_cos_sin(T, cfg["head_dim"], cfg["rope_theta"])
    mask = allowed_mask(T, sliding_window)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        lw = {k[len(p):]: v for k, v in W.items() if k.startswith(p)}
        # pre-norm residual block (Qwen3DecoderLayer / LlamaDecoderLayer)
        h = h + attention(rms_norm(h, lw["input_layernorm.weight"], eps), lw, cfg, cos, sin, mask, qk_norm)
        h = h + mlp(rms_norm(h, lw["post_attention_layernorm.weight"], eps), lw)
    h = rms_norm(h, W["model.norm.weight"], eps)
    lm_head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return linear(h, lm_head)


# --------------------------------------------------------------------------
# Naive loop implementation of one attention layer, used as a cross-check of
# the vectorised GQA / mask / RoPE code above.
# --------------------------------------------------------------------------


def attention_naive(x, lw, cfg, sliding_window, qk_norm):
    T = x.shape[0]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    q = linear(x, lw["self_attn.q_proj.weight"])
    k = linear(x, lw["self_attn.k_proj.weight"])
    v = linear(x, lw["self_attn.v_proj.weight"])
    half = D // 2
    out = torch.zeros(T, H * D, dtype=DT)

    def rot(vec, pos):
        r = vec.clone()
        for d in range(half):
            ang = pos / (cfg["rope_theta"] ** (2.0 * d / D))
            c, s = math.cos(ang), math.sin(ang)
            a, b = vec[d].item(), vec[d + half].item()
            r[d] = a * c - b * s
            r[d + half] = b * c + a * s
        return r

    for hh in range(H):
        g = hh // (H // KV)
        for i in range(T):
            qi = q[i, hh * D:(hh + 1) * D]
            if qk_norm:
                qi = rms_norm(qi, lw["self_attn.q_norm.weight"], eps)
            qi = rot(qi, i)
            scores, vals = [], []
            for j in range(T):
                if j > i or (sliding_window is not None and j <= i - sliding_window):
                    continue
                kj = k[j, g * D:(g + 1) * D]
                if qk_norm:
                    kj = rms_norm(kj, lw["self_attn.k_norm.weight"], eps)
                kj = rot(kj, j)
                scores.append((qi @ kj).item() / math.sqrt(D))
                vals.append(v[j, g * D:(g + 1) * D])
            m = max(scores)
            e = [math.exp(s - m) for s in scores]
            z = sum(e)
            acc = torch.zeros(D, dtype=DT)
            for ee, vv in zip(e, vals):
                acc += (ee / z) * vv
            out[i, hh * D:(hh + 1) * D] = acc
    return linear(out, lw["self_attn.o_proj.weight"])


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def make_weights(cfg, gen, qk_norm):
    Hd, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def rn(*shape, std):
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    def nw(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float32)

    W = {"model.embed_tokens.weight": rn(V, Hd, std=0.3)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = nw(Hd)
        W[p + "self_attn.q_proj.weight"] = rn(H * D, Hd, std=0.2)
        W[p + "self_attn.k_proj.weight"] = rn(KV * D, Hd, std=0.2)
        W[p + "self_attn.v_proj.weight"] = rn(KV * D, Hd, std=0.2)
        W[p + "self_attn.o_proj.weight"] = rn(Hd, H * D, std=0.2)
        if qk_norm:
            W[p + "self_attn.q_norm.weight"] = nw(D)
            W[p + "self_attn.k_norm.weight"] = nw(D)
        W[p + "post_attention_layernorm.weight"] = nw(Hd)
        W[p + "mlp.gate_proj.weight"] = rn(I, Hd, std=0.2)
        W[p + "mlp.up_proj.weight"] = rn(I, Hd, std=0.2)
        W[p + "mlp.down_proj.weight"] = rn(Hd, I, std=0.2)
    W["model.norm.weight"] = nw(Hd)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = rn(V, Hd, std=0.3)  # absent from the file when tied
    return W


def qwen3_config(tie):
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "vocab_size": 96,
        "hidden_size": 48,
        "intermediate_size": 80,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,  # 4 * 16 = 64 != hidden_size 48
        "hidden_act": "silu",
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_sliding_window": False,  # Qwen3Config: sliding_window forced to None unless this is true
        "sliding_window": None,
        "max_window_layers": 2,
        "tie_word_embeddings": tie,
        "torch_dtype": "float32",
        "use_cache": True,
        "initializer_range": 0.02,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def mistral_config(window):
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "vocab_size": 96,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "sliding_window": window,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "initializer_range": 0.02,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


CASES = [
    # name, config, seed, n_tokens, qk_norm
    ("qwen3_untied", qwen3_config(False), 1001, 20, True),
    ("qwen3_tied", qwen3_config(True), 2002, 12, True),
    ("mistral_window", mistral_config(5), 3003, 24, False),
    ("mistral_nowindow", mistral_config(None), 4004, 10, False),
]


def fmt(x):
    return float("%.10g" % x)  # 10 significant digits (float32 needs 9)


def build(name, cfg, seed, n_tokens, qk_norm):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    W32 = make_weights(cfg, gen, qk_norm)
    tokens = torch.randint(0, cfg["vocab_size"], (n_tokens,), generator=gen).tolist()

    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st = os.path.join(out, "model.safetensors")
    write_safetensors(st, W32)
    W = read_safetensors(st)  # reference uses exactly the stored float32 values
    assert set(W) == set(W32) and all(torch.equal(W[k], W32[k]) for k in W)
    assert ("lm_head.weight" in W) == (not cfg["tie_word_embeddings"])

    window = cfg.get("sliding_window")
    logits = forward(cfg, W, tokens, qk_norm, window)

    # cross-check layer-0 attention against a scalar loop implementation
    W64 = {k: v.to(DT) for k, v in W.items()}
    lw = {k[len("model.layers.0."):]: v for k, v in W64.items() if k.startswith("model.layers.0.")}
    x = rms_norm(W64["model.embed_tokens.weight"][torch.tensor(tokens)], lw["input_layernorm.weight"], cfg["rms_norm_eps"])
    cos, sin = rope_cos_sin(len(tokens), cfg["head_dim"], cfg["rope_theta"])
    a = attention(x, lw, cfg, cos, sin, allowed_mask(len(tokens), window), qk_norm)
    b = attention_naive(x, lw, cfg, window, qk_norm)
    assert torch.allclose(a, b, rtol=0, atol=1e-10), (name, (a - b).abs().max().item())

    # logits must visibly vary between positions
    assert logits.std(0).mean().item() > 0.1, name

    if name == "mistral_window":
        full = forward(cfg, W, tokens, qk_norm, None)
        Wn = window
        d = (logits - full).abs().max(-1).values
        assert torch.all(d[:Wn] <= 1e-12), ("positions < W must match full causal", d[:Wn])
        assert torch.all(d[Wn:] > 1e-3), ("positions >= W must differ from full causal", d[Wn:])
        print("  window check: max|diff| pos<W = %.3g, min over pos>=W of max|diff| = %.3g"
              % (d[:Wn].max().item(), d[Wn:].min().item()))

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"tokens": tokens, "logits": [[fmt(v) for v in row] for row in logits.tolist()]},
                  f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
    print("%-17s T=%2d V=%d  logits std over positions %.3f  folder %d bytes"
          % (name, len(tokens), cfg["vocab_size"], logits.std(0).mean().item(), size))


def main():
    torch.set_grad_enabled(False)
    for c in CASES:
        build(*c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
