#!/usr/bin/env bash
# Training memory by precision and activation storage, llmforge vs PyTorch, side by side in one
# run: the 110M shape of bench/train_ab.sh (dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000,
# seq 256, tied embeddings, random tokens, AdamW) at each batch size, peak RSS and median tok/s of
# each configuration:
#   llmforge fp32 | bf16 --store-activations f32 | bf16 (saved activations in bf16, the default)
#           | bf16 --checkpoint-activations;  PyTorch fp32 | bf16 autocast (when python3-torch is there)
#
#   bench/train_memory.sh [build/bin/llmforge]   env: THREADS=2 STEPS=4 BATCHES="4 16" TORCH=1
#                                                     OUT=build/bench/train-memory
# Writes $OUT/train-memory.jsonl, $OUT/train-memory.svg and prints a table.
set -euo pipefail
bin=${1:-build/bin/llmforge}
here=$(cd "$(dirname "$0")" && pwd)
THREADS=${THREADS:-2} STEPS=${STEPS:-4} BATCHES=${BATCHES:-"4 16"}
OUT=${OUT:-build/bench/train-memory}
mkdir -p "$OUT"
py=/usr/bin/python3
have_torch=1
$py -c "import torch" 2>/dev/null || { have_torch=0; echo "train_memory: python3-torch not installed, llmforge only" >&2; }
[[ ${TORCH:-1} == 0 ]] && have_torch=0
data="$OUT/random-32k.u16"
[[ -f $data ]] || $py -c "
import random, struct, sys
random.seed(1); n = 4_000_000
open(sys.argv[1], 'wb').write(struct.pack('<%dH' % n, *[random.randrange(32000) for _ in range(n)]))" "$data"
cfg="$OUT/cfg-110M.json"
echo '{"model_type":"llama","hidden_size":768,"intermediate_size":2048,"num_hidden_layers":12,"num_attention_heads":12,"num_key_value_heads":12,"vocab_size":32000,"max_position_embeddings":256,"rms_norm_eps":1e-5,"tie_word_embeddings":true}' > "$cfg"
jsonl="$OUT/train-memory.jsonl"
: > "$jsonl"
record() {  # batch config tok/s rss
    echo "{\"batch\": $1, \"config\": \"$2\", \"tokens_per_s\": ${3:-0}, \"peak_rss_mb\": ${4:-0}}" >> "$jsonl"
}
for batch in $BATCHES; do
    for config in "fp32" "bf16 --store-activations f32" "bf16" "bf16 --checkpoint-activations"; do
        read -r prec extra <<< "$config"
        echo "train_memory: llmforge batch $batch: $config" >&2
        res=$("$bin" train --config "$cfg" --data "$data" --seq-len 256 --batch "$batch" --steps "$STEPS" \
            --lr 3e-4 --grad-clip 1 --precision "$prec" $extra -t "$THREADS" -q 2>&1 | grep "train: done" || true)
        record "$batch" "llmforge $config" "$(sed -n 's/.*median \([0-9.]*\) tok\/s.*/\1/p' <<< "$res")" \
            "$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' <<< "$res")"
    done
    if ((have_torch)); then
        for prec in fp32 bf16; do
            echo "train_memory: pytorch batch $batch: $prec" >&2
            res=$(OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS $py "$here/torch_train_bench.py" --dim 768 \
                --layers 12 --heads 12 --kv 12 --ffn 2048 --batch "$batch" --steps "$STEPS" --threads "$THREADS" \
                --precision "$prec" 2>/dev/null | tail -1)
            record "$batch" "pytorch $prec" "$($py -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$res")" \
                "$($py -c 'import json,sys; print(json.loads(sys.argv[1])["peak_rss_mb"])' "$res")"
        done
    fi
done
$py "$here/plot_train_memory.py" "$jsonl" "$OUT/train-memory.svg"
