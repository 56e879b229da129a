// SentencePiece BPE (tokenizer.ggml.model == "llama"): Llama 1/2, Mistral, Phi-3, TinyLlama,
// and llama2.c tok*.bin vocabularies mapped into a Vocab.
//
// Algorithm (sentencepiece bpe_model.cc; llama.cpp llm_tokenizer_spm):
//  * a "▁" dummy prefix when the text starts the input or follows an added token and
//    vocab.add_space_prefix is set; every ' ' becomes "▁";
//  * one symbol per UTF-8 character (each byte of ill-formed UTF-8 is its own symbol);
//  * repeatedly merge the adjacent pair whose concatenation is a token with the HIGHEST score
//    (ties: leftmost), using a priority queue over a linked symbol list: O(n log n);
//  * symbols that are no token fall back to "<0xHH>" byte tokens, or one unknown token per
//    character when the vocabulary has no byte tokens; unused tokens are split back into the
//    pieces they were merged from.
// Only normal, user-defined, unused and undefined tokens take part in merges (control,
// unknown and byte tokens never do, as in sentencepiece).
//
// Thread safety: immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace llmforge {

class SpmTokenizer final : public Tokenizer {
  public:
    explicit SpmTokenizer(const Vocab& vocab);

  protected:
    void encode_text(std::string_view text, bool after_special,
                     std::vector<int32_t>& out) const override;

  private:
    // Id of a token that merges may produce, or -1.
    int32_t mergeable_id(std::string_view s) const;
    // Appends byte tokens for s, or one unk per character when byte tokens are missing.
    void byte_fallback(std::string_view s, std::vector<int32_t>& out) const;

    std::array<int32_t, 256> byte_ids_;  // "<0xHH>" token of each byte, -1 if absent
};

}  // namespace llmforge
