// Vision towers (model/arch/vit.cpp) against independent float64 PyTorch references on random
// weights (tests/model/ref/vision/make_vision_refs.py: Hugging Face ViTModel and CLIPVisionModel
// semantics re-implemented in plain torch, cross-checked against torch.nn inside the script):
// the engine's encode() (EagerOps) gives every layer's hidden states, the last hidden state and
// the pooled output; the trainer's encode() (TapeOps) the same values and, for
// L = Σ last·r_last + Σ pooled·r_pool, the gradient of every parameter and of the pixels.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test_util.h"
#include "train/tape.h"
#include "train/train_model.h"

namespace llmforge {
namespace {

struct Ref {
    std::string dir;
    SafetensorsFile expected;
    explicit Ref(const std::string& case_name)
        : dir(test::src_path("tests/model/ref/vision/" + case_name)), expected(dir + "/expected.safetensors") {}
    std::vector<float> get(const std::string& name) const {
        const Tensor t = expected.tensor(name);
        EXPECT_EQ(t.dtype(), DType::F32) << name;
        return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
    }
    std::vector<int64_t> shape(const std::string& name) const { return expected.tensor(name).shape(); }
    bool has(const std::string& name) const { return expected.has_tensor(name); }
};

// max |a − b| / (max |b| + tiny): the references are float64 rounded to float32; the engine and
// the trainer compute in float32.
// floor: a scale below which the reference counts as zero (the key bias's gradient is exactly zero
// — softmax ignores a constant added to a query's scores — so both sides hold rounding noise).
double rel_err(const float* a, const std::vector<float>& b, double floor = 1e-12) {
    double d = 0, m = floor;
    for (size_t i = 0; i < b.size(); ++i) {
        d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
        m = std::max(m, std::fabs(static_cast<double>(b[i])));
    }
    return d / m;
}

// The patch rows of B images (B, channels, H, W) and, for each pixel, where it lands in them.
struct Patches {
    std::vector<float> rows;
    std::vector<int64_t> where;  // pixel index -> index into rows
    int64_t T = 0;
};

Patches patchify(const std::vector<float>& pixels, const std::vector<int64_t>& shape, int64_t patch) {
    const int64_t B = shape[0], ch = shape[1], H = shape[2], W = shape[3];
    const int64_t per_image = ch * H * W, T = 1 + (H / patch) * (W / patch), cols = ch * patch * patch;
    Patches p;
    p.T = T;
    p.rows.resize(static_cast<size_t>(B * T * cols));
    std::vector<float> index(static_cast<size_t>(per_image)), placed(static_cast<size_t>(T * cols));
    for (int64_t i = 0; i < per_image; ++i) index[i] = static_cast<float>(i + 1);  // exact in float below 2^24
    image_patch_rows(index.data(), ch, H, W, patch, placed.data());
    std::vector<int64_t> at(static_cast<size_t>(per_image), -1);
    for (int64_t r = 0; r < T * cols; ++r)
        if (placed[r] > 0) at[static_cast<int64_t>(placed[r]) - 1] = r;
    for (int64_t b = 0; b < B; ++b) {
        image_patch_rows(pixels.data() + b * per_image, ch, H, W, patch, p.rows.data() + b * T * cols);
        for (int64_t i = 0; i < per_image; ++i) {
            EXPECT_GE(at[i], 0);
            p.where.push_back(b * T * cols + at[i]);
        }
    }
    return p;
}

class VisionEncoder : public ::testing::TestWithParam<const char*> {};

TEST_P(VisionEncoder, EngineMatchesReference) {
    const Ref ref(GetParam());
    auto model = Model::load(ref.dir);
    ASSERT_TRUE(model->is_encoder());
    const ModelConfig& c = model->config();
    const std::vector<int64_t> shape = ref.shape("input.pixel_values");
    const Patches in = patchify(ref.get("input.pixel_values"), shape, c.enc.patch_size);
    const int64_t B = shape[0];
    ThreadPool pool(2);
    ForwardScratch s;
    std::map<std::string, std::vector<float>> seen;
    s.hook = [&](const std::string& name, const float* x, int64_t n) { seen[name].assign(x, x + n); };
    EncodeOutput out;
    model->encode(in.rows.data(), B, in.T, out, pool, s);
    EXPECT_EQ(out.rows, in.T);
    EXPECT_LT(rel_err(out.last.data(), ref.get("out.last_hidden_state")), 2e-5);
    EXPECT_LT(rel_err(seen.at("embed").data(), ref.get("out.hidden_states.0")), 2e-5);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        EXPECT_LT(rel_err(seen.at("layers." + std::to_string(l) + ".out").data(),
                          ref.get("out.hidden_states." + std::to_string(l + 1))),
                  2e-5)
            << "layer " << l;
    }
    const std::string pooled = ref.has("out.image_embeds") ? "out.image_embeds" : "out.pooler_output";
    ASSERT_EQ(static_cast<int64_t>(out.pooled.size()), B * out.pooled_cols);
    EXPECT_LT(rel_err(out.pooled.data(), ref.get(pooled)), 2e-5);
}

TEST_P(VisionEncoder, TrainerMatchesReferenceForwardAndGradients) {
    const Ref ref(GetParam());
    auto m = train::TrainModel::from_files(open_model_files(ref.dir));
    const ModelConfig& c = m->config();
    const std::vector<int64_t> shape = ref.shape("input.pixel_values");
    const Patches in = patchify(ref.get("input.pixel_values"), shape, c.enc.patch_size);
    const int64_t B = shape[0];
    ThreadPool pool(2);
    train::Tape t(pool);
    train::Var pooled = nullptr;
    train::Var last = m->encode(t, in.rows.data(), B, in.T, &pooled, true);
    ASSERT_NE(pooled, nullptr);
    EXPECT_LT(rel_err(last->data, ref.get("out.last_hidden_state")), 2e-5);
    const bool proj = ref.has("out.image_embeds");
    EXPECT_LT(rel_err(pooled->data, ref.get(proj ? "out.image_embeds" : "out.pooler_output")), 2e-5);

    // L = Σ last · r_last + Σ pooled · r_pool, as a node whose backward seeds both gradients.
    const std::vector<float> r_last = ref.get("loss.r_last"), r_pool = ref.get("loss.r_pool");
    ASSERT_EQ(static_cast<int64_t>(r_last.size()), last->numel);
    ASSERT_EQ(static_cast<int64_t>(r_pool.size()), pooled->numel);
    train::Var loss = t.make({1}, true);
    double l = 0;
    for (int64_t i = 0; i < last->numel; ++i) l += static_cast<double>(last->data[i]) * r_last[i];
    for (int64_t i = 0; i < pooled->numel; ++i) l += static_cast<double>(pooled->data[i]) * r_pool[i];
    loss->data[0] = static_cast<float>(l);
    t.on_backward([&] {
        float* dl = t.grad(last);
        float* dp = t.grad(pooled);
        for (int64_t i = 0; i < last->numel; ++i) dl[i] += r_last[i] * loss->grad[0];
        for (int64_t i = 0; i < pooled->numel; ++i) dp[i] += r_pool[i] * loss->grad[0];
    });
    EXPECT_NEAR(l, ref.get("loss.value")[0], 1e-4 * std::max(1.0, std::fabs(l)));
    t.backward(loss);

    double scale = 0;  // the largest parameter gradient of the reference
    for (const auto& info : ref.expected.tensor_infos())
        if (info.name.rfind("grad.", 0) == 0)
            for (float v : ref.get(info.name)) scale = std::max(scale, std::fabs(static_cast<double>(v)));
    int checked = 0;
    for (const auto& p : m->params()) {
        const std::string hf = gguf_to_hf_name(m->arch(), p->name);
        ASSERT_FALSE(hf.empty()) << p->name;
        ASSERT_TRUE(ref.has("grad." + hf)) << hf;
        EXPECT_EQ(p->shape, ref.shape("grad." + hf)) << hf;
        EXPECT_LT(rel_err(p->grad.data(), ref.get("grad." + hf), 1e-3 * scale), 1e-4) << hf;
        ++checked;
    }
    EXPECT_EQ(checked, static_cast<int>(m->params().size()));
    // Every parameter the reference differentiates is one of the model's.
    int ref_grads = 0;
    for (const auto& info : ref.expected.tensor_infos())
        if (info.name.rfind("grad.", 0) == 0 && info.name != "grad.input.pixel_values") ++ref_grads;
    EXPECT_EQ(ref_grads, checked);

    // The pixels' gradient: each pixel's entry of the input rows.
    const std::vector<float> dpix = ref.get("grad.input.pixel_values");
    ASSERT_NE(m->last_input, nullptr);
    ASSERT_NE(m->last_input->grad, nullptr);
    std::vector<float> mine(dpix.size());
    for (size_t i = 0; i < dpix.size(); ++i) mine[i] = m->last_input->grad[in.where[i]];
    EXPECT_LT(rel_err(mine.data(), dpix), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Refs, VisionEncoder, ::testing::Values("vit_tiny", "clip_vision_tiny", "clip_vision_proj_tiny"),
                         [](const auto& info) { return std::string(info.param); });

TEST(VisionEncoder, DecoderRefusesEncodeAndRoundTripsConfig) {
    // A saved config reads back as the same encoder.
    const std::string dir = test::src_path("tests/model/ref/vision/clip_vision_tiny");
    const ModelFiles f = open_model_files(dir);
    EXPECT_EQ(f.config.arch, "clip_vision");
    EXPECT_EQ(f.config.enc.act, Activation::kQuickGelu);
    EXPECT_EQ(f.config.enc.n_patches(), 16);
}

}  // namespace
}  // namespace llmforge
