// Learns a byte-level BPE vocabulary from text (GPT-2 style, as Hugging Face's BpeTrainer with a
// ByteLevel pre-tokenizer): words come from the GPT-2 pre-tokenizer regex, every byte is a base
// token, and the most frequent adjacent pair is merged until the vocabulary is full. The result
// is written as a Hugging Face tokenizer.json (+ tokenizer_config.json with BOS/EOS and a ChatML
// chat template) that llmforge — and Hugging Face tokenizers — load like any other.
//
// Digits are never merged: each stays a token of its own (as in Llama's and DeepSeek's
// vocabularies), so a model copies numbers digit by digit.
//
// Ids: the special tokens first (0, 1, …), then the 256 byte tokens in byte order, then merges
// in the order they were learned. Ties between equally frequent pairs go to the smaller pair of
// ids, so training is deterministic.
//
// Thread safety: BpeLearner is single-threaded; separate objects are independent.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmforge {

struct BpeLearnResult {
    std::vector<std::string> tokens;                      // id -> byte-level token text
    std::vector<std::pair<int32_t, int32_t>> merges;      // in rank order
    std::vector<std::string> special;                     // the special tokens (ids 0..k-1)
};

class BpeLearner {
public:
    // Adds the words of a text (pre-tokenized with the GPT-2 regex) to the counts.
    void add_text(std::string_view text);
    int64_t n_words() const { return static_cast<int64_t>(words_.size()); }
    // Learns merges until vocab_size tokens (specials + 256 bytes + merges) or no pair occurs at
    // least min_frequency times. progress(merges done, merges wanted) is called now and then.
    BpeLearnResult learn(int64_t vocab_size, const std::vector<std::string>& special, int64_t min_frequency = 2,
                         const std::function<void(int64_t, int64_t)>& progress = nullptr);

private:
    std::unordered_map<std::string, int64_t> words_;
};

// tokenizer.json text of a learned vocabulary (BPE model, ByteLevel pre-tokenizer and decoder,
// the special tokens as added tokens).
std::string bpe_tokenizer_json(const BpeLearnResult& r);
// tokenizer_config.json text: bos (none), eos, pad and a ChatML chat template
// (<|im_start|>role\ncontent<|im_end|>\n; add_generation_prompt opens an assistant turn).
std::string bpe_tokenizer_config_json(const std::string& eos_token, const std::string& pad_token);

}  // namespace llmforge
