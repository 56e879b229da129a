#!/usr/bin/python3
"""Before/after of a change as one SVG bar chart: for every configuration the median of the
per-round after/before ratios (each round ran both binaries back to back), with each round's
ratio as a dot. Inputs: bench/ab.sh's raw stderr lines in LF_BASE mode ("TYPE THREADS pp|tg BEFORE
AFTER") and bench/train_ab.sh's jsonl with llmforge-before rows.

  bench/plot_before_after.py OUT.svg --ab 110M=ab110.raw --ab 1.1B=ab1b.raw \
      --train "2 threads=train/train-ab.jsonl" --train "1 thread=train1/train-ab.jsonl"
Standard library only."""
import argparse, collections, json, statistics as st

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--ab", action="append", default=[], help="LABEL=FILE (bench/ab.sh raw lines)")
ap.add_argument("--train", action="append", default=[], help="LABEL=FILE (bench/train_ab.sh jsonl)")
args = ap.parse_args()

rows = []  # (label, median ratio, ratios)
for spec in args.ab:
    label, path = spec.split("=", 1)
    d = collections.OrderedDict()
    for line in open(path):
        f = line.split()
        if len(f) != 5:
            continue
        m, t, test, b, a = f
        d.setdefault((m, t, test), []).append(float(a) / float(b))
    for (m, t, test), r in d.items():
        rows.append((f"{label} {m} {'pp512' if test == 'pp' else 'tg128'}, {t} thr", st.median(r), r))
for spec in args.train:
    label, path = spec.split("=", 1)
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in open(path):
        j = json.loads(line)
        if j.get("impl") in ("llmforge", "llmforge-before"):
            runs[(j["shape"], j["precision"])][j["impl"]].append(j["tokens_per_s"])
    for (shape, prec), v in runs.items():
        r = [a / b for a, b in zip(v["llmforge"], v["llmforge-before"])]
        rows.append((f"train {shape} {prec}, {label}", st.median(r), r))

W, left, top, bh, lo, hi = 780, 250, 30, 16, 0.8, 1.2
H = top + 22 * len(rows) + 24
x = lambda v: left + (min(max(v, lo), hi) - lo) / (hi - lo) * (W - left - 60)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="8" y="18">after / before: median of paired rounds (bars), each round (dots); red line: 0.97</text>']
for v in (0.8, 0.9, 0.97, 1.0, 1.1, 1.2):
    col = "#c00" if v == 0.97 else "#999"
    out.append(f'<line x1="{x(v):.1f}" y1="{top - 4}" x2="{x(v):.1f}" y2="{H - 18}" stroke="{col}" stroke-dasharray="3,3"/>')
    out.append(f'<text x="{x(v) - 12:.1f}" y="{H - 4}" fill="#555">{v:.2f}</text>')
for i, (label, med, r) in enumerate(rows):
    y = top + 22 * i
    out.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{label}</text>')
    x0, x1 = sorted((x(1.0), x(med)))
    out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bh}" fill="#4a7ab5"/>')
    for v in r:
        out.append(f'<circle cx="{x(v):.1f}" cy="{y + bh / 2}" r="2.5" fill="#222" opacity="0.6"/>')
    out.append(f'<text x="{W - 8}" y="{y + 12}" text-anchor="end">{med:.3f}</text>')
out.append("</svg>")
open(args.out, "w").write("\n".join(out) + "\n")
