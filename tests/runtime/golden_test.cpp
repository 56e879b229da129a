// Whole-model golden tests: logits and activations of the PyTorch reference model
// (../shared/assets/torch-golden, compared with its float64 run) and KV-cache decode vs full
// recomputation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "golden.h"
#include "kernels/cpu/kernels.h"
#include "runtime/context.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

class GoldenTest : public ::testing::TestWithParam<int> {};

TEST_P(GoldenTest, LogitsAndActivationsMatchFloat64Reference) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    auto g = read_golden(dir);
    auto model = Model::from_files(golden_model_files(g));
    ContextParams cp;
    cp.n_ctx = 16;
    cp.n_threads = GetParam();
    const auto& inputs = g.at("inputs").values;  // (B=2, T=16)
    double total_loss = 0;
    for (int b = 0; b < 2; ++b) {
        Context ctx(*model, cp);
        std::map<std::string, std::vector<float>> acts;
        ctx.scratch().hook = [&](const std::string& name, const float* d, int64_t n) {
            acts[name].assign(d, d + n);
        };
        std::vector<int32_t> toks;
        for (int t = 0; t < 16; ++t) toks.push_back(static_cast<int32_t>(inputs[b * 16 + t]));
        std::vector<float> logits = ctx.decode_all(toks);
        const auto& ref = g.at("f64.logits").values;
        double e = rel_err(logits.data(), ref.data() + b * 16 * 256, 16 * 256);
        EXPECT_LT(e, 1e-5) << "logits, sequence " << b;
        for (const char* name : {"embed", "layers.0.out", "layers.1.out", "final_norm"}) {
            const auto& r = g.at(std::string("f64.act.") + name).values;
            ASSERT_EQ(acts[name].size(), 16u * 64u) << name;
            double ea = rel_err(acts[name].data(), r.data() + b * 16 * 64, 16 * 64);
            EXPECT_LT(ea, 1e-5) << name << ", sequence " << b;
        }
        // The float64 loss from our logits.
        double loss = 0;
        const auto& tg = g.at("targets").values;
        for (int t = 0; t < 16; ++t) {
            const float* l = logits.data() + t * 256;
            double mx = l[0], s = 0;
            for (int v = 1; v < 256; ++v) mx = std::max(mx, static_cast<double>(l[v]));
            for (int v = 0; v < 256; ++v) s += std::exp(l[v] - mx);
            loss += std::log(s) + mx - l[static_cast<int>(tg[b * 16 + t])];
        }
        total_loss += loss;
    }
    const double ref_loss = g.at("f64.loss").values[0];
    EXPECT_LT(std::abs(total_loss / 32 - ref_loss) / ref_loss, 1e-6);
}

TEST_P(GoldenTest, KvCacheDecodeEqualsFullRecomputation) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    auto g = read_golden(dir);
    auto model = Model::from_files(golden_model_files(g));
    ContextParams cp;
    cp.n_ctx = 16;
    cp.n_threads = GetParam();
    std::vector<int32_t> toks;
    for (int t = 0; t < 16; ++t) toks.push_back(static_cast<int32_t>(g.at("inputs").values[t]));
    Context full(*model, cp);
    std::vector<float> all = full.decode_all(toks);
    // Prefill 5 tokens as a batch, then one token at a time.
    Context inc(*model, cp);
    std::vector<float> first = inc.decode_all({toks.begin(), toks.begin() + 5});
    double worst = 0;
    auto cmp = [&](const float* a, const float* b) { worst = std::max(worst, rel_err(a, b, 256)); };
    for (int t = 0; t < 5; ++t) cmp(first.data() + t * 256, all.data() + t * 256);
    for (int t = 5; t < 16; ++t) {
        const auto& l = inc.decode({toks[t]});
        cmp(l.data(), all.data() + t * 256);
    }
    EXPECT_LT(worst, 1e-5);
    EXPECT_EQ(inc.n_past(), 16);
    // Truncate and replay: the same logits again.
    inc.truncate(10);
    const auto& l = inc.decode({toks[10]});
    worst = 0;
    cmp(l.data(), all.data() + 10 * 256);
    EXPECT_LT(worst, 1e-5);
}

TEST(Golden, TokenIdOutOfRangeIsAClearError) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    auto model = Model::from_files(golden_model_files(read_golden(dir)));
    Context ctx(*model, ContextParams{16, 16, 1});
    try {
        ctx.decode({5, 256});
        FAIL() << "expected an error";
    } catch (const Error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("256"), std::string::npos) << m;
        EXPECT_NE(m.find("vocab"), std::string::npos) << m;
    }
    try {
        ctx.decode(std::vector<int32_t>(17, 3));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("context"), std::string::npos);
    }
}

TEST(Golden, MissingTensorAndWrongShapeAreClearErrors) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    auto g = read_golden(dir);
    {
        ModelFiles f = golden_model_files(g);
        f.tensors.erase("blk.1.ffn_up.weight");
        try {
            Model::from_files(std::move(f));
            FAIL();
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("blk.1.ffn_up.weight"), std::string::npos);
        }
    }
    {
        ModelFiles f = golden_model_files(g);
        f.tensors["blk.0.attn_k.weight"] = Tensor::empty(DType::F32, {31, 64}, "blk.0.attn_k.weight");
        try {
            Model::from_files(std::move(f));
            FAIL();
        } catch (const Error& e) {
            std::string m = e.what();
            EXPECT_NE(m.find("31x64"), std::string::npos) << m;
            EXPECT_NE(m.find("32x64"), std::string::npos) << m;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Threads, GoldenTest, ::testing::Values(1, 2, 3));

}  // namespace

namespace {

std::vector<float> golden_logits(ModelFiles files) {
    auto model = Model::from_files(std::move(files));
    Context ctx(*model, ContextParams{16, 16, 1});
    std::vector<int32_t> toks = {3, 141, 59, 26, 53, 58, 97, 93, 23, 84, 62, 64, 33, 83, 27, 95};
    return ctx.decode_all(toks);
}

// Linear RoPE scaling from metadata and the same scaling as per-pair divisors in
// rope_freqs.weight (how Llama 3.1 GGUF files carry theirs) must give the same logits, and both
// must differ from the unscaled model.
TEST(Golden, LinearRopeScalingEqualsRopeFreqsDivisors) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    auto g = read_golden(dir);
    const std::vector<float> plain = golden_logits(golden_model_files(g));
    ModelFiles lin = golden_model_files(g);
    lin.config.rope_scaling = RopeScaling::kLinear;
    lin.config.rope_factor = 2.0f;
    ModelFiles freqs = golden_model_files(g);
    Tensor ff = Tensor::empty(DType::F32, {8}, "rope_freqs.weight");
    for (int i = 0; i < 8; ++i) ff.ptr<float>()[i] = 2.0f;
    freqs.tensors["rope_freqs.weight"] = ff;
    const std::vector<float> a = golden_logits(std::move(lin));
    const std::vector<float> b = golden_logits(std::move(freqs));
    double diff_ab = 0, diff_plain = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff_ab = std::max(diff_ab, static_cast<double>(std::abs(a[i] - b[i])));
        diff_plain = std::max(diff_plain, static_cast<double>(std::abs(a[i] - plain[i])));
    }
    EXPECT_LT(diff_ab, 1e-5);
    EXPECT_GT(diff_plain, 1e-2);
    // A non-positive divisor is a clear error, not a NaN model.
    ModelFiles bad = golden_model_files(g);
    ff.ptr<float>()[3] = 0.0f;
    bad.tensors["rope_freqs.weight"] = ff;
    EXPECT_THROW(Model::from_files(std::move(bad)), Error);
}

}  // namespace
