#!/usr/bin/python3
"""Table and bar chart (SVG) of bench/train_ab.sh results: plot_train_ab.py RESULTS.jsonl OUT.svg"""
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak = next((r for r in rows if r.get("impl") == "sgemm-peak"), None)
runs = [r for r in rows if r.get("impl") != "sgemm-peak"]
params = {"15M": 15191712, "110M": 109529856}
groups = {}
for r in runs:
    key = (r["shape"], r["precision"], "pytorch" if r["impl"].startswith("pytorch") else "llmforge")
    groups.setdefault(key, []).append(r)
print(f"{'shape':6} {'precision':9} {'impl':9} {'tok/s':>8} {'peak RSS MiB':>13} {'MFU':>6}")
bars = []
for (shape, prec, impl), rs in sorted(groups.items()):
    tps = statistics.median(r["tokens_per_s"] for r in rs)
    rss = statistics.median(r["peak_rss_mb"] for r in rs)
    mfu = 6 * params.get(shape, 0) * tps / (peak[[k for k in peak if k.startswith("gflops_")][-1]] * 1e9) if peak else 0
    print(f"{shape:6} {prec:9} {impl:9} {tps:8.0f} {rss:13.0f} {100 * mfu:5.0f}%")
    bars.append((f"{shape} {prec}", impl, tps))
labels = sorted({b[0] for b in bars}, key=lambda s: (s.split()[0] != "15M", s))
W, H, L, T, B = 760, 380, 60, 40, 60
gw = (W - L - 20) / max(1, len(labels))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="22" font-size="14">Training throughput, tokens/s (higher is better)</text>']
for i, lab in enumerate(labels):
    vals = {impl: tps for (l, impl, tps) in bars if l == lab}
    top = max(vals.values()) or 1
    for j, impl in enumerate(["pytorch", "llmforge"]):
        if impl not in vals: continue
        h = (H - T - B) * vals[impl] / top
        x = L + i * gw + 10 + j * (gw - 20) / 2
        color = "#999" if impl == "pytorch" else "#1f77b4"
        svg.append(f'<rect x="{x:.0f}" y="{H - B - h:.0f}" width="{(gw - 24) / 2:.0f}" height="{h:.0f}" fill="{color}"/>')
        svg.append(f'<text x="{x + (gw - 24) / 4:.0f}" y="{H - B - h - 4:.0f}" text-anchor="middle">{vals[impl]:.0f}</text>')
    svg.append(f'<text x="{L + i * gw + gw / 2:.0f}" y="{H - B + 18}" text-anchor="middle">{lab}</text>')
svg.append(f'<text x="{L}" y="{H - 14}" fill="#999">■ PyTorch</text><text x="{L + 90}" y="{H - 14}" fill="#1f77b4">■ llmforge</text>')
svg.append('</svg>')
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
