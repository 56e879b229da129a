#!/usr/bin/env bash
# Side-by-side benchmark: llmforge bench vs llama.cpp's llama-bench on the same init-model files.
#   scripts/bench.sh [LLMFORGE_BIN] [LLAMA_BENCH]      (env: MODELS=dir, THREADS="1 2", REPS=3,
#                     SHAPES="110m 1b", TYPES="f32 q8_0 q4_0", MMAP="1 0", PP=512, TG=128)
# llama.cpp is never part of this repository: build it elsewhere (CPU, native flags) and pass
# the path of its llama-bench, or leave it out to measure llmforge alone. The two programs run
# alternately per model and thread count so both see the same machine state.
set -euo pipefail
bin=${1:-build/bin/llmforge}
llama=${2:-}
models=${MODELS:-build/bench-models}
threads=${THREADS:-"1 2"}
reps=${REPS:-3}
shapes=${SHAPES:-"110m"}
types=${TYPES:-"f32 q8_0 q4_0"}
pp=${PP:-512}
tg=${TG:-128}
mmaps=${MMAP:-"1"}
csv=${CSV:-$models/bench.csv}
mkdir -p "$models"
echo "engine,shape,type,threads,mmap,test,mean,sd" > "$csv"
# Table rows of either program -> CSV: the t/s cell is the last, "mean ± sd".
to_csv() {  # engine shape type threads mmap
    awk -F'|' -v e="$1" -v s="$2" -v t="$3" -v th="$4" -v mm="$5" '
        /^\| llama/ { test = $(NF-2); tps = $(NF-1); gsub(/ /, "", test); split(tps, a, "±");
                      gsub(/ /, "", a[1]); gsub(/ /, "", a[2]);
                      printf "%s,%s,%s,%s,%s,%s,%s,%s\n", e, s, t, th, mm, test, a[1], a[2] }' >> "$csv"
}
shape_args() {
    case $1 in
        110m) echo "--dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000" ;;
        1b) echo "--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000" ;;
        *) echo "bench.sh: unknown shape '$1' (expected 110m or 1b)" >&2; exit 2 ;;
    esac
}
echo "# $(date -u +%F' '%H:%M) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for s in $shapes; do
    for t in $types; do
        m="$models/$s-$t.gguf"
        # Same seed for every type: the same random model, rounded to each type.
        [[ -f $m ]] || "$bin" init-model $(shape_args "$s") --type "$t" --seed 1 --out "$m" 2>/dev/null
        for th in $threads; do
            echo "## $s $t, $th thread(s)"
            for mm in $mmaps; do
                echo "llmforge --mmap $mm"
                "$bin" bench -m "$m" -p "$pp" -n "$tg" -t "$th" -r "$reps" --mmap "$mm" 2>/dev/null |
                    grep -E '^\| llama|^peak' | tee >(to_csv llmforge "$s" "$t" "$th" "$mm") ||
                    echo "llmforge bench failed on $m" >&2
                if [[ -n $llama ]]; then
                    echo "llama.cpp -mmp $mm"
                    "$llama" -m "$m" -p "$pp" -n "$tg" -t "$th" -r "$reps" -mmp "$mm" 2>/dev/null |
                        grep -E '^\| llama' | tee >(to_csv llama.cpp "$s" "$t" "$th" "$mm") ||
                        echo "llama-bench failed on $m" >&2
                fi
            done
        done
    done
done
wait
echo "bench.sh: results in $csv"
