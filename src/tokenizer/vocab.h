// A tokenizer's vocabulary as model files carry it (GGUF tokenizer.ggml.* keys; Hugging Face
// tokenizer.json and llama2.c tok*.bin are mapped into the same shape). The tokenizer module
// builds a Tokenizer from it; the GGUF writer stores it back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmforge {

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
    kUndefined = 0,
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
};

struct Vocab {
    std::string model;          // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte BPE), "bert"
    std::string pre;            // tokenizer.ggml.pre (BPE pre-tokenizer name), may be empty
    std::vector<std::string> tokens;
    std::vector<float> scores;  // empty when the file has none
    std::vector<TokenType> types;  // empty when the file has none
    std::vector<std::string> merges;  // "a b" pairs, rank order (gpt2 model)
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
    bool add_bos = true, add_eos = false;
    bool add_space_prefix = true;  // SentencePiece dummy prefix
    std::string chat_template;     // Jinja, may be empty
    bool empty() const { return tokens.empty(); }
};

}  // namespace llmforge
