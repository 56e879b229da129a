// Learning-rate schedules, gradient clipping and the fixed batch order against their formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>

#include "core/error.h"
#include "test_util.h"
#include "train/data.h"
#include "train/optimizer.h"

namespace llmforge::train {
namespace {

TEST(Schedule, WarmupThenCosineLinearOrConstant) {
    const int64_t W = 10, S = 110;
    const double lr = 1e-3, mn = 1e-4;
    for (Schedule s : {Schedule::kCosine, Schedule::kLinear, Schedule::kConstant}) {
        for (int64_t i = 0; i < W; ++i) EXPECT_DOUBLE_EQ(learning_rate(s, i, S, W, lr, mn), lr * (i + 1) / W);
        EXPECT_DOUBLE_EQ(learning_rate(s, W, S, W, lr, mn), lr);
    }
    for (int64_t i = W; i <= S; i += 7) {
        const double want = mn + 0.5 * (lr - mn) * (1 + std::cos(std::numbers::pi * (i - W) / double(S - W)));
        EXPECT_NEAR(learning_rate(Schedule::kCosine, i, S, W, lr, mn), want, 1e-15);
        EXPECT_NEAR(learning_rate(Schedule::kLinear, i, S, W, lr, mn), lr + (mn - lr) * (i - W) / double(S - W), 1e-15);
        EXPECT_DOUBLE_EQ(learning_rate(Schedule::kConstant, i, S, W, lr, mn), lr);
    }
    EXPECT_NEAR(learning_rate(Schedule::kCosine, S, S, W, lr, mn), mn, 1e-15);
    EXPECT_THROW(schedule_from_name("step"), Error);
}

TEST(Clip, ScalesByMaxOverNormPlusEpsilonOnlyAboveTheMax) {
    Param a, b;
    a.shape = {2, 2};
    a.value = FloatBuffer(4), a.grad = FloatBuffer(4);
    b.shape = {3};
    b.value = FloatBuffer(3), b.grad = FloatBuffer(3);
    const float ga[] = {3, 0, 0, 0}, gb[] = {0, 4, 0};  // global norm 5
    std::copy(ga, ga + 4, a.grad.data());
    std::copy(gb, gb + 3, b.grad.data());
    ThreadPool pool(2);
    std::vector<Param*> ps = {&a, &b};
    EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0, pool), 5.0);  // below the max: untouched
    EXPECT_EQ(a.grad[0], 3.0f);
    EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0, pool), 5.0);
    EXPECT_FLOAT_EQ(a.grad[0], static_cast<float>(3.0 * (1.0 / (5.0 + 1e-6))));
    EXPECT_FLOAT_EQ(b.grad[1], static_cast<float>(4.0 * (1.0 / (5.0 + 1e-6))));
    b.grad[2] = INFINITY;
    EXPECT_TRUE(grads_non_finite(ps, pool));
}

TEST(BatchOrder, NoShuffleRowGOfBatchKIsTokensFromKRanksBPlusGTimesT) {
    const std::string path = test::temp_dir() + "/seq.u32";
    std::vector<uint32_t> toks(1000);
    for (uint32_t i = 0; i < toks.size(); ++i) toks[i] = i;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(toks.data()), toks.size() * 4);
    TokenData d = TokenData::open(path, "train", 1000);
    const int64_t T = 7, B = 3, ranks = 2, R = (1000 - 1) / T;
    for (int rank = 0; rank < ranks; ++rank) {
        BatchPlan plan{B, T, static_cast<int>(ranks), rank, false, 0};
        std::vector<int32_t> in(B * T), tg(B * T);
        for (int64_t k : {0, 1, 5, 40}) {
            fill_batch(d, plan, k, in.data(), tg.data());
            for (int64_t b = 0; b < B; ++b) {
                const int64_t g = rank * B + b;
                const int64_t start = ((k * ranks * B + g) % R) * T;  // wraps after R rows
                for (int64_t t = 0; t < T; ++t) {
                    EXPECT_EQ(in[b * T + t], start + t);
                    EXPECT_EQ(tg[b * T + t], start + t + 1);
                }
            }
        }
    }
    // Shuffled rows are a pure function of (seed, k, row): the same twice, different across seeds.
    BatchPlan s1{B, T, 1, 0, true, 11}, s2{B, T, 1, 0, true, 12};
    std::vector<int32_t> a(B * T), b(B * T), c(B * T), tg(B * T);
    fill_batch(d, s1, 3, a.data(), tg.data());
    fill_batch(d, s1, 3, b.data(), tg.data());
    fill_batch(d, s2, 3, c.data(), tg.data());
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    for (int64_t i = 0; i < B * T; ++i) EXPECT_EQ(tg[i] - c[i], 1);  // targets are the inputs shifted
}

}  // namespace
}  // namespace llmforge::train
