#!/usr/bin/env bash
# make default-model: builds the project's own default chat model from nothing but this repo.
#  1. a synthetic shop customer-service corpus (llmforge gen-dialogues, 20,000 dialogues),
#  2. a 2,048-token byte-level BPE vocabulary trained on it (llmforge train-tokenizer),
#  3. token shards with a 1% validation split (llmforge prepare --chat: whole dialogues packed into
#     rows, the loss on the assistant's replies only, so each reply sees its tool-result turn),
#  4. a 4.2M-parameter Llama (dim 256, 5 layers, 8 heads / 4 kv, ffn 688, tied embeddings)
#     trained for 1500 steps of 8 x 512 tokens (~1.5 epochs) with AdamW + cosine (llmforge train),
# then copies the result (Hugging Face folder: config.json, model.safetensors, tokenizer) and its
# loss curve into models/default/. About 35 minutes on 2 cores.
set -euo pipefail
bin=${1:-build/bin/llmforge}
work=${LLMFORGE_DEFAULT_MODEL_WORK:-build/default-model}
dest=${LLMFORGE_DEFAULT_MODEL_DEST:-models/default}
threads=${THREADS:-0}
rm -rf "$work"
mkdir -p "$work" "$dest"
t0=$(date +%s)
"$bin" gen-dialogues --n 20000 --seed 1 --out "$work/dialogues.jsonl"
"$bin" train-tokenizer --input "$work/dialogues.jsonl" --vocab-size 2048 --out "$work/tokenizer/tokenizer.json"
"$bin" prepare --chat --tokenizer "$work/tokenizer/tokenizer.json" --input "$work/dialogues.jsonl" --out "$work/data" \
    --val-fraction 0.01
"$bin" train --config "$dest/train-config.json" --data "$work/data" --seq-len 512 --batch 8 --steps 1500 \
    --lr 2e-3 --min-lr 2e-4 --warmup-steps 50 --weight-decay 0.1 --grad-clip 1.0 --seed 1 -t "$threads" \
    --eval-every 100 --eval-batches 4 --save "$work/run" --save-every 100 --log-jsonl "$work/train.jsonl"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json loss.svg; do
    cp "$work/run/$f" "$dest/$f"
done
cp "$work/train.jsonl" "$dest/train-log.jsonl"
echo "default-model: done in $(( $(date +%s) - t0 )) s -> $dest" >&2
