# Sourced by the training experiments (qat_experiment.sh, distill_experiment.sh): a text corpus
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
