// Fine-tuning on the trainer (train/peft.h) against independent PyTorch references
// (tests/train/ref/peft, make_peft_refs.py): LoRA and prompt-tuning logits through the trainer's
// seams, and the 10-step LoRA training trajectory (PEFT init B = 0, AdamW, clipping) to 1e-5
// relative per step; plus the frozen-base contract (no gradient, no optimiser state, unchanged
// bytes), the PEFT files a run writes, and the trainer's one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/adapter.h"
#include "model/model.h"
#include "test_util.h"
#include "train/ops.h"
#include "train/optimizer.h"
#include "train/peft.h"
#include "train/train_model.h"

namespace llmforge::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string ref_dir(const std::string& name) {
    const char* src = std::getenv("LLMFORGE_SRC");
    return std::string(src ? src : ".") + "/tests/train/ref/peft/" + name;
}

json read_json(const std::string& path) { return json::parse(test::read_file(path)); }

std::unique_ptr<TrainModel> frozen_base() {
    auto m = TrainModel::from_files(open_model_files(ref_dir("base")), [](const std::string&) { return false; });
    m->to_rotate_half();
    return m;
}

// max over rows of max|a - b| / max|b|, the metric of the model-level reference tests.
double rows_err(const float* a, const json& rows) {
    double worst = 0;
    for (size_t t = 0; t < rows.size(); ++t) {
        double md = 0, mr = 0;
        for (size_t v = 0; v < rows[t].size(); ++v) {
            const double b = rows[t][v].get<double>();
            md = std::max(md, std::abs(a[t * rows[t].size() + v] - b));
            mr = std::max(mr, std::abs(b));
        }
        worst = std::max(worst, md / mr);
    }
    return worst;
}

TEST(PeftTrain, LoraLogitsThroughTheTrainerSeamMatchTorch) {
    const json ref = read_json(ref_dir("expected_lora.json"));
    auto m = frozen_base();
    EXPECT_TRUE(m->params().empty());  // every base tensor frozen
    auto peft = PeftAdapter::load(*m, ref_dir("lora"));
    peft->attach(*m);
    const std::vector<int32_t> ids = ref["tokens"].get<std::vector<int32_t>>();
    ThreadPool pool(2);
    Tape tape(pool);
    tape.grad_enabled = false;
    Var y = m->logits(tape, ids.data(), 1, static_cast<int64_t>(ids.size()));
    EXPECT_LT(rows_err(y->data, ref["lora_logits"]), 2e-5);
}

TEST(PeftTrain, PromptTuningLogitsThroughTheTrainerSeamMatchTorch) {
    const json ref = read_json(ref_dir("expected_prompt.json"));
    auto m = frozen_base();
    auto peft = PeftAdapter::load(*m, ref_dir("prompt"));
    peft->attach(*m);
    const std::vector<int32_t> ids = ref["tokens"].get<std::vector<int32_t>>();
    const int64_t N = ref["num_virtual_tokens"].get<int64_t>(), T = static_cast<int64_t>(ids.size());
    ThreadPool pool(2);
    Tape tape(pool);
    tape.grad_enabled = false;
    Var y = m->logits(tape, ids.data(), 1, T);
    const int64_t V = m->config().n_vocab;
    ASSERT_EQ(y->numel, (N + T) * V);  // virtual rows first
    EXPECT_LT(rows_err(y->data + N * V, ref["logits"]), 2e-5);
}

// The protocol of README.md: initial A from lora/, B = 0; one fixed batch; AdamW(lr 1e-2, betas
// (0.9, 0.999), eps 1e-8, weight decay 0.01 on every A and B); clip_grad_norm_(1.0) before each step.
TEST(PeftTrain, TenStepLoraTrajectoryMatchesTorch) {
    const json ref = read_json(ref_dir("expected_trajectory.json"));
    auto m = frozen_base();
    auto peft = PeftAdapter::load(*m, ref_dir("lora"));
    for (Param* p : peft->params())
        if (p->name.find("lora_B") != std::string::npos) p->value.zero();
    peft->attach(*m);
    std::vector<int32_t> in, tg;
    for (const auto& row : ref["inputs"])
        for (const auto& v : row) in.push_back(v.get<int32_t>());
    for (const auto& row : ref["targets"])
        for (const auto& v : row) tg.push_back(v.get<int32_t>());
    const int64_t B = static_cast<int64_t>(ref["inputs"].size()), T = static_cast<int64_t>(in.size()) / B;
    ThreadPool pool(2);
    Tape tape(pool);
    tape.free_in_backward = true;  // the training loop's setting
    std::vector<Param*> ps = peft->params();
    AdamWConfig oc;
    oc.beta1 = 0.9f, oc.beta2 = 0.999f, oc.eps = 1e-8f, oc.weight_decay = 0.01f;
    AdamW opt(ps, oc);
    const std::vector<double> want = ref["losses"].get<std::vector<double>>();
    const std::vector<double> norms = ref["grad_norms"].get<std::vector<double>>();
    for (size_t step = 0; step < want.size(); ++step) {
        zero_grads(ps);
        tape.reset();
        peft->set_training(true, step);
        Var loss = m->forward(tape, in.data(), tg.data(), B, T);
        const double l = loss->data[0];
        tape.backward(loss);
        const double norm = clip_grad_norm(ps, 1.0, pool);
        opt.step(0.01f, pool);
        EXPECT_LT(std::abs(l - want[step]) / want[step], 1e-5) << "step " << step << ": " << l << " vs " << want[step];
        EXPECT_LT(std::abs(norm - norms[step]) / norms[step], 1e-4) << "grad norm at step " << step;
    }
    tape.reset();
    tape.grad_enabled = false;
    const double after = m->forward(tape, in.data(), tg.data(), B, T)->data[0];
    EXPECT_LT(std::abs(after - ref["loss_after"].get<double>()) / ref["loss_after"].get<double>(), 1e-5);
    // The final matrices of layer 0's q_proj.
    const Adapter got = peft->snapshot();
    const json& fin = ref["final"];
    bool found = false;
    for (const LoraPair& p : got.lora) {
        if (p.site.module != "model.layers.0.self_attn.q_proj") continue;
        found = true;
        double md = 0;
        for (int64_t i = 0; i < p.r; ++i)
            for (int64_t j = 0; j < p.site.in; ++j)
                md = std::max(md, std::abs(p.a[i * p.site.in + j] - fin["lora_A"][i][j].get<double>()));
        for (int64_t i = 0; i < p.site.out; ++i)
            for (int64_t j = 0; j < p.r; ++j)
                md = std::max(md, std::abs(p.b[i * p.r + j] - fin["lora_B"][i][j].get<double>()));
        EXPECT_LT(md, 1e-5);
    }
    EXPECT_TRUE(found);
}

TEST(PeftTrain, BaseStaysFrozenAndTheAdapterRoundTripsThroughPeftFiles) {
    auto m = frozen_base();
    AdapterConfig c;
    c.type = PeftType::kLora;
    c.r = 2;
    c.alpha = 4;
    c.target_modules = {"all-linear"};
    auto peft = PeftAdapter::create(*m, c, 7);
    peft->attach(*m);
    // Before/after bytes of every frozen tensor.
    std::vector<std::vector<char>> before;
    for (const auto& p : m->frozen())
        before.emplace_back(static_cast<const char*>(p->frozen.data()),
                            static_cast<const char*>(p->frozen.data()) + p->frozen.nbytes());
    // 2 layers x 7 modules, A (2, in) + B (out, 2).
    EXPECT_EQ(peft->params().size(), 28u);
    for (Param* p : peft->params())
        if (p->name.find("lora_B") != std::string::npos)
            for (int64_t i = 0; i < p->numel(); ++i) ASSERT_EQ(p->value[i], 0.0f) << "PEFT init: B = 0";
    ThreadPool pool(2);
    Tape tape(pool);
    std::vector<Param*> ps = peft->params();
    AdamW opt(ps, AdamWConfig{});
    const std::vector<int32_t> in = {1, 5, 9, 3, 7, 2}, tg = {5, 9, 3, 7, 2, 4};
    for (int s = 0; s < 3; ++s) {
        zero_grads(ps);
        tape.reset();
        tape.backward(m->forward(tape, in.data(), tg.data(), 1, 6));
        opt.step(1e-2f, pool);
    }
    EXPECT_EQ(opt.size(), ps.size());  // optimiser state for the adapter only
    for (size_t i = 0; i < m->frozen().size(); ++i) {
        const auto& p = m->frozen()[i];
        EXPECT_EQ(0, std::memcmp(before[i].data(), p->frozen.data(), before[i].size())) << p->name;
    }
    const fs::path dir = fs::temp_directory_path() / ("lf_peft_rt_" + std::to_string(::getpid()));
    write_adapter(dir.string(), peft->snapshot());
    auto again = PeftAdapter::load(*m, dir.string());
    ASSERT_EQ(again->params().size(), ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(again->params()[i]->name, ps[i]->name);
        EXPECT_EQ(0, std::memcmp(again->params()[i]->value.data(), ps[i]->value.data(), ps[i]->numel() * sizeof(float)));
    }
    fs::remove_all(dir);
}

TEST(PeftTrain, BadSetUpsAreOneLineErrors) {
    auto m = frozen_base();
    AdapterConfig c;
    c.type = PeftType::kLora;
    c.r = 0;
    c.target_modules = {"q_proj"};
    EXPECT_THROW(
        try { PeftAdapter::create(*m, c, 1); } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("rank >= 1"), std::string::npos) << e.what();
            throw;
        },
        Error);
    c.r = 4;
    c.target_modules = {"c_attn"};
    EXPECT_THROW(
        try { PeftAdapter::create(*m, c, 1); } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("'c_attn'"), std::string::npos) << msg;
            EXPECT_NE(msg.find("q_proj"), std::string::npos) << msg;  // the known names
            EXPECT_EQ(msg.find('\n'), std::string::npos);
            throw;
        },
        Error);
}

}  // namespace
}  // namespace llmforge::train
