#!/usr/bin/python3
"""PyTorch reference for bench/vit_encode_bench.cpp (docs/PERFORMANCE.md, "Vision encoder (issue
20)"): the same Hugging Face ViTModel shape (ViT-B/16 by default: 224x224x3, 197 rows, no pooler
layer, so pooled = the final LayerNorm's class row) with random float32 weights, encode latency at
batch 1 and 8, and the training step (forward + backward, loss = sum(pooled * r)) in images/s.

Inference variants (each timed; the JSON "best" line takes the fastest median):
  eager        explicit blocks (q/k/v linears, softmax(QK^T/sqrt(d))V, GELU MLP), torch.no_grad()
  inference    the same under torch.inference_mode()
  nn_fastpath  nn.TransformerEncoderLayer(norm_first, gelu, batch_first) blocks, inference_mode
               (PyTorch's fused "BetterTransformer" encoder fast path in eval)
  jit          torch.jit.trace of `eager` + torch.jit.freeze + optimize_for_inference
--bf16 1 adds "encode_bf16" lines (not part of "best", which is float32) and their own
"encode_bf16_best" (oneDNN, AMX where the CPU has it), variants (--bf16-variants):
  autocast     `eager` under inference_mode + torch.autocast("cpu", torch.bfloat16)
  cast         `eager` converted with .to(torch.bfloat16) (weights and input bf16), inference_mode
  cast_fast    `nn_fastpath` converted likewise (autocast does not reach its fused kernels)
Measured here (torch 1.13, 1 thread, ViT-B): cast_fast ~114 ms and cast ~122 ms against
autocast's ~200 ms at batch 1; at batch 8 all three within 10% (autocast ~890 ms).
--train-precision bf16: the training step under the same autocast ("train_step_bf16").
Threads: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to --threads before torch is imported
(Debian's torch calls OpenBLAS for its matmuls, which otherwise starts one thread per core), then
torch.set_num_threads(--threads); OMP_WAIT_POLICY is PASSIVE unless --omp-wait says otherwise (at 2
threads the default spinning OpenMP team competes with OpenBLAS's own threads for the 2 vCPUs:
ViT-B batch 1 took 680-700 ms spinning against 260-270 ms passive here). Prints one JSON line
per measurement. Needs Debian's python3-torch (benchmarks only)."""
import argparse, copy, json, os, sys, time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--shape", default="base", choices=["base", "small", "tiny"])
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--variants", default="eager,inference,nn_fastpath,jit")
    ap.add_argument("--encode", type=int, default=1)
    ap.add_argument("--train", type=int, default=1)
    ap.add_argument("--train-shape", default="small", choices=["base", "small", "tiny"])
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--train-reps", type=int, default=5)
    ap.add_argument("--omp-wait", default="passive", choices=["passive", "active", "default"])
    ap.add_argument("--bf16", type=int, default=0)
    ap.add_argument("--bf16-variants", default="autocast,cast,cast_fast")
    ap.add_argument("--train-precision", default="fp32", choices=["fp32", "bf16"])
    return ap.parse_args()


A = parse()
os.environ["OMP_NUM_THREADS"] = str(A.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(A.threads)
if A.omp_wait != "default":
    os.environ["OMP_WAIT_POLICY"] = A.omp_wait.upper()

import torch  # noqa: E402

from torch_encoders import ViT as ViTShape  # noqa: E402  (bench/torch_encoders.py: the shared definitions)

SHAPES = {"base": (768, 12, 12, 3072), "small": (384, 12, 6, 1536), "tiny": (192, 12, 3, 768)}


def ViT(shape, image, patch, fastpath=False, eps=1e-12):
    dim, layers, heads, ffn = SHAPES[shape]
    return ViTShape(dim, layers, heads, ffn, image, patch, fastpath=fastpath, eps=eps)


def flops_per_image(shape, image, patch):
    dim, layers, _, ffn = SHAPES[shape]
    T = 1 + (image // patch) ** 2
    return 2 * T * 3 * patch * patch * dim + layers * (2 * T * dim * (4 * dim + 2 * ffn) + 4 * T * T * dim)


def emit(**kw):
    print(json.dumps(kw), flush=True)


def timed(fn, warmup, reps):
    """(median, min, every rep's seconds in order)"""
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    s = sorted(t)
    return s[len(s) // 2], s[0], t


def main():
    torch.set_num_threads(A.threads)
    torch.manual_seed(0)
    impl = "pytorch " + torch.__version__
    def record(what, variant, B, med, mn, times):
        return dict(impl=impl, what=what, variant=variant, shape=A.shape, threads=A.threads, batch=B, reps=A.reps,
                    median_ms=round(med * 1e3, 2), min_ms=round(mn * 1e3, 2), images_per_s=round(B / med, 3),
                    gflops=round(flops_per_image(A.shape, A.image, A.patch) * B / med * 1e-9, 1),
                    times_ms=[round(x * 1e3, 2) for x in times])

    if A.encode:
        eager = ViT(A.shape, A.image, A.patch).eval()
        fast = ViT(A.shape, A.image, A.patch, fastpath=True).eval()
        cast = {}  # bf16 copies, made once
        for B in [int(b) for b in A.batch.split(",")]:
            pix = torch.rand(B, 3, A.image, A.image) * 2 - 1
            best = None
            for var in A.variants.split(","):
                if var == "eager":
                    def fn():
                        with torch.no_grad():
                            return eager(pix)
                elif var == "inference":
                    def fn():
                        with torch.inference_mode():
                            return eager(pix)
                elif var == "nn_fastpath":
                    def fn():
                        with torch.inference_mode():
                            return fast(pix)
                elif var == "jit":
                    with torch.no_grad():
                        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(eager, pix)))

                    def fn(traced=traced):
                        with torch.no_grad():
                            return traced(pix)
                else:
                    sys.exit("unknown variant " + var)
                out = fn()
                assert torch.isfinite(out[1]).all()
                rec = record("encode", var, B, *timed(fn, A.warmup, A.reps))
                emit(**rec)
                if best is None or rec["median_ms"] < best["median_ms"]:
                    best = rec
            emit(**dict(best, what="encode_best"))
            if not A.bf16:
                continue
            best = None
            for var in A.bf16_variants.split(","):
                if var == "autocast":
                    def fn():
                        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                            return eager(pix)
                elif var in ("cast", "cast_fast"):
                    if var not in cast:
                        # Module.to converts in place: a copy, so eager / fast stay float32.
                        cast[var] = copy.deepcopy(eager if var == "cast" else fast).to(torch.bfloat16)

                    def fn(m=cast[var], pb=pix.to(torch.bfloat16)):
                        with torch.inference_mode():
                            return m(pb)
                else:
                    sys.exit("unknown bf16 variant " + var)
                assert torch.isfinite(fn()[1].float()).all()
                rec = record("encode_bf16", var, B, *timed(fn, A.warmup, A.reps))
                emit(**rec)
                if best is None or rec["median_ms"] < best["median_ms"]:
                    best = rec
            emit(**dict(best, what="encode_bf16_best"))
    if A.train:
        m = ViT(A.train_shape, A.image, A.patch).train()
        B = A.train_batch
        pix = torch.rand(B, 3, A.image, A.image) * 2 - 1
        r = torch.randn(B, SHAPES[A.train_shape][0])
        t = []
        for step in range(1 + A.train_reps):  # the first is a warm-up
            m.zero_grad(set_to_none=False)  # the optimiser's part, outside the timing (as llmforge's)
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=A.train_precision == "bf16"):
                _, pooled = m(pix)
                loss = (pooled.float() * r).sum()
            loss.backward()
            el = time.perf_counter() - t0
            assert torch.isfinite(loss)
            print(f"torch train: {A.threads} thread(s) step {step} {el * 1e3:.1f} ms", file=sys.stderr)
            if step > 0:
                t.append(el)
        t.sort()
        emit(impl=impl, what="train_step" + ("_bf16" if A.train_precision == "bf16" else ""), shape=A.train_shape, threads=A.threads, batch=B, reps=A.train_reps,
             median_ms=round(t[len(t) // 2] * 1e3, 2), min_ms=round(t[0] * 1e3, 2),
             images_per_s=round(B / t[len(t) // 2], 3),
             gflops=round(3 * flops_per_image(A.train_shape, A.image, A.patch) * B / t[len(t) // 2] * 1e-9, 1))


if __name__ == "__main__":
    main()
