// Encoders (model/arch/vit.cpp, swin.cpp, roberta.cpp) against independent float64 PyTorch references on random
// weights (tests/model/ref/vision/make_vision_refs.py: Hugging Face ViTModel, CLIPVisionModel, SwinModel and RobertaModel
// semantics re-implemented in plain torch, cross-checked against torch.nn inside the script):
// the engine's encode() (EagerOps) gives every layer's hidden states, the last hidden state and
// the pooled output; the trainer's encode() (TapeOps) the same values and, for
// L = Σ last·r_last + Σ pooled·r_pool, the gradient of every parameter and of the pixels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/mmproj.h"
#include "model/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
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

// The reference's loss L = Σ last · r_last + Σ pooled · r_pool on the tape: a node whose backward
// seeds both gradients; backward is run. Returns L (double, from the forward's values).
// pooled null: the loss has no second term (a projector's output: L = Σ features · r_last).
double backward_reference_loss(train::Tape& t, const Ref& ref, train::Var last, train::Var pooled) {
    const std::vector<float> r_last = ref.get("loss.r_last"),
                             r_pool = pooled != nullptr ? ref.get("loss.r_pool") : std::vector<float>();
    const int64_t n_pool = pooled != nullptr ? pooled->numel : 0;
    EXPECT_EQ(static_cast<int64_t>(r_last.size()), last->numel);
    EXPECT_EQ(static_cast<int64_t>(r_pool.size()), n_pool);
    if (static_cast<int64_t>(r_last.size()) != last->numel || static_cast<int64_t>(r_pool.size()) != n_pool) {
        return std::nan("");  // the failure is reported; nothing to differentiate
    }
    train::Var loss = t.make({1}, true);
    double l = 0;
    for (int64_t i = 0; i < last->numel; ++i) l += static_cast<double>(last->data[i]) * r_last[i];
    for (int64_t i = 0; i < n_pool; ++i) l += static_cast<double>(pooled->data[i]) * r_pool[i];
    loss->data[0] = static_cast<float>(l);
    t.on_backward([&t, last, pooled, n_pool, loss, &r_last, &r_pool] {
        float* dl = t.grad(last);
        for (int64_t i = 0; i < last->numel; ++i) dl[i] += r_last[i] * loss->grad[0];
        if (n_pool == 0) return;
        float* dp = t.grad(pooled);
        for (int64_t i = 0; i < n_pool; ++i) dp[i] += r_pool[i] * loss->grad[0];
    });
    t.backward(loss);
    return l;
}

// The largest parameter gradient of the reference (the floor below which a gradient counts as 0).
double reference_grad_scale(const Ref& ref) {
    double scale = 0;
    for (const auto& info : ref.expected.tensor_infos())
        if (info.name.rfind("grad.", 0) == 0)
            for (float v : ref.get(info.name)) scale = std::max(scale, std::fabs(static_cast<double>(v)));
    return scale;
}

// The patch rows of B images (B, channels, H, W) and, for each pixel, where it lands in them.
struct Patches {
    std::vector<float> rows;
    std::vector<int64_t> where;  // pixel index -> index into rows
    int64_t T = 0;
};

// Images whose sides are not whole patches are zero-padded right and bottom first (HF Swin's
// maybe_pad); grid_h × grid_w is the patch grid.
struct Grid {
    int64_t h = 0, w = 0;
};

Patches patchify(const std::vector<float>& pixels, const std::vector<int64_t>& shape, int64_t patch, bool placeholder,
                 Grid* grid = nullptr) {
    const int64_t B = shape[0], ch = shape[1], H = shape[2], W = shape[3];
    const int64_t Hp = (H + patch - 1) / patch * patch, Wp = (W + patch - 1) / patch * patch;
    const int64_t per_image = ch * H * W, T = (placeholder ? 1 : 0) + (Hp / patch) * (Wp / patch),
                  cols = ch * patch * patch;
    if (grid != nullptr) *grid = {Hp / patch, Wp / patch};
    auto padded = [&](const float* img) {
        std::vector<float> out(static_cast<size_t>(ch * Hp * Wp), 0.0f);
        for (int64_t c = 0; c < ch; ++c)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x) out[(c * Hp + y) * Wp + x] = img[(c * H + y) * W + x];
        return out;
    };
    Patches p;
    p.T = T;
    p.rows.resize(static_cast<size_t>(B * T * cols));
    std::vector<float> index(static_cast<size_t>(per_image)), placed(static_cast<size_t>(T * cols));
    for (int64_t i = 0; i < per_image; ++i) index[i] = static_cast<float>(i + 1);  // exact in float below 2^24
    image_patch_rows(padded(index.data()).data(), ch, Hp, Wp, patch, placed.data(), placeholder);
    std::vector<int64_t> at(static_cast<size_t>(per_image), -1);
    for (int64_t r = 0; r < T * cols; ++r)
        if (placed[r] > 0) at[static_cast<int64_t>(placed[r]) - 1] = r;
    for (int64_t b = 0; b < B; ++b) {
        image_patch_rows(padded(pixels.data() + b * per_image).data(), ch, Hp, Wp, patch, p.rows.data() + b * T * cols,
                         placeholder);
        for (int64_t i = 0; i < per_image; ++i) {
            EXPECT_GE(at[i], 0);
            p.where.push_back(b * T * cols + at[i]);
        }
    }
    return p;
}

// The observed activation HF's hidden_states[i] is: the embeddings, then each layer's output (ViT,
// CLIP) or each stage's, after its merge (Swin).
std::vector<std::string> hidden_state_names(const ModelConfig& c) {
    std::vector<std::string> names = {"embed"};
    if (c.enc.depths.empty()) {
        for (int64_t l = 0; l < c.n_layer; ++l) names.push_back("layers." + std::to_string(l) + ".out");
        return names;
    }
    int64_t end = 0;
    for (int64_t d : c.enc.depths) names.push_back("layers." + std::to_string((end += d) - 1) + ".out");
    return names;
}

class VisionEncoder : public ::testing::TestWithParam<const char*> {};

TEST_P(VisionEncoder, EngineMatchesReference) {
    const Ref ref(GetParam());
    auto model = Model::load(ref.dir);
    ASSERT_TRUE(model->is_encoder());
    const ModelConfig& c = model->config();
    const std::vector<int64_t> shape = ref.shape("input.pixel_values");
    Grid grid;
    const Patches in = patchify(ref.get("input.pixel_values"), shape, c.enc.patch_size, c.enc.class_token, &grid);
    const int64_t B = shape[0];
    ThreadPool pool(2);
    ForwardScratch s;
    std::map<std::string, std::vector<float>> seen;
    s.hook = [&](const std::string& name, const float* x, int64_t n) { seen[name].assign(x, x + n); };
    EncodeOutput out;
    model->encode(in.rows.data(), B, in.T, out, pool, s, grid.h, grid.w);
    const std::vector<float> want_last = ref.get("out.last_hidden_state");
    ASSERT_EQ(out.last.size(), want_last.size());
    EXPECT_LT(rel_err(out.last.data(), want_last), 2e-5);
    const std::vector<std::string> names = hidden_state_names(c);
    for (size_t i = 0; i < names.size(); ++i) {
        const std::vector<float> want = ref.get("out.hidden_states." + std::to_string(i));
        ASSERT_EQ(seen.at(names[i]).size(), want.size()) << names[i];
        EXPECT_LT(rel_err(seen.at(names[i]).data(), want), 2e-5) << names[i];
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
    Grid grid;
    const Patches in = patchify(ref.get("input.pixel_values"), shape, c.enc.patch_size, c.enc.class_token, &grid);
    const int64_t B = shape[0];
    ThreadPool pool(2);
    train::Tape t(pool);
    train::Var pooled = nullptr;
    train::Var last = m->encode(t, in.rows.data(), B, in.T, &pooled, true, nullptr, nullptr, grid.h, grid.w);
    ASSERT_NE(pooled, nullptr);
    EXPECT_LT(rel_err(last->data, ref.get("out.last_hidden_state")), 2e-5);
    const bool proj = ref.has("out.image_embeds");
    EXPECT_LT(rel_err(pooled->data, ref.get(proj ? "out.image_embeds" : "out.pooler_output")), 2e-5);

    const double l = backward_reference_loss(t, ref, last, pooled);
    EXPECT_NEAR(l, ref.get("loss.value")[0], 1e-4 * std::max(1.0, std::fabs(l)));
    const double scale = reference_grad_scale(ref);
    int checked = 0;
    for (const auto& p : m->params()) {
        const std::string hf = gguf_to_hf_name(m->arch(), p->name, &m->config());
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
        if (info.name.rfind("grad.", 0) == 0 && info.name != "grad.input.pixel_values" &&
            info.name.find("relative_position_index") == std::string::npos)
            ++ref_grads;
    EXPECT_EQ(ref_grads, checked);

    // The pixels' gradient: each pixel's entry of the input rows.
    const std::vector<float> dpix = ref.get("grad.input.pixel_values");
    ASSERT_NE(m->last_input, nullptr);
    ASSERT_NE(m->last_input->grad, nullptr);
    std::vector<float> mine(dpix.size());
    for (size_t i = 0; i < dpix.size(); ++i) mine[i] = m->last_input->grad[in.where[i]];
    EXPECT_LT(rel_err(mine.data(), dpix), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Refs, VisionEncoder, ::testing::Values("vit_tiny", "clip_vision_tiny", "clip_vision_proj_tiny", "swin_tiny",
                                                            "swin_tiny_pad", "siglip_tiny"),
                         [](const auto& info) { return std::string(info.param); });

// Every reference model saved by the trainer (config.json + safetensors under HF names, Swin's
// stage/block names included) loads back with the same tensors, and the saved folder keeps HF's names.
TEST(VisionEncoder, SavedFoldersLoadBackWithHfNames) {
    for (const char* name : {"vit_tiny", "clip_vision_proj_tiny", "swin_tiny", "siglip_tiny", "llava_clip_tiny"}) {
        SCOPED_TRACE(name);
        const Ref ref(name);
        auto m = train::TrainModel::from_files(open_model_files(ref.dir));
        const std::string out = test::temp_dir() + "/" + name;
        std::filesystem::create_directories(out);
        train::write_hf_model(out, *m);
        SafetensorsFile mine(out + "/model.safetensors"), theirs(ref.dir + "/model.safetensors");
        int n = 0;
        for (const auto& info : theirs.tensor_infos()) {
            if (info.name.find("relative_position_index") != std::string::npos) continue;  // computed, not stored
            // A tower with a projector does not read CLIP's post-LayerNorm (HF LLaVA does not either).
            if (m->config().enc.projector != Projector::kNone && info.name.find("post_layernorm") != std::string::npos) continue;
            ASSERT_TRUE(mine.has_tensor(info.name)) << info.name;
            const Tensor a = mine.tensor(info.name), b = theirs.tensor(info.name);
            ASSERT_EQ(a.shape(), b.shape()) << info.name;
            EXPECT_EQ(std::memcmp(a.data(), b.data(), b.nbytes()), 0) << info.name;
            ++n;
        }
        EXPECT_EQ(static_cast<size_t>(n), mine.tensor_infos().size());
        const ModelFiles back = open_model_files(out);
        EXPECT_EQ(back.config.arch, m->config().arch);
        EXPECT_EQ(back.config.enc.depths, m->config().enc.depths);
        EXPECT_EQ(back.config.enc.stage_heads, m->config().enc.stage_heads);
        EXPECT_EQ(back.config.enc.act, m->config().enc.act);
        EXPECT_EQ(back.config.enc.projection_dim, m->config().enc.projection_dim);
        EXPECT_EQ(back.config.enc.projector, m->config().enc.projector);
        EXPECT_EQ(back.config.enc.feature_layer, m->config().enc.feature_layer);
        EXPECT_EQ(back.config.enc.proj_out, m->config().enc.proj_out);
        EXPECT_EQ(back.config.enc.map_head, m->config().enc.map_head);
        EXPECT_EQ(back.config.enc.class_token, m->config().enc.class_token);
        EXPECT_EQ(back.tensors.size(), static_cast<size_t>(n));
    }
}

// The message of the trainer's encode() given T rows per image ("" when it runs).
std::string error_of_encode(train::TrainModel& m, const std::vector<float>& rows, int64_t T) {
    ThreadPool pool(1);
    train::Tape t(pool);
    return test::error_of([&] { m.encode(t, rows.data(), 1, T); });
}

// LLaVA-style image features (make_vision_refs.py llava_clip_tiny: a CLIPVisionModel tower,
// vision_feature_layer -2, class row dropped, mlp2x_gelu projector): the trainer's encode() gives
// the projected rows, and for L = Σ image_features · r_last the gradient of every parameter (the
// projector's included; the last layer and post_layernorm get none) and of the pixels.
TEST(LlavaProjector, TrainerMatchesReferenceForwardAndGradients) {
    const Ref ref("llava_clip_tiny");
    auto m = train::TrainModel::from_files(open_model_files(ref.dir));
    const ModelConfig& c = m->config();
    ASSERT_EQ(c.enc.projector, Projector::kMlp);
    const std::vector<int64_t> shape = ref.shape("input.pixel_values");
    const Patches in = patchify(ref.get("input.pixel_values"), shape, c.enc.patch_size, true);
    const int64_t B = shape[0];
    ThreadPool pool(2);
    train::Tape t(pool);
    std::map<std::string, std::vector<float>> seen;
    const train::TrainModel::Hook hook = [&](const std::string& name, train::Var v) {
        seen[name].assign(v->data, v->data + v->numel);
    };
    train::Var pooled = nullptr;
    train::Var feats = m->encode(t, in.rows.data(), B, in.T, &pooled, true, nullptr, hook);
    EXPECT_EQ(pooled, nullptr);
    EXPECT_EQ(feats->shape, (std::vector<int64_t>{B * c.enc.n_image_tokens(), c.enc.proj_out}));
    EXPECT_LT(rel_err(feats->data, ref.get("out.image_features")), 2e-5);
    // Hidden states up to the feature layer only: later layers are not run.
    EXPECT_LT(rel_err(seen.at("embed").data(), ref.get("out.hidden_states.0")), 2e-5);
    EXPECT_LT(rel_err(seen.at("layers.1.out").data(), ref.get("out.hidden_states.2")), 2e-5);
    EXPECT_EQ(seen.count("layers.2.out"), 0u);

    const double l = backward_reference_loss(t, ref, feats, nullptr);
    EXPECT_NEAR(l, ref.get("loss.value")[0], 1e-4 * std::max(1.0, std::fabs(l)));
    const double scale = reference_grad_scale(ref);
    int checked = 0;
    for (const auto& p : m->params()) {
        const std::string hf = gguf_to_hf_name(m->arch(), p->name, &c);
        ASSERT_TRUE(ref.has("grad." + hf)) << hf;
        EXPECT_LT(rel_err(p->grad.data(), ref.get("grad." + hf), 1e-3 * scale), 1e-4) << hf;
        ++checked;
    }
    EXPECT_EQ(checked, 3 * 16 + 5 + 4);  // 3 layers, class/patch/position/pre-LN, the projector
    // The reference's other gradients are of tensors the model does not have: post_layernorm, all zero.
    for (const auto& info : ref.expected.tensor_infos()) {
        if (info.name.rfind("grad.", 0) != 0 || info.name == "grad.input.pixel_values") continue;
        const std::string g = hf_to_gguf_name(m->arch(), info.name.substr(5), nullptr, &c);
        if (m->find(g) != nullptr) continue;
        EXPECT_NE(info.name.find("post_layernorm"), std::string::npos) << info.name;
        for (float v : ref.get(info.name)) EXPECT_EQ(v, 0.0f) << info.name;
    }
    const std::vector<float> dpix = ref.get("grad.input.pixel_values");
    ASSERT_NE(m->last_input->grad, nullptr);
    std::vector<float> mine(dpix.size());
    for (size_t i = 0; i < dpix.size(); ++i) mine[i] = m->last_input->grad[in.where[i]];
    EXPECT_LT(rel_err(mine.data(), dpix), 1e-4);
}

// A fresh CLIP tower + mlp projector built in code, as a VLM trainer makes it, saved as an mmproj
// (model/mmproj.h) through its inference twin: the file loads back as the same function.
TEST(LlavaProjector, FreshTowerSavesAsMmproj) {
    ModelConfig c = open_model_files(Ref("clip_vision_tiny").dir).config;
    c.enc.projector = Projector::kMlp;
    c.enc.proj_out = 24;
    c.enc.feature_layer = -1;  // the last layer's output: the mmproj gets a block of zeros clip.cpp skips
    auto m = train::TrainModel::init_random(c, 7);
    EXPECT_EQ(m->find("v.post_ln.weight"), nullptr);
    ASSERT_NE(m->find("mm.2.weight"), nullptr);
    const std::string path = test::temp_dir() + "/fresh_mmproj.gguf";
    const ImagePreprocess pre = ImagePreprocess::siglip();
    save_mmproj(path, m->inference(), pre);
    auto back = Model::load(path);
    EXPECT_EQ(back->config().n_layer, c.n_layer + 1);
    EXPECT_EQ(back->config().enc.feature_depth(back->config().n_layer), c.n_layer);
    EXPECT_EQ(back->config().enc.proj_out, 24);
    const std::vector<float> rows = test::randn(static_cast<size_t>(2 * 17 * 192), 3, 1.0f);
    ThreadPool pool(2);
    ForwardScratch s;
    EncodeOutput mine, theirs;
    m->inference().encode(rows.data(), 2, 17, mine, pool, s);
    back->encode(rows.data(), 2, 17, theirs, pool, s);
    ASSERT_EQ(mine.last.size(), static_cast<size_t>(2 * 16 * 24));
    // The file's matrices are f16: the rows agree to f16's precision.
    EXPECT_LT(test::rel_err(theirs.last.data(), mine.last.data(), mine.last.size()), 5e-3);
    train::Tape t(pool);
    train::Var v = m->encode(t, rows.data(), 2, 17);
    EXPECT_LT(test::rel_err(v->data, mine.last.data(), mine.last.size()), 1e-5);
}

// The projector on the other towers (ViT, SigLIP: the same definition as CLIP's): engine and
// trainer agree, only the layers up to the feature layer run, "full" keeps the first row.
TEST(LlavaProjector, EveryTowerTakesOne) {
    for (const char* name : {"vit_tiny", "siglip_tiny"}) {
        for (bool full : {false, true}) {
            SCOPED_TRACE(std::string(name) + (full ? " full" : " default"));
            ModelConfig c = open_model_files(Ref(name).dir).config;
            c.enc.projector = Projector::kMlp;
            c.enc.proj_out = 8;
            c.enc.feature_layer = 1;  // hidden_states[1]: one layer of two
            c.enc.feature_select_full = full;
            auto m = train::TrainModel::init_random(c, 11);
            const int64_t T = (c.enc.class_token ? 1 : 0) + c.enc.n_patches();
            EXPECT_EQ(c.enc.n_image_tokens(), T - (full ? 0 : 1));
            const std::vector<float> rows = test::randn(static_cast<size_t>(2 * T * c.enc.patch_cols()), 5, 1.0f);
            ThreadPool pool(2);
            ForwardScratch s;
            std::vector<std::string> seen;
            s.hook = [&](const std::string& n, const float*, int64_t) { seen.push_back(n); };
            EncodeOutput out;
            m->inference().encode(rows.data(), 2, T, out, pool, s);
            EXPECT_EQ(seen, (std::vector<std::string>{"embed", "layers.0.out"}));
            EXPECT_EQ(out.rows, c.enc.n_image_tokens());
            EXPECT_EQ(out.cols, 8);
            EXPECT_TRUE(out.pooled.empty());
            train::Tape t(pool);
            train::Var pooled = nullptr;
            train::Var v = m->encode(t, rows.data(), 2, T, &pooled);
            EXPECT_EQ(pooled, nullptr);
            ASSERT_EQ(static_cast<size_t>(v->numel), out.last.size());
            EXPECT_LT(test::rel_err(v->data, out.last.data(), out.last.size()), 1e-5);
            EXPECT_NE(error_of_encode(*m, rows, T - 1), "");
        }
    }
}

TEST(VisionEncoder, BadInputsAreOneLineErrors) {
    // A decoder asked to encode.
    ModelConfig c;
    c.arch = "llama";
    c.n_vocab = 16, c.n_embd = 8, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 2, c.n_ff = 16;
    auto dec = train::TrainModel::init_random(c, 1);
    ThreadPool pool(1);
    ForwardScratch s;
    EncodeOutput out;
    const std::vector<float> rows(64, 0.0f);
    try {
        dec->inference().encode(rows.data(), 1, 2, out, pool, s);
        FAIL() << "a decoder encoded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("is a decoder, not an encoder"), std::string::npos) << e.what();
    }
    // A Swin config whose stages disagree, and an image smaller than a window.
    const std::string dir = test::temp_dir() + "/bad_swin";
    std::filesystem::create_directories(dir);
    test::write_file(dir + "/config.json",
                     R"({"model_type": "swin", "embed_dim": 16, "depths": [2, 2], "num_heads": [2], "window_size": 4,)"
                     R"( "image_size": 32, "patch_size": 2})");
    try {
        open_model_files(dir);
        FAIL() << "loaded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("\"depths\" has 2 stages and \"num_heads\" 1"), std::string::npos)
            << e.what();
    }
    auto swin = Model::load(test::src_path("tests/model/ref/vision/swin_tiny"));
    // An 8×8 patch grid: stage 1's 4×4 grid is one window, run unshifted (as HF); a 6×8 grid
    // leaves stage 1 a 3×4 grid, smaller than the window.
    std::vector<float> small(static_cast<size_t>(8 * 8 * 12), 0.1f);
    EXPECT_NO_THROW(swin->encode(small.data(), 1, 64, out, pool, s, 8, 8));
    try {
        swin->encode(small.data(), 1, 48, out, pool, s, 6, 8);
        FAIL() << "encoded a grid smaller than a window";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("Swin stage 1 has a 3x4 token grid, smaller than the 4-token window"),
                  std::string::npos)
            << e.what();
    }
}

// RoBERTa (the text encoder): the same comparisons over the real (unpadded) rows.
std::vector<float> real_rows(const float* x, const std::vector<int32_t>& lengths, int64_t T, int64_t C) {
    std::vector<float> out;
    for (size_t b = 0; b < lengths.size(); ++b)
        out.insert(out.end(), x + b * T * C, x + (b * T + lengths[b]) * C);
    return out;
}

TEST(TextEncoder, RobertaEngineAndTrainerMatchReference) {
    const Ref ref("roberta_tiny");
    // I32 tensors (the engine loads no integer dtype): read from the file's bytes.
    const std::string bytes = test::read_file(ref.dir + "/expected.safetensors");
    auto ints = [&](const char* name) {
        const SafetensorsTensorInfo* info = ref.expected.find_tensor(name);
        EXPECT_NE(info, nullptr) << name;
        std::vector<int32_t> v((info->end - info->begin) / 4);
        std::memcpy(v.data(), bytes.data() + ref.expected.data_offset() + info->begin, v.size() * 4);
        return v;
    };
    const std::vector<int32_t> ids = ints("input.input_ids"), mask = ints("input.attention_mask");
    const int64_t B = ref.expected.find_tensor("input.input_ids")->shape[0], T = static_cast<int64_t>(ids.size()) / B;
    std::vector<int32_t> lengths(static_cast<size_t>(B), 0);
    for (int64_t i = 0; i < B * T; ++i) lengths[i / T] += mask[i];
    const std::vector<float> want_last = ref.get("out.last_hidden_state");
    const int64_t C = static_cast<int64_t>(want_last.size()) / (B * T);
    const std::vector<float> want_real = real_rows(want_last.data(), lengths, T, C);

    auto model = Model::load(ref.dir);
    ThreadPool pool(2);
    ForwardScratch s;
    std::map<std::string, std::vector<float>> seen;
    s.hook = [&](const std::string& name, const float* x, int64_t n) { seen[name].assign(x, x + n); };
    EncodeOutput out;
    model->encode_tokens(ids.data(), lengths.data(), B, T, out, pool, s);
    EXPECT_LT(rel_err(real_rows(out.last.data(), lengths, T, C).data(), want_real), 2e-5);
    const std::vector<std::string> names = hidden_state_names(model->config());
    for (size_t i = 0; i < names.size(); ++i) {
        const std::vector<float> want = ref.get("out.hidden_states." + std::to_string(i));
        EXPECT_LT(rel_err(real_rows(seen.at(names[i]).data(), lengths, T, C).data(), real_rows(want.data(), lengths, T, C)),
                  2e-5)
            << names[i];
    }
    EXPECT_LT(rel_err(out.pooled.data(), ref.get("out.pooler_output")), 2e-5);

    auto m = train::TrainModel::from_files(open_model_files(ref.dir));
    m->need_embed_grad = true;
    train::Tape t(pool);
    train::Var pooled = nullptr;
    train::Var last = m->encode_tokens(t, ids.data(), lengths.data(), B, T, &pooled);
    EXPECT_LT(rel_err(real_rows(last->data, lengths, T, C).data(), want_real), 2e-5);
    EXPECT_LT(rel_err(pooled->data, ref.get("out.pooler_output")), 2e-5);
    backward_reference_loss(t, ref, last, pooled);
    const double scale = reference_grad_scale(ref);
    int checked = 0;
    for (const auto& p : m->params()) {
        const std::string hf = gguf_to_hf_name(m->arch(), p->name, &m->config());
        ASSERT_TRUE(ref.has("grad." + hf)) << hf;
        EXPECT_LT(rel_err(p->grad.data(), ref.get("grad." + hf), 1e-3 * scale), 1e-4) << hf;
        ++checked;
    }
    EXPECT_EQ(checked, 2 * 16 + 7);  // 16 per layer, 7 global
    // The gradient of the gathered word-embedding rows (HF's inputs_embeds), real rows.
    ASSERT_NE(m->last_embed, nullptr);
    ASSERT_NE(m->last_embed->grad, nullptr);
    const std::vector<float> demb = ref.get("grad.input.inputs_embeds");
    EXPECT_LT(rel_err(real_rows(m->last_embed->grad, lengths, T, C).data(), real_rows(demb.data(), lengths, T, C),
                      1e-3 * scale),
              1e-4);
}

TEST(TextEncoder, BadTokensAreOneLineErrors) {
    auto model = Model::load(test::src_path("tests/model/ref/vision/roberta_tiny"));
    ThreadPool pool(1);
    ForwardScratch s;
    EncodeOutput out;
    const std::vector<int32_t> ids = {0, 5, 100, 2}, ok_len = {4}, bad_len = {5};
    try {
        model->encode_tokens(ids.data(), ok_len.data(), 1, 4, out, pool, s);
        FAIL() << "id 100 of a 100-token vocabulary";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("token id 100 at row 2 is out of range"), std::string::npos) << e.what();
    }
    const std::vector<int32_t> fine = {0, 5, 7, 2};
    EXPECT_THROW(model->encode_tokens(fine.data(), bad_len.data(), 1, 4, out, pool, s), Error);
    const std::vector<float> rows(64, 0.0f);
    EXPECT_THROW(model->encode(rows.data(), 1, 2, out, pool, s), Error);  // a text encoder given image rows
}

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
