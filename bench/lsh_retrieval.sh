#!/usr/bin/env bash
# Synthetic long-range key-value retrieval, 1k..16k positions (issue 18): does LSH attention keep
# the long-range retrieval of a dense model that a sliding window of the same cost loses?
#   bench/lsh_retrieval.sh [WORK]      (one thread; about 1 h of CPU on the 2-vCPU machine)
#
# Task (bench/lsh_retrieval.cpp): BOS, the 16 "key=value" tokens of a random map, filler, queries
# "Qk v"; evaluation rows hold the map at the start and 16 queries (one per key) at the end.
#  1. a dense Llama (2 layers, dim 128, 4 heads of 32, FFN 384, vocab 320, rope_theta 1e6) trained
#     in STAGES of growing length, each from the previous stage's weights: 256, 1k, 2k, 4k, 8k, 16k;
#  2. its LSH twin: from the dense 1k stage, the 2k..16k stages trained with LSH attention
#     (train --attention lsh, buckets L / BUCKET_PER, HASHES rounds, window LWIN, local LOCAL);
#  3. per length (N sequences each, 16 queries each) and per model: accuracy of dense attention,
#     of LSH (the same settings, run time Model::set_attention; the dense-trained model also with
#     MORE_HASHES rounds), and of a sliding window of W keys where W = the mean keys LSH scored per
#     query at that length (LshStats; LSH with one bucket, one round, window W, local 0) - the same cost.
# A stage whose folder holds a model is skipped. Writes docs/lsh-retrieval.{md,csv,svg}.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
RET=${LSH_RETRIEVAL_BIN:-$ROOT/build/bin/lsh_retrieval}
W=${1:-/tmp/llmforge-lsh-retrieval}
N=${N:-16}
LENGTHS=${LENGTHS:-1024,2048,4096,8192,16384}
BUCKET_PER=${BUCKET_PER:-32}
HASHES=${HASHES:-4}         # the LSH twin's training rounds
MORE_HASHES=${MORE_HASHES:-16}  # the dense-trained model is also run with this many rounds (cost vs recall)
LWIN=${LWIN:-32}
LOCAL=${LOCAL:-16}
MD=${MD:-$ROOT/docs/lsh-retrieval.md}
CSV=${CSV:-$ROOT/docs/lsh-retrieval.csv}
SVG=${SVG:-$ROOT/docs/lsh-retrieval.svg}

mkdir -p "$W"
cd "$W"
# Private copies (a rebuild meanwhile does not change a running stage); copied then renamed, so two
# runs side by side (STAGES_ONLY) do not write over a binary the other is executing.
cp "$BIN" .llmforge-bin.$$ && mv -f .llmforge-bin.$$ .llmforge-bin
cp "$RET" .lsh_retrieval-bin.$$ && mv -f .lsh_retrieval-bin.$$ .lsh_retrieval-bin
BIN=$W/.llmforge-bin
RET=$W/.lsh_retrieval-bin

cat > dense.json <<'EOF'
{"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":2,"num_attention_heads":4,
 "num_key_value_heads":4,"head_dim":32,"vocab_size":320,"max_position_embeddings":16384,"rms_norm_eps":1e-5,
 "rope_theta":1000000,"tie_word_embeddings":false}
EOF

# ---- 1./2. training stages --------------------------------------------------------------------
# from: "-" = random weights (dense.json), else the stage whose weights it continues. attn: dense, or
# lsh (buckets = length / BUCKET_PER). Rows: 16 x 256, 8 x 1k, then 8k or 16k tokens per step.
#   name  from  attn   length seqs   steps batch lr (peak -> final) warmup seed val seqs eval every batches
STAGES=(
  "d256  -     dense  256    30000  1000  16    3e-3 3e-4           50     11   300      100        8"
  "d1k   d256  dense  1024   6000   400   8     1e-3 2e-4           20     21   100      100        4"
  "d2k   d1k   dense  2048   2000   200   4     1e-3 2e-4           10     31   50       50         4"
  "d4k   d2k   dense  4096   1000   200   2     1e-3 2e-4           10     41   30       50         4"
  "d8k   d4k   dense  8192   300    120   1     1e-3 2e-4           10     51   30       30         4"
  "d16k  d8k   dense  16384  100    40    1     5e-4 1e-4           5      61   30       10         4"
  "l2k   d1k   lsh    2048   2000   200   4     1e-3 2e-4           10     31   50       50         4"
  "l4k   l2k   lsh    4096   1000   200   2     1e-3 2e-4           10     41   30       50         4"
  "l8k   l4k   lsh    8192   300    120   1     1e-3 2e-4           10     51   30       30         4"
  "l16k  l8k   lsh    16384  100    40    1     5e-4 1e-4           5      61   30       10         4"
)
STAGES_ONLY=${STAGES_ONLY:-}  # e.g. "l2k l4k": train these only (for running two chains side by side)
EVAL_ONLY=${EVAL_ONLY:-}      # e.g. "l16k": train nothing, evaluate this model only (while the other one trains)
: > commands.txt
for st in "${STAGES[@]}"; do
    read -r name from attn len nseq steps batch lr minlr warm seed nval evev evb <<< "$st"
    [ -f "train$len.u16" ] || "$RET" gen "train$len.u16" "$nseq" "$len" "$seed"
    [ -f "val$len.u16" ] || "$RET" gen "val$len.u16" "$nval" "$len" $((seed + 1))
    gen="lsh_retrieval gen train$len.u16 $nseq $len $seed; lsh_retrieval gen val$len.u16 $nval $len $((seed + 1))"
    grep -qxF "$gen" commands.txt || echo "$gen" >> commands.txt
    if [ "$from" = "-" ]; then init=(--config dense.json); else init=(--model "$from"); fi
    att=()
    [ "$attn" = lsh ] && att=(--attention lsh --lsh-buckets $((len / BUCKET_PER)) --lsh-hashes "$HASHES"
                              --lsh-window "$LWIN" --lsh-local "$LOCAL")
    TRAIN=(train "${init[@]}" "${att[@]}" --data "train$len.u16" --val-data "val$len.u16" --seq-len "$len"
           --batch "$batch" --steps "$steps" --lr "$lr" --min-lr "$minlr" --warmup-steps "$warm"
           --eval-every "$evev" --eval-batches "$evb" -t 1 -q --seed 1 --no-shuffle --save "$name"
           --log-jsonl "$name.jsonl")
    echo "llmforge ${TRAIN[*]}" >> commands.txt
    if [ -n "$EVAL_ONLY" ]; then continue; fi
    if [ -n "$STAGES_ONLY" ] && [[ " $STAGES_ONLY " != *" $name "* ]]; then continue; fi
    if [ ! -f "$name/model.safetensors" ]; then
        echo "lsh_retrieval: stage $name, $steps steps at length $len ($attn attention)" >&2
        /usr/bin/time -f "$name %U %S" -a -o train.time "$BIN" "${TRAIN[@]}" > "$name.log" 2>&1
    fi
done
[ -n "$STAGES_ONLY" ] && exit 0

# ---- 3. accuracy per length and model -------------------------------------------------------------
for m in d16k l16k; do
    base="eval -m $m --lengths $LENGTHS --n $N --csv results-$m.csv"
    EVALS=("$base --attention dense --label $m-dense")
    rounds=$HASHES
    [ "$m" = d16k ] && rounds="$HASHES $MORE_HASHES"
    for h in $rounds; do
        lsh="--lsh-buckets-per $BUCKET_PER --lsh-hashes $h --lsh-window $LWIN --lsh-local $LOCAL"
        EVALS+=("$base --attention lsh $lsh --label $m-lsh-x$h"
                "$base --attention window --window-from-lsh $lsh --label $m-window-x$h")
    done
    for e in "${EVALS[@]}"; do echo "lsh_retrieval $e" >> commands.txt; done
    if [ -n "$EVAL_ONLY" ] && [[ " $EVAL_ONLY " != *" $m "* ]]; then continue; fi
    [ -f "results-$m.done" ] && continue  # evaluated already (delete it to evaluate again)
    rm -f "results-$m.csv"
    for e in "${EVALS[@]}"; do
        # shellcheck disable=SC2086  # the command line is split on purpose
        /usr/bin/time -a -f "%U %S" -o eval.time "$RET" $e | tee -a results.txt
    done
    touch "results-$m.done"
done
[ -n "$EVAL_ONLY" ] && exit 0
{ echo "attention,length,settings,mean_keys_per_query,accuracy,correct,queries,seconds"; cat results-d16k.csv results-l16k.csv; } > results.csv
cp results.csv "$CSV"

export MD SVG N BUCKET_PER HASHES MORE_HASHES LWIN LOCAL
python3 - <<'PY'
import csv, json, math, os
env = os.environ
rows = list(csv.DictReader(open("results.csv")))
by = {}
for r in rows:
    by.setdefault(r["attention"].replace("-", " "), {})[int(r["length"])] = r
lengths = sorted(by["d16k dense"])
cpu = {}
for line in open("train.time"):
    w = line.split()
    if len(w) == 3:
        cpu[w[0]] = cpu.get(w[0], 0) + float(w[1]) + float(w[2])
cpu_eval = sum(float(x) for l in open("eval.time") for x in l.split()[:2] if x.replace(".", "").isdigit())
def final_val(name):
    v = [json.loads(l) for l in open(name + ".jsonl") if "val_loss" in l]
    return v[-1]["val_loss"] if v else float("nan")
h, h2 = env["HASHES"], env["MORE_HASHES"]
lsh = f"L/{env['BUCKET_PER']} buckets x {h} rounds, window {env['LWIN']}, local {env['LOCAL']}"
lines = [
    "# Synthetic long-range retrieval: dense vs LSH vs sliding window (bench/lsh_retrieval.sh)",
    "",
    "Task (`bench/lsh_retrieval.cpp`, raw token ids, vocabulary 320): BOS, the 16 \"key=value\" tokens of one",
    "random key -> value map (16 keys, 16 values, each pair its own token, shuffled), filler, then queries \"Qk v\"",
    "(a query-key token, then its value). Training rows: filler length uniform in 0..L/2, queries fill the rest.",
    "Evaluation rows: filler up to L, then 16 queries, one per key, so each answer's only source is about L",
    "positions back. Right = the argmax at the query key is its value (chance 1/16).",
    f"{env['N']} sequences x 16 queries per length and model (the same sequences everywhere), prompt in chunks",
    "of 512 through Model::forward, f32 KV cache, one thread.",
    "",
    "Models: Llama, 2 layers, dim 128, 4 heads of 32, FFN 384, rope_theta 1e6 (0.51 M parameters), trained in",
    "stages of growing length, each from the previous one's weights (commands below):",
    "",
    "- **d16k** (dense-trained): 256 -> 1k -> 2k -> 4k -> 8k -> 16k, dense attention throughout;",
    f"- **l16k** (its LSH twin): from the dense 1k stage, 2k -> 16k trained with LSH attention ({lsh}).",
    "",
    f"Evaluated with dense attention; with LSH (L/{env['BUCKET_PER']} buckets, window {env['LWIN']}, local {env['LOCAL']}, "
    f"{h} rounds, and for d16k also {h2} rounds;",
    "for d16k at run time only); and with a causal sliding window of W keys where W = the mean keys LSH scored",
    "per query at that length (measured by LshStats on the same sequences) - the same cost as that LSH.",
    "",
    "![accuracy vs length](lsh-retrieval.svg)",
    "",
    f"| length | d16k dense | d16k LSH x{h} | window, same cost | d16k LSH x{h2} | window, same cost | l16k LSH x{h} | "
    f"l16k window | l16k dense | keys / query: dense (mean) / LSH x{h} / LSH x{h2} |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
f = lambda k, L: f"{float(by[k][L]['accuracy']):.3f}" if L in by.get(k, {}) else "n/a"
kq = lambda k, L: f"{float(by[k][L]['mean_keys_per_query']):.1f}" if L in by.get(k, {}) else "n/a"
for L in lengths:
    lines.append(f"| {L:,} | {f('d16k dense', L)} | {f(f'd16k lsh x{h}', L)} | {f(f'd16k window x{h}', L)} | "
                 f"{f(f'd16k lsh x{h2}', L)} | {f(f'd16k window x{h2}', L)} | {f(f'l16k lsh x{h}', L)} | "
                 f"{f(f'l16k window x{h}', L)} | {f('l16k dense', L)} | "
                 f"{kq('d16k dense', L)} / {kq(f'd16k lsh x{h}', L)} / {kq(f'd16k lsh x{h2}', L)} |")
stage_cpu = ", ".join(f"{k} {v:.0f} s" for k, v in cpu.items())
if os.path.exists("notes.md"):  # remarks about this run (the work folder's notes.md)
    lines += [""] + open("notes.md").read().rstrip("\n").split("\n")
lines += ["", f"Final validation loss (at 16k): d16k {final_val('d16k'):.4f}, l16k {final_val('l16k'):.4f}. "
          f"CPU (user + sys, one thread): training {stage_cpu}; evaluation {cpu_eval:.0f} s.",
          "", "What this shows and its limits: docs/LSH.md (\"Long-range retrieval\"). Raw rows: "
          "[lsh-retrieval.csv](lsh-retrieval.csv). Commands (in the work folder; `llmforge`, `lsh_retrieval` = "
          "build/bin/):", "", "```"] + open("commands.txt").read().rstrip("\n").split("\n") + ["```", ""]
open(env["MD"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# SVG: accuracy vs length (log2 x), one line per (model, attention).
Wd, H, L0, R, T, B = 760, 420, 60, 20, 40, 50
LEG = 16 * 7 + 16  # legend rows under the plot
xa, xb = math.log2(min(lengths)) - 0.2, math.log2(max(lengths)) + 0.2
X = lambda x: L0 + (Wd - L0 - R) * (math.log2(x) - xa) / (xb - xa)
Y = lambda y: T + (H - T - B) * (1 - y)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{Wd}" height="{H + LEG}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L0}" y="22" font-size="14">Key-value retrieval accuracy vs length (16 queries per sequence, {env["N"]} sequences)</text>',
       f'<line x1="{L0}" y1="{H - B}" x2="{Wd - R}" y2="{H - B}" stroke="#333"/>',
       f'<line x1="{L0}" y1="{T}" x2="{L0}" y2="{H - B}" stroke="#333"/>']
for i in range(6):
    yv = i / 5
    svg.append(f'<text x="{L0 - 6}" y="{Y(yv) + 4:.0f}" text-anchor="end">{yv:.1f}</text>')
    svg.append(f'<line x1="{L0}" y1="{Y(yv):.0f}" x2="{Wd - R}" y2="{Y(yv):.0f}" stroke="#eee"/>')
for x in lengths:
    svg.append(f'<text x="{X(x):.0f}" y="{H - B + 16}" text-anchor="middle">{x}</text>')
svg.append(f'<text x="{(L0 + Wd - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">sequence length (positions)</text>')
series = [("d16k dense", "#555555", "", "dense-trained, dense"),
          (f"d16k lsh x{h}", "#d62728", "", f"dense-trained, LSH x{h}"),
          (f"d16k window x{h}", "#1f77b4", "", f"dense-trained, sliding window of LSH x{h}'s cost"),
          (f"d16k lsh x{h2}", "#ff7f0e", "", f"dense-trained, LSH x{h2}"),
          (f"d16k window x{h2}", "#17becf", "", f"dense-trained, sliding window of LSH x{h2}'s cost"),
          (f"l16k lsh x{h}", "#d62728", "6,4", f"LSH-trained (x{h}), LSH x{h}"),
          (f"l16k window x{h}", "#1f77b4", "6,4", f"LSH-trained, sliding window of LSH x{h}'s cost")]
for i, (k, c, dash, name) in enumerate(series):
    pts = [(x, float(by[k][x]["accuracy"])) for x in lengths if x in by.get(k, {})]
    if not pts:
        continue
    d = f' stroke-dasharray="{dash}"' if dash else ""
    svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{d} points="{" ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)}"/>')
    for x, y in pts:
        svg.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{c}"/>')
    svg.append(f'<line x1="{L0}" y1="{H + 12 + 16 * i}" x2="{L0 + 24}" y2="{H + 12 + 16 * i}" stroke="{c}" stroke-width="2"{d}/>')
    svg.append(f'<text x="{L0 + 30}" y="{H + 16 + 16 * i}" fill="{c}">{name}</text>')
svg.append(f'<line x1="{L0}" y1="{Y(1 / 16):.1f}" x2="{Wd - R}" y2="{Y(1 / 16):.1f}" stroke="#999" stroke-dasharray="3,3"/>')
svg.append(f'<text x="{L0 + 4}" y="{Y(1 / 16) + 14:.1f}" fill="#999">chance 1/16</text>')
svg.append("</svg>")
open(env["SVG"], "w").write("\n".join(svg) + "\n")
PY
echo "lsh_retrieval: wrote $MD, $CSV and $SVG" >&2
