#!/bin/bash
# Pins llama.cpp clip.cpp's own output for tests/model/mmproj_test.cpp (ClipCppOutput): builds
# clipcpp_embed.cpp against a llama.cpp checkout (LLAMA_CPP, default /work/llama.cpp, at commit
# c392e50, with libggml built in $LLAMA_CPP/build/bin) and runs it on the llava_clip_tiny mmproj
# (written by make_vision_refs.py with llama.cpp's gguf-py) and one test image. Outputs, raw f32:
#   ../llava_clip_tiny/clipcpp_portrait_90x150.pixels.f32     32 x 32 x 3 (HWC), clip_image_preprocess
#   ../llava_clip_tiny/clipcpp_portrait_90x150.embedding.f32  16 x 48, clip_image_batch_encode
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
L=${LLAMA_CPP:-/work/llama.cpp}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
g++ -O2 -std=c++17 -w -I"$L/ggml/include" -I"$L/common" -I"$L/examples/llava" "$here/clipcpp_embed.cpp" -o "$tmp/clipcpp_embed" \
    -L"$L/build/bin" -lggml -lggml-base -lggml-cpu -Wl,-rpath,"$L/build/bin" -lpthread
out="$here/../llava_clip_tiny"
"$tmp/clipcpp_embed" "$out/mmproj-model-f16.gguf" "$here/../../../../data/images/portrait_90x150.png" \
    "$out/clipcpp_portrait_90x150.pixels.f32" "$out/clipcpp_portrait_90x150.embedding.f32"
