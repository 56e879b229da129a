#!/usr/bin/env bash
# The compression tables in docs/: `llmforge compress-report` on three models, each written as
# docs/compress-<name>.md (the table) and docs/compress-<name>.svg (quality vs bits per weight).
#
#   stories  the shared TinyStories model (llama2.c stories260K, f32, dim 64) on
#            bench/compress_stories.txt (TinyStories-style stories written for this; windows of 256);
#            importance matrix from the asset's greedy story
#   default  models/default (4.2M, f32) on 100 shop dialogues of another seed than its training
#            corpus (gen-dialogues --seed 4242), rendered with its chat template (windows of 512);
#            importance matrix from 100 more (seed 777)
#   110m     a 134M-parameter Llama initialised here (/work/models/110m-q8_0.gguf, made by
#            bench/grammar_ab.sh's init-model line when missing; random weights, llama.cpp's 32k
#            vocabulary); the reference is its dequantised f32. Text: docs/ARCHITECTURE.md (2 windows
#            of 512); importance matrix from docs/FINETUNING.md
#
# Usage: flock /tmp/llmforge-heavy.lock bench/compress_report.sh [stories] [default] [110m]
#   env: TYPES (default compress-report's list), THREADS (2), OUT (docs), EXTRA_<name> (more
#   --extra FILE:label arguments for that model, e.g. EXTRA_stories="--extra pruned.gguf:wanda 50%")
# Speeds are rough on a shared machine: the lead's quiet-machine figures are in docs/PERFORMANCE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LLMFORGE_BIN:-$root/build/bin/llmforge}
assets=${LLMFORGE_ASSETS:-$root/../shared/assets}
out=${OUT:-$root/docs}
threads=${THREADS:-2}
types=${TYPES:-f16,bf16,q8_0,q6_k,q5_k_m,q5_0,q5_1,q4_k_m,q4_0,q4_1,q3_k_m,q2_k}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
which=("$@")
[[ ${#which[@]} -gt 0 ]] || which=(stories default 110m)

report() {  # name title args...
    local name=$1 title=$2
    shift 2
    "$bin" compress-report --types "$types" -t "$threads" --title "$title" \
        --out-md "$out/compress-$name.md" --out-svg "$out/compress-$name.svg" "$@"
}

render_dialogues() {  # seed n out
    "$bin" gen-dialogues --n "$2" --seed "$1" -o "$work/d-$1.jsonl" 2>/dev/null
    : >"$3"
    while IFS= read -r line; do
        printf '%s\n' "$line" >"$work/m.json"
        "$bin" chat-template -m "$root/models/default" --messages "$work/m.json" --no-generation-prompt >>"$3"
        printf '\n' >>"$3"
    done <"$work/d-$1.jsonl"
}

for w in "${which[@]}"; do
    case $w in
    stories)
        m=$assets/llama2c-stories260K/stories260K.bin
        tok=$assets/llama2c-stories260K/tok512.bin
        "$bin" imatrix -m "$m" --tokenizer "$tok" -f "$assets/llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt" \
            -c 128 -o "$work/stories.imatrix.gguf" -t "$threads"
        # shellcheck disable=SC2086
        report stories "TinyStories stories260K (0.26M, dim 64): quality vs bits per weight" \
            -m "$m" --tokenizer "$tok" -f "$root/bench/compress_stories.txt" -c 256 -p 256 -n 64 -r 5 \
            --imatrix "$work/stories.imatrix.gguf" ${EXTRA_stories:-}
        ;;
    default)
        render_dialogues 4242 100 "$work/eval.txt"
        render_dialogues 777 100 "$work/calib.txt"
        # The calibration text has the chat markers as text; imatrix statistics do not depend much on them.
        "$bin" imatrix -m "$root/models/default" -f "$work/calib.txt" -c 512 -o "$work/default.imatrix.gguf" -t "$threads"
        # shellcheck disable=SC2086
        report default "Default model (4.2M shop assistant): quality vs bits per weight" \
            -m "$root/models/default" -f "$work/eval.txt" --special -c 512 -p 256 -n 64 -r 5 \
            --imatrix "$work/default.imatrix.gguf" ${EXTRA_default:-}
        ;;
    110m)
        m=${MODEL_110M:-/work/models/110m-q8_0.gguf}
        if [[ ! -f $m ]]; then
            mkdir -p "$(dirname "$m")"
            "$bin" init-model --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000 --type q8_0 \
                --seed 1 --vocab-from "$assets/llama.cpp-vocab/ggml-vocab-llama-spm.gguf" -o "$m"
        fi
        "$bin" imatrix -m "$m" -f "$root/docs/FINETUNING.md" -c 512 --chunks 2 -o "$work/110m.imatrix.gguf" -t "$threads"
        # shellcheck disable=SC2086
        report 110m "134M Llama (random init, 32k vocabulary): quality vs bits per weight" \
            -m "$m" -f "$root/docs/ARCHITECTURE.md" -c 512 --chunks 2 -p 128 -n 32 -r 3 \
            --imatrix "$work/110m.imatrix.gguf" ${EXTRA_110m:-}
        ;;
    *)
        echo "compress_report.sh: unknown model '$w' (expected stories, default or 110m)" >&2
        exit 2
        ;;
    esac
done
