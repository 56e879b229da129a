// Pre-tokenization for byte-level BPE: splitting text into words before merges run, the way the
// model's Hugging Face pre-tokenizer does.
//
// A pre-tokenizer is a list of regexes applied in turn. Each regex splits every piece produced so
// far into its matches and the gaps between them (Hugging Face `Split` with behaviour "Isolated"),
// so later regexes never see across earlier boundaries, and look-arounds and `$` stop at the end
// of the current piece. The regex lists are those llama.cpp keeps per `tokenizer.ggml.pre` value
// (src/llama-vocab.cpp, MIT); they are evaluated with PCRE2 (UTF, UCP: \p{..} and \s are
// Unicode-aware; `$` only matches at the very end; JIT when the platform has it).
//
// Thread safety: a PreTokenizer is immutable after construction; split() may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {

// What a `tokenizer.ggml.pre` value stands for.
struct PreTokenizerPreset {
    std::string name;                  // canonical name, e.g. "llama-bpe"
    std::vector<std::string> regexes;  // applied in order
    bool ignore_merges = false;        // a whole word that is a token is taken as is (Llama 3)
};

// The preset of a `tokenizer.ggml.pre` value; "" and "default" are llama.cpp's default list.
// Throws Error naming the value and listing the known ones; never falls back silently.
PreTokenizerPreset pre_tokenizer_preset(std::string_view pre);

// Every accepted `tokenizer.ggml.pre` value (aliases included), sorted.
std::vector<std::string> pre_tokenizer_names();

class PreTokenizer {
  public:
    // Compiles the regexes; a pattern PCRE2 rejects throws Error naming it and the offset.
    explicit PreTokenizer(std::vector<std::string> regexes);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Appends the pieces of `text` to `out` as views into `text`: non-empty, in order, and
    // concatenating to `text`. `text` must be well-formed UTF-8 (checked by the caller).
    void split(std::string_view text, std::vector<std::string_view>& out) const;

    const std::vector<std::string>& regexes() const { return regexes_; }

  private:
    struct Compiled;
    std::vector<std::string> regexes_;
    std::vector<std::unique_ptr<Compiled>> compiled_;
};

}  // namespace llmforge
