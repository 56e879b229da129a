#!/usr/bin/python3
"""bench/isa_ab.sh's rows as one SVG bar chart: for every (model, threads, test) the median t/s of
each engine over the rounds divided by llama.cpp's median (bars: llmforge's AVX-512 table and its
AVX2 table; each round's ratio as a dot). Rows without llama.cpp are left out.

  bench/plot_isa_ab.py OUT.svg isa-ab.csv [more.csv ...]
Standard library only."""
import collections, csv, statistics as st, sys

if len(sys.argv) < 3:
    sys.exit("usage: plot_isa_ab.py OUT.svg ISA_AB.csv [...]")
runs = collections.OrderedDict()
for path in sys.argv[2:]:
    for r in csv.DictReader(open(path)):
        key = (r["file"], r["threads"], r["test"])
        runs.setdefault(key, collections.defaultdict(dict))[r["engine"]][r["round"]] = float(r["tps"])

engines = [("lf", "llmforge, AVX-512 table", "#4a7ab5"), ("lf-avx2", "llmforge, AVX2 table", "#9bbbe0")]
rows = []  # (label, [(engine, median ratio, per-round ratios)])
for (f, t, test), e in runs.items():
    llama = e.get("llama")
    if not llama or not any(llama.values()):
        continue
    bars = []
    for name, _, _ in engines:
        if name not in e:
            continue
        per = [v / llama[k] for k, v in e[name].items() if llama.get(k)]
        med = st.median(e[name].values()) / st.median(llama.values())
        bars.append((name, med, per))
    rows.append((f"{f} {'pp512' if test == 'pp' else 'tg128'}, {t} thr", bars))

W, left, top, bh = 820, 230, 46, 9
lo, hi = 0.0, max([2.0] + [m for _, b in rows for _, m, _ in b]) * 1.05
step = 2 * bh + 8
H = top + step * len(rows) + 26
x = lambda v: left + (min(max(v, lo), hi) - lo) / (hi - lo) * (W - left - 60)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<text x="8" y="16">t/s relative to llama.cpp on the same file (median of interleaved rounds; dots: each round)</text>']
lx = left
for _, label, col in engines:
    out.append(f'<rect x="{lx}" y="24" width="12" height="10" fill="{col}"/>')
    out.append(f'<text x="{lx + 16}" y="33">{label}</text>')
    lx += 200
v = 0.0
while v <= hi:
    col = "#c00" if abs(v - 1.0) < 1e-9 else "#999"
    out.append(f'<line x1="{x(v):.1f}" y1="{top - 4}" x2="{x(v):.1f}" y2="{H - 18}" stroke="{col}" stroke-dasharray="3,3"/>')
    out.append(f'<text x="{x(v) - 8:.1f}" y="{H - 4}" fill="#555">{v:.1f}</text>')
    v += 0.5
for i, (label, bars) in enumerate(rows):
    y = top + step * i
    out.append(f'<text x="{left - 6}" y="{y + bh + 4}" text-anchor="end">{label}</text>')
    for j, (name, med, per) in enumerate(bars):
        col = dict((n, c) for n, _, c in engines)[name]
        yy = y + j * bh
        out.append(f'<rect x="{x(0):.1f}" y="{yy}" width="{max(x(med) - x(0), 1):.1f}" height="{bh - 1}" fill="{col}"/>')
        for p in per:
            out.append(f'<circle cx="{x(p):.1f}" cy="{yy + bh / 2:.1f}" r="2" fill="#222" opacity="0.6"/>')
        out.append(f'<text x="{W - 8}" y="{yy + bh - 1}" text-anchor="end" font-size="10">{med:.2f}</text>')
out.append("</svg>")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
