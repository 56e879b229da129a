#!/usr/bin/env bash
# Speculative decoding (generate --draft-model) against plain decoding on the same prompt: for each
# --draft-n, the acceptance rate, tokens per model forward, the cost of a verification forward
# against a plain one-token step, decode tok/s of both and the speed-up; every speculative text is
# checked to be byte-identical to the plain one (greedy).
#
# Usage: bench/speculative_bench.sh [MAIN DRAFT]   (DRAFT "mtp": the model's own MTP module,
#   `--speculative mtp`, which drafts one token per round: KS=1)
#   env: TOKENIZER=tok.bin (llama2.c models), PROMPT="Once upon a time", N=128 (tokens),
#        KS="1 2 4 6 8" (--draft-n values), THREADS=2, ROUNDS=3 (median over rounds), LF=llmforge
# Without arguments: the real TinyStories 260K model drafting for itself (every draft accepted:
# the upper bound of acceptance; the draft costs as much as the model, so no speed-up is
# possible), then /work/models/110m-q8_0.gguf drafting for itself (a verification forward's cost
# at realistic size). Run it under `flock /tmp/llmforge-heavy.lock` on a shared machine.
#
# Reading the table: with acceptance a per drafted token, k drafts per round, a draft costing d
# and a verification forward v (both relative to one plain step), a round emits
# (1 - a^(k+1)) / (1 - a) tokens for k·d + v: speculative decoding wins when that ratio > 1.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
LF="${LF:-$here/build/bin/llmforge}"
PROMPT="${PROMPT:-Once upon a time}"
N="${N:-128}"
KS="${KS:-1 2 4 6 8}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# bench_pair MAIN DRAFT [extra generate args...]
bench_pair() {
  local main="$1" draft="$2"
  shift 2
  local args=(-m "$main" -p "$PROMPT" -n "$N" --temp 0 -t "$THREADS" "$@")
  echo
  echo "main: $main"
  echo "draft: $draft"
  echo "prompt: \"$PROMPT\", $N tokens, $THREADS threads, median of $ROUNDS rounds"
  echo
  echo "| draft-n | accepted | tokens / forward | verify ms / forward | draft ms / token | plain ms / token | plain t/s | speculative t/s | speed-up | same text |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for k in $KS; do
    : >"$tmp/plain.tps"; : >"$tmp/spec.tps"; : >"$tmp/verify"; : >"$tmp/draftms"; : >"$tmp/plainms"
    local same=yes acc="" tpf=""
    for r in $(seq 1 "$ROUNDS"); do
      "$LF" generate "${args[@]}" >"$tmp/plain.txt" 2>"$tmp/plain.err"
      if [ "$draft" = mtp ]; then
        "$LF" generate "${args[@]}" --speculative mtp --draft-n "$k" >"$tmp/spec.txt" 2>"$tmp/spec.err"
      else
        "$LF" generate "${args[@]}" --draft-model "$draft" --draft-n "$k" >"$tmp/spec.txt" 2>"$tmp/spec.err"
      fi
      cmp -s "$tmp/plain.txt" "$tmp/spec.txt" || same=NO
      # "... 12 generated (34.5 t/s), finish: ..."
      local pg ptps sg stps
      pg=$(grep -oE '[0-9]+ generated \([0-9.]+ t/s\)' "$tmp/plain.err" | tail -1)
      ptps=$(echo "$pg" | sed -E 's/.*\(([0-9.]+) t\/s\)/\1/')
      sg=$(grep -oE '[0-9]+ generated \([0-9.]+ t/s\)' "$tmp/spec.err" | tail -1)
      stps=$(echo "$sg" | sed -E 's/.*\(([0-9.]+) t\/s\)/\1/')
      echo "$ptps" >>"$tmp/plain.tps"
      echo "$stps" >>"$tmp/spec.tps"
      echo "$ptps" | awk '{ if ($1 > 0) print 1000 / $1; else print 0 }' >>"$tmp/plainms"
      # "... 50/50 drafted tokens accepted (100.0%), 4.85 tokens per model forward (13 forwards), draft 0.94 s, verify 0.47 s"
      local line fw ds vs prop
      line=$(grep 'drafted tokens accepted' "$tmp/spec.err" | tail -1)
      acc=$(echo "$line" | grep -oE '[0-9]+/[0-9]+ drafted tokens accepted \([0-9.]+%\)' | sed -E 's/ drafted tokens accepted//')
      tpf=$(echo "$line" | grep -oE '[0-9.]+ tokens per model forward' | awk '{print $1}')
      fw=$(echo "$line" | grep -oE '\(([0-9]+) forwards\)' | grep -oE '[0-9]+')
      prop=$(echo "$acc" | sed -E 's/^[0-9]+\/([0-9]+).*/\1/')
      ds=$(echo "$line" | grep -oE 'draft [0-9.]+ s' | awk '{print $2}')
      vs=$(echo "$line" | grep -oE 'verify [0-9.]+ s' | awk '{print $2}')
      awk -v v="$vs" -v f="$fw" 'BEGIN { print (f > 0) ? 1000 * v / f : 0 }' >>"$tmp/verify"
      # Draft time per drafted token (the draft also catches up on the accepted tokens).
      awk -v d="$ds" -v p="$prop" 'BEGIN { print (p > 0) ? 1000 * d / p : 0 }' >>"$tmp/draftms"
    done
    local p s
    p=$(median <"$tmp/plain.tps")
    s=$(median <"$tmp/spec.tps")
    printf '| %s | %s | %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.2fx | %s |\n' "$k" "$acc" "$tpf" \
      "$(median <"$tmp/verify")" "$(median <"$tmp/draftms")" "$(median <"$tmp/plainms")" "$p" "$s" \
      "$(awk -v a="$s" -v b="$p" 'BEGIN { print (b > 0) ? a / b : 0 }')" "$same"
  done
}

if [ $# -ge 2 ]; then
  extra=()
  [ -n "${TOKENIZER:-}" ] && extra=(--tokenizer "$TOKENIZER")
  bench_pair "$1" "$2" "${extra[@]}"
else
  assets="${LLMFORGE_ASSETS:-$here/../shared/assets}"
  s260="$assets/llama2c-stories260K/stories260K.bin"
  tok="$assets/llama2c-stories260K/tok512.bin"
  if [ -f "$s260" ]; then
    bench_pair "$s260" "$s260" --tokenizer "$tok"
  else
    echo "LLMFORGE-ASSET-MISSING: $s260 (set LLMFORGE_ASSETS)" >&2
  fi
  m110="${M110:-/work/models/110m-q8_0.gguf}"
  if [ -f "$m110" ]; then
    bench_pair "$m110" "$m110"
  else
    echo "skipped: $m110 not found (set M110)" >&2
  fi
fi
