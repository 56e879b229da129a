#!/usr/bin/env bash
# Grammar-constrained decoding cost, llmforge vs llama.cpp, on the same 110M q8_0 Llama with
# llama.cpp's 32k llama-spm vocabulary, 1 thread.
#   bench/grammar_ab.sh [llama.cpp bin dir (default /work/llamacpp-build/bin)] [seeds (default 5)]
# 1. makes /work/models/110m-q8_0.gguf when missing (llmforge init-model --vocab-from the vocab);
# 2. llmforge: build/bin/bench_grammar (per-token mask + accept of the grammar stage over the
#    whole vocabulary, cold = new stage and warm = caches filled, and the decode step);
# 3. llama.cpp: llama-cli -n 128 with and without --grammar-file for each grammar and seed; its
#    "sampling time" per token is the whole sampler chain (grammar included when given), "eval
#    time" per token is the decode step. Its sampler checks the grammar lazily (the chosen token
#    first, the full mask only when that token is rejected), so a random-weight model is its
#    worst case only when most draws break the grammar.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lbin=${1:-/work/llamacpp-build/bin}
seeds=${2:-5}
vocab=${LLMFORGE_ASSETS:-$root/../shared/assets}/llama.cpp-vocab/ggml-vocab-llama-spm.gguf
model=${LLMFORGE_GRAMMAR_MODEL:-/work/models/110m-q8_0.gguf}

if [[ ! -f $model ]]; then
    mkdir -p "$(dirname "$model")"
    "$root/build/bin/llmforge" init-model --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000 \
        --type q8_0 --seed 1 --vocab-from "$vocab" -o "$model"
fi

echo "== llmforge (build/bin/bench_grammar, 1 thread)"
"$root/build/bin/bench_grammar" --vocab "$vocab" --model "$model" --grammars "$root/grammars" --decode-steps 64

echo
echo "== llama.cpp ($lbin/llama-cli, -t 1, -n 128, --temp 1)"
printf '%-20s %5s %7s %14s %14s\n' grammar seed tokens "sample ms/tok" "eval ms/tok"
for g in none json.gbnf person_schema.gbnf c.gbnf; do
    for ((s = 1; s <= seeds; ++s)); do
        args=(-m "$model" -p "Output:" -n 128 -no-cnv -t 1 -c 512 --seed "$s" --temp 1)
        [[ $g != none ]] && args+=(--grammar-file "$root/grammars/$g")
        out=$("$lbin/llama-cli" "${args[@]}" 2>&1 </dev/null || true)
        samp=$(grep -oP 'sampling time =\s+[0-9.]+ ms /\s+\K[0-9]+ runs\s+\(\s+[0-9.]+' <<<"$out" | tail -1)
        ev=$(grep -oP '\beval time =\s+[0-9.]+ ms /\s+[0-9]+ runs\s+\(\s+\K[0-9.]+' <<<"$out" | grep -v prompt | tail -1)
        runs=${samp%% *}
        printf '%-20s %5d %7s %14s %14s\n' "$g" "$s" "${runs:-?}" "${samp##*( }" "${ev:-?}"
    done
done
