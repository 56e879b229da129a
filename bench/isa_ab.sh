#!/usr/bin/env bash
# The AVX-512 table against the AVX2 table on the same machine (issue 21: "no AVX-512 row slower
# than the AVX2 table"), with llama-bench on the same files, interleaved per round:
#   lf        llmforge bench, default (AVX-512 table, AVX-512 sgemm for float prefill)
#   lf-avx2   LLMFORGE_ISA=avx2 (the AVX2 table; float prefill still through gemm_f32's choice)
#   lf-blas   LLMFORGE_SGEMM=blas (float-weight prefill on OpenBLAS; pp rows of f32/f16/bf16 only)
#   llama     llama-bench (LLAMA_BENCH), when present
# Usage: bench/isa_ab.sh    env: FILES="/path/110m-f32.gguf ..." THREADS="1 2" TESTS="pp tg"
#                                ROUNDS=2 REPS=2 LF=build/bin/llmforge LLAMA_BENCH=... OUT=isa-ab.csv
# Prints a table of medians over rounds and writes OUT (one row per run) and OUT's .svg
# (bench/plot_isa_ab.py: each row relative to llama.cpp).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
LF="${LF:-$here/build/bin/llmforge}"
LLAMA_BENCH="${LLAMA_BENCH:-}"
THREADS="${THREADS:-1 2}" TESTS="${TESTS:-pp tg}" ROUNDS="${ROUNDS:-2}" REPS="${REPS:-2}"
OUT="${OUT:-isa-ab.csv}"
[[ -n ${FILES:-} ]] || { echo "isa_ab: set FILES to the GGUF files to measure" >&2; exit 2; }
value() { grep -E " (pp512|tg128) +\|" | tail -1 | awk -F'|' '{print $(NF-1)}' | awk '{print $1}'; }
echo "file,threads,test,engine,round,tps" > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for f in $FILES; do
    name=$(basename "$f" .gguf)
    for t in $THREADS; do
      for test in $TESTS; do
        if [ "$test" = pp ]; then a=(-p 512 -n 0); else a=(-p 0 -n 128); fi
        engines="lf lf-avx2"
        [[ $test == pp && $name =~ -(f32|f16|bf16)$ ]] && engines="$engines lf-blas"
        [[ -x $LLAMA_BENCH ]] && engines="$engines llama"
        for e in $engines; do
          case $e in
            lf) v=$("$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value) ;;
            lf-avx2) v=$(LLMFORGE_ISA=avx2 "$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value) ;;
            lf-blas) v=$(LLMFORGE_SGEMM=blas "$LF" bench -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value) ;;
            llama) v=$("$LLAMA_BENCH" -m "$f" "${a[@]}" -t "$t" -r "$REPS" 2>/dev/null | value) ;;
          esac
          echo "$name,$t,$test,$e,$round,${v:-0}" | tee -a "$OUT" >&2
        done
      done
    done
  done
done
python3 - "$OUT" <<'PY'
import csv, collections, statistics as st, sys
runs = collections.OrderedDict()
for r in csv.DictReader(open(sys.argv[1])):
    runs.setdefault((r["file"], r["threads"], r["test"]), collections.defaultdict(list))[r["engine"]].append(float(r["tps"]))
print("| model | threads | test | AVX-512 table | AVX2 table | AVX-512 / AVX2 | OpenBLAS prefill | llama.cpp | ours / llama.cpp |")
print("|---|---|---|---|---|---|---|---|---|")
for (f, t, test), e in runs.items():
    med = {k: st.median(v) for k, v in e.items()}
    lf, av2 = med.get("lf", 0), med.get("lf-avx2", 0)
    blas = f"{med['lf-blas']:.1f}" if "lf-blas" in med else "—"
    ll = med.get("llama")
    name = "pp512" if test == "pp" else "tg128"
    print(f"| {f} | {t} | {name} | {lf:.1f} | {av2:.1f} | {lf / av2 if av2 else 0:.2f} | {blas} | "
          f"{'%.1f' % ll if ll else '—'} | {'%.2f' % (lf / ll) if ll else '—'} |")
PY
[[ -x $LLAMA_BENCH ]] && python3 "$here/bench/plot_isa_ab.py" "${OUT%.csv}.svg" "$OUT"
exit 0
