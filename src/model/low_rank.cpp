#include "model/low_rank.h"

#include <algorithm>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"

namespace llmforge {

void LowRankDelta::add(Weight w, int64_t rank, int64_t in, int64_t out, const std::vector<float>& a,
                       const std::vector<float>& b, float scale) {
    add_term({w.layer, w.slot, -1}, rank, in, out, a, b, scale);
}

void LowRankDelta::add_expert(Weight w, int64_t expert, int64_t rank, int64_t in, int64_t out,
                              const std::vector<float>& a, const std::vector<float>& b, float scale) {
    LF_ASSERT(expert >= 0);
    add_term({w.layer, w.slot, expert}, rank, in, out, a, b, scale);
    expert_slots_.insert({w.layer, w.slot});
}

void LowRankDelta::add_term(Key key, int64_t rank, int64_t in, int64_t out, const std::vector<float>& a,
                            const std::vector<float>& b, float scale) {
    LF_ASSERT(rank > 0 && static_cast<int64_t>(a.size()) == rank * in && static_cast<int64_t>(b.size()) == out * rank);
    Term t{rank, in, out, a, std::vector<float>(static_cast<size_t>(rank * out))};
    for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < rank; ++k) t.bt[k * out + o] = scale * b[o * rank + k];
    deltas_[key].push_back(std::move(t));
}

void LowRankDelta::apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const {
    apply_terms(deltas_.at({w.layer, w.slot, -1}), x, rows, in, y, out);
}

void LowRankDelta::apply_expert(Weight w, int64_t expert, const float* x, int64_t rows, int64_t in, float* y,
                                int64_t out) const {
    apply_terms(deltas_.at({w.layer, w.slot, expert}), x, rows, in, y, out);
}

// ΔW = Σ B·A over the terms, bt = scale·Bᵀ (r, out): x · ΔW[o0 : o0 + n, :] = Σ_k (x · bt[k, o0 :]) · A[k, :].
void LowRankDelta::apply_rows_t(Weight w, int64_t o0, int64_t n, const float* x, float* y) const {
    const kernels::KernelTable& kt = kernels::kernels();
    const auto dot = kt.vec_dot[static_cast<int>(DType::F32)];
    for (const Term& tm : deltas_.at({w.layer, w.slot, -1})) {
        LF_ASSERT(o0 >= 0 && o0 + n <= tm.out);
        for (int64_t k = 0; k < tm.rank; ++k) kt.axpy(tm.in, dot(n, tm.bt.data() + k * tm.out + o0, x), tm.a.data() + k * tm.in, y);
    }
}

// ΔW[o0 : o0 + n, :] · x = Σ_k (A[k, :] · x) · bt[k, o0 : o0 + n].
void LowRankDelta::apply_rows(Weight w, int64_t o0, int64_t n, const float* x, float* y) const {
    const kernels::KernelTable& kt = kernels::kernels();
    const auto dot = kt.vec_dot[static_cast<int>(DType::F32)];
    for (const Term& tm : deltas_.at({w.layer, w.slot, -1})) {
        LF_ASSERT(o0 >= 0 && o0 + n <= tm.out);
        for (int64_t k = 0; k < tm.rank; ++k) kt.axpy(n, dot(tm.in, tm.a.data() + k * tm.in, x), tm.bt.data() + k * tm.out + o0, y);
    }
}

void LowRankDelta::apply_terms(const std::vector<Term>& terms, const float* x, int64_t rows, int64_t in, float* y,
                               int64_t out) {
    thread_local std::vector<float> t, d;
    if (rows == 1) {
        const kernels::KernelTable& kt = kernels::kernels();
        const auto dot = kt.vec_dot[static_cast<int>(DType::F32)];
        d.assign(static_cast<size_t>(out), 0.0f);
        for (const Term& tm : terms) {
            LF_ASSERT(tm.in == in && tm.out == out);
            t.resize(static_cast<size_t>(tm.rank));
            for (int64_t k = 0; k < tm.rank; ++k) t[k] = dot(in, tm.a.data() + k * in, x);
            for (int64_t k = 0; k < tm.rank; ++k) kt.axpy(out, t[k], tm.bt.data() + k * out, d.data());
        }
        kt.add(out, d.data(), y);
        return;
    }
    // t (rows, r) = x · A^T; y += t · (scale·B^T). Rank is small: the product is cheap next to W's.
    for (const Term& tm : terms) {
        LF_ASSERT(tm.in == in && tm.out == out);
        t.resize(static_cast<size_t>(rows * tm.rank));
        kernels::sgemm(false, true, rows, tm.rank, in, 1.0f, x, in, tm.a.data(), in, 0.0f, t.data(), tm.rank);
        kernels::sgemm(false, false, rows, out, tm.rank, 1.0f, t.data(), tm.rank, tm.bt.data(), out, 1.0f, y, out);
    }
}

}  // namespace llmforge
