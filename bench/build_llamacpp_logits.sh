#!/usr/bin/env bash
# Builds bench/llamacpp_logits.cc against llama.cpp's shared library (outside the project's build).
# Usage: bench/build_llamacpp_logits.sh [OUT]   (env: LLAMA_SRC, LLAMA_BUILD; default OUT /tmp/llamacpp_logits)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${LLAMA_SRC:-/work/llama.cpp}
build=${LLAMA_BUILD:-/work/llamacpp-build}
out=${1:-/tmp/llamacpp_logits}
lib=$(dirname "$(find "$build" -name libllama.so | head -1)")
ggml_lib=$(dirname "$(find "$build" -name 'libggml.so' | head -1)")
c++ -std=c++17 -O2 -o "$out" "$root/bench/llamacpp_logits.cc" -I"$src/include" -I"$src/ggml/include" \
  -L"$lib" -L"$ggml_lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib" -Wl,-rpath,"$ggml_lib"
echo "$out"
