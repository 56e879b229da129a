#!/usr/bin/env bash
# Quantisation-aware training vs post-training quantisation to q4_0 (issue 16, item 3), on a small
# Llama trained here. Run under the heavy lock: flock /tmp/llmforge-heavy.lock bench/qat_experiment.sh [WORK]
#
#  1. corpus: stories sampled from the TinyStories model llama2c-stories260K (temperature 1, pure
#     sampling), its 512-token vocabulary; held-out stories from other seeds;
#  2. base: a 4-layer dim-128 Llama (untied head) trained from random weights for BASE_STEPS;
#  3. from the same base, the same EXTRA_STEPS of continued training twice (same data order, same
#     schedule): plain (the fair baseline: as many steps as QAT got) and --qat q4_0;
#  4. each quantised to q4_0 (`llmforge quantize` when it exists, else `convert --type q4_0`; both
#     store block matrices and the token embedding as q4_0 and output.weight as q8_0 here, its rows
#     of 128 values not fitting q6_k), and every model's perplexity on the held-out stories.
# Prints a markdown table (also WORK/results.md). CPU: about 5-8 minutes on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
SRC=$ASSETS/llama2c-stories260K
W=${1:-/tmp/llmforge-qat-experiment}
THREADS=${THREADS:-2}
N_TRAIN=${N_TRAIN:-1000}      # stories in the training corpus
N_TEST=${N_TEST:-300}         # held-out stories
BASE_STEPS=${BASE_STEPS:-600}
EXTRA_STEPS=${EXTRA_STEPS:-200}
SEEDS=${SEEDS:-"2 3"}         # one plain + one QAT continuation per seed (batch order)
TOK=$SRC/tok512.bin

[ -f "$SRC/stories260K.bin" ] || { echo "LLMFORGE-ASSET-MISSING: $SRC/stories260K.bin" >&2; exit 2; }
mkdir -p "$W"
cd "$W"
# A private copy of the binary: a rebuild of build/bin/llmforge mid-run must not break the run.
cp "$BIN" .llmforge-bin
BIN=$W/.llmforge-bin

# ---- 1. corpus ------------------------------------------------------------------------------
source "$ROOT/bench/stories_corpus.sh"  # stories FIRST_SEED COUNT OUT
if [ ! -f train.txt ]; then
    echo "qat: sampling $N_TRAIN training stories from stories260K" >&2
    stories 1000 "$N_TRAIN" train.txt
fi
if [ ! -f test.txt ]; then
    echo "qat: sampling $N_TEST held-out stories" >&2
    stories 900000 "$N_TEST" test.txt
fi
if [ ! -f data/meta.json ]; then
    "$BIN" prepare --tokenizer "$TOK" --input train.txt -o data --val-fraction 0.02 >&2
fi

# ---- 2. base model --------------------------------------------------------------------------
cat > config.json <<'EOF'
{"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":256,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false}
EOF
COMMON=(--data data --seq-len 128 --batch 16 -t "$THREADS" -q --weight-decay 0.1)
if [ ! -f base/model.safetensors ]; then
    echo "qat: base model, $BASE_STEPS steps" >&2
    "$BIN" train --config config.json "${COMMON[@]}" --steps "$BASE_STEPS" --lr 3e-3 --min-lr 3e-4 \
        --warmup-steps 30 --save base --log-jsonl base.jsonl
fi

# ---- 3. continued training: plain and QAT, same steps, same schedule, same data order ------------
ARMS=()
for seed in $SEEDS; do
    for kind in plain qat; do
        arm=$kind-s$seed
        ARMS+=("$arm")
        [ -f "$arm/model.safetensors" ] && continue
        extra=()
        [ "$kind" = qat ] && extra=(--qat q4_0)
        echo "qat: $arm continuation, $EXTRA_STEPS steps" >&2
        "$BIN" train --model base "${COMMON[@]}" --steps "$EXTRA_STEPS" --lr 1e-3 --min-lr 1e-4 --warmup-steps 10 \
            --seed "$seed" --save "$arm" --log-jsonl "$arm.jsonl" "${extra[@]}"
    done
done

# ---- 4. quantise and measure ----------------------------------------------------------------
quantize() {  # IN OUT.gguf TYPE
    if "$BIN" quantize -m "$1" -o "$2" --type "$3" --threads "$THREADS" >/dev/null 2>q.err; then
        QUANTIZER="llmforge quantize"
    else
        "$BIN" convert -m "$1" --tokenizer "$TOK" -o "$2" --type "$3" -t "$THREADS" 2>/dev/null
        QUANTIZER="llmforge convert"
    fi
}
ppl() {  # MODEL -> perplexity
    "$BIN" perplexity -m "$1" --tokenizer "$TOK" -f test.txt -c 128 -t "$THREADS" 2>&1 |
        grep -oiE 'perplexity[^0-9]*[0-9]+\.[0-9]+' | grep -oE '[0-9]+\.[0-9]+' | tail -1
}
for m in base "${ARMS[@]}"; do
    "$BIN" convert -m "$m" --tokenizer "$TOK" -o "$m-f32.gguf" --type f32 -t "$THREADS" 2>/dev/null
    quantize "$m" "$m-q4_0.gguf" q4_0
done
size() { stat -c %s "$1"; }
{
    echo "QAT vs post-training q4_0 (bench/qat_experiment.sh): 4-layer dim-128 Llama, vocab 512, trained"
    echo "$BASE_STEPS steps on TinyStories-style text sampled from stories260K, then $EXTRA_STEPS more steps per arm"
    echo "from that checkpoint (same schedule; seed = batch order); quantised with $QUANTIZER --type q4_0 (block"
    echo "matrices and token_embd q4_0, output.weight q8_0); perplexity on $N_TEST held-out stories (windows of 128)."
    echo
    echo "| model | f32 ppl | f32 bytes | q4_0 ppl | q4_0 bytes | q4_0 / f32 ppl |"
    echo "|---|---|---|---|---|---|"
    for m in base "${ARMS[@]}"; do
        pf=$(ppl "$m-f32.gguf"); pq=$(ppl "$m-q4_0.gguf")
        case $m in
            base) label="base ($BASE_STEPS steps)" ;;
            plain-s*) label="+ $EXTRA_STEPS steps, seed ${m#plain-s} → PTQ" ;;
            qat-s*) label="+ $EXTRA_STEPS steps --qat q4_0, seed ${m#qat-s} → QAT" ;;
        esac
        echo "| $label | $pf | $(size "$m-f32.gguf") | $pq | $(size "$m-q4_0.gguf") | $(awk -v a="$pq" -v b="$pf" 'BEGIN{printf "%.4f", a/b}') |"
    done
} | tee results.md
# The q4_0 file holds exactly the weights the QAT forward read: the training forward's validation
# loss on the file equals the one on the f32 masters with --qat q4_0, bit for bit.
arm=${ARMS[1]}
evl() { "$BIN" train "$@" --val-data data/val-00000.u16 --eval-only --seq-len 128 --batch 8 --eval-batches 4 -t "$THREADS" -q |
            grep -oE '"val_loss":[0-9.e-]+' | cut -d: -f2; }
a=$(evl --model "$arm-q4_0.gguf"); b=$(evl --model "$arm" --qat q4_0)
echo
echo "Exactness: validation loss of $arm-q4_0.gguf $a; of $arm's f32 masters under --qat q4_0 $b ($([ "$a" = "$b" ] && echo identical || echo DIFFERENT))." | tee -a results.md
