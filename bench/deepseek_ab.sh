#!/usr/bin/env bash
# DeepSeek MoE (deepseek2) speed and memory: llmforge vs llama.cpp on the same GGUF files.
#
# The model: random weights in a DeepSeek-V2-Lite-like shape scaled to this machine (27 layers, so
# llama.cpp c392e5094 takes its V2-Lite path: no q_lora; 64 routed experts, 6 used, 2 shared,
# expert ffn 512, hidden 768, 8 heads, MLA kv_lora_rank 512 / rope 64 / nope 128 / v 128, a dense
# first layer): 2.18 B parameters, 0.40 B (18%) active per token. Made with init-model (q8_0)
# and llmforge quantize (q4_k_m from it; both tools run the same files).
#
# Per round, type and thread count: `llama-bench -p NP -n 0` / `-p 0 -n NG` and `llmforge bench`
# with the same arguments, back to back (medians over rounds; the machine is noisy). Then:
#   - decode bandwidth: bytes of weights read per generated token (all non-expert matrices, the
#     used share of the routed experts, one embedding row) x tg t/s, against a streaming-read probe
#     of this machine (same thread count);
#   - memory at CTX tokens: KV bytes per token (llama.cpp caches full K/V per head in f16,
#     27 x H x (192 + 128) x 2 B; llmforge the MLA latent, 27 x (512 + 64) x 4 B in f32) and the
#     peak RSS of a CTX-token prefill in each engine (/usr/bin/time; weights are mmapped in both);
#   - PERF=1: `perf record` of llmforge's pp and tg (first type, first thread count), top symbols.
#
# Usage: bench/deepseek_ab.sh        env: TYPES="q8_0 q4_k_m" THREADS="1 2" ROUNDS=3 REPS=3
#          NP=512 NG=128 CTX=4096 (0: skip memory) PERF=0 WORK=/tmp/deepseek_ab LF=... LLAMA_BIN=...
#          shape: HIDDEN=768 LAYERS=27 HEADS=8 EXPERTS=64 USED=6 SHARED=2 MOE_FF=512 DENSE_FF=4096
# Output: a markdown table on stdout, raw lines and $WORK/deepseek_ab.csv (scripts/plot_bench.sh's
# columns) + $WORK/deepseek_ab.svg.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
LF=${LF:-$root/build/bin/llmforge}
LLAMA_BIN=${LLAMA_BIN:-/work/llamacpp-build/bin}
WORK=${WORK:-/tmp/deepseek_ab}
TYPES=${TYPES:-"q8_0 q4_k_m"}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
NP=${NP:-512}
NG=${NG:-128}
CTX=${CTX:-4096}
PERF=${PERF:-0}
HIDDEN=${HIDDEN:-768} LAYERS=${LAYERS:-27} HEADS=${HEADS:-8} EXPERTS=${EXPERTS:-64} USED=${USED:-6}
SHARED=${SHARED:-2} MOE_FF=${MOE_FF:-512} DENSE_FF=${DENSE_FF:-4096}
VOCAB_FROM=${VOCAB_FROM:-/work/models/110m-q8_0.gguf}  # a 32000-token llama vocabulary
mkdir -p "$WORK"
raw=$WORK/raw.txt
: > "$raw"
tag="${HIDDEN}h-${LAYERS}l-${EXPERTS}e${USED}"

# --- models ------------------------------------------------------------------------------------
cat > "$WORK/config.json" <<EOF
{"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2","vocab_size":32000,"hidden_size":$HIDDEN,
"intermediate_size":$DENSE_FF,"moe_intermediate_size":$MOE_FF,"num_hidden_layers":$LAYERS,"num_attention_heads":$HEADS,
"num_key_value_heads":$HEADS,"n_shared_experts":$SHARED,"n_routed_experts":$EXPERTS,"routed_scaling_factor":1.0,
"kv_lora_rank":512,"q_lora_rank":null,"qk_rope_head_dim":64,"v_head_dim":128,"qk_nope_head_dim":128,
"topk_method":"greedy","n_group":1,"topk_group":1,"num_experts_per_tok":$USED,"moe_layer_freq":1,
"first_k_dense_replace":1,"norm_topk_prob":false,"scoring_func":"softmax","max_position_embeddings":8192,
"rms_norm_eps":1e-6,"rope_theta":10000,"tie_word_embeddings":false,"hidden_act":"silu"}
EOF
model() { echo "$WORK/ds-$tag-$1.gguf"; }
vf=(); [ -f "$VOCAB_FROM" ] && vf=(--vocab-from "$VOCAB_FROM")
if [ ! -f "$(model q8_0)" ]; then
  echo "making $(model q8_0)" >&2
  "$LF" init-model --hf-config "$WORK/config.json" "${vf[@]}" --type q8_0 --seed 1 -o "$(model q8_0)" >/dev/null
fi
for t in $TYPES; do
  if [ ! -f "$(model "$t")" ]; then
    echo "making $(model "$t")" >&2
    "$LF" quantize -q -m "$(model q8_0)" --type "$t" -o "$(model "$t")" >/dev/null
  fi
done
"$LF" info -m "$(model q8_0)" 2>/dev/null | grep -E "active/token|parameters:|kv f32" >&2 || true

# --- streaming-read bandwidth probe ------------------------------------------------------------
cat > "$WORK/stream_read.c" <<'EOF'
// stream_read THREADS: GB/s of summing a 1 GiB buffer (after a first pass that faults it in),
// best of 5, the buffer split across THREADS threads.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
enum { N = 1 << 28 };  // floats
static float* buf;
static int nt;
static double sums[64];
static void* run(void* arg) {
  long i = (long)arg, b = (long)N / nt * i, e = (long)N / nt * (i + 1);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long j = b; j < e; j += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + j));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(buf + j + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + j + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(buf + j + 48));
  }
  sums[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  return NULL;
}
int main(int argc, char** argv) {
  nt = argc > 1 ? atoi(argv[1]) : 1;
  buf = aligned_alloc(64, (size_t)N * 4);
  memset(buf, 1, (size_t)N * 4);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[64];
    for (long i = 0; i < nt; ++i) pthread_create(&th[i], NULL, run, (void*)i);
    for (int i = 0; i < nt; ++i) pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if ((double)N * 4 / s / 1e9 > best) best = (double)N * 4 / s / 1e9;
  }
  printf("%.2f\n", best + 0 * sums[0]);
  return 0;
}
EOF
cc -O2 -mavx512f -pthread -o "$WORK/stream_read" "$WORK/stream_read.c"
declare -A bw
for t in $THREADS; do bw[$t]=$("$WORK/stream_read" "$t"); echo "stream read, $t thread(s): ${bw[$t]} GB/s" >&2; done

# --- bytes of weights read per generated token -------------------------------------------------
active_bytes() {
  python3 - "$1" "$USED" "$EXPERTS" <<'PY'
import struct, sys
path, used, experts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BLK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 10: (256, 84),
       11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
data = open(path, 'rb').read(1 << 22); pos = 4
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
total = 0.0
for _ in range(nt):
    name = string(); nd = take('I'); dims = [take('Q') for _ in range(nd)]; t = take('I'); take('Q')
    n = 1
    for d in dims: n *= d
    blk, size = BLK[t]
    b = n / blk * size
    if name == 'token_embd.weight': b /= dims[1]  # one row
    elif '_exps.' in name: b *= used / experts
    total += b
print(int(total))
PY
}

# --- speed -------------------------------------------------------------------------------------
value() { grep -E " (pp$NP|tg$NG) +\|" | tail -1 | awk -F'|' '{print $(NF-1)}' | awk '{print $1}'; }
for round in $(seq 1 "$ROUNDS"); do
  for ty in $TYPES; do
    f=$(model "$ty")
    for t in $THREADS; do
      for test in pp tg; do
        if [ "$test" = pp ]; then a=(-p "$NP" -n 0); else a=(-p 0 -n "$NG"); fi
        # which engine goes first alternates with the round
        if (( round % 2 )); then
          vo=$("$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value)
          vl=$("$LLAMA_BIN/llama-bench" -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value)
        else
          vl=$("$LLAMA_BIN/llama-bench" -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value)
          vo=$("$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value)
        fi
        echo "$ty $t $test ${vo:-nan} ${vl:-nan}" | tee -a "$raw" >&2
      done
    done
  done
done

declare -A abytes
for ty in $TYPES; do abytes[$ty]=$(active_bytes "$(model "$ty")"); done
bwlist=""; for t in $THREADS; do bwlist="$bwlist $t=${bw[$t]}"; done
ablist=""; for ty in $TYPES; do ablist="$ablist $ty=${abytes[$ty]}"; done

echo
echo "DeepSeek-V2-Lite-like $tag (27 layers = llama.cpp's V2-Lite path), $ROUNDS rounds x $REPS reps, medians"
echo
echo "| type | threads | test | llmforge t/s | llama.cpp t/s | llmforge/llama.cpp | weights read/token | llmforge GB/s (% of stream) | llama.cpp GB/s (% of stream) |"
echo "|---|---|---|---|---|---|---|---|---|"
python3 - "$raw" "$tag" "$WORK/deepseek_ab.csv" "$NP" "$NG" "$bwlist" "$ablist" <<'PY'
import sys, statistics as st, collections
raw, tag, csv, NP, NG = sys.argv[1:6]
bw = dict(x.split('=') for x in sys.argv[6].split())
ab = dict(x.split('=') for x in sys.argv[7].split())
rows = collections.OrderedDict()
for line in open(raw):
    f = line.split()
    if len(f) != 5: continue
    rows.setdefault(tuple(f[:3]), []).append((float(f[3]), float(f[4])))
out = open(csv, 'w')
out.write("engine,shape,type,threads,mmap,test,mean,sd\n")
for (ty, t, test), v in rows.items():
    o = st.median(x[0] for x in v); l = st.median(x[1] for x in v)
    name = f"pp{NP}" if test == "pp" else f"tg{NG}"
    extra = "| | |"
    gb = int(ab[ty]) / 1e9
    if test == "tg":
        b = float(bw[t])
        extra = f" {gb * 1000:.0f} MB | {gb * o:.1f} ({100 * gb * o / b:.0f}%) | {gb * l:.1f} ({100 * gb * l / b:.0f}%) |"
    else:
        extra = " | | |"
    print(f"| {ty} | {t} | {name} | {o:.2f} | {l:.2f} | {o / l:.2f} |{extra}")
    out.write(f"llmforge,ds-{tag},{ty},{t},1,{name},{o:.2f},\n")
    out.write(f"llama.cpp,ds-{tag},{ty},{t},1,{name},{l:.2f},\n")
PY
"$root/scripts/plot_bench.sh" "$WORK/deepseek_ab.csv" "$WORK/deepseek_ab.svg" 2>/dev/null || true
echo
echo "stream read GB/s:$bwlist   (csv: $WORK/deepseek_ab.csv, svg: $WORK/deepseek_ab.svg)"

# --- memory at CTX tokens ----------------------------------------------------------------------
if [ "$CTX" -gt 0 ]; then
  ty=$(echo "$TYPES" | awk '{print $1}')
  f=$(model "$ty")
  t=$(echo "$THREADS" | awk '{print $NF}')
  rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
  ro=$(rss "$LF" bench -m "$f" -p "$CTX" -n 0 -r 1 -t "$t")
  rl=$(rss "$LLAMA_BIN/llama-bench" -m "$f" -p "$CTX" -n 0 -r 1 -t "$t")
  kv_o=$(( LAYERS * (512 + 64) * 4 ))
  kv_l=$(( LAYERS * HEADS * (192 + 128) * 2 ))
  echo
  echo "| memory at $CTX tokens ($ty) | llmforge | llama.cpp |"
  echo "|---|---|---|"
  echo "| KV bytes per token | $kv_o (MLA latent 512+64, f32) | $kv_l (K 192 + V 128 per head, f16) |"
  echo "| KV cache at $CTX tokens | $(( kv_o * CTX / 1048576 )) MiB | $(( kv_l * CTX / 1048576 )) MiB |"
  echo "| peak RSS, $CTX-token prefill | $(( ro / 1024 )) MiB | $(( rl / 1024 )) MiB |"
fi

# --- where llmforge's time goes ----------------------------------------------------------------
# perf attached to a running `llmforge bench` after its start-up (loading and repacking the
# weights would otherwise dominate: page clearing, copies), 15 s of steady state per test.
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
  ty=$(echo "$TYPES" | awk '{print $1}')
  t=$(echo "$THREADS" | awk '{print $1}')
  for test in pp tg; do
    if [ "$test" = pp ]; then a=(-p "$NP" -n 0); else a=(-p 0 -n "$NG"); fi
    "$LF" bench -m "$(model "$ty")" "${a[@]}" -t "$t" -r 1000 >/dev/null 2>&1 &
    pid=$!
    sleep 10
    perf record -q -o "$WORK/perf-$test.data" -p "$pid" -- sleep 15 >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    echo
    echo "perf, llmforge $test ($ty, $t thread(s)), steady state: top symbols"
    perf report -i "$WORK/perf-$test.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' |
      head -12 | sed -E 's/ +$//' | cut -c1-160
  done
fi
