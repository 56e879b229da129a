#!/usr/bin/python3
"""Independent PyTorch reference logits and expert routing for tiny DeepSeek-V2 / V3 models.

Run with Debian's torch (the pyenv `python3` on PATH has no torch):

    /usr/bin/python3 tests/model/ref/make_deepseek_refs.py

For every case it writes tests/model/ref/<case>/{config.json, model.safetensors,
expected.json}.  No `transformers` / `safetensors` package and no llmforge code is
used: the forward passes below re-implement, in plain float64 torch, the published
modelling code of

  * deepseek-ai/DeepSeek-V2-Lite and deepseek-ai/DeepSeek-V3, Hugging Face
    `modeling_deepseek.py` (trust_remote_code):
      DeepseekV2RMSNorm, DeepseekV2RotaryEmbedding, DeepseekV2YarnRotaryEmbedding
      (yarn_find_correction_dim, yarn_find_correction_range, yarn_get_mscale,
      yarn_linear_ramp_mask, mscale / mscale_all_dim), rotate_half,
      apply_rotary_pos_emb (with its de-interleaving view/transpose of q/k),
      DeepseekV2MLP, MoEGate (softmax / sigmoid; greedy, group_limited_greedy,
      noaux_tc with e_score_correction_bias used only for the choice;
      norm_topk_prob; routed_scaling_factor), DeepseekV2MoE (moe_infer +
      shared_experts), DeepseekV2Attention (q_proj or q_a_proj/q_a_layernorm/
      q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, softmax_scale with
      yarn_get_mscale(factor, mscale_all_dim)^2), DeepseekV2DecoderLayer (MoE when
      layer_idx >= first_k_dense_replace and layer_idx % moe_layer_freq == 0,
      dense DeepseekV2MLP before), DeepseekV2Model, DeepseekV2ForCausalLM;
  * deepseek-ai/DeepSeek-V3 `inference/model.py` (precompute_freqs_cis,
    apply_rotary_emb with complex adjacent pairs, MLA with attn_impl == "absorb",
    Gate, MoE) -- used as an independent cross-check (self-check below): the
    absorbed latent attention with complex RoPE must give the same logits as the
    naive HF attention, and its Gate the same experts and weights.

Weights are drawn in float32 with a fixed torch.Generator, written to the
safetensors file, READ BACK from that file, and only then upcast to float64, so
the float64 reference is computed from exactly the float32-rounded weights the
C++ engine loads.

Routing ties.  The published code chooses experts (and expert groups) with
torch.topk(..., sorted=False), whose order among EQUAL values is unspecified.
llmforge's rule (src/model/moe.h) is: ties go to the LOWER expert index (and a
group tie to the lower group).  This reference makes torch's choice
deterministic and equal to that rule by never calling torch.topk for a
selection: `topk_lower` below takes the first k of a STABLE descending
torch.sort, in which equal values keep their index order, so the lower index
comes first.  (torch.topk is used only where ties cannot matter: the VALUES of
a group's two best members.)

Masking of the groups not kept: inference/model.py fills them with -inf; the HF
noaux_tc / group_limited_greedy code fills them with 0.0.  The two differ only
when fewer than top_k experts of the kept groups have a positive choice score
(possible with a negative e_score_correction_bias).  The reference uses -inf
(as llmforge does) and asserts that the 0.0 variant selects the same experts on
every case here, so the expected routing does not depend on that difference.
"""

import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64
MARGIN = 1e-4  # routing decisions must be this clear (float32 engine vs float64 reference)

# --------------------------------------------------------------------------
# safetensors (hand-written, as in make_arch_refs.py)
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
    hb += b" " * ((8 - len(hb) % 8) % 8)
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
# Building blocks (HF modeling_deepseek.py), float64
# --------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    # DeepseekV2RMSNorm: weight * (x * rsqrt(mean(x^2) + eps)) (normalised in fp32, then weight).
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


# PEFT LoRA modules, keyed by the id of the base weight they wrap: (A, B, scale). PEFT's
# lora.Linear.forward: result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling (no dropout
# at inference); the base weight is not changed (unmerged), as PeftModel runs an adapter.
LORA = {}


def linear(x, w):
    y = x @ w.t()
    if id(w) in LORA:
        a, b, s = LORA[id(w)]
        y = y + ((x @ a.t()) @ b.t()) * s
    return y


def silu_mlp(x, lw, prefix):
    # DeepseekV2MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)), hidden_act "silu".
    g = linear(x, lw[prefix + "gate_proj.weight"])
    u = linear(x, lw[prefix + "up_proj.weight"])
    return linear(torch.nn.functional.silu(g) * u, lw[prefix + "down_proj.weight"])


# ---- rotary (DeepseekV2RotaryEmbedding / DeepseekV2YarnRotaryEmbedding) ----


def yarn_find_correction_dim(num_rotations, dim, base=10000, max_position_embeddings=2048):
    return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (2 * math.log(base))


def yarn_find_correction_range(low_rot, high_rot, dim, base=10000, max_position_embeddings=2048):
    low = math.floor(yarn_find_correction_dim(low_rot, dim, base, max_position_embeddings))
    high = math.ceil(yarn_find_correction_dim(high_rot, dim, base, max_position_embeddings))
    return max(low, 0), min(high, dim - 1)  # clamp


def yarn_get_mscale(scale=1, mscale=1):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_linear_ramp_mask(min_, max_, dim):
    if min_ == max_:
        max_ += 0.001  # prevent singularity
    linear_func = (torch.arange(dim, dtype=DT) - min_) / (max_ - min_)
    return torch.clamp(linear_func, 0, 1)


def rope_inv_freq_and_mscale(cfg):
    """inv_freq (R/2) and the cos/sin multiplier _mscale, as the HF rotary classes build them
    (in float64 here; HF uses float32)."""
    dim = cfg["qk_rope_head_dim"]
    base = cfg["rope_theta"]
    freq_extra = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DT) / dim))
    rs = cfg.get("rope_scaling")
    if rs is None:
        return freq_extra, 1.0  # DeepseekV2RotaryEmbedding
    assert rs["type"] == "yarn"
    factor = rs["factor"]
    freq_inter = 1.0 / (factor * base ** (torch.arange(0, dim, 2, dtype=DT) / dim))
    low, high = yarn_find_correction_range(rs.get("beta_fast", 32), rs.get("beta_slow", 1), dim, base,
                                           rs.get("original_max_position_embeddings", 4096))
    inv_freq_mask = 1.0 - yarn_linear_ramp_mask(low, high, dim // 2)
    inv_freq = freq_inter * (1 - inv_freq_mask) + freq_extra * inv_freq_mask
    _mscale = float(yarn_get_mscale(factor, rs.get("mscale", 1)) / yarn_get_mscale(factor, rs.get("mscale_all_dim", 0)))
    return inv_freq, _mscale


def rope_cos_sin(cfg, T):
    inv_freq, ms = rope_inv_freq_and_mscale(cfg)
    t = torch.arange(T, dtype=DT)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * ms, emb.sin() * ms


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    # q: (H, T, d), k: (1, T, d); cos/sin (T, d) already indexed by position_ids = 0..T-1.
    # DeepSeek's version first de-interleaves: view(.., d/2, 2).transpose(-1, -2).reshape(.., d)
    # turns [x0, x1, x2, x3, ...] into [x0, x2, ..., x1, x3, ...], so rotate_half then rotates
    # the ADJACENT pairs (x_{2i}, x_{2i+1}) by angle pos * inv_freq[i]; the outputs stay in the
    # de-interleaved order (the same for q and k, so q.k is that of an interleaved rotation).
    h, s, d = q.shape
    q = q.view(h, s, d // 2, 2).transpose(-1, -2).reshape(h, s, d)
    h, s, d = k.shape
    k = k.view(h, s, d // 2, 2).transpose(-1, -2).reshape(h, s, d)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def softmax_scale(cfg):
    # DeepseekV2Attention.__init__: q_head_dim ** -0.5, times yarn_get_mscale(factor,
    # mscale_all_dim)^2 when rope_scaling has a nonzero mscale_all_dim.
    s = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs is not None:
        mad = rs.get("mscale_all_dim", 0)
        if mad:
            m = yarn_get_mscale(rs["factor"], mad)
            s = s * m * m
    return s


def queries(x, lw, cfg):
    if cfg["q_lora_rank"] is None:
        return linear(x, lw["self_attn.q_proj.weight"])
    qa = linear(x, lw["self_attn.q_a_proj.weight"])
    return linear(rms_norm(qa, lw["self_attn.q_a_layernorm.weight"], cfg["rms_norm_eps"]), lw["self_attn.q_b_proj.weight"])


def attention_hf(x, lw, cfg, cos, sin):
    """DeepseekV2Attention.forward (eager, no cache, causal)."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    nope, R, Dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    q = queries(x, lw, cfg).view(T, H, nope + R).transpose(0, 1)  # (H, T, q_head_dim)
    q_nope, q_pe = torch.split(q, [nope, R], dim=-1)
    ckv = linear(x, lw["self_attn.kv_a_proj_with_mqa.weight"])
    ckv, k_pe = torch.split(ckv, [r, R], dim=-1)
    k_pe = k_pe.view(T, 1, R).transpose(0, 1)  # (1, T, R): one rope key shared by every head
    kv = linear(rms_norm(ckv, lw["self_attn.kv_a_layernorm.weight"], cfg["rms_norm_eps"]),
                lw["self_attn.kv_b_proj.weight"]).view(T, H, nope + Dv).transpose(0, 1)
    k_nope, v = torch.split(kv, [nope, Dv], dim=-1)
    q_pe, k_pe = apply_rotary_pos_emb(q_pe, k_pe, cos, sin)
    qs = torch.cat([q_nope, q_pe], dim=-1)
    ks = torch.cat([k_nope, k_pe.expand(H, T, R)], dim=-1)
    w = (qs @ ks.transpose(1, 2)) * softmax_scale(cfg)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    w = torch.softmax(w.masked_fill(~causal, float("-inf")), dim=-1)
    o = (w @ v).transpose(0, 1).reshape(T, H * Dv)
    return linear(o, lw["self_attn.o_proj.weight"])


# ---- MoE (MoEGate, DeepseekV2MoE) ----


def topk_lower(v, k):
    """Indices of the k largest values per row; equal values: the LOWER index first (stable
    descending sort).  This is what makes the published torch.topk selections deterministic
    and equal to llmforge's rule (src/model/moe.h)."""
    return torch.sort(v, dim=-1, descending=True, stable=True).indices[:, :k]


def gate(x, lw, cfg, mask_fill=float("-inf"), info=None):
    """MoEGate.forward -> (topk_idx (N, K), topk_weight (N, K)), in choice order."""
    logits = linear(x, lw["mlp.gate.weight"])
    if info is not None and "tie_pairs" in info:
        # Duplicated router rows: mathematically identical logits; make them bitwise equal.
        for a, b in info["tie_pairs"]:
            assert (logits[:, a] - logits[:, b]).abs().max().item() < 1e-12
            logits[:, b] = logits[:, a]
    N, E = logits.shape
    K = cfg["num_experts_per_tok"]
    if cfg["scoring_func"] == "softmax":
        scores = logits.softmax(dim=-1)
    else:
        scores = logits.sigmoid()
    method = cfg["topk_method"]
    if method == "greedy":
        choice = scores
    elif method == "group_limited_greedy":
        G = cfg["n_group"]
        group_scores = scores.view(N, G, -1).max(dim=-1).values
        group_idx = topk_lower(group_scores, cfg["topk_group"])
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(N, G, E // G).reshape(N, -1)
        choice = scores.masked_fill(~score_mask.bool(), mask_fill)
        if info is not None:
            info["group_scores"] = group_scores
    elif method == "noaux_tc":
        G = cfg["n_group"]
        scores_for_choice = scores + lw["mlp.gate.e_score_correction_bias"].unsqueeze(0)  # bias: choice only
        group_scores = scores_for_choice.view(N, G, -1).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = topk_lower(group_scores, cfg["topk_group"])
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(N, G, E // G).reshape(N, -1)
        choice = scores_for_choice.masked_fill(~score_mask.bool(), mask_fill)
        if info is not None:
            info["group_scores"] = group_scores
    else:
        raise ValueError(method)
    topk_idx = topk_lower(choice, K)
    topk_weight = scores.gather(1, topk_idx)  # weights: the unbiased scores
    if info is not None:
        info["choice"] = choice
        info["scores"] = scores
    if method == "noaux_tc" or cfg["model_type"] == "deepseek_v3":
        # DeepSeek-V3 MoEGate: normalise (if norm_topk_prob), then always scale.
        if K > 1 and cfg["norm_topk_prob"]:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        topk_weight = topk_weight * cfg["routed_scaling_factor"]
    else:
        # DeepSeek-V2 MoEGate: normalise if norm_topk_prob, else scale (never both).
        if K > 1 and cfg["norm_topk_prob"]:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        else:
            topk_weight = topk_weight * cfg["routed_scaling_factor"]
    return topk_idx, topk_weight


def moe(x, lw, cfg, info=None):
    """DeepseekV2MoE.forward (inference): routed experts weighted and summed, plus shared."""
    idx, wt = gate(x, lw, cfg, info=info)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for k in range(idx.shape[1]):
            e = idx[t, k].item()
            y[t] += wt[t, k] * silu_mlp(x[t:t + 1], lw, "mlp.experts.%d." % e)[0]
    if cfg.get("n_shared_experts"):
        y = y + silu_mlp(x, lw, "mlp.shared_experts.")
    return y, idx, wt


def is_moe_layer(cfg, i):
    return (cfg.get("n_routed_experts") is not None and i >= cfg["first_k_dense_replace"]
            and i % cfg["moe_layer_freq"] == 0)


def layer_weights(W, i):
    p = "model.layers.%d." % i
    return {k[len(p):]: v for k, v in W.items() if k.startswith(p)}


def forward(cfg, W, tokens, attn="hf", route_log=None):
    """DeepseekV2ForCausalLM forward, full causal, no cache -> logits (T, V), float64.
    attn: "hf" (naive DeepseekV2Attention) or "absorb" (inference/model.py MLA)."""
    T = len(tokens)
    eps = cfg["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    cos, sin = rope_cos_sin(cfg, T)
    for i in range(cfg["num_hidden_layers"]):
        lw = layer_weights(W, i)
        x = rms_norm(h, lw["input_layernorm.weight"], eps)
        h = h + (attention_hf(x, lw, cfg, cos, sin) if attn == "hf" else attention_absorbed(x, lw, cfg))
        x = rms_norm(h, lw["post_attention_layernorm.weight"], eps)
        if is_moe_layer(cfg, i):
            info = {"tie_pairs": cfg["_tie_pairs"]} if "_tie_pairs" in cfg else {}
            y, idx, wt = moe(x, lw, cfg, info)
            if route_log is not None:
                route_log.append((i, idx, wt, info))
        else:
            y = silu_mlp(x, lw, "mlp.")
        h = h + y
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


# --------------------------------------------------------------------------
# inference/model.py cross-check: MLA "absorb" with complex RoPE, and its Gate
# --------------------------------------------------------------------------


def freqs_cis(cfg, T):
    # precompute_freqs_cis: yarn-corrected freqs (the same blend as HF), torch.polar; no cos/sin
    # mscale (inference/model.py folds it into softmax_scale; equal to HF when mscale ==
    # mscale_all_dim, which holds for every case here).
    rs = cfg.get("rope_scaling")
    if rs is not None:
        assert rs.get("mscale", 1) == rs.get("mscale_all_dim", 0)
    inv_freq, _ = rope_inv_freq_and_mscale(cfg)
    t = torch.arange(T, dtype=DT)
    f = torch.outer(t, inv_freq)
    return torch.polar(torch.ones_like(f), f)  # (T, R/2)


def apply_rotary_emb(x, fc):
    # x: (T, n, R); adjacent pairs (x_{2i}, x_{2i+1}) as complex numbers times e^{i pos f_i}.
    xc = torch.view_as_complex(x.contiguous().view(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * fc[:, None, :]).flatten(2)


def attention_absorbed(x, lw, cfg):
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    nope, R, Dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    fc = freqs_cis(cfg, T)
    q = queries(x, lw, cfg).view(T, H, nope + R)
    q_nope, q_pe = torch.split(q, [nope, R], dim=-1)
    q_pe = apply_rotary_emb(q_pe, fc)
    kv = linear(x, lw["self_attn.kv_a_proj_with_mqa.weight"])
    kv, k_pe = torch.split(kv, [r, R], dim=-1)
    k_pe = apply_rotary_emb(k_pe.unsqueeze(1), fc).squeeze(1)
    wkv_b = lw["self_attn.kv_b_proj.weight"].view(H, nope + Dv, r)
    q_nope = torch.einsum("shd,hdc->shc", q_nope, wkv_b[:, :nope])
    kv_cache = rms_norm(kv, lw["self_attn.kv_a_layernorm.weight"], cfg["rms_norm_eps"])  # (T, r)
    pe_cache = k_pe  # (T, R)
    scores = (torch.einsum("shc,tc->sht", q_nope, kv_cache) + torch.einsum("shr,tr->sht", q_pe, pe_cache)) \
        * softmax_scale(cfg)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = torch.softmax(scores.masked_fill(~causal[:, None, :], float("-inf")), dim=-1)
    o = torch.einsum("sht,tc->shc", scores, kv_cache)
    o = torch.einsum("shc,hdc->shd", o, wkv_b[:, -Dv:])
    return linear(o.reshape(T, H * Dv), lw["self_attn.o_proj.weight"])


def gate_inference(x, lw, cfg, tie_pairs=()):
    # inference/model.py Gate.forward (python loops, deliberately unlike gate() above).
    logits = linear(x, lw["mlp.gate.weight"])
    for a, b in tie_pairs:
        logits[:, b] = logits[:, a]
    K, E = cfg["num_experts_per_tok"], logits.shape[1]
    bias = lw.get("mlp.gate.e_score_correction_bias")
    G = cfg.get("n_group") or 1
    if cfg["topk_method"] == "greedy":
        G = 1
    out_idx, out_w = [], []
    for row in logits.tolist():
        if cfg["scoring_func"] == "softmax":
            m = max(row)
            ex = [math.exp(v - m) for v in row]
            s = [v / sum(ex) for v in ex]
        else:
            s = [1 / (1 + math.exp(-v)) for v in row]
        c = [s[e] + (bias[e].item() if bias is not None else 0.0) for e in range(E)]
        if G > 1:
            per = E // G
            gs = []
            for g in range(G):
                m = sorted(c[g * per:(g + 1) * per], reverse=True)
                gs.append(m[0] if bias is None else m[0] + m[1])
            keep = sorted(range(G), key=lambda g: (-gs[g], g))[:cfg["topk_group"]]
            c = [c[e] if e // per in keep else -math.inf for e in range(E)]
        idx = sorted(range(E), key=lambda e: (-c[e], e))[:K]
        w = [s[e] for e in idx]
        if cfg["scoring_func"] == "sigmoid":
            w = [v / sum(w) for v in w]
        w = [v * cfg["routed_scaling_factor"] for v in w]
        out_idx.append(idx)
        out_w.append(w)
    return out_idx, out_w


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def make_weights(cfg, gen, tie_pairs=()):
    Hd, V = cfg["hidden_size"], cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    nope, R, Dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    qr = cfg["q_lora_rank"]
    E, F, I = cfg["n_routed_experts"], cfg["moe_intermediate_size"], cfg["intermediate_size"]

    def rn(*shape, std):
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    def nw(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float32)

    W = {"model.embed_tokens.weight": rn(V, Hd, std=0.5)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = nw(Hd)
        if qr is None:
            W[p + "self_attn.q_proj.weight"] = rn(H * (nope + R), Hd, std=0.25)
        else:
            W[p + "self_attn.q_a_proj.weight"] = rn(qr, Hd, std=0.25)
            W[p + "self_attn.q_a_layernorm.weight"] = nw(qr)
            W[p + "self_attn.q_b_proj.weight"] = rn(H * (nope + R), qr, std=0.3)
        W[p + "self_attn.kv_a_proj_with_mqa.weight"] = rn(r + R, Hd, std=0.25)
        W[p + "self_attn.kv_a_layernorm.weight"] = nw(r)
        W[p + "self_attn.kv_b_proj.weight"] = rn(H * (nope + Dv), r, std=0.3)
        W[p + "self_attn.o_proj.weight"] = rn(Hd, H * Dv, std=0.15)
        W[p + "post_attention_layernorm.weight"] = nw(Hd)
        if is_moe_layer(cfg, i):
            router = rn(E, Hd, std=0.25)
            for a, b in tie_pairs:
                router[b] = router[a]
            W[p + "mlp.gate.weight"] = router
            if cfg["topk_method"] == "noaux_tc":
                bias = rn(E, std=cfg["_bias_std"])
                for a, b in tie_pairs:
                    bias[b] = bias[a]
                W[p + "mlp.gate.e_score_correction_bias"] = bias
            for e in range(E):
                q = p + "mlp.experts.%d." % e
                W[q + "gate_proj.weight"] = rn(F, Hd, std=0.25)
                W[q + "up_proj.weight"] = rn(F, Hd, std=0.25)
                W[q + "down_proj.weight"] = rn(Hd, F, std=0.25)
            if cfg.get("n_shared_experts"):
                S = F * cfg["n_shared_experts"]  # moe_intermediate_size * n_shared_experts
                W[p + "mlp.shared_experts.gate_proj.weight"] = rn(S, Hd, std=0.25)
                W[p + "mlp.shared_experts.up_proj.weight"] = rn(S, Hd, std=0.25)
                W[p + "mlp.shared_experts.down_proj.weight"] = rn(Hd, S, std=0.2)
        else:
            W[p + "mlp.gate_proj.weight"] = rn(I, Hd, std=0.25)
            W[p + "mlp.up_proj.weight"] = rn(I, Hd, std=0.25)
            W[p + "mlp.down_proj.weight"] = rn(Hd, I, std=0.2)
    W["model.norm.weight"] = nw(Hd)
    W["lm_head.weight"] = rn(V, Hd, std=0.3)
    return W


def common_config():
    return {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000,
        "seq_aux": True,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "moe_layer_freq": 1,
        "ep_size": 1,
    }


def v2lite_config():
    c = common_config()
    c.update({
        "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2",
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 96,
        "moe_intermediate_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_shared_experts": 2,
        "n_routed_experts": 8,
        "num_experts_per_tok": 3,
        "first_k_dense_replace": 1,
        "routed_scaling_factor": 1.5,  # V2-Lite has 1.0; != 1 so that the scaling is tested
        "norm_topk_prob": False,
        "scoring_func": "softmax",
        "topk_method": "greedy",
        "n_group": 1,
        "topk_group": 1,
        "kv_lora_rank": 32,
        "q_lora_rank": None,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 16,
        "max_position_embeddings": 256,
        "rope_scaling": None,
    })
    return c


def v3_config():
    c = common_config()
    c.update({
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 96,
        "moe_intermediate_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_shared_experts": 1,
        "n_routed_experts": 16,
        "num_experts_per_tok": 4,
        "first_k_dense_replace": 1,
        "routed_scaling_factor": 2.5,
        "norm_topk_prob": True,
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "n_group": 4,
        "topk_group": 2,
        "kv_lora_rank": 32,
        "q_lora_rank": 24,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 16,
        "num_nextn_predict_layers": 0,
        "max_position_embeddings": 256,
        "rope_scaling": {
            "type": "yarn",
            "factor": 4.0,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 64,
        },
    })
    return c


def v2_grouped_config():
    # DeepSeek-V2 (full) style: q_lora, softmax with group_limited_greedy (a group scores its best
    # member), norm_topk_prob false and a routed_scaling_factor, yarn with mscale = mscale_all_dim
    # = 0.707 as in DeepSeek-V2's config (softmax scale (1 + 0.0707 ln 4)^2 / sqrt(24)).
    c = v2lite_config()
    c.update({
        "q_lora_rank": 24,
        "topk_method": "group_limited_greedy",
        "n_group": 4,
        "topk_group": 2,
        "n_shared_experts": 1,
        "routed_scaling_factor": 4.0,
        "rope_scaling": {
            "type": "yarn",
            "factor": 4.0,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 0.707,
            "mscale_all_dim": 0.707,
            "original_max_position_embeddings": 64,
        },
    })
    return c


def ties_config():
    # V3-style routing where experts e and e + 4 have identical router rows and biases: every
    # token sees exact ties between experts (e, e+4) and between groups (g, g+2). Top-3 of
    # duplicated pairs always leaves one tie at the expert boundary, topk_group 3 of duplicated
    # group pairs one at the group boundary. first_k_dense_replace 0: every layer is MoE.
    c = v3_config()
    c.update({
        "num_hidden_layers": 2,
        "first_k_dense_replace": 0,
        "n_routed_experts": 8,
        "num_experts_per_tok": 3,
        "n_group": 4,
        "topk_group": 3,
        "n_shared_experts": 1,
        "q_lora_rank": None,
        "rope_scaling": None,
    })
    return c


CASES = [
    # name, config, seed, n_tokens, bias std, tie pairs
    ("deepseek_v2lite", v2lite_config(), 5005, 16, None, ()),
    ("deepseek_v3", v3_config(), 6006, 20, 0.12, ()),
    ("deepseek_v2_grouped", v2_grouped_config(), 8008, 14, None, ()),
    ("deepseek_ties", ties_config(), 7007, 12, 0.05, ((0, 4), (1, 5), (2, 6), (3, 7))),
]


def fmt(x):
    return float("%.10g" % x)


def write_expected(out, name, tokens, logits, routing):
    """expected.json of a case folder; returns the folder's size (kept under 1 MiB)."""
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"tokens": tokens, "logits": [[fmt(v) for v in row] for row in logits.tolist()],
                   "routing": routing}, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
    assert size < 1 << 20, (name, size)
    return size


def check_margins(name, cfg, layer, info, tie_pairs):
    """Every routing decision is either an exact (intended) tie or clear by MARGIN, so the
    float32 engine must make the same choice.  Without ties only the gap at the boundary (k-th
    vs (k+1)-th) decides the set; with ties, which tied pair is complete depends on the gaps
    above it too, so every gap among the best k+1 must be exact or clear.  Same for groups.
    Returns the number of exact ties met at a boundary."""
    ties = 0

    def gaps(vals, k):
        nonlocal ties
        v = sorted(vals, reverse=True)
        for j in (range(k) if tie_pairs else [k - 1]):
            gap = v[j] - v[j + 1]
            if gap == 0:
                assert tie_pairs, (name, layer, "unexpected exact tie", j)
                ties += j == k - 1
            else:
                assert gap > MARGIN, (name, layer, "routing decision too close", j, gap)

    choice = info["choice"]
    for t in range(choice.shape[0]):
        gaps(choice[t].tolist(), cfg["num_experts_per_tok"])
        if "group_scores" in info and cfg["topk_group"] < cfg["n_group"]:
            gaps(info["group_scores"][t].tolist(), cfg["topk_group"])
    return ties


def build(name, cfg, seed, n_tokens, bias_std, tie_pairs):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    work = dict(cfg)
    if bias_std is not None:
        work["_bias_std"] = bias_std
    W32 = make_weights(work, gen, tie_pairs)
    tokens = torch.randint(0, cfg["vocab_size"], (n_tokens,), generator=gen).tolist()

    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st = os.path.join(out, "model.safetensors")
    write_safetensors(st, W32)
    W = read_safetensors(st)
    assert set(W) == set(W32) and all(torch.equal(W[k], W32[k]) for k in W)
    W = {k: v.to(DT) for k, v in W.items()}
    if tie_pairs:
        work["_tie_pairs"] = tie_pairs

    log = []
    logits = forward(work, W, tokens, "hf", log)

    # Self-check 1: inference/model.py's absorbed MLA with complex (adjacent-pair) RoPE gives
    # the same logits as HF's naive attention with its de-interleaving rotate_half.
    logits_abs = forward(work, W, tokens, "absorb")
    d = (logits - logits_abs).abs().max().item()
    assert d < 1e-10, (name, "absorbed MLA != naive MLA", d)

    # Self-check 2: the yarn frequencies have the expected shape (extrapolated first pairs,
    # interpolated last pairs, a ramp between) and the HF/V3 softmax scale.
    rs = cfg.get("rope_scaling")
    if rs is not None:
        R = cfg["qk_rope_head_dim"]
        inv, ms = rope_inv_freq_and_mscale(cfg)
        base = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, R, 2, dtype=DT) / R))
        low, high = yarn_find_correction_range(rs["beta_fast"], rs["beta_slow"], R, cfg["rope_theta"],
                                               rs["original_max_position_embeddings"])
        assert (low, high) == (0, 2), (low, high)
        assert inv.shape == (R // 2,)
        assert abs(inv[0] - base[0]) < 1e-15 and abs(inv[1] - 0.5 * (base[1] + base[1] / rs["factor"])) < 1e-15
        assert torch.allclose(inv[2:], base[2:] / rs["factor"], rtol=1e-15, atol=0)
        assert ms == 1.0
        want = (cfg["qk_nope_head_dim"] + R) ** -0.5 * (0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1) ** 2
        assert abs(softmax_scale(cfg) - want) < 1e-15

    # Self-check 3: inference/model.py's Gate (scalar loops) picks the same experts with the same
    # weights; HF's 0.0 masking of dropped groups picks the same experts as -inf.
    routing = []
    n_ties = 0
    n_bias_changed = 0
    n_group_changed = 0
    for (layer, idx, wt, info) in log:
        # recompute the MoE input of this layer for the cross-checks
        h_in = moe_input(work, W, tokens, layer)
        lw = layer_weights(W, layer)
        i2, w2 = gate_inference(h_in, lw, work, tie_pairs)
        assert [sorted(r) for r in i2] == [sorted(r) for r in idx.tolist()], (name, layer, "Gate != MoEGate")
        for t in range(len(i2)):
            a = dict(zip(i2[t], w2[t]))
            b = dict(zip(idx[t].tolist(), wt[t].tolist()))
            assert all(abs(a[e] - b[e]) < 1e-12 for e in a), (name, layer, t)
        i0, _ = gate(h_in, lw, work, mask_fill=0.0, info={"tie_pairs": tie_pairs} if tie_pairs else None)
        assert torch.equal(i0, idx), (name, layer, "HF 0.0 masking differs from -inf")
        n_ties += check_margins(name, cfg, layer, info, tie_pairs)
        if cfg["topk_method"] == "noaux_tc":
            nb = dict(work)
            Wb = dict(lw)
            Wb["mlp.gate.e_score_correction_bias"] = torch.zeros_like(lw["mlp.gate.e_score_correction_bias"])
            ib, _ = gate(h_in, Wb, nb, info={"tie_pairs": tie_pairs} if tie_pairs else None)
            n_bias_changed += sum(sorted(a) != sorted(b) for a, b in zip(ib.tolist(), idx.tolist()))
        if cfg["topk_method"] != "greedy":
            ng = dict(work)
            ng["topk_group"] = ng["n_group"]  # every group kept
            ig, _ = gate(h_in, lw, ng, info={"tie_pairs": tie_pairs} if tie_pairs else None)
            n_group_changed += sum(sorted(a) != sorted(b) for a, b in zip(ig.tolist(), idx.tolist()))
        order = torch.argsort(idx, dim=-1)
        routing.append({
            "layer": layer,
            "experts": idx.gather(1, order).tolist(),
            "weights": [[fmt(v) for v in row] for row in wt.gather(1, order).tolist()],
        })
    if cfg["topk_method"] == "noaux_tc":
        # the selection bias must matter: some tokens choose other experts because of it
        assert n_bias_changed > 0, (name, "e_score_correction_bias never changes the selection")
    if cfg["topk_method"] != "greedy":
        # the group limit must matter: some tokens lose an expert of a dropped group
        assert n_group_changed > 0, (name, "the group limit never changes the selection")
    if tie_pairs:
        assert n_ties >= len(tokens), (name, "too few boundary ties", n_ties)
        # the lower index wins: no selection holds the upper member of a pair without the lower
        for r in routing:
            for ex in r["experts"]:
                for a, b in tie_pairs:
                    assert not (b in ex and a not in ex), (name, ex)
    assert logits.std(0).mean().item() > 0.1, name

    size = write_expected(out, name, tokens, logits, routing)
    print("%-19s T=%2d V=%d  logits std %.3f  absorbed-vs-naive %.2g  bias changed %d  groups changed %d  ties %d  folder %d bytes"
          % (name, len(tokens), cfg["vocab_size"], logits.std(0).mean().item(), d, n_bias_changed, n_group_changed,
             n_ties, size))


def moe_input(cfg, W, tokens, upto):
    """The post-attention-normed residual stream entering layer `upto`'s MLP."""
    eps = cfg["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    cos, sin = rope_cos_sin(cfg, len(tokens))
    for i in range(upto + 1):
        lw = layer_weights(W, i)
        h = h + attention_hf(rms_norm(h, lw["input_layernorm.weight"], eps), lw, cfg, cos, sin)
        x = rms_norm(h, lw["post_attention_layernorm.weight"], eps)
        if i == upto:
            return x
        if is_moe_layer(cfg, i):
            info = {"tie_pairs": cfg["_tie_pairs"]} if "_tie_pairs" in cfg else {}
            h = h + moe(x, lw, cfg, info)[0]
        else:
            h = h + silu_mlp(x, lw, "mlp.")


# A PEFT LoRA adapter over the deepseek_v3 case: every module PEFT's target names select, each
# routed expert's gate/up/down its own module ("model.layers.1.mlp.experts.5.gate_proj"), as
# PeftModel wraps DeepseekV3's nn.Linear experts; kv_b_proj too (the engine folds its low-rank delta
# into the absorbed query / output side).
LORA_TARGETS = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "gate_proj", "up_proj",
                "down_proj"]


def build_lora(base, name, seed, r, alpha, b_std):
    src = os.path.join(HERE, base)
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(src, "expected.json")) as f:
        base_exp = json.load(f)
    W = {k: v.to(DT) for k, v in read_safetensors(os.path.join(src, "model.safetensors")).items()}
    tokens = base_exp["tokens"]
    gen = torch.Generator().manual_seed(seed)
    A32 = {}
    for key in sorted(W):
        parts = key.split(".")
        if not key.endswith(".weight") or len(parts) < 3 or parts[-2] not in LORA_TARGETS:
            continue
        out_f, in_f = W[key].shape
        module = key[:-len(".weight")]
        bound = 1.0 / math.sqrt(in_f)  # PEFT's kaiming_uniform_(a=sqrt(5)) bound for lora_A
        a = (torch.rand(r, in_f, generator=gen, dtype=torch.float32) * 2 - 1) * bound
        b = torch.randn(out_f, r, generator=gen, dtype=torch.float32) * b_std  # trained: B != 0
        A32["base_model.model." + module + ".lora_A.weight"] = a
        A32["base_model.model." + module + ".lora_B.weight"] = b
    n_expert_modules = sum(".mlp.experts." in k for k in A32) // 2
    assert n_expert_modules == 2 * cfg["n_routed_experts"] * 3, n_expert_modules
    st = os.path.join(out, "adapter_model.safetensors")
    write_safetensors(st, A32)
    A = {k: v.to(DT) for k, v in read_safetensors(st).items()}
    acfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "../" + base, "r": r,
            "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": LORA_TARGETS, "use_rslora": False,
            "bias": "none", "fan_in_fan_out": False, "use_dora": False, "init_lora_weights": True,
            "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "inference_mode": True}
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(acfg, f, indent=2)
        f.write("\n")
    LORA.clear()
    scale = alpha / r
    for k in A:
        if k.endswith(".lora_A.weight"):
            module = k[len("base_model.model."):-len(".lora_A.weight")]
            LORA[id(W[module + ".weight"])] = (A[k], A[k.replace("lora_A", "lora_B")], scale)
    log = []
    logits = forward(cfg, W, tokens, "hf", log)
    routing = []
    changed = 0
    for (layer, idx, wt, info) in log:
        check_margins(name, cfg, layer, info, ())
        order = torch.argsort(idx, dim=-1)
        routing.append({"layer": layer, "experts": idx.gather(1, order).tolist(),
                        "weights": [[fmt(v) for v in row] for row in wt.gather(1, order).tolist()]})
        base_r = next(x for x in base_exp["routing"] if x["layer"] == layer)
        changed += sum(a != b for a, b in zip(routing[-1]["experts"], base_r["experts"]))
    LORA.clear()
    base_logits = torch.tensor(base_exp["logits"], dtype=DT)
    rel = ((logits - base_logits).abs().max() / base_logits.abs().max()).item()
    assert rel > 0.05, (name, "the adapter hardly changes the logits", rel)
    size = write_expected(out, name, tokens, logits, routing)
    print("%-19s %d LoRA modules (%d routed-expert), r %d, alpha %g: logits moved %.3f of max, %d token routings "
          "changed, folder %d bytes" % (name, len(A32) // 2, n_expert_modules, r, alpha, rel, changed, size))


def main():
    torch.set_grad_enabled(False)
    for c in CASES:
        build(*c)
    build_lora("deepseek_v3", "deepseek_v3_lora", 9009, 4, 8, 0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
