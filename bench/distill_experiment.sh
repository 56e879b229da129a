#!/usr/bin/env bash
# Knowledge distillation (issue 16: `train --teacher`): a small student distilled from a larger
# teacher trained here against the same student trained on the labels alone, same steps, same
# seed, same data order. Run under the heavy lock:
#   flock /tmp/llmforge-heavy.lock bench/distill_experiment.sh [WORK]
#
#  1. corpus: stories sampled from the TinyStories model llama2c-stories260K (temperature 1, pure
#     sampling: the corpus's distribution is that model's), its 512-token vocabulary (tok512);
#     held-out stories from other seeds;
#  2. teacher: a dim-256, 4-layer Llama trained from random weights for TEACHER_STEPS;
#  3. student: a dim-64, 2-layer Llama trained for STUDENT_STEPS from the same random weights
#     (same --seed) over the same batches: labels only, and --teacher with each
#     --distill-alpha A --distill-temp T of KD_ARMS ("A:T A:T ...", default "0.5:2 0.5:1");
#  4. every model's perplexity on the held-out stories (`llmforge perplexity`, windows of 128).
# Prints a markdown table (also WORK/results.md). CPU: about 8-10 minutes on 2 cores.
# Variables: THREADS N_TRAIN N_TEST TEACHER_STEPS STUDENT_STEPS KD_ARMS (or one arm: ALPHA TEMP; and LLMFORGE_BIN,
# LLMFORGE_ASSETS). Finished stages are kept in WORK and skipped when run again.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
SRC=$ASSETS/llama2c-stories260K
W=${1:-/tmp/llmforge-distill-experiment}
THREADS=${THREADS:-2}
N_TRAIN=${N_TRAIN:-600}       # stories in the training corpus (~200k tokens)
N_TEST=${N_TEST:-60}          # held-out stories
TEACHER_STEPS=${TEACHER_STEPS:-300}
STUDENT_STEPS=${STUDENT_STEPS:-300}
if [ -n "${ALPHA:-}${TEMP:-}" ]; then
    KD_ARMS=${KD_ARMS:-${ALPHA:-0.5}:${TEMP:-2}}
else
    KD_ARMS=${KD_ARMS:-0.5:2 0.5:1}
fi
TOK=$SRC/tok512.bin

[ -f "$SRC/stories260K.bin" ] || { echo "LLMFORGE-ASSET-MISSING: $SRC/stories260K.bin" >&2; exit 2; }
mkdir -p "$W"
cd "$W"
# A private copy of the binary: a rebuild of build/bin while this runs must not change it mid-way.
cp "$BIN" .llmforge-bin
BIN=$PWD/.llmforge-bin

# ---- 1. corpus ------------------------------------------------------------------------------
source "$ROOT/bench/stories_corpus.sh"  # stories FIRST_SEED COUNT OUT
if [ ! -f train.txt ]; then
    echo "distill: sampling $N_TRAIN + $N_TEST stories from stories260K" >&2
    stories 5000 "$N_TRAIN" train.txt
    stories 700000 "$N_TEST" test.txt
fi
[ -f data/meta.json ] || "$BIN" prepare --tokenizer "$TOK" --input train.txt -o data --val-fraction 0.02 >&2

# ---- 2. teacher -----------------------------------------------------------------------------
cat > teacher.json <<'EOF'
{"model_type":"llama","hidden_size":256,"intermediate_size":688,"num_hidden_layers":4,
 "num_attention_heads":8,"num_key_value_heads":8,"vocab_size":512,"max_position_embeddings":256,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false}
EOF
cat > student.json <<'EOF'
{"model_type":"llama","hidden_size":64,"intermediate_size":172,"num_hidden_layers":2,
 "num_attention_heads":4,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":256,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false}
EOF
COMMON=(--data data --tokenizer "$TOK" --seq-len 128 --batch 16 -t "$THREADS" -q --weight-decay 0.1)
if [ ! -f teacher/model.safetensors ]; then
    echo "distill: teacher, $TEACHER_STEPS steps" >&2
    "$BIN" train --config teacher.json "${COMMON[@]}" --steps "$TEACHER_STEPS" --lr 2e-3 --min-lr 2e-4 \
        --warmup-steps 30 --seed 7 --save teacher --log-jsonl teacher.jsonl
fi

# ---- 3. students: labels only, and distilled (same seed: same initial weights and batches) ------
arm_dir() { echo "student-$1"; }
for arm in labels $(for at in $KD_ARMS; do echo "kd-a${at%%:*}-t${at##*:}"; done); do
    d=$(arm_dir "$arm")
    [ -f "$d/model.safetensors" ] && continue
    extra=()
    if [ "$arm" != labels ]; then
        at=${arm#kd-a}
        extra=(--teacher teacher --distill-alpha "${at%-t*}" --distill-temp "${at##*-t}")
    fi
    echo "distill: student ($arm), $STUDENT_STEPS steps" >&2
    start=$(date +%s)
    "$BIN" train --config student.json "${COMMON[@]}" --steps "$STUDENT_STEPS" --lr 3e-3 --min-lr 3e-4 \
        --warmup-steps 20 --seed 11 --save "$d" --log-jsonl "$d.jsonl" "${extra[@]}"
    echo $(( $(date +%s) - start )) > "$d.seconds"
done

# ---- 4. held-out perplexity ---------------------------------------------------------------------
ppl() {  # MODEL -> perplexity
    "$BIN" perplexity -m "$1" --tokenizer "$TOK" -f test.txt -c 128 -t "$THREADS" 2>&1 |
        grep -oiE 'perplexity[^0-9]*[0-9]+\.[0-9]+' | grep -oE '[0-9]+\.[0-9]+' | tail -1
}
{
    echo "Knowledge distillation (bench/distill_experiment.sh): corpus sampled from stories260K at temperature 1"
    echo "($N_TRAIN stories, vocab 512), perplexity on $N_TEST held-out stories (windows of 128 tokens)."
    echo "Students: the same random init (seed 11), data order and $STUDENT_STEPS steps (batch 16 x 128)."
    echo
    echo "| model | steps | held-out ppl | train time (s) |"
    echo "|---|---|---|---|"
    echo "| stories260K (the corpus's own sampler: a floor) | | $(ppl "$SRC/stories260K.bin") | |"
    echo "| teacher: dim 256, 4 layers | $TEACHER_STEPS | $(ppl teacher) | |"
    echo "| student dim 64, 2 layers: labels only | $STUDENT_STEPS | $(ppl "$(arm_dir labels)") | $(cat "$(arm_dir labels).seconds" 2>/dev/null || true) |"
    for at in $KD_ARMS; do
        kd=$(arm_dir "kd-a${at%%:*}-t${at##*:}")
        echo "| student dim 64, 2 layers: --teacher, alpha ${at%%:*}, T ${at##*:} | $STUDENT_STEPS | $(ppl "$kd") | $(cat "$kd.seconds" 2>/dev/null || true) |"
    done
} | tee results.md
