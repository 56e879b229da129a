#!/usr/bin/env bash
# Tokenizer encode throughput, llmforge vs llama.cpp's llama-tokenize, on the same vocabularies
# (llama.cpp's vocab-only GGUF files) and the same text (bench/make_text_corpus.sh), one thread.
#
# Two measurements per vocabulary x text, interleaved (ours, theirs, ours, theirs ...) because the
# machine is noisy; the summary reports medians over rounds:
#   cli:  wall time of the whole command on the text minus the same command on a 1-byte file (this
#         removes process start and vocabulary loading; reading the file and printing the ids stay
#         in), for
#           llmforge tokenize -m V --ids --no-bos < FILE
#           llama-tokenize -m V -f FILE --ids --log-disable --no-bos --no-parse-special --no-escape
#         (--no-escape: llama-tokenize otherwise turns "\n" written in the text into a newline).
#   enc:  bench_tokenizer --vocab V --text FILE --reps REPS: Tokenizer::encode() alone, median of
#         REPS repetitions (llmforge only).
# MB/s are 10^6 input bytes per second. Before timing, each pair's ids are compared once (CHECK=1):
# any difference is printed with the first differing position and fails the script.
#
# Usage: bench/tokenize_ab.sh
#   env: ROUNDS=5 REPS=3 VOCABS="deepseek-llm gpt-2 llama-spm" TEXTS="prose code" CHECK=1
#        BUILD=build LF=$BUILD/bin/llmforge BENCH=$BUILD/bin/bench_tokenizer
#        LLAMA_TOKENIZE=/work/llamacpp/src/build/bin/llama-tokenize
#        VOCAB_DIR=${LLMFORGE_ASSETS:-../shared/assets}/llama.cpp-vocab CORPUS=$BUILD/corpus
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD:-$here/build}"
LF="${LF:-$BUILD/bin/llmforge}"
BENCH="${BENCH:-$BUILD/bin/bench_tokenizer}"
LLAMA_TOKENIZE="${LLAMA_TOKENIZE:-/work/llamacpp/src/build/bin/llama-tokenize}"
VOCAB_DIR="${VOCAB_DIR:-${LLMFORGE_ASSETS:-$here/../shared/assets}/llama.cpp-vocab}"
CORPUS="${CORPUS:-$BUILD/corpus}"
VOCABS="${VOCABS:-deepseek-llm gpt-2 llama-spm}"
TEXTS="${TEXTS:-prose code}"
ROUNDS="${ROUNDS:-5}"
REPS="${REPS:-3}"
CHECK="${CHECK:-1}"

for t in $TEXTS one; do
  [ -f "$CORPUS/$t.txt" ] || "$here/bench/make_text_corpus.sh" "$CORPUS"
done
out="$(mktemp)"
tmp="$(mktemp -d)"
trap 'rm -rf "$out" "$tmp"' EXIT

ours() { "$LF" tokenize -m "$VOCAB_DIR/ggml-vocab-$1.gguf" --ids --no-bos < "$2"; }
theirs() {
  "$LLAMA_TOKENIZE" -m "$VOCAB_DIR/ggml-vocab-$1.gguf" -f "$2" --ids --log-disable --no-bos \
    --no-parse-special --no-escape
}
# Wall seconds of "$@" with stdout discarded.
wall() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" > /dev/null
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000 ))e-6"
}

if [ "$CHECK" = 1 ]; then
  for v in $VOCABS; do
    for t in $TEXTS; do
      ours "$v" "$CORPUS/$t.txt" > "$tmp/ours"
      theirs "$v" "$CORPUS/$t.txt" > "$tmp/theirs"
      python3 - "$tmp/ours" "$tmp/theirs" "$v" "$t" <<'PY'
import sys
a = [int(x) for x in open(sys.argv[1]).read().split()]
s = open(sys.argv[2]).read().strip()
b = [int(x) for x in s.strip('[]').split(',') if x.strip()]
if a == b:
    print(f'check {sys.argv[3]} {sys.argv[4]}: same {len(a)} ids', file=sys.stderr)
    sys.exit(0)
i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
print(f'check {sys.argv[3]} {sys.argv[4]}: ids differ at {i} ({len(a)} ours, {len(b)} '
      f'llama.cpp): ours {a[max(0, i - 3):i + 5]} llama.cpp {b[max(0, i - 3):i + 5]}',
      file=sys.stderr)
sys.exit(1)
PY
    done
  done
fi

for round in $(seq 1 "$ROUNDS"); do
  for v in $VOCABS; do
    o1=$(wall ours "$v" "$CORPUS/one.txt")
    l1=$(wall theirs "$v" "$CORPUS/one.txt")
    for t in $TEXTS; do
      f="$CORPUS/$t.txt"
      o=$(wall ours "$v" "$f")
      l=$(wall theirs "$v" "$f")
      e=$("$BENCH" --vocab "$VOCAB_DIR/ggml-vocab-$v.gguf" --text "$f" --reps "$REPS" |
          sed -n 's/.*median_s=\([0-9.]*\).*/\1/p')
      echo "$round $v $t $(stat -c %s "$f") $o $o1 $l $l1 $e" | tee -a "$out" >&2
    done
  done
done

echo
echo "| vocabulary | text | MB | llmforge cli MB/s | llama.cpp cli MB/s | ratio | llmforge encode() MB/s |"
echo "|---|---|---|---|---|---|---|"
python3 - "$out" <<'PY'
import sys, statistics as st, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    r, v, t, n, o, o1, l, l1, e = line.split()
    rows.setdefault((v, t, int(n)), []).append(
        (float(o) - float(o1), float(l) - float(l1), float(e)))
for (v, t, n), x in rows.items():
    o, l, e = (st.median(y[i] for y in x) for i in range(3))
    mb = n / 1e6
    print(f"| {v} | {t} | {mb:.2f} | {mb / o:.2f} | {mb / l:.2f} | {l / o:.2f} | {mb / e:.2f} |")
print(f"\nmedians of {len(next(iter(rows.values())))} rounds; cli = (text run - 1-byte run) per round")
PY
