#!/usr/bin/env bash
# Interleaved A/B benchmark: llmforge (mmap 1 and 0) vs llama-bench on the same GGUF files.
# The test machine is noisy (±15%), so each round runs every engine back to back and the summary
# reports per-configuration medians over rounds.
#
# Usage: bench/ab.sh            (env: MODELS="f32 q8_0 q4_0" THREADS="1 2" TESTS="pp tg"
#                                      ROUNDS=3 REPS=3 SHAPE=110m|1b LLAMA_BENCH=... MODEL_DIR=...)
#        LF_BASE=old/llmforge bench/ab.sh   before/after of a change instead: the older binary and
#                                      $LF alternate (both --mmap 1); the table gives after/before.
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

# Calls measure FILE TYPE THREADS TEST ARGS... for every configuration, ROUNDS times; measure
# prints one raw line (TYPE THREADS TEST value...) that is collected for the medians.
each_case() {
  for round in $(seq 1 "$ROUNDS"); do
    for m in $MODELS; do
      f="$MODEL_DIR/${SHAPE:-110m}-$m.gguf"
      for t in $THREADS; do
        for test in $TESTS; do
          if [ "$test" = pp ]; then a=(-p 512 -n 0); else a=(-p 0 -n 128); fi
          "$1" "$f" "$m" "$t" "$test" "${a[@]}" | tee -a "$out" >&2
        done
      done
    done
  done
}

if [ -n "${LF_BASE:-}" ]; then
  # Which binary goes first alternates with the round (ABBA), so an order effect cancels out.
  before_after() {
    local f=$1 m=$2 t=$3 test=$4; shift 4
    if (( round % 2 )); then
      vb=$("$LF_BASE" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
      va=$("$LF" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
    else
      va=$("$LF" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
      vb=$("$LF_BASE" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
    fi
    echo "$m $t $test $vb $va"
  }
  each_case before_after
  echo
  echo "| model | threads | test | before t/s (median) | after t/s (median) | after/before (medians) | median of paired ratios |"
  echo "|---|---|---|---|---|---|---|"
  python3 - "$out" "${SHAPE:-110m}" <<'PY'
import sys, statistics as st, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    m, t, test, b, a = line.split()
    rows.setdefault((m, t, test), []).append((float(b), float(a)))
for (m, t, test), v in rows.items():
    b, a = (st.median(x[i] for x in v) for i in range(2))
    paired = st.median(x[1] / x[0] for x in v)  # each round's two runs were back to back
    name = "pp512" if test == "pp" else "tg128"
    print(f"| {sys.argv[2]} {m} | {t} | {name} | {b:.2f} | {a:.2f} | {a / b:.3f} | {paired:.3f} |")
PY
  exit 0
fi

vs_llama() {
  local f=$1 m=$2 t=$3 test=$4; shift 4
  v1=$("$LF" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 1 2>/dev/null | value)
  v0=$("$LF" bench -m "$f" "$@" -t "$t" -r "$REPS" --mmap 0 2>/dev/null | value)
  vl=$("$LLAMA_BENCH" -m "$f" "$@" -t "$t" -r "$REPS" 2>/dev/null | value)
  echo "$m $t $test $v1 $v0 $vl"
}
each_case vs_llama

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
