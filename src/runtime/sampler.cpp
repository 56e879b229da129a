#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace llmforge {

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { validate(p); }

void Sampler::validate(const SamplerParams& p) {
    if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
        fail("sampler: temperature %g is invalid (expected >= 0; 0 means greedy)", p.temperature);
    if (!(p.top_p > 0) || p.top_p > 1)
        fail("sampler: top_p %g is invalid (expected 0 < top_p <= 1)", p.top_p);
    if (!(p.min_p >= 0) || p.min_p > 1)
        fail("sampler: min_p %g is invalid (expected 0 <= min_p <= 1)", p.min_p);
    if (!(p.repeat_penalty > 0))
        fail("sampler: repeat_penalty %g is invalid (expected > 0; 1 is off)", p.repeat_penalty);
    if (!std::isfinite(p.frequency_penalty) || !std::isfinite(p.presence_penalty))
        fail("sampler: frequency/presence penalties must be finite numbers");
    for (const auto& [id, bias] : p.logit_bias) {
        if (id < 0) fail("sampler: logit_bias names token %d, expected a token id >= 0", id);
        if (!(bias >= -kMaxLogitBias && bias <= kMaxLogitBias)) {
            fail("sampler: logit_bias for token %d is %g, expected a value in [%g, %g]", id, bias,
                 -kMaxLogitBias, kMaxLogitBias);
        }
    }
}

void Sampler::reset() {
    history_.clear();
    rng_.seed(p_.seed);
}

void Sampler::accept(int32_t token) {
    if (p_.penalty_last_n <= 0) return;
    history_.push_back(token);
    while (static_cast<int32_t>(history_.size()) > p_.penalty_last_n) history_.pop_front();
}

int32_t Sampler::sample(const float* logits, int64_t V) {
    LF_ASSERT(V > 0);
    cand_.resize(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    for (const auto& [id, bias] : p_.logit_bias) {
        if (id < V) cand_[id].logit += bias;  // validate() ruled out id < 0
    }

    const bool penalise = !history_.empty() && (p_.repeat_penalty != 1.0f ||
                                                 p_.frequency_penalty != 0.0f ||
                                                 p_.presence_penalty != 0.0f);
    if (penalise) {
        std::unordered_map<int32_t, int> count;
        for (int32_t t : history_) ++count[t];
        for (const auto& [id, n] : count) {
            if (id < 0 || id >= V) continue;
            float& l = cand_[id].logit;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= static_cast<float>(n) * p_.frequency_penalty + p_.presence_penalty;
        }
    }

    if (p_.temperature <= 0.0f) {
        size_t best = 0;
        for (size_t i = 1; i < cand_.size(); ++i)
            if (cand_[i].logit > cand_[best].logit) best = i;
        return cand_[best].id;
    }

    auto by_logit = [](const Cand& a, const Cand& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    size_t n = cand_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
        std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
        n = static_cast<size_t>(p_.top_k);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    cand_.resize(n);

    // Softmax over the survivors (at temperature 1 for the p-based filters, as llama.cpp does).
    auto softmax = [&](float temp) {
        const float mx = cand_[0].logit;
        double sum = 0;
        for (auto& c : cand_) {
            c.p = std::exp((c.logit - mx) / temp);
            sum += c.p;
        }
        for (auto& c : cand_) c.p = static_cast<float>(c.p / sum);
    };
    softmax(1.0f);
    if (p_.top_p < 1.0f) {
        double cum = 0;
        size_t keep = cand_.size();
        for (size_t i = 0; i < cand_.size(); ++i) {
            cum += cand_[i].p;
            if (cum >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
        cand_.resize(keep);
    }
    if (p_.min_p > 0.0f) {
        const float thr = cand_[0].p * p_.min_p;
        size_t keep = 1;
        while (keep < cand_.size() && cand_[keep].p >= thr) ++keep;
        cand_.resize(keep);
    }
    softmax(p_.temperature);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double r = u(rng_);
    double cum = 0;
    for (const auto& c : cand_) {
        cum += c.p;
        if (r < cum) return c.id;
    }
    return cand_.back().id;
}

}  // namespace llmforge
