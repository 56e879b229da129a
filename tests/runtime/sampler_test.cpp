// Sampler chain: each stage's effect on known distributions, seeds, and bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "runtime/sampler.h"

using namespace llmforge;

namespace {

std::map<int, int> histogram(SamplerParams p, const std::vector<float>& logits, int draws) {
    Sampler s(p);
    std::map<int, int> h;
    for (int i = 0; i < draws; ++i) ++h[s.sample(logits.data(), logits.size())];
    return h;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
    SamplerParams p;
    p.temperature = 0;
    Sampler s(p);
    std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
    EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
    SamplerParams p;
    p.temperature = 1.5f;
    p.top_k = 1;
    auto h = histogram(p, {0.0f, 1.0f, 0.5f}, 200);
    EXPECT_EQ(h.size(), 1u);
    EXPECT_EQ(h[1], 200);
}

TEST(Sampler, TemperatureOneFollowsSoftmax) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    auto h = histogram(p, l, 20000);
    EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.02);
    EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.02);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.min_p = 0;
    p.top_p = 0.75f;  // 0.5 + 0.3 >= 0.75: ids 0 and 1 survive
    auto h = histogram(p, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 5000);
    EXPECT_EQ(h.count(2), 0u);
    EXPECT_NEAR(h[0] / 5000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0.5f;  // keep p >= 0.25: ids 0 (0.5) and 1 (0.3)
    auto h = histogram(p, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 3000);
    EXPECT_EQ(h.count(2), 0u);
    EXPECT_GT(h[1], 0);
}

TEST(Sampler, PenaltiesChangeGreedyChoice) {
    SamplerParams p;
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    std::vector<float> l = {2.0f, 1.5f};
    s.accept(0);  // 2.0 / 2 = 1.0 < 1.5
    EXPECT_EQ(s.sample(l.data(), 2), 1);
    SamplerParams q;
    q.temperature = 0;
    q.frequency_penalty = 0.3f;
    Sampler f(q);
    f.accept(0);
    EXPECT_EQ(f.sample(l.data(), 2), 0);  // 2.0 - 0.3 = 1.7 > 1.5
    f.accept(0);
    EXPECT_EQ(f.sample(l.data(), 2), 1);  // 2.0 - 0.6 = 1.4 < 1.5
    SamplerParams r;
    r.temperature = 0;
    r.presence_penalty = 0.6f;
    Sampler pr(r);
    pr.accept(0);
    EXPECT_EQ(pr.sample(l.data(), 2), 1);
}

TEST(Sampler, SameSeedSameSequence) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.seed = 1234;
    std::vector<float> l(50);
    for (int i = 0; i < 50; ++i) l[i] = std::sin(i * 1.7f);
    Sampler a(p), b(p);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(a.sample(l.data(), 50), b.sample(l.data(), 50));
}

TEST(Sampler, LogitBiasMinus100BansTheArgmaxUnderGreedy) {
    SamplerParams p;
    p.temperature = 0;
    const std::vector<float> l = {0.1f, 9.0f, 3.0f, -2.0f};
    {
        Sampler s(p);
        EXPECT_EQ(s.sample(l.data(), 4), 1);
    }
    p.logit_bias = {{1, -100.0f}};
    Sampler s(p);
    EXPECT_EQ(s.sample(l.data(), 4), 2);  // the runner-up
    p.logit_bias = {{1, -100.0f}, {2, -100.0f}};
    Sampler t(p);
    EXPECT_EQ(t.sample(l.data(), 4), 0);
    // The caller's logits are not modified.
    EXPECT_EQ(l[1], 9.0f);
}

TEST(Sampler, LogitBiasPlus100ForcesAToken) {
    SamplerParams p;
    p.temperature = 0;
    p.logit_bias = {{3, 100.0f}};
    const std::vector<float> l = {0.1f, 9.0f, 3.0f, -2.0f};
    Sampler g(p);
    EXPECT_EQ(g.sample(l.data(), 4), 3);
    // Sampling at a high temperature with every filter off: still only token 3.
    p.temperature = 2.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    auto h = histogram(p, l, 2000);
    EXPECT_EQ(h.size(), 1u);
    EXPECT_EQ(h[3], 2000);
}

TEST(Sampler, LogitBiasShiftsTheSampledDistribution) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    // Equal logits; a bias of ln(3) on token 0 makes it 3 times as likely as each other: 3/5.
    const std::vector<float> l = {0.0f, 0.0f, 0.0f};
    p.logit_bias = {{0, std::log(3.0f)}};
    auto h = histogram(p, l, 20000);
    EXPECT_NEAR(h[0] / 20000.0, 0.6, 0.02);
    EXPECT_NEAR(h[1] / 20000.0, 0.2, 0.02);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
    // A negative bias of -ln(2) on token 2: 1 : 1 : 0.5.
    p.logit_bias = {{2, -std::log(2.0f)}};
    h = histogram(p, l, 20000);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
    EXPECT_NEAR(h[0] / 20000.0, 0.4, 0.02);
}

TEST(Sampler, LogitBiasComesBeforePenaltiesAndTopK) {
    // top_k 1 after a +5 bias on token 0: only token 0 survives the cut.
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 1;
    p.logit_bias = {{0, 5.0f}};
    auto h = histogram(p, {0.0f, 3.0f, 2.0f}, 200);
    EXPECT_EQ(h[0], 200);
    // The bias is applied before the repetition penalty: (1 + 1) / 2 = 1 < 1.5.
    SamplerParams q;
    q.temperature = 0;
    q.repeat_penalty = 2.0f;
    q.logit_bias = {{0, 1.0f}};
    Sampler s(q);
    const std::vector<float> l = {1.0f, 1.5f};
    EXPECT_EQ(s.sample(l.data(), 2), 0);  // 2.0 > 1.5 before any history
    s.accept(0);
    EXPECT_EQ(s.sample(l.data(), 2), 1);
}

TEST(Sampler, LogitBiasOutsideTheVocabularyIsIgnoredAndBadValuesRejected) {
    SamplerParams p;
    p.temperature = 0;
    p.logit_bias = {{1000, 100.0f}};
    Sampler s(p);
    const std::vector<float> l = {0.0f, 1.0f};
    EXPECT_EQ(s.sample(l.data(), 2), 1);
    p.logit_bias = {{0, 100.5f}};
    EXPECT_THROW(Sampler{p}, Error);
    p.logit_bias = {{0, std::nanf("")}};
    EXPECT_THROW(Sampler{p}, Error);
    p.logit_bias = {{-1, 1.0f}};
    EXPECT_THROW(Sampler{p}, Error);
}

TEST(Sampler, BadParametersAreRejected) {
    SamplerParams p;
    p.top_p = 0;
    EXPECT_THROW(Sampler{p}, Error);
    p = {};
    p.temperature = -1;
    EXPECT_THROW(Sampler{p}, Error);
    p = {};
    p.min_p = 2;
    EXPECT_THROW(Sampler{p}, Error);
}

}  // namespace
