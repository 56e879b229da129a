#!/usr/bin/env bash
# make vlm-model: trains the vision-language model of issue 20 (item 5) from nothing but this repo:
# llmforge train-vlm on the generated CLEVR-like scenes (train/vqa_data.h) — a CLIP-style tower
# (64×64 images, 8×8 patches) + LLaVA's two-layer projector feeding a small Llama decoder with a
# byte-level BPE learned on the task's text, trained end to end to answer the VQA questions and to
# describe scenes — into models/vlm/ (decoder folder + mmproj.gguf), then scores it on the held-out
# test split with the right images and with shuffled ones (docs/vlm-eval.md). About 35 minutes on
# 2 cores.
set -euo pipefail
bin=${1:-build/bin/llmforge}
dest=${LLMFORGE_VLM_DEST:-models/vlm}
steps=${VLM_STEPS:-7000}
threads=${THREADS:-2}
t0=$(date +%s)
rm -rf "$dest.tmp"
"$bin" train-vlm --out "$dest.tmp" --steps "$steps" --batch 16 --lr 1e-3 --warmup 100 --scenes 4000 \
    --questions-per-scene 5 --eval-scenes 60 --eval-every 500 --seed 1 -t "$threads"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "vlm-model: trained in $(( $(date +%s) - t0 )) s -> $dest" >&2
