#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "core/error.h"

namespace llmforge {

// ------------------------------------------------------------------------------------ Candidates

namespace {

bool by_logit(const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }

}  // namespace

void Candidates::sort() {
    if (sorted) return;
    std::sort(items.begin(), items.end(), by_logit);
    sorted = true;
    by_id = false;
}

void Candidates::softmax(float temperature) {
    sort();
    has_p = true;
    if (items.empty()) return;
    // The float exp and the double sum in candidate order are part of the seeded results the
    // tests pin: keep this arithmetic as it is.
    const float mx = items[0].logit;
    double sum = 0;
    for (auto& c : items) {
        c.p = std::exp((c.logit - mx) / temperature);
        sum += c.p;
    }
    for (auto& c : items) c.p = static_cast<float>(c.p / sum);
}

void Candidates::truncate(size_t n) {
    if (n >= items.size()) return;
    items.resize(n);
    by_id = false;
}

// ---------------------------------------------------------------------------------------- stages

namespace {

// Calls change(id, logit) for each token of `ids` (distinct) that is still a candidate.
template <class F>
void adjust_logits(Candidates& c, const std::vector<int32_t>& ids, F change) {
    if (c.by_id) {
        const int64_t V = static_cast<int64_t>(c.items.size());
        for (int32_t id : ids)
            if (id >= 0 && id < V) change(id, c.items[id].logit);
    } else {
        std::unordered_map<int32_t, size_t> at;
        for (size_t i = 0; i < c.items.size(); ++i) at.emplace(c.items[i].id, i);
        for (int32_t id : ids) {
            auto it = at.find(id);
            if (it != at.end()) change(id, c.items[it->second].logit);
        }
    }
    c.sorted = false;
    c.has_p = false;
}

class LogitBiasStage final : public SamplerStage {
public:
    explicit LogitBiasStage(std::vector<std::pair<int32_t, float>> bias) : bias_(std::move(bias)) {
        for (const auto& [id, b] : bias_) by_token_[id] += b;
        for (const auto& [id, b] : by_token_) ids_.push_back(id);
    }
    const char* name() const override { return "logit-bias"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (c.by_id) {  // the usual case: one add per entry, in the order given
            const int64_t V = static_cast<int64_t>(c.items.size());
            for (const auto& [id, b] : bias_)
                if (id < V) c.items[id].logit += b;  // validate() ruled out id < 0
            c.sorted = c.has_p = false;
            return;
        }
        adjust_logits(c, ids_, [&](int32_t id, float& l) { l += by_token_[id]; });
    }

private:
    std::vector<std::pair<int32_t, float>> bias_;
    std::vector<int32_t> ids_;
    std::unordered_map<int32_t, float> by_token_;
};

class PenaltiesStage final : public SamplerStage {
public:
    explicit PenaltiesStage(const SamplerParams& p)
        : repeat_(p.repeat_penalty), frequency_(p.frequency_penalty), presence_(p.presence_penalty),
          last_n_(p.penalty_last_n) {}
    const char* name() const override { return "penalties"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (history_.empty()) return;
        std::unordered_map<int32_t, int> count;
        for (int32_t t : history_) ++count[t];
        ids_.clear();
        for (const auto& [id, n] : count) ids_.push_back(id);
        adjust_logits(c, ids_, [&](int32_t id, float& l) {
            l = l > 0 ? l / repeat_ : l * repeat_;
            l -= static_cast<float>(count[id]) * frequency_ + presence_;
        });
    }
    void accept(int32_t token, const SamplerContext&) override {
        history_.push_back(token);
        while (static_cast<int32_t>(history_.size()) > last_n_) history_.pop_front();
    }
    void reset() override { history_.clear(); }

private:
    float repeat_, frequency_, presence_;
    int32_t last_n_;
    std::deque<int32_t> history_;
    std::vector<int32_t> ids_;
};

class TopKStage final : public SamplerStage {
public:
    explicit TopKStage(int32_t k) : k_(static_cast<size_t>(k)) {}
    const char* name() const override { return "top-k"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (c.sorted || k_ >= c.items.size()) {
            c.sort();
        } else {
            std::partial_sort(c.items.begin(), c.items.begin() + static_cast<std::ptrdiff_t>(k_), c.items.end(), by_logit);
            c.sorted = true;
        }
        c.truncate(k_);
    }

private:
    size_t k_;
};

// The p-based filters compare probabilities at temperature 1 (as llama.cpp does), computed once
// over the survivors of top-k and not renormalised between top-p and min-p.
class TopPStage final : public SamplerStage {
public:
    explicit TopPStage(float p) : p_(p) {}
    const char* name() const override { return "top-p"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (!c.has_p) c.softmax(1.0f);
        double cum = 0;
        for (size_t i = 0; i < c.items.size(); ++i) {
            cum += c.items[i].p;
            if (cum >= p_) {
                c.truncate(i + 1);
                break;
            }
        }
    }

private:
    float p_;
};

class MinPStage final : public SamplerStage {
public:
    explicit MinPStage(float p) : p_(p) {}
    const char* name() const override { return "min-p"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (!c.has_p) c.softmax(1.0f);
        if (c.items.empty()) return;
        const float thr = c.items[0].p * p_;
        size_t keep = 1;
        while (keep < c.items.size() && c.items[keep].p >= thr) ++keep;
        c.truncate(keep);
    }

private:
    float p_;
};

// Sets p to the softmax of logit / T over the survivors; the logits stay as they are.
class TemperatureStage final : public SamplerStage {
public:
    explicit TemperatureStage(float t) : t_(t) {}
    const char* name() const override { return "temperature"; }
    void apply(Candidates& c, const SamplerContext&) override { c.softmax(t_); }

private:
    float t_;
};

class GreedyStage final : public SamplerStage {
public:
    const char* name() const override { return "greedy"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (c.sorted) {
            c.selected = c.items[0].id;
            return;
        }
        size_t best = 0;
        for (size_t i = 1; i < c.items.size(); ++i) {
            const Candidate& a = c.items[i];
            const Candidate& b = c.items[best];
            if (a.logit > b.logit || (a.logit == b.logit && a.id < b.id)) best = i;
        }
        c.selected = c.items[best].id;
    }
};

// A draw from p (softmax at temperature 1 if no stage set p), in sorted order, from the seeded
// generator.
class DrawStage final : public SamplerStage {
public:
    explicit DrawStage(uint64_t seed) : seed_(seed), rng_(seed) {}
    const char* name() const override { return "draw"; }
    void apply(Candidates& c, const SamplerContext&) override {
        if (!c.has_p) c.softmax(1.0f);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const double r = u(rng_);
        double cum = 0;
        for (const auto& x : c.items) {
            cum += x.p;
            if (r < cum) {
                c.selected = x.id;
                return;
            }
        }
        c.selected = c.items.back().id;
    }
    void reset() override { rng_.seed(seed_); }

private:
    uint64_t seed_;
    std::mt19937_64 rng_;
};

}  // namespace

// --------------------------------------------------------------------------------------- Sampler

Sampler::Sampler(const SamplerParams& p, const Tokenizer* tokenizer) : p_(p) {
    validate(p);
    ctx_.tokenizer = tokenizer;
    if (!p.logit_bias.empty()) stages_.push_back(std::make_unique<LogitBiasStage>(p.logit_bias));
    const bool penalise = p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    if (penalise && p.penalty_last_n > 0) stages_.push_back(std::make_unique<PenaltiesStage>(p));
    if (p.top_k > 0) stages_.push_back(std::make_unique<TopKStage>(p.top_k));
    if (p.top_p < 1.0f) stages_.push_back(std::make_unique<TopPStage>(p.top_p));
    if (p.min_p > 0.0f) stages_.push_back(std::make_unique<MinPStage>(p.min_p));
    if (p.temperature > 0.0f) {
        stages_.push_back(std::make_unique<TemperatureStage>(p.temperature));
        stages_.push_back(std::make_unique<DrawStage>(p.seed));
    } else {
        stages_.push_back(std::make_unique<GreedyStage>());
    }
}

Sampler::~Sampler() = default;

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

void Sampler::add_stage(std::unique_ptr<SamplerStage> stage, StageSlot slot) {
    LF_ASSERT(stage != nullptr);
    auto at = slot == StageSlot::kFirst ? stages_.begin() : stages_.end() - 1;  // the pick stays last
    stages_.insert(at, std::move(stage));
}

std::vector<const SamplerStage*> Sampler::stages() const {
    std::vector<const SamplerStage*> out;
    for (const auto& s : stages_) out.push_back(s.get());
    return out;
}

void Sampler::reset() {
    for (auto& s : stages_) s->reset();
}

void Sampler::accept(int32_t token) {
    for (auto& s : stages_) s->accept(token, ctx_);
}

int32_t Sampler::sample(const float* logits, int64_t V) {
    LF_ASSERT(V > 0);
    cand_.items.resize(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) cand_.items[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    cand_.by_id = true;
    cand_.sorted = cand_.has_p = false;
    cand_.selected = -1;
    for (auto& s : stages_) {
        s->apply(cand_, ctx_);
        if (cand_.items.empty()) {
            fail("sampler: the '%s' stage left no candidate token (a constraint that allows nothing here?)", s->name());
        }
    }
    LF_ASSERT(cand_.selected >= 0);  // the last stage is a pick
    return cand_.selected;
}

}  // namespace llmforge
