// The Llama block family, shared by the architectures built from it (llama.cpp here, qwen2,
// qwen3, mistral): pre-norm attention with grouped-query heads and RoPE, then a SwiGLU FFN.
// What differs between them is data (their tensor tables and hyper-parameters), and the block
// reads those: optional q/k/v biases, optional per-head q/k norms, an optional sliding window.
#pragma once

#include <vector>

#include "model/arch/arch.h"

namespace llmforge::llama_family {

// Weight slots of the family (global and per-layer share the numbering).
enum Slot : int {
    kTokEmbd, kOutputNorm, kOutput, kRopeFreqs,
    kAttnNorm, kWq, kWk, kWv, kBq, kBk, kBv, kQNorm, kKNorm, kWo,
    kFfnNorm, kGate, kUp, kDown,
    kNumSlots
};

// The Llama tensor table: embeddings, final norm, untied head, optional rope_freqs, and per layer
// attention norm, Q/K/V/O, FFN norm and gate/up/down. qkv_bias adds q/k/v biases when the config
// asks for them (ModelConfig::qkv_bias); qk_norm adds the per-head q/k RMSNorm gains.
std::vector<TensorSpec> tensor_table(bool qk_norm);

// The forward pass of every member of the family, in run_decoder's three parts.
Act embed(Ops& o, const ModelConfig& c);
Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h);
Act head(Ops& o, const ModelConfig& c, Act h);

// The common constraints (heads divide, head size even) every member checks.
void validate(const ModelConfig& c, const std::string& where);

}  // namespace llmforge::llama_family
