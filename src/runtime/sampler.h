// Sampler chain: turns a logit vector into the next token.
// Order (as llama.cpp's default chain): logit bias -> repetition / frequency / presence penalties
// over the last penalty_last_n accepted tokens -> top-k -> top-p -> min-p -> temperature -> draw.
// temperature <= 0 means greedy (argmax after bias and penalties; ties go to the lowest id).
//
// Thread safety: a Sampler belongs to one sequence; sample() and accept() mutate its state.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <utility>
#include <vector>

namespace llmforge {

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;          // <= 0: off
    float top_p = 0.95f;         // >= 1: off
    float min_p = 0.05f;         // <= 0: off
    float repeat_penalty = 1.0f; // 1: off. Divides positive logits, multiplies negative ones.
    float frequency_penalty = 0.0f;  // logit -= count * frequency_penalty
    float presence_penalty = 0.0f;   // logit -= (count > 0) * presence_penalty
    int32_t penalty_last_n = 64;     // window of accepted tokens the penalties look at
    uint64_t seed = 0xC0FFEEu;
    // OpenAI's logit_bias: (token id, bias) pairs, bias in [-kMaxLogitBias, kMaxLogitBias], added
    // to the token's logit before anything else (greedy included). -100 bans a token in practice,
    // +100 forces it (real logits span far less than 100). Ids >= the vocabulary are ignored.
    std::vector<std::pair<int32_t, float>> logit_bias;
};

constexpr float kMaxLogitBias = 100.0f;

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // Picks a token from logits (V values). Does not modify logits.
    int32_t sample(const float* logits, int64_t V);
    // Records a token (prompt or generated) for the penalties.
    void accept(int32_t token);
    void reset();
    const SamplerParams& params() const { return p_; }
    // Validates ranges; throws Error naming the bad parameter.
    static void validate(const SamplerParams& p);

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> history_;
    struct Cand {
        int32_t id;
        float logit;
        float p;
    };
    std::vector<Cand> cand_;
};

}  // namespace llmforge
