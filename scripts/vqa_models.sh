#!/usr/bin/env bash
# make vqa-models: trains the visual question answering models of issue 20 from nothing but this
# repo (llmforge train-vqa on the generated CLEVR-like scenes: train/vqa_data.h) — the seed's gated
# fusion, plain concatenation, cross-attention, and the question-only and image-only baselines, each
# a ViT (64×64 images, 8×8 patches) + RoBERTa (word-level WordPiece) of width 64 and 2 layers with
# the same steps, data and seed — into models/vqa/<kind>/, then scores them (bench/vqa_eval.py:
# docs/vqa-eval.md and .svg). About 25 minutes on 2 cores.
set -euo pipefail
bin=${1:-build/bin/llmforge}
dest=${LLMFORGE_VQA_DEST:-models/vqa}
steps=${VQA_STEPS:-4000}
threads=${THREADS:-2}
t0=$(date +%s)
for kind in text image gated concat cross; do
    rm -rf "$dest/$kind.tmp"
    "$bin" train-vqa --out "$dest/$kind.tmp" --fusion "$kind" --steps "$steps" --batch 32 --lr 1e-3 --warmup 100 \
        --scenes 4000 --questions-per-scene 5 --eval-scenes 300 --eval-every 1000 --seed 1 -t "$threads"
    rm -rf "$dest/$kind"
    mv "$dest/$kind.tmp" "$dest/$kind"
done
echo "vqa-models: trained in $(( $(date +%s) - t0 )) s -> $dest" >&2
