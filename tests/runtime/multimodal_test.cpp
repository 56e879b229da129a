// Images in prompts (runtime/multimodal.h) on the default model (models/default): how a prompt
// with image markers is split and encoded, the stand-in keys of image rows, and that rows fed
// through Context::decode_rows are exactly token rows — the default model's own token embeddings
// fed as "image" rows give the logits of the tokens themselves, also when a conversation's cached
// prefix ends inside an image.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "runtime/chat.h"
#include "runtime/context.h"
#include "runtime/multimodal.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

std::string default_model() {
    const std::string p = test::src_path("models/default");
    return fs::is_regular_file(p + "/model.safetensors") ? p : "";
}

#define REQUIRE_DEFAULT_MODEL(var)                                                                  \
    const std::string var = default_model();                                                        \
    if (var.empty()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: models/default (set LLMFORGE_SRC)"

PromptImage fake_image(int64_t n_rows, int64_t C, uint64_t hash) {
    PromptImage im;
    im.n_rows = n_rows;
    im.rows = test::randn(static_cast<size_t>(n_rows * C), hash, 0.02f);
    im.hash = hash;
    return im;
}

TEST(Multimodal, MarkersSplitThePromptAndEachPartIsEncodedOnItsOwn) {
    REQUIRE_DEFAULT_MODEL(dir);
    const auto m = Model::load(dir);
    const auto tok = Tokenizer::create(m->vocab());
    const int64_t C = m->config().n_embd;
    const std::string text = "USER: <image>\nWhat is this? And <__media__> that one.";
    const MultimodalPrompt p =
        build_multimodal_prompt(*tok, text, {fake_image(5, C, 1), fake_image(3, C, 2)}, true, false);
    ASSERT_EQ(p.pieces.size(), 5u);
    EXPECT_EQ(p.pieces[0].tokens, encode_prompt(*tok, "USER: ", true, false));
    EXPECT_EQ(p.pieces[1].image, 0);
    EXPECT_EQ(p.pieces[2].tokens, encode_prompt(*tok, "\nWhat is this? And ", false, false));
    EXPECT_EQ(p.pieces[3].image, 1);
    EXPECT_EQ(p.pieces[4].tokens, encode_prompt(*tok, " that one.", false, false));
    const int64_t n_text = static_cast<int64_t>(p.text_tokens().size());
    EXPECT_EQ(p.n_positions(), n_text + 8);
    const std::vector<int32_t> keys = p.position_keys();
    ASSERT_EQ(static_cast<int64_t>(keys.size()), p.n_positions());
    int64_t negative = 0;
    for (int32_t k : keys) negative += k < 0;
    EXPECT_EQ(negative, 8);  // one stand-in per image row, never a vocabulary id

    // Without markers the images come first, after BOS; without images the prompt is the text's.
    const MultimodalPrompt q = build_multimodal_prompt(*tok, "hello", {fake_image(2, C, 3)}, true, false);
    ASSERT_GE(q.pieces.size(), 2u);
    const std::vector<int32_t> bos = encode_prompt(*tok, "", true, false);
    if (!bos.empty()) {
        EXPECT_EQ(q.pieces[0].tokens, bos);
        EXPECT_EQ(q.pieces[1].image, 0);
    } else {
        EXPECT_EQ(q.pieces[0].image, 0);
    }
    const MultimodalPrompt plain = build_multimodal_prompt(*tok, "hello there", {}, true, false);
    ASSERT_EQ(plain.pieces.size(), 1u);
    EXPECT_EQ(plain.pieces[0].tokens, encode_prompt(*tok, "hello there", true, false));

    // Markers and images must pair up: one line saying so.
    const std::string err = test::error_of([&] { build_multimodal_prompt(*tok, "<image> <image>", {fake_image(2, C, 4)}, true, false); });
    EXPECT_NE(err.find("2 image markers"), std::string::npos) << err;
    EXPECT_NE(err.find("1 image is given"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos);
}

TEST(Multimodal, KeysFollowImageContent) {
    REQUIRE_DEFAULT_MODEL(dir);
    const auto m = Model::load(dir);
    const auto tok = Tokenizer::create(m->vocab());
    const int64_t C = m->config().n_embd;
    auto keys = [&](uint64_t hash) {
        return build_multimodal_prompt(*tok, "a <image> b", {fake_image(4, C, hash)}, true, false).position_keys();
    };
    EXPECT_EQ(keys(7), keys(7));
    const std::vector<int32_t> a = keys(7), b = keys(8);
    ASSERT_EQ(a.size(), b.size());
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    EXPECT_EQ(differ, 4u);  // exactly the image's rows
}

TEST(Multimodal, EmbeddingRowsGiveTheTokensOwnLogits) {
    REQUIRE_DEFAULT_MODEL(dir);
    const auto m = Model::load(dir);
    const auto tok = Tokenizer::create(m->vocab());
    const int64_t C = m->config().n_embd, V = m->config().n_vocab;
    const std::vector<int32_t> all = encode_prompt(*tok, "Hello, I would like to return my order please.", true, false);
    ASSERT_GE(all.size(), 8u);
    // The token rows of tokens [2, 7) as the embedding layer makes them (the "embed" hook).
    ContextParams cp;
    cp.n_threads = 1;
    Context ref(*m, cp);
    std::vector<float> embed;
    ref.scratch().hook = [&](const std::string& name, const float* x, int64_t n) {
        if (name == "embed") embed.assign(x, x + n);
    };
    const std::vector<float> want = ref.decode_all(all);
    ref.scratch().hook = nullptr;
    ASSERT_EQ(static_cast<int64_t>(embed.size()), static_cast<int64_t>(all.size()) * C);

    // The same sequence with tokens 2..6 given as an "image" of 5 rows.
    MultimodalPrompt p;
    p.pieces.push_back({{all.begin(), all.begin() + 2}, -1});
    p.pieces.push_back({{}, 0});
    p.pieces.push_back({{all.begin() + 7, all.end()}, -1});
    PromptImage im;
    im.n_rows = 5;
    im.rows.assign(embed.begin() + 2 * C, embed.begin() + 7 * C);
    p.images.push_back(im);
    for (int64_t from : {int64_t{0}, int64_t{4}}) {  // 4: a cached prefix that ends inside the image
        Context ctx(*m, cp);
        if (from > 0) {
            ctx.decode({all.begin(), all.begin() + 2});
            ctx.decode_rows(im.rows.data(), 2);
            ASSERT_EQ(ctx.n_past(), from);
        }
        const std::vector<int32_t> rest = feed_multimodal_prompt(ctx, p, nullptr, from);
        EXPECT_EQ(rest, std::vector<int32_t>(all.begin() + 7, all.end()));
        ctx.decode(rest);
        const float* last_want = want.data() + (all.size() - 1) * static_cast<size_t>(V);
        EXPECT_LT(test::rel_err(ctx.logits().data(), last_want, static_cast<size_t>(V)), 1e-5) << "from " << from;
    }
    // A prompt that ends with its image: the last row's logits are the token's.
    Context ctx(*m, cp);
    MultimodalPrompt q = p;
    q.pieces.pop_back();
    EXPECT_TRUE(feed_multimodal_prompt(ctx, q).empty());
    EXPECT_LT(test::rel_err(ctx.logits().data(), want.data() + 6 * static_cast<size_t>(V), static_cast<size_t>(V)), 1e-5);
    // Rows that do not fit: one line, a resource error.
    ContextParams small = cp;
    small.n_ctx = 4;
    Context tiny(*m, small);
    const std::string err = test::error_of([&] { tiny.decode_rows(im.rows.data(), 5); });
    EXPECT_NE(err.find("do not fit the context of 4 positions"), std::string::npos) << err;
}

// ImageEncoder::load(path, bf16): the tower's products in bf16 (Model::set_encode_type), the rows
// close to the f32 encoder's (the llama.cpp-written mmproj fixture, a 40 x 30 gradient image).
TEST(Multimodal, Bf16ImageEncoderIsCloseToF32) {
    const std::string path = test::src_path("tests/model/ref/vision/llava_clip_tiny/mmproj-model-f16.gguf");
    if (!fs::is_regular_file(path)) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << path << " (set LLMFORGE_SRC)";
    Image im;
    im.width = 40, im.height = 30;
    for (int64_t y = 0; y < im.height; ++y)
        for (int64_t x = 0; x < im.width; ++x)
            for (int c = 0; c < 3; ++c) im.rgb.push_back(static_cast<uint8_t>((x * 6 + y * 5 + c * 70) % 256));
    ThreadPool pool(2);
    const auto f32 = ImageEncoder::load(path), bf16 = ImageEncoder::load(path, DType::BF16);
    EXPECT_EQ(bf16->tower().encode_type(), DType::BF16);
    const std::vector<float> a = f32->embed(im, pool), b = bf16->embed(im, pool);
    ASSERT_EQ(a.size(), b.size());
    double diff = 0, mag = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
        mag = std::max(mag, std::fabs(static_cast<double>(a[i])));
    }
    EXPECT_GT(diff, 0.0) << "bf16 products should round";
    EXPECT_LT(diff / mag, 2e-2);
    try {
        ImageEncoder::load(path, DType::Q8_0);
        ADD_FAILURE() << "a q8_0 encode type should be refused";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("f32 or bf16"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
}

}  // namespace
}  // namespace llmforge
