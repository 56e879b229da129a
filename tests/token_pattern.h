// Test-only: a small Llama config and a token shard it can learn (train_cli_test,
// train_resume_test, keep_sparsity_test).
#pragma once

#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace llmforge::test {

// A 2-layer Llama, vocab 512 (a config.json for `train --config`).
inline constexpr const char* kPatternLlamaConfig =
    R"({"model_type":"llama","hidden_size":64,"intermediate_size":172,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"max_position_embeddings":128,
"rms_norm_eps":1e-5,"tie_word_embeddings":true})";

// Groups of 4 tokens (a, a+50, a+100, 7a mod 512) with a uniform in [0, 50): the first token of a
// group carries ln 50 nats and the other three none, so the best possible loss is ln(50)/4 = 0.978
// nats per token, while a model blind to context (unigram over 200 equally likely ids) is stuck at
// ln 200 = 5.30. Written as a .u16 shard.
inline void write_pattern(const std::string& path, int groups, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint16_t> v;
    for (int i = 0; i < groups; ++i) {
        const uint16_t a = static_cast<uint16_t>(rng() % 50);
        for (uint16_t t : {a, static_cast<uint16_t>(a + 50), static_cast<uint16_t>(a + 100),
                           static_cast<uint16_t>((a * 7) % 512)})
            v.push_back(t);
    }
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), v.size() * 2);
}

}  // namespace llmforge::test
