#!/usr/bin/env python3
"""Draws docs/lsh-attention.svg from bench_lsh_attention's markdown table (stdin or a file):
attention time vs sequence length, dense and LSH, forward and forward+backward, log-log.

    build/bin/bench_lsh_attention 1 65536 | tee docs/lsh-attention.md; bench/plot_lsh_attention.py docs/lsh-attention.md docs/lsh-attention.svg
"""
import math
import sys

src = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
out = sys.argv[2] if len(sys.argv) > 2 else "docs/lsh-attention.svg"
rows = []
for line in src:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 8 or not cells[0].isdigit():
        continue
    num = lambda s: float(s) if s not in ("nan", "") else None
    rows.append((int(cells[0]), num(cells[2]), num(cells[3]), num(cells[5]), num(cells[6])))
series = [("dense forward", 1, "#1f77b4", ""), ("LSH forward", 2, "#d62728", ""),
          ("dense forward+backward", 3, "#1f77b4", "6,4"), ("LSH forward+backward", 4, "#d62728", "6,4")]
W, H, L, R, T, B = 640, 400, 70, 190, 30, 50
xs = [r[0] for r in rows]
ys = [v for r in rows for v in r[1:] if v]
x0, x1 = math.log2(min(xs)), math.log2(max(xs))
y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
X = lambda n: L + (math.log2(n) - x0) / max(x1 - x0, 1e-9) * (W - L - R)
Y = lambda v: T + (y1 - math.log10(v)) / (y1 - y0) * (H - T - B)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14">Attention time, one 110M-shaped layer (12 heads of 64), 1 thread</text>']
for e in range(y0, y1 + 1):
    svg.append(f'<line x1="{L}" y1="{Y(10**e):.0f}" x2="{W - R}" y2="{Y(10**e):.0f}" stroke="#eee"/>')
    svg.append(f'<text x="{L - 6}" y="{Y(10**e) + 4:.0f}" text-anchor="end">{10**e:g} s</text>')
for n in xs:
    svg.append(f'<text x="{X(n):.0f}" y="{H - B + 18}" text-anchor="middle">{n // 1024}k</text>')
svg.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">sequence length (tokens)</text>')
for i, (name, col, color, dash) in enumerate(series):
    pts = [(X(r[0]), Y(r[col])) for r in rows if r[col]]
    if pts:
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        svg.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    ly = T + 20 + i * 20
    svg.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 40}" y2="{ly}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
    svg.append(f'<text x="{W - R + 46}" y="{ly + 4}">{name}</text>')
svg.append(f'<text x="{W - R + 10}" y="{T + 110}" font-size="11">missing point: dense</text>')
svg.append(f'<text x="{W - R + 10}" y="{T + 124}" font-size="11">fwd+bwd keeps n²/2 floats</text>')
svg.append(f'<text x="{W - R + 10}" y="{T + 138}" font-size="11">per head (96 GiB at 64k)</text>')
svg.append("</svg>")
open(out, "w").write("\n".join(svg) + "\n")
