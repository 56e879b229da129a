// Q4_1 / Q5_0 / Q5_1 / Q8_1 kernels and the legacy types' weight quantisers:
//  * bit-exactness with llama.cpp: quantising tests/data/quant/tiny-f32.gguf gives exactly the
//    bytes llama-quantize wrote (tiny-<T>.gguf, and tiny-<T>-imat.gguf with tiny.imatrix.dat), and
//    dequantising llama.cpp's rows gives exactly the floats ggml's to_float gave
//    (dequant_ref.bin, written by make_dequant_ref.c against libggml);
//  * round-trip error bounds per block;
//  * every SIMD table's quantize / vec_dot / gemm / gemm_invariant against the scalar reference.
// The fixture readers are in quant_fixtures.h (shared with quants_kextra_test).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/repack.h"
#include "kernels/quant_fixtures.h"
#include "test_util.h"

namespace llmforge::kernels {
namespace {

using namespace qfix;  // at, ref, simd_tables, gaussian, the fixture readers (quant_fixtures.h)

// ------------------------------------------------------------------ fixture bit-exactness

struct QuantCase {
    const char* file_tag;
    DType type;
};
const QuantCase kLegacy[] = {{"Q4_0", DType::Q4_0}, {"Q4_1", DType::Q4_1}, {"Q5_0", DType::Q5_0},
                             {"Q5_1", DType::Q5_1}, {"Q8_0", DType::Q8_0}};

// Quantises every tensor of tiny-f32.gguf that `file` holds in `type` and compares the bytes.
// Returns how many tensors were compared (and how many of them used an imatrix entry).
std::pair<int, int> check_quantised_file(const std::string& file, DType type,
                                         const std::map<std::string, std::vector<float>>* imatrix) {
    const Gguf src = read_gguf(fixture("tiny-f32.gguf"));
    const Gguf want = read_gguf(fixture(file));
    int compared = 0, weighted = 0;
    for (const auto& [name, t] : want.tensors) {
        if (t.type != static_cast<uint32_t>(type)) continue;
        SCOPED_TRACE(file + ": " + name);
        const auto it = src.tensors.find(name);
        if (it == src.tensors.end() || it->second.type != 0) {
            ADD_FAILURE() << "no f32 source tensor";
            continue;
        }
        const int64_t n_per_row = t.ne[0];
        int64_t rows = 1;
        for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
        const float* im = nullptr;
        if (imatrix) {
            const auto e = imatrix->find(name);
            if (e != imatrix->end() && static_cast<int64_t>(e->second.size()) == n_per_row) {
                im = e->second.data();
                ++weighted;
            }
        }
        std::vector<float> x(static_cast<size_t>(rows * n_per_row));
        std::memcpy(x.data(), it->second.data, x.size() * 4);
        std::vector<uint8_t> got(row_bytes(type, n_per_row) * static_cast<size_t>(rows));
        EXPECT_EQ(quantize_weights(type, x.data(), got.data(), rows, n_per_row, im), got.size());
        size_t first_diff = got.size();
        for (size_t i = 0; i < got.size(); ++i) {
            if (got[i] != t.data[i]) {
                first_diff = i;
                break;
            }
        }
        EXPECT_EQ(first_diff, got.size()) << "first differing byte (row " << first_diff / row_bytes(type, n_per_row)
                                          << ", " << got.size() << " bytes)";
        ++compared;
    }
    return {compared, weighted};
}

TEST(LegacyQuantiser, BitExactWithLlamaQuantize) {
    for (const QuantCase& c : kLegacy) {
        const auto [compared, weighted] = check_quantised_file(std::string("tiny-") + c.file_tag + ".gguf", c.type, nullptr);
        // token_embd, output and the 7 matrices of the one block: at least the block's 7.
        EXPECT_GE(compared, 7) << c.file_tag;
        EXPECT_EQ(weighted, 0);
    }
}

TEST(LegacyQuantiser, BitExactWithLlamaQuantizeImatrix) {
    const auto imatrix = read_imatrix(fixture("tiny.imatrix.dat"));
    ASSERT_GE(imatrix.size(), 7u);
    for (const QuantCase& c : kLegacy) {
        if (c.type == DType::Q8_0) continue;  // no imatrix variant (and no fixture)
        const auto [compared, weighted] =
            check_quantised_file(std::string("tiny-") + c.file_tag + "-imat.gguf", c.type, &imatrix);
        EXPECT_GE(compared, 7) << c.file_tag;
        EXPECT_GE(weighted, 7) << c.file_tag << ": the imatrix path must really be taken";
    }
}

// The importance-weighted search must differ from plain rounding somewhere (else the test above
// could pass with the imatrix ignored) and lower the weighted error on average.
TEST(LegacyQuantiser, ImatrixChangesAndHelps) {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0, 1);
    std::uniform_real_distribution<float> imp(0.01f, 10.0f);
    const int64_t n = 256;
    std::vector<float> x(n), im(n);
    for (auto& v : x) v = dist(rng);
    for (auto& v : im) v = imp(rng);
    for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
        SCOPED_TRACE(dtype_name(t));
        std::vector<uint8_t> a(row_bytes(t, n)), b(row_bytes(t, n));
        quantize_weights(t, x.data(), a.data(), 1, n, nullptr);
        quantize_weights(t, x.data(), b.data(), 1, n, im.data());
        EXPECT_NE(a, b);
        std::vector<float> da(n), db(n);
        ref().dequantize_row[at(t)](a.data(), da.data(), n);
        ref().dequantize_row[at(t)](b.data(), db.data(), n);
        double ea = 0, eb = 0;
        for (int64_t i = 0; i < n; ++i) {
            ea += im[i] * (da[i] - x[i]) * (da[i] - x[i]);
            eb += im[i] * (db[i] - x[i]) * (db[i] - x[i]);
        }
        EXPECT_LT(eb, ea);
    }
}

// ------------------------------------------------------------------ dequantisation vs ggml

TEST(LegacyDequant, BitIdenticalToGgml) {
    const auto records = read_dequant_ref();
    const DType mine[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::F16, DType::BF16};
    int checked = 0;
    for (const auto& d : records) {
        bool ours = false;
        for (DType t : mine) ours |= d.type == static_cast<uint32_t>(t);
        if (!ours) continue;  // the K-quants: quants_kextra_test
        SCOPED_TRACE(d.tag + " " + d.tensor);
        const DType t = static_cast<DType>(d.type);
        ASSERT_EQ(row_bytes(t, d.n_per_row), d.row_bytes);
        // The rows are the fixture's own bytes.
        const Gguf g = read_gguf(fixture("tiny-" + d.tag + ".gguf"));
        const GgufTensor& gt = g.tensors.at(d.tensor);
        ASSERT_EQ(std::memcmp(gt.data + size_t{d.row0} * d.row_bytes, d.data.data(), d.data.size()), 0);
        std::vector<const KernelTable*> tables = simd_tables();
        tables.insert(tables.begin(), &ref());
        for (const KernelTable* k : tables) {
            SCOPED_TRACE(isa_name(k->isa));
            ASSERT_NE(k->dequantize_row[at(t)], nullptr);
            std::vector<float> y(d.n_per_row);
            for (uint32_t r = 0; r < d.n_rows; ++r) {
                k->dequantize_row[at(t)](d.data.data() + size_t{r} * d.row_bytes, y.data(), d.n_per_row);
                ASSERT_EQ(std::memcmp(y.data(), d.deq.data() + size_t{r} * d.n_per_row, y.size() * 4), 0) << "row " << r;
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, 14);  // 7 types x 2 tensors
}

// ------------------------------------------------------------------ round trip

// |x - deq(q(x))| <= half a step (+ the fp16 rounding of scale and minimum) in every block.
TEST(LegacyRoundTrip, ErrorWithinHalfStep) {
    const int64_t n = 4096;
    for (DType t : {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_1}) {
        SCOPED_TRACE(dtype_name(t));
        for (uint32_t seed = 0; seed < 3; ++seed) {
            auto x = gaussian(n, seed, seed == 2 ? 1e-3f : 1.0f);
            if (seed == 1) std::fill(x.begin(), x.begin() + 32, 0.5f);  // a constant block
            std::vector<uint8_t> q(row_bytes(t, n));
            ref().quantize_row[at(t)](x.data(), q.data(), n);
            std::vector<float> y(n);
            ref().dequantize_row[at(t)](q.data(), y.data(), n);
            for (int64_t b = 0; b < n / 32; ++b) {
                float lo = x[b * 32], hi = lo, amax = 0;
                for (int j = 0; j < 32; ++j) {
                    lo = std::min(lo, x[b * 32 + j]);
                    hi = std::max(hi, x[b * 32 + j]);
                    amax = std::max(amax, std::fabs(x[b * 32 + j]));
                }
                float step;
                switch (t) {
                    case DType::Q4_1: step = (hi - lo) / 15; break;
                    case DType::Q5_1: step = (hi - lo) / 31; break;
                    case DType::Q5_0: step = amax / 16; break;
                    default: step = amax / 127; break;
                }
                // fp16 d and m: relative 2^-11 each, times the largest level; plus the minimum's own rounding.
                const float tol = 0.5f * step + 32 * step * 1e-3f + std::fabs(lo) * 1e-3f + amax * 1e-3f + 1e-7f;
                for (int j = 0; j < 32; ++j) {
                    // Q5_0 maps the signed extreme to -16; the other side's top level is +15, so
                    // values beyond 15.5 steps on that side are clipped by up to one step (ggml's format).
                    const float xv = x[b * 32 + j];
                    const bool clipped = t == DType::Q5_0 && std::fabs(xv) > 15.5f * step;
                    ASSERT_LE(std::fabs(y[b * 32 + j] - xv), clipped ? step + tol - 0.5f * step : tol)
                        << "block " << b << " j " << j;
                }
            }
        }
    }
}

// Q8_1's s is d * sum(q), as ggml's quantize_row_q8_1_ref stores it.
TEST(LegacyRoundTrip, Q8_1SumIsDTimesSum) {
    auto x = gaussian(256, 9);
    std::vector<BlockQ8_1> q(8);
    ref().quantize_row[at(DType::Q8_1)](x.data(), q.data(), 256);
    for (const auto& b : q) {
        int s = 0;
        for (int8_t v : b.qs) s += v;
        // d is stored as fp16 of amax/127; s must be the fp16 of sum * (that d before rounding).
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[static_cast<size_t>(&b - q.data()) * 32 + j]));
        EXPECT_EQ(b.s, fp32_to_fp16(s * (amax / 127)));
    }
}

// Hand-built blocks decoded from an independent reading of the layouts.
TEST(LegacyLayout, HandBuiltBlocks) {
    {
        BlockQ4_1 b{};
        b.d = fp32_to_fp16(0.5f);
        b.m = fp32_to_fp16(-2.0f);
        for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
        float y[32];
        ref().dequantize_row[at(DType::Q4_1)](&b, y, 32);
        for (int j = 0; j < 16; ++j) {
            EXPECT_EQ(y[j], j * 0.5f - 2.0f);
            EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 2.0f);
        }
    }
    {
        BlockQ5_0 b{};
        b.d = fp32_to_fp16(0.25f);
        const uint32_t qh = 0x8000'0001u;  // element 0 and 31 have the 5th bit
        std::memcpy(b.qh, &qh, 4);
        for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(3 | (7 << 4));
        float y[32];
        ref().dequantize_row[at(DType::Q5_0)](&b, y, 32);
        EXPECT_EQ(y[0], (19 - 16) * 0.25f);
        EXPECT_EQ(y[1], (3 - 16) * 0.25f);
        EXPECT_EQ(y[16], (7 - 16) * 0.25f);
        EXPECT_EQ(y[31], (23 - 16) * 0.25f);
    }
    {
        BlockQ5_1 b{};
        b.d = fp32_to_fp16(1.0f);
        b.m = fp32_to_fp16(10.0f);
        const uint32_t qh = 1u << 17;
        std::memcpy(b.qh, &qh, 4);
        float y[32];
        ref().dequantize_row[at(DType::Q5_1)](&b, y, 32);
        EXPECT_EQ(y[17], 26.0f);
        EXPECT_EQ(y[16], 10.0f);
    }
}

// ------------------------------------------------------------------ SIMD vs reference

const DType kTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1};

struct DotCase {
    std::vector<uint8_t> w, x;
};

DotCase make_case(DType wt, int64_t n, uint32_t seed) {
    DotCase c;
    auto wf = gaussian(static_cast<size_t>(n), seed);
    auto xf = gaussian(static_cast<size_t>(n), seed + 1000);
    // Offset rows: the minimum terms of Q4_1 / Q5_1 matter.
    for (auto& v : wf) v += 0.3f;
    const DType xt = vec_dot_type(wt);
    c.w.resize(row_bytes(wt, n));
    c.x.resize(row_bytes(xt, n));
    ref().quantize_row[at(wt)](wf.data(), c.w.data(), n);
    ref().quantize_row[at(xt)](xf.data(), c.x.data(), n);
    return c;
}

double abs_dot(DType wt, const uint8_t* w, const uint8_t* x, int64_t n) {
    std::vector<float> wd(n), xd(n);
    ref().dequantize_row[at(wt)](w, wd.data(), n);
    ref().dequantize_row[at(vec_dot_type(wt))](x, xd.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(wd[i]) * xd[i]);
    return s;
}

TEST(LegacySimd, TablesHaveTheEntries) {
    const auto tables = simd_tables();
    ASSERT_FALSE(tables.empty());
    for (const KernelTable* t : tables) {
        SCOPED_TRACE(isa_name(t->isa));
        EXPECT_NE(t->quantize_row[at(DType::Q8_1)], nullptr);
        for (DType wt : kTypes) {
            EXPECT_NE(t->vec_dot[at(wt)], ref().vec_dot[at(wt)]) << dtype_name(wt) << ": still the scalar one";
            EXPECT_NE(t->gemm[at(wt)], ref().gemm[at(wt)]) << dtype_name(wt);
            EXPECT_NE(t->gemm_invariant[at(wt)], nullptr) << dtype_name(wt);
        }
    }
}

TEST(LegacySimd, Q8_1QuantizeBitIdentical) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (int64_t n : {32, 96, 4096}) {
            for (uint32_t seed = 0; seed < 3; ++seed) {
                auto x = gaussian(static_cast<size_t>(n), seed + 77, seed == 1 ? 1e-4f : 3.0f);
                if (seed == 2) {
                    std::fill(x.begin(), x.begin() + 32, 0.0f);  // all-zero block
                    x[40] = 127.5f / 127;                           // a .5 tie after scaling
                    x[41] = -x[40];
                }
                std::vector<uint8_t> a(row_bytes(DType::Q8_1, n)), b(a.size());
                ref().quantize_row[at(DType::Q8_1)](x.data(), a.data(), n);
                t->quantize_row[at(DType::Q8_1)](x.data(), b.data(), n);
                ASSERT_EQ(a, b) << "n=" << n << " seed=" << seed;
            }
        }
    }
}

TEST(LegacySimd, VecDotMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType wt : kTypes) {
            for (int64_t n : {32, 64, 96, 224, 4096}) {
                SCOPED_TRACE(std::string(dtype_name(wt)) + " n=" + std::to_string(n));
                for (uint32_t seed = 0; seed < 3; ++seed) {
                    DotCase c = make_case(wt, n, 100 * at(wt) + static_cast<uint32_t>(n) + seed);
                    const float r = ref().vec_dot[at(wt)](n, c.w.data(), c.x.data());
                    const float s = t->vec_dot[at(wt)](n, c.w.data(), c.x.data());
                    ASSERT_NEAR(s, r, 2e-6 * abs_dot(wt, c.w.data(), c.x.data(), n) + 1e-6);
                }
            }
        }
    }
}

// gemm and gemm_invariant against the reference for odd tile shapes, with padded strides; and
// gemm_invariant's outputs do not depend on nc (one row alone == the same row inside a batch).
TEST(LegacySimd, GemmMatchesReferenceAndInvariantIsInvariant) {
    const int64_t sizes[] = {1, 2, 3, 5, 7, 13};
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType wt : kTypes) {
            const DType xt = vec_dot_type(wt);
            for (int64_t n : {32, 160, 4096}) {
                const size_t w_stride = row_bytes(wt, n) + 40, x_stride = row_bytes(xt, n) + 24;
                for (int64_t nr : sizes) {
                    for (int64_t nc : sizes) {
                        if (n == 4096 && (nr > 5 || nc > 5)) continue;
                        SCOPED_TRACE(std::string(dtype_name(wt)) + " n=" + std::to_string(n) + " nr=" + std::to_string(nr) +
                                     " nc=" + std::to_string(nc));
                        std::vector<uint8_t> w(w_stride * nr), x(x_stride * nc);
                        for (int64_t r = 0; r < nr; ++r) {
                            DotCase c = make_case(wt, n, static_cast<uint32_t>(7 * r + 1));
                            std::memcpy(w.data() + r * w_stride, c.w.data(), c.w.size());
                        }
                        for (int64_t cc = 0; cc < nc; ++cc) {
                            DotCase c = make_case(wt, n, static_cast<uint32_t>(7 * cc + 5000));
                            std::memcpy(x.data() + cc * x_stride, c.x.data(), c.x.size());
                        }
                        const size_t ldo = static_cast<size_t>(nr) + 3;
                        for (GemmFn g : {t->gemm[at(wt)], t->gemm_invariant[at(wt)]}) {
                            std::vector<float> out(ldo * nc, -777.0f);
                            g(n, w.data(), w_stride, nr, x.data(), x_stride, nc, out.data(), ldo);
                            for (int64_t cc = 0; cc < nc; ++cc) {
                                const uint8_t* xr = x.data() + cc * x_stride;
                                for (int64_t r = 0; r < nr; ++r) {
                                    const uint8_t* wr = w.data() + r * w_stride;
                                    const float expect = ref().vec_dot[at(wt)](n, wr, xr);
                                    ASSERT_NEAR(out[cc * ldo + r], expect, 2e-6 * abs_dot(wt, wr, xr, n) + 1e-6)
                                        << "r=" << r << " c=" << cc;
                                }
                                for (size_t r = static_cast<size_t>(nr); r < ldo; ++r) ASSERT_EQ(out[cc * ldo + r], -777.0f);
                            }
                        }
                        // Invariance: every column computed alone equals the batched result bit for bit.
                        std::vector<float> all(ldo * nc), one(nr);
                        t->gemm_invariant[at(wt)](n, w.data(), w_stride, nr, x.data(), x_stride, nc, all.data(), ldo);
                        for (int64_t cc = 0; cc < nc; ++cc) {
                            t->gemm_invariant[at(wt)](n, w.data(), w_stride, nr, x.data() + cc * x_stride, x_stride, 1,
                                                      one.data(), ldo);
                            for (int64_t r = 0; r < nr; ++r) ASSERT_EQ(one[r], all[cc * ldo + r]) << "r=" << r << " c=" << cc;
                        }
                    }
                }
            }
        }
    }
}

// The interleaved 8-row layout: repacking round-trips, and every table's gemm_x8 (scalar
// included) matches the plain reference, row-invariantly (a column alone == inside a batch).
TEST(LegacySimd, X8LayoutAndGemmX8) {
    std::vector<const KernelTable*> tables = simd_tables();
    tables.insert(tables.begin(), &ref());
    int checked = 0;
    for (DType wt : kTypes) {
        const DType xt = vec_dot_type(wt);
        ASSERT_TRUE(x8_supported(wt));
        for (int64_t n : {32, 160, 32 * 300}) {
            const int64_t nr = 24;
            Tensor w = Tensor::empty(wt, {nr, n}, "w");
            for (int64_t r = 0; r < nr; ++r) {
                DotCase c = make_case(wt, n, static_cast<uint32_t>(11 * r + n));
                std::memcpy(w.row(r), c.w.data(), c.w.size());
            }
            ASSERT_TRUE(x8_can_repack(w));
            Tensor packed = repack_x8(w, false);
            ASSERT_EQ(packed.row_group(), 8);
            std::vector<uint8_t> row(w.row_stride());
            for (int64_t r = 0; r < nr; ++r) {
                x8_unpack_row(wt, static_cast<const uint8_t*>(packed.row(r - r % 8)), static_cast<int>(r % 8), n, row.data());
                ASSERT_EQ(std::memcmp(row.data(), w.row(r), row.size()), 0) << "row " << r;
            }
            for (int64_t nc : {1, 2, 5}) {
                const size_t x_stride = row_bytes(xt, n);
                std::vector<uint8_t> x(x_stride * nc);
                for (int64_t cc = 0; cc < nc; ++cc) {
                    DotCase c = make_case(wt, n, static_cast<uint32_t>(7 * cc + 900));
                    std::memcpy(x.data() + cc * x_stride, c.x.data(), c.x.size());
                }
                for (const KernelTable* t : tables) {
                    SCOPED_TRACE(std::string(isa_name(t->isa)) + " " + dtype_name(wt) + " n=" + std::to_string(n) +
                                 " nc=" + std::to_string(nc));
                    ASSERT_NE(t->gemm_x8[at(wt)], nullptr);
                    const size_t ldo = nr + 1;
                    std::vector<float> out(ldo * nc, -777.0f), one(ldo, -777.0f);
                    t->gemm_x8[at(wt)](n, packed.data(), packed.row_stride(), nr, x.data(), x_stride, nc, out.data(), ldo);
                    for (int64_t cc = 0; cc < nc; ++cc) {
                        const uint8_t* xr = x.data() + cc * x_stride;
                        t->gemm_x8[at(wt)](n, packed.data(), packed.row_stride(), nr, xr, x_stride, 1, one.data(), ldo);
                        for (int64_t r = 0; r < nr; ++r) {
                            const auto* wr = static_cast<const uint8_t*>(w.row(r));
                            const float expect = ref().vec_dot[at(wt)](n, wr, xr);
                            if (t == &ref()) {
                                ASSERT_EQ(out[cc * ldo + r], expect) << "r=" << r;
                            } else {
                                ASSERT_NEAR(out[cc * ldo + r], expect, 2e-6 * abs_dot(wt, wr, xr, n) + 1e-6) << "r=" << r;
                            }
                            ASSERT_EQ(one[r], out[cc * ldo + r]) << "not row-invariant, r=" << r;
                        }
                        ASSERT_EQ(out[cc * ldo + nr], -777.0f);
                    }
                    ++checked;
                }
            }
        }
    }
    EXPECT_GE(checked, 3 * 3 * 3 * 2);
}

}  // namespace
}  // namespace llmforge::kernels
