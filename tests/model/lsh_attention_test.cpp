// LSH-bucketed attention (model/lsh.h): the hash, the per-bucket index and the row attention
// against independent brute-force references: with one bucket and an unbounded window it is dense
// attention (bit for bit against the kernel table's decode attention, and a float64 reference);
// with real buckets it is dense attention under the bucket mask, built here by scanning every
// (query, key) pair; no output depends on a later position; the number of scores at n = 1024; the
// settings saved and loaded with a model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "model/lsh.h"
#include "test_util.h"

namespace llmforge {
namespace {

struct Seq {
    int64_t T, D, Dv;
    std::vector<float> q, k, v;  // (T, D), (T, D), (T, Dv)
};

Seq random_seq(int64_t T, int64_t D, int64_t Dv, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Seq s{T, D, Dv, {}, {}, {}};
    for (auto* v : {&s.q, &s.k}) {
        v->resize(static_cast<size_t>(T * D));
        for (float& x : *v) x = nd(rng);
    }
    s.v.resize(static_cast<size_t>(T * Dv));
    for (float& x : s.v) x = nd(rng);
    return s;
}

// Float64 softmax attention of query p over the keys `mask` selects.
std::vector<double> reference_row(const Seq& s, int64_t p, const std::vector<bool>& mask, double scale) {
    std::vector<double> sc;
    std::vector<int64_t> js;
    for (int64_t j = 0; j <= p; ++j) {
        if (!mask[j]) continue;
        double d = 0;
        for (int64_t i = 0; i < s.D; ++i) d += static_cast<double>(s.q[p * s.D + i]) * s.k[j * s.D + i];
        sc.push_back(d * scale);
        js.push_back(j);
    }
    const double m = *std::max_element(sc.begin(), sc.end());
    double z = 0;
    for (double& x : sc) z += (x = std::exp(x - m));
    std::vector<double> out(static_cast<size_t>(s.Dv), 0.0);
    for (size_t n = 0; n < js.size(); ++n)
        for (int64_t i = 0; i < s.Dv; ++i) out[i] += sc[n] / z * s.v[js[n] * s.Dv + i];
    return out;
}

double max_rel(const float* a, const std::vector<double>& b) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < b.size(); ++i) md = std::max(md, std::abs(a[i] - b[i])), mr = std::max(mr, std::abs(b[i]));
    return md / std::max(mr, 1e-30);
}

// Every key hashed with `h`, in position order.
LshIndex index_of(const Seq& s, const LshSpec& spec, const LshHash& h) {
    LshIndex idx(spec.n_hashes, spec.n_buckets);
    std::vector<int32_t> b(static_cast<size_t>(spec.n_hashes));
    for (int64_t j = 0; j < s.T; ++j) {
        h.buckets(&s.k[j * s.D], b.data());
        idx.add(j, b.data());
    }
    return idx;
}

TEST(Lsh, OneBucketIsDenseAttention) {
    const Seq s = random_seq(70, 32, 32, 1);
    LshSpec spec;
    spec.n_buckets = 1;
    spec.n_hashes = 2;
    spec.window = 1000;
    const LshHash h(spec, 0, 0, s.D);
    const LshIndex idx = index_of(s, spec, h);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
    std::vector<int32_t> cand, qb(2);
    std::vector<float> out(s.Dv), dense(s.Dv), scratch(static_cast<size_t>(s.T * (1 + 2 * s.D)));
    for (int64_t p = 0; p < s.T; ++p) {
        h.buckets(&s.q[p * s.D], qb.data());
        idx.candidates(p, qb.data(), spec, cand);
        ASSERT_EQ(static_cast<int64_t>(cand.size()), p + 1);
        lsh_attend_row(&s.q[p * s.D], s.k.data(), s.D, s.v.data(), s.Dv, s.D, s.Dv, cand.data(),
                       static_cast<int64_t>(cand.size()), scale, out.data(), scratch.data());
        kernels::kernels().attention(&s.q[p * s.D], s.k.data(), s.v.data(), p + 1, s.D, 1, 1, s.D, scale, dense.data(),
                                     scratch.data());
        EXPECT_EQ(out, dense) << "position " << p;
        EXPECT_LT(max_rel(out.data(), reference_row(s, p, std::vector<bool>(s.T, true), scale)), 1e-5);
    }
}

// The bucket mask by brute force: p - local < j <= p (j == p at least), or for some round r, k_j
// is in q_p's bucket and among the `window` latest such keys at positions <= p.
std::vector<bool> brute_mask(const std::vector<std::vector<int32_t>>& kb, const std::vector<int32_t>& qb, int64_t p,
                             int64_t window, int64_t T, int64_t local = 0) {
    std::vector<bool> m(static_cast<size_t>(T), false);
    for (int64_t j = 0; j <= p; ++j) m[j] = j == p || j > p - local;
    for (size_t r = 0; r < qb.size(); ++r) {
        int64_t taken = 0;
        for (int64_t j = p; j >= 0 && taken < window; --j)
            if (kb[j][r] == qb[r]) m[j] = true, ++taken;
    }
    return m;
}

TEST(Lsh, EqualsDenseUnderTheBucketMask) {
    for (auto [Dv, window, local] : {std::tuple<int64_t, int64_t, int64_t>{24, 5, 0}, {24, 1, 0}, {16, 3, 0}, {24, 4, 6}}) {
        SCOPED_TRACE("Dv " + std::to_string(Dv) + " window " + std::to_string(window) + " local " + std::to_string(local));
        const Seq s = random_seq(120, 24, Dv, 2);
        LshSpec spec;
        spec.n_buckets = 8;
        spec.n_hashes = 3;
        spec.window = window;
        spec.local = local;
        const LshHash h(spec, 3, 1, s.D);
        const LshIndex idx = index_of(s, spec, h);
        std::vector<std::vector<int32_t>> kb(static_cast<size_t>(s.T), std::vector<int32_t>(3));
        for (int64_t j = 0; j < s.T; ++j) h.buckets(&s.k[j * s.D], kb[j].data());
        const float scale = 0.3f;
        std::vector<int32_t> cand, qb(3);
        std::vector<float> out(s.Dv), scratch(static_cast<size_t>(s.T * (1 + 2 * s.D)));
        int64_t sparse = 0;
        for (int64_t p = 0; p < s.T; ++p) {
            h.buckets(&s.q[p * s.D], qb.data());
            idx.candidates(p, qb.data(), spec, cand);
            const std::vector<bool> m = brute_mask(kb, qb, p, spec.window, s.T, spec.local);
            std::vector<int32_t> want;
            for (int64_t j = 0; j < s.T; ++j)
                if (m[j]) want.push_back(static_cast<int32_t>(j));
            ASSERT_EQ(cand, want) << "position " << p;
            EXPECT_LE(static_cast<int64_t>(cand.size()), spec.max_candidates(p));
            sparse += static_cast<int64_t>(cand.size()) < p + 1;
            lsh_attend_row(&s.q[p * s.D], s.k.data(), s.D, s.v.data(), s.Dv, s.D, s.Dv, cand.data(),
                           static_cast<int64_t>(cand.size()), scale, out.data(), scratch.data());
            EXPECT_LT(max_rel(out.data(), reference_row(s, p, m, scale)), 1e-5) << "position " << p;
        }
        EXPECT_GT(sparse, s.T / 2) << "the mask left most rows dense: the test would not see a wrong mask";
    }
}

TEST(Lsh, HashIsAngularAndSeeded) {
    LshSpec spec;
    spec.n_buckets = 16;
    spec.n_hashes = 4;
    const LshHash h(spec, 2, 5, 32), same(spec, 2, 5, 32), other(spec, 2, 6, 32);
    const Seq s = random_seq(200, 32, 1, 3);
    std::vector<int32_t> a(4), b(4), c(4);
    std::vector<int64_t> hist(16, 0);
    int64_t differ = 0;
    for (int64_t i = 0; i < s.T; ++i) {
        const float* x = &s.q[i * 32];
        h.buckets(x, a.data());
        same.buckets(x, b.data());
        EXPECT_EQ(a, b);
        std::vector<float> y(x, x + 32), neg(x, x + 32);
        for (float& t : y) t *= 3.5f;  // the direction decides
        for (float& t : neg) t = -t;
        h.buckets(y.data(), b.data());
        EXPECT_EQ(a, b);
        h.buckets(neg.data(), c.data());
        for (int r = 0; r < 4; ++r) {
            ASSERT_TRUE(a[r] >= 0 && a[r] < 16);
            EXPECT_EQ(c[r], (a[r] + 8) % 16);  // -x: the mirrored half of [xR, -xR]
            ++hist[a[r]];
        }
        other.buckets(x, c.data());
        differ += c != a;
    }
    EXPECT_GT(differ, s.T / 2) << "another kv head must use other rotations";
    for (int64_t n : hist) EXPECT_GT(n, 0) << "a bucket no random vector reaches";
}

TEST(Lsh, NoOutputDependsOnALaterPosition) {
    Seq s = random_seq(64, 16, 16, 4);
    LshSpec spec;
    spec.n_buckets = 4;
    spec.n_hashes = 2;
    spec.window = 6;
    const LshHash h(spec, 0, 0, s.D);
    auto outputs = [&](const Seq& x) {
        const LshIndex idx = index_of(x, spec, h);
        std::vector<float> all(static_cast<size_t>(x.T * x.Dv)), scratch(static_cast<size_t>(x.T * (1 + 2 * x.D)));
        std::vector<int32_t> cand, qb(2);
        for (int64_t p = 0; p < x.T; ++p) {
            h.buckets(&x.q[p * x.D], qb.data());
            idx.candidates(p, qb.data(), spec, cand);
            lsh_attend_row(&x.q[p * x.D], x.k.data(), x.D, x.v.data(), x.Dv, x.D, x.Dv, cand.data(),
                           static_cast<int64_t>(cand.size()), 0.25f, &all[p * x.Dv], scratch.data());
        }
        return all;
    };
    const auto base = outputs(s);
    const int64_t cut = 40;
    for (int64_t j = cut; j < s.T; ++j)
        for (int64_t i = 0; i < s.D; ++i) s.q[j * s.D + i] += 1.0f, s.k[j * s.D + i] -= 2.0f;
    for (int64_t j = cut * s.Dv; j < s.T * s.Dv; ++j) s.v[j] *= -3.0f;
    const auto moved = outputs(s);
    EXPECT_TRUE(std::equal(base.begin(), base.begin() + cut * s.Dv, moved.begin()));
    EXPECT_FALSE(std::equal(base.begin() + cut * s.Dv, base.end(), moved.begin() + cut * s.Dv));
}

// The scores a 1024-token sequence computes per (layer, head) with the default settings, against
// the brute-force mask's count and the bound n_hashes · window + 1 per query; dense computes
// n (n + 1) / 2.
TEST(Lsh, ScoreCountAt1024) {
    const LshSpec spec;
    const int64_t T = 1024, D = 64;
    const Seq s = random_seq(T, D, 1, 5);
    const LshHash h(spec, 0, 0, D);
    const LshIndex idx = index_of(s, spec, h);
    std::vector<std::vector<int32_t>> kb(static_cast<size_t>(T), std::vector<int32_t>(static_cast<size_t>(spec.n_hashes)));
    for (int64_t j = 0; j < T; ++j) h.buckets(&s.k[j * D], kb[j].data());
    std::vector<int32_t> cand, qb(static_cast<size_t>(spec.n_hashes));
    int64_t count = 0, brute = 0, bound = 0;
    for (int64_t p = 0; p < T; ++p) {
        h.buckets(&s.q[p * D], qb.data());
        idx.candidates(p, qb.data(), spec, cand);
        count += static_cast<int64_t>(cand.size());
        const auto m = brute_mask(kb, qb, p, spec.window, T);
        brute += std::count(m.begin(), m.end(), true);
        bound += spec.max_candidates(p);
    }
    std::printf("[ report ] n = 1024, %lld buckets x %lld rounds, window %lld: %lld scores per head (bound %lld, dense %lld)\n",
                (long long)spec.n_buckets, (long long)spec.n_hashes, (long long)spec.window, (long long)count,
                (long long)bound, (long long)(T * (T + 1) / 2));
    EXPECT_EQ(count, brute);
    EXPECT_LE(count, bound);
    EXPECT_LT(count, T * (T + 1) / 2 / 3);
}

TEST(Lsh, BadSettingsAreOneLine) {
    auto message = [](LshSpec s) {
        try {
            s.validate("model.gguf");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    LshSpec s;
    s.n_hashes = 0;
    EXPECT_NE(message(s).find("n_hashes is 0"), std::string::npos) << message(s);
    s = LshSpec();
    s.n_buckets = 7;
    EXPECT_NE(message(s).find("n_buckets is 7, expected 1 or an even number"), std::string::npos) << message(s);
    s = LshSpec();
    s.local = -2;
    EXPECT_NE(message(s).find("local is -2"), std::string::npos) << message(s);
    s = LshSpec();
    s.window = 0;
    EXPECT_NE(message(s).find("window is 0"), std::string::npos) << message(s);
    for (const std::string& m : {message(s)}) EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_EQ(message(LshSpec()), "");
}

// The attention kind travels with the model: config.json and GGUF keys, read back equal; absent:
// dense; bad settings and an architecture that cannot run it are one line naming the file.
TEST(LshConfig, SavedAndLoadedWithTheModel) {
    const std::string base = R"({"model_type":"llama","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":128,"max_position_embeddings":256,"rms_norm_eps":1e-5)";
    const ModelConfig dense = hf_config_parse(base + "}", "dense.json");
    EXPECT_FALSE(dense.attention_lsh);
    const ModelConfig c = hf_config_parse(base + R"(,"llmforge_attention":"lsh","lsh_n_buckets":32,"lsh_n_hashes":4,
"lsh_window":96,"lsh_local":24,"lsh_dense_below":512,"lsh_seed":77})", "lsh.json");
    auto expect_settings = [](const ModelConfig& m, const char* what) {
        ASSERT_TRUE(m.attention_lsh) << what;
        EXPECT_EQ(m.lsh.n_buckets, 32) << what;
        EXPECT_EQ(m.lsh.n_hashes, 4) << what;
        EXPECT_EQ(m.lsh.window, 96) << what;
        EXPECT_EQ(m.lsh.local, 24) << what;
        EXPECT_EQ(m.lsh.dense_below, 512) << what;
        EXPECT_EQ(m.lsh.seed, 77u) << what;
    };
    expect_settings(c, "config.json");
    expect_settings(hf_config_parse(hf_config_write(c), "written.json"), "config.json written and read back");
    EXPECT_EQ(hf_config_write(dense).find("lsh"), std::string::npos);
    // GGUF keys written and read back.
    const std::string path = test::temp_dir() + "/lsh.gguf";
    {
        ModelConfig gc = c;
        gc.rope_interleaved = true;  // a llama GGUF's convention (its Q/K rows permuted); not what is tested here
        GgufWriter w;
        gguf_write_config(w, gc);
        w.write(path);
    }
    expect_settings(gguf_read_config(GgufFile(path)), "GGUF keys written and read back");
    auto error = [&](const std::string& json) {
        try {
            hf_config_parse(json, "bad.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    const std::string e1 = error(base + R"(,"llmforge_attention":"lsh","lsh_n_hashes":0})");
    EXPECT_NE(e1.find("bad.json: \"lsh_n_hashes\" is 0"), std::string::npos) << e1;
    const std::string e2 = error(base + R"(,"llmforge_attention":"lsh","lsh_n_buckets":12,"lsh_dense_below":-3})");
    EXPECT_NE(e2.find("bad.json: lsh dense_below is -3, expected a whole number"), std::string::npos) << e2;
    const std::string e5 = error(base + R"(,"llmforge_attention":"lsh","lsh_n_buckets":7})");
    EXPECT_NE(e5.find("bad.json: lsh n_buckets is 7, expected 1 or an even number"), std::string::npos) << e5;
    EXPECT_NO_THROW(hf_config_parse(base + R"(,"llmforge_attention":"lsh","lsh_dense_below":0,"lsh_seed":0})", "zero.json"));
    const std::string e3 = error(base + R"(,"llmforge_attention":"sparse"})");
    EXPECT_NE(e3.find("attention type \"sparse\""), std::string::npos) << e3;
    const std::string e4 = error(R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":64,
"hidden_size":32,"intermediate_size":48,"moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":2,
"num_key_value_heads":2,"n_shared_experts":1,"n_routed_experts":4,"kv_lora_rank":16,"q_lora_rank":null,
"qk_rope_head_dim":8,"v_head_dim":8,"qk_nope_head_dim":8,"num_experts_per_tok":2,"first_k_dense_replace":1,"max_position_embeddings":256,"rms_norm_eps":1e-6,
"llmforge_attention":"lsh"})");
    EXPECT_NE(e4.find("LSH attention on a deepseek2 model"), std::string::npos) << e4;
    for (const std::string& e : {e1, e2, e3, e4, e5}) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

}  // namespace
}  // namespace llmforge
