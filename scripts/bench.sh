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
mkdir -p "$models"
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
                "$bin" bench -m "$m" -p "$pp" -n "$tg" -t "$th" -r "$reps" --mmap "$mm" 2>/dev/null | grep -E '^\| llama|^peak'
                if [[ -n $llama ]]; then
                    echo "llama.cpp -mmp $mm"
                    "$llama" -m "$m" -p "$pp" -n "$tg" -t "$th" -r "$reps" -mmp "$mm" 2>/dev/null | grep -E '^\| llama'
                fi
            done
        done
    done
done
