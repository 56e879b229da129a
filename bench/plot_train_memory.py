#!/usr/bin/python3
"""Table and bar chart (SVG) of bench/train_memory.sh: plot_train_memory.py RESULTS.jsonl OUT.svg

Bars are peak RSS per configuration, grouped by batch size; the dashed line is the fixed state of
mixed-precision AdamW training of the 110M model (f32 master weights, gradients and two moments:
16 bytes per parameter), which no activation storage can go below."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fixed_mib = 16 * 109529856 / 2**20
batches = sorted({r["batch"] for r in rows})
configs = list(dict.fromkeys(r["config"] for r in rows))
print(f"fixed state (16 B x 109.5 M parameters): {fixed_mib:.0f} MiB")
print(f"{'batch':>5}  {'configuration':38} {'peak RSS MiB':>12} {'tok/s':>7}")
for r in rows:
    print(f"{r['batch']:5}  {r['config']:38} {r['peak_rss_mb']:12.0f} {r['tokens_per_s']:7.0f}")
colors = ["#9ecae1", "#6baed6", "#1f77b4", "#08306b", "#bbb", "#777"]
W, H, L, T, B = 820, 420, 70, 40, 90
top = max(r["peak_rss_mb"] for r in rows) * 1.1
gw = (W - L - 20) / max(1, len(batches))
bw = (gw - 30) / max(1, len(configs))
y = lambda v: H - B - (H - T - B) * v / top
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="22" font-size="14">110M training, peak RSS in MiB (lower is better), seq 256</text>']
for i, b in enumerate(batches):
    for j, c in enumerate(configs):
        r = next((r for r in rows if r["batch"] == b and r["config"] == c), None)
        if r is None or r["peak_rss_mb"] <= 0: continue
        x = L + i * gw + 15 + j * bw
        svg.append(f'<rect x="{x:.0f}" y="{y(r["peak_rss_mb"]):.0f}" width="{bw - 4:.0f}" '
                   f'height="{H - B - y(r["peak_rss_mb"]):.0f}" fill="{colors[j % len(colors)]}"/>')
        svg.append(f'<text x="{x + (bw - 4) / 2:.0f}" y="{y(r["peak_rss_mb"]) - 4:.0f}" text-anchor="middle">{r["peak_rss_mb"]:.0f}</text>')
    svg.append(f'<text x="{L + i * gw + gw / 2:.0f}" y="{H - B + 16}" text-anchor="middle">batch {b} ({b * 256} tokens)</text>')
svg.append(f'<line x1="{L}" x2="{W - 10}" y1="{y(fixed_mib):.0f}" y2="{y(fixed_mib):.0f}" stroke="#c00" stroke-dasharray="5,4"/>')
svg.append(f'<text x="{W - 12}" y="{y(fixed_mib) - 4:.0f}" text-anchor="end" fill="#c00">weights + gradients + AdamW state, {fixed_mib:.0f} MiB</text>')
for j, c in enumerate(configs):
    svg.append(f'<text x="{L + (j % 3) * 250}" y="{H - B + 40 + (j // 3) * 16}" fill="{colors[j % len(colors)]}">■ {c}</text>')
svg.append('</svg>')
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
