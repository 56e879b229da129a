#!/usr/bin/python3
"""Bar chart (SVG) of bench/lora_ab.sh's table: plot_lora_ab.py lora-ab.csv OUT.svg

Left panel: tokens/s (median over rounds) of PyTorch and llmforge per precision and thread count,
with the median of the paired ratios llmforge/PyTorch above each pair; right panel: peak RSS (MiB).
No dependencies beyond the standard library."""
import csv, sys

rows = list(csv.DictReader(open(sys.argv[1])))
W, H, T, B = 900, 400, 48, 70
panels = [("tokens/s (higher is better)", "torch_tps", "llmforge_tps", 20, 560),
          ("peak RSS, MiB (lower is better)", "torch_rss_mb", "llmforge_rss_mb", 600, W - 20)]
colors = {"pytorch": "#999", "llmforge": "#1f77b4"}
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="20" y="20" font-size="14">LoRA r16 q/k/v/o, 110M shape, seq 256: llmforge vs PyTorch '
       f'(medians of ABBA rounds)</text>']
for title, tk, lk, x0, x1 in panels:
    top = max(max(float(r[tk]), float(r[lk])) for r in rows) or 1
    gw = (x1 - x0) / max(1, len(rows))
    svg.append(f'<text x="{x0}" y="{T - 6}">{title}</text>')
    for i, r in enumerate(rows):
        for j, (impl, key) in enumerate([("pytorch", tk), ("llmforge", lk)]):
            v = float(r[key])
            h = (H - T - B - 20) * v / top
            bw = (gw - 16) / 2
            x = x0 + i * gw + 6 + j * bw
            svg.append(f'<rect x="{x:.0f}" y="{H - B - h:.0f}" width="{bw - 2:.0f}" height="{h:.0f}" fill="{colors[impl]}"/>')
            svg.append(f'<text x="{x + bw / 2:.0f}" y="{H - B - h - 4:.0f}" text-anchor="middle" font-size="10">{v:.0f}</text>')
        if tk == "torch_tps":
            svg.append(f'<text x="{x0 + i * gw + gw / 2:.0f}" y="{T + 12}" text-anchor="middle" font-weight="bold">'
                       f'{float(r["median_paired_ratio"]):.2f}×</text>')
        svg.append(f'<text x="{x0 + i * gw + gw / 2:.0f}" y="{H - B + 16}" text-anchor="middle">{r["precision"]}</text>')
        svg.append(f'<text x="{x0 + i * gw + gw / 2:.0f}" y="{H - B + 30}" text-anchor="middle">{r["threads"]} thr</text>')
svg.append(f'<text x="20" y="{H - 12}" fill="#999">■ PyTorch</text>'
           f'<text x="110" y="{H - 12}" fill="#1f77b4">■ llmforge</text>'
           f'<text x="220" y="{H - 12}">bold: median of per-round llmforge/PyTorch ratios</text>')
svg.append('</svg>')
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
