#!/usr/bin/env bash
# Interleaved A/B benchmark: llmforge (mmap 1 and 0) vs llama-bench on the same GGUF files.
# The test machine is noisy (±15%), so each round runs every engine back to back and the summary
# reports per-configuration medians over rounds.
#
# Usage: bench/ab.sh            (env: MODELS="f32 q8_0 q4_0" THREADS="1 2" TESTS="pp tg"
#                                      ROUNDS=3 REPS=3 SHAPE=110m|1b LLAMA_BENCH=... MODEL_DIR=...)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
LF="${LF:-$here/build/bin/llmforge}"
LLAMA_BENCH="${LLAMA_BENCH:-/work/llamacpp/src/build/bin/llama-bench}"
MODEL_DIR="${MODEL_DIR:-/work/models/bench}"
MODELS="${MODELS:-f32 q8_0 q4_0}"
THREADS="${THREADS:-1 2}"
TESTS="${TESTS:-pp tg}"
ROUNDS="${ROUNDS:-3}"
REPS="${REPS:-3}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

value() { grep -E " (pp512|tg128) +\|" | tail -1 | awk -F'|' '{print $(NF-1)}' | awk '{print $1}'; }

for round in $(seq 1 "$ROUNDS"); do
  for m in $MODELS; do
    f="$MODEL_DIR/${SHAPE:-110m}-$m.gguf"
    for t in $THREADS; do
      for test in $TESTS; do
        if [ "$test" = pp ]; then a=(-p 512 -n 0); else a=(-p 0 -n 128); fi
        v1=$("$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
        v0=$("$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" --mmap 0 2>/dev/null | value)
        vl=$("$LLAMA_BENCH" -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value)
        echo "$m $t $test $v1 $v0 $vl" | tee -a "$out" >&2
      done
    done
  done
done

echo
echo "| model | threads | test | ours mmap1 | ours mmap0 | llama.cpp | best/llama |"
echo "|---|---|---|---|---|---|---|"
python3 - "$out" <<'PY'
import sys, statistics as st, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    m, t, test, a, b, c = line.split()
    rows.setdefault((m, t, test), []).append((float(a), float(b), float(c)))
for (m, t, test), v in rows.items():
    a, b, c = (st.median(x[i] for x in v) for i in range(3))
    print(f"| {m} | {t} | {test} | {a:.1f} | {b:.1f} | {c:.1f} | {max(a, b) / c:.2f} |")
PY
