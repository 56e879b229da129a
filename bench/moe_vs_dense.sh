#!/usr/bin/env bash
# A DeepSeek-shaped MoE (MLA + DeepSeekMoE) against a dense Llama with the same ACTIVE parameter
# count, trained from random weights on the same data in the same order (issue 17, item 4).
# Run under the heavy lock: flock /tmp/llmforge-heavy.lock bench/moe_vs_dense.sh [WORK]
#
#  1. corpus: stories sampled from the TinyStories model llama2c-stories260K (bench/stories_corpus.sh),
#     its 512-token vocabulary; held-out stories from other seeds;
#  2. dense: Llama, dim 128, 4 layers, 4 heads, FFN 384 (SwiGLU), untied head;
#  3. MoE: DeepSeek-V3 layout at the same width: MLA (kv_lora_rank 64, rope 16 + nope 32 per head,
#     values 32, queries straight from the hidden state), layer 0 dense (FFN 384), layers 1-3
#     DeepSeekMoE: 8 routed experts of width 128, top-2, sigmoid gating with V3's selection bias
#     (aux-loss-free balancing, --moe-bias-gamma default 0.001) + 1 shared expert of width 128. A
#     token's FFN work is 3 experts of 128 = one dense FFN of 384, and MLA's projections are about
#     the size of the dense attention: the same active parameters per token (printed), 1.9x the
#     total;
#  4. both: STEPS steps of batch 16 x 128 tokens, AdamW lr 3e-3 -> 3e-4 cosine, warmup 30, the same
#     seed (same batches); validation loss every 100 steps; perplexity of each on the held-out
#     stories through the engine (`llmforge perplexity`, windows of 128).
# Writes WORK/results.md and the loss curves to docs/moe-vs-dense.svg. CPU: about 9 minutes on 2 quiet
# cores (3 to sample the corpus; the MoE model trains at about 2/3 of the dense model's tokens/s).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
SRC=$ASSETS/llama2c-stories260K
W=${1:-/tmp/llmforge-moe-vs-dense}
THREADS=${THREADS:-2}
N_TRAIN=${N_TRAIN:-2400}
N_TEST=${N_TEST:-100}
STEPS=${STEPS:-1200}
SVG=${SVG:-$ROOT/docs/moe-vs-dense.svg}
TOK=$SRC/tok512.bin

# ---- 1. corpus ------------------------------------------------------------------------------
source "$ROOT/bench/stories_corpus.sh"
stories_workdir "$W" moe_vs_dense "$N_TRAIN"
[ -f test.txt ] || { echo "moe_vs_dense: sampling $N_TEST held-out stories" >&2; stories 900000 "$N_TEST" test.txt; }

# ---- 2./3. the two models -------------------------------------------------------------------
cat > dense.json <<'EOF'
{"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":256,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false}
EOF
cat > moe.json <<'EOF'
{"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":512,"hidden_size":128,
 "intermediate_size":384,"moe_intermediate_size":128,"num_hidden_layers":4,"num_attention_heads":4,
 "num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":1.0,"kv_lora_rank":64,
 "q_lora_rank":null,"qk_rope_head_dim":16,"qk_nope_head_dim":32,"v_head_dim":32,"topk_method":"noaux_tc","n_group":1,
 "topk_group":1,"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
 "scoring_func":"sigmoid","max_position_embeddings":256,"rms_norm_eps":1e-5,"rope_theta":10000,
 "tie_word_embeddings":false,"hidden_act":"silu"}
EOF
# Parameters: total and active per token (routed experts not chosen left out), from the configs.
python3 - > params.txt <<'PY'
import json
d = json.load(open("dense.json")); m = json.load(open("moe.json"))
C, V = d["hidden_size"], d["vocab_size"]
def dense_layer(c):
    return 4 * C * C + 3 * C * c["intermediate_size"] + 2 * C
dense = 2 * V * C + C + d["num_hidden_layers"] * dense_layer(d)
H, r, R, nope, v = m["num_attention_heads"], m["kv_lora_rank"], m["qk_rope_head_dim"], m["qk_nope_head_dim"], m["v_head_dim"]
mla = C * H * (nope + R) + C * (r + R) + r + r * H * (nope + v) + H * v * C
E, K, F, S = m["n_routed_experts"], m["num_experts_per_tok"], m["moe_intermediate_size"], m["n_shared_experts"]
L, k0 = m["num_hidden_layers"], m["first_k_dense_replace"]
moe_total = 2 * V * C + C + L * (mla + 2 * C) + k0 * 3 * C * m["intermediate_size"] + \
    (L - k0) * (E * C + E + E * 3 * C * F + S * 3 * C * F)
moe_active = moe_total - (L - k0) * (E - K) * 3 * C * F
print(f"dense_total={dense} dense_active={dense} moe_total={moe_total} moe_active={moe_active}")
PY
source params.txt
echo "moe_vs_dense: dense $dense_total parameters; MoE $moe_total total, $moe_active active per token" >&2

COMMON=(--data data --seq-len 128 --batch 16 --steps "$STEPS" --lr 3e-3 --min-lr 3e-4 --warmup-steps 30
        --eval-every 100 --eval-batches 8 -t "$THREADS" -q --seed 1)
for arm in dense moe; do
    [ -f "$arm/model.safetensors" ] && continue
    echo "moe_vs_dense: training $arm, $STEPS steps" >&2
    s=$(date +%s)
    "$BIN" train --config "$arm.json" "${COMMON[@]}" --save "$arm" --log-jsonl "$arm.jsonl" 2> "$arm.log"
    echo $(( $(date +%s) - s )) > "$arm.seconds"
done

# ---- 4. held-out perplexity through the engine, table, curves --------------------------------
ppl() {
    "$BIN" perplexity -m "$1" --tokenizer "$TOK" -f test.txt -c 128 -t "$THREADS" 2>&1 |
        grep -oiE 'perplexity[^0-9]*[0-9]+\.[0-9]+' | grep -oE '[0-9]+\.[0-9]+' | tail -1
}
P_DENSE=$(ppl dense) P_MOE=$(ppl moe)
export P_DENSE P_MOE STEPS dense_total moe_total moe_active SVG
python3 - <<'PY'
import json, os
def load(arm):
    rows = [json.loads(l) for l in open(f"{arm}.jsonl") if l.strip()]
    train = [(r["step"] + 1, r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"] + 1, r["val_loss"]) for r in rows if "val_loss" in r]
    cv = [r["moe_load_cv"] for r in rows if "moe_load_cv" in r]
    tps = sorted(r["tokens_per_s"] for r in rows if "tokens_per_s" in r)
    return train, val, cv, tps[len(tps) // 2] if tps else 0
arms = {a: load(a) for a in ("dense", "moe")}
secs = {a: int(open(f"{a}.seconds").read()) if os.path.exists(f"{a}.seconds") else 0 for a in arms}
env = os.environ
def ema(xs, k=0.9):
    out, s = [], None
    for x, y in xs:
        s = y if s is None else k * s + (1 - k) * y
        out.append((x, s))
    return out
lines = [
    f"MoE vs dense at equal active parameters (bench/moe_vs_dense.sh): {env['STEPS']} steps x 2048 tokens of",
    "TinyStories-style text sampled from stories260K (vocab 512), same batches; CPU, 2 threads.",
    "",
    "| model | parameters (total / active) | final train loss (EMA) | final val loss | held-out ppl | tokens/s (median) | wall s |",
    "|---|---|---|---|---|---|---|",
]
for a, label, tot, act, p in (("dense", "dense Llama (dim 128, 4 layers, FFN 384)", env["dense_total"], env["dense_total"], env["P_DENSE"]),
                              ("moe", "DeepSeek MLA + MoE (8 experts top-2 + 1 shared)", env["moe_total"], env["moe_active"], env["P_MOE"])):
    train, val, cv, tps = arms[a]
    lines.append(f"| {label} | {int(tot):,} / {int(act):,} | {ema(train)[-1][1]:.4f} | {val[-1][1]:.4f} | {p} | {tps:.0f} | {secs[a]} |")
cv = arms["moe"][2]
if cv:
    lines += ["", f"MoE expert load CV (tokens per expert, mean over MoE layers): first step {cv[0]:.3f}, "
              f"mean of the last 20 steps {sum(cv[-20:]) / len(cv[-20:]):.3f}."]
open("results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# SVG: training loss (EMA, lines) and validation loss (dots) of both.
W, H, L, R, T, B = 760, 420, 60, 20, 40, 50
allp = [p for a in arms for p in ema(arms[a][0])[5:] + arms[a][1]]
x1 = max(p[0] for p in allp); y0 = min(p[1] for p in allp)
y1 = max(p[1] for p in allp if p[0] >= x1 / 10)  # the first tenth (from ln 512) would flatten the rest
y0, y1 = y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)
X = lambda x: L + (W - L - R) * x / x1
Y = lambda y: T + (H - T - B) * (1 - (y - y0) / (y1 - y0))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="22" font-size="14">Loss: DeepSeek MoE vs dense Llama, equal active parameters '
       f'({int(env["moe_active"]):,} vs {int(env["dense_total"]):,})</text>',
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
colors = {"dense": "#999999", "moe": "#1f77b4"}
names = {"dense": "dense Llama", "moe": "DeepSeek MLA + MoE"}
for a in arms:
    pts = " ".join(f"{X(x):.1f},{Y(min(y, y1)):.1f}" for x, y in ema(arms[a][0])[5:])
    svg.append(f'<polyline fill="none" stroke="{colors[a]}" stroke-width="1.5" points="{pts}"/>')
    for x, y in arms[a][1]:
        svg.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{colors[a]}"/>')
for i, a in enumerate(arms):
    svg.append(f'<text x="{W - R - 260}" y="{T + 20 + 16 * i}" fill="{colors[a]}">— {names[a]} (train, EMA) ● validation</text>')
svg.append("</svg>")
open(env["SVG"], "w").write("\n".join(svg) + "\n")
PY
echo "moe_vs_dense: wrote $W/results.md and $SVG" >&2
