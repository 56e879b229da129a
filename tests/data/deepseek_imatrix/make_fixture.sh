#!/usr/bin/env bash
# How the llama.cpp files here were made (run by hand, never by the tests), with llama.cpp
# c392e5094 (build 4748), from the DeepSeek-V3-shaped random model that
# `llmforge init-model --hf-config config.json --seed 3` writes (q_lora, sigmoid routing with the
# selection bias, no expert groups: llama.cpp of this version has no group-limited routing):
#   llama-imatrix.dat   llama-imatrix's legacy importance matrix over calibration.txt, 4 chunks of
#                       128 tokens, one thread (per-expert statistics of the 3-D expert tensors)
#   llama-quantize-q4_0-exps.bin   the bytes of blk.1.ffn_{gate,up,down}_exps.weight, one after the
#                       other, in llama-quantize's Q4_0 of the model with that importance matrix
# tests/cli/deepseek_cli_test.cpp collects the same with `llmforge imatrix` and compares every
# entry, and quantises with llama-imatrix.dat and compares the expert bytes.
# Usage: make_fixture.sh LLMFORGE_BIN [LLAMA_CPP_BIN_DIR]
set -euo pipefail
lf=${1:?llmforge binary}; bin=${2:-/work/llamacpp-build/bin}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
"$lf" init-model --hf-config "$here/config.json" --seed 3 -o "$tmp/m.gguf"
"$bin/llama-imatrix" -m "$tmp/m.gguf" -f "$here/calibration.txt" -c 128 --chunks 4 -t 1 -o "$here/llama-imatrix.dat"
"$bin/llama-quantize" --imatrix "$here/llama-imatrix.dat" "$tmp/m.gguf" "$tmp/q.gguf" q4_0 1
python3 - "$tmp/q.gguf" "$here/llama-quantize-q4_0-exps.bin" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
o = 8
nt, nkv = struct.unpack_from('<QQ', b, o); o += 16
def s():
    global o
    n, = struct.unpack_from('<Q', b, o); o += 8; o += n; return b[o - n:o].decode()
size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def val(t):
    global o
    if t == 8: s(); return
    if t == 9:
        et, n = struct.unpack_from('<IQ', b, o); o += 12
        for _ in range(n): val(et)
        return
    o += size[t]
for _ in range(nkv):
    s(); t, = struct.unpack_from('<I', b, o); o += 4; val(t)
ts = {}
for _ in range(nt):
    name = s(); nd, = struct.unpack_from('<I', b, o); o += 4 + 8 * nd
    ty, off = struct.unpack_from('<IQ', b, o); o += 12; ts[name] = off
base = (o + 31) // 32 * 32
offs = sorted(ts.values())
out = b''
for n in ['blk.1.ffn_gate_exps.weight', 'blk.1.ffn_up_exps.weight', 'blk.1.ffn_down_exps.weight']:
    i = offs.index(ts[n]); end = offs[i + 1] if i + 1 < len(offs) else len(b) - base
    out += b[base + ts[n]:base + end]
open(sys.argv[2], 'wb').write(out)
PY
rm -rf "$tmp"
