#!/usr/bin/env bash
# Multi-token prediction as a speculative draft, measured on a trained model (issue 17, item 5).
# Run under the heavy lock: flock /tmp/llmforge-heavy.lock bench/mtp_speculative.sh [WORK]
#
#  1. corpus: stories sampled from the TinyStories model llama2c-stories260K (bench/stories_corpus.sh,
#     the same as bench/moe_vs_dense.sh), its 512-token vocabulary;
#  2. model: moe_vs_dense.sh's DeepSeek-V3 layout (MLA, a dense first layer, 3 DeepSeekMoE layers of
#     8 routed experts top-2 + 1 shared) plus V3's MTP module (num_nextn_predict_layers 1), trained
#     from random weights with the MTP loss (--mtp-lambda LAMBDA, V3's 0.3 by default);
#  3. plain greedy decoding against `generate --speculative mtp` (the MTP module drafts token t+2
#     from the main model's last hidden state, the main model verifies both in one forward) at 1 and
#     2 threads, through bench/speculative_bench.sh: acceptance, tokens per main-model forward,
#     speed-up, and the speculative text checked byte-identical to the plain one.
# Writes WORK/results.md. CPU: about 10 minutes on 2 quiet cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LLMFORGE_BIN:-$ROOT/build/bin/llmforge}
ASSETS=${LLMFORGE_ASSETS:-/work/shared/assets}
SRC=$ASSETS/llama2c-stories260K
W=${1:-/tmp/llmforge-mtp-speculative}
N_TRAIN=${N_TRAIN:-2400}
STEPS=${STEPS:-1200}
LAMBDA=${LAMBDA:-0.3}
TOK=$SRC/tok512.bin

source "$ROOT/bench/stories_corpus.sh"
stories_workdir "$W" mtp_speculative "$N_TRAIN"

cat > mtp.json <<'JSON'
{"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":512,"hidden_size":128,
 "intermediate_size":384,"moe_intermediate_size":128,"num_hidden_layers":4,"num_attention_heads":4,
 "num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":1.0,"kv_lora_rank":64,
 "q_lora_rank":null,"qk_rope_head_dim":16,"qk_nope_head_dim":32,"v_head_dim":32,"topk_method":"noaux_tc","n_group":1,
 "topk_group":1,"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
 "scoring_func":"sigmoid","max_position_embeddings":512,"rms_norm_eps":1e-5,"rope_theta":10000,
 "tie_word_embeddings":false,"hidden_act":"silu","num_nextn_predict_layers":1}
JSON
if [ ! -f model/model.safetensors ]; then
    echo "mtp_speculative: training, $STEPS steps, --mtp-lambda $LAMBDA" >&2
    "$BIN" train --config mtp.json --data data --seq-len 128 --batch 16 --steps "$STEPS" --lr 3e-3 --min-lr 3e-4 \
        --warmup-steps 30 --eval-every 200 --eval-batches 8 -t 2 -q --seed 1 --mtp-lambda "$LAMBDA" \
        --save model --log-jsonl train.jsonl 2> train.log
fi
last=$(grep '"mtp_loss"' train.jsonl | tail -1 || true)

{
    echo "MTP speculative decoding (bench/mtp_speculative.sh): a DeepSeek-V3-shaped model (MLA + MoE + 1 MTP"
    echo "module) trained $STEPS steps on stories sampled from stories260K, --mtp-lambda $LAMBDA."
    echo "Last training log line with the MTP loss: \`$last\`"
    for t in 1 2; do
        echo
        echo "### $t thread(s)"
        THREADS=$t KS=1 N=${N:-256} ROUNDS=${ROUNDS:-5} LF="$BIN" TOKENIZER="$TOK" \
            "$ROOT/bench/speculative_bench.sh" model mtp
    done
} | tee results.md
