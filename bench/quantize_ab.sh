#!/usr/bin/env bash
# quantize wall time: `llmforge quantize` vs llama.cpp's `llama-quantize` on the same f16 model,
# same type and thread count, side by side (median of RUNS runs each, alternating, `sync` before
# each run so one tool's dirty pages are not written back on the other's clock).
# Usage: bench/quantize_ab.sh [MODEL_F16.gguf] [THREADS] [RUNS]
#   env: TYPES (default "q4_k_m q8_0"), LLMFORGE_BIN, LLAMA_QUANTIZE, WORK (output folder)
# Without MODEL the 1.1B TinyLlama-shaped f16 file is made first (init-model, ~2.2 GB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lf=${LLMFORGE_BIN:-$root/build/bin/llmforge}
lq=${LLAMA_QUANTIZE:-/work/llamacpp-build/bin/llama-quantize}
model=${1:-/tmp/quantize_ab/1b-f16.gguf}
threads=${2:-$(nproc)}
runs=${3:-3}
types=${TYPES:-"q4_k_m q8_0"}
work=${WORK:-$(dirname "$model")}
mkdir -p "$work"
if [ ! -f "$model" ]; then
  vocab=/work/models/110m-q8_0.gguf
  vf=(); [ -f "$vocab" ] && vf=(--vocab-from "$vocab")
  echo "making $model (TinyLlama 1.1B shape, f16)" >&2
  "$lf" init-model --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000 --type f16 \
    "${vf[@]}" --seed 1 -o "$model" >/dev/null
fi
cat "$model" > /dev/null  # both tools read it from the page cache

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf '%-8s %8s %12s %12s %8s\n' type threads llmforge_s llama_s speedup
for t in $types; do
  T=$(echo "$t" | tr a-z A-Z)
  lf_times=(); ll_times=()
  for ((r = 0; r < runs; ++r)); do
    sync; a=$(now)
    "$lf" quantize -q -m "$model" -o "$work/lf-$t.gguf" --type "$t" -t "$threads" >/dev/null 2>&1
    b=$(now); lf_times+=("$(echo "$b - $a" | bc -l)")
    sync; a=$(now)
    "$lq" "$model" "$work/ll-$t.gguf" "$T" "$threads" >/dev/null 2>&1
    b=$(now); ll_times+=("$(echo "$b - $a" | bc -l)")
  done
  m_lf=$(printf '%s\n' "${lf_times[@]}" | median)
  m_ll=$(printf '%s\n' "${ll_times[@]}" | median)
  printf '%-8s %8s %12.2f %12.2f %7.2fx\n' "$t" "$threads" "$m_lf" "$m_ll" "$(echo "$m_ll / $m_lf" | bc -l)"
  echo "  runs: llmforge ${lf_times[*]} | llama-quantize ${ll_times[*]}" >&2
done
rm -f "$work"/lf-*.gguf "$work"/ll-*.gguf
