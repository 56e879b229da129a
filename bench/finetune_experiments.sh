#!/usr/bin/env bash
# Fine-tuning experiments on the project's default model (issue 14), from this repository alone:
#
#  1. Continual learning: the default model (task A: shop customer-service dialogues) learns a new
#     topic (task B: a harbour's ferry timetable, bench/make_ferry_corpus.py) by full fine-tuning,
#     with plain fine-tuning, rehearsal (--replay A --replay-ratio P), EWC (llmforge fisher on A,
#     --ewc-lambda L) and a LoRA adapter. Forgetting = task-A validation loss after B minus before.
#  2. Robustness on a small task: LoRA SFT on 24 ferry Q&A dialogues, validation on 200 held-out
#     ones, with nothing, FGM (--fgm EPS), EDA augmentation (llmforge augment) and both.
#
#   bench/finetune_experiments.sh [continual|robust|all]     (env: BIN, OUT, THREADS, STEPS)
# Writes OUT/continual.csv, OUT/robust.csv (default OUT=build/finetune-exp); plot with
# bench/plot_finetune.py OUT docs/. Every run is seeded: rerunning gives the same numbers for the
# same thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin/llmforge}
OUT=${OUT:-build/finetune-exp}
THREADS=${THREADS:-2}
STEPS=${STEPS:-150}
M=models/default
what=${1:-all}
mkdir -p "$OUT"

evalloss() {  # evalloss DATA [train flags...] -> validation loss (EVAL_BATCHES batches of 8 x 128)
    local data=$1; shift
    "$BIN" train --eval-only --data "$data" --seq-len 128 --batch 8 --eval-batches "${EVAL_BATCHES:-8}" -t "$THREADS" "$@" 2>/dev/null |
        python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["val_loss"])'
}

continual() {
    local d=$OUT/continual
    rm -rf "$d"; mkdir -p "$d"
    "$BIN" gen-dialogues --n 2000 --seed 2 -o "$d/A.jsonl" 2>/dev/null
    "$BIN" prepare --tokenizer $M --input "$d/A.jsonl" -o "$d/A" --val-fraction 0.1 2>/dev/null
    python3 bench/make_ferry_corpus.py --docs 600 --seed 1 --text "$d/ferry.txt"
    "$BIN" prepare --tokenizer $M --input "$d/ferry.txt" -o "$d/B" --val-fraction 0.1 2>/dev/null
    "$BIN" fisher -m $M --data "$d/A" --samples 64 --seq-len 128 -t "$THREADS" -o "$d/A.fisher" 2>/dev/null
    local a0 b0
    a0=$(evalloss "$d/A" --model $M)
    b0=$(evalloss "$d/B" --model $M)
    echo "method,a_before,a_after,b_before,b_after,forgetting,seconds" > "$OUT/continual.csv"
    local common=(--data "$d/B" --seq-len 128 --batch 8 --steps "$STEPS" --min-lr 1e-4 --warmup-steps 10
                  --weight-decay 0.01 --seed 1 -t "$THREADS" -q)
    run() {  # run NAME EVAL_FLAGS... -- TRAIN_FLAGS...
        local name=$1; shift
        local ev=() tr=()
        while [[ $1 != -- ]]; do ev+=("$1"); shift; done; shift
        tr=("$@")
        local t0=$SECONDS
        "$BIN" train --model $M "${common[@]}" --lr "${LR:-1e-3}" --save "$d/$name" "${tr[@]}" 2>/dev/null
        local secs=$((SECONDS - t0)) a1 b1
        a1=$(evalloss "$d/A" "${ev[@]}")
        b1=$(evalloss "$d/B" "${ev[@]}")
        echo "$name,$a0,$a1,$b0,$b1,$(python3 -c "print('%.4f' % ($a1 - $a0))"),$secs" | tee -a "$OUT/continual.csv"
    }
    run plain --model "$d/plain" --
    run replay-0.25 --model "$d/replay-0.25" -- --replay "$d/A" --replay-ratio 0.25
    for l in 1e6 1e7; do
        run "ewc-$l" --model "$d/ewc-$l" -- --ewc-lambda "$l" --ewc-fisher "$d/A.fisher"
    done
    LR=3e-3 run lora-r16 --model $M --peft lora --init-adapter "$d/lora-r16" -- --peft lora --lora-r 16 \
        --lora-alpha 32 --lora-targets all-linear
}

robust() {
    local d=$OUT/robust
    rm -rf "$d"; mkdir -p "$d"
    python3 bench/make_ferry_corpus.py --docs 24 --seed 11 --chat --jsonl "$d/train.jsonl"
    python3 bench/make_ferry_corpus.py --docs 200 --seed 12 --chat --jsonl "$d/val.jsonl"
    "$BIN" augment -i "$d/train.jsonl" -o "$d/train-aug.jsonl" --copies 4 --sr 0.1 --rd 0.1 --rs 0.1 \
        --synonyms data/shop_synonyms.txt --seed 1 2>/dev/null
    for s in train train-aug val; do
        "$BIN" prepare --chat --tokenizer $M --input "$d/$s.jsonl" -o "$d/$s" --val-fraction 0 2>/dev/null
    done
    echo "method,val_before,val_after,train_loss_last,seconds" > "$OUT/robust.csv"
    local v0
    export EVAL_BATCHES=16  # 128 rows: the ~115 packed rows of the 200 held-out dialogues once
    v0=$(evalloss "$d/val" --model $M --val-data "$d/val")
    for cfg in "none:train:" "fgm-0.5:train:--fgm 0.5" "fgm-2:train:--fgm 2" "eda:train-aug:" "eda+fgm-0.5:train-aug:--fgm 0.5"; do
        IFS=: read -r name data extra <<< "$cfg"
        local t0=$SECONDS
        # shellcheck disable=SC2086
        "$BIN" train --model $M --peft lora --lora-r 8 --lora-alpha 16 --lora-targets all-linear --lora-dropout 0.1 \
            --data "$d/$data" --seq-len 128 --batch 8 --steps 60 --lr 3e-3 --min-lr 3e-4 --weight-decay 0.01 --seed 1 \
            -t "$THREADS" -q --save "$d/$name" --log-jsonl "$d/$name.jsonl" $extra 2>/dev/null
        local secs=$((SECONDS - t0)) v1 last
        v1=$(evalloss "$d/val" --model $M --val-data "$d/val" --peft lora --init-adapter "$d/$name")
        last=$(tail -n 1 "$d/$name.jsonl" | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["loss"])')
        echo "$name,$v0,$v1,$last,$secs" | tee -a "$OUT/robust.csv"
    done
}

case $what in
    continual) continual ;;
    robust) robust ;;
    all) continual; robust ;;
    *) echo "usage: $0 [continual|robust|all]" >&2; exit 2 ;;
esac
