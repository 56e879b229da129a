// LowRankDelta: the inference side of LoRA adapters — for each covered weight W (out, in), the
// product is x·(W + Σ scale_i·B_i·A_i)^T computed as x·W^T + Σ scale_i·(x·A_i^T)·B_i^T, with A_i
// (r_i, in) and B_i (out, r_i) in f32, so the base stays as stored (quantised, mapped, shared by
// every request). Several adapters stack: each add() for the same weight adds one more term.
//
// Thread safety: immutable after the add() calls; apply() may run concurrently.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "model/arch/arch.h"

namespace llmforge {

class LowRankDelta final : public LinearDelta {
public:
    // Adds a term to weight w's delta: a (r, in) and b (out, r), row-major.
    void add(Weight w, int64_t rank, int64_t in, int64_t out, std::vector<float> a, std::vector<float> b, float scale);
    bool covers(Weight w) const override { return deltas_.count({w.layer, w.slot}) != 0; }
    void apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const override;
    bool empty() const { return deltas_.empty(); }

private:
    struct Term {
        int64_t rank, in, out;
        std::vector<float> a, b;
        float scale;
    };
    std::map<std::pair<int64_t, int>, std::vector<Term>> deltas_;
};

}  // namespace llmforge
