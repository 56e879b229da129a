#include "model/low_rank.h"

#include "core/error.h"
#include "kernels/cpu/gemm_f32.h"

namespace llmforge {

void LowRankDelta::add(Weight w, int64_t rank, int64_t in, int64_t out, std::vector<float> a, std::vector<float> b,
                       float scale) {
    LF_ASSERT(rank > 0 && static_cast<int64_t>(a.size()) == rank * in && static_cast<int64_t>(b.size()) == out * rank);
    deltas_[{w.layer, w.slot}].push_back(Term{rank, in, out, std::move(a), std::move(b), scale});
}

void LowRankDelta::apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const {
    // t (rows, r) = x · A^T; y += scale · t · B^T. Rank is small: the product is cheap next to W's.
    thread_local std::vector<float> t;
    for (const Term& d : deltas_.at({w.layer, w.slot})) {
        LF_ASSERT(d.in == in && d.out == out);
        t.resize(static_cast<size_t>(rows * d.rank));
        kernels::sgemm(false, true, rows, d.rank, in, 1.0f, x, in, d.a.data(), in, 0.0f, t.data(), d.rank);
        kernels::sgemm(false, true, rows, out, d.rank, d.scale, t.data(), d.rank, d.b.data(), d.rank, 1.0f, y, out);
    }
}

}  // namespace llmforge
