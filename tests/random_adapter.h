// Test-only: random PEFT adapters for a model (model/adapter.h), seeded: a LoRA on the given
// target modules (A and B ~ N(0, 0.1²)) and a prompt-tuning adapter (rows ~ N(0, 0.5²)).
#pragma once

#include <random>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge::test {


inline Adapter make_lora(const Model& m, const std::vector<std::string>& targets, int64_t r, double alpha,
                         uint64_t seed) {
    Adapter ad;
    ad.cfg.type = PeftType::kLora;
    ad.cfg.r = r;
    ad.cfg.alpha = alpha;
    ad.cfg.target_modules = targets;
    for (const LoraSite& s : lora_sites(m.arch(), m.config(), targets, "test")) {
        LoraPair p;
        p.site = s;
        p.r = r;
        p.a = randn(static_cast<size_t>(r * s.in), ++seed, 0.1f);
        p.b = randn(static_cast<size_t>(s.out * r), ++seed, 0.1f);
        ad.lora.push_back(std::move(p));
    }
    return ad;
}

inline Adapter make_prompt(const Model& m, int64_t n, uint64_t seed) {
    Adapter ad;
    ad.cfg.type = PeftType::kPromptTuning;
    ad.cfg.num_virtual_tokens = n;
    ad.cfg.token_dim = m.config().n_embd;
    ad.prompt = randn(static_cast<size_t>(n * m.config().n_embd), seed, 0.5f);
    return ad;
}

}  // namespace llmforge::test
