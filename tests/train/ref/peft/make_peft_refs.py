#!/usr/bin/python3
"""Independent PyTorch references for PEFT adapters (LoRA, prompt tuning) on a tiny Llama.

Run with Debian's torch (the pyenv `python3` on PATH has no torch):

    /usr/bin/python3 tests/train/ref/peft/make_peft_refs.py

It writes, next to itself (see README.md for the layout and the training protocol):

  base/                        a Hugging Face Llama folder (config.json, model.safetensors)
  lora/, lora_rslora/          PEFT LoRA adapter folders, as PEFT 0.13's save_pretrained writes them
  prompt/                      a PEFT PROMPT_TUNING adapter folder
  expected_lora.json           logits of base, base + lora, base + lora_rslora
  expected_merged.safetensors  W + s*B*A of every module lora/ covers (HF weight names)
  expected_prompt.json         logits of the real tokens after the 3 virtual tokens
  expected_trajectory.json     a 10-step LoRA training run (AdamW, grad clipping)

Neither `transformers`, `peft` nor `safetensors` is used. The forward below re-implements, in
plain float64 torch, transformers' modeling_llama.py (LlamaRMSNorm, LlamaRotaryEmbedding with
the default rope type, rotate_half, repeat_kv, eager attention with a causal mask, LlamaMLP) and
PEFT's LoRA / prompt-tuning semantics:

  * peft/tuners/lora/layer.py, Linear.forward:
        result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling
    with scaling = lora_alpha / r, or lora_alpha / sqrt(r) when use_rslora (LoraLayer.update_layer).
    Linear.get_delta_weight: B @ A * scaling (fan_in_fan_out false); merge: W += delta.
  * peft/peft_model.py, PeftModelForCausalLM.forward for prompt learning (not prefix tuning):
        prompts = self.get_prompt(batch_size)      # (B, N, C) = prompt_embeddings
        inputs_embeds = torch.cat((prompts, inputs_embeds), dim=1)
    and the attention mask is extended by N ones in front; position_ids are not passed, so the
    model uses 0 .. N+T-1. The logits of rows N .. N+T-1 belong to the real tokens.

Weights are drawn in float32 from fixed torch.Generator seeds, written to safetensors, READ BACK
from the files and only then upcast to float64, so the references use exactly the float32 values
the engine loads.
"""

import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODULE_PATH = {  # short name -> path inside model.layers.<i>
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}
BASE_NAME = "tests/train/ref/peft/base"  # base_model_name_or_path written into the adapters

# The safetensors writer/reader and the Llama helpers are make_arch_refs.py's (one copy).
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "model", "ref"))
from make_arch_refs import read_safetensors, rms_norm, rope_cos_sin, rotate_half, write_safetensors  # noqa: E402


def write_json(path, obj, peft_style=False):
    with open(path, "w") as f:
        if peft_style:
            # PeftConfigMixin.save_pretrained: json.dumps(output_dict, indent=2, sort_keys=True)
            f.write(json.dumps(obj, indent=2, sort_keys=True))
        else:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")


def fmt(x):
    return float("%.10g" % x)  # logits: 10 significant digits (float32 needs 9)


def fmt_rows(t):
    return [[fmt(v) for v in row] for row in t.tolist()]


# --------------------------------------------------------------------------
# The base model: HF Llama config and weights
# --------------------------------------------------------------------------

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "initializer_range": 0.02,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def module_shapes(cfg):
    """(out, in) of every LoRA-able module, PEFT/HF short names."""
    C, I = cfg["hidden_size"], cfg["intermediate_size"]
    D = cfg["head_dim"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    return {"q_proj": (H * D, C), "k_proj": (KV * D, C), "v_proj": (KV * D, C), "o_proj": (C, H * D),
            "gate_proj": (I, C), "up_proj": (I, C), "down_proj": (C, I)}


def make_base_weights(cfg, gen):
    C, V = cfg["hidden_size"], cfg["vocab_size"]
    shapes = module_shapes(cfg)

    def rn(*shape, std):
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    def nw(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float32)

    W = {"model.embed_tokens.weight": rn(V, C, std=0.3)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = nw(C)
        for m in TARGETS:
            W[p + MODULE_PATH[m] + ".weight"] = rn(*shapes[m], std=0.2)
        W[p + "post_attention_layernorm.weight"] = nw(C)
    W["model.norm.weight"] = nw(C)
    W["lm_head.weight"] = rn(V, C, std=0.3)
    return W


# --------------------------------------------------------------------------
# HF Llama forward in float64, with PEFT LoRA on the linears
# --------------------------------------------------------------------------


class Lora:
    """PEFT LoRA modules: {(layer, short): (A (r, in), B (out, r))} and one scaling."""

    def __init__(self, pairs, scale):
        self.pairs = pairs
        self.scale = scale


def lin(x, W, layer, short, lora):
    """nn.Linear (no bias) wrapped by peft.tuners.lora.layer.Linear (dropout 0)."""
    y = x @ W["model.layers.%d.%s.weight" % (layer, MODULE_PATH[short])].t()
    if lora is not None and (layer, short) in lora.pairs:
        A, B = lora.pairs[(layer, short)]
        y = y + ((x @ A.t()) @ B.t()) * lora.scale
    return y


def forward_embeds(cfg, W, h, lora=None):
    """Full causal forward of input rows h (T, C) at positions 0..T-1 -> logits (T, V)."""
    T = h.shape[0]
    eps = cfg["rms_norm_eps"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    cos, sin = rope_cos_sin(T, D, cfg["rope_theta"])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        x = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        q = lin(x, W, l, "q_proj", lora).view(T, H, D).transpose(0, 1)
        k = lin(x, W, l, "k_proj", lora).view(T, KV, D).transpose(0, 1)
        v = lin(x, W, l, "v_proj", lora).view(T, KV, D).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // KV  # repeat_kv: query head h uses kv head h // rep
        k = k[:, None].expand(KV, rep, T, D).reshape(H, T, D)
        v = v[:, None].expand(KV, rep, T, D).reshape(H, T, D)
        s = (q @ k.transpose(1, 2)) * D ** -0.5
        s = s.masked_fill(~mask[None], float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, H * D)
        h = h + lin(o, W, l, "o_proj", lora)
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        g = lin(x, W, l, "gate_proj", lora)
        u = lin(x, W, l, "up_proj", lora)
        h = h + lin(torch.nn.functional.silu(g) * u, W, l, "down_proj", lora)
    h = rms_norm(h, W["model.norm.weight"], eps)
    return h @ W["lm_head.weight"].t()


def forward(cfg, W, tokens, lora=None):
    return forward_embeds(cfg, W, W["model.embed_tokens.weight"][torch.tensor(tokens)], lora)


# --------------------------------------------------------------------------
# PEFT files
# --------------------------------------------------------------------------


def lora_config(r, alpha, targets, use_rslora):
    # Every key LoraConfig (PEFT 0.13) has after save_pretrained (runtime_config is dropped by
    # LoraConfig.to_dict; inference_mode is set to True on save).
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": BASE_NAME,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": use_rslora,
    }


def prompt_config(cfg, n_virtual):
    # Every key PromptTuningConfig (PEFT 0.13) has after save_pretrained.
    return {
        "auto_mapping": None,
        "base_model_name_or_path": BASE_NAME,
        "inference_mode": True,
        "num_attention_heads": cfg["num_attention_heads"],
        "num_layers": cfg["num_hidden_layers"],
        "num_transformer_submodules": 1,
        "num_virtual_tokens": n_virtual,
        "peft_type": "PROMPT_TUNING",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "CAUSAL_LM",
        "token_dim": cfg["hidden_size"],
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }


def tensor_prefix(layer, short):
    return "base_model.model.model.layers.%d.%s" % (layer, MODULE_PATH[short])


def make_lora_folder(name, cfg, gen, r, alpha, targets, use_rslora):
    """Writes <name>/ and returns its pairs read back from the file (float64)."""
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    shapes = module_shapes(cfg)
    T = {}
    for l in range(cfg["num_hidden_layers"]):
        for m in targets:
            o, i = shapes[m]
            bound = 1.0 / math.sqrt(i)  # the range of PEFT's default A init (kaiming_uniform, a=sqrt(5))
            T[tensor_prefix(l, m) + ".lora_A.weight"] = (torch.rand(r, i, generator=gen) * 2 - 1) * bound
            # PEFT initialises B to zero; a trained B is not, and a zero B would hide the delta.
            T[tensor_prefix(l, m) + ".lora_B.weight"] = torch.randn(o, r, generator=gen) * 0.1
    write_json(os.path.join(out, "adapter_config.json"), lora_config(r, alpha, targets, use_rslora), peft_style=True)
    st = os.path.join(out, "adapter_model.safetensors")
    write_safetensors(st, T)
    R = read_safetensors(st)
    assert set(R) == set(T) and all(torch.equal(R[k], T[k]) for k in R)
    pairs = {}
    for l in range(cfg["num_hidden_layers"]):
        for m in targets:
            pairs[(l, m)] = (R[tensor_prefix(l, m) + ".lora_A.weight"].to(DT),
                             R[tensor_prefix(l, m) + ".lora_B.weight"].to(DT))
    scale = alpha / math.sqrt(r) if use_rslora else alpha / r
    return Lora(pairs, scale)


# --------------------------------------------------------------------------
# The training trajectory
# --------------------------------------------------------------------------

TRAIN = {"steps": 10, "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0,
         "r": 4, "lora_alpha": 8, "targets": TARGETS}


def batch_loss(cfg, W, inputs, targets, lora):
    losses = []
    for seq_in, seq_tgt in zip(inputs, targets):
        logits = forward(cfg, W, seq_in, lora)
        losses.append(torch.nn.functional.cross_entropy(logits, torch.tensor(seq_tgt), reduction="sum"))
    n = sum(len(t) for t in targets)
    return sum(losses) / n  # mean over all 16 positions


def trajectory(cfg, W, lora_init, seqs):
    inputs = [s[:-1] for s in seqs]
    targets = [s[1:] for s in seqs]
    params, pairs = [], {}
    for key in sorted(lora_init.pairs, key=lambda k: (k[0], TARGETS.index(k[1]))):
        A0, B0 = lora_init.pairs[key]
        A = A0.clone().requires_grad_(True)
        B = torch.zeros_like(B0, requires_grad=True)  # PEFT's init: B = 0
        pairs[key] = (A, B)
        params += [A, B]
    lora = Lora(pairs, TRAIN["lora_alpha"] / TRAIN["r"])
    opt = torch.optim.AdamW(params, lr=TRAIN["lr"], betas=tuple(TRAIN["betas"]), eps=TRAIN["eps"],
                            weight_decay=TRAIN["weight_decay"])
    # A hand-written AdamW + clipping, kept beside torch's as a check of the protocol in README.md.
    mine = [p.detach().clone() for p in params]
    m1 = [torch.zeros_like(p) for p in mine]
    m2 = [torch.zeros_like(p) for p in mine]
    b1, b2 = TRAIN["betas"]
    losses, norms, min_abs_b_grad = [], [], None
    for step in range(1, TRAIN["steps"] + 1):
        opt.zero_grad()
        loss = batch_loss(cfg, W, inputs, targets, lora)
        loss.backward()
        losses.append(loss.item())
        grads = [p.grad.detach().clone() for p in params]
        if step == 1:
            # Conditioning of the first Adam step: the smallest |dL/dB| (A's gradient is 0 while B = 0).
            min_abs_b_grad = min(g.abs().min().item() for g in grads[1::2])
            assert all(torch.all(g == 0) for g in grads[0::2])
        total = torch.norm(torch.stack([torch.norm(g, 2) for g in grads]), 2)
        norms.append(total.item())
        torch.nn.utils.clip_grad_norm_(params, TRAIN["max_grad_norm"])
        opt.step()
        # the same step by hand
        coef = min(TRAIN["max_grad_norm"] / (total.item() + 1e-6), 1.0)
        for j, g in enumerate(grads):
            g = g * coef
            mine[j] = mine[j] * (1 - TRAIN["lr"] * TRAIN["weight_decay"])
            m1[j] = b1 * m1[j] + (1 - b1) * g
            m2[j] = b2 * m2[j] + (1 - b2) * g * g
            mhat = m1[j] / (1 - b1 ** step)
            vhat = m2[j] / (1 - b2 ** step)
            mine[j] = mine[j] - TRAIN["lr"] * mhat / (vhat.sqrt() + TRAIN["eps"])
        for p, q in zip(params, mine):
            assert torch.allclose(p.detach(), q, rtol=0, atol=1e-14), (step, (p.detach() - q).abs().max().item())
    with torch.no_grad():
        final_loss = batch_loss(cfg, W, inputs, targets, lora).item()
    A, B = pairs[(0, "q_proj")]
    return {
        "protocol": "see README.md",
        "r": TRAIN["r"], "lora_alpha": TRAIN["lora_alpha"], "lora_dropout": 0.0, "target_modules": TARGETS,
        "init_A": "lora/adapter_model.safetensors lora_A of every module", "init_B": "zeros",
        "optimizer": {"name": "AdamW", "lr": TRAIN["lr"], "betas": TRAIN["betas"], "eps": TRAIN["eps"],
                      "weight_decay": TRAIN["weight_decay"], "max_grad_norm": TRAIN["max_grad_norm"]},
        "inputs": inputs, "targets": targets,
        "losses": [float("%.15g" % x) for x in losses],
        "grad_norms": [float("%.15g" % x) for x in norms],
        "loss_after": float("%.15g" % final_loss),
        "min_abs_grad_B_step1": float("%.6g" % min_abs_b_grad),
        "final": {
            "module": "base_model.model.model.layers.0.self_attn.q_proj",
            "lora_A": [[float("%.12g" % v) for v in row] for row in A.detach().tolist()],
            "lora_B": [[float("%.12g" % v) for v in row] for row in B.detach().tolist()],
        },
    }


# --------------------------------------------------------------------------


def main():
    torch.set_grad_enabled(False)
    cfg = CONFIG
    V = cfg["vocab_size"]
    gen = torch.Generator().manual_seed(5005)

    # 1. base/
    base = os.path.join(HERE, "base")
    os.makedirs(base, exist_ok=True)
    W32 = make_base_weights(cfg, gen)
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st = os.path.join(base, "model.safetensors")
    write_safetensors(st, W32)
    R = read_safetensors(st)
    assert set(R) == set(W32) and all(torch.equal(R[k], W32[k]) for k in R)
    W = {k: v.to(DT) for k, v in R.items()}

    # 2. lora/ and lora_rslora/
    lora = make_lora_folder("lora", cfg, gen, r=4, alpha=8, targets=TARGETS, use_rslora=False)
    rslora = make_lora_folder("lora_rslora", cfg, gen, r=4, alpha=8, targets=["q_proj", "v_proj"], use_rslora=True)
    assert lora.scale == 2.0 and rslora.scale == 4.0

    # 3. expected_lora.json
    tokens = torch.randint(0, V, (10,), generator=gen).tolist()
    base_logits = forward(cfg, W, tokens)
    lora_logits = forward(cfg, W, tokens, lora)
    rslora_logits = forward(cfg, W, tokens, rslora)
    assert base_logits.std(0).mean().item() > 0.1
    for name, x in (("lora", lora_logits), ("lora_rslora", rslora_logits)):
        d = (x - base_logits).abs().max().item() / base_logits.abs().max().item()
        assert d > 0.05, (name, "the adapter must change the logits visibly", d)

    # 4. merged weights; self-check: the merged base alone gives the LoRA logits
    merged = {}
    Wm = dict(W)
    for (l, m), (A, B) in lora.pairs.items():
        name = "model.layers.%d.%s.weight" % (l, MODULE_PATH[m])
        Wm[name] = W[name] + lora.scale * (B @ A)  # get_delta_weight: B @ A * scaling
        merged[name] = Wm[name]
    assert torch.allclose(forward(cfg, Wm, tokens), lora_logits, rtol=0, atol=1e-10)
    write_safetensors(os.path.join(HERE, "expected_merged.safetensors"), merged)

    write_json(os.path.join(HERE, "expected_lora.json"), {
        "tokens": tokens,
        "base_logits": fmt_rows(base_logits),
        "lora_logits": fmt_rows(lora_logits),
        "lora_scale": lora.scale,
        "lora_rslora_logits": fmt_rows(rslora_logits),
        "lora_rslora_scale": rslora.scale,
    })

    # 5. prompt/ and expected_prompt.json
    N = 3
    pdir = os.path.join(HERE, "prompt")
    os.makedirs(pdir, exist_ok=True)
    P32 = torch.randn(N, cfg["hidden_size"], generator=gen) * 0.3
    write_json(os.path.join(pdir, "adapter_config.json"), prompt_config(cfg, N), peft_style=True)
    pst = os.path.join(pdir, "adapter_model.safetensors")
    write_safetensors(pst, {"prompt_embeddings": P32})
    P = read_safetensors(pst)["prompt_embeddings"].to(DT)
    ptokens = torch.randint(0, V, (6,), generator=gen).tolist()
    emb = torch.cat((P, W["model.embed_tokens.weight"][torch.tensor(ptokens)]), dim=0)
    prompt_logits = forward_embeds(cfg, W, emb)[N:]
    # self-checks: virtual rows equal to token embeddings give the plain token forward; the
    # prompt changes the logits.
    fake = ptokens[:N]
    emb2 = torch.cat((W["model.embed_tokens.weight"][torch.tensor(fake)], emb[N:]), dim=0)
    assert torch.allclose(forward_embeds(cfg, W, emb2), forward(cfg, W, fake + ptokens), rtol=0, atol=1e-12)
    assert (prompt_logits - forward(cfg, W, ptokens)).abs().max().item() > 0.1
    write_json(os.path.join(HERE, "expected_prompt.json"), {
        "num_virtual_tokens": N,
        "tokens": ptokens,
        "logits": fmt_rows(prompt_logits),
    })

    # 6. expected_trajectory.json
    seqs = torch.randint(0, V, (2, 9), generator=gen).tolist()
    with torch.enable_grad():
        traj = trajectory(cfg, W, lora, seqs)
    assert traj["losses"][-1] < traj["losses"][0]
    write_json(os.path.join(HERE, "expected_trajectory.json"), traj)

    total = 0
    for root, _, files in os.walk(HERE):
        for fn in files:
            if fn.endswith(".py") or fn.endswith(".md"):
                continue
            total += os.path.getsize(os.path.join(root, fn))
    print("base logits std over positions %.3f" % base_logits.std(0).mean().item())
    print("lora: max|dlogit| %.3f  rslora: %.3f  prompt vs no prompt: %.3f" % (
        (lora_logits - base_logits).abs().max().item(), (rslora_logits - base_logits).abs().max().item(),
        (prompt_logits - forward(cfg, W, ptokens)).abs().max().item()))
    print("trajectory losses:", " ".join("%.6f" % x for x in traj["losses"]), " after: %.6f" % traj["loss_after"])
    print("grad norms:", " ".join("%.4f" % x for x in traj["grad_norms"]))
    print("min |dL/dB| at step 1: %.3g" % traj["min_abs_grad_B_step1"])
    print("generated data: %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
