// Sampler chain: turns a logit vector into the next token, as a list of stages.
//
// A stage sees the candidates (token id, logit, probability), possibly already narrowed or sorted
// by the stages before it, and may change logits, drop candidates or pick the token; accept()
// tells every stage which token was chosen (or fed as prompt), so stages with memory (penalties,
// a grammar) follow the sequence. Stages can read the vocabulary as text (SamplerContext), so a
// grammar constraint or a rule on repeated words is one more stage, not a change to the sampler.
//
// The chain built from SamplerParams (as llama.cpp's default chain), each stage present only when
// its parameter is on:
//   logit bias -> repetition / frequency / presence penalties over the last penalty_last_n
//   accepted tokens -> top-k -> top-p -> min-p -> temperature -> pick
// where pick is greedy (temperature <= 0: the highest logit, ties to the lowest id) or a draw
// from the seeded generator. Greedy is a stage like the others: the filters run before it (they
// always keep the argmax, so greedy still returns the argmax after bias and penalties).
// Custom stages go before the pick (add_stage), or first of all (StageSlot::kFirst).
//
// Thread safety: a Sampler belongs to one sequence; sample() and accept() mutate its state.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace llmforge {

class Tokenizer;

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

// One token still in the running.
struct Candidate {
    int32_t id;
    float logit;
    float p;  // meaningful only while Candidates::has_p
};

// The candidates of one sampling step, as the stages pass them along.
struct Candidates {
    std::vector<Candidate> items;
    // items[i].id == i for every token of the vocabulary (nothing dropped or reordered yet):
    // stages may then index by id.
    bool by_id = true;
    // Sorted by logit, highest first, ties lowest id first.
    bool sorted = false;
    // p holds softmax probabilities of the logits (a stage that changes logits must clear it).
    // They may no longer sum to 1 after a filter dropped candidates.
    bool has_p = false;
    int32_t selected = -1;  // set by the pick stage

    // Sorts by logit (highest first, ties lowest id first) unless already sorted.
    void sort();
    // Sorted, then p = softmax(logit / temperature) over the candidates in that order.
    void softmax(float temperature);
    // Keeps the first n candidates (n <= size).
    void truncate(size_t n);
    // Drops the candidates for which drop(candidate) is true, keeping the order.
    template <class F>
    void remove_if(F drop) {
        size_t k = 0;
        for (const Candidate& c : items)
            if (!drop(c)) items[k++] = c;
        if (k != items.size()) by_id = false;
        items.resize(k);
    }
};

// What a stage may read besides the candidates: the vocabulary as text. tokenizer is null for a
// sampler over bare logits (unit tests, tools without a vocabulary); stages that need text must
// say so with a clear error then.
struct SamplerContext {
    const Tokenizer* tokenizer = nullptr;
};

class SamplerStage {
public:
    virtual ~SamplerStage() = default;
    // A short name for messages ("top-k", "grammar").
    virtual const char* name() const = 0;
    // Narrows or reweights the candidates; the pick stage sets c.selected. May throw Error (for
    // example when a constraint leaves no token).
    virtual void apply(Candidates& c, const SamplerContext& ctx) = 0;
    // `token` was chosen (or fed as a prompt token): update the stage's state.
    virtual void accept(int32_t token, const SamplerContext& ctx) {}
    // Back to the state right after construction (a new sequence).
    virtual void reset() {}
};

enum class StageSlot {
    kFirst,       // before every other stage (a constraint the filters must respect)
    kBeforePick,  // after the filters, right before the pick (sees the survivors)
};

class Sampler {
public:
    // The chain for `p` (validated: throws Error naming a bad parameter). `tokenizer` may be
    // null; it must outlive the sampler.
    explicit Sampler(const SamplerParams& p, const Tokenizer* tokenizer = nullptr);
    ~Sampler();
    Sampler(const Sampler&) = delete;
    Sampler& operator=(const Sampler&) = delete;

    // Picks a token from logits (V values). Does not modify logits. Throws Error when a stage
    // leaves no candidate.
    int32_t sample(const float* logits, int64_t V);
    // Records a token (prompt or generated) in every stage.
    void accept(int32_t token);
    // Every stage back to its initial state (the draw's generator reseeded).
    void reset();
    // Adds a stage to the chain; the pick stays last.
    void add_stage(std::unique_ptr<SamplerStage> stage, StageSlot slot = StageSlot::kBeforePick);
    // The chain in order (the pick last).
    std::vector<const SamplerStage*> stages() const;
    const SamplerParams& params() const { return p_; }
    // Validates ranges; throws Error naming the bad parameter.
    static void validate(const SamplerParams& p);

private:
    SamplerParams p_;
    SamplerContext ctx_;
    std::vector<std::unique_ptr<SamplerStage>> stages_;  // the pick last
    Candidates cand_;
};

}  // namespace llmforge
