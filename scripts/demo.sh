#!/usr/bin/env bash
# make demo: builds a small random-weight Llama with `llmforge init-model`, generates from it and
# benchmarks it. The project's own trained default model arrives with the training issue; until
# then the weights are RANDOM and the text is gibberish by design. If the shared TinyStories
# checkpoint is present, a real story is generated from it too.
# With a terminal attached, it then asks for prompts until an empty line; without one it exits.
set -euo pipefail
bin=${1:-build/bin/llmforge}
out=${LLMFORGE_DEMO_DIR:-build/demo}
mkdir -p "$out"
model="$out/demo-random-llama.gguf"
if [[ ! -f $model ]]; then
    echo "demo: writing a random-weight Llama (dim 512, 8 layers, vocab 32000, q8_0) to $model" >&2
    "$bin" init-model --arch llama --dim 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1408 \
        --vocab 32000 --type q8_0 --seed 1 --out "$model"
fi
echo "== generate (RANDOM weights: the text is gibberish by design) =="
"$bin" generate -m "$model" -p "Once upon a time" -n 32 --temp 0.8 --seed 7
echo "== bench (pp128, tg32) =="
"$bin" bench -m "$model" -p 128 -n 32 -r 2
assets=${LLMFORGE_ASSETS:-../shared/assets}
stories="$assets/llama2c-stories260K"
if [[ -f $stories/stories260K.bin ]]; then
    echo "== generate with the real TinyStories 260K checkpoint (llama2.c format), prompt \"Once upon a time\" =="
    "$bin" generate -m "$stories/stories260K.bin" --tokenizer "$stories/tok512.bin" -p "Once upon a time" -n 128 --temp 0
fi
if [[ -t 0 && -t 1 && -f $stories/stories260K.bin ]]; then
    while true; do
        read -r -p "prompt (empty to quit)> " p || break
        [[ -z $p ]] && break
        "$bin" generate -m "$stories/stories260K.bin" --tokenizer "$stories/tok512.bin" -p "$p" -n 200 --temp 0.8
    done
fi
