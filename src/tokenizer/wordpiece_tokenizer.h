// WordPiece (tokenizer.ggml.model == "bert"): BERT-family embedding models such as BGE.
//
// Reproduces Hugging Face `tokenizers` with BertNormalizer(clean_text, handle_chinese_chars,
// lowercase, strip_accents following lowercase) + BertPreTokenizer + WordPiece(unk "[UNK]",
// "##" continuation, max 100 characters per word):
//  * normalise: drop U+0000, U+FFFD and "other" characters (categories Cc Cf Cs Co Cn, except
//    \t \n \r); turn White_Space characters into ' '; put spaces around CJK ideographs;
//    with lowercasing: NFD-decompose, drop non-spacing marks (Mn), lowercase;
//  * pre-tokenise: split at whitespace (dropped) and around each punctuation character (ASCII
//    punctuation or Unicode category P*);
//  * each word: greedy longest match from the left; pieces after the first carry "##"; a word
//    with a piece that matches nothing, or longer than 100 characters, becomes one [UNK].
// The vocabulary uses llama.cpp's "phantom space" form, the one GGUF files carry: word-initial
// tokens are stored as "▁word", continuations without their "##" (see wordpiece_phantom_form()
// for converting a Hugging Face vocabulary).
//
// Unicode properties, NFD and case mapping come from utf8proc (Debian's libutf8proc), a small
// well-kept library; writing those tables by hand would be error-prone for no gain.
//
// decode() cannot give back the input (lowercasing, dropped accents, [UNK]): it joins word
// pieces with single spaces, like HF's WordPiece decoder without cleanup.
//
// Thread safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace llmforge {

class WordPieceTokenizer final : public Tokenizer {
  public:
    explicit WordPieceTokenizer(const Vocab& vocab);

    // Normalised text as BertNormalizer (lowercasing) leaves it; exposed for tests.
    static std::string normalize(std::string_view text);

  protected:
    void encode_text(std::string_view text, bool after_special,
                     std::vector<int32_t>& out) const override;

  private:
    // Appends the ids of one pre-tokenised word (normalised UTF-8, no spaces).
    void encode_word(std::string_view word, std::vector<int32_t>& out) const;
};

// A Hugging Face WordPiece token in llama.cpp's phantom-space form: "##ing" -> "ing",
// "[CLS]" -> "[CLS]", "word" -> "▁word".
std::string wordpiece_phantom_form(std::string_view hf_token);

}  // namespace llmforge
