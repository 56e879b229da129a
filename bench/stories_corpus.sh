# Sourced by the training experiments (qat_experiment.sh, distill_experiment.sh, moe_vs_dense.sh,
# mtp_speculative.sh): a text corpus
# sampled from the TinyStories model in the shared assets (llama2c-stories260K), so models can be
# trained here without downloading data. Needs BIN (llmforge), SRC (the asset folder), TOK (tok512.bin).
#
# stories FIRST_SEED COUNT OUT: one story per seed (temperature 1, pure sampling, up to 512
# tokens), a blank line between stories; written to OUT.tmp, then renamed.
stories() {
    local first=$1 n=$2 out=$3
    : > "$out.tmp"
    for ((s = first; s < first + n; ++s)); do
        "$BIN" generate -m "$SRC/stories260K.bin" --tokenizer "$TOK" -n 512 --temp 1 --top-k 0 --top-p 1 --min-p 0 \
            -s "$s" -t 1 2>/dev/null | sed '/^[[:space:]]*$/d' >> "$out.tmp"
        echo >> "$out.tmp"
    done
    mv "$out.tmp" "$out"
}

# stories_workdir W LABEL N_TRAIN: the common start of an experiment: the asset checked, cd into W
# (created), BIN copied there (a rebuild of build/bin/llmforge mid-run must not break the run),
# N_TRAIN training stories (seeds 1000..) in train.txt and their token shards in data/ (2% held
# out), each made once.
stories_workdir() {
    local w=$1 label=$2 n=$3
    [ -f "$SRC/stories260K.bin" ] || { echo "LLMFORGE-ASSET-MISSING: $SRC/stories260K.bin" >&2; exit 2; }
    mkdir -p "$w"
    cd "$w"
    cp "$BIN" .llmforge-bin
    BIN=$w/.llmforge-bin
    [ -f train.txt ] || { echo "$label: sampling $n training stories" >&2; stories 1000 "$n" train.txt; }
    [ -f data/meta.json ] || "$BIN" prepare --tokenizer "$TOK" --input train.txt -o data --val-fraction 0.02 >&2
}
