#!/usr/bin/env bash
# LoRA fine-tuning, llmforge vs PyTorch (Debian's python3-torch), side by side in one run (issue 14):
# LoRA r16 / alpha 32 on q_proj,k_proj,v_proj,o_proj over a frozen 110M-shape base (dim 768,
# 12 layers, 12 heads, ffn 2048, vocab 32000, untied output), seq 256, random tokens, AdamW over
# the adapter only, grad clip 1, fp32 and bf16 (PyTorch: torch.autocast("cpu", bfloat16)), 1 and
# 2 threads. PyTorch writes LoRA in plain torch (bench/torch_train_bench.py --lora-r; PEFT is not
# packaged for Debian) on a random model of the same shape.
#
# Each (precision, threads) pair runs ROUNDS rounds; round r runs PyTorch then llmforge when r is
# even and llmforge then PyTorch when r is odd (ABBA), so drift and other load hit both sides.
# Each run reports the median tokens/s over its timed steps (step 0 is not timed) and its peak RSS
# (getrusage). The table gives the medians over rounds, the ratio of medians and the median of the
# per-round paired ratios llmforge/PyTorch (the figure to read on a noisy machine).
#
#   bench/lora_ab.sh [llmforge binary]   env: MODEL=/work/models/bench/110m-f32.gguf
#        DATA=<.u16 tokens> PRECISIONS="fp32 bf16" THREADS="1 2" ROUNDS=2 STEPS=4 BATCH=4
#        R=16 ALPHA=32 TARGETS=q_proj,k_proj,v_proj,o_proj OUT=build/bench/lora TORCH=1
#        MODEL_BF16=<base for llmforge's bf16 rows; default MODEL> EXTRA_LF=<more train flags>
# Writes $OUT/lora-ab.jsonl (one line per run), $OUT/lora-ab.csv (the table) and
# $OUT/lora-ab.svg (bench/plot_lora_ab.py), and prints the table (markdown) on stdout.
# The model: llmforge init-model --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048
#            --vocab 32000 --type f32 --seed 1 --out 110m-f32.gguf
set -euo pipefail
bin=${1:-build/bin/llmforge}
here=$(cd "$(dirname "$0")" && pwd)
MODEL=${MODEL:-/work/models/bench/110m-f32.gguf}
MODEL_BF16=${MODEL_BF16:-$MODEL}
PRECISIONS=${PRECISIONS:-"fp32 bf16"} THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-4} BATCH=${BATCH:-4} SEQ=${SEQ:-256}
R=${R:-16} ALPHA=${ALPHA:-32} TARGETS=${TARGETS:-q_proj,k_proj,v_proj,o_proj}
OUT=${OUT:-build/bench/lora}
mkdir -p "$OUT"
py=/usr/bin/python3
have_torch=1
$py -c "import torch" 2>/dev/null || { have_torch=0; echo "lora_ab: python3-torch not installed, llmforge only" >&2; }
[[ ${TORCH:-1} == 0 ]] && have_torch=0
[[ -f $MODEL ]] || { echo "lora_ab: no $MODEL (see the init-model line at the top)" >&2; exit 2; }
data=${DATA:-$OUT/random-32k.u16}
[[ -f $data ]] || $py -c "
import random, struct, sys
random.seed(1); n = 2_000_000
open(sys.argv[1], 'wb').write(struct.pack('<%dH' % n, *[random.randrange(32000) for _ in range(n)]))" "$data"
# The shape (and whether the output matrix is tied), read from the GGUF header.
read -r dim layers heads kv ffn vocab tied <<< "$($py - "$MODEL" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb"); assert f.read(4) == b"GGUF"
ver, nt, nkv = struct.unpack("<IQQ", f.read(20))
def s(): n, = struct.unpack("<Q", f.read(8)); return f.read(n).decode("utf-8", "replace")
FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def val(t):
    if t == 8: return s()
    if t == 9:
        et, n = struct.unpack("<IQ", f.read(12))
        if et in (8, 9): return [val(et) for _ in range(n)]
        f.seek(n * struct.calcsize(FMT[et]), 1); return None
    return struct.unpack("<" + FMT[t], f.read(struct.calcsize(FMT[t])))[0]
kv = {}
for _ in range(nkv):
    k = s(); t, = struct.unpack("<I", f.read(4)); kv[k] = val(t)
names, vocab = [], 0
for _ in range(nt):
    names.append(s()); nd, = struct.unpack("<I", f.read(4))
    ne = struct.unpack("<%dQ" % nd, f.read(8 * nd)); f.read(4 + 8)
    if names[-1] == "token_embd.weight": vocab = ne[1]
a = kv["general.architecture"]
g = lambda k: kv.get(f"{a}.{k}")
print(g("embedding_length"), g("block_count"), g("attention.head_count"),
      g("attention.head_count_kv") or g("attention.head_count"), g("feed_forward_length"),
      vocab, 0 if "output.weight" in names else 1)
PY
)"
untied_flag=""; ((tied)) || untied_flag=--untied
echo "lora_ab: shape dim $dim, $layers layers, $heads heads / $kv kv, ffn $ffn, vocab $vocab, tied $tied;" \
     "batch $BATCH x seq $SEQ, LoRA r$R alpha $ALPHA on $TARGETS, $STEPS steps, $ROUNDS rounds" >&2
jsonl="$OUT/lora-ab.jsonl"
: > "$jsonl"
run_torch() {  # prec threads round
    echo "lora_ab: pytorch $1 ${2}t (round $3)" >&2
    local res
    # torch.set_num_threads does not reach Debian's OpenBLAS pool: without these a "1-thread"
    # PyTorch run multiplies on every core (181% CPU measured), and its figure swings with the load.
    res=$(OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$2 $py "$here/torch_train_bench.py" --dim "$dim" --layers "$layers" --heads "$heads" --kv "$kv" \
        --ffn "$ffn" --vocab "$vocab" --seq "$SEQ" --batch "$BATCH" --steps "$STEPS" --threads "$2" \
        --precision "$1" $untied_flag --lora-r "$R" --lora-alpha "$ALPHA" --lora-targets "$TARGETS" 2>/dev/null | tail -1)
    res=${res/\"impl\": \"pytorch /\"torch_version\": \"}  # keep "impl" for the side
    echo "{\"impl\": \"pytorch\", \"threads\": $2, \"round\": $3, ${res#\{}" >> "$jsonl"
}
run_lf() {  # prec threads round
    echo "lora_ab: llmforge $1 ${2}t (round $3)" >&2
    local model=$MODEL res tps rss
    [[ $1 == bf16 ]] && model=$MODEL_BF16
    res=$("$bin" train --model "$model" --data "$data" --peft lora --lora-r "$R" --lora-alpha "$ALPHA" \
        --lora-targets "$TARGETS" --seq-len "$SEQ" --batch "$BATCH" --steps "$STEPS" --lr 3e-4 --grad-clip 1 \
        --precision "$1" -t "$2" -q ${EXTRA_LF:-} 2>&1 | grep "train: done" || true)
    tps=$(sed -n 's/.*median \([0-9.]*\) tok\/s.*/\1/p' <<< "$res")
    rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' <<< "$res")
    echo "{\"impl\": \"llmforge\", \"threads\": $2, \"round\": $3, \"precision\": \"$1\", \"tokens_per_s\": ${tps:-0}, \"peak_rss_mb\": ${rss:-0}}" >> "$jsonl"
}
for prec in $PRECISIONS; do
    for th in $THREADS; do
        for ((r = 0; r < ROUNDS; r++)); do
            if ((have_torch)) && ((r % 2 == 0)); then run_torch "$prec" "$th" "$r"; fi
            run_lf "$prec" "$th" "$r"
            if ((have_torch)) && ((r % 2 == 1)); then run_torch "$prec" "$th" "$r"; fi
        done
    done
done
$py - "$jsonl" "$OUT/lora-ab.csv" <<'PY'
import collections, json, statistics as st, sys
runs = collections.defaultdict(lambda: collections.defaultdict(dict))
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["precision"], r["threads"])][r["impl"]][r["round"]] = r
med = lambda xs: st.median(xs) if xs else 0.0
rows = []
for (prec, th), v in runs.items():
    lf, pt = v.get("llmforge", {}), v.get("pytorch", {})
    lt = [x["tokens_per_s"] for x in lf.values()]
    tt = [x["tokens_per_s"] for x in pt.values()]
    pairs = [lf[k]["tokens_per_s"] / pt[k]["tokens_per_s"] for k in lf if k in pt and pt[k]["tokens_per_s"] > 0]
    rows.append(dict(precision=prec, threads=th, rounds=len(lt),
                     torch_tps=med(tt), llmforge_tps=med(lt),
                     ratio_of_medians=med(lt) / med(tt) if tt and med(tt) > 0 else 0.0,
                     median_paired_ratio=med(pairs), pairs=" ".join(f"{p:.2f}" for p in pairs),
                     torch_rss_mb=med([x["peak_rss_mb"] for x in pt.values()]),
                     llmforge_rss_mb=med([x["peak_rss_mb"] for x in lf.values()])))
with open(sys.argv[2], "w") as f:
    f.write(",".join(rows[0]) + "\n")
    for r in rows:
        f.write(",".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + "\n")
print("| precision | threads | rounds | PyTorch tok/s | llmforge tok/s | ratio of medians | median of paired ratios | each pair | PyTorch peak RSS MiB | llmforge peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['precision']} | {r['threads']} | {r['rounds']} | {r['torch_tps']:.1f} | {r['llmforge_tps']:.1f} | "
          f"{r['ratio_of_medians']:.2f}× | **{r['median_paired_ratio']:.2f}×** | {r['pairs']} | "
          f"{r['torch_rss_mb']:.0f} | {r['llmforge_rss_mb']:.0f} |")
PY
$py "$here/plot_lora_ab.py" "$OUT/lora-ab.csv" "$OUT/lora-ab.svg"
echo "lora_ab: wrote $jsonl, $OUT/lora-ab.csv and $OUT/lora-ab.svg" >&2
