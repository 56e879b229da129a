#!/usr/bin/python3
"""PyTorch reference for `llmforge train` throughput (bench/train_ab.sh, bench/lora_ab.sh): the
same Llama shape, random tokens, AdamW, fp32 or bf16 autocast, N threads. Prints one JSON line with
the median tokens/s over the timed steps and the peak RSS. Needs Debian's python3-torch
(benchmarks only; nothing in the build or the tests uses Python).

Full training (default) or LoRA (--lora-r R): the base is frozen (requires_grad False on every base
tensor, as `llmforge train --peft lora`), each target projection (--lora-targets, default
q_proj,k_proj,v_proj,o_proj) becomes y = W x + (alpha/r) B A x written in plain torch (PEFT is not
packaged for Debian; this is PEFT's LoraLayer arithmetic: A kaiming-uniform, B zero, no dropout),
and AdamW and the gradient clip see the LoRA tensors only. --untied gives the model its own output
matrix (the 110m GGUF files of bench/ab.sh are untied)."""
import argparse, json, math, resource, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    """PEFT's LoRA layer in plain torch: base(x) + scale * B(A(x)); base frozen, B starts at 0."""

    def __init__(s, base, r, alpha):
        super().__init__()
        s.base, s.scale = base, alpha / r
        s.lora_A = nn.Linear(base.in_features, r, bias=False)  # kaiming_uniform_(a=sqrt(5)), as PEFT
        s.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(s.lora_B.weight)

    def forward(s, x):
        return s.base(x) + s.lora_B(s.lora_A(x)) * s.scale


# HF module names of the LoRA targets -> attributes of Block
TARGETS = dict(q_proj="wq", k_proj="wk", v_proj="wv", o_proj="wo", gate_proj="w1", down_proj="w2", up_proj="w3")


class Block(nn.Module):
    def __init__(s, dim, heads, kv, ffn):
        super().__init__()
        s.h, s.kv, s.d = heads, kv, dim // heads
        s.an, s.fn = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))
        s.wq, s.wk = nn.Linear(dim, dim, bias=False), nn.Linear(dim, kv * s.d, bias=False)
        s.wv, s.wo = nn.Linear(dim, kv * s.d, bias=False), nn.Linear(dim, dim, bias=False)
        s.w1, s.w2, s.w3 = nn.Linear(dim, ffn, bias=False), nn.Linear(ffn, dim, bias=False), nn.Linear(dim, ffn, bias=False)

    @staticmethod
    def norm(x, g):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5).type_as(x) * g

    def forward(s, x, cos, sin):
        B, T, C = x.shape
        h = s.norm(x, s.an)
        q = s.wq(h).view(B, T, s.h, s.d)
        k = s.wk(h).view(B, T, s.kv, s.d)
        v = s.wv(h).view(B, T, s.kv, s.d)

        def rope(t):  # rotate-half
            a, b = t[..., : s.d // 2], t[..., s.d // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)

        q, k = rope(q), rope(k)
        if s.kv != s.h:
            k = k.repeat_interleave(s.h // s.kv, dim=2)
            v = v.repeat_interleave(s.h // s.kv, dim=2)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True) \
            if hasattr(F, "scaled_dot_product_attention") else None
        if o is None:
            att = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / math.sqrt(s.d)
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
            o = att @ v.transpose(1, 2)
        x = x + s.wo(o.transpose(1, 2).reshape(B, T, C))
        h = s.norm(x, s.fn)
        return x + s.w2(F.silu(s.w1(h)) * s.w3(h))


class Llama(nn.Module):
    def __init__(s, dim, layers, heads, kv, ffn, vocab, seq, untied=False):
        super().__init__()
        s.emb = nn.Embedding(vocab, dim)
        nn.init.normal_(s.emb.weight, std=0.02)
        s.out = nn.Parameter(torch.randn(vocab, dim) * 0.02) if untied else None
        s.blocks = nn.ModuleList(Block(dim, heads, kv, ffn) for _ in range(layers))
        s.n = nn.Parameter(torch.ones(dim))
        d = dim // heads
        inv = 10000.0 ** (-torch.arange(0, d, 2).float() / d)
        a = torch.outer(torch.arange(seq).float(), inv)
        s.register_buffer("cos", a.cos()[None, :, None, :])
        s.register_buffer("sin", a.sin()[None, :, None, :])

    def forward(s, idx, tgt):
        x = s.emb(idx)
        for b in s.blocks:
            x = b(x, s.cos, s.sin)
        x = Block.norm(x, s.n)
        logits = x @ (s.emb.weight if s.out is None else s.out).t()  # tied unless --untied
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), tgt.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(dim=288, layers=6, heads=6, kv=6, ffn=768, vocab=32000, seq=256, batch=8, steps=8, threads=2).items():
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--untied", action="store_true", help="own output matrix instead of the tied embedding")
    ap.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0: full training)")
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj")
    ap.add_argument("--saved-bytes", action="store_true",
                    help="also count the bytes autograd saves for backward in one forward (the activations)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = Llama(a.dim, a.layers, a.heads, a.kv, a.ffn, a.vocab, a.seq, a.untied)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.lora_r > 0:
        m.requires_grad_(False)  # the frozen base
        for b in m.blocks:
            for t in a.lora_targets.split(","):
                setattr(b, TARGETS[t], LoraLinear(getattr(b, TARGETS[t]), a.lora_r, a.lora_alpha))
    train_params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(train_params, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    saved = None
    if a.saved_bytes:  # unique storages saved for backward, parameters excluded
        params = {p.data_ptr() for p in m.parameters()}
        seen = {}

        def pack(t):
            st = t.storage()
            if st.data_ptr() not in params:
                seen[st.data_ptr()] = st.nbytes()
            return t

        idx = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                loss = m(idx[:, :-1], idx[:, 1:])
        saved = sum(seen.values()) / 2**20
        del loss
    rates = []
    for step in range(a.steps):
        idx = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = m(idx[:, :-1], idx[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train_params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if step > 0:
            rates.append(a.batch * a.seq / dt)
        print(f"torch: step {step} loss {loss.item():.4f} {a.batch * a.seq / dt:.0f} tok/s", file=sys.stderr)
    rates.sort()
    print(json.dumps({"impl": "pytorch " + torch.__version__, "precision": a.precision,
                      "params": sum(p.numel() for p in m.parameters()),
                      "trainable_params": sum(p.numel() for p in train_params),
                      "rss_after_init_mb": rss_model, "saved_activations_mb": saved,
                      "tokens_per_s": rates[len(rates) // 2],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
