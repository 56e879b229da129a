// model/prune: the row rule of unstructured / N:M pruning (exact counts, the lowest scores go,
// Wanda's activation weighting changes the choice), the pattern parser, and structured pruning
// on real files (config and shapes change, kept heads / channels are the source's, the most
// important ones are kept, GQA removes whole groups, bad requests are one clear error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "kernels/cpu/kernels.h"
#include "model/model.h"
#include "model/prune.h"
#include "test_util.h"

namespace llmforge {
namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& x : w) x = nd(rng);
    return w;
}

std::vector<float> as_f32(const Tensor& t) {
    const int64_t cols = t.shape().back();
    std::vector<float> v(static_cast<size_t>(t.numel()));
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    for (int64_t r = 0; r < t.nrows(); ++r) deq(t.row(r), v.data() + r * cols, cols);
    return v;
}

TEST(Prune, MagnitudeZerosTheSmallestOfEachRowExactly) {
    const int64_t rows = 16, cols = 100;
    const std::vector<float> src = random_matrix(rows, cols, 1);
    std::vector<float> w = src;
    const int64_t z = prune_matrix(w.data(), rows, cols, nullptr, 0.376, 0, 0, 2);
    EXPECT_EQ(z, rows * 38);  // round(0.376 * 100) per row
    for (int64_t r = 0; r < rows; ++r) {
        float max_pruned = 0, min_kept = INFINITY;
        int64_t zr = 0;
        for (int64_t c = 0; c < cols; ++c) {
            const float a = std::fabs(src[r * cols + c]);
            if (w[r * cols + c] == 0.0f) {
                ++zr;
                max_pruned = std::max(max_pruned, a);
            } else {
                EXPECT_EQ(w[r * cols + c], src[r * cols + c]);  // kept weights are untouched
                min_kept = std::min(min_kept, a);
            }
        }
        EXPECT_EQ(zr, 38);
        EXPECT_LE(max_pruned, min_kept);
    }
}

TEST(Prune, TiesStillGiveTheExactCount) {
    std::vector<float> w(3 * 10, 1.0f);
    EXPECT_EQ(prune_matrix(w.data(), 3, 10, nullptr, 0.5, 0, 0, 1), 15);
    // A row keeps one weight whatever the sparsity below 1.
    std::vector<float> s(2 * 4, 1.0f);
    EXPECT_EQ(prune_matrix(s.data(), 2, 4, nullptr, 0.99, 0, 0, 1), 6);
    // Sparsity 0 changes nothing.
    std::vector<float> v = random_matrix(2, 8, 3);
    const std::vector<float> before = v;
    EXPECT_EQ(prune_matrix(v.data(), 2, 8, nullptr, 0.0, 0, 0, 1), 0);
    EXPECT_EQ(v, before);
}

TEST(Prune, WandaWeightsByTheInputNorm) {
    // Column 0 carries large activations: Wanda keeps its small weight, magnitude prunes it.
    std::vector<float> w = {0.1f, 1.0f, -2.0f, 3.0f};
    std::vector<float> m = w;
    const std::vector<float> energy = {1e4f, 1.0f, 1.0f, 1.0f};
    prune_matrix(m.data(), 1, 4, nullptr, 0.5, 0, 0, 1);
    prune_matrix(w.data(), 1, 4, energy.data(), 0.5, 0, 0, 1);
    EXPECT_EQ(m, (std::vector<float>{0.0f, 0.0f, -2.0f, 3.0f}));
    EXPECT_EQ(w, (std::vector<float>{0.1f, 0.0f, 0.0f, 3.0f}));  // scores 10, 1, 2, 3
}

TEST(Prune, TwoFourKeepsTheTwoLargestOfEveryFour) {
    const int64_t rows = 8, cols = 64;
    const std::vector<float> src = random_matrix(rows, cols, 7);
    std::vector<float> w = src;
    EXPECT_EQ(prune_matrix(w.data(), rows, cols, nullptr, 0, 2, 4, 2), rows * cols / 2);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < cols; g += 4) {
            std::vector<float> a;
            for (int i = 0; i < 4; ++i) a.push_back(std::fabs(src[r * cols + g + i]));
            std::vector<float> sorted = a;
            std::sort(sorted.begin(), sorted.end());
            int zeros = 0;
            for (int i = 0; i < 4; ++i) {
                if (w[r * cols + g + i] == 0.0f) {
                    ++zeros;
                    EXPECT_LE(a[i], sorted[1]);
                } else {
                    EXPECT_GE(a[i], sorted[2]);
                }
            }
            EXPECT_EQ(zeros, 2) << "row " << r << " group " << g;
        }
}

TEST(Prune, PatternParser) {
    int n = 0, m = 0;
    parse_nm_pattern("2:4", &n, &m);
    EXPECT_EQ(n, 2);
    EXPECT_EQ(m, 4);
    parse_nm_pattern("1:8", &n, &m);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(m, 8);
    for (const char* bad : {"4:2", "2:2", "0:4", "2-4", "a:b", "2:", ":4", "", "2:4:8", "-1:4"}) {
        try {
            parse_nm_pattern(bad, &n, &m);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("N:M"), std::string::npos) << e.what();
        }
    }
}

std::string error_of(const ModelFiles& f, const PruneOptions& o) {
    try {
        prune_model(f, o);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Prune, UnstructuredStatsAreTheCountedZeros) {
    const ModelFiles f = open_model_files(test::src_path("tests/data/quant/tiny-f32.gguf"));
    PruneOptions o;
    o.sparsity = 0.5;
    o.n_threads = 2;
    const PrunedModel p = prune_model(f, o);
    EXPECT_EQ(p.stats.matrices, 7);  // q, k, v, o, gate, up, down of the one layer
    int64_t zeros = 0, n = 0, all_zeros = 0;
    for (const auto& [name, t] : p.tensors) {
        const std::vector<float> v = as_f32(t);
        const int64_t z = std::count(v.begin(), v.end(), 0.0f);
        all_zeros += z;
        if (name.rfind("blk.", 0) == 0 && t.ndim() == 2) {
            zeros += z;
            n += t.numel();
        } else {
            EXPECT_EQ(v, as_f32(f.tensors.at(name))) << name << " is not pruned";
        }
    }
    EXPECT_EQ(p.stats.pruned_zeros, zeros);
    EXPECT_EQ(p.stats.pruned_params, n);
    EXPECT_EQ(p.stats.zeros, all_zeros);
    EXPECT_NEAR(p.stats.sparsity(), 0.5, 1e-3);
    EXPECT_EQ(p.config.n_head, f.config.n_head);
}

TEST(Prune, HeadsAndChannelsMakeASmallerValidModel) {
    const ModelFiles f = open_model_files(test::src_path("tests/data/quant/tiny-f32.gguf"));
    const ModelConfig& c = f.config;  // 4 heads (kv 4) of 64, ffn 256
    ASSERT_EQ(c.n_head, 4);
    ASSERT_EQ(c.n_head_kv, 4);
    PruneOptions o;
    o.heads = 1;
    o.ffn_fraction = 0.25;
    o.n_threads = 2;
    const PrunedModel p = prune_model(f, o);
    EXPECT_EQ(p.config.n_head, 3);
    EXPECT_EQ(p.config.n_head_kv, 3);
    EXPECT_EQ(p.config.n_ff, 192);
    EXPECT_EQ(p.config.head_dim, 64);
    ModelFiles pf{f.path, f.format, p.config, f.vocab, p.tensors};
    EXPECT_NO_THROW(Model::validate(pf));
    EXPECT_EQ(p.tensors.at("blk.0.attn_q.weight").shape(), (std::vector<int64_t>{192, 256}));
    EXPECT_EQ(p.tensors.at("blk.0.attn_output.weight").shape(), (std::vector<int64_t>{256, 192}));
    EXPECT_EQ(p.tensors.at("blk.0.ffn_down.weight").shape(), (std::vector<int64_t>{256, 192}));

    // The kept heads are the source's rows / columns; the removed one had the smallest W_o energy.
    const std::vector<float> q0 = as_f32(f.tensors.at("blk.0.attn_q.weight")), q1 = as_f32(p.tensors.at("blk.0.attn_q.weight"));
    const std::vector<float> o0 = as_f32(f.tensors.at("blk.0.attn_output.weight")),
                             o1 = as_f32(p.tensors.at("blk.0.attn_output.weight"));
    const std::vector<int64_t>& kh = p.kept_heads[0];
    ASSERT_EQ(kh.size(), 3u);
    std::vector<double> energy(4, 0.0);
    for (int64_t r = 0; r < 256; ++r)
        for (int64_t j = 0; j < 256; ++j) energy[j / 64] += double(o0[r * 256 + j]) * o0[r * 256 + j];
    const int64_t removed = std::min_element(energy.begin(), energy.end()) - energy.begin();
    EXPECT_EQ(std::count(kh.begin(), kh.end(), removed), 0);
    for (size_t k = 0; k < kh.size(); ++k) {
        EXPECT_TRUE(std::equal(q1.begin() + k * 64 * 256, q1.begin() + (k + 1) * 64 * 256, q0.begin() + kh[k] * 64 * 256));
        for (int64_t r = 0; r < 256; r += 37)
            EXPECT_EQ(o1[r * 192 + k * 64 + 5], o0[r * 256 + kh[k] * 64 + 5]);
    }
    const std::vector<int64_t>& kc = p.kept_channels[0];
    ASSERT_EQ(kc.size(), 192u);
    const std::vector<float> d0 = as_f32(f.tensors.at("blk.0.ffn_down.weight")), d1 = as_f32(p.tensors.at("blk.0.ffn_down.weight"));
    for (int64_t r = 0; r < 256; r += 51)
        for (size_t k = 0; k < kc.size(); ++k) ASSERT_EQ(d1[r * 192 + k], d0[r * 256 + kc[k]]);
}

TEST(Prune, CalibrationDecidesWhichHeadAndChannelsStay) {
    const ModelFiles f = open_model_files(test::src_path("tests/data/quant/tiny-f32.gguf"));
    // Head 2's output columns and FFN channels 0..63 carry all the activation energy.
    ActivationEnergy act;
    act["blk.0.attn_output.weight"].assign(256, 1e-6f);
    for (int j = 128; j < 192; ++j) act["blk.0.attn_output.weight"][j] = 1e6f;
    act["blk.0.ffn_down.weight"].assign(256, 1e-6f);
    for (int j = 0; j < 64; ++j) act["blk.0.ffn_down.weight"][j] = 1e6f;
    PruneOptions o;
    o.heads = 3;
    o.ffn_fraction = 0.75;
    o.act = &act;
    const PrunedModel p = prune_model(f, o);
    EXPECT_EQ(p.kept_heads[0], (std::vector<int64_t>{2}));
    std::vector<int64_t> first64(64);
    for (int i = 0; i < 64; ++i) first64[i] = i;
    EXPECT_EQ(p.kept_channels[0], first64);
}

// Logits of every position of a fixed token sequence.
std::vector<float> logits_of(ModelFiles f) {
    auto m = Model::from_files(std::move(f));
    const std::vector<int32_t> toks = {1, 5, 9, 13, 40, 77, 100, 2, 31, 64};
    const int64_t n = static_cast<int64_t>(toks.size()), V = m->config().n_vocab;
    auto mem = m->new_memory(16);
    ThreadPool pool(2);
    ForwardScratch s;
    std::vector<float> out(static_cast<size_t>(n * V));
    m->forward(toks.data(), n, 0, *mem, out.data(), n, pool, s);
    return out;
}

// `f` with columns [c0, c1) of a matrix in every layer set to zero (owned f32 copies).
ModelFiles with_dead_columns(const ModelFiles& f, const char* matrix, int64_t c0, int64_t c1) {
    ModelFiles d{f.path, f.format, f.config, f.vocab, f.tensors};
    for (int64_t l = 0; l < f.config.n_layer; ++l) {
        const std::string n = "blk." + std::to_string(l) + "." + matrix;
        const Tensor& t = f.tensors.at(n);
        std::vector<float> v = as_f32(t);
        const int64_t cols = t.shape()[1];
        for (int64_t r = 0; r < t.shape()[0]; ++r)
            for (int64_t c = c0; c < c1; ++c) v[r * cols + c] = 0.0f;
        Tensor o = Tensor::empty(DType::F32, t.shape(), n);
        std::copy(v.begin(), v.end(), o.ptr<float>());
        d.tensors[n] = o;
    }
    return d;
}

void expect_same_logits(const std::vector<float>& a, const std::vector<float>& b) {
    ASSERT_EQ(a.size(), b.size());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
        max_abs = std::max(max_abs, double(std::fabs(a[i])));
    }
    EXPECT_GT(max_abs, 0.1);
    EXPECT_LT(max_diff, 1e-4 * std::max(1.0, max_abs)) << "max |diff| " << max_diff;
}

TEST(Prune, RemovingWhatContributesNothingKeepsTheLogits) {
    // A head whose output columns are zero and FFN channels whose down columns are zero change
    // nothing: the structured pruner must remove exactly them and leave the function as it was.
    const ModelFiles f = open_model_files(test::src_path("tests/data/quant/tiny-f32.gguf"));
    ModelFiles dead = with_dead_columns(f, "attn_output.weight", 64, 128);  // head 1
    dead = with_dead_columns(dead, "ffn_down.weight", 100, 164);             // 64 channels
    PruneOptions o;
    o.heads = 1;
    o.ffn_fraction = 0.25;
    const PrunedModel p = prune_model(dead, o);
    EXPECT_EQ(p.kept_heads[0], (std::vector<int64_t>{0, 2, 3}));
    EXPECT_EQ(p.kept_channels[0].size(), 192u);
    EXPECT_EQ(std::count_if(p.kept_channels[0].begin(), p.kept_channels[0].end(),
                            [](int64_t c) { return c >= 100 && c < 164; }), 0);
    const std::vector<float> before = logits_of(dead);
    expect_same_logits(before, logits_of(ModelFiles{f.path, f.format, p.config, f.vocab, p.tensors}));
}

TEST(Prune, RemovingADeadKvGroupKeepsTheLogits) {
    LF_REQUIRE_ASSET(m, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(t, "llama2c-stories260K/tok512.bin");
    const ModelFiles f = open_model_files(m, t);  // 8 heads of 8 share 4 KV heads
    const ModelFiles dead = with_dead_columns(f, "attn_output.weight", 16, 32);  // heads 2, 3 = KV group 1
    PruneOptions o;
    o.heads = 2;
    const PrunedModel p = prune_model(dead, o);
    for (const auto& kh : p.kept_heads) EXPECT_EQ(kh, (std::vector<int64_t>{0, 1, 4, 5, 6, 7}));
    expect_same_logits(logits_of(dead), logits_of(ModelFiles{f.path, f.format, p.config, f.vocab, p.tensors}));
}

TEST(Prune, GroupedQueryAttentionRemovesWholeGroups) {
    LF_REQUIRE_ASSET(m, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(t, "llama2c-stories260K/tok512.bin");
    const ModelFiles f = open_model_files(m, t);
    ASSERT_EQ(f.config.n_head, 8);
    ASSERT_EQ(f.config.n_head_kv, 4);
    PruneOptions o;
    o.heads = 4;
    const PrunedModel p = prune_model(f, o);
    EXPECT_EQ(p.config.n_head, 4);
    EXPECT_EQ(p.config.n_head_kv, 2);
    for (const auto& kh : p.kept_heads) {
        ASSERT_EQ(kh.size(), 4u);
        EXPECT_EQ(kh[0] % 2, 0);  // pairs (2k, 2k+1) share KV head k
        EXPECT_EQ(kh[1], kh[0] + 1);
        EXPECT_EQ(kh[3], kh[2] + 1);
    }
    ModelFiles pf{f.path, f.format, p.config, f.vocab, p.tensors};
    EXPECT_NO_THROW(Model::validate(pf));
    o.heads = 3;
    EXPECT_NE(error_of(f, o).find("not a multiple of 2"), std::string::npos) << error_of(f, o);
    o.heads = 8;
    EXPECT_NE(error_of(f, o).find("8 attention heads"), std::string::npos) << error_of(f, o);
}

TEST(Prune, BadRequestsAreOneClearError) {
    const ModelFiles f = open_model_files(test::src_path("tests/data/quant/tiny-f32.gguf"));
    PruneOptions o;
    EXPECT_NE(error_of(f, o).find("nothing to do"), std::string::npos);
    o.sparsity = 1.0;
    EXPECT_NE(error_of(f, o).find("outside [0, 1)"), std::string::npos);
    o.sparsity = -0.1;
    EXPECT_NE(error_of(f, o).find("outside [0, 1)"), std::string::npos);
    o.sparsity = 0.5;
    o.method = PruneMethod::kWanda;
    EXPECT_NE(error_of(f, o).find("calibration"), std::string::npos);
    ActivationEnergy wrong;
    wrong["blk.0.attn_q.weight"].assign(100, 1.0f);
    o.act = &wrong;
    EXPECT_NE(error_of(f, o).find("100 columns"), std::string::npos) << error_of(f, o);
    o = PruneOptions{};
    o.ffn_fraction = 1.0;
    EXPECT_NE(error_of(f, o).find("--ffn-fraction"), std::string::npos);
    o = PruneOptions{};
    o.heads = 4;
    EXPECT_NE(error_of(f, o).find("at most 3"), std::string::npos) << error_of(f, o);
}

}  // namespace
}  // namespace llmforge
