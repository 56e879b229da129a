// KL statistics (runtime/kl_stats.h): hand-made distributions with a known KL divergence, identical
// logits (KL 0, full top-1 agreement, ratio 1), the percentile and median rules, the aggregates
// against direct formulas, the 16-bit base store, and the runners on the TinyStories model (a model
// against itself: KL 0; against a perturbed copy of its logits: the stored base and the side-by-side
// run agree, and PPL(Q) is `perplexity()`'s).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "runtime/kl_stats.h"
#include "runtime/perplexity.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {
namespace {

std::vector<float> logp_of(const std::vector<double>& p) {
    std::vector<float> out;
    for (double x : p) out.push_back(static_cast<float>(std::log(x)));
    return out;
}

TEST(KlStats, KnownDivergenceOfTwoDistributions) {
    // p = (0.5, 0.25, 0.25), q = (0.25, 0.5, 0.25): KL(p||q) = 0.5 ln 2 - 0.25 ln 2 = 0.25 ln 2.
    const std::vector<double> p = {0.5, 0.25, 0.25}, q = {0.25, 0.5, 0.25};
    const std::vector<float> base = logp_of(p);
    std::vector<float> logits = logp_of(q);
    for (float& l : logits) l += 3.0f;  // raw logits: any shift is the same distribution
    const KlRow r = kl_row(base.data(), logits.data(), 3, 1);
    EXPECT_NEAR(r.kld, 0.25 * std::log(2.0), 1e-6);
    EXPECT_NEAR(r.nll, std::log(2.0), 1e-6);       // -ln q_1
    EXPECT_NEAR(r.nll_base, std::log(4.0), 1e-6);  // -ln p_1
    EXPECT_NEAR(r.p_diff, 0.25, 1e-6);             // q_1 - p_1
    EXPECT_FALSE(r.same_top);                      // argmax p = 0, argmax q = 1
    // The other direction is a different number (KL is not symmetric): KL(q||p) = 0.25 ln 2 too
    // here by symmetry of the pair, so use a lopsided pair for that check.
    const std::vector<double> a = {0.9, 0.1}, b = {0.5, 0.5};
    const std::vector<float> la = logp_of(a), lb = logp_of(b);
    const double kab = 0.9 * std::log(0.9 / 0.5) + 0.1 * std::log(0.1 / 0.5);
    const double kba = 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(0.5 / 0.1);
    EXPECT_NEAR(kl_row(la.data(), lb.data(), 2, 0).kld, kab, 1e-6);
    EXPECT_NEAR(kl_row(lb.data(), la.data(), 2, 0).kld, kba, 1e-6);
    EXPECT_GT(std::fabs(kab - kba), 0.1);
}

TEST(KlStats, IdenticalLogitsGiveZeroDivergenceAndFullAgreement) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0, 2);
    const int64_t V = 97;
    KlAccumulator acc;
    std::vector<float> logits(V), lp(V);
    for (int pos = 0; pos < 200; ++pos) {
        for (float& l : logits) l = nd(rng);
        log_softmax_row(logits.data(), V, lp.data());
        acc.add(kl_row(lp.data(), logits.data(), V, static_cast<int32_t>(rng() % V)));
    }
    const KlStats s = acc.stats();
    EXPECT_EQ(s.n, 200);
    EXPECT_NEAR(s.kld_mean, 0, 1e-6);
    EXPECT_NEAR(s.kld_max, 0, 1e-6);
    EXPECT_DOUBLE_EQ(s.same_top, 1.0);
    EXPECT_DOUBLE_EQ(s.same_top_unc, 0.0);
    EXPECT_NEAR(s.ppl_ratio, 1.0, 1e-6);
    EXPECT_NEAR(s.ln_ratio, 0.0, 1e-6);
    EXPECT_NEAR(s.ppl, s.ppl_base, 1e-4 * s.ppl);
    EXPECT_GT(s.ppl, 1.0);
    EXPECT_NEAR(s.ln_ppl_cor, 1.0, 1e-6);
    EXPECT_NEAR(s.dp_rms, 0.0, 1e-6);
}

TEST(KlStats, PercentilesAndMedian) {
    const std::vector<float> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // sorted, 11 values
    EXPECT_DOUBLE_EQ(kl_percentile(v, 0.0), 0);
    EXPECT_DOUBLE_EQ(kl_percentile(v, 1.0), 10);
    EXPECT_DOUBLE_EQ(kl_percentile(v, 0.5), 5);
    EXPECT_NEAR(kl_percentile(v, 0.99), 9.9, 1e-9);   // 0.99 * 10 = 9.9: between 9 and 10
    EXPECT_NEAR(kl_percentile(v, 0.999), 9.99, 1e-9);
    EXPECT_NEAR(kl_percentile(v, 0.05), 0.5, 1e-9);
    EXPECT_DOUBLE_EQ(kl_median(v), 5);
    EXPECT_DOUBLE_EQ(kl_median({1, 2, 3, 10}), 2.5);  // even count: mean of the middle two
    EXPECT_DOUBLE_EQ(kl_median({}), 0);
    EXPECT_DOUBLE_EQ(kl_percentile({}, 0.5), 0);
    EXPECT_DOUBLE_EQ(kl_percentile({7}, 0.3), 7);
}

TEST(KlStats, AggregatesMatchDirectFormulas) {
    // Hand-made rows: KLD 0..N-1 scaled, alternating agreement; the accumulator's mean, uncertainty,
    // percentiles and agreement against formulas written out here.
    KlAccumulator acc;
    const int N = 101;
    double sum = 0, sum2 = 0, nll = 0, nllb = 0;
    for (int i = 0; i < N; ++i) {
        KlRow r;
        r.kld = 0.01 * ((i * 37) % N);  // a permutation of 0..N-1: the order must not matter
        r.nll = 1.0 + 0.001 * i;
        r.nll_base = 1.0;
        r.p_diff = static_cast<float>(i % 2 == 0 ? 0.01 : -0.02);
        r.same_top = i % 4 != 0;
        acc.add(r);
        sum += r.kld, sum2 += r.kld * r.kld, nll += r.nll, nllb += r.nll_base;
    }
    const KlStats s = acc.stats();
    const double mean = sum / N, var = sum2 / N - mean * mean;
    EXPECT_NEAR(s.kld_mean, mean, 1e-12);
    EXPECT_NEAR(s.kld_unc, std::sqrt(var / (N - 1)), 1e-12);
    EXPECT_NEAR(s.kld_median, 0.5, 1e-6);   // sorted 0, 0.01, ..., 1.0: the middle is 0.50
    EXPECT_NEAR(s.kld_max, 1.0, 1e-6);
    EXPECT_NEAR(s.kld_min, 0.0, 1e-6);
    EXPECT_NEAR(s.kld_p99, 0.99, 1e-6);
    EXPECT_NEAR(s.kld_p999, 0.999, 1e-6);
    EXPECT_NEAR(s.same_top, 75.0 / 101.0, 1e-12);  // i % 4 == 0 for 26 of 101
    EXPECT_NEAR(s.ppl, std::exp(nll / N), 1e-9);
    EXPECT_NEAR(s.ppl_base, std::exp(1.0), 1e-9);
    EXPECT_NEAR(s.ppl_ratio, std::exp(nll / N - nllb / N), 1e-9);
    EXPECT_NEAR(s.dp_max, 0.01, 1e-7);
    EXPECT_NEAR(s.dp_min, -0.02, 1e-7);
    EXPECT_NEAR(s.dp_rms, std::sqrt((51 * 1e-4 + 50 * 4e-4) / N), 1e-7);
    const std::string text = format_kl_stats(s);
    for (const char* k : {"Mean    KLD:", "99.9%   KLD:", "99.0%   KLD:", "Median  KLD:", "Maximum KLD:",
                          "Mean PPL(Q)/PPL(base)", "Same top p:", "RMS Δp"})
        EXPECT_NE(text.find(k), std::string::npos) << k << "\n" << text;
}

TEST(KlStats, FewPositionsHaveNoUncertaintyLikeLlamaCpp) {
    KlAccumulator acc;
    for (int i = 0; i < 5; ++i) acc.add(KlRow{0.1 * i, 1.0 + i, 1.0, 0.0f, true});
    const KlStats s = acc.stats();
    EXPECT_DOUBLE_EQ(s.kld_unc, 0.0);
    EXPECT_DOUBLE_EQ(s.ppl_unc, 0.0);
    EXPECT_NEAR(s.kld_mean, 0.2, 1e-12);
}

TEST(KlStats, SixteenBitStoreIsCloseAndFloorsTheTail) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 4);
    const int64_t V = 300;
    BaseLogProbs f(V, false), h(V, true);
    std::vector<std::vector<float>> rows;
    for (int r = 0; r < 4; ++r) {
        std::vector<float> l(V);
        for (float& x : l) x = nd(rng);
        l[7] = -80.0f;  // far under the top: below the 16-nat floor
        f.push(l.data());
        h.push(l.data());
        rows.push_back(l);
    }
    EXPECT_EQ(h.rows(), 4);
    EXPECT_LT(static_cast<double>(h.bytes()), 0.55 * static_cast<double>(f.bytes()));  // about half the bytes
    std::vector<float> a(V), b(V);
    for (int r = 0; r < 4; ++r) {
        f.row(r, a.data());
        h.row(r, b.data());
        const float top = *std::max_element(a.begin(), a.end());
        for (int64_t i = 0; i < V; ++i) {
            if (a[i] > top - 16) {
                EXPECT_NEAR(a[i], b[i], 16.0 / 65535 * 0.51 + 1e-5) << r << " " << i;
            } else {
                EXPECT_NEAR(b[i], top - 16, 1e-3);  // the floor
            }
        }
        // KL against the stored rows: the 16-bit one is within rounding of the exact one.
        std::vector<float> q = rows[r];
        for (float& x : q) x += 0.3f * nd(rng) / 4;
        EXPECT_NEAR(kl_row(a.data(), q.data(), V, 3).kld, kl_row(b.data(), q.data(), V, 3).kld, 1e-3);
    }
}

TEST(KlStats, RunnersOnTinyStories) {
    LF_REQUIRE_ASSET(bin, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    LF_REQUIRE_ASSET(txt, "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt");
    auto m = Model::load(bin, tokp);
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> ids = tok->encode(test::read_file(txt), true, false);
    ASSERT_GT(ids.size(), 200u);
    KlOptions opt;
    opt.n_ctx = 100;
    opt.n_threads = 2;
    // A model against itself: no divergence, full agreement, PPL(Q) = PPL(base) = perplexity().
    const BaseLogProbs base = base_log_probs(*m, ids, opt);
    const PerplexityResult pr = perplexity(*m, ids, opt.n_ctx, 2);
    EXPECT_EQ(base.rows(), pr.n_scored);
    EXPECT_NEAR(base.ppl, pr.ppl, 1e-4 * pr.ppl);
    const KlStats self = compare_to_base(*m, base, ids, opt);
    EXPECT_EQ(self.n, pr.n_scored);
    EXPECT_NEAR(self.kld_mean, 0, 1e-6);
    EXPECT_DOUBLE_EQ(self.same_top, 1.0);
    EXPECT_NEAR(self.ppl, pr.ppl, 1e-4 * pr.ppl);
    EXPECT_NEAR(self.ppl_ratio, 1.0, 1e-6);
    const KlStats side = compare_models(*m, *m, ids, opt);
    EXPECT_EQ(side.n, self.n);
    EXPECT_NEAR(side.kld_mean, 0, 1e-6);
    // The 16-bit store (budget 0) gives nearly the same numbers.
    KlOptions q16 = opt;
    q16.f32_budget = 0;
    const BaseLogProbs base16 = base_log_probs(*m, ids, q16);
    EXPECT_TRUE(base16.quantized());
    EXPECT_FALSE(base.quantized());
    const KlStats self16 = compare_to_base(*m, base16, ids, q16);
    EXPECT_LT(self16.kld_mean, 1e-4);
    EXPECT_GT(self16.same_top, 0.99);
    // llama.cpp's rule: the second half of each window only (100-token windows score 49 rows each).
    KlOptions half = opt;
    half.second_half = true;
    const KlStats h = compare_models(*m, *m, ids, half);
    EXPECT_LT(h.n, self.n / 2 + 5);
    EXPECT_GT(h.n, 0);
    // A base from another rule is refused; so is another text.
    EXPECT_THROW(compare_to_base(*m, base, ids, half), Error);
    std::vector<int32_t> other = ids;
    other[10] = (other[10] + 1) % 512;
    EXPECT_THROW(compare_to_base(*m, base, other, opt), Error);
    EXPECT_THROW(base_log_probs(*m, {1}, opt), Error);
}

}  // namespace
}  // namespace llmforge
