#!/usr/bin/env bash
# How the files here were made (run by hand, never by the tests; needs a llama.cpp build outside
# the repository — these were written by llama.cpp c392e5094, build 4748).
#   tiny-f32.gguf        llmforge init-model --dim 256 --layers 1 --heads 4 --ffn 256 --vocab 320 --seed 7
#   tiny.imatrix.dat     llama-imatrix on it over calib.txt (the first 20000 bytes of README.md), 8 chunks of 128
#   tiny-<T>.gguf        llama-quantize --pure tiny-f32.gguf tiny-<T>.gguf <T>   (every tensor in T)
#   tiny-<T>-imat.gguf   the same with --imatrix tiny.imatrix.dat
# Usage: make_fixtures.sh LLAMA_CPP_BIN_DIR LLMFORGE_BIN
set -euo pipefail
bin=${1:?llama.cpp bin dir}; lf=${2:?llmforge binary}
cd "$(dirname "$0")"
"$lf" init-model --dim 256 --layers 1 --heads 4 --ffn 256 --vocab 320 --seed 7 -o tiny-f32.gguf
"$bin/llama-imatrix" -m tiny-f32.gguf -f calib.txt -o tiny.imatrix.dat -c 128 --chunks 8 -t 2
# the same with an f32 KV cache (llmforge imatrix's cache): tests/runtime/imatrix_test.cpp
"$bin/llama-imatrix" -m tiny-f32.gguf -f calib.txt -o tiny.imatrix-f32kv.dat -c 128 --chunks 8 -t 2 -ctk f32 -ctv f32
for t in Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q4_K_S Q5_K_S Q6_K F16 BF16; do
  "$bin/llama-quantize" --pure tiny-f32.gguf "tiny-$t.gguf" "$t"
done
for t in Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q4_K_S Q5_K_S Q6_K; do
  "$bin/llama-quantize" --pure --imatrix tiny.imatrix.dat tiny-f32.gguf "tiny-$t-imat.gguf" "$t"
done
