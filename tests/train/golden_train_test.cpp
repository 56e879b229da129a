// The training forward and backward against PyTorch (../shared/assets/torch-golden): loss,
// logits, activations and every parameter gradient within 1e-5 relative of the float64 run; one
// AdamW step from the reference gradients equals torch.optim.AdamW's; and the training forward
// agrees with the inference engine's Model::forward on the same weights.
#include <gtest/gtest.h>

#include <map>

#include "kernels/cpu/gemm_f32.h"
#include "model/kv_cache.h"
#include "runtime/golden.h"
#include "train/optimizer.h"
#include "train/train_model.h"

namespace llmforge::train {
namespace {

using test::GoldenTensor;
using test::rel_err;

constexpr double kTol = 1e-5;

// GGUF parameter name -> the golden's PyTorch name.
std::string torch_name(const std::string& gguf) {
    static const std::map<std::string, std::string> kLayer = {
        {"attn_norm.weight", "attention_norm.weight"}, {"attn_q.weight", "attention.wq.weight"},
        {"attn_k.weight", "attention.wk.weight"},      {"attn_v.weight", "attention.wv.weight"},
        {"attn_output.weight", "attention.wo.weight"}, {"ffn_norm.weight", "ffn_norm.weight"},
        {"ffn_gate.weight", "feed_forward.w1.weight"}, {"ffn_up.weight", "feed_forward.w3.weight"},
        {"ffn_down.weight", "feed_forward.w2.weight"},
    };
    if (gguf == "token_embd.weight") return "tok_embeddings.weight";
    if (gguf == "output_norm.weight") return "norm.weight";
    const size_t dot = gguf.find('.', 4);
    return "layers." + gguf.substr(4, dot - 4) + "." + kLayer.at(gguf.substr(dot + 1));
}

struct Golden {
    std::map<std::string, GoldenTensor> g;
    std::vector<int32_t> inputs, targets;
};

Golden load(const std::string& dir) {
    Golden gd;
    gd.g = test::read_golden(dir);
    for (double v : gd.g.at("inputs").values) gd.inputs.push_back(static_cast<int32_t>(v));
    for (double v : gd.g.at("targets").values) gd.targets.push_back(static_cast<int32_t>(v));
    return gd;
}

class GoldenTrain : public ::testing::TestWithParam<int> {};

TEST_P(GoldenTrain, LossLogitsActivationsAndGradientsMatchFloat64) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    Golden gd = load(dir);
    auto model = TrainModel::from_files(test::golden_model_files(gd.g));
    ThreadPool pool(GetParam());
    Tape tape(pool);
    std::map<std::string, Var> acts;
    Var loss = model->forward(tape, gd.inputs.data(), gd.targets.data(), 2, 16, 0.0f, 0,
                              [&](const std::string& n, Var v) { acts[n] = v; });
    tape.backward(loss);

    const double ref_loss = gd.g.at("f64.loss").values[0];
    EXPECT_LT(std::abs(loss->data[0] - ref_loss) / ref_loss, kTol) << loss->data[0] << " vs " << ref_loss;
    EXPECT_LT(rel_err(acts.at("logits")->data, gd.g.at("f64.logits").values.data(), 2 * 16 * 256), kTol);
    EXPECT_LT(rel_err(acts.at("logits")->grad, gd.g.at("f64.grad.logits").values.data(), 2 * 16 * 256), kTol);
    for (const char* a : {"embed", "layers.0.out", "layers.1.out", "final_norm"}) {
        const auto& ref = gd.g.at(std::string("f64.act.") + a).values;
        EXPECT_LT(rel_err(acts.at(a)->data, ref.data(), ref.size()), kTol) << a;
    }
    int n_checked = 0;
    double worst = 0;
    std::string worst_name;
    for (const auto& p : model->params()) {
        const auto& ref = gd.g.at("f64.grad." + torch_name(p->name)).values;
        ASSERT_EQ(ref.size(), static_cast<size_t>(p->numel())) << p->name;
        const double e = rel_err(p->grad.data(), ref.data(), ref.size());
        EXPECT_LT(e, kTol) << p->name;
        if (e > worst) worst = e, worst_name = p->name;
        ++n_checked;
    }
    std::printf("loss %.9f (f64 %.9f); worst gradient error %.2e (%s)\n", loss->data[0], ref_loss, worst,
                worst_name.c_str());
    EXPECT_EQ(n_checked, 1 + 2 * 9 + 1);  // tied: no output.weight
}

INSTANTIATE_TEST_SUITE_P(Threads, GoldenTrain, ::testing::Values(1, 2));

TEST(GoldenTrain, AdamWStepFromReferenceGradientsEqualsTorch) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    Golden gd = load(dir);
    auto model = TrainModel::from_files(test::golden_model_files(gd.g));
    std::vector<Param*> params;
    for (auto& p : model->params()) {
        const auto& g = gd.g.at("grad." + torch_name(p->name)).values;
        for (int64_t i = 0; i < p->numel(); ++i) p->grad[i] = static_cast<float>(g[i]);
        params.push_back(p.get());
    }
    AdamWConfig cfg;
    cfg.beta1 = 0.9f, cfg.beta2 = 0.95f, cfg.eps = 1e-8f, cfg.weight_decay = 0.1f;
    cfg.decay_all = true;  // the golden step decays every parameter, norms and embeddings included
    AdamW opt(params, cfg);
    ThreadPool pool(2);
    opt.step(0.01f, pool);
    for (Param* p : params) {
        const auto& ref = gd.g.at("adamw1." + torch_name(p->name)).values;
        // Same f32 arithmetic as torch: equal to a few ulps of the weights.
        EXPECT_LT(rel_err(p->value.data(), ref.data(), ref.size()), 1e-6) << p->name;
    }
}

TEST(GoldenTrain, WeightDecaySkipsVectorsByDefault) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    Golden gd = load(dir);
    auto model = TrainModel::from_files(test::golden_model_files(gd.g));
    std::vector<Param*> params;
    for (auto& p : model->params()) params.push_back(p.get());  // zero gradients
    Param* norm = model->find("output_norm.weight");
    Param* emb = model->find("token_embd.weight");
    const float n0 = norm->value[3], e0 = emb->value[5];
    AdamW opt(params, AdamWConfig{});
    ThreadPool pool(1);
    opt.step(0.01f, pool);
    EXPECT_EQ(norm->value[3], n0);                      // 1-D: no decay, zero gradient: unchanged
    EXPECT_FLOAT_EQ(emb->value[5], e0 * (1 - 0.01f * 0.1f));  // 2-D: decayed
}

TEST(GoldenTrain, TrainingForwardEqualsInferenceForward) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    Golden gd = load(dir);
    auto model = TrainModel::from_files(test::golden_model_files(gd.g));
    ThreadPool pool(2);
    Tape tape(pool);
    tape.grad_enabled = false;
    Var logits = nullptr;
    model->forward(tape, gd.inputs.data(), gd.targets.data(), 2, 16, 0.0f, 0,
                   [&](const std::string& n, Var v) { if (n == "logits") logits = v; });
    const Model& inf = model->inference();
    for (int b = 0; b < 2; ++b) {
        KvCache cache(inf.config(), 16);
        ForwardScratch s;
        std::vector<float> out(16 * 256);
        inf.forward(gd.inputs.data() + b * 16, 16, 0, cache, out.data(), 16, pool, s);
        EXPECT_LT(rel_err(logits->data + b * 16 * 256, out.data(), out.size()), 1e-5) << "sequence " << b;
    }
}

}  // namespace
}  // namespace llmforge::train
