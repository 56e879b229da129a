// LSH attention in the engine (Model with LSH, issue 18) on the real stories260K checkpoint run
// with `--attention lsh` settings (Model::set_attention): decoding one token at a time over the
// cache's per-bucket key lists gives the logits of recomputing the whole sequence in one prompt
// pass and in uneven chunks (bit for bit in batch-invariant mode, to rounding otherwise); with one
// bucket and a window covering the sequence the logits are dense attention's, bit for bit; saved
// and restored positions (the prefix cache's path) carry the buckets; quantised caches run it;
// the score counts and the online error probe report what they should.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/lsh.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

constexpr int64_t kT = 300;

std::vector<int32_t> token_ids(int64_t n, int64_t vocab, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<unsigned>(vocab));
    return t;
}

LshSpec small_spec() {
    LshSpec s;
    s.n_buckets = 8;
    s.n_hashes = 2;
    s.window = 24;
    s.seed = 77;
    return s;
}

struct Pass {
    std::vector<float> logits;  // (kT, V)
    LshStats stats;
};

// Logits of every position of `toks`, fed in chunks of `chunk` tokens (1: decode).
Pass run(const Model& m, const std::vector<int32_t>& toks, int64_t chunk, bool invariant, KvTypes types = {},
        int64_t probe_every = 0) {
    ThreadPool pool(2);
    ForwardScratch s;
    s.batch_invariant = invariant;
    Pass r;
    r.stats.probe_every = probe_every;
    s.lsh_stats = &r.stats;
    auto cache = m.new_memory(kT, types);
    const int64_t V = m.config().n_vocab, n = static_cast<int64_t>(toks.size());
    r.logits.resize(static_cast<size_t>(n * V));
    for (int64_t p = 0; p < n; p += chunk) {
        const int64_t c = std::min(chunk, n - p);
        m.forward(toks.data() + p, c, p, *cache, r.logits.data() + p * V, c, pool, s);
    }
    return r;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
}

std::unique_ptr<Model> stories(const std::string& path) { return Model::load(path); }

TEST(LshEngine, DecodeEqualsRecomputingTheWholeSequence) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto m = stories(path);
    m->set_attention(true, small_spec(), "test");
    const auto toks = token_ids(kT, m->config().n_vocab, 3);
    // Batch-invariant mode: every row's products and attention are its own, so the one-pass
    // prompt, uneven chunks and one token at a time agree bit for bit.
    const Pass whole = run(*m, toks, kT, true), chunks = run(*m, toks, 37, true), decode = run(*m, toks, 1, true);
    EXPECT_EQ(whole.logits, decode.logits);
    EXPECT_EQ(whole.logits, chunks.logits);
    // Default mode (BLAS products for prompts): the same to rounding.
    const Pass fast = run(*m, toks, kT, false);
    EXPECT_LT(max_diff(fast.logits, decode.logits), 2e-3);
    // The sparsity is real: fewer scores than dense, and the same count however the tokens came.
    int64_t s = 0, d = 0;
    for (size_t i = 0; i < whole.stats.scores.size(); ++i) s += whole.stats.scores[i], d += whole.stats.dense[i];
    int64_t s_dec = 0;
    for (int64_t x : decode.stats.scores) s_dec += x;
    EXPECT_EQ(s, s_dec);
    EXPECT_EQ(d, m->config().n_layer * m->config().n_head * kT * (kT + 1) / 2);
    EXPECT_LT(s, d / 3);
    // LSH changes the model's output (it is not silently dense).
    auto dense = stories(path);
    const Pass ref = run(*dense, toks, kT, true);
    EXPECT_GT(max_diff(ref.logits, whole.logits), 1e-3);
}

TEST(LshEngine, OneBucketAndAWideWindowIsDenseAttention) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto dense = stories(path), lsh = stories(path);
    LshSpec spec;
    spec.n_buckets = 1;
    spec.n_hashes = 1;
    spec.window = kT;
    lsh->set_attention(true, spec, "test");
    const auto toks = token_ids(kT, dense->config().n_vocab, 4);
    const Pass a = run(*dense, toks, 1, true), b = run(*lsh, toks, 1, true, {}, 7);
    EXPECT_EQ(a.logits, b.logits);
    // The probe sees every candidate: all the mass kept, no error beyond float rounding.
    ASSERT_GT(b.stats.probes, 0);
    EXPECT_NEAR(b.stats.mass_min, 1.0, 1e-9);
    EXPECT_LT(b.stats.err_max, 1e-5);
    // dense_below: positions below it attend densely whatever the buckets.
    auto below = stories(path);
    LshSpec sb = small_spec();
    sb.dense_below = kT;
    below->set_attention(true, sb, "test");
    EXPECT_EQ(run(*below, toks, kT, true).logits, a.logits);
}

TEST(LshEngine, SavedPositionsCarryTheBuckets) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto m = stories(path);
    m->set_attention(true, small_spec(), "test");
    const auto toks = token_ids(kT, m->config().n_vocab, 5);
    const Pass ref = run(*m, toks, 1, true);
    ThreadPool pool(2);
    ForwardScratch s;
    s.batch_invariant = true;
    const int64_t V = m->config().n_vocab, P = 128;
    auto a = m->new_memory(kT);
    std::vector<float> logits(static_cast<size_t>(kT * V));
    m->forward(toks.data(), P, 0, *a, logits.data(), P, pool, s);
    // A cache with another hash family has another layout: the prefix cache never mixes them.
    auto other = stories(path);
    LshSpec o = small_spec();
    o.seed = 78;
    other->set_attention(true, o, "test");
    EXPECT_NE(a->layout(), other->new_memory(kT)->layout());
    EXPECT_NE(a->layout(), stories(path)->new_memory(kT)->layout());
    // Positions [0, P) copied into a fresh cache (after it held other tokens there), then decoding.
    std::vector<uint8_t> saved(a->bytes_per_position() * P);
    a->save_positions(0, P, saved.data());
    auto b = m->new_memory(kT);
    const auto junk = token_ids(P + 20, V, 9);
    m->forward(junk.data(), P + 20, 0, *b, logits.data(), 1, pool, s);
    b->load_positions(0, P, saved.data());
    for (int64_t p = P; p < kT; ++p) m->forward(&toks[p], 1, p, *b, logits.data() + p * V, 1, pool, s);
    EXPECT_TRUE(std::equal(logits.begin() + P * V, logits.end(), ref.logits.begin() + P * V));
}

TEST(LshEngine, QuantisedCachesRunIt) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto m = stories(path);
    m->set_attention(true, small_spec(), "test");
    const auto toks = token_ids(kT, m->config().n_vocab, 6);
    // stories260K's heads are 8 wide: f16 is the quantised type whose blocks fit them.
    const Pass f32 = run(*m, toks, kT, true), f16 = run(*m, toks, kT, true, {DType::F16, DType::F16});
    const Pass dec = run(*m, toks, 1, true, {DType::F16, DType::F16});
    EXPECT_EQ(f16.logits, dec.logits);
    auto dense = stories(path);
    const double dense_gap =
        max_diff(run(*dense, toks, kT, true).logits, run(*dense, toks, kT, true, {DType::F16, DType::F16}).logits);
    std::printf("f16 cache vs f32: LSH logits differ by %.3g, dense by %.3g\n", max_diff(f32.logits, f16.logits), dense_gap);
    // A bucket is a discrete choice: f16's rounding of a layer's output moves some later queries
    // or keys across a bucket boundary, and those rows see other keys. Most rows stay as close as
    // dense attention's are.
    const int64_t V = m->config().n_vocab;
    int64_t close = 0;
    for (int64_t p = 0; p < kT; ++p) {
        double d = 0;
        for (int64_t j = 0; j < V; ++j) d = std::max(d, std::abs(static_cast<double>(f32.logits[p * V + j]) - f16.logits[p * V + j]));
        close += d <= 2 * dense_gap;
    }
    std::printf("%lld of %lld positions within twice dense's gap\n", (long long)close, (long long)kT);
    EXPECT_GT(close, kT * 8 / 10);
}

TEST(LshEngine, ProbeMeasuresWhatLshDrops) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto m = stories(path);
    LshSpec spec = small_spec();
    spec.window = 4;  // few keys: some dense mass must be lost
    m->set_attention(true, spec, "test");
    const auto toks = token_ids(kT, m->config().n_vocab, 7);
    const Pass r = run(*m, toks, kT, false, {}, 10);
    const LshStats& st = r.stats;
    ASSERT_EQ(st.probes, (kT / 10) * m->config().n_layer * m->config().n_head);
    EXPECT_LT(st.mass_min, 0.999);
    EXPECT_GT(st.mass_sum / static_cast<double>(st.probes), 0.0);
    EXPECT_GT(st.err_max, 1e-4);
    EXPECT_LE(st.mass_sum / static_cast<double>(st.probes), 1.0 + 1e-9);
    const std::string rep = st.report();
    EXPECT_NE(rep.find("lsh probe:"), std::string::npos) << rep;
    EXPECT_NE(rep.find("layer 4:"), std::string::npos) << rep;
}

TEST(LshEngine, BadRunTimeSettingsAreOneLine) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto m = stories(path);
    LshSpec s = small_spec();
    s.n_hashes = 0;
    const std::string e = test::error_of([&] { m->set_attention(true, s, "--attention lsh"); });
    EXPECT_NE(e.find("--attention lsh: lsh n_hashes is 0"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    s = small_spec();
    s.n_buckets = 6 * 7;  // 42: even, fine
    m->set_attention(true, s, "--attention lsh");
    s.n_buckets = 9;
    const std::string e2 = test::error_of([&] { m->set_attention(true, s, "--attention lsh"); });
    EXPECT_NE(e2.find("expected 1 or an even number"), std::string::npos) << e2;
}

}  // namespace
}  // namespace llmforge
