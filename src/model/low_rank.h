// LowRankDelta: the inference side of a LoRA adapter — for each covered weight W (out, in), the
// product is x·(W + scale·B·A)^T computed as x·W^T + scale·(x·A^T)·B^T, with A (r, in) and
// B (out, r) in f32, so the base stays as stored (quantised, mapped, shared by every request).
//
// Thread safety: immutable after set(); apply() may run concurrently.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "model/arch/arch.h"

namespace llmforge {

class LowRankDelta final : public LinearDelta {
public:
    // Adds (or replaces) the delta of weight w: a (r, in) and b (out, r), row-major.
    void set(Weight w, int64_t rank, int64_t in, int64_t out, std::vector<float> a, std::vector<float> b, float scale);
    bool covers(Weight w) const override { return deltas_.count({w.layer, w.slot}) != 0; }
    void apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const override;

private:
    struct Delta {
        int64_t rank, in, out;
        std::vector<float> a, b;
        float scale;
    };
    std::map<std::pair<int64_t, int>, Delta> deltas_;
};

}  // namespace llmforge
