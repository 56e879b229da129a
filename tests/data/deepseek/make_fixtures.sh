#!/usr/bin/env bash
# How the files here were made (run by hand, never by the tests). The logits are llama.cpp's
# (c392e5094, build 4748), computed by bench/llamacpp_logits.cc (f32 K/V cache, one batch, no BOS);
# tests/model/deepseek_llamacpp_test.cpp runs the same ids through llmforge and compares.
#   v3.gguf       DeepSeek-V3 shape (v3.json: q_lora, sigmoid noaux_tc routing with a selection
#                 bias, norm_topk_prob, routed scale 2.5, 1 shared expert, a dense first layer,
#                 yarn factor 4 with mscale_all_dim 1), f32; the selection bias is random (init-model
#                 writes zeros) so that llama.cpp's exp_probs_b path is exercised
#   lite.gguf     DeepSeek-V2-Lite shape (lite.json: 27 layers, which llama.cpp takes as V2-Lite: no
#                 q_lora; softmax greedy routing, 2 shared experts, no yarn), f32, hidden 16 to stay small
#   v3-q8_0.gguf  llama-quantize Q8_0 of the v3q.json shape (nope and kv_lora 32, so llmforge keeps
#                 the absorbed W_UK^T / W_UV in q8_0 too; 3-D q8_0 expert tensors)
#   mix_types.json  llama-quantize's type for every tensor of the 27-layer mix.json shape (f32 from
#                 init-model) in 11 file types, for tests/cli/deepseek_quantize_cli_test.cpp
#   v3-lora/      a random PEFT LoRA adapter over v3.gguf (make_lora.py: o_proj, the dense MLP, the shared
#                 expert and every routed expert); v3-lora.logits.f32: llama.cpp with the GGUF LoRA that
#                 `llmforge convert --adapter` makes of it (LLAMACPP_LOGITS_LORA)
#   *.ids         the token ids (48, random, seeded); *.logits.f32  (48, vocab) float32 little-endian
# Usage: make_fixtures.sh LLMFORGE_BIN [LLAMA_CPP_BIN_DIR]   (also builds /tmp/llamacpp_logits)
set -euo pipefail
lf=${1:?llmforge binary}; bin=${2:-/work/llamacpp-build/bin}
here=$(cd "$(dirname "$0")" && pwd)
ll=$("$here/../../../bench/build_llamacpp_logits.sh" /tmp/llamacpp_logits)
cd "$here"
ids() { python3 -c "import random; r=random.Random($1); print(' '.join(str(r.randrange($2)) for _ in range(48)))"; }

"$lf" init-model --hf-config v3.json --seed 3 -o v3.gguf
python3 gguf_randomize.py v3.gguf 'exp_probs_b' 0.5 7
ids 1 300 > v3.ids

"$lf" init-model --hf-config lite.json --seed 5 -o lite.gguf
ids 2 300 > lite.ids

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$lf" init-model --hf-config v3q.json --seed 11 -o "$tmp/v3q-f32.gguf"
python3 gguf_randomize.py "$tmp/v3q-f32.gguf" 'exp_probs_b' 0.5 13
"$bin/llama-quantize" "$tmp/v3q-f32.gguf" v3-q8_0.gguf Q8_0 2 > "$tmp/q.log" 2>&1 || { cat "$tmp/q.log"; exit 1; }
ids 3 320 > v3-q8_0.ids

for m in v3 lite v3-q8_0; do
  "$ll" "$m.gguf" "$(cat "$m.ids")" "$m.logits.f32" 1
done
# A PEFT LoRA adapter over v3.gguf (o_proj, MLPs, every routed expert), run by llama.cpp as the GGUF
# LoRA llmforge's `convert --adapter` writes.
rm -rf v3-lora && python3 make_lora.py v3.json v3-lora 4 8 0.05 17
"$lf" convert --adapter v3-lora -m v3.gguf -o "$tmp/v3-lora.gguf"
LLAMACPP_LOGITS_LORA="$tmp/v3-lora.gguf" "$ll" v3.gguf "$(cat v3.ids)" v3-lora.logits.f32 1
"$lf" init-model --hf-config mix.json --seed 1 -o "$tmp/mix-f32.gguf"
# tensor name -> type of a GGUF file (stdlib only)
types() { python3 - "$1" <<'PY'
import json, struct, sys
data = open(sys.argv[1], 'rb').read(); pos = 4
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
NAMES = {0: 'f32', 1: 'f16', 2: 'q4_0', 3: 'q4_1', 6: 'q5_0', 7: 'q5_1', 8: 'q8_0', 10: 'q2_k', 11: 'q3_k',
         12: 'q4_k', 13: 'q5_k', 14: 'q6_k', 30: 'bf16'}
def take(f):
    global pos
    v = struct.unpack_from('<' + f, data, pos)[0]; pos += struct.calcsize('<' + f); return v
def string():
    global pos
    n = take('Q'); s = data[pos:pos + n].decode(); pos += n; return s
def skip(t):
    global pos
    if t == 8: string()
    elif t == 9:
        et, n = take('I'), take('Q')
        for _ in range(n): skip(et)
    else: pos += SIZES[t]
take('I'); nt = take('Q'); nkv = take('Q')
for _ in range(nkv): string(); skip(take('I'))
out = {}
for _ in range(nt):
    name = string(); nd = take('I'); [take('Q') for _ in range(nd)]; t = take('I'); take('Q'); out[name] = NAMES[t]
print(json.dumps(out, sort_keys=True, separators=(',', ':')))
PY
}
{
  printf '{"types":{'
  sep=
  for t in q2_k q3_k_s q3_k_m q3_k_l q4_0 q4_k_s q4_k_m q5_k_s q5_k_m q6_k q8_0; do
    "$bin/llama-quantize" "$tmp/mix-f32.gguf" "$tmp/mix-q.gguf" "$(echo "$t" | tr a-z A-Z)" 2 > "$tmp/q.log" 2>&1 ||
      { cat "$tmp/q.log" >&2; exit 1; }
    printf '%s\n"%s":%s' "$sep" "$t" "$(types "$tmp/mix-q.gguf")"
    sep=,
  done
  printf '}}\n'
} > mix_types.json
ls -l "$here"
