// Quantised KV cache (--cache-type-k / --cache-type-v): the attention kernel over f32 / f16 /
// q8_0 / q4_0 rows of every table (AVX2, AVX-512, the SIMDe-emulated AVX-512 table) against the
// scalar reference, the reference against its definition (attention over the dequantised rows),
// KvCache's sizes, layouts, errors and position copies, and the engine's output with each cache
// type against the f32 cache within the type's tolerance (prompt blocks and decode steps),
// batch invariance and prefix-cache copies with a quantised cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"
#if defined(LLMFORGE_HAVE_AVX512_EMU)
#include "kernels/avx512_emu.h"
#endif

namespace llmforge {
namespace {

constexpr DType kKvTypes[] = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0};

const kernels::KernelTable& scalar() { return *kernels::kernels_for(kernels::Isa::kScalar); }

// Rows of n_kv positions, Hkv heads of D values each, stored as `t` with `stride` bytes per row.
struct Rows {
    std::vector<uint8_t> bytes;
    std::vector<float> f32;  // the stored values, dequantised (what attention must see)
    size_t stride = 0;
};

Rows make_rows(DType t, int64_t n_kv, int64_t width, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Rows r;
    r.stride = row_bytes(t, width) + 48;  // padding between rows: strides are honoured
    r.bytes.assign(static_cast<size_t>(n_kv) * r.stride, 0xEE);
    r.f32.resize(static_cast<size_t>(n_kv * width));
    std::vector<float> x(static_cast<size_t>(width));
    for (int64_t p = 0; p < n_kv; ++p) {
        const float s = 0.5f + static_cast<float>(p % 7) * 0.3f;  // rows of different magnitudes
        for (auto& v : x) v = nd(rng) * s;
        uint8_t* dst = r.bytes.data() + static_cast<size_t>(p) * r.stride;
        if (t == DType::F32) {
            std::memcpy(dst, x.data(), x.size() * sizeof(float));
        } else {
            scalar().quantize_row[static_cast<int>(t)](x.data(), dst, width);
        }
        scalar().dequantize_row[static_cast<int>(t)](dst, r.f32.data() + p * width, width);
    }
    return r;
}

struct Shape {
    int64_t n_kv, H, H_kv, D;
};

std::vector<const kernels::KernelTable*> simd_tables(std::vector<std::string>& names) {
    std::vector<const kernels::KernelTable*> t;
    if (const auto* a = kernels::kernels_for(kernels::Isa::kAvx2)) t.push_back(a), names.push_back("avx2");
    if (const auto* a = kernels::kernels_for(kernels::Isa::kAvx512)) t.push_back(a), names.push_back("avx512");
#if defined(LLMFORGE_HAVE_AVX512_EMU)
    if (const auto* a = kernels::avx512_emulated_table()) t.push_back(a), names.push_back("avx512-emulated");
#endif
    return t;
}

// The reference reads the stored values exactly: on the dequantised rows it is the f32
// reference attention, bit for bit.
TEST(KvAttentionKernel, ReferenceIsAttentionOverTheStoredValues) {
    std::mt19937 rng(1);
    const Shape sh{37, 4, 2, 64};
    for (DType kt : kKvTypes) {
        for (DType vt : kKvTypes) {
            const Rows k = make_rows(kt, sh.n_kv, sh.H_kv * sh.D, rng), v = make_rows(vt, sh.n_kv, sh.H_kv * sh.D, rng);
            std::vector<float> q(sh.H * sh.D), a(sh.H * sh.D), b(sh.H * sh.D), scratch(sh.n_kv);
            std::normal_distribution<float> nd(0.0f, 1.0f);
            for (auto& x : q) x = nd(rng);
            const float scale = 1.0f / std::sqrt(static_cast<float>(sh.D));
            scalar().attention_kv(q.data(), k.bytes.data(), kt, k.stride, v.bytes.data(), vt, v.stride, sh.n_kv, sh.H,
                                  sh.H_kv, sh.D, scale, a.data(), scratch.data());
            scalar().attention(q.data(), k.f32.data(), v.f32.data(), sh.n_kv, sh.H_kv * sh.D, sh.H, sh.H_kv, sh.D,
                               scale, b.data(), scratch.data());
            EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
                << dtype_name(kt) << "/" << dtype_name(vt);
        }
    }
}

TEST(KvAttentionKernel, SimdTablesMatchTheScalarReference) {
    std::vector<std::string> names;
    const auto tables = simd_tables(names);
    if (tables.empty()) GTEST_SKIP() << "no SIMD table on this CPU";
#if defined(LLMFORGE_HAVE_AVX512_EMU)
    // With AVX2 the AVX-512 table's code is always checked, emulated where the CPU lacks it.
    EXPECT_NE(std::find(names.begin(), names.end(), "avx512-emulated"), names.end());
#endif
    // One position; GQA groups of 2, 1, 10 (more than one 8-head pass); head sizes 32..128; more
    // positions than one 64-row chunk; a last chunk of odd length.
    const std::vector<Shape> shapes = {{1, 1, 1, 32}, {67, 8, 2, 64}, {130, 20, 2, 64}, {5, 2, 1, 96},
                                       {200, 4, 4, 128}, {64, 3, 3, 32}};
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int compared = 0;
    for (const Shape& sh : shapes) {
        for (DType kt : kKvTypes) {
            for (DType vt : kKvTypes) {
                const Rows k = make_rows(kt, sh.n_kv, sh.H_kv * sh.D, rng);
                const Rows v = make_rows(vt, sh.n_kv, sh.H_kv * sh.D, rng);
                std::vector<float> q(sh.H * sh.D), want(sh.H * sh.D), scratch(sh.n_kv);
                for (auto& x : q) x = nd(rng) * 1.5f;
                const float scale = 1.0f / std::sqrt(static_cast<float>(sh.D));
                scalar().attention_kv(q.data(), k.bytes.data(), kt, k.stride, v.bytes.data(), vt, v.stride, sh.n_kv,
                                      sh.H, sh.H_kv, sh.D, scale, want.data(), scratch.data());
                for (size_t ti = 0; ti < tables.size(); ++ti) {
                    ASSERT_NE(tables[ti]->attention_kv, nullptr) << names[ti];
                    std::vector<float> got(sh.H * sh.D, -99.0f);
                    tables[ti]->attention_kv(q.data(), k.bytes.data(), kt, k.stride, v.bytes.data(), vt, v.stride,
                                             sh.n_kv, sh.H, sh.H_kv, sh.D, scale, got.data(), scratch.data());
                    double worst = 0;
                    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
                    EXPECT_LT(worst, 2e-5) << names[ti] << " " << dtype_name(kt) << "/" << dtype_name(vt) << " n_kv "
                                           << sh.n_kv << " H " << sh.H << "/" << sh.H_kv << " D " << sh.D;
                    ++compared;
                }
            }
        }
    }
    EXPECT_GE(compared, static_cast<int>(shapes.size() * 16));
}

// Float rows with a head size the vector width does not divide (the kernels fall back to the
// reference) and f32 rows against the f32 kernel.
TEST(KvAttentionKernel, OddHeadSizesAndTheF32Kernel) {
    std::vector<std::string> names;
    auto tables = simd_tables(names);
    tables.insert(tables.begin(), &scalar());
    names.insert(names.begin(), "scalar");
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const Shape& sh : {Shape{19, 4, 2, 8}, Shape{70, 2, 1, 40}, Shape{9, 3, 1, 12}}) {
        for (DType t : {DType::F32, DType::F16}) {
            const Rows k = make_rows(t, sh.n_kv, sh.H_kv * sh.D, rng), v = make_rows(t, sh.n_kv, sh.H_kv * sh.D, rng);
            std::vector<float> q(sh.H * sh.D), want(sh.H * sh.D), got(sh.H * sh.D), scratch(sh.n_kv);
            for (auto& x : q) x = nd(rng);
            scalar().attention(q.data(), k.f32.data(), v.f32.data(), sh.n_kv, sh.H_kv * sh.D, sh.H, sh.H_kv, sh.D,
                               0.3f, want.data(), scratch.data());
            for (size_t ti = 0; ti < tables.size(); ++ti) {
                tables[ti]->attention_kv(q.data(), k.bytes.data(), t, k.stride, v.bytes.data(), t, v.stride, sh.n_kv,
                                         sh.H, sh.H_kv, sh.D, 0.3f, got.data(), scratch.data());
                for (size_t i = 0; i < got.size(); ++i)
                    ASSERT_NEAR(got[i], want[i], 2e-5) << names[ti] << " " << dtype_name(t) << " D " << sh.D;
            }
        }
    }
}

// ------------------------------------------------------------------------------------- KvCache

ModelConfig tiny_config(int64_t head_dim) {
    ModelConfig c;
    c.n_vocab = 300;
    c.n_embd = 128;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = head_dim;
    c.n_ff = 256;
    c.n_ctx_train = 256;
    return c;
}

TEST(KvCache, BytesPerPositionAreTheStoredRows) {
    const ModelConfig c = tiny_config(64);  // K and V rows: 2 heads x 64 = 128 values per layer
    EXPECT_EQ(KvCache(c, 4).bytes_per_position(), 2u * (128 + 128) * 4);
    EXPECT_EQ(KvCache(c, 4, {DType::F16, DType::F16}).bytes_per_position(), 2u * (128 + 128) * 2);
    EXPECT_EQ(KvCache(c, 4, {DType::Q8_0, DType::Q8_0}).bytes_per_position(), 2u * 2 * (4 * 34));
    EXPECT_EQ(KvCache(c, 4, {DType::Q4_0, DType::Q4_0}).bytes_per_position(), 2u * 2 * (4 * 18));
    EXPECT_EQ(KvCache(c, 4, {DType::Q8_0, DType::F16}).bytes_per_position(), 2u * (4 * 34 + 128 * 2));
    KvCache q(c, 10, {DType::Q8_0, DType::Q4_0});
    EXPECT_EQ(q.bytes(), 10 * q.bytes_per_position());
    EXPECT_EQ(q.k_row_bytes(0), 4u * 34);
    EXPECT_EQ(q.v_row_bytes(1), 4u * 18);
    EXPECT_EQ(q.rows(), &q);
    EXPECT_EQ(q.f32_rows(), nullptr);  // only an all-f32 cache has the f32 view
    KvCache f(c, 10);
    EXPECT_EQ(f.f32_rows(), &f);
}

TEST(KvCache, LayoutNamesTheTypes) {
    const ModelConfig c = tiny_config(64);
    EXPECT_EQ(KvCache(c, 4).layout(), "f32-rows:128/128:128/128");
    std::vector<std::string> seen;
    for (DType k : kKvTypes)
        for (DType v : kKvTypes) seen.push_back(KvCache(c, 4, {k, v}).layout());
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());  // 16 different layouts
}

TEST(KvCache, PositionsCopyByteForByte) {
    const ModelConfig c = tiny_config(64);
    std::mt19937 rng(5);
    for (DType k : kKvTypes) {
        KvCache a(c, 16, {k, DType::Q4_0}), b(c, 16, {k, DType::Q4_0});
        for (int64_t l = 0; l < 2; ++l)
            for (int64_t p = 0; p < 16; ++p) {
                for (size_t i = 0; i < a.k_row_bytes(l); ++i) a.k_row(l, p)[i] = static_cast<uint8_t>(rng());
                for (size_t i = 0; i < a.v_row_bytes(l); ++i) a.v_row(l, p)[i] = static_cast<uint8_t>(rng());
            }
        std::vector<uint8_t> buf(7 * a.bytes_per_position());
        a.save_positions(5, 7, buf.data());
        b.load_positions(5, 7, buf.data());
        for (int64_t l = 0; l < 2; ++l) {
            EXPECT_EQ(std::memcmp(a.k_row(l, 5), b.k_row(l, 5), 7 * a.k_row_bytes(l)), 0);
            EXPECT_EQ(std::memcmp(a.v_row(l, 5), b.v_row(l, 5), 7 * a.v_row_bytes(l)), 0);
            EXPECT_NE(std::memcmp(a.k_row(l, 4), b.k_row(l, 4), a.k_row_bytes(l)), 0);  // outside: untouched
        }
    }
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(KvCache, HeadSizesThatDoNotFitTheBlocksAreOneClearError) {
    const ModelConfig c = tiny_config(48);
    const std::string ek = error_of([&] { KvCache x(c, 4, {DType::Q8_0, DType::F32}); });
    EXPECT_NE(ek.find("--cache-type-k q8_0"), std::string::npos) << ek;
    EXPECT_NE(ek.find("48"), std::string::npos) << ek;
    EXPECT_NE(ek.find("hint"), std::string::npos) << ek;
    EXPECT_EQ(ek.find('\n'), std::string::npos);
    const std::string eb = error_of([&] { KvCache x(c, 4, {DType::Q4_0, DType::Q8_0}); });
    EXPECT_NE(eb.find("--cache-type-k q4_0"), std::string::npos) << eb;  // keys are checked first
    const std::string ev = error_of([&] { KvCache x(c, 4, {DType::F16, DType::Q4_0}); });
    EXPECT_NE(ev.find("--cache-type-v q4_0"), std::string::npos) << ev;
    EXPECT_EQ(error_of([&] { KvCache x(c, 4, {DType::F16, DType::F16}); }), "");  // f16 takes any head size
    EXPECT_NE(error_of([&] { KvCache x(c, 4, {DType::Q4_K, DType::F16}); }).find("not a KV cache type"),
              std::string::npos);
}

TEST(KvCache, ParsesTheFlagValues) {
    EXPECT_EQ(parse_kv_type("f32", "--cache-type-k"), DType::F32);
    EXPECT_EQ(parse_kv_type("F16", "--cache-type-k"), DType::F16);
    EXPECT_EQ(parse_kv_type("q8_0", "--cache-type-v"), DType::Q8_0);
    EXPECT_EQ(parse_kv_type("Q4_0", "--cache-type-v"), DType::Q4_0);
    const std::string e = error_of([] { parse_kv_type("q4_1", "--cache-type-v"); });
    EXPECT_NE(e.find("--cache-type-v 'q4_1'"), std::string::npos) << e;
    EXPECT_NE(e.find("f32, f16, q8_0 or q4_0"), std::string::npos) << e;
    EXPECT_EQ(kv_types_name({DType::Q8_0, DType::F16}), "k=q8_0 v=f16");
}

// ---------------------------------------------------------------------------------- the engine

// A random Llama (C 128, 4 heads of 64, 2 KV heads, f32 weights): real attention
// patterns are not needed, only that keys and values vary like a model's do.
std::unique_ptr<Model> random_model(int64_t n_layer = 2) {
    ModelFiles f;
    f.path = "random";
    f.format = "gguf";
    f.config = tiny_config(64);
    f.config.n_layer = n_layer;
    const ModelConfig& c = f.config;
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t C = c.n_embd, Hq = c.n_head * c.head_dim, Hk = c.n_head_kv * c.head_dim;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float sd, bool ones) {
        Tensor t = Tensor::empty(DType::F32, shape, name);
        for (int64_t i = 0; i < t.numel(); ++i) t.ptr<float>()[i] = ones ? 1.0f : nd(rng) * sd;
        f.tensors[name] = t;
    };
    add("token_embd.weight", {c.n_vocab, C}, 1.0f, false);
    add("output_norm.weight", {C}, 0, true);
    add("output.weight", {c.n_vocab, C}, 0.1f, false);
    for (int l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {C}, 0, true);
        add(p + "attn_q.weight", {Hq, C}, 0.1f, false);  // scores of sd ~1.3, as in trained models
        add(p + "attn_k.weight", {Hk, C}, 0.1f, false);
        add(p + "attn_v.weight", {Hk, C}, 0.1f, false);
        add(p + "attn_output.weight", {C, Hq}, 0.1f, false);
        add(p + "ffn_norm.weight", {C}, 0, true);
        add(p + "ffn_gate.weight", {c.n_ff, C}, 0.1f, false);
        add(p + "ffn_up.weight", {c.n_ff, C}, 0.1f, false);
        add(p + "ffn_down.weight", {C, c.n_ff}, 0.1f, false);
    }
    return Model::from_files(std::move(f));
}

std::vector<int32_t> tokens(int n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 300);
    return t;
}

// Logits of an np-token prompt (one chunk: the blocked prompt attention) and of 24 decode steps
// after it (the one-position kernel), concatenated.
std::vector<float> run(const Model& m, KvTypes types, bool invariant, int64_t np = 40) {
    const int64_t V = m.config().n_vocab;
    ThreadPool pool(2);
    ForwardScratch s;
    s.batch_invariant = invariant;
    auto mem = m.new_memory(128, types);
    const std::vector<int32_t> prompt = tokens(static_cast<int>(np), 1), steps = tokens(24, 2);
    std::vector<float> out(static_cast<size_t>((np + 24) * V));
    m.forward(prompt.data(), np, 0, *mem, out.data(), np, pool, s);
    for (int i = 0; i < 24; ++i) m.forward(&steps[i], 1, np + i, *mem, out.data() + (np + i) * V, 1, pool, s);
    return out;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double w = 0;
    for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(double(a[i]) - b[i]));
    return w;
}

TEST(KvCacheEngine, EachTypeAgreesWithTheF32CacheWithinItsTolerance) {
    auto m = random_model();
    const std::vector<float> ref = run(*m, {}, false);
    double spread = 0;
    for (float x : ref) spread = std::max(spread, std::fabs(double(x)));
    ASSERT_GT(spread, 0.5);  // logits that vary, so the bounds below mean something
    // Bounds on the largest logit change (logits span about +-spread): f16 rounds each value at
    // 2^-11 relative, q8_0 at 1/254 of its block's largest, q4_0 at 1/16.
    struct Case {
        KvTypes t;
        double tol;
    };
    for (const Case& c : {Case{{DType::F16, DType::F16}, 2e-3}, Case{{DType::Q8_0, DType::Q8_0}, 2e-2},
                          Case{{DType::Q4_0, DType::Q4_0}, 2e-1}, Case{{DType::Q8_0, DType::F32}, 2e-2},
                          Case{{DType::F32, DType::Q4_0}, 2e-1}}) {
        const std::vector<float> got = run(*m, c.t, false);
        const double d = max_diff(got, ref);
        EXPECT_LT(d, c.tol * spread) << kv_types_name(c.t) << " spread " << spread;
        EXPECT_GT(d, 0.0) << kv_types_name(c.t) << ": identical to f32, the cache type was not used";
        std::printf("  %s: max |logit - f32 cache logit| = %.5f (%.5f of the logit range)\n",
                    kv_types_name(c.t).c_str(), d, d / spread);
    }
    EXPECT_EQ(max_diff(run(*m, {}, false), ref), 0.0);  // the f32 cache is deterministic
}

// The prompt's blocked attention (dequantised rows through BLAS) and the one-position kernel
// (rows read as stored; every row in batch-invariant mode) see the same stored values: the
// prompt's logits agree to f32 rounding. One layer of f32 weights and a 20-row prompt (blocks
// start at 16 rows; BLAS at 32): K/V come from the same tiles in both modes, so the cache holds
// the same bytes (a second layer's K/V would differ by rounding, which can flip a q4_0 value, and
// q8_0 weights quantise the attention output, which can flip an activation's rounding).
TEST(KvCacheEngine, PromptBlocksAgreeWithTheOnePositionKernel) {
    auto m = random_model(1);
    const size_t n = static_cast<size_t>(20 * m->config().n_vocab);
    for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0}) {
        std::vector<float> blocks = run(*m, {t, t}, false, 20), rows = run(*m, {t, t}, true, 20);
        blocks.resize(n);
        rows.resize(n);
        EXPECT_LT(max_diff(blocks, rows), 1e-4) << dtype_name(t);
    }
}

// Batch-invariant mode with a quantised cache: a sequence's logits are bit-identical alone and
// beside another sequence.
TEST(KvCacheEngine, BatchInvariantWithQuantisedRows) {
    auto m = random_model();
    const int64_t V = m->config().n_vocab;
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::F16}) {
        ThreadPool pool(2);
        ForwardScratch s;
        s.batch_invariant = true;
        const std::vector<int32_t> pa = tokens(20, 3), pb = tokens(33, 4);
        std::vector<float> sink(V), alone(V), together(V), other(V);
        auto a1 = m->new_memory(64, {t, t}), a2 = m->new_memory(64, {t, t}), b = m->new_memory(64, {t, t});
        m->forward(pa.data(), 20, 0, *a1, sink.data(), 1, pool, s);
        m->forward(pa.data(), 20, 0, *a2, sink.data(), 1, pool, s);
        m->forward(pb.data(), 33, 0, *b, sink.data(), 1, pool, s);
        const int32_t next = 7;
        m->forward(&next, 1, 20, *a1, alone.data(), 1, pool, s);
        const std::vector<int32_t> bstep = tokens(3, 5);
        SeqBatch batch[2] = {{b.get(), bstep.data(), 3, 33, other.data(), 1}, {a2.get(), &next, 1, 20, together.data(), 1}};
        m->forward_batch(batch, 2, pool, s);
        EXPECT_EQ(std::memcmp(alone.data(), together.data(), V * sizeof(float)), 0) << dtype_name(t);
    }
}

// Positions saved from a quantised memory and loaded into another (the prefix cache's path)
// continue exactly as the original.
TEST(KvCacheEngine, SavedPositionsContinueBitIdentically) {
    auto m = random_model();
    const int64_t V = m->config().n_vocab;
    for (KvTypes t : {KvTypes{DType::Q4_0, DType::Q8_0}, KvTypes{DType::F16, DType::Q4_0}}) {
        ThreadPool pool(2);
        ForwardScratch s;
        const std::vector<int32_t> p = tokens(32, 6), rest = tokens(8, 7);
        auto a = m->new_memory(64, t), b = m->new_memory(64, t);
        std::vector<float> sink(V), la(V), lb(V);
        m->forward(p.data(), 32, 0, *a, sink.data(), 1, pool, s);
        std::vector<uint8_t> buf(32 * a->bytes_per_position());
        a->save_positions(0, 32, buf.data());
        b->load_positions(0, 32, buf.data());
        EXPECT_EQ(a->layout(), b->layout());
        m->forward(rest.data(), 8, 32, *a, la.data(), 1, pool, s);
        m->forward(rest.data(), 8, 32, *b, lb.data(), 1, pool, s);
        EXPECT_EQ(std::memcmp(la.data(), lb.data(), V * sizeof(float)), 0) << kv_types_name(t);
    }
}

}  // namespace
}  // namespace llmforge
