#!/usr/bin/env bash
# Peak RSS of loading a model with and without mmap (issue 21: "--mmap 0 peaks at twice the
# model"): the "peak RSS" line (getrusage) of `llmforge bench -p 16 -n 4 -r 1 -t 1`, --mmap 1
# and --mmap 0, for each model file and each binary (e.g. before and after a change), ROUNDS interleaved rounds;
# prints the median peak RSS and its ratio to the file size as a markdown table.
#   bench/load_rss.sh MODEL.gguf [MODEL2.gguf ...]
#   BINS="old=/path/to/old/llmforge new=build/bin/llmforge" ROUNDS=3 bench/load_rss.sh ...
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINS=${BINS:-"llmforge=$ROOT/build/bin/llmforge"}
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: bench/load_rss.sh MODEL.gguf [...]" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
    for f in "$@"; do
        for b in $BINS; do
            for mm in 1 0; do
                mib=$("${b#*=}" bench -m "$f" -p 16 -n 4 -r 1 -t 1 --mmap "$mm" 2>/dev/null | sed -n 's/^peak RSS: \([0-9.]*\) MiB$/\1/p')
                echo "$f ${b%%=*} $mm $mib" >> "$out"
                echo "load_rss: round $r/$ROUNDS $(basename "$f") ${b%%=*} mmap $mm: $mib MiB" >&2
            done
        done
    done
done
python3 - "$out" <<'PY'
import os, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f, b, mm, mib = line.split()
    rows.setdefault((f, b, mm), []).append(float(mib) * 2**20)
print("| model file | size | binary | --mmap 1 peak RSS | --mmap 0 peak RSS | --mmap 0 / file |")
print("|---|---|---|---|---|---|")
for (f, b, mm) in sorted(rows):
    if mm != "1":
        continue
    size = os.path.getsize(f)
    m1, m0 = statistics.median(rows[(f, b, "1")]), statistics.median(rows[(f, b, "0")])
    print(f"| {os.path.basename(f)} | {size / 1e6:.0f} MB | {b} | {m1 / 1e6:.0f} MB | {m0 / 1e6:.0f} MB | {m0 / size:.2f}x |")
PY
