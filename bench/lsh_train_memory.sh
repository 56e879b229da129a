#!/usr/bin/env bash
# Training memory and step time at long sequences, dense vs LSH attention (issue 18): a 4-layer
# llama (hidden 128, 4 heads of 32, vocab 512), one sequence of T tokens per step, 3 steps each,
# with and without --checkpoint-activations. Peak RSS from /usr/bin/time, step time from the
# last step's tokens/s. Dense attention keeps its probabilities for backward (T² / 2 per head and
# layer); LSH keeps its candidate lists (T · (n_hashes · window + local) at most).
#
#   bench/lsh_train_memory.sh [T ...]      (default 4096 8192 16384)
#   WORK=/tmp/lshmem DATA=DIR_OR_U16 BIN=build/bin/llmforge THREADS=1
#
# DATA: token shards with at least T + 1 tokens (a folder from `llmforge prepare`, e.g. the one
# bench/stories_corpus.sh makes; vocabulary of at most 512 ids). Writes WORK/results.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/bin/llmforge}
WORK=${WORK:-/tmp/lshmem}
DATA=${DATA:?DATA: a token folder or .u16 file with enough tokens}
THREADS=${THREADS:-1}
LENGTHS=${*:-4096 8192 16384}
mkdir -p "$WORK"
cd "$WORK"
cat > dense.json <<'JSON'
{"model_type":"llama","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":4,"max_position_embeddings":65536,"rms_norm_eps":1e-5,
 "rope_theta":10000,"tie_word_embeddings":false}
JSON
sed 's/"tie_word_embeddings":false}/"tie_word_embeddings":false,"llmforge_attention":"lsh","lsh_n_buckets":64,"lsh_n_hashes":2,"lsh_window":64,"lsh_local":16}/' \
    dense.json > lsh.json
{
    echo "| T | attention | checkpointed | peak RSS MiB | step s |"
    echo "|---|---|---|---|---|"
} > results.md
for T in $LENGTHS; do
    for kind in dense lsh; do
        for ck in no yes; do
            flag=""
            [ "$ck" = yes ] && flag="--checkpoint-activations"
            rm -rf run log.jsonl
            /usr/bin/time -f "%M" -o rss.txt "$BIN" train --config "$kind.json" --data "$DATA" --seq-len "$T" --batch 1 \
                --steps 3 --lr 1e-3 --warmup-steps 0 -t "$THREADS" --log-jsonl log.jsonl --save run $flag >/dev/null 2>err.txt ||
                { echo "| $T | $kind | $ck | failed: $(tail -1 err.txt) | |" >> results.md; continue; }
            rss=$(( $(tail -1 rss.txt) / 1024 ))
            tps=$(tail -1 log.jsonl | sed -n 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/p')
            step=$(awk -v t="$T" -v r="$tps" 'BEGIN { printf "%.2f", t / r }')
            echo "| $T | $kind | $ck | $rss | $step |" | tee -a results.md
        done
    done
done
cat results.md
