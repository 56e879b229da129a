#!/usr/bin/env bash
# Training throughput, llmforge vs PyTorch (Debian's python3-torch), side by side in one run:
# the issue's shapes (15M: dim 288, 6 layers, 6 heads, ffn 768, batch 8; 110M: dim 768, 12 layers,
# 12 heads, ffn 2048, batch 4), vocab 32000, seq 256, tied embeddings, random tokens, AdamW, grad
# clip 1, fp32 and bf16. Each run reports the median tokens/s over its timed steps and its peak
# RSS; runs are interleaved (torch, llmforge, torch, …) so machine noise hits both alike.
#
#   bench/train_ab.sh [build/bin/llmforge]     env: THREADS=2 STEPS=6 REPS=1 SHAPES="15M 110M"
#                                                   PRECISIONS="fp32 bf16" OUT=build/bench/train
# Writes $OUT/train-ab.jsonl, $OUT/train-ab.svg and prints a table. PyTorch is optional: without
# it (or with TORCH=0) only llmforge rows are measured. LF_BASE=<an older llmforge binary> adds
# "llmforge-before" rows, run alternately with the current binary (before/after A/B of a change).
set -euo pipefail
bin=${1:-build/bin/llmforge}
here=$(cd "$(dirname "$0")" && pwd)
THREADS=${THREADS:-2} STEPS=${STEPS:-6} REPS=${REPS:-1}
SHAPES=${SHAPES:-"15M 110M"} PRECISIONS=${PRECISIONS:-"fp32 bf16"}
OUT=${OUT:-build/bench/train}
mkdir -p "$OUT"
py=/usr/bin/python3
have_torch=1
$py -c "import torch" 2>/dev/null || { have_torch=0; echo "train_ab: python3-torch not installed, llmforge only" >&2; }
[[ ${TORCH:-1} == 0 ]] && have_torch=0
data="$OUT/random-32k.u16"
[[ -f $data ]] || $py -c "
import random, struct, sys
random.seed(1); n = 4_000_000
open(sys.argv[1], 'wb').write(struct.pack('<%dH' % n, *[random.randrange(32000) for _ in range(n)]))" "$data"
shape_args() {  # dim layers heads ffn batch
    case $1 in
        15M) echo "288 6 6 768 8" ;;
        110M) echo "768 12 12 2048 4" ;;
        *) echo "train_ab: unknown shape $1" >&2; exit 2 ;;
    esac
}
jsonl="$OUT/train-ab.jsonl"
: > "$jsonl"
peak=$(dirname "$bin")/bench_sgemm_peak
[[ -x $peak ]] && "$peak" 2048 "$THREADS" | sed 's/^{/{"impl": "sgemm-peak", /' >> "$jsonl"
for shape in $SHAPES; do
    read -r dim layers heads ffn batch <<< "$(shape_args "$shape")"
    cfg="$OUT/cfg-$shape.json"
    printf '{"model_type":"llama","hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":32000,"max_position_embeddings":256,"rms_norm_eps":1e-5,"tie_word_embeddings":true}\n' \
        "$dim" "$ffn" "$layers" "$heads" "$heads" > "$cfg"
    for prec in $PRECISIONS; do
        for ((r = 0; r < REPS; r++)); do
            if ((have_torch)); then
                echo "train_ab: pytorch $shape $prec (rep $r)" >&2
                # OpenBLAS and OpenMP threads pinned too: torch.set_num_threads alone leaves
                # Debian's OpenBLAS on every core.
                OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS $py "$here/torch_train_bench.py" --dim "$dim" --layers "$layers" --heads "$heads" --kv "$heads" \
                    --ffn "$ffn" --batch "$batch" --steps "$STEPS" --threads "$THREADS" --precision "$prec" 2>/dev/null |
                    sed "s/^{/{\"shape\": \"$shape\", /" >> "$jsonl"
            fi
            run_lf() {  # binary impl-name
                echo "train_ab: $2 $shape $prec (rep $r)" >&2
                res=$("$1" train --config "$cfg" --data "$data" --seq-len 256 --batch "$batch" --steps "$STEPS" \
                    --lr 3e-4 --grad-clip 1 --precision "$prec" -t "$THREADS" -q 2>&1 | grep "train: done" || true)
                tps=$(sed -n 's/.*median \([0-9.]*\) tok\/s.*/\1/p' <<< "$res")
                rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' <<< "$res")
                echo "{\"shape\": \"$shape\", \"impl\": \"$2\", \"precision\": \"$prec\", \"tokens_per_s\": ${tps:-0}, \"peak_rss_mb\": ${rss:-0}}" >> "$jsonl"
            }
            # With a baseline, which binary goes first alternates with the rep (ABBA).
            if [[ -n ${LF_BASE:-} ]] && ((r % 2 == 0)); then run_lf "$LF_BASE" llmforge-before; fi
            run_lf "$bin" llmforge
            if [[ -n ${LF_BASE:-} ]] && ((r % 2 == 1)); then run_lf "$LF_BASE" llmforge-before; fi
        done
    done
done
$py "$here/plot_train_ab.py" "$jsonl" "$OUT/train-ab.svg"
if [[ -n ${LF_BASE:-} ]]; then  # before/after table: medians and the median of paired ratios
    $py - "$jsonl" <<'PY'
import collections, json, statistics as st, sys
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("impl") in ("llmforge", "llmforge-before"):
        runs[(r["shape"], r["precision"])][r["impl"]].append(r["tokens_per_s"])
print("| shape | precision | before tok/s (median) | after tok/s (median) | after/before (medians) | median of paired ratios |")
print("|---|---|---|---|---|---|")
for (shape, prec), v in runs.items():
    b, a = v["llmforge-before"], v["llmforge"]
    paired = st.median(x / y for x, y in zip(a, b))
    print(f"| {shape} | {prec} | {st.median(b):.0f} | {st.median(a):.0f} | {st.median(a) / st.median(b):.3f} | {paired:.3f} |")
PY
fi
echo "train_ab: wrote $jsonl and $OUT/train-ab.svg" >&2
