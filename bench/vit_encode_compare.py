#!/usr/bin/python3
"""Side-by-side runs for docs/PERFORMANCE.md "Vision encoder (issue 20)": llmforge against PyTorch,
interleaved so that the machine's load falls on both, then one table (Markdown, stdout) and one
chart (SVG).

  encode: ViT-B/16 encode latency, f32 and bf16 on both sides — build/bin/vit_encode_bench
          (--encode-type f32,bf16) and bench/torch_vit_bench.py (--bf16 1) — at each thread count
          and batch; each round runs both programs (order alternating round to round) with
          --reps timed encodes per setting; a cell is the median of every round's reps pooled. For
          PyTorch every listed variant is timed and the cell takes the variant with the best pooled
          median (f32: --torch-f32; bf16: --torch-bf16, see torch_vit_bench.py).
  vqa:    VQA training throughput (images/s): `llmforge train-vqa` (the default gated model, its
          rate between the step-50 and the last log line, data pipeline and optimiser included)
          against bench/torch_vqa_train_bench.py (the same model and step in torch, random inputs).

  vit_encode_compare.py [--rounds 3] [--reps 3] [--threads 1,2] [--batch 1,8] [--what encode,vqa]
                        [--jsonl OUT.jsonl] [--svg OUT.svg]
Run from the repository root after `ninja -C build vit_encode_bench llmforge_cli`."""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--batch", default="1,8")
ap.add_argument("--what", default="encode,vqa")
ap.add_argument("--bench", default="build/bin/vit_encode_bench")
ap.add_argument("--llmforge", default="build/bin/llmforge")
ap.add_argument("--torch-f32", default="nn_fastpath,inference")
ap.add_argument("--torch-bf16", default="cast_fast,autocast")
ap.add_argument("--vqa-steps", type=int, default=250)
ap.add_argument("--jsonl", default="")
ap.add_argument("--svg", default="")
A = ap.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
threads = [int(t) for t in A.threads.split(",")]
records = []


def run(cmd, rnd):
    print("#", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            r["round"] = rnd
            records.append(r)
    return out


def ours_vqa_rate(t, rnd):
    """train-vqa's rate over the steps after the first log line (step 50), from its cumulative rates."""
    d = tempfile.mkdtemp(prefix="vqa_bench.")
    try:
        cmd = [A.llmforge, "train-vqa", "--out", d + "/m", "--steps", str(A.vqa_steps), "--eval-every", "0",
               "--scenes", "500", "--eval-scenes", "10", "-t", str(t)]
        print("#", " ".join(cmd), file=sys.stderr, flush=True)
        log = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
    pts = [(int(m[1]), float(m[2])) for m in re.finditer(r"step (\d+)/\d+ .*?([\d.]+) images/s", log)]
    batch = 32
    (s0, r0), (s1, r1) = pts[0], pts[-1]
    rate = (s1 - s0) * batch / (s1 * batch / r1 - s0 * batch / r0)
    records.append(dict(impl="llmforge", what="vqa_train", precision="fp32", threads=t, batch=batch,
                        steps=s1 - s0, images_per_s=round(rate, 1), round=rnd))


for rnd in range(A.rounds):
    for t in threads:
        jobs = []
        if "encode" in A.what:
            jobs.append([A.bench, "--threads", str(t), "--batch", A.batch, "--warmup", str(A.warmup), "--reps",
                         str(A.reps), "--train", "0", "--encode-type", "f32,bf16"])
            jobs.append(["/usr/bin/python3", os.path.join(HERE, "torch_vit_bench.py"), "--threads", str(t), "--batch",
                         A.batch, "--warmup", str(A.warmup), "--reps", str(A.reps), "--train", "0", "--variants",
                         A.torch_f32, "--bf16", "1", "--bf16-variants", A.torch_bf16])
        if "vqa" in A.what:
            jobs.append(("vqa", t))
            jobs.append(["/usr/bin/python3", os.path.join(HERE, "torch_vqa_train_bench.py"), "--threads", str(t)])
        pairs = [jobs[i:i + 2] for i in range(0, len(jobs), 2)]
        for pair in pairs:
            for job in (pair if rnd % 2 == 0 else pair[::-1]):
                ours_vqa_rate(job[1], rnd) if job[0] == "vqa" else run(job, rnd)

if A.jsonl:
    with open(A.jsonl, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def pooled(impl_prefix, what, t, b, variant=None):
    ts = [x for r in records if r["impl"].startswith(impl_prefix) and r["what"] == what and r["threads"] == t
          and r["batch"] == b and (variant is None or r.get("variant") == variant) for x in r["times_ms"]]
    return (statistics.median(ts), len(ts)) if ts else (None, 0)


def best_torch(what, t, b, variants):
    cands = [(pooled("pytorch", what, t, b, v), v) for v in variants.split(",")]
    cands = [c for c in cands if c[0][0] is not None]
    return min(cands) if cands else ((None, 0), "")


cells = []
if "encode" in A.what:
    print("| threads | batch | llmforge f32 | PyTorch f32 (variant) | f32 ratio | llmforge bf16 | PyTorch bf16 (variant) "
          "| bf16 ratio | llmforge bf16 / PyTorch f32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in threads:
        for b in [int(x) for x in A.batch.split(",")]:
            (of, nof), (ob, nob) = pooled("llmforge", "encode", t, b), pooled("llmforge", "encode_bf16", t, b)
            ((tf, ntf), vf), ((tb, ntb), vb) = best_torch("encode", t, b, A.torch_f32), best_torch("encode_bf16", t, b, A.torch_bf16)
            if None in (of, ob, tf, tb):
                continue
            print(f"| {t} | {b} | {of:.1f} ms (n={nof}) | {tf:.1f} ms ({vf}, n={ntf}) | **{tf / of:.2f}x** | "
                  f"{ob:.1f} ms (n={nob}) | {tb:.1f} ms ({vb}, n={ntb}) | **{tb / ob:.2f}x** | {tf / ob:.2f}x |")
            cells.append((f"{t} thr, batch {b}", [("PyTorch f32", b * 1e3 / tf, "#bbb"), ("llmforge f32", b * 1e3 / of, "#6baed6"),
                                                 ("PyTorch bf16", b * 1e3 / tb, "#777"), ("llmforge bf16", b * 1e3 / ob, "#08519c")]))
    acc = [r for r in records if r["what"] == "accuracy"]
    if acc:
        print(f"\nbf16 vs f32 (llmforge, same input): last hidden state max rel. error "
              f"{max(r['bf16_vs_f32_last_rel'] for r in acc):.2e}, pooled {max(r['bf16_vs_f32_pooled_rel'] for r in acc):.2e}")
if "vqa" in A.what:
    print("\n| threads | llmforge train-vqa images/s | PyTorch images/s | ratio |\n|---|---|---|---|")
    for t in threads:
        o = [r["images_per_s"] for r in records if r["what"] == "vqa_train" and r["impl"] == "llmforge" and r["threads"] == t]
        p = [r["images_per_s"] for r in records if r["what"] == "vqa_train" and r["impl"] != "llmforge" and r["threads"] == t]
        if o and p:
            mo, mp = statistics.median(o), statistics.median(p)
            print(f"| {t} | {mo:.0f} ({', '.join(f'{x:.0f}' for x in o)}) | {mp:.0f} ({', '.join(f'{x:.0f}' for x in p)}) "
                  f"| **{mo / mp:.2f}x** |")

if A.svg and cells:
    W, H, L, T, B = 860, 400, 50, 46, 70
    gw = (W - L - 20) / len(cells)
    top = max(v for _, bars in cells for _, v, _ in bars)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14">ViT-B/16 encode, images/s (higher is better): medians of '
           f'{A.rounds} interleaved rounds x {A.reps} reps</text>']
    for i, (label, bars) in enumerate(cells):
        bw = (gw - 16) / len(bars)
        for j, (name, v, color) in enumerate(bars):
            h = (H - T - B) * v / top
            x = L + i * gw + 8 + j * bw
            svg.append(f'<rect x="{x:.0f}" y="{H - B - h:.0f}" width="{bw - 3:.0f}" height="{h:.0f}" fill="{color}"/>')
            svg.append(f'<text x="{x + bw / 2:.0f}" y="{H - B - h - 4:.0f}" text-anchor="middle" font-size="10">{v:.1f}</text>')
        svg.append(f'<text x="{L + i * gw + gw / 2:.0f}" y="{H - B + 18}" text-anchor="middle">{label}</text>')
    x = L
    for name, _, color in cells[0][1]:
        svg.append(f'<text x="{x}" y="{H - 18}" fill="{color}">■ {name}</text>')
        x += 150
    svg.append("</svg>")
    with open(A.svg, "w") as f:
        f.write("\n".join(svg) + "\n")
