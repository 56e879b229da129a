#!/usr/bin/env bash
# LSH-bucketed attention against dense attention in training (issue 18): two small Llamas, identical
# but for the attention, trained from random weights on the same data in the same order.
#   bench/lsh_vs_dense.sh [WORK]      (one thread by default: THREADS=1)
#
#  1. corpus: stories sampled from llama2c-stories260K (bench/stories_corpus.sh), its 512-token
#     vocabulary; held-out stories from other seeds. REUSE_DATA=DIR links an already prepared
#     corpus of that kind (DIR/data, DIR/train.txt; e.g. /tmp/mtp-run) instead of sampling one;
#  2. dense: Llama, dim 128, 4 layers, 4 heads of 32, FFN 384 (SwiGLU), vocab 512, context 512;
#  3. LSH: the same + "llmforge_attention": "lsh", 8 buckets x 2 hash rounds, window 32, local 16
#     (a query scores at most 2·32 + 16 keys of up to 512);
#  4. both: STEPS steps of batch 8 x 512 tokens, AdamW lr 3e-3 -> 3e-4 cosine, warmup 30, seed 1
#     (same batches); validation loss every 50 steps; then perplexity of each final model on the
#     held-out stories through the engine (`llmforge perplexity`, windows of 512), with dense
#     attention and with the LSH settings (--lsh-probe 16: score counts and the error probe).
# Writes docs/lsh-vs-dense.md (table, perplexity lines, commands) and docs/lsh-vs-dense.svg.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
SRC=$ASSETS/llama2c-stories260K
W=${1:-/tmp/llmforge-lsh-vs-dense}
THREADS=${THREADS:-1}
N_TRAIN=${N_TRAIN:-2400}
N_TEST=${N_TEST:-40}
STEPS=${STEPS:-600}
MD=${MD:-$ROOT/docs/lsh-vs-dense.md}
SVG=${SVG:-$ROOT/docs/lsh-vs-dense.svg}
TOK=$SRC/tok512.bin
LSH_FLAGS=(--attention lsh --lsh-buckets 8 --lsh-hashes 2 --lsh-window 32 --lsh-local 16)

# ---- 1. corpus ------------------------------------------------------------------------------
mkdir -p "$W"
if [ -n "${REUSE_DATA:-}" ] && [ ! -e "$W/data" ]; then
    ln -s "$REUSE_DATA/data" "$W/data"
    ln -s "$REUSE_DATA/train.txt" "$W/train.txt"
fi
source "$ROOT/bench/stories_corpus.sh"
stories_workdir "$W" lsh_vs_dense "$N_TRAIN"
[ -f test.txt ] || { echo "lsh_vs_dense: sampling $N_TEST held-out stories" >&2; stories 900000 "$N_TEST" test.txt; }

# ---- 2./3. the two models -------------------------------------------------------------------
cat > dense.json <<'EOF'
{"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":4,"head_dim":32,"vocab_size":512,"max_position_embeddings":512,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false}
EOF
cat > lsh.json <<'EOF'
{"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":4,"head_dim":32,"vocab_size":512,"max_position_embeddings":512,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false,
 "llmforge_attention":"lsh","lsh_n_buckets":8,"lsh_n_hashes":2,"lsh_window":32,"lsh_local":16}
EOF

COMMON=(--data data --seq-len 512 --batch 8 --steps "$STEPS" --lr 3e-3 --min-lr 3e-4 --warmup-steps 30
        --eval-every 50 --eval-batches 8 -t "$THREADS" -q --seed 1)
: > commands.txt
for arm in dense lsh; do
    cmd=("$BIN" train --config "$arm.json" "${COMMON[@]}" --save "$arm" --log-jsonl "$arm.jsonl")
    echo "llmforge train --config $arm.json ${COMMON[*]} --save $arm --log-jsonl $arm.jsonl" >> commands.txt
    [ -f "$arm/model.safetensors" ] && continue
    echo "lsh_vs_dense: training $arm, $STEPS steps" >&2
    s=$(date +%s)
    /usr/bin/time -f "%U %S" -o "$arm.cpu" "${cmd[@]}" 2> "$arm.log"
    echo $(( $(date +%s) - s )) > "$arm.seconds"
done

# ---- 4. held-out perplexity through the engine, both ways -----------------------------------
: > ppl.txt
for arm in dense lsh; do
    for how in dense lsh; do
        if [ "$how" = dense ]; then flags=(--attention dense); else flags=("${LSH_FLAGS[@]}" --lsh-probe 16); fi
        echo "llmforge perplexity -m $arm --tokenizer tok512.bin -f test.txt -c 512 -t $THREADS ${flags[*]}" >> commands.txt
        {
            echo "### model trained $arm, evaluated with $how attention"
            echo '```'
            "$BIN" perplexity -m "$arm" --tokenizer "$TOK" -f test.txt -c 512 -t "$THREADS" "${flags[@]}" 2>&1 | tr '\r' '\n' |
                grep -vE '^\s*$|window [0-9]+/[0-9]+ ppl'
            echo '```'
        } >> ppl.txt
    done
done

export STEPS MD SVG
python3 - <<'PY'
import json, os
env = os.environ
def load(arm):
    rows = [json.loads(l) for l in open(f"{arm}.jsonl") if l.strip()]
    train = [(r["step"] + 1, r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"] + 1, r["val_loss"]) for r in rows if "val_loss" in r]
    tps = sorted(r["tokens_per_s"] for r in rows if "tokens_per_s" in r)
    return train, val, tps[len(tps) // 2] if tps else 0
arms = {a: load(a) for a in ("dense", "lsh")}
def num(f):
    return open(f).read().split() if os.path.exists(f) else ["0", "0"]
secs = {a: open(f"{a}.seconds").read().strip() if os.path.exists(f"{a}.seconds") else "?" for a in arms}
cpu = {a: sum(float(x) for x in num(f"{a}.cpu")) for a in arms}
dv, lv = dict(arms["dense"][1]), dict(arms["lsh"][1])
lines = [
    "# LSH vs dense attention in training (bench/lsh_vs_dense.sh)",
    "",
    f"Two Llamas (dim 128, 4 layers, 4 heads of 32, FFN 384, vocab 512), identical but for the attention, trained",
    f"from random weights for {env['STEPS']} steps of 8 x 512 tokens of TinyStories-style text sampled from stories260K,",
    "same seed (same initial weights and batches), AdamW 3e-3 -> 3e-4 cosine, one CPU thread each. LSH: 8 buckets x 2",
    "hash rounds, window 32, local 16 (a query scores at most 2 x 32 + 16 = 80 keys of up to 512).",
    "",
    "## Validation loss at equal steps (8 batches of 8 x 512 tokens)",
    "",
    "| step | dense | LSH | gap (LSH - dense) |",
    "|---|---|---|---|",
]
for s in sorted(set(dv) & set(lv)):
    lines.append(f"| {s} | {dv[s]:.4f} | {lv[s]:.4f} | {lv[s] - dv[s]:+.4f} |")
lines += ["", "| model | median train tokens/s | wall s | CPU s (user+sys) |", "|---|---|---|---|"]
for a in arms:
    lines.append(f"| {a} | {arms[a][2]:.0f} | {secs[a]} | {cpu[a]:.0f} |")
lines += ["", "## Held-out perplexity through the engine (`llmforge perplexity`, windows of 512)", "",
          "Each final model evaluated with dense attention and with the LSH settings above (`--lsh-probe 16`:",
          "query-key scores computed, and on every 16th position LSH compared with dense attention).", ""]
lines += open("ppl.txt").read().rstrip("\n").split("\n")
lines += ["", "## Commands (in the work folder; `llmforge` = a copy of build/bin/llmforge)", "", "```"]
lines += open("commands.txt").read().rstrip("\n").split("\n")
lines += ["```", ""]
open(env["MD"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
def ema(xs, k=0.9):
    out, s = [], None
    for x, y in xs:
        s = y if s is None else k * s + (1 - k) * y
        out.append((x, s))
    return out
W, H, L, R, T, B = 760, 420, 60, 20, 40, 50
allp = [p for a in arms for p in ema(arms[a][0])[5:] + arms[a][1]]
x1 = max(p[0] for p in allp); y0 = min(p[1] for p in allp)
y1 = max(p[1] for p in allp if p[0] >= x1 / 10)
y0, y1 = y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)
X = lambda x: L + (W - L - R) * x / x1
Y = lambda y: T + (H - T - B) * (1 - (y - y0) / (y1 - y0))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="22" font-size="14">Loss: LSH attention (8 buckets x 2, window 32, local 16) vs dense, seq 512</text>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#333"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#333"/>']
for i in range(6):
    yv = y0 + (y1 - y0) * i / 5
    svg.append(f'<text x="{L - 6}" y="{Y(yv) + 4:.0f}" text-anchor="end">{yv:.2f}</text>')
    svg.append(f'<line x1="{L}" y1="{Y(yv):.0f}" x2="{W - R}" y2="{Y(yv):.0f}" stroke="#eee"/>')
for i in range(5):
    xv = x1 * i / 4
    svg.append(f'<text x="{X(xv):.0f}" y="{H - B + 16}" text-anchor="middle">{xv:.0f}</text>')
svg.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">step</text>')
colors = {"dense": "#999999", "lsh": "#d62728"}
names = {"dense": "dense attention", "lsh": "LSH attention"}
for a in arms:
    pts = " ".join(f"{X(x):.1f},{Y(min(y, y1)):.1f}" for x, y in ema(arms[a][0])[5:])
    svg.append(f'<polyline fill="none" stroke="{colors[a]}" stroke-width="1.5" points="{pts}"/>')
    vp = " ".join(f"{X(x):.1f},{Y(min(y, y1)):.1f}" for x, y in arms[a][1])
    svg.append(f'<polyline fill="none" stroke="{colors[a]}" stroke-width="1" stroke-dasharray="4,3" points="{vp}"/>')
    for x, y in arms[a][1]:
        svg.append(f'<circle cx="{X(x):.1f}" cy="{Y(min(y, y1)):.1f}" r="3.5" fill="{colors[a]}"/>')
for i, a in enumerate(arms):
    svg.append(f'<text x="{W - R - 260}" y="{T + 20 + 16 * i}" fill="{colors[a]}">— {names[a]} (train, EMA) ● validation</text>')
svg.append("</svg>")
open(env["SVG"], "w").write("\n".join(svg) + "\n")
PY
echo "lsh_vs_dense: wrote $MD and $SVG" >&2
