// DeepSeekMoE routing: the one definition of which experts a token goes to and with what weight,
// used by the engine (EagerOps::moe), the trainer (TapeOps::moe) and the tests.
//
// For one token with router logits z (E):
//   s = softmax(z) or sigmoid(z); choice = s + bias (bias: V3's e_score_correction_bias, only
//   for choosing). With groups (n_group > 1) the experts are n_group equal runs; a group scores
//   its best member's choice (softmax, V2's group_limited_greedy) or its two best members' sum
//   (sigmoid, V3's noaux_tc); the topk_group best groups are kept and the others' experts
//   cannot be chosen. The n_used experts with the highest choice are chosen; ties go to the
//   lower index (a group tie to the lower group). Weights are s of the chosen (not the choice),
//   divided by their sum when norm (and n_used > 1), times scale.
#pragma once

#include <cstdint>
#include <vector>

#include "model/arch/arch.h"

namespace llmforge {

// Routes one token. logits: (E); bias: (E) or null. Writes sel[n_used] (in order of decreasing
// choice) and weight[n_used]; scores (E) receives s. work: at least 2·E floats.
void route_experts(const float* logits, const float* bias, const MoeSpec& m, int32_t* sel, float* weight,
                   float* scores, float* work);

// Tokens grouped by expert after routing N tokens: for expert e, the (token, slot) pairs
// [begin[e], begin[e+1]) of `items` (slot = position in the token's sel), tokens ascending.
struct ExpertGroups {
    std::vector<int64_t> begin;  // E + 1
    std::vector<int32_t> token, slot;
    void build(const int32_t* sel, int64_t n_tokens, int64_t n_used, int64_t n_expert);
};

}  // namespace llmforge
