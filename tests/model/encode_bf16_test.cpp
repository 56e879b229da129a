// Model::set_encode_type(BF16): encoder products (and attention's two) as bf16 ones on the packed
// weights (model.cpp EagerOps::encoder_product, kernels/cpu/gemm_bf16.h), against the same model's
// f32 encode, which tests/train/encoder_reference_test.cpp checks against float64 references:
// close to it (bf16 rounding of every product's inputs), but not equal; f32 encodes untouched by
// a bf16 one before them; concurrent first encodes (each weight packed once under call_once) give
// the serial bits; the errors are one-line Errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

std::string case_dir(const char* name) { return test::src_path(std::string("tests/model/ref/vision/") + name); }

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
    return test::rel_err(a.data(), b.data(), b.size());
}

// B random images (uniform in [-1, 1]) as encode's input rows.
std::vector<float> image_rows(const ModelConfig& c, int64_t B, uint32_t seed) {
    const int64_t S = c.enc.image_size, P = c.enc.patch_size, ch = c.enc.n_channels;
    const int64_t rows = (c.enc.class_token ? 1 : 0) + c.enc.n_patches(), cols = c.enc.patch_cols();
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> pixels(static_cast<size_t>(ch * S * S)), out(static_cast<size_t>(B * rows * cols));
    for (int64_t b = 0; b < B; ++b) {
        for (float& p : pixels) p = u(rng);
        image_patch_rows(pixels.data(), ch, S, S, P, out.data() + b * rows * cols, c.enc.class_token);
    }
    return out;
}

EncodeOutput encode(const Model& m, const std::vector<float>& in, int64_t B, int threads) {
    ThreadPool pool(threads);
    ForwardScratch s;
    EncodeOutput out;
    m.encode(in.data(), B, static_cast<int64_t>(in.size()) / (B * m.config().enc.patch_cols()), out, pool, s);
    return out;
}

TEST(EncodeBf16, VisionTowerCloseToF32AndF32Untouched) {
    for (const char* name : {"vit_tiny", "clip_vision_tiny", "swin_tiny"}) {
        SCOPED_TRACE(name);
        auto m = Model::load(case_dir(name));
        const ModelConfig& c = m->config();
        if (!c.enc.depths.empty()) continue;  // Swin takes its grid from encode's arguments: ViT-like only here
        const int64_t B = 3;
        const std::vector<float> in = image_rows(c, B, 5);
        EXPECT_EQ(m->encode_type(), DType::F32);
        const EncodeOutput f32 = encode(*m, in, B, 2);
        m->set_encode_type(DType::BF16);
        EXPECT_EQ(m->encode_type(), DType::BF16);
        const EncodeOutput b16 = encode(*m, in, B, 2), b16_1 = encode(*m, in, B, 1);
        ASSERT_EQ(b16.last.size(), f32.last.size());
        const double err = rel_err(b16.last, f32.last);
        EXPECT_LT(err, 3e-2);
        EXPECT_GT(err, 1e-5) << "no bf16 rounding seen";
        EXPECT_LT(rel_err(b16.pooled, f32.pooled), 3e-2);
        EXPECT_EQ(b16.last, b16_1.last) << "bf16 encode depends on the thread count";
        m->set_encode_type(DType::F32);
        EXPECT_EQ(encode(*m, in, B, 2).last, f32.last) << "f32 encode changed after a bf16 one";
    }
}

// Threads sharing one fresh model encode at once, so they race to pack the same weights: each
// gets the serial result's bits.
TEST(EncodeBf16, ConcurrentFirstEncodesPackOnce) {
    auto m = Model::load(case_dir("vit_tiny"));
    m->set_encode_type(DType::BF16);
    const std::vector<float> in = image_rows(m->config(), 2, 9);
    std::vector<EncodeOutput> outs(4);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < outs.size(); ++i) threads.emplace_back([&, i] { outs[i] = encode(*m, in, 2, 1); });
    for (std::thread& t : threads) t.join();
    const EncodeOutput serial = encode(*m, in, 2, 1);
    for (const EncodeOutput& o : outs) EXPECT_EQ(o.last, serial.last);
}

TEST(EncodeBf16, TextEncoderCloseToF32) {
    auto m = Model::load(case_dir("roberta_tiny"));
    const int64_t B = 2, T = 7;
    std::mt19937 rng(3);
    std::vector<int32_t> ids(static_cast<size_t>(B * T)), lengths = {7, 4};
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(m->config().n_vocab));
    auto run = [&] {
        ThreadPool pool(2);
        ForwardScratch s;
        EncodeOutput out;
        m->encode_tokens(ids.data(), lengths.data(), B, T, out, pool, s);
        return out;
    };
    const EncodeOutput f32 = run();
    m->set_encode_type(DType::BF16);
    const EncodeOutput b16 = run();
    const int64_t C = f32.cols;
    std::vector<float> a, b;  // the real rows (padding rows' outputs mean nothing)
    for (int64_t j = 0; j < B; ++j)
        for (int64_t i = 0; i < lengths[j] * C; ++i) a.push_back(b16.last[j * T * C + i]), b.push_back(f32.last[j * T * C + i]);
    EXPECT_LT(rel_err(a, b), 3e-2);
    EXPECT_GT(rel_err(a, b), 1e-5);
}

TEST(EncodeBf16, BadSettingsAreOneLineErrors) {
    auto m = Model::load(case_dir("vit_tiny"));
    try {
        m->set_encode_type(DType::Q8_0);
        ADD_FAILURE() << "q8_0 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("f32 or bf16"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_EQ(m->encode_type(), DType::F32);
    // A model viewing weights that may change (the trainer's twin) packs nothing: bf16 refused.
    auto twin = Model::from_files(open_model_files(case_dir("vit_tiny")), false);
    EXPECT_THROW(twin->set_encode_type(DType::BF16), Error);
    twin->set_encode_type(DType::F32);
}

}  // namespace
}  // namespace llmforge
