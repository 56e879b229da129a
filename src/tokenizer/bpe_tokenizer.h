// Byte-level BPE (tokenizer.ggml.model == "gpt2"): GPT-2, Llama 3, Qwen 2/3, DeepSeek,
// StarCoder, Falcon.
//
// Algorithm (Hugging Face tokenizers ByteLevel + BPE; llama.cpp llm_tokenizer_bpe):
//  * the pre-tokenizer named by vocab.pre (pre_tokenizer.h) splits the text into words;
//    ill-formed UTF-8 bytes are words of their own, so any byte string can be encoded;
//  * each byte of a word is mapped to its GPT-2 byte-level character;
//  * repeatedly merge the adjacent pair with the LOWEST merge rank (tokenizer.ggml.merges order;
//    ties: leftmost) using a priority queue over a linked symbol list: O(n log n) per word;
//  * with ignore_merges (Llama 3) a word that is itself a token is taken whole;
//  * speed: words stream from the pre-tokenizer (no list of them all), one-byte words take their
//    byte's token directly, and a word met again in the same encode() call takes its ids from a
//    per-call WordCache (pre_tokenizer.h) instead of merging again.
// Merges whose parts or result are not tokens can never apply and are ignored.
//
// Thread safety: immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/pair_table.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

// UTF-8 of the GPT-2 byte-level character standing for byte b.
const std::string& byte_to_byte_level(uint8_t b);
// The byte a byte-level character stands for, or -1 when cp is none.
int byte_level_to_byte(uint32_t cp);

class BpeTokenizer final : public Tokenizer {
  public:
    // Throws Error for an unknown vocab.pre or a malformed merge.
    explicit BpeTokenizer(const Vocab& vocab);
    ~BpeTokenizer() override;

    const std::string& pre_name() const { return pre_name_; }

  protected:
    void encode_text(std::string_view text, bool after_special,
                     std::vector<int32_t>& out) const override;

  private:
    struct Scratch;
    void encode_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& out) const;

    // (left id, right id) -> merge.
    struct Merge {
        int32_t rank;
        int32_t id;  // the merged token
    };

    std::string pre_name_;
    bool ignore_merges_ = false;
    std::unique_ptr<PreTokenizer> pre_;
    std::array<int32_t, 256> byte_ids_;  // token of each byte's byte-level character, or -1
    PairTable<Merge> merges_;
};

}  // namespace llmforge
