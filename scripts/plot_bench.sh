#!/usr/bin/env bash
# Renders the CSV of scripts/bench.sh as an SVG bar chart: one group per (shape, type, threads,
# test), one bar per engine and loader (mmap), each group scaled to its own fastest bar so pp and
# tg rows read alike; the label on each bar is t/s. Plain awk: no plotting dependency.
#   scripts/plot_bench.sh build/bench-models/bench.csv docs/bench.svg
set -euo pipefail
csv=${1:?usage: plot_bench.sh BENCH.csv OUT.svg}
out=${2:?usage: plot_bench.sh BENCH.csv OUT.svg}
awk -F, '
NR == 1 { next }
{
    g = $2 " " $3 " t" $4 " " $6
    if (!(g in seen)) { seen[g] = 1; groups[++ng] = g }
    s = $1 " mmap" $5
    if (!(s in sseen)) { sseen[s] = 1; series[++ns] = s }
    v[g, s] = $7; d[g, s] = $8
    if ($7 + 0 > mx[g]) mx[g] = $7 + 0
}
END {
    split("#2b6cb0 #90cdf4 #c05621 #fbd38d", col, " ")
    bw = 16; gap = 14; left = 150; top = 40
    gw = ns * bw + gap
    W = left + 360 + 20; H = top + ng * gw + 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"18\" font-size=\"14\">tokens/s, llmforge vs llama.cpp (bars scaled per group; longer is faster)</text>\n"
    for (i = 1; i <= ns; ++i) {
        printf "<rect x=\"%d\" y=\"24\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"33\">%s</text>\n", 10 + (i - 1) * 150, col[(i - 1) % 4 + 1], 24 + (i - 1) * 150, series[i]
    }
    for (j = 1; j <= ng; ++j) {
        g = groups[j]; y0 = top + (j - 1) * gw
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 6, y0 + ns * bw / 2 + 4, g
        for (i = 1; i <= ns; ++i) {
            s = series[i]
            if (!((g, s) in v)) continue
            w = mx[g] > 0 ? 340 * v[g, s] / mx[g] : 0
            printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", left, y0 + (i - 1) * bw, w, bw - 2, col[(i - 1) % 4 + 1]
            printf "<text x=\"%.1f\" y=\"%d\">%s</text>\n", left + w + 3, y0 + (i - 1) * bw + 11, v[g, s]
        }
    }
    print "</svg>"
}' "$csv" > "$out"
echo "plot_bench.sh: wrote $out" >&2
