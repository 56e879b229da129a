// The fusion model (model/arch/fusion.cpp): for every kind (the seed's gated module, concat,
// cross-attention, text only, image only), the trainer's gradients of every parameter and of both
// inputs against central finite differences, and the engine's logits and gate against the trainer's.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "train/tape.h"
#include "train/train_model.h"

namespace llmforge {
namespace {

constexpr int64_t kB = 3, kTt = 4, kTv = 5, kCt = 6, kCv = 7, kAnswers = 5;

std::unique_ptr<train::TrainModel> fusion_model(FusionKind kind) {
    ModelConfig c;
    c.arch = "fusion";
    c.n_embd = 8;
    c.fusion.kind = kind;
    c.fusion.text_width = kCt;
    c.fusion.vision_width = kCv;
    c.fusion.gate_hidden = kind == FusionKind::kGated ? 6 : 0;
    c.fusion.cls_hidden = 9;
    c.fusion.n_answers = kAnswers;
    c.enc.norm_eps = 1e-5f;
    c.n_ctx_train = 1 << 20;
    if (kind == FusionKind::kCross) c.n_layer = 2, c.n_head = c.n_head_kv = 2, c.head_dim = 4, c.n_ff = 12;
    auto m = train::TrainModel::init_random(c, 7);
    // Larger weights than the init's N(0, 0.02²), so every path moves the loss visibly.
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.3f);
    for (auto& p : m->params())
        for (int64_t i = 0; i < p->numel(); ++i) p->value[i] = p->value[i] * 5.0f + nd(rng);
    return m;
}

std::vector<float> randn(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
}

struct Inputs {
    std::vector<float> text = randn(kB * kTt * kCt, 11), image = randn(kB * kTv * kCv, 12), r = randn(kB * kAnswers, 13);
};

// L = Σ logits · r, with the inputs as nodes that take gradients.
double run(train::TrainModel& m, train::Tape& t, Inputs& in, bool grad, train::Var* xt = nullptr,
           train::Var* xv = nullptr, std::vector<float>* gate = nullptr) {
    t.reset();
    t.grad_enabled = grad;
    train::Var text = t.make({kB * kTt, kCt}, grad), image = t.make({kB * kTv, kCv}, grad);
    std::copy(in.text.begin(), in.text.end(), text->data);
    std::copy(in.image.begin(), in.image.end(), image->data);
    text->keep = image->keep = true;
    const train::TrainModel::Hook hook = [gate](const std::string& name, train::Var v) {
        if (gate != nullptr && name == "gate") gate->assign(v->data, v->data + v->numel);
    };
    train::Var lg = m.fuse(t, text, image, kB, hook);
    EXPECT_EQ(lg->numel, kB * kAnswers);
    double l = 0;
    for (int64_t i = 0; i < lg->numel; ++i) l += static_cast<double>(lg->data[i]) * in.r[i];
    if (grad) {
        train::Var loss = t.make({1}, true);
        t.on_backward([&t, lg, &in, loss] {
            float* d = t.grad(lg);
            for (int64_t i = 0; i < lg->numel; ++i) d[i] += in.r[i] * loss->grad[0];
        });
        t.backward(loss);
    }
    if (xt != nullptr) *xt = text;
    if (xv != nullptr) *xv = image;
    return l;
}

class Fusion : public ::testing::TestWithParam<FusionKind> {};

TEST_P(Fusion, GradientsMatchFiniteDifferences) {
    auto m = fusion_model(GetParam());
    ThreadPool pool(2);
    train::Tape t(pool);
    Inputs in;
    for (auto& p : m->params()) p->grad.zero();
    train::Var xt = nullptr, xv = nullptr;
    run(*m, t, in, true, &xt, &xv);
    // An input nothing read has no gradient buffer: zeros.
    auto grad_of = [](train::Var v) {
        return v->grad != nullptr ? std::vector<float>(v->grad, v->grad + v->numel)
                                  : std::vector<float>(static_cast<size_t>(v->numel), 0.0f);
    };
    const std::vector<float> dtext = grad_of(xt), dimage = grad_of(xv);
    const float h = 2e-3f;
    auto check = [&](const std::string& what, float* values, int64_t n, const float* analytic) {
        // A key bias's gradient is exactly zero (softmax ignores a constant added to a query's
        // scores): both sides are rounding noise, checked against the loss's scale instead.
        if (what.find("attn_k.bias") != std::string::npos) {
            for (int64_t i = 0; i < n; ++i) EXPECT_LT(std::fabs(analytic[i]), 1e-3) << what;
            return;
        }
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < n; ++i) {
            const float orig = values[i];
            values[i] = orig + h;
            const double lp = run(*m, t, in, false);
            values[i] = orig - h;
            const double lm = run(*m, t, in, false);
            values[i] = orig;
            const double fd = (lp - lm) / (2.0 * h);
            max_diff = std::max(max_diff, std::fabs(fd - analytic[i]));
            max_ref = std::max(max_ref, std::fabs(fd));
        }
        EXPECT_GT(max_ref, 0.0) << what << ": no gradient";
        EXPECT_LT(max_diff / max_ref, 1e-2) << what << " max |fd - analytic| = " << max_diff;
    };
    for (auto& p : m->params()) check(p->name, p->value.data(), p->numel(), p->grad.data());
    const bool text = GetParam() != FusionKind::kImage, image = GetParam() != FusionKind::kText;
    if (text) check("text rows", in.text.data(), static_cast<int64_t>(in.text.size()), dtext.data());
    if (image) check("image rows", in.image.data(), static_cast<int64_t>(in.image.size()), dimage.data());
    // A baseline reads one input only: the other gets no gradient at all.
    const std::vector<float>& unused = text ? dimage : dtext;
    if (!text || !image) {
        for (float g : unused) EXPECT_EQ(g, 0.0f);
    }
}

TEST_P(Fusion, EngineMatchesTrainer) {
    auto m = fusion_model(GetParam());
    ThreadPool pool(2);
    train::Tape t(pool);
    Inputs in;
    std::vector<float> tape_gate;
    run(*m, t, in, false, nullptr, nullptr, &tape_gate);
    train::Var tt = nullptr, tv = nullptr;
    run(*m, t, in, false, &tt, &tv);
    const Model& eng = m->inference();
    ForwardScratch s;
    std::vector<float> gate;
    s.hook = [&](const std::string& name, const float* x, int64_t n) {
        if (name == "gate") gate.assign(x, x + n);
    };
    EncodeOutput out;
    eng.fuse(in.text.data(), kTt, in.image.data(), kTv, kB, out, pool, s);
    ASSERT_EQ(out.pooled.size(), static_cast<size_t>(kB * kAnswers));
    // The trainer's logits again (the last run's), compared one by one.
    t.reset();
    t.grad_enabled = false;
    train::Var text = t.make({kB * kTt, kCt}, false), image = t.make({kB * kTv, kCv}, false);
    std::copy(in.text.begin(), in.text.end(), text->data);
    std::copy(in.image.begin(), in.image.end(), image->data);
    train::Var lg = m->fuse(t, text, image, kB);
    for (int64_t i = 0; i < lg->numel; ++i) EXPECT_NEAR(out.pooled[i], lg->data[i], 1e-4f * (1 + std::fabs(lg->data[i])));
    if (GetParam() == FusionKind::kGated) {
        ASSERT_EQ(gate.size(), static_cast<size_t>(2 * kB));
        ASSERT_EQ(tape_gate.size(), gate.size());
        for (int64_t b = 0; b < kB; ++b) {
            EXPECT_NEAR(gate[2 * b] + gate[2 * b + 1], 1.0f, 1e-5f);  // a softmax over text and image
            EXPECT_NEAR(gate[2 * b], tape_gate[2 * b], 1e-5f);
        }
    } else {
        EXPECT_TRUE(gate.empty());
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, Fusion,
                         ::testing::Values(FusionKind::kGated, FusionKind::kConcat, FusionKind::kCross, FusionKind::kText,
                                           FusionKind::kImage),
                         [](const auto& info) { return std::string(fusion_kind_name(info.param)); });

TEST(FusionConfig, BadKindIsOneLine) {
    FusionKind k;
    EXPECT_FALSE(fusion_kind_from_name("average", &k));
    EXPECT_TRUE(fusion_kind_from_name("cross", &k));
    EXPECT_EQ(k, FusionKind::kCross);
}

}  // namespace
}  // namespace llmforge
