#!/usr/bin/python3
"""PyTorch's side of the VQA training throughput comparison (docs/PERFORMANCE.md, "Vision encoder
(issue 20)"): the model `llmforge train-vqa` trains by default (src/apps/vqa/vqa.h VqaShape, gated
fusion) in plain torch (bench/torch_encoders.py) — a ViT (64x64x3 images, patch 8: 65 rows, width
64, 2 layers, 4 heads, MLP 128, LayerNorm eps 1e-6), a RoBERTa (vocabulary 40, width 64, 2 layers,
4 heads, MLP 128, padding keys masked) and the gated fusion with its answer classifier (gate 64,
classifier 128, 22 answers) — and its training step: cross-entropy, backward, gradient clipping at
1.0 and AdamW (weight decay 0.05), as train_vqa's loop does. Inputs are random tensors of the
same shapes (images in [-1, 1], questions of `--text-len` tokens, the longest of a batch of the
generated questions, with lengths drawn from `--min-len`..`--text-len`): the data pipeline (scene
rendering, resizing, tokenizing), which llmforge's rate includes, is left out here.

Prints one JSON line per thread count: images/s over --steps timed steps after --warmup ones.
Threads: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / torch.set_num_threads and OMP_WAIT_POLICY=PASSIVE,
as bench/torch_vit_bench.py (which explains why). Needs Debian's python3-torch."""
import argparse, json, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--text-len", type=int, default=14)
ap.add_argument("--min-len", type=int, default=7)
ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
A = ap.parse_args()
os.environ["OMP_NUM_THREADS"] = str(A.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(A.threads)
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_encoders import GatedFusion, Roberta, ViT  # noqa: E402

VOCAB, ANSWERS, WIDTH, LAYERS, HEADS, FFN, IMAGE, PATCH = 40, 22, 64, 2, 4, 128, 64, 8


def main():
    torch.set_num_threads(A.threads)
    torch.manual_seed(0)
    vision = ViT(WIDTH, LAYERS, HEADS, FFN, IMAGE, PATCH, eps=1e-6)
    text = Roberta(VOCAB, WIDTH, LAYERS, HEADS, FFN, positions=A.text_len + 8 + 2, pad=1, eps=1e-5)
    fusion = GatedFusion(WIDTH, 64, 128, ANSWERS)
    params = [p for m in (vision, text, fusion) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    B, T = A.batch, A.text_len
    n_params = sum(p.numel() for p in params)
    batches = []
    for _ in range(8):  # a few distinct batches, cycled
        lengths = torch.randint(A.min_len, T + 1, (B,))
        lengths[0] = T  # the batch is padded to its longest question
        mask = torch.arange(T)[None, :] < lengths[:, None]
        ids = torch.where(mask, torch.randint(4, VOCAB, (B, T)), torch.ones(B, T, dtype=torch.long))
        batches.append((torch.rand(B, 3, IMAGE, IMAGE) * 2 - 1, ids, mask, torch.randint(0, ANSWERS, (B,))))

    def step(i):
        pix, ids, mask, target = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=A.precision == "bf16"):
            _, v = vision(pix)
            t = text(ids, mask)[:, 0]
            logits = fusion(t, v)
        loss = F.cross_entropy(logits.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for i in range(A.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(A.steps):
        step(i)  # reads the loss back (.item()), as train_vqa's loop does
    el = time.perf_counter() - t0
    print(json.dumps(dict(impl="pytorch " + torch.__version__, what="vqa_train", precision=A.precision,
                          threads=A.threads, batch=B, text_len=T, params=n_params, steps=A.steps,
                          seconds=round(el, 3), images_per_s=round(A.steps * B / el, 1))), flush=True)


if __name__ == "__main__":
    sys.exit(main())
