// SentencePiece BPE (tokenizer.ggml.model == "llama"): Llama 1/2, Mistral, Phi-3, TinyLlama,
// and llama2.c tok*.bin vocabularies mapped into a Vocab.
//
// Algorithm (sentencepiece bpe_model.cc; llama.cpp llm_tokenizer_spm):
//  * a "▁" dummy prefix when the text starts the input or follows an added token and
//    vocab.add_space_prefix is set; every ' ' becomes "▁";
//  * one symbol per UTF-8 character (each byte of ill-formed UTF-8 is its own symbol);
//  * repeatedly merge the adjacent pair whose concatenation is a token with the HIGHEST score
//    (ties: leftmost), using a priority queue over a linked symbol list: O(n log n);
//  * speed: when no mergeable token holds a "▁" right after another character (true for
//    SentencePiece vocabularies, which split at whitespace), no merge can cross the start of a
//    "▁" that follows another character, so the text is cut there and each word is merged on its
//    own (small heaps that stay in cache) with the same result as merging the whole text;
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
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pair_table.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

class SpmTokenizer final : public Tokenizer {
  public:
    explicit SpmTokenizer(const Vocab& vocab);

  protected:
    void encode_text(std::string_view text, bool after_special,
                     std::vector<int32_t>& out) const override;

  private:
    struct Scratch;
    // Merges one run of text (a word, or the whole text) and appends its ids.
    void encode_segment(std::string_view s, Scratch& scratch, std::vector<int32_t>& out) const;
    // A token that merges may produce: open addressing over a byte pool, because the merge
    // loop looks up every adjacent pair and std::unordered_map's node chains miss the cache.
    struct Mergeable {
        uint32_t hash;      // high half of the 64-bit hash
        uint32_t off, len;  // text in pool_
        int32_t id;         // -1: empty slot
        float score;
    };
    // The entry whose text is s, or nullptr.
    const Mergeable* find_mergeable(std::string_view s) const;
    // Id of a token that merges may produce, or -1.
    int32_t mergeable_id(std::string_view s) const {
        const Mergeable* m = find_mergeable(s);
        return m ? m->id : -1;
    }
    // (left id, right id) -> the mergeable token spelled by their concatenation.
    struct Pair {
        int32_t id;
        float score;
    };
    // Appends byte tokens for s, or one unk per character when byte tokens are missing.
    void byte_fallback(std::string_view s, std::vector<int32_t>& out) const;

    std::array<int32_t, 256> byte_ids_;   // "<0xHH>" token of each byte, -1 if absent
    std::vector<Mergeable> table_;        // size a power of two, at most half full
    std::string pool_;                    // texts of the mergeable tokens
    PairTable<Pair> pairs_;
    std::array<int32_t, 128> ascii_ids_;  // mergeable token of each ASCII character, or -1
    size_t max_merge_len_ = 0;            // bytes in the longest mergeable token
    bool split_words_ = false;            // no mergeable token has "▁" after another character
};

}  // namespace llmforge
