#!/usr/bin/env bash
# Pruning figures (llmforge prune):
#  1. perplexity vs sparsity on a real pretrained model (llama2.c TinyStories 260K): magnitude vs
#     Wanda at 0.2 / 0.4 / 0.5 unstructured and 2:4, on bench/prune_stories.txt (hand-written
#     TinyStories-style text; never used for calibration). Wanda's calibration: 8 samples of the
#     dense model itself at temperature 1 (fixed seeds), collected by `prune -f`;
#  2. structured pruning (heads, FFN channels; weight-only vs calibrated scores) and recovery
#     fine-tuning of the smaller model with `llmforge train`: 100 steps of 512 tokens (about one
#     epoch) over 200 other samples of the dense model (~50K tokens: self-distillation data, as
#     the TinyStories corpus is not here);
#     then recovery of the 50% unstructured Wanda model: the same 100 steps with `train
#     --keep-sparsity` (its zeros stay exactly 0) vs plain `train` (which fills them), sparsity
#     counted in the result (bench/sparsity_count.py);
#  3. decode / prompt speed of a dense vs a 50%-sparse 110M model (f32 and q8_0) with `llmforge
#     bench`: the dense kernels do not look at values, so zeros cost the same as any weight; and
#     bench/prune_sparse_gemv.cc: one thread's dense f32 product vs CSR and 2:4 sparse kernels on
#     the 110M model's FFN shapes and on a 4096x4096 matrix (memory-bound).
# Usage: bench/prune_bench.sh [--no-speed | --sparse-recovery-only]   (env: LLMFORGE_BIN, LLMFORGE_ASSETS, OUT, THREADS)
# Run it under `flock /tmp/llmforge-heavy.lock` on the shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LLMFORGE_BIN:-build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
OUT=${OUT:-/tmp/prune_bench}
T=${THREADS:-2}
SPEED=1 ONLY_SPARSE=0
[[ "${1:-}" == "--no-speed" ]] && SPEED=0
[[ "${1:-}" == "--sparse-recovery-only" ]] && SPEED=0 ONLY_SPARSE=1
# A private copy of the executable: a rebuild of build/bin/llmforge during the run cannot break it.
mkdir -p "$OUT"
cp "$BIN" "$OUT/.llmforge-bin"
BIN=$OUT/.llmforge-bin
M=$ASSETS/llama2c-stories260K/stories260K.bin
TOK=$ASSETS/llama2c-stories260K/tok512.bin
EVAL=bench/prune_stories.txt
mkdir -p "$OUT"

ppl() { "$BIN" perplexity -m "$1" --tokenizer "$TOK" -f "$EVAL" -t "$T" 2>/dev/null | sed -E 's/^perplexity: ([0-9.]+).*/\1/'; }

# Calibration text: the dense model's own samples.
: >"$OUT/calib.txt"
for s in 1 2 3 4 5 6 7 8; do
  "$BIN" generate -m "$M" --tokenizer "$TOK" -n 256 --temp 1 --top-k 0 --top-p 1 --min-p 0 -s "$s" -t "$T" \
    2>/dev/null >>"$OUT/calib.txt"
  echo >>"$OUT/calib.txt"
done

echo "## perplexity on $EVAL (stories260K; dense = $(ppl "$M"))"
echo
echo "| sparsity | magnitude | wanda |"
echo "|---|---|---|"
SPARSITIES="0.2 0.4 0.5 2:4"
[[ $ONLY_SPARSE == 1 ]] && SPARSITIES=0.5
for sp in $SPARSITIES; do
  if [[ "$sp" == *:* ]]; then flag="--pattern $sp"; else flag="--sparsity $sp"; fi
  row="| $sp |"
  for method in magnitude wanda; do
    cal=""
    [[ "$method" == wanda ]] && cal="-f $OUT/calib.txt"
    o="$OUT/${method}_${sp/:/-}.gguf"
    "$BIN" prune -m "$M" --tokenizer "$TOK" -o "$o" --method "$method" $flag $cal -t "$T" >"$OUT/prune.log" 2>&1
    [[ "$o" == */wanda_0.5.gguf ]] && cp "$OUT/prune.log" "$OUT/prune_w50.log"
    real=$(sed -nE 's/^prune: sparsity ([0-9.]+).*/\1/p' "$OUT/prune.log")
    row="$row $(ppl "$o") (real sparsity $real) |"
  done
  echo "$row"
done

echo
echo "## structured pruning (stories260K: 8 heads / 4 KV, FFN 172) and recovery fine-tuning"
echo
echo "| pruning | scores | params | ppl | ppl after 100 steps of train |"
echo "|---|---|---|---|---|"
: >"$OUT/ft.txt"
for s in $(seq 100 299); do
  "$BIN" generate -m "$M" --tokenizer "$TOK" -n 256 --temp 1 --top-k 0 --top-p 1 --min-p 0 -s "$s" -t "$T" \
    2>/dev/null >>"$OUT/ft.txt"
  printf '\n\n' >>"$OUT/ft.txt"
done
"$BIN" prepare --tokenizer "$TOK" --input "$OUT/ft.txt" -o "$OUT/data" --val-fraction 0 >/dev/null 2>&1
TRAIN=(--data "$OUT/data" --seq-len 64 --batch 8 --steps 100 --lr 1e-3 --warmup-steps 10 -q -t "$T" --save "$OUT/ft")
SPECS=("--heads 2" "--ffn-fraction 0.25" "--heads 2 --ffn-fraction 0.25")
[[ $ONLY_SPARSE == 1 ]] && SPECS=()
for spec in "${SPECS[@]}"; do
  for scores in weights calibrated; do
    cal=""
    [[ "$scores" == calibrated ]] && cal="-f $OUT/calib.txt"
    o="$OUT/struct.gguf"
    "$BIN" prune -m "$M" --tokenizer "$TOK" -o "$o" $spec $cal -t "$T" >"$OUT/prune.log" 2>&1
    params=$(sed -nE 's/^prune: ([0-9]+) parameters.*/\1/p' "$OUT/prune.log")
    before=$(ppl "$o")
    rm -rf "$OUT/ft"
    "$BIN" train --model "$o" "${TRAIN[@]}" >/dev/null 2>&1
    echo "| $spec | $scores | $params | $before | $(ppl "$OUT/ft") |"
  done
done
# The dense model fine-tuned the same way: what the recovery column owes to the text itself.
rm -rf "$OUT/ft"
"$BIN" train --model "$M" "${TRAIN[@]}" >/dev/null 2>&1
echo "| none (dense) | - | 260032 | $(ppl "$M") | $(ppl "$OUT/ft") |"

# Unstructured 50% Wanda (table 1's model), then the same 100 steps with and without --keep-sparsity.
echo
echo "## recovery of 50% unstructured Wanda (stories260K): 100 steps of train, sparsity of the result"
echo
echo "| model | ppl | layer-matrix sparsity |"
echo "|---|---|---|"
W=$OUT/wanda_0.5.gguf
sparsity() { python3 bench/sparsity_count.py "$1" | awk '{print $3 " (" $1 " zeros of " $2 ")"}'; }
echo "| wanda 50% (no training) | $(ppl "$W") | $(sed -nE 's/^prune: sparsity ([0-9.]+) \(([0-9]+) zeros of ([0-9]+) .*/\1 (\2 zeros of \3)/p' "$OUT/prune_w50.log") |"
for keep in --keep-sparsity ""; do
  rm -rf "$OUT/ft"
  "$BIN" train --model "$W" "${TRAIN[@]}" $keep >/dev/null 2>&1
  echo "| + train ${keep:-(plain)} | $(ppl "$OUT/ft") | $(sparsity "$OUT/ft") |"
done

[[ $SPEED == 1 ]] || exit 0
BIG=${BIG:-/work/models/110m-q8_0.gguf}
echo
echo "## speed: dense vs 50% unstructured sparsity ($BIG, $T threads, llmforge bench -p 64 -n 32)"
echo
"$BIN" convert -m "$BIG" -o "$OUT/dense-f32.gguf" --type f32 -t "$T" >/dev/null 2>&1
"$BIN" prune -m "$BIG" -o "$OUT/sparse-f32.gguf" --sparsity 0.5 -t "$T" >/dev/null 2>&1
"$BIN" prune -m "$BIG" -o "$OUT/sparse-q8_0.gguf" --sparsity 0.5 --type q8_0 -t "$T" >/dev/null 2>&1
for f in "$OUT/dense-f32.gguf" "$OUT/sparse-f32.gguf" "$BIG" "$OUT/sparse-q8_0.gguf"; do
  echo "### $(basename "$f")"
  "$BIN" bench -m "$f" -p 64 -n 32 -r 3 -t "$T" --mmap 0 2>/dev/null
done
echo
echo "## sparse kernels vs dense (bench/prune_sparse_gemv.cc, one thread)"
g++ -O3 -march=native bench/prune_sparse_gemv.cc -o "$OUT/sparse_gemv" 2>/dev/null
for shape in "2048 768 200" "768 2048 200" "4096 4096 20"; do
  echo "### $shape (rows cols reps)"
  "$OUT/sparse_gemv" $shape
done
