#!/usr/bin/env bash
# Peak RSS of loading a model with and without mmap (issue 21: "--mmap 0 peaks at twice the
# model"): `llmforge bench -p 16 -n 4 -r 1 -t 1` under /usr/bin/time, --mmap 1 and --mmap 0, for
# each model file and each binary (e.g. before and after a change), ROUNDS interleaved rounds;
# prints the median peak RSS and its ratio to the file size as a markdown table.
#   bench/load_rss.sh MODEL.gguf [MODEL2.gguf ...]
#   BINS="old=/path/to/old/llmforge new=build/bin/llmforge" ROUNDS=3 bench/load_rss.sh ...
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINS=${BINS:-"llmforge=$ROOT/build/bin/llmforge"}
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: bench/load_rss.sh MODEL.gguf [...]" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out" "$out.t"' EXIT
for r in $(seq "$ROUNDS"); do
    for f in "$@"; do
        for b in $BINS; do
            for mm in 1 0; do
                /usr/bin/time -f "%M" -o "$out.t" "${b#*=}" bench -m "$f" -p 16 -n 4 -r 1 -t 1 --mmap "$mm" > /dev/null 2>&1
                kb=$(tail -1 "$out.t")
                echo "$f ${b%%=*} $mm $kb" >> "$out"
                echo "load_rss: round $r/$ROUNDS $(basename "$f") ${b%%=*} mmap $mm: $kb KB" >&2
            done
        done
    done
done
python3 - "$out" <<'PY'
import os, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f, b, mm, kb = line.split()
    rows.setdefault((f, b, mm), []).append(int(kb) * 1024)
print("| model file | size | binary | --mmap 1 peak RSS | --mmap 0 peak RSS | --mmap 0 / file |")
print("|---|---|---|---|---|---|")
for (f, b, mm) in sorted(rows):
    if mm != "1":
        continue
    size = os.path.getsize(f)
    m1, m0 = statistics.median(rows[(f, b, "1")]), statistics.median(rows[(f, b, "0")])
    print(f"| {os.path.basename(f)} | {size / 1e6:.0f} MB | {b} | {m1 / 1e6:.0f} MB | {m0 / 1e6:.0f} MB | {m0 / size:.2f}x |")
PY
