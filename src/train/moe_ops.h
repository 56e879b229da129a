// The tape ops of DeepSeek's blocks (model/arch/deepseek2.cpp) that the Llama family's ops (ops.h)
// do not cover, each with its forward and backward side by side (moe_ops.cpp):
//   * column slices and concatenations per head group (MLA's query/key/value parts);
//   * DeepSeekMoE routing (model/moe.h's route_experts: the one rule) with the gradient of the
//     chosen experts' weights into the router logits, and V3's sequence-wise balance loss;
//   * the routed experts: tokens gathered per expert, SwiGLU, down product, weighted scatter,
//     with gradients into the (E, rows, cols) expert tensors, the weights and the input.
// Shape mismatches are programming errors (LF_ASSERT), as in ops.h.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/arch/arch.h"
#include "train/tape.h"

namespace llmforge::train {

// x (N, G·W) as G groups of W columns: columns [offset, offset + width) of each group,
// (N, G·width).
Var columns(Tape& t, Var x, int64_t groups, int64_t offset, int64_t width);

// Per group g of `groups`: [a's group g (wa columns), b's group g (wb)] -> (N, G·(wa + wb)).
// b_shared: b is one group (N, wb) repeated in every group (MLA's shared rotary key), its gradient
// summed over the groups; else b is (N, G·wb).
Var concat_columns(Tape& t, Var a, Var b, int64_t groups, bool b_shared = false);

// The routing of N = batch·T tokens from their router logits (N, E).
struct MoeRoute {
    Var weights = nullptr;  // (N, K): route_experts' weights, differentiable into the logits
    std::shared_ptr<const std::vector<int32_t>> sel;  // (N, K) chosen experts (not differentiated)
    std::vector<int64_t> load;  // (E) tokens routed to each expert
    double aux = 0;             // the balance loss's value (0 when aux_alpha is 0)
};
// Routes every row with route_experts (bias: (E) selection bias or null; it only chooses). The
// weights' gradient flows through the normalisation and scale into the scores and from them into
// the logits (softmax or sigmoid); which experts are chosen is not differentiated.
// aux_alpha > 0: DeepSeek-V3's sequence-wise balance loss (its eq. 17-19), averaged over the
// `batch` sequences of T = N / batch rows: α·Σ_i f_i·P_i with f_i = E / (K·T) · (tokens of the
// sequence routed to i) and P_i = the mean over the sequence of s_i / Σ_j s_j. It is not a node:
// its value is returned in `aux` and the backward adds its gradient (times Tape::loss_seed())
// into the logits, as if it were added to the loss.
MoeRoute moe_route(Tape& t, Var logits, const float* bias, const MoeSpec& m, int64_t batch, float aux_alpha = 0.0f);

// LoRA on each routed expert of one stack (PEFT's per-expert modules): expert e's product gets
// + scale · dropout(x) · a[e]ᵀ · b[e]ᵀ, a[e] (r, cols) and b[e] (rows, r) trainable leaves (null:
// expert e not covered). The dropout mask of a token's input row is drawn from (seed, e, token,
// column), so it is the same however tokens are grouped, and recomputed in backward.
struct ExpertLora {
    std::vector<Var> a, b;  // E entries each
    float scale = 1.0f;
    float dropout = 0.0f;
    uint64_t seed = 0;
};
// One (E, rows, cols) expert tensor: a trainable leaf (var, f32, gets the gradient) or a frozen
// tensor in any dtype the kernel table dequantises (read one expert at a time, no gradient).
struct ExpertWeight {
    Var var = nullptr;
    const Tensor* frozen = nullptr;
    const float* values = nullptr;  // var's values to read instead of var->data (QAT); null: var->data
    std::shared_ptr<const ExpertLora> lora = nullptr;  // null: none
};
// The routed experts: y (N, C) = Σ_k w[n, k] · down_e(silu(gate_e x_n) ⊙ up_e x_n), e = sel[n, k];
// gate, up: (E, F, C), down: (E, C, F), each with its optional per-expert LoRA. Gradients into x,
// w, the trainable expert tensors and the LoRA matrices. In fp32 only (the expert products do not
// round to bf16/fp16).
Var moe_experts(Tape& t, Var x, Var w, std::shared_ptr<const std::vector<int32_t>> sel, int64_t n_expert,
                const ExpertWeight& gate, const ExpertWeight& up, const ExpertWeight& down);

}  // namespace llmforge::train
