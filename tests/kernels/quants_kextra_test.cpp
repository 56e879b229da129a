// K-quant tests (Q2_K, Q3_K, Q5_K kernels; every K-quant's weight quantiser):
//  * bit-exactness with llama.cpp: quantising every matrix of tests/data/quant/tiny-f32.gguf
//    gives exactly the bytes llama-quantize wrote (tiny-<T>.gguf, and tiny-<T>-imat.gguf with
//    tiny.imatrix.dat), and our dequantisation of llama.cpp-written rows gives exactly the floats
//    ggml's to_float gave (dequant_ref.bin, tests/data/quant/make_dequant_ref.c);
//  * round-trip error bounds, with and without an importance matrix;
//  * every SIMD table's dot / tiles (and row-invariant tiles) against the scalar reference.
// The kernels layer cannot link io or runtime, so the GGUF files, the legacy imatrix file and
// dequant_ref.bin are read by the minimal readers of quant_fixtures.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quantize.h"
#include "kernels/quant_fixtures.h"
#include "test_util.h"

namespace llmforge::kernels {
namespace {

using namespace qfix;  // at, ref, simd_tables, gaussian, the fixture readers (quant_fixtures.h)

struct Fixture {
    DType type;
    const char* tag;
};
const Fixture kFixtures[] = {{DType::Q2_K, "Q2_K"},
                             {DType::Q3_K, "Q3_K_S"},
                             {DType::Q4_K, "Q4_K_S"},
                             {DType::Q5_K, "Q5_K_S"},
                             {DType::Q6_K, "Q6_K"}};

// Quantises every 2-D tensor of tiny-f32.gguf and compares with the fixture's bytes.
void check_fixture(const Fixture& f, bool with_imatrix) {
    const Gguf src = read_gguf(fixture("tiny-f32.gguf"));
    const Gguf want = read_gguf(fixture(std::string("tiny-") + f.tag + (with_imatrix ? "-imat" : "") + ".gguf"));
    std::map<std::string, std::vector<float>> imat;
    if (with_imatrix) imat = read_imatrix(fixture("tiny.imatrix.dat"));
    int checked = 0, weighted = 0, imatrix_mattered = 0;
    for (const auto& [name, t] : src.tensors) {
        if (t.ne.size() != 2) continue;
        ASSERT_EQ(t.type, 0u) << name;
        const auto it = want.tensors.find(name);
        ASSERT_NE(it, want.tensors.end()) << name;
        ASSERT_EQ(it->second.type, static_cast<uint32_t>(f.type)) << f.tag << " " << name << ": not --pure?";
        const int64_t n = t.ne[0], rows = t.ne[1];
        const float* imatrix = nullptr;
        if (with_imatrix) {
            const auto im = imat.find(name);
            if (im != imat.end() && static_cast<int64_t>(im->second.size()) == n) {
                imatrix = im->second.data();
                ++weighted;
            }
        }
        std::vector<uint8_t> got(row_bytes(f.type, n) * static_cast<size_t>(rows));
        quantize_weights(f.type, reinterpret_cast<const float*>(t.data), got.data(), rows, n, imatrix);
        const uint8_t* exp = it->second.data;
        const size_t bs = static_cast<size_t>(dtype_info(f.type).type_size);
        size_t bad = 0, first_bad = 0;
        for (size_t b = 0; b < got.size() / bs; ++b) {
            if (std::memcmp(got.data() + b * bs, exp + b * bs, bs) != 0) {
                if (bad++ == 0) first_bad = b;
            }
        }
        EXPECT_EQ(bad, 0u) << f.tag << (with_imatrix ? " imat " : " ") << name << ": " << bad << " of "
                           << got.size() / bs << " blocks differ, first " << first_bad;
        ++checked;
        if (imatrix != nullptr) {  // the importance matrix must matter, or this test proves nothing
            std::vector<uint8_t> plain(got.size());
            quantize_weights(f.type, reinterpret_cast<const float*>(t.data), plain.data(), rows, n, nullptr);
            if (plain != got) ++imatrix_mattered;
        }
    }
    EXPECT_GE(checked, 9);  // 7 layer matrices + token_embd + output
    if (with_imatrix) {
        EXPECT_GE(weighted, 7) << "the imatrix should cover the layer matrices";
        EXPECT_EQ(imatrix_mattered, weighted) << f.tag << ": quantising without the imatrix gave the same bytes";
    }
}

TEST(KQuantFixtures, QuantiseLikeLlamaCpp) {
    for (const Fixture& f : kFixtures) check_fixture(f, false);
}

TEST(KQuantFixtures, QuantiseWithImatrixLikeLlamaCpp) {
    for (const Fixture& f : kFixtures) check_fixture(f, true);
}

// Our dequantisation of rows llama.cpp wrote equals ggml's to_float bit for bit.
TEST(KQuantFixtures, DequantiseLikeLlamaCpp) {
    std::map<uint32_t, int> seen;
    for (const DeqRecord& d : read_dequant_ref()) {
        if (d.type < static_cast<uint32_t>(DType::Q2_K) || d.type > static_cast<uint32_t>(DType::Q6_K)) continue;
        ASSERT_EQ(d.row_bytes, row_bytes(static_cast<DType>(d.type), d.n_per_row));
        std::vector<const KernelTable*> tables = simd_tables();
        tables.insert(tables.begin(), &ref());
        for (const KernelTable* t : tables) {
            ASSERT_NE(t->dequantize_row[d.type], nullptr) << d.tag;
            std::vector<float> y(d.n_per_row);
            for (uint32_t row = 0; row < d.n_rows; ++row) {
                t->dequantize_row[d.type](d.data.data() + size_t{row} * d.row_bytes, y.data(), d.n_per_row);
                ASSERT_EQ(std::memcmp(y.data(), d.deq.data() + size_t{row} * d.n_per_row, 4 * y.size()), 0)
                    << d.tag << " " << d.tensor << " row " << row << " (" << isa_name(t->isa) << ")";
            }
        }
        ++seen[d.type];
    }
    for (DType d : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        EXPECT_GE(seen[at(d)], 2) << dtype_name(d) << " has no records in dequant_ref.bin";
    }
}

// ---------------------------------------------------------------- round trip

// Relative RMS error of quantise + dequantise over 64 super-blocks, worst block and overall,
// without and with a random importance matrix. Bounds: the measured values (printed) + ~15%.
TEST(KQuantRoundTrip, ErrorBounds) {
    struct Case {
        DType t;
        double overall, block;
    } cases[] = {{DType::Q2_K, 0.40, 0.46},
                 {DType::Q3_K, 0.20, 0.25},
                 {DType::Q4_K, 0.095, 0.115},
                 {DType::Q5_K, 0.048, 0.058},
                 {DType::Q6_K, 0.024, 0.030}};
    const int64_t n = 64 * kQK_K;
    const std::vector<float> x = gaussian(static_cast<size_t>(n), 5);
    std::vector<float> imat(static_cast<size_t>(n));
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0.1f, 4.0f);
    for (float& v : imat) v = u(rng);
    for (const Case& c : cases) {
        for (bool weighted : {false, true}) {
            std::vector<uint8_t> q(row_bytes(c.t, n));
            quantize_weights(c.t, x.data(), q.data(), 1, n, weighted ? imat.data() : nullptr);
            std::vector<float> y(static_cast<size_t>(n));
            ref().dequantize_row[at(c.t)](q.data(), y.data(), n);
            double e2 = 0, x2 = 0, worst = 0;
            for (int64_t b = 0; b < n / kQK_K; ++b) {
                double be = 0, bx = 0;
                for (int64_t i = b * kQK_K; i < (b + 1) * kQK_K; ++i) {
                    be += (y[i] - x[i]) * double(y[i] - x[i]);
                    bx += double(x[i]) * x[i];
                }
                worst = std::max(worst, std::sqrt(be / bx));
                e2 += be;
                x2 += bx;
            }
            const double rel = std::sqrt(e2 / x2);
            std::printf("%s%s: relative rms error %.4f, worst block %.4f\n", dtype_name(c.t),
                        weighted ? " (imatrix)" : "", rel, worst);
            EXPECT_LT(rel, c.overall) << dtype_name(c.t);
            EXPECT_LT(worst, c.block) << dtype_name(c.t);
            EXPECT_GT(rel, 0.0) << "a lossy format that is exact on gaussian data is suspicious";
        }
        // The table's plain quantiser is llama.cpp's plain one, as is no importance matrix (for
        // Q4_K / Q6_K the table's is quants_ref.cpp's own copy, which agrees here).
        ASSERT_NE(ref().quantize_row[at(c.t)], nullptr) << dtype_name(c.t);
        std::vector<uint8_t> a(row_bytes(c.t, n)), b(row_bytes(c.t, n));
        ref().quantize_row[at(c.t)](x.data(), a.data(), n);
        quantize_weights(c.t, x.data(), b.data(), 1, n, nullptr);
        EXPECT_EQ(a, b) << dtype_name(c.t);
    }
}

// All-zero and constant blocks quantise without NaN and decode to (near) themselves.
TEST(KQuantRoundTrip, DegenerateBlocks) {
    for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        for (float v : {0.0f, 0.5f, -2.0f}) {
            std::vector<float> x(kQK_K, v), y(kQK_K);
            std::vector<float> imat(kQK_K, 1.0f);
            for (const float* im : {static_cast<const float*>(nullptr), static_cast<const float*>(imat.data())}) {
                std::vector<uint8_t> q(row_bytes(t, kQK_K));
                quantize_weights(t, x.data(), q.data(), 1, kQK_K, im);
                ref().dequantize_row[at(t)](q.data(), y.data(), kQK_K);
                for (int i = 0; i < kQK_K; ++i) {
                    ASSERT_TRUE(std::isfinite(y[i])) << dtype_name(t) << " " << v;
                    ASSERT_NEAR(y[i], v, std::fabs(v) * 0.35 + 1e-6) << dtype_name(t) << " " << v;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- SIMD vs reference

const DType kNew[] = {DType::Q2_K, DType::Q3_K, DType::Q5_K};
// Every K-quant: the row-invariant tiles of Q4_K / Q6_K come from the same code.
const DType kAllK[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

struct Operands {
    std::vector<uint8_t> w, x;
    std::vector<float> wf, xf;
    size_t w_stride = 0, x_stride = 0;
};

Operands make_operands(DType t, int64_t n, int64_t nr, int64_t nc, uint32_t seed) {
    Operands o;
    o.wf = gaussian(static_cast<size_t>(n * nr), seed, 0.05f);
    o.xf = gaussian(static_cast<size_t>(n * nc), seed + 1);
    o.w_stride = row_bytes(t, n);
    o.x_stride = row_bytes(DType::Q8_K, n);
    o.w.resize(o.w_stride * static_cast<size_t>(nr));
    o.x.resize(o.x_stride * static_cast<size_t>(nc));
    quantize_weights(t, o.wf.data(), o.w.data(), nr, n, nullptr);
    for (int64_t c = 0; c < nc; ++c) {
        ref().quantize_row[at(DType::Q8_K)](o.xf.data() + c * n, o.x.data() + static_cast<size_t>(c) * o.x_stride, n);
    }
    return o;
}

// |w|·|x| of one output: the scale of its rounding error.
double magnitude(const Operands& o, int64_t n, int64_t r, int64_t c) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs(o.wf[r * n + i]) * std::fabs(o.xf[c * n + i]);
    return s;
}

TEST(KQuantSimd, VecDotMatchesReference) {
    const auto tables = simd_tables();
    ASSERT_FALSE(tables.empty()) << "no SIMD table on this machine";
    for (const KernelTable* t : tables) {
        for (DType d : kNew) {
            ASSERT_NE(t->vec_dot[at(d)], nullptr);
            EXPECT_NE(t->vec_dot[at(d)], ref().vec_dot[at(d)]) << isa_name(t->isa) << " has no own " << dtype_name(d);
            for (int64_t n : {256, 512, 2816}) {
                const Operands o = make_operands(d, n, 3, 1, static_cast<uint32_t>(n) + at(d));
                for (int64_t r = 0; r < 3; ++r) {
                    const void* w = o.w.data() + static_cast<size_t>(r) * o.w_stride;
                    const float want = ref().vec_dot[at(d)](n, w, o.x.data());
                    const float got = t->vec_dot[at(d)](n, w, o.x.data());
                    EXPECT_NEAR(got, want, 1e-5 * magnitude(o, n, r, 0) + 1e-6)
                        << isa_name(t->isa) << " " << dtype_name(d) << " n=" << n << " row " << r;
                }
            }
        }
    }
}

TEST(KQuantSimd, GemmMatchesReferenceOddShapes) {
    const auto tables = simd_tables();
    ASSERT_FALSE(tables.empty());
    const int64_t n = 512;
    for (const KernelTable* t : tables) {
        for (DType d : kAllK) {
            for (int64_t nr : {1, 3, 4, 5, 7, 13}) {
                for (int64_t nc : {1, 2, 3, 5, 17, 18}) {
                    const Operands o = make_operands(d, n, nr, nc, static_cast<uint32_t>(nr * 100 + nc));
                    const size_t ldo = static_cast<size_t>(nr) + 2;
                    std::vector<float> want(ldo * nc, -7.f), got(ldo * nc, -7.f), inv(ldo * nc, -7.f);
                    ref().gemm[at(d)](n, o.w.data(), o.w_stride, nr, o.x.data(), o.x_stride, nc, want.data(), ldo);
                    t->gemm[at(d)](n, o.w.data(), o.w_stride, nr, o.x.data(), o.x_stride, nc, got.data(), ldo);
                    ASSERT_NE(t->gemm_invariant[at(d)], nullptr);
                    t->gemm_invariant[at(d)](n, o.w.data(), o.w_stride, nr, o.x.data(), o.x_stride, nc, inv.data(), ldo);
                    for (int64_t c = 0; c < nc; ++c) {
                        for (size_t r = 0; r < ldo; ++r) {
                            const size_t i = static_cast<size_t>(c) * ldo + r;
                            if (r >= static_cast<size_t>(nr)) {
                                ASSERT_EQ(got[i], -7.f) << "wrote outside the tile";
                                ASSERT_EQ(inv[i], -7.f) << "wrote outside the tile";
                                continue;
                            }
                            const double tol = 1e-5 * magnitude(o, n, static_cast<int64_t>(r), c) + 1e-6;
                            ASSERT_NEAR(got[i], want[i], tol) << isa_name(t->isa) << " " << dtype_name(d) << " "
                                                              << nr << "x" << nc << " at " << r << "," << c;
                            ASSERT_NEAR(inv[i], want[i], tol) << "invariant " << isa_name(t->isa) << " " << dtype_name(d);
                        }
                    }
                    // Row invariance: each activation row alone gives the same bits as in the tile.
                    for (int64_t c = 0; c < nc; ++c) {
                        std::vector<float> one(static_cast<size_t>(nr));
                        t->gemm_invariant[at(d)](n, o.w.data(), o.w_stride, nr, o.x.data() + static_cast<size_t>(c) * o.x_stride,
                                                 o.x_stride, 1, one.data(), static_cast<size_t>(nr));
                        for (int64_t r = 0; r < nr; ++r) {
                            ASSERT_EQ(one[r], inv[static_cast<size_t>(c) * ldo + r])
                                << "gemm_invariant not row-invariant: " << isa_name(t->isa) << " " << dtype_name(d);
                        }
                    }
                }
            }
        }
    }
}

// The scalar reference dot against the dequantised weights (a check of the reference itself).
TEST(KQuantSimd, ReferenceDotMatchesDequantisedProduct) {
    const int64_t n = 768;
    for (DType d : kNew) {
        const Operands o = make_operands(d, n, 2, 1, 77);
        std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
        ref().dequantize_row[at(DType::Q8_K)](o.x.data(), xd.data(), n);
        for (int64_t r = 0; r < 2; ++r) {
            ref().dequantize_row[at(d)](o.w.data() + static_cast<size_t>(r) * o.w_stride, wd.data(), n);
            double s = 0;
            for (int64_t i = 0; i < n; ++i) s += double(wd[i]) * xd[i];
            EXPECT_NEAR(ref().vec_dot[at(d)](n, o.w.data() + static_cast<size_t>(r) * o.w_stride, o.x.data()), s,
                        1e-4 * magnitude(o, n, r, 0) + 1e-5)
                << dtype_name(d);
        }
    }
}

}  // namespace
}  // namespace llmforge::kernels
