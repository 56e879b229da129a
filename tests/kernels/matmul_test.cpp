// matmul (threaded, tiled, every kernel table on this CPU) against matmul_ref (scalar, double
// accumulation, same activation rounding), for every weight dtype and a range of shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/repack.h"
#include "test_util.h"

#if defined(LLMFORGE_HAVE_AVX512_EMU)
#include "kernels/avx512_emu.h"
#endif

namespace llmforge::kernels {
namespace {

std::vector<float> gaussian(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

Tensor make_weight(DType t, int64_t n, int64_t k, uint32_t seed) {
    auto wf = gaussian(static_cast<size_t>(n * k), seed);
    Tensor w = Tensor::empty(t, {n, k}, "w");
    const KernelTable& ref = *kernels_for(Isa::kScalar);
    for (int64_t r = 0; r < n; ++r) {
        if (t == DType::F32) {
            std::copy(wf.begin() + r * k, wf.begin() + (r + 1) * k, reinterpret_cast<float*>(w.row(r)));
        } else {
            ref.quantize_row[static_cast<int>(t)](wf.data() + r * k, w.row(r), k);
        }
    }
    return w;
}

// sum_k |w_rk x_ck| for every output, from dequantised weights and the f32 activations.
std::vector<double> abs_products(const Tensor& w, const std::vector<float>& x, int64_t m) {
    const int64_t n = w.dim(0), k = w.dim(1);
    const KernelTable& ref = *kernels_for(Isa::kScalar);
    std::vector<double> out(static_cast<size_t>(m * n));
    std::vector<float> wr(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
        ref.dequantize_row[static_cast<int>(w.dtype())](w.row(r), wr.data(), k);
        for (int64_t i = 0; i < m; ++i) {
            double s = 0;
            for (int64_t j = 0; j < k; ++j) s += std::fabs(static_cast<double>(wr[j]) * x[i * k + j]);
            out[i * n + r] = s;
        }
    }
    return out;
}

struct Case {
    DType t;
    int64_t k;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
        c.push_back({t, 256});
        c.push_back({t, 512});
        if (dtype_info(t).block_size <= 32) c.push_back({t, 96});
    }
    c.push_back({DType::F32, 37});  // float weights have no block constraint
    c.push_back({DType::F16, 45});
    c.push_back({DType::BF16, 53});    // the one-row bf16 kernel's 16-element tail
    c.push_back({DType::BF16, 4133});  // ... and its 2048-element segments
    return c;
}

std::vector<const KernelTable*> tables() {
    std::vector<const KernelTable*> t;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        if (const KernelTable* p = kernels_for(isa)) t.push_back(p);
    }
#if defined(LLMFORGE_HAVE_AVX512_EMU)
    // The AVX-512 table's code under SIMDe (traces name it "avx512" too).
    if (const KernelTable* e = avx512_emulated_table()) t.push_back(e);
#endif
    return t;
}

TEST(Matmul, MatchesReferenceForEveryDtypeShapeAndThreadCount) {
    const int64_t n = 131;  // odd: partial register tiles and uneven thread chunks
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        for (const Case& c : cases()) {
            Tensor w = make_weight(c.t, n, c.k, static_cast<uint32_t>(c.k + static_cast<int64_t>(c.t)));
            for (int64_t m : {1, 3, 17, 64}) {
                auto x = gaussian(static_cast<size_t>(m * c.k), static_cast<uint32_t>(m * 31 + c.k));
                std::vector<float> want(static_cast<size_t>(m * n));
                matmul_ref(w, x.data(), m, want.data());
                auto abs_sum = abs_products(w, x, m);
                for (const KernelTable* t : tables()) {
                    SCOPED_TRACE(std::string(dtype_name(c.t)) + " K=" + std::to_string(c.k) + " M=" + std::to_string(m) +
                                 " threads=" + std::to_string(threads) + " isa=" + isa_name(t->isa));
                    std::vector<float> got(static_cast<size_t>(m * n), std::nanf(""));
                    matmul(*t, w, x.data(), m, got.data(), pool, scratch);
                    for (size_t i = 0; i < got.size(); ++i) {
                        ASSERT_NEAR(got[i], want[i], 3e-6 * abs_sum[i] + 1e-6) << "output " << i;
                    }
                }
            }
        }
    }
}

// Where a table offers a row-invariant gemm, every output row is bit-identical whether the
// activations came alone (M = 1, the decode path) or with others (tiles), at any thread count;
// and the row-invariant products still match the reference.
TEST(Matmul, RowInvariantGemmGivesTheSameBitsForAnyM) {
    const int64_t n = 133, m = 7;
    int checked = 0;
    for (const Case& c : cases()) {
        Tensor w = make_weight(c.t, n, c.k, static_cast<uint32_t>(c.k * 7 + static_cast<int64_t>(c.t)));
        auto x = gaussian(static_cast<size_t>(m * c.k), static_cast<uint32_t>(c.k + 5));
        for (const KernelTable* t : tables()) {
            if (t->gemm_invariant[static_cast<int>(c.t)] == nullptr) continue;
            SCOPED_TRACE(std::string(dtype_name(c.t)) + " K=" + std::to_string(c.k) + " isa=" + isa_name(t->isa));
            for (int threads : {1, 2}) {
                ThreadPool pool(threads);
                MatmulScratch scratch;
                scratch.row_invariant = true;
                std::vector<float> together(static_cast<size_t>(m * n)), alone(static_cast<size_t>(n));
                matmul(*t, w, x.data(), m, together.data(), pool, scratch);
                for (int64_t i = 0; i < m; ++i) {
                    matmul(*t, w, x.data() + i * c.k, 1, alone.data(), pool, scratch);
                    ASSERT_EQ(std::memcmp(alone.data(), together.data() + i * n, n * sizeof(float)), 0)
                        << "row " << i << " threads " << threads;
                }
                ++checked;
            }
        }
    }
    // The x86 tables have it for q8_0 and q4_0; the scalar table for every type.
    EXPECT_GE(checked, 2 * 7);
}

// Activation quantisation keeps the product close to the exact f32 one: per element the Q8
// activation error is at most ~0.56 of its block's step (half a step plus fp16 rounding of d).
TEST(Matmul, QuantisedActivationsStayCloseToF32Product) {
    ThreadPool pool(2);
    MatmulScratch scratch;
    const int64_t n = 33, k = 512, m = 5;
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
        SCOPED_TRACE(dtype_name(t));
        Tensor w = make_weight(t, n, k, 99);
        auto x = gaussian(static_cast<size_t>(m * k), 98);
        std::vector<float> got(static_cast<size_t>(m * n));
        matmul(w, x.data(), m, got.data(), pool, scratch);
        const int bs = dtype_info(vec_dot_type(t)).block_size;
        std::vector<float> wr(static_cast<size_t>(k));
        for (int64_t r = 0; r < n; ++r) {
            kernels_for(Isa::kScalar)->dequantize_row[static_cast<int>(t)](w.row(r), wr.data(), k);
            for (int64_t i = 0; i < m; ++i) {
                double exact = 0, bound = 0;
                for (int64_t b = 0; b < k / bs; ++b) {
                    float amax = 0;
                    for (int j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[i * k + b * bs + j]));
                    for (int j = 0; j < bs; ++j) {
                        const int64_t e = b * bs + j;
                        exact += static_cast<double>(wr[e]) * x[i * k + e];
                        bound += std::fabs(wr[e]) * amax / 127 * 0.57;
                    }
                }
                ASSERT_NEAR(got[i * n + r], exact, bound + 1e-4) << "r=" << r << " i=" << i;
            }
        }
    }
}

// Rows longer than gemm_q_0's scale buffers (K / 32 > 512 blocks) take the tile that converts
// scales as it goes; both paths must match the reference.
TEST(Matmul, LongQ0RowsMatchReference) {
    const int64_t n = 9, k = 32 * 520;
    ThreadPool pool(2);
    MatmulScratch scratch;
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
        Tensor w = make_weight(t, n, k, 71);
        for (int64_t m : {1, 6}) {
            SCOPED_TRACE(std::string(dtype_name(t)) + " M=" + std::to_string(m));
            auto x = gaussian(static_cast<size_t>(m * k), 72);
            std::vector<float> want(static_cast<size_t>(m * n)), got(want.size(), std::nanf(""));
            matmul_ref(w, x.data(), m, want.data());
            matmul(w, x.data(), m, got.data(), pool, scratch);
            auto abs_sum = abs_products(w, x, m);
            for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 3e-6 * abs_sum[i] + 1e-6) << i;
        }
    }
}

// matmul_multi (one dispatch over several weights) equals one matmul per weight, including
// weights of different partner types (fallback) and m > 1.
TEST(Matmul, MultiEqualsSeparateProducts) {
    const int64_t k = 256;
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
            const DType t2 = t == DType::Q6_K ? DType::Q8_0 : t;  // mixed partner types: fallback path
            Tensor w0 = make_weight(t, 77, k, 1), w1 = make_weight(t2, 20, k, 2), w2 = make_weight(t, 131, k, 3);
            const Tensor* ws[3] = {&w0, &w1, &w2};
            for (int64_t m : {1, 4}) {
                SCOPED_TRACE(std::string(dtype_name(t)) + " M=" + std::to_string(m) + " threads=" + std::to_string(threads));
                auto x = gaussian(static_cast<size_t>(m * k), 5);
                std::vector<float> y[3], want[3];
                float* ys[3];
                for (int j = 0; j < 3; ++j) {
                    y[j].assign(static_cast<size_t>(m * ws[j]->dim(0)), std::nanf(""));
                    want[j].resize(y[j].size());
                    ys[j] = y[j].data();
                    matmul(*ws[j], x.data(), m, want[j].data(), pool, scratch);
                }
                matmul_multi(ws, ys, 3, x.data(), m, pool, scratch);
                for (int j = 0; j < 3; ++j) {
                    for (size_t i = 0; i < y[j].size(); ++i) ASSERT_EQ(y[j][i], want[j][i]) << "w" << j << " " << i;
                }
            }
        }
    }
}

// matmul_swiglu equals silu(X Wg^T) * (X Wu^T) computed from separate products.
TEST(Matmul, SwigluEqualsSeparateProducts) {
    const int64_t f = 203, k = 256;
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        for (DType t : {DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
            Tensor wg = make_weight(t, f, k, 11), wu = make_weight(t, f, k, 12);
            for (int64_t m : {1, 3}) {
                SCOPED_TRACE(std::string(dtype_name(t)) + " M=" + std::to_string(m) + " threads=" + std::to_string(threads));
                auto x = gaussian(static_cast<size_t>(m * k), 13);
                std::vector<float> g(static_cast<size_t>(m * f)), u(g.size()), want(g.size());
                matmul(wg, x.data(), m, g.data(), pool, scratch);
                matmul(wu, x.data(), m, u.data(), pool, scratch);
                for (size_t i = 0; i < g.size(); ++i) {
                    const double gi = g[i];
                    want[i] = static_cast<float>(gi / (1.0 + std::exp(-gi)) * u[i]);
                }
                std::vector<float> got(g.size(), std::nanf("")), up(g.size());
                matmul_swiglu(wg, wu, x.data(), m, got.data(), up.data(), pool, scratch);
                for (size_t i = 0; i < got.size(); ++i) {
                    ASSERT_NEAR(got[i], want[i], 1e-5 * (std::fabs(want[i]) + 1)) << i;
                }
            }
        }
    }
}

// ---- the interleaved 8-row layout (repack.h)

// Repacking keeps every row: unpacking row r of the x8 copy gives its plain bytes back, and the
// in-place repack writes the same bytes as the copying one.
TEST(MatmulX8, RepackKeepsEveryRowAndInPlaceEqualsCopy) {
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
        SCOPED_TRACE(dtype_name(t));
        const int64_t n = 24, k = 96;
        Tensor w = make_weight(t, n, k, 41);
        ASSERT_TRUE(x8_can_repack(w));
        Tensor packed = repack_x8(w, false);
        EXPECT_EQ(packed.row_group(), 8);
        EXPECT_EQ(packed.shape(), w.shape());
        EXPECT_NE(std::memcmp(packed.data(), w.data(), w.nbytes()), 0);  // really interleaved
        std::vector<uint8_t> row(w.row_stride());
        for (int64_t r = 0; r < n; ++r) {
            x8_unpack_row(t, packed.row(r - r % 8), static_cast<int>(r % 8), k, row.data());
            ASSERT_EQ(std::memcmp(row.data(), w.row(r), row.size()), 0) << "row " << r;
        }
        Tensor copy = make_weight(t, n, k, 41);
        Tensor in_place = repack_x8(copy, true);
        EXPECT_EQ(in_place.data(), copy.data());
        EXPECT_EQ(std::memcmp(in_place.data(), packed.data(), w.nbytes()), 0);
        EXPECT_FALSE(x8_can_repack(packed));                     // already grouped
        EXPECT_FALSE(x8_can_repack(make_weight(t, 12, k, 1)));   // rows not a multiple of 8
        EXPECT_FALSE(x8_can_repack(make_weight(DType::Q4_K, 8, 256, 1)));
    }
}

// Every table's x8 product matches the reference on the plain matrix (odd group counts, M of
// every tile remainder, K across the kernels' 256-block segment) at 1 and 2 threads; the scalar
// table's x8 product is bit-identical to its plain one, and the x86 tables (AVX2 maddubs, 256-bit
// VNNI, 512-bit VNNI, emulated or not) give the same bits: equal integer block sums, same f32 order.
TEST(MatmulX8, MatchesReferenceForEveryTableShapeAndThreadCount) {
    const int64_t n = 136;  // 17 groups
    int checked = 0;
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        for (DType t : {DType::Q8_0, DType::Q4_0}) {
            for (int64_t k : {96, 256, 32 * 300}) {
                Tensor w = make_weight(t, n, k, static_cast<uint32_t>(k + 3));
                Tensor packed = repack_x8(w, false);
                for (int64_t m : {1, 2, 3, 5, 17, 64}) {
                    auto x = gaussian(static_cast<size_t>(m * k), static_cast<uint32_t>(m * 13 + k));
                    std::vector<float> want(static_cast<size_t>(m * n)), ref_x8(want.size());
                    matmul_ref(w, x.data(), m, want.data());
                    matmul_ref(packed, x.data(), m, ref_x8.data());
                    ASSERT_EQ(std::memcmp(want.data(), ref_x8.data(), want.size() * sizeof(float)), 0);
                    auto abs_sum = abs_products(w, x, m);
                    std::vector<float> first_x86;  // the x86 tables' tiles (256- and 512-bit) agree bit for bit
                    for (const KernelTable* tb : tables()) {
                        if (tb->gemm_x8[static_cast<int>(t)] == nullptr) continue;
                        SCOPED_TRACE(std::string(dtype_name(t)) + " K=" + std::to_string(k) + " M=" +
                                     std::to_string(m) + " threads=" + std::to_string(threads) + " isa=" +
                                     isa_name(tb->isa));
                        std::vector<float> got(want.size(), std::nanf("")), plain(want.size(), std::nanf(""));
                        matmul(*tb, packed, x.data(), m, got.data(), pool, scratch);
                        for (size_t i = 0; i < got.size(); ++i) {
                            ASSERT_NEAR(got[i], want[i], 3e-6 * abs_sum[i] + 1e-6) << "output " << i;
                        }
                        if (tb->isa == Isa::kScalar) {
                            matmul(*tb, w, x.data(), m, plain.data(), pool, scratch);
                            ASSERT_EQ(std::memcmp(got.data(), plain.data(), got.size() * sizeof(float)), 0);
                        } else if (first_x86.empty()) {
                            first_x86 = got;
                        } else {
                            ASSERT_EQ(std::memcmp(got.data(), first_x86.data(), got.size() * sizeof(float)), 0)
                                << "differs from the first x86 table's bits";
                        }
                        ++checked;
                    }
                }
            }
        }
    }
    EXPECT_GE(checked, 2 * 2 * 3 * 6);  // at least the scalar table
}

// x8 products are row-invariant: a row computed alone (decode) has the same bits as in any batch.
TEST(MatmulX8, RowsAreBitIdenticalForAnyM) {
    const int64_t n = 72, k = 32 * 270, m = 9;
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
        Tensor packed = repack_x8(make_weight(t, n, k, 9), false);
        auto x = gaussian(static_cast<size_t>(m * k), 10);
        for (const KernelTable* tb : tables()) {
            if (tb->gemm_x8[static_cast<int>(t)] == nullptr) continue;
            SCOPED_TRACE(std::string(dtype_name(t)) + " isa=" + isa_name(tb->isa));
            for (int threads : {1, 2}) {
                ThreadPool pool(threads);
                MatmulScratch scratch;
                std::vector<float> together(static_cast<size_t>(m * n)), alone(static_cast<size_t>(n));
                matmul(*tb, packed, x.data(), m, together.data(), pool, scratch);
                for (int64_t i = 0; i < m; ++i) {
                    matmul(*tb, packed, x.data() + i * k, 1, alone.data(), pool, scratch);
                    ASSERT_EQ(std::memcmp(alone.data(), together.data() + i * n, n * sizeof(float)), 0)
                        << "row " << i << " threads " << threads;
                }
            }
        }
    }
}

// One dispatch over x8 and plain matrices (Q/K/V, gate/up) equals one matmul each.
TEST(MatmulX8, MultiAndSwigluMixLayouts) {
    const int64_t k = 256;
    ThreadPool pool(2);
    MatmulScratch scratch;
    Tensor a = repack_x8(make_weight(DType::Q4_0, 64, k, 1), false);
    Tensor b = make_weight(DType::Q8_0, 20, k, 2);  // 20 rows: stays plain
    Tensor c = repack_x8(make_weight(DType::Q8_0, 136, k, 3), false);
    const Tensor* ws[3] = {&a, &b, &c};
    auto x = gaussian(static_cast<size_t>(k), 4);
    std::vector<float> y[3], want[3];
    float* ys[3];
    for (int j = 0; j < 3; ++j) {
        y[j].assign(static_cast<size_t>(ws[j]->dim(0)), std::nanf(""));
        want[j].resize(y[j].size());
        ys[j] = y[j].data();
        matmul(*ws[j], x.data(), 1, want[j].data(), pool, scratch);
    }
    matmul_multi(ws, ys, 3, x.data(), 1, pool, scratch);
    for (int j = 0; j < 3; ++j) {
        for (size_t i = 0; i < y[j].size(); ++i) ASSERT_EQ(y[j][i], want[j][i]) << "w" << j << " " << i;
    }
    Tensor wg = repack_x8(make_weight(DType::Q4_0, 200, k, 5), false);
    Tensor wu = repack_x8(make_weight(DType::Q4_0, 200, k, 6), false);
    std::vector<float> g(200), u(200), got(200), up(200);
    matmul(wg, x.data(), 1, g.data(), pool, scratch);
    matmul(wu, x.data(), 1, u.data(), pool, scratch);
    matmul_swiglu(wg, wu, x.data(), 1, got.data(), up.data(), pool, scratch);
    for (int i = 0; i < 200; ++i) {
        const double gi = g[i];
        ASSERT_NEAR(got[i], gi / (1.0 + std::exp(-gi)) * u[i], 1e-5 * (std::fabs(gi * u[i]) + 1)) << i;
    }
}

TEST(Matmul, ScratchIsReusedAcrossCalls) {
    ThreadPool pool(1);
    MatmulScratch scratch;
    Tensor w = make_weight(DType::Q4_K, 8, 256, 5);
    auto x = gaussian(256 * 4, 6);
    std::vector<float> y(8 * 4);
    matmul(w, x.data(), 4, y.data(), pool, scratch);
    const size_t cap = scratch.capacity();
    EXPECT_GT(cap, 0u);
    for (int i = 0; i < 3; ++i) matmul(w, x.data(), 1, y.data(), pool, scratch);
    EXPECT_EQ(scratch.capacity(), cap);  // decode steps after a prefill allocate nothing
}


// matmul_grouped: several products (different matrices, row counts 0..40, SwiGLU pairs, strided
// inputs and outputs, plain and interleaved layouts) in one dispatch equal the same products done
// one by one with matmul() (no BLAS), within rounding; with row-invariant kernels, bit for bit.
TEST(Matmul, GroupedProductsEqualSeparateProducts) {
    for (DType t : {DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
        const int64_t k = 256, n = 48;
        std::vector<Tensor> ws, us;
        for (int e = 0; e < 5; ++e) {
            ws.push_back(make_weight(t, n, k, 100 + e));
            us.push_back(make_weight(t, n, k, 200 + e));
            if (e % 2 == 1 && x8_can_repack(ws.back())) {  // some in the interleaved layout
                ws.back() = repack_x8(ws.back(), true);
                us.back() = repack_x8(us.back(), true);
            }
        }
        const int64_t ms[5] = {1, 0, 3, 40, 2};
        const int64_t ldx = k + 16, ldy = n + 8;
        for (bool invariant : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(t)) + (invariant ? " invariant" : ""));
            ThreadPool pool(2);
            MatmulScratch scratch;
            scratch.allow_blas = false;
            scratch.row_invariant = invariant;
            std::vector<std::vector<float>> xs, ys, yus;
            std::vector<GroupedProduct> ps;
            for (int e = 0; e < 5; ++e) {
                xs.push_back(gaussian(static_cast<size_t>(std::max<int64_t>(ms[e], 1) * ldx), 300 + e));
                ys.emplace_back(static_cast<size_t>(std::max<int64_t>(ms[e], 1) * ldy), 0.0f);
                yus.emplace_back(static_cast<size_t>(std::max<int64_t>(ms[e], 1) * ldy), 0.0f);
                GroupedProduct g;
                g.w = &ws[e];
                g.w_up = e % 3 == 0 ? &us[e] : nullptr;  // SwiGLU pairs for 0 and 3
                g.x = xs[e].data();
                g.m = ms[e];
                g.ldx = ldx;
                g.y = ys[e].data();
                g.y_up = g.w_up ? yus[e].data() : nullptr;
                g.ldy = ldy;
                ps.push_back(g);
            }
            matmul_grouped(ps.data(), static_cast<int64_t>(ps.size()), pool, scratch);
            int compared = 0;
            for (int e = 0; e < 5; ++e) {
                for (int64_t i = 0; i < ms[e]; ++i) {
                    // One row at a time through matmul (the decode path), gate and up apart.
                    std::vector<float> xr(xs[e].begin() + i * ldx, xs[e].begin() + i * ldx + k), g(n), u(n);
                    matmul(ws[e], xr.data(), 1, g.data(), pool, scratch);
                    if (ps[e].w_up) {
                        matmul(us[e], xr.data(), 1, u.data(), pool, scratch);
                        for (int64_t r = 0; r < n; ++r) g[r] = g[r] / (1.0f + std::exp(-g[r])) * u[r];
                    }
                    for (int64_t r = 0; r < n; ++r) {
                        const float got = ys[e][i * ldy + r];
                        if (invariant && t != DType::Q4_K && t != DType::F32 && !ps[e].w_up) {  // (the test's own silu is scalar)
                            ASSERT_EQ(got, g[r]) << "product " << e << " row " << i << " out " << r;
                        } else {
                            ASSERT_NEAR(got, g[r], 1e-4f * (1 + std::fabs(g[r]))) << "product " << e << " row " << i;
                        }
                        ++compared;
                    }
                    // The padding between strided output rows is untouched.
                    for (int64_t r = n; r < ldy && i + 1 < ms[e]; ++r) ASSERT_EQ(ys[e][i * ldy + r], 0.0f);
                }
            }
            EXPECT_EQ(compared, (1 + 3 + 40 + 2) * n);
        }
    }
}

}  // namespace
}  // namespace llmforge::kernels
