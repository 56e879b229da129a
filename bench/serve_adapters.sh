#!/usr/bin/env bash
# Serving throughput with LoRA adapters (issue 14; docs/PERFORMANCE.md "Serving LoRA adapters"):
# `llmforge serve` with ADAPTERS random LoRAs (rank RANK on q, k, v, o), then
# bench/serve_adapters_bench.mjs: STREAMS concurrent greedy requests naming the base model vs the
# same requests spread over the adapters, alternating, median of RUNS.
#
#   bench/serve_adapters.sh [MODEL.gguf]     (default: a 110M-shape q8_0 Llama from init-model)
#   env: STREAMS=16 ADAPTERS=4 RANK=16 GEN=64 PROMPT=32 RUNS=3 THREADS=0 EXTRA="--no-batch-invariant"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${LLMFORGE_BIN:-$here/../build/bin/llmforge}
STREAMS=${STREAMS:-16} ADAPTERS=${ADAPTERS:-4} RANK=${RANK:-16} GEN=${GEN:-64} PROMPT=${PROMPT:-32}
RUNS=${RUNS:-3} THREADS=${THREADS:-0} EXTRA=${EXTRA:-}
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
model=${1:-}
if [ -z "$model" ]; then
  model=$work/llama110m-q8_0.gguf
  "$bin" init-model --arch llama --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000 \
    --type q8_0 --out "$model" >/dev/null 2>&1
fi
info=$("$bin" info -m "$model" 2>&1)
field() { echo "$info" | sed -n "s/^$1: *//p" | head -1; }
layers=$(field layers); dim=$(field embedding); vocab=$(field vocab | awk '{print $1}')
heads=$(field heads | awk '{print $1}')
kv=$(field heads | sed -n 's/.*kv \([0-9]*\).*/\1/p'); hd=$(field heads | sed -n 's/.*head dim \([0-9]*\).*/\1/p')
adapter_args=() names=()
for i in $(seq 0 $((ADAPTERS - 1))); do
  python3 "$here/make_random_lora.py" "$work/lora$i" --layers "$layers" --dim "$dim" --heads "$heads" \
    --kv-heads "$kv" --head-dim "$hd" --rank "$RANK" --seed $((i + 1))
  adapter_args+=(--adapter "lora$i=$work/lora$i"); names+=("lora$i")
done
"$bin" serve -m "$model" --port 0 --parallel "$STREAMS" --max-queue $((STREAMS * 2)) --ctx-size $((PROMPT + GEN + 64)) \
  --threads "$THREADS" --prefix-cache-mb 0 "${adapter_args[@]}" $EXTRA 2>"$work/serve.log" &
server=$!
for _ in $(seq 600); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "serve did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
base=$(basename "$model"); base=${base%.*}
echo "model $model ($layers layers, dim $dim), $ADAPTERS adapters r=$RANK on q,k,v,o, $STREAMS streams x $GEN tokens, $(nproc) CPUs: $(lscpu | sed -n 's/^Model name: *//p')" >&2
node "$here/serve_adapters_bench.mjs" --url "http://127.0.0.1:$port" --base "$base" \
  --adapters "$(IFS=,; echo "${names[*]}")" --streams "$STREAMS" --gen "$GEN" --prompt "$PROMPT" --runs "$RUNS" --vocab "$vocab"
