// Every differentiable op's backward against central finite differences of its forward, on small
// random inputs with odd sizes (tests/train: "gradients against finite differences").
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "core/dtype.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/kernels.h"
#include "model/lsh.h"
#include "model/moe.h"
#include "train/encoder_ops.h"
#include "train/lsh_ops.h"
#include "train/moe_ops.h"
#include "train/ops.h"

namespace llmforge::train {
namespace {

using Build = std::function<Var(Tape&, std::vector<Var>&)>;

std::unique_ptr<Param> random_param(const std::string& name, std::vector<int64_t> shape, uint32_t seed,
                                    float scale = 1.0f, float offset = 0.0f) {
    auto p = std::make_unique<Param>();
    p->name = name;
    p->shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    p->value = FloatBuffer(n);
    p->grad = FloatBuffer(n);
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) p->value[i] = offset + scale * nd(rng);
    return p;
}

// L = Σ y·r for fixed random r: its gradient wrt y is r. Returns L in double.
double weighted_sum(Var y, const std::vector<float>& r) {
    double s = 0;
    for (int64_t i = 0; i < y->numel; ++i) s += static_cast<double>(y->data[i]) * r[i];
    return s;
}

// Compares the op's analytic gradient of every input with central differences (step h).
void check_grads(std::vector<Param*> in, const Build& build, double tol = 2e-3, float h = 1e-2f) {
    ThreadPool pool(2);
    Tape tape(pool);
    std::vector<float> r;
    auto run = [&](bool with_grad) {
        tape.reset();
        tape.grad_enabled = with_grad;
        std::vector<Var> vars;
        for (Param* p : in) vars.push_back(tape.param(*p));
        Var y = build(tape, vars);
        if (r.empty()) {
            std::mt19937 rng(99);
            std::normal_distribution<float> nd;
            for (int64_t i = 0; i < y->numel; ++i) r.push_back(nd(rng));
        }
        return y;
    };
    for (Param* p : in) p->grad.zero();
    Var y = run(true);
    std::copy(r.begin(), r.end(), tape.grad(y));
    Var seed = tape.make({1}, false);
    tape.backward(seed);
    for (Param* p : in) {
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < p->numel(); ++i) {
            const float orig = p->value[i];
            p->value[i] = orig + h;
            const double lp = weighted_sum(run(false), r);
            p->value[i] = orig - h;
            const double lm = weighted_sum(run(false), r);
            p->value[i] = orig;
            const double fd = (lp - lm) / (2.0 * h);
            max_diff = std::max(max_diff, std::abs(fd - p->grad[i]));
            max_ref = std::max(max_ref, std::abs(fd));
        }
        EXPECT_GT(max_ref, 0.0) << p->name << ": gradient is all zero";
        EXPECT_LT(max_diff / max_ref, tol) << p->name << " max |fd - analytic| = " << max_diff;
    }
}

TEST(OpsGrad, Linear) {
    auto x = random_param("x", {3, 7}, 1), w = random_param("w", {5, 7}, 2), b = random_param("b", {5}, 3);
    check_grads({x.get(), w.get(), b.get()}, [](Tape& t, std::vector<Var>& v) { return linear(t, v[0], v[1], v[2]); });
}

TEST(OpsGrad, LinearLargeEnoughToSplitOverThreads) {
    auto x = random_param("x", {37, 67}, 1, 0.3f), w = random_param("w", {131, 67}, 2, 0.3f);
    check_grads({x.get(), w.get()}, [](Tape& t, std::vector<Var>& v) { return linear(t, v[0], v[1]); });
}

// bf16 precision: y, dx and dw of a trainable linear are the products of the bf16-rounded operands
// summed in f32 (AMX tiles where the CPU has them, else sgemm on rounded copies): each within f32
// rounding of the double sum of the same exact products. Shapes off the 16/32 tiles, 2 threads.
TEST(OpsGrad, LinearBf16IsTheRoundedProduct) {
    std::printf("bf16 products on %s\n", kernels::bf16_gemm_available() ? "AMX tiles" : "sgemm of rounded copies");
    constexpr int64_t N = 45, K = 70, M = 133;
    auto x = random_param("x", {N, K}, 11, 0.5f), w = random_param("w", {M, K}, 12, 0.3f);
    ThreadPool pool(2);
    Tape t(pool);
    t.precision = Precision::kBF16;
    x->grad.zero();
    w->grad.zero();
    Var y = linear(t, t.param(*x), t.param(*w));
    float* g = t.grad(y);
    for (int64_t i = 0; i < y->numel; ++i) g[i] = 0.37f * std::sin(0.7f * static_cast<float>(i)) + 0.05f;
    std::vector<float> dy(g, g + y->numel);
    t.backward(t.make({1}, false));
    auto r = [](float v) { return static_cast<double>(bf16_to_fp32(fp32_to_bf16(v))); };
    // got vs Σ_i a(i)·b(i) over n terms
    auto check = [](const char* what, float got, int64_t n, const std::function<double(int64_t)>& term) {
        double s = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) s += term(i), mag += std::fabs(term(i));
        const double tol = static_cast<double>(n + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
        return std::fabs(got - s) <= tol ? 0 : (ADD_FAILURE() << what << " " << got << " vs " << s, 1);
    };
    int bad = 0;
    for (int64_t i = 0; i < N && bad < 5; ++i)
        for (int64_t j = 0; j < M; ++j)
            bad += check("y", y->data[i * M + j], K, [&](int64_t k) { return r(x->value[i * K + k]) * r(w->value[j * K + k]); });
    for (int64_t i = 0; i < N && bad < 5; ++i)
        for (int64_t k = 0; k < K; ++k)
            bad += check("dx", x->grad[i * K + k], M, [&](int64_t j) { return r(dy[i * M + j]) * r(w->value[j * K + k]); });
    for (int64_t j = 0; j < M && bad < 5; ++j)
        for (int64_t k = 0; k < K; ++k)
            bad += check("dw", w->grad[j * K + k], N, [&](int64_t i) { return r(dy[i * M + j]) * r(x->value[i * K + k]); });
    EXPECT_EQ(bad, 0);
}

TEST(OpsGrad, Embedding) {
    auto table = random_param("table", {6, 5}, 4);
    static const int32_t ids[] = {3, 0, 3, 5};  // a repeated id accumulates twice
    check_grads({table.get()}, [](Tape& t, std::vector<Var>& v) { return embedding(t, v[0], ids, 4); });
}

TEST(OpsGrad, RmsNorm) {
    auto x = random_param("x", {4, 9}, 5), g = random_param("g", {9}, 6, 0.2f, 1.0f);
    check_grads({x.get(), g.get()}, [](Tape& t, std::vector<Var>& v) { return rmsnorm(t, v[0], v[1], 1e-5f); });
}

void rope_case(bool interleaved) {
    auto x = random_param("x", {5, 12}, 7);  // 2 heads of D = 6
    static const int32_t pos[] = {0, 1, 2, 4, 3};
    static std::vector<float> cs, sn;
    cs.clear(), sn.clear();
    for (int p = 0; p < 5; ++p)
        for (int i = 0; i < 3; ++i) {
            const double a = p * std::pow(10000.0, -2.0 * i / 6);
            cs.push_back(static_cast<float>(std::cos(a)));
            sn.push_back(static_cast<float>(std::sin(a)));
        }
    check_grads({x.get()}, [interleaved](Tape& t, std::vector<Var>& v) {
        return rope(t, v[0], 6, pos, cs.data(), sn.data(), interleaved);
    });
}
TEST(OpsGrad, RopeInterleavedPairs) { rope_case(true); }
TEST(OpsGrad, RopeRotateHalf) { rope_case(false); }

TEST(OpsGrad, RopeConventionsDifferAndPreserveNorm) {
    ThreadPool pool(1);
    Tape t(pool);
    auto x = random_param("x", {1, 8}, 8);
    const float cs[] = {1, 1, 0.6f, 0.8f}, sn[] = {0, 0, 0.8f, 0.6f};  // position 1 of a 2-pair table
    const int32_t pos[] = {1};
    Var a = rope(t, t.param(*x), 4, pos, cs, sn, true);
    Var b = rope(t, t.param(*x), 4, pos, cs, sn, false);
    double na = 0, nx = 0, diff = 0;
    for (int i = 0; i < 8; ++i) na += a->data[i] * a->data[i], nx += x->value[i] * x->value[i], diff += std::abs(a->data[i] - b->data[i]);
    EXPECT_NEAR(na, nx, 1e-4);
    EXPECT_GT(diff, 1e-3);
    // interleaved: pair (0,1) of the first head rotates by angle with cos 0.6, sin 0.8
    EXPECT_NEAR(a->data[0], x->value[0] * 0.6f - x->value[1] * 0.8f, 1e-6);
    EXPECT_NEAR(b->data[0], x->value[0] * 0.6f - x->value[2] * 0.8f, 1e-6);
}

TEST(OpsGrad, CausalGroupedQueryAttention) {
    // B = 2, T = 5, H = 4, H_kv = 2, D = 3
    auto q = random_param("q", {10, 12}, 9), k = random_param("k", {10, 6}, 10), v = random_param("v", {10, 6}, 11);
    check_grads({q.get(), k.get(), v.get()},
                [](Tape& t, std::vector<Var>& a) { return attention(t, a[0], a[1], a[2], 2, 5, 4, 2); });
}

TEST(OpsGrad, AttentionIsCausal) {
    ThreadPool pool(1);
    Tape t(pool);
    auto q = random_param("q", {4, 4}, 12), k = random_param("k", {4, 4}, 13), v = random_param("v", {4, 4}, 14);
    Var o1 = attention(t, t.param(*q), t.param(*k), t.param(*v), 1, 4, 2, 2);
    std::vector<float> first(o1->data, o1->data + 8);
    for (int i = 12; i < 16; ++i) k->value[i] += 5.0f, v->value[i] -= 3.0f;  // change the last position only
    Var o2 = attention(t, t.param(*q), t.param(*k), t.param(*v), 1, 4, 2, 2);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(o2->data[i], first[i]);  // rows 0-1 cannot see row 3
}

TEST(OpsGrad, AttentionWithDocumentStartsAndGroupedHeads) {
    // B = 2, T = 6, H = 4, H_kv = 2, D = 3. Sequence 0 packs documents [0, 3) and [3, 6); sequence 1
    // packs [0, 1), [1, 4) and [4, 6).
    auto q = random_param("q", {12, 12}, 31), k = random_param("k", {12, 6}, 32), v = random_param("v", {12, 6}, 33);
    static const int32_t ds[] = {0, 0, 0, 3, 3, 3, 0, 1, 1, 1, 4, 4};
    check_grads({q.get(), k.get(), v.get()},
                [](Tape& t, std::vector<Var>& a) { return attention(t, a[0], a[1], a[2], 2, 6, 4, 2, 0, 0.0f, ds); });
    // With a sliding window as well: the later of the two starts wins.
    check_grads({q.get(), k.get(), v.get()},
                [](Tape& t, std::vector<Var>& a) { return attention(t, a[0], a[1], a[2], 2, 6, 4, 2, 2, 0.0f, ds); });
}

// LSH attention (train/lsh_ops.h) with its buckets fixed (computed once from the starting q and k):
// B = 2, T = 12, H = 4, H_kv = 2, D = 4, 4 buckets x 2 rounds, window 2 (most rows sparse), with
// and without packed documents.
TEST(OpsGrad, LshAttentionWithFixedBuckets) {
    auto q = random_param("q", {24, 16}, 41), k = random_param("k", {24, 8}, 42), v = random_param("v", {24, 8}, 43);
    LshSpec spec;
    spec.n_buckets = 4;
    spec.n_hashes = 2;
    spec.window = 2;
    const std::vector<LshHash> hashes = {LshHash(spec, 0, 0, 4), LshHash(spec, 0, 1, 4)};
    ThreadPool pool(2);
    const auto bk = lsh_buckets(q->value.data(), k->value.data(), 24, 4, 2, 4, hashes.data(), pool);
    static const int32_t ds[] = {0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 11};
    for (const int32_t* d : {static_cast<const int32_t*>(nullptr), ds}) {
        check_grads({q.get(), k.get(), v.get()}, [&](Tape& t, std::vector<Var>& a) {
            return lsh_attention(t, a[0], a[1], a[2], 2, 12, 4, 2, spec, bk, 0.0f, d);
        });
    }
}

// One bucket and a window over the whole sequence: every earlier position is a candidate, so the
// op is attention() — values and every input's gradient.
TEST(OpsGrad, LshAttentionWithOneBucketIsAttention) {
    auto q = random_param("q", {20, 12}, 44), k = random_param("k", {20, 6}, 45), v = random_param("v", {20, 6}, 46);
    LshSpec spec;
    spec.n_buckets = 1;
    spec.window = 100;
    const std::vector<LshHash> hashes = {LshHash(spec, 0, 0, 3), LshHash(spec, 0, 1, 3)};
    ThreadPool pool(2);
    const auto bk = lsh_buckets(q->value.data(), k->value.data(), 20, 4, 2, 3, hashes.data(), pool);
    static const int32_t ds[] = {0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 0, 1, 1, 1, 4, 4, 4, 4, 4, 4};
    auto grads = [&](bool lsh) {
        Tape t(pool);
        Var a = t.param(*q), b = t.param(*k), c = t.param(*v);
        Var y = lsh ? lsh_attention(t, a, b, c, 2, 10, 4, 2, spec, bk, 0.0f, ds) : attention(t, a, b, c, 2, 10, 4, 2, 0, 0.0f, ds);
        std::vector<float> out(y->data, y->data + y->numel);
        float* g = t.grad(y);
        for (int64_t i = 0; i < y->numel; ++i) g[i] = std::sin(0.37f * static_cast<float>(i));
        for (Param* p : {q.get(), k.get(), v.get()}) p->grad.zero();
        t.backward(t.make({1}, false));
        for (Param* p : {q.get(), k.get(), v.get()}) out.insert(out.end(), p->grad.data(), p->grad.data() + p->numel());
        return out;
    };
    const auto a = grads(true), b = grads(false);
    ASSERT_EQ(a.size(), b.size());
    double md = 0, mr = 0;
    for (size_t i = 0; i < a.size(); ++i) md = std::max(md, std::abs(double(a[i]) - b[i])), mr = std::max(mr, std::abs(double(b[i])));
    EXPECT_LT(md / mr, 1e-5);
}

TEST(OpsGrad, AttentionDocStartZeroIsThePlainCausalMask) {
    ThreadPool pool(2);
    Tape t(pool);
    auto q = random_param("q", {10, 12}, 34), k = random_param("k", {10, 6}, 35), v = random_param("v", {10, 6}, 36);
    const std::vector<int32_t> zeros(10, 0);
    Var a = attention(t, t.param(*q), t.param(*k), t.param(*v), 2, 5, 4, 2);
    Var b = attention(t, t.param(*q), t.param(*k), t.param(*v), 2, 5, 4, 2, 0, 0.0f, zeros.data());
    for (int64_t i = 0; i < a->numel; ++i) ASSERT_EQ(a->data[i], b->data[i]) << i;
}

// A packed row [docA, docB] with doc_start gives docB's rows the outputs (and q/k/v gradients) that
// docB alone in its own sequence gets; docA's keys and values get no gradient from docB's rows.
TEST(OpsGrad, PackedDocumentAttendsAsIfAlone) {
    constexpr int64_t La = 3, Lb = 4, T = La + Lb, H = 4, Hkv = 2, D = 3;
    auto q = random_param("q", {T, H * D}, 37), k = random_param("k", {T, Hkv * D}, 38),
         v = random_param("v", {T, Hkv * D}, 39);
    auto qb = std::make_unique<Param>(), kb = std::make_unique<Param>(), vb = std::make_unique<Param>();
    for (auto [dst, src] : {std::pair{qb.get(), q.get()}, {kb.get(), k.get()}, {vb.get(), v.get()}}) {
        const int64_t w = src->shape[1];
        dst->name = src->name + "_b";
        dst->shape = {Lb, w};
        dst->value = FloatBuffer(Lb * w);
        dst->grad = FloatBuffer(Lb * w);
        for (int64_t i = 0; i < Lb * w; ++i) dst->value[i] = src->value[La * w + i];
    }
    std::vector<int32_t> ds(T);
    for (int64_t i = 0; i < T; ++i) ds[i] = i < La ? 0 : La;
    ThreadPool pool(2);
    for (Param* p : {q.get(), k.get(), v.get(), qb.get(), kb.get(), vb.get()}) p->grad.zero();
    Tape t(pool);
    Var packed = attention(t, t.param(*q), t.param(*k), t.param(*v), 1, T, H, Hkv, 0, 0.0f, ds.data());
    Var alone = attention(t, t.param(*qb), t.param(*kb), t.param(*vb), 1, Lb, H, Hkv);
    const int64_t OD = H * D;
    for (int64_t i = 0; i < Lb * OD; ++i) EXPECT_NEAR(packed->data[La * OD + i], alone->data[i], 1e-6) << i;
    // Same upstream gradient on docB's rows (0 on docA's) in both.
    float* gp = t.grad(packed);
    float* ga = t.grad(alone);
    for (int64_t i = 0; i < Lb * OD; ++i) gp[La * OD + i] = ga[i] = 0.1f * static_cast<float>(i % 11) - 0.4f;
    t.backward(t.make({1}, false));
    for (auto [full, part] : {std::pair{q.get(), qb.get()}, {k.get(), kb.get()}, {v.get(), vb.get()}}) {
        const int64_t w = full->shape[1];
        for (int64_t i = 0; i < La * w; ++i) EXPECT_EQ(full->grad[i], 0.0f) << full->name << " docA " << i;
        for (int64_t i = 0; i < Lb * w; ++i) EXPECT_NEAR(full->grad[La * w + i], part->grad[i], 1e-5) << full->name << " " << i;
    }
}

// A frozen matrix of M x K values that bf16 holds exactly, as an f32 tensor (products read it in
// place) or a bf16 tensor (products dequantise it block by block), and as a trainable Param.
struct FrozenCase {
    Tensor f32, bf16;
    std::unique_ptr<Param> param;
};
FrozenCase frozen_case(int64_t M, int64_t K, uint32_t seed) {
    FrozenCase c;
    c.param = random_param("w", {M, K}, seed, 0.2f);
    ThreadPool pool(1);
    round_to_precision(Precision::kBF16, c.param->value.data(), c.param->value.data(), M * K, pool);
    c.f32 = Tensor::empty(DType::F32, {M, K}, "w");
    c.bf16 = Tensor::empty(DType::BF16, {M, K}, "w");
    const auto quant = kernels::kernels().quantize_row[static_cast<int>(DType::BF16)];
    for (int64_t m = 0; m < M; ++m) {
        std::copy_n(c.param->value.data() + m * K, K, c.f32.ptr<float>() + m * K);
        quant(c.param->value.data() + m * K, c.bf16.row(m), K);
    }
    return c;
}

TEST(OpsGrad, PrependRows) {
    auto prefix = random_param("prefix", {3, 5}, 50);
    auto rows = random_param("rows", {2 * 4, 5}, 51);  // 2 sequences of 4 rows
    check_grads({prefix.get(), rows.get()},
                [](Tape& t, std::vector<Var>& v) { return prepend_rows(t, v[0], v[1], 2); });
}

// Each sequence's own rows (an image's) inserted at its own place: before, inside and after.
TEST(OpsGrad, InsertRows) {
    auto rows = random_param("rows", {3 * 4, 5}, 52);   // 3 sequences of 4 token rows
    auto extra = random_param("extra", {3 * 2, 5}, 53);  // 2 image rows each
    const int32_t at[3] = {0, 2, 4};
    check_grads({rows.get(), extra.get()},
                [&at](Tape& t, std::vector<Var>& v) { return insert_rows(t, v[0], v[1], 3, at); });
    ThreadPool pool(1);
    Tape t(pool);
    Var y = insert_rows(t, t.param(*rows), t.param(*extra), 3, at);
    const int64_t C = 5;
    // Sequence 1: token rows 0, 1, image rows 0, 1, token rows 2, 3.
    EXPECT_EQ(y->data[(6 + 1) * C], rows->value[(4 + 1) * C]);
    EXPECT_EQ(y->data[(6 + 2) * C], extra->value[2 * C]);
    EXPECT_EQ(y->data[(6 + 4) * C], rows->value[(4 + 2) * C]);
    EXPECT_EQ(y->data[(12 + 5) * C], extra->value[5 * C]);  // sequence 2: the image last
}

TEST(OpsGrad, LinearFrozenGradientToInput) {
    auto x = random_param("x", {3, 7}, 40);
    FrozenCase w = frozen_case(5, 7, 41);
    for (const Tensor* wt : {&w.f32, &w.bf16})
        check_grads({x.get()}, [wt](Tape& t, std::vector<Var>& v) { return linear_frozen(t, v[0], *wt); });
}

// The f32 matrix used in place (one product), the bf16 one in dequantised blocks (several here:
// M is above one block's rows), both again with packs kept for the bf16 tile products, and the
// trainable linear give the same y and dx to rounding, in fp32 and in bf16 precision (where a CPU
// with AMX takes the tile path: per-block packs without a cache, packs made once with one).
TEST(OpsGrad, LinearFrozenInPlaceMatchesBlocksAndLinear) {
    constexpr int64_t N = 9, K = 64, M = 40000;  // blocks of at most 16384 rows of 64
    auto x = random_param("x", {N, K}, 42, 0.5f);
    FrozenCase w = frozen_case(M, K, 43);
    ThreadPool pool(2);
    for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
        std::vector<std::vector<float>> ys, dxs;
        std::shared_ptr<FrozenPacks> packs_f32, packs_bf16;
        for (int path = 0; path < 5; ++path) {
            Tape t(pool);
            t.precision = prec;
            x->grad.zero();
            Var xv = t.param(*x);
            const Tensor& wt = path % 2 == 1 ? w.f32 : w.bf16;
            std::shared_ptr<FrozenPacks>* packs = path == 3 ? &packs_f32 : path == 4 ? &packs_bf16 : nullptr;
            Var y = path == 0 ? linear(t, xv, t.param(*w.param)) : linear_frozen(t, xv, path == 3 ? w.f32 : wt, nullptr, packs);
            float* g = t.grad(y);
            for (int64_t i = 0; i < y->numel; ++i) g[i] = 0.01f * static_cast<float>(i % 13) - 0.06f;
            t.backward(t.make({1}, false));
            ys.emplace_back(y->data, y->data + y->numel);
            dxs.emplace_back(x->grad.data(), x->grad.data() + x->numel());
        }
        for (int path = 1; path < 5; ++path) {
            for (size_t i = 0; i < ys[0].size(); ++i)
                ASSERT_NEAR(ys[path][i], ys[0][i], 1e-5f * (1.0f + std::abs(ys[0][i]))) << path << " y " << i;
            for (size_t i = 0; i < dxs[0].size(); ++i)
                ASSERT_NEAR(dxs[path][i], dxs[0][i], 1e-4f * (1.0f + std::abs(dxs[0][i]))) << path << " dx " << i;
        }
    }
}

// Plain attention in double over full (T, T) score matrices, forward and backward, as the
// reference for the op's causal blocks: o (B·T, H·D) and, for upstream do, dq / dk / dv.
void attention_reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                         const std::vector<float>& dout, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                         int64_t W, const int32_t* ds, std::vector<double>& o, std::vector<double>& dq,
                         std::vector<double>& dk, std::vector<double>& dv) {
    const int64_t HD = H * D, KD = Hkv * D, group = H / Hkv;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    o.assign(B * T * HD, 0.0), dq.assign(B * T * HD, 0.0), dk.assign(B * T * KD, 0.0), dv.assign(B * T * KD, 0.0);
    std::vector<double> p(T), dp(T);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t g = h / group;
            for (int64_t i = 0; i < T; ++i) {
                int64_t j0 = W > 0 ? std::max<int64_t>(0, i - W + 1) : 0;
                if (ds) j0 = std::max<int64_t>(j0, ds[b * T + i]);
                const float* qi = q.data() + (b * T + i) * HD + h * D;
                double mx = -1e300, sum = 0;
                for (int64_t j = j0; j <= i; ++j) {
                    double s = 0;
                    for (int64_t d = 0; d < D; ++d) s += static_cast<double>(qi[d]) * k[(b * T + j) * KD + g * D + d];
                    p[j] = s * scale;
                    mx = std::max(mx, p[j]);
                }
                for (int64_t j = j0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
                for (int64_t j = j0; j <= i; ++j) p[j] /= sum;
                const float* doi = dout.data() + (b * T + i) * HD + h * D;
                double dot = 0;
                for (int64_t j = j0; j <= i; ++j) {
                    double s = 0;
                    for (int64_t d = 0; d < D; ++d) {
                        o[(b * T + i) * HD + h * D + d] += p[j] * v[(b * T + j) * KD + g * D + d];
                        dv[(b * T + j) * KD + g * D + d] += p[j] * doi[d];
                        s += static_cast<double>(doi[d]) * v[(b * T + j) * KD + g * D + d];
                    }
                    dp[j] = s;
                    dot += p[j] * s;
                }
                for (int64_t j = j0; j <= i; ++j) {
                    const double dsij = p[j] * (dp[j] - dot) * scale;
                    for (int64_t d = 0; d < D; ++d) {
                        dq[(b * T + i) * HD + h * D + d] += dsij * k[(b * T + j) * KD + g * D + d];
                        dk[(b * T + j) * KD + g * D + d] += dsij * qi[d];
                    }
                }
            }
        }
}

// Sequences longer than one block of query rows (a short last block included), grouped heads,
// with the plain causal mask, packed documents and a sliding window: the op's block-triangular
// computation against the full-matrix reference.
TEST(OpsGrad, BlockedAttentionMatchesFullReference) {
    constexpr int64_t B = 2, T = 150, H = 4, Hkv = 2, D = 8;
    auto q = random_param("q", {B * T, H * D}, 44), k = random_param("k", {B * T, Hkv * D}, 45),
         v = random_param("v", {B * T, Hkv * D}, 46);
    std::vector<int32_t> ds(B * T);
    for (int64_t i = 0; i < T; ++i) {
        ds[i] = i < 70 ? 0 : (i < 131 ? 70 : 131);  // documents [0, 70), [70, 131), [131, 150)
        ds[T + i] = i < 5 ? 0 : 5;
    }
    std::vector<float> dout(B * T * H * D);
    std::mt19937 rng(47);
    std::normal_distribution<float> nd;
    for (float& x : dout) x = nd(rng);
    ThreadPool pool(2);
    for (const auto& [W, docs] : {std::pair<int64_t, bool>{0, false}, {0, true}, {37, false}, {90, true}}) {
        Tape t(pool);
        for (Param* p : {q.get(), k.get(), v.get()}) p->grad.zero();
        Var o = attention(t, t.param(*q), t.param(*k), t.param(*v), B, T, H, Hkv, W, 0.0f, docs ? ds.data() : nullptr);
        std::copy(dout.begin(), dout.end(), t.grad(o));
        t.backward(t.make({1}, false));
        std::vector<double> ro, rdq, rdk, rdv;
        auto vals = [](const Param& p) { return std::vector<float>(p.value.data(), p.value.data() + p.numel()); };
        attention_reference(vals(*q), vals(*k), vals(*v), dout, B, T, H, Hkv, D, W, docs ? ds.data() : nullptr, ro,
                            rdq, rdk, rdv);
        const std::string c = "W " + std::to_string(W) + (docs ? " packed" : "");
        for (size_t i = 0; i < ro.size(); ++i) ASSERT_NEAR(o->data[i], ro[i], 1e-4) << c << " o " << i;
        for (size_t i = 0; i < rdq.size(); ++i) ASSERT_NEAR(q->grad[i], rdq[i], 1e-4) << c << " dq " << i;
        for (size_t i = 0; i < rdk.size(); ++i) ASSERT_NEAR(k->grad[i], rdk[i], 1e-4) << c << " dk " << i;
        for (size_t i = 0; i < rdv.size(); ++i) ASSERT_NEAR(v->grad[i], rdv[i], 1e-4) << c << " dv " << i;
    }
}

// The same inputs give bit-identical outputs and gradients run to run for a fixed thread count.
TEST(OpsGrad, BlockedAttentionIsReproducible) {
    constexpr int64_t B = 3, T = 130, H = 4, Hkv = 2, D = 8;
    auto q = random_param("q", {B * T, H * D}, 48), k = random_param("k", {B * T, Hkv * D}, 49),
         v = random_param("v", {B * T, Hkv * D}, 50);
    ThreadPool pool(2);
    std::vector<std::vector<float>> runs[2];
    for (int run = 0; run < 2; ++run) {
        Tape t(pool);
        for (Param* p : {q.get(), k.get(), v.get()}) p->grad.zero();
        Var o = attention(t, t.param(*q), t.param(*k), t.param(*v), B, T, H, Hkv);
        for (int64_t i = 0; i < o->numel; ++i) t.grad(o)[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
        t.backward(t.make({1}, false));
        runs[run].emplace_back(o->data, o->data + o->numel);
        for (Param* p : {q.get(), k.get(), v.get()}) runs[run].emplace_back(p->grad.data(), p->grad.data() + p->numel());
    }
    for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_EQ(runs[0][i], runs[1][i]) << "tensor " << i;
}

TEST(OpsGrad, SwiGlu) {
    auto g = random_param("g", {3, 11}, 15), u = random_param("u", {3, 11}, 16);
    check_grads({g.get(), u.get()}, [](Tape& t, std::vector<Var>& v) { return swiglu(t, v[0], v[1]); });
}

// Backward takes sigmoid(g) as silu(g) / g: check it against the formula in double where that
// quotient is delicate (g = 0, ±0, tiny, large of either sign), over a length the table's vector
// loop and its tail both see.
TEST(OpsGrad, SwiGluGradientAtZeroAndExtremes) {
    const std::vector<float> special = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -3e-6f, 20.0f, -20.0f, 90.0f, -90.0f, 0.5f};
    auto g = random_param("g", {3, 13}, 51), u = random_param("u", {3, 13}, 52);
    for (size_t i = 0; i < special.size(); ++i) g->value[i * 3] = special[i];
    ThreadPool pool(1);
    Tape t(pool);
    g->grad.zero(), u->grad.zero();
    Var y = swiglu(t, t.param(*g), t.param(*u));
    for (int64_t i = 0; i < y->numel; ++i) t.grad(y)[i] = 0.3f - 0.05f * static_cast<float>(i % 9);
    std::vector<float> dy(t.grad(y), t.grad(y) + y->numel);
    t.backward(t.make({1}, false));
    for (int64_t i = 0; i < y->numel; ++i) {
        const double gv = g->value[i], uv = u->value[i], s = 1.0 / (1.0 + std::exp(-gv));
        const double want_y = gv * s * uv, want_dg = dy[i] * uv * s * (1.0 + gv * (1.0 - s)), want_du = dy[i] * gv * s;
        EXPECT_NEAR(y->data[i], want_y, 1e-6 * (1.0 + std::abs(want_y))) << "g " << gv;
        EXPECT_NEAR(g->grad[i], want_dg, 1e-6 * (1.0 + std::abs(want_dg))) << "g " << gv;
        EXPECT_NEAR(u->grad[i], want_du, 1e-6 * (1.0 + std::abs(want_du))) << "g " << gv;
    }
}

TEST(OpsGrad, Add) {
    auto a = random_param("a", {2, 7}, 17), b = random_param("b", {2, 7}, 18);
    check_grads({a.get(), b.get()}, [](Tape& t, std::vector<Var>& v) { return add(t, v[0], v[1]); });
}

TEST(OpsGrad, DropoutWithFixedSeed) {
    auto x = random_param("x", {8, 16}, 19);
    check_grads({x.get()}, [](Tape& t, std::vector<Var>& v) { return dropout(t, v[0], 0.25f, 1234); });
}

TEST(OpsGrad, DropoutKeepsAboutOneMinusP) {
    ThreadPool pool(1);
    Tape t(pool);
    auto x = random_param("x", {100, 100}, 20, 0.0f, 1.0f);  // all ones
    Var y = dropout(t, t.param(*x), 0.3f, 77);
    int kept = 0;
    for (int64_t i = 0; i < y->numel; ++i) {
        if (y->data[i] != 0.0f) {
            ++kept;
            EXPECT_FLOAT_EQ(y->data[i], 1.0f / 0.7f);
        }
    }
    EXPECT_NEAR(kept / 10000.0, 0.7, 0.02);
}

TEST(OpsGrad, CrossEntropy) {
    auto logits = random_param("logits", {4, 13}, 21);
    static const int32_t targets[] = {0, 12, 5, 5};
    check_grads({logits.get()}, [](Tape& t, std::vector<Var>& v) { return cross_entropy(t, v[0], targets, 4); });
}

TEST(OpsGrad, CrossEntropyIgnoresNegativeTargets) {
    auto logits = random_param("logits", {5, 13}, 26);
    static const int32_t targets[] = {0, -1, 12, -100, 5};
    check_grads({logits.get()}, [](Tape& t, std::vector<Var>& v) { return cross_entropy(t, v[0], targets, 5); });
    // The value is the mean over the counted rows; ignored rows get exactly zero gradient.
    ThreadPool pool(2);
    Tape t(pool);
    logits->grad.zero();
    Var l = cross_entropy(t, t.param(*logits), targets, 5);
    const int32_t counted_targets[] = {0, 12, 5};
    double want = 0;
    for (int r = 0; r < 3; ++r) {
        const float* row = logits->value.data() + std::array<int, 3>{0, 2, 4}[r] * 13;
        double s = 0;
        for (int j = 0; j < 13; ++j) s += std::exp(static_cast<double>(row[j]));
        want += std::log(s) - row[counted_targets[r]];
    }
    EXPECT_NEAR(l->data[0], want / 3, 1e-5);
    t.backward(l);
    for (int r : {1, 3})
        for (int j = 0; j < 13; ++j) EXPECT_EQ(logits->grad[r * 13 + j], 0.0f) << "row " << r;
}

TEST(OpsGrad, CrossEntropyWithNoCountedRowIsZero) {
    ThreadPool pool(1);
    Tape t(pool);
    auto logits = random_param("logits", {3, 7}, 27);
    logits->grad.zero();
    const int32_t targets[] = {-1, -1, -1};
    Var l = cross_entropy(t, t.param(*logits), targets, 3);
    EXPECT_EQ(l->data[0], 0.0f);
    t.backward(l);
    for (int64_t i = 0; i < logits->numel(); ++i) EXPECT_EQ(logits->grad[i], 0.0f);
}

TEST(OpsGrad, CheckpointedBlockGivesTheSameGradients) {
    auto x = random_param("x", {4, 6}, 23), w = random_param("w", {6, 6}, 24, 0.4f), g = random_param("g", {6}, 25, 0.1f, 1.0f);
    auto block = [&](Tape& t, Var h) {
        Var y = rmsnorm(t, h, t.param(*g), 1e-5f);
        return add(t, h, dropout(t, swiglu(t, linear(t, y, t.param(*w)), y), 0.2f, 5));
    };
    ThreadPool pool(2);
    std::vector<std::vector<float>> grads[2];
    for (int ck = 0; ck < 2; ++ck) {
        for (Param* p : {x.get(), w.get(), g.get()}) p->grad.zero();
        Tape t(pool);
        Var in = t.param(*x);
        Var out = ck ? checkpoint(t, in, block) : block(t, in);
        for (int64_t i = 0; i < out->numel; ++i) t.grad(out)[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
        t.backward(t.make({1}, false));
        for (Param* p : {x.get(), w.get(), g.get()}) grads[ck].emplace_back(p->grad.data(), p->grad.data() + p->numel());
    }
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << "input " << i;
}

TEST(OpsGrad, CrossEntropyValue) {
    ThreadPool pool(1);
    Tape t(pool);
    auto logits = random_param("logits", {1, 3}, 22);
    logits->value[0] = 1, logits->value[1] = 2, logits->value[2] = 3;
    const int32_t target[] = {0};
    Var l = cross_entropy(t, t.param(*logits), target, 1);
    EXPECT_NEAR(l->data[0], std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1.0, 1e-6);
}

}  // namespace
}  // namespace llmforge::train

namespace llmforge::train {
namespace {

// The vectorisable bf16 rounding of product inputs is fp32_to_bf16 then back, bit for bit, over
// random bit patterns, ties, infinities and NaNs.
TEST(OpsGrad, RoundToBf16IsFp32ToBf16BitForBit) {
    std::vector<uint32_t> bits = {0u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffbfffffu,
                                  0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x00008000u, 0x7f7fffffu};
    std::mt19937 rng(7);
    for (int i = 0; i < 100000; ++i) bits.push_back(rng());
    std::vector<float> x(bits.size()), y(bits.size());
    std::memcpy(x.data(), bits.data(), bits.size() * 4);
    ThreadPool pool(2);
    round_to_precision(Precision::kBF16, x.data(), y.data(), static_cast<int64_t>(x.size()), pool);
    for (size_t i = 0; i < x.size(); ++i) {
        const float want = bf16_to_fp32(fp32_to_bf16(x[i]));
        ASSERT_EQ(0, std::memcmp(&want, &y[i], 4)) << std::hex << bits[i];
    }
}


// ---- DeepSeek ops (train/moe_ops.h) ------------------------------------------------------------

TEST(OpsGrad, ColumnsAndConcatColumns) {
    // x: 4 rows of 3 groups of 5; a slice of each group, another slice, rejoined per group with a
    // per-group b and with one shared b (its gradient sums over the groups).
    auto x = random_param("x", {4, 15}, 61), b = random_param("b", {4, 6}, 62), s = random_param("s", {4, 3}, 63);
    check_grads({x.get(), b.get()}, [](Tape& t, std::vector<Var>& v) {
        return concat_columns(t, columns(t, v[0], 3, 1, 3), v[1], 3);
    });
    check_grads({x.get(), s.get()}, [](Tape& t, std::vector<Var>& v) {
        return concat_columns(t, columns(t, v[0], 3, 0, 2), v[1], 3, true);
    });
    ThreadPool pool(1);
    Tape t(pool);
    Var y = concat_columns(t, columns(t, t.param(*x), 3, 3, 2), t.param(*s), 3, true);
    ASSERT_EQ(y->shape, (std::vector<int64_t>{4, 15}));
    for (int64_t r = 0; r < 4; ++r)
        for (int64_t g = 0; g < 3; ++g)
            for (int64_t i = 0; i < 5; ++i)
                EXPECT_EQ(y->data[r * 15 + g * 5 + i], i < 2 ? x->value[r * 15 + g * 5 + 3 + i] : s->value[r * 3 + i - 2]);
}

MoeSpec route_spec(MoeGating gating, bool norm, float scale, int64_t groups, int64_t topk_group) {
    MoeSpec m;
    m.n_expert = 8;
    m.n_used = 3;
    m.n_group = groups;
    m.topk_group = topk_group;
    m.gating = gating;
    m.norm = norm;
    m.scale = scale;
    return m;
}

// The weights are route_experts' (bit for bit) and their gradient flows into the logits through
// the normalisation, the scale and the scores; the choice itself is constant near the point.
void route_case(const MoeSpec& m, const float* bias) {
    auto lg = random_param("logits", {6, 8}, 64);
    {
        ThreadPool pool(1);
        Tape t(pool);
        MoeRoute r = moe_route(t, t.param(*lg), bias, m, 2);
        std::vector<int32_t> sel(3);
        std::vector<float> w(3), sc(8), work(16);
        int64_t total = 0;
        for (int64_t i = 0; i < 6; ++i) {
            route_experts(lg->value.data() + i * 8, bias, m, sel.data(), w.data(), sc.data(), work.data());
            for (int k = 0; k < 3; ++k) {
                EXPECT_EQ((*r.sel)[i * 3 + k], sel[k]);
                EXPECT_EQ(r.weights->data[i * 3 + k], w[k]);
            }
        }
        for (int64_t c : r.load) total += c;
        EXPECT_EQ(total, 18);
    }
    check_grads({lg.get()}, [&m, bias](Tape& t, std::vector<Var>& v) { return moe_route(t, v[0], bias, m, 2).weights; },
                5e-3, 1e-3f);
}
TEST(OpsGrad, MoeRouteSoftmax) { route_case(route_spec(MoeGating::kSoftmax, false, 1.0f, 1, 1), nullptr); }
TEST(OpsGrad, MoeRouteSoftmaxNormScaledGroups) { route_case(route_spec(MoeGating::kSoftmax, true, 2.5f, 4, 2), nullptr); }
TEST(OpsGrad, MoeRouteSigmoidBiasGroups) {
    static const float bias[8] = {0.3f, -0.2f, 0.0f, 0.5f, -0.4f, 0.1f, 0.2f, -0.1f};
    route_case(route_spec(MoeGating::kSigmoid, true, 1.5f, 4, 2), bias);
}

// The balance loss is not a node: its gradient enters the logits in the route's backward. Checked
// against finite differences of Σ w·r + aux, and its value against the formula on a hand case.
TEST(OpsGrad, MoeRouteBalanceLoss) {
    for (MoeGating gating : {MoeGating::kSoftmax, MoeGating::kSigmoid}) {
        const MoeSpec m = route_spec(gating, true, 1.0f, 1, 1);
        auto lg = random_param("logits", {6, 8}, 65);
        const float alpha = 0.7f;
        std::vector<float> r(18);
        std::mt19937 rng(5);
        std::normal_distribution<float> nd;
        for (float& x : r) x = nd(rng);
        ThreadPool pool(1);
        Tape t(pool);
        auto loss = [&](bool grad) {
            t.reset();
            t.grad_enabled = grad;
            MoeRoute rt = moe_route(t, t.param(*lg), nullptr, m, 2, alpha);
            double l = rt.aux;
            for (int i = 0; i < 18; ++i) l += static_cast<double>(rt.weights->data[i]) * r[i];
            return std::make_pair(l, rt.weights);
        };
        lg->grad.zero();
        auto [l0, w] = loss(true);
        std::copy(r.begin(), r.end(), t.grad(w));
        t.backward(t.make({1}, false));
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < lg->numel(); ++i) {
            const float orig = lg->value[i], h = 1e-3f;
            lg->value[i] = orig + h;
            const double lp = loss(false).first;
            lg->value[i] = orig - h;
            const double lm = loss(false).first;
            lg->value[i] = orig;
            const double fd = (lp - lm) / (2.0 * h);
            max_diff = std::max(max_diff, std::abs(fd - lg->grad[i]));
            max_ref = std::max(max_ref, std::abs(fd));
        }
        EXPECT_LT(max_diff / max_ref, 5e-3) << (gating == MoeGating::kSigmoid ? "sigmoid" : "softmax");
        // The aux gradient alone is there: without r the backward still moves the logits.
        lg->grad.zero();
        auto [l1, w1] = loss(true);
        t.grad(w1);
        t.backward(t.make({1}, false));
        double g = 0;
        for (int64_t i = 0; i < lg->numel(); ++i) g += std::abs(lg->grad[i]);
        EXPECT_GT(g, 0.0);
    }
    // Hand case: one sequence of 2 tokens, E = 2, K = 1, softmax with scores (0.75, 0.25) and
    // (0.75, 0.25): both choose expert 0, f = (2/(1·2)·2, 0) = (2, 0), P = (0.75, 0.25):
    // aux = α·2·0.75.
    auto lg = random_param("lg", {2, 2}, 1);
    const float z = std::log(3.0f);
    lg->value[0] = z, lg->value[1] = 0, lg->value[2] = z, lg->value[3] = 0;
    MoeSpec m;
    m.n_expert = 2;
    m.n_used = 1;
    ThreadPool pool(1);
    Tape t(pool);
    EXPECT_NEAR(moe_route(t, t.param(*lg), nullptr, m, 1, 0.5f).aux, 0.5 * 2 * 0.75, 1e-6);
}

// Experts: x (7, 6) routed to K = 2 of E = 4 experts of width F = 5. Gradients into x, the
// weights and every expert tensor; the forward against a direct per-token sum; frozen (f32
// tensor) experts give x the same gradient as trainable ones.
TEST(OpsGrad, MoeExperts) {
    const int64_t N = 7, C = 6, E = 4, K = 2, F = 5;
    auto x = random_param("x", {N, C}, 71), w = random_param("w", {N, K}, 72, 0.5f, 0.5f);
    auto g = random_param("gate", {E, F, C}, 73, 0.5f), u = random_param("up", {E, F, C}, 74, 0.5f),
         d = random_param("down", {E, C, F}, 75, 0.5f);
    // Token i goes to experts (i % 4, (i + 1 + i / 4) % 4): every expert gets rows, some get 1.
    auto sel = std::make_shared<std::vector<int32_t>>();
    for (int64_t i = 0; i < N; ++i) sel->push_back(static_cast<int32_t>(i % E)), sel->push_back(static_cast<int32_t>((i + 1 + i / 4) % E));
    std::shared_ptr<const std::vector<int32_t>> csel = sel;
    check_grads({x.get(), w.get(), g.get(), u.get(), d.get()}, [csel](Tape& t, std::vector<Var>& v) {
        return moe_experts(t, v[0], v[1], csel, 4, ExpertWeight{v[2]}, ExpertWeight{v[3]}, ExpertWeight{v[4]});
    });
    ThreadPool pool(2);
    Tape t(pool);
    Var y = moe_experts(t, t.param(*x), t.param(*w), csel, E, ExpertWeight{t.param(*g)}, ExpertWeight{t.param(*u)},
                        ExpertWeight{t.param(*d)});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t c = 0; c < C; ++c) {
            double ref = 0;
            for (int64_t k = 0; k < K; ++k) {
                const int64_t e = (*sel)[i * K + k];
                double yc = 0;
                for (int64_t f = 0; f < F; ++f) {
                    double gv = 0, uv = 0;
                    for (int64_t j = 0; j < C; ++j)
                        gv += g->value[(e * F + f) * C + j] * x->value[i * C + j], uv += u->value[(e * F + f) * C + j] * x->value[i * C + j];
                    yc += gv / (1 + std::exp(-gv)) * uv * d->value[(e * C + c) * F + f];
                }
                ref += w->value[i * K + k] * yc;
            }
            EXPECT_NEAR(y->data[i * C + c], ref, 1e-4 * (1 + std::abs(ref)));
        }
    // Frozen experts: the same output and the same gradient into x.
    auto frozen = [](const Param& p) {
        Tensor tt = Tensor::empty(DType::F32, p.shape, p.name);
        std::memcpy(tt.data(), p.value.data(), p.numel() * sizeof(float));
        return tt;
    };
    const Tensor fg = frozen(*g), fu = frozen(*u), fd = frozen(*d);
    std::vector<float> dx[2];
    for (int pass = 0; pass < 2; ++pass) {
        t.reset();
        x->grad.zero();
        Var xv = t.param(*x);
        Var out = pass == 0 ? moe_experts(t, xv, t.param(*w), csel, E, ExpertWeight{t.param(*g)}, ExpertWeight{t.param(*u)},
                                          ExpertWeight{t.param(*d)})
                            : moe_experts(t, xv, t.param(*w), csel, E, ExpertWeight{nullptr, &fg}, ExpertWeight{nullptr, &fu},
                                          ExpertWeight{nullptr, &fd});
        for (int64_t i = 0; i < out->numel; ++i) t.grad(out)[i] = static_cast<float>(i % 5) - 2.0f;
        t.backward(t.make({1}, false));
        dx[pass].assign(x->grad.data(), x->grad.data() + x->numel());
    }
    for (int64_t i = 0; i < x->numel(); ++i) EXPECT_FLOAT_EQ(dx[0][i], dx[1][i]) << i;
}

}  // namespace
}  // namespace llmforge::train

namespace llmforge::train {
namespace {

// Tape::store_bf16 against the same step with every stored value rounded to bf16 where it lies:
// a layer (RMSNorm, q/k/v, grouped-query attention, output product, residual, SwiGLU FFN,
// residual) run twice on a product's output, stored after each layer as the trainer does. Forward
// must be bit-identical to the unstored run and backward bit-identical to the rounded-in-place one
// (the stored values come back exactly, are freed in backward as any node, and nothing reads them
// in forward); in f32 and in bf16 precision, with backward freeing as it goes.
void stored_layers_case(Precision prec) {
    constexpr int64_t B = 2, T = 9, C = 16, H = 4, Hkv = 2, D = C / H, F = 24;
    auto x = random_param("x", {B * T, C}, 41, 0.5f), w_in = random_param("w_in", {C, C}, 42, 0.3f);
    auto g1 = random_param("g1", {C}, 43, 0.1f, 1.0f), g2 = random_param("g2", {C}, 44, 0.1f, 1.0f);
    auto wq = random_param("wq", {C, C}, 45, 0.3f), wk = random_param("wk", {Hkv * D, C}, 46, 0.3f);
    auto wv = random_param("wv", {Hkv * D, C}, 47, 0.3f), wo = random_param("wo", {C, C}, 48, 0.3f);
    auto w1 = random_param("w1", {F, C}, 49, 0.3f), w3 = random_param("w3", {F, C}, 50, 0.3f);
    auto w2 = random_param("w2", {C, F}, 51, 0.3f);
    std::vector<Param*> ps = {x.get(), w_in.get(), g1.get(), g2.get(), wq.get(), wk.get(), wv.get(), wo.get(),
                              w1.get(), w3.get(), w2.get()};
    auto layer = [&](Tape& t, Var h) {
        Var n1 = rmsnorm(t, h, t.param(*g1), 1e-5f);
        Var a = attention(t, linear(t, n1, t.param(*wq)), linear(t, n1, t.param(*wk)), linear(t, n1, t.param(*wv)), B, T, H, Hkv);
        Var h2 = add(t, h, linear(t, a, t.param(*wo)));
        Var n2 = rmsnorm(t, h2, t.param(*g2), 1e-5f);
        return add(t, h2, linear(t, swiglu(t, linear(t, n2, t.param(*w1)), linear(t, n2, t.param(*w3))), t.param(*w2)));
    };
    enum Mode { kPlain, kStored, kRounded };
    ThreadPool pool(2);
    std::vector<float> out[3];
    std::vector<std::vector<float>> grads[3];
    for (Mode mode : {kPlain, kStored, kRounded}) {
        for (Param* p : ps) p->grad.zero();
        Tape t(pool);
        t.precision = prec;
        t.free_in_backward = true;
        Var h = linear(t, t.param(*x), t.param(*w_in));
        size_t stored_bytes = 0;
        for (int l = 0; l < 2; ++l) {
            const size_t from = t.mark();
            Var y = layer(t, h);
            std::vector<Node*> kept;  // what store_bf16 stores: h and the layer's nodes, but y
            for (size_t i = from; i < t.nodes().size(); ++i)
                if (Node* v = t.nodes()[i].get(); v != y && v->param == nullptr) kept.push_back(v);
            kept.push_back(h);
            for (Node* v : kept) stored_bytes += 2 * static_cast<size_t>(v->numel);
            if (mode == kStored) {
                t.store_bf16(from, h, y);
                EXPECT_EQ(t.bf16_bytes(), stored_bytes);
                for (Node* v : kept) EXPECT_TRUE(v->data == nullptr && v->half != nullptr);
                EXPECT_NE(y->data, nullptr);
            } else if (mode == kRounded) {
                for (Node* v : kept) round_to_precision(Precision::kBF16, v->data, v->data, v->numel, pool);
            }
            h = y;
        }
        out[mode].assign(h->data, h->data + h->numel);
        float* g = t.grad(h);
        for (int64_t i = 0; i < h->numel; ++i) g[i] = 0.3f * std::sin(0.37f * static_cast<float>(i)) - 0.02f;
        t.backward(t.make({1}, false));
        EXPECT_EQ(t.bf16_bytes(), 0u);  // every stored value was widened (and then freed)
        for (Param* p : ps) grads[mode].emplace_back(p->grad.data(), p->grad.data() + p->numel());
    }
    EXPECT_EQ(out[kStored], out[kPlain]) << "storing in bf16 changed the forward";
    for (size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(grads[kStored][i], grads[kRounded][i]) << ps[i]->name << ": not the gradient of the rounded values";
        double diff = 0, mag = 0;
        for (size_t j = 0; j < grads[kPlain][i].size(); ++j)
            diff = std::max(diff, static_cast<double>(std::fabs(grads[kStored][i][j] - grads[kPlain][i][j]))),
            mag = std::max(mag, static_cast<double>(std::fabs(grads[kPlain][i][j])));
        EXPECT_LT(diff, 0.03 * mag) << ps[i]->name << ": bf16 storage moved the gradient too far";
    }
    EXPECT_NE(grads[kStored], grads[kPlain]) << "the stored values were not rounded";
}

TEST(OpsGrad, StoredBf16ActivationsFp32) { stored_layers_case(Precision::kFP32); }
TEST(OpsGrad, StoredBf16ActivationsBf16Products) { stored_layers_case(Precision::kBF16); }

// ---- encoder ops (train/encoder_ops.h) ----

TEST(OpsGrad, LayerNormWithBias) {
    auto x = random_param("x", {4, 9}, 40, 2.0f, 0.5f), g = random_param("g", {9}, 41, 0.3f, 1.0f),
         b = random_param("b", {9}, 42);
    check_grads({x.get(), g.get(), b.get()},
                [](Tape& t, std::vector<Var>& v) { return layernorm(t, v[0], v[1], v[2], 1e-5f); });
}

TEST(OpsGrad, Activations) {
    for (int kind = 0; kind < 4; ++kind) {
        SCOPED_TRACE(kind);
        auto x = random_param("x", {3, 11}, 43 + kind, 1.5f);
        check_grads({x.get()}, [kind](Tape& t, std::vector<Var>& v) { return activation(t, v[0], kind); }, 2e-3, 1e-3f);
    }
}

TEST(OpsGrad, BidirectionalAttentionWithLengthsAndGroupedHeads) {
    // B = 2, T = 5 (the second sequence has 3 valid keys), H = 4, H_kv = 2, D = 3
    static const int32_t lengths[2] = {5, 3};
    auto q = random_param("q", {10, 12}, 50), k = random_param("k", {10, 6}, 51), v = random_param("v", {10, 6}, 52);
    check_grads({q.get(), k.get(), v.get()}, [](Tape& t, std::vector<Var>& a) {
        return attention_bidir(t, a[0], a[1], a[2], 2, 5, 4, 2, 0.0f, lengths);
    });
}

TEST(OpsGrad, BidirectionalAttentionSeesEveryRowButNoPadding) {
    ThreadPool pool(1);
    Tape t(pool);
    static const int32_t lengths[1] = {3};
    auto q = random_param("q", {4, 4}, 53), k = random_param("k", {4, 4}, 54), v = random_param("v", {4, 4}, 55);
    Var o1 = attention_bidir(t, t.param(*q), t.param(*k), t.param(*v), 1, 4, 2, 2, 0.0f, lengths);
    std::vector<float> before(o1->data, o1->data + 16);
    for (int i = 12; i < 16; ++i) k->value[i] += 5.0f, v->value[i] -= 3.0f;  // the padded row 3
    Var o2 = attention_bidir(t, t.param(*q), t.param(*k), t.param(*v), 1, 4, 2, 2, 0.0f, lengths);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(o2->data[i], before[i]);  // nobody reads the padded key
    k->value[4] += 1.0f;  // row 1's key: row 0 (earlier) sees it — not causal
    Var o3 = attention_bidir(t, t.param(*q), t.param(*k), t.param(*v), 1, 4, 2, 2, 0.0f, lengths);
    EXPECT_NE(o3->data[0], before[0]);
}

TEST(OpsGrad, ClassRowPositionsFirstRows) {
    auto x = random_param("x", {6, 5}, 56), w = random_param("w", {5}, 57), table = random_param("pos", {4, 5}, 58);
    check_grads({x.get(), w.get(), table.get()}, [](Tape& t, std::vector<Var>& v) {
        Var h = class_row(t, v[0], v[1], 2);          // 2 sequences of 3 rows
        h = add_positions(t, h, v[2], 2, 1);          // positions 1..3 of the table
        return add(t, h, add_positions(t, h, v[2], 2, 0));
    });
    check_grads({x.get()}, [](Tape& t, std::vector<Var>& v) { return first_rows(t, v[0], 3); });
}

TEST(OpsGrad, CrossAttentionSoftmaxRowsWeightedSum) {
    // 2 sequences: 3 query rows each attend to 4 key rows each (H = 2, D = 3).
    auto q = random_param("q", {6, 6}, 60), k = random_param("k", {8, 6}, 61), v = random_param("v", {8, 6}, 62);
    check_grads({q.get(), k.get(), v.get()}, [](Tape& t, std::vector<Var>& a) {
        return attention_bidir(t, a[0], a[1], a[2], 2, 3, 2, 2, 0.0f, nullptr, nullptr, nullptr, 0, 4);
    });
    auto w = random_param("w", {4, 2}, 63), x = random_param("a", {4, 5}, 64), y = random_param("b", {4, 5}, 65);
    check_grads({w.get(), x.get(), y.get()}, [](Tape& t, std::vector<Var>& a) {
        return weighted_sum(t, softmax_rows(t, a[0]), a[1], a[2]);
    });
}

}  // namespace
}  // namespace llmforge::train
