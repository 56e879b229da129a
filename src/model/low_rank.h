// LowRankDelta: the inference side of LoRA adapters — for each covered weight W (out, in), the
// product is x·(W + Σ scale_i·B_i·A_i)^T computed as x·W^T + Σ scale_i·(x·A_i^T)·B_i^T, with A_i
// (r_i, in) and B_i (out, r_i) in f32, so the base stays as stored (quantised, mapped, shared by
// every request). Several adapters stack: each add() for the same weight adds one more term.
//
// Two ways to compute, chosen by the number of rows of a call:
//  * one row: r dots of length `in` (the kernel table's f32 dot), then the r scaled rows of Bᵀ
//    accumulated in k order into a row buffer added once. A row's bits then depend on that row
//    alone; the engine's batch-invariant mode (the server's: a request's output is the same alone
//    or beside other adapters' requests) calls with one row at a time, and a one-row call costs
//    ~1 µs against ~4.6 µs of BLAS call overhead (in = 768, r = 16).
//  * several rows: two sgemm calls (OpenBLAS; its summation depends on the row count, which only
//    batch-invariant callers care about, and they never pass several rows).
//
// Thread safety: immutable after the add() calls; apply() may run concurrently.
#pragma once

#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "model/arch/arch.h"

namespace llmforge {

class LowRankDelta final : public LinearDelta {
public:
    // Adds a term to weight w's delta: a (r, in) and b (out, r), row-major.
    void add(Weight w, int64_t rank, int64_t in, int64_t out, const std::vector<float>& a, const std::vector<float>& b,
             float scale);
    // The same for routed expert `expert` of the (E, out, in) stack in slot w.
    void add_expert(Weight w, int64_t expert, int64_t rank, int64_t in, int64_t out, const std::vector<float>& a,
                    const std::vector<float>& b, float scale);
    bool covers(Weight w) const override { return deltas_.count({w.layer, w.slot, -1}) != 0; }
    void apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const override;
    bool covers_experts(Weight w) const override { return expert_slots_.count({w.layer, w.slot}) != 0; }
    bool covers_expert(Weight w, int64_t expert) const override {
        return deltas_.count({w.layer, w.slot, expert}) != 0;
    }
    void apply_expert(Weight w, int64_t expert, const float* x, int64_t rows, int64_t in, float* y,
                      int64_t out) const override;
    void apply_rows_t(Weight w, int64_t o0, int64_t n, const float* x, float* y) const override;
    void apply_rows(Weight w, int64_t o0, int64_t n, const float* x, float* y) const override;
    bool empty() const { return deltas_.empty(); }

private:
    struct Term {
        int64_t rank, in, out;
        std::vector<float> a;   // (r, in)
        std::vector<float> bt;  // (r, out) = scale · Bᵀ
    };
    using Key = std::tuple<int64_t, int, int64_t>;  // layer, slot, expert (-1: a 2-D weight)
    void add_term(Key k, int64_t rank, int64_t in, int64_t out, const std::vector<float>& a,
                  const std::vector<float>& b, float scale);
    static void apply_terms(const std::vector<Term>& terms, const float* x, int64_t rows, int64_t in, float* y,
                            int64_t out);
    std::map<Key, std::vector<Term>> deltas_;
    std::set<std::pair<int64_t, int>> expert_slots_;  // (layer, slot) of stacks with some expert's term
};

}  // namespace llmforge
