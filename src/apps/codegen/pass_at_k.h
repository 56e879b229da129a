// The unbiased pass@k estimator of Chen et al. 2021 (HumanEval): with n samples of which c pass,
// pass@k = 1 - C(n-c, k) / C(n, k), computed as a product so that large n does not overflow.
#pragma once

#include <cstdint>
#include <vector>

namespace llmforge::codegen {

// pass@k for one problem; k > n is undefined (returns -1: the caller reports "n/a").
double pass_at_k(int64_t n, int64_t c, int64_t k);
// The mean over problems of pass_at_k(n_i, c_i, k); -1 when some problem has fewer than k samples.
double mean_pass_at_k(const std::vector<int64_t>& n, const std::vector<int64_t>& c, int64_t k);

}  // namespace llmforge::codegen
