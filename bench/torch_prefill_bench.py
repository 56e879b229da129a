#!/usr/bin/python3
"""PyTorch reference for prompt processing (`llmforge bench -p 512 -n 0`): the same Llama shape with
random weights in bf16 (or fp32), one 512-token prompt through the whole model under no_grad,
logits for the last position only (as llama-bench's pp512), N threads. Prints one JSON line with
the median tokens/s over the timed repetitions. Needs Debian's python3-torch (benchmarks only)."""
import argparse, json, os, resource, sys, time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_bench import Block  # noqa: E402  (the same block as the training benchmark)


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(dim=768, layers=12, heads=12, kv=12, ffn=2048, vocab=32000, prompt=512, reps=5,
                     threads=2).items():
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dt = torch.bfloat16 if a.precision == "bf16" else torch.float32
    emb = nn.Embedding(a.vocab, a.dim)
    blocks = nn.ModuleList(Block(a.dim, a.heads, a.kv, a.ffn) for _ in range(a.layers))
    out = nn.Linear(a.dim, a.vocab, bias=False)
    norm = torch.ones(a.dim)
    for p in list(emb.parameters()) + list(blocks.parameters()) + list(out.parameters()):
        nn.init.normal_(p, std=0.02)
    emb, blocks, out, norm = emb.to(dt), blocks.to(dt), out.to(dt), norm.to(dt)
    d = a.dim // a.heads
    inv = 10000.0 ** (-torch.arange(0, d, 2).float() / d)
    ang = torch.outer(torch.arange(a.prompt).float(), inv)
    cos, sin = ang.cos()[None, :, None, :].to(dt), ang.sin()[None, :, None, :].to(dt)
    rates = []
    with torch.no_grad():
        for rep in range(a.reps + 1):  # the first is a warm-up
            idx = torch.randint(0, a.vocab, (1, a.prompt))
            t0 = time.perf_counter()
            x = emb(idx)
            for b in blocks:
                x = b(x, cos, sin)
            logits = out(Block.norm(x[:, -1:], norm)).float()
            el = time.perf_counter() - t0
            assert torch.isfinite(logits).all()
            if rep > 0:
                rates.append(a.prompt / el)
            print(f"torch: rep {rep} {a.prompt / el:.1f} tok/s", file=sys.stderr)
    rates.sort()
    params = sum(p.numel() for p in list(emb.parameters()) + list(blocks.parameters()) + list(out.parameters()))
    print(json.dumps({"impl": "pytorch " + torch.__version__, "precision": a.precision, "params": params,
                      "threads": a.threads, "pp_tokens_per_s": rates[len(rates) // 2],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
