// gemm_bf16 (kernels/cpu/gemm_bf16.h): every path this CPU has against the unpacked scalar
// reference (bf16 products summed in f32, k ascending) and against a double-precision sum of the
// same exact products; odd shapes (not multiples of the 16/32 tiles), strides, accumulate on/off,
// 1 and 2 threads; the AVX-512 f32 -> bf16 rounding against fp32_to_bf16 bit for bit; bad input.
#include "kernels/cpu/gemm_bf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/x86/amx/gemm_bf16_x86.h"
#if defined(LLMFORGE_HAVE_AVX512_EMU)
#include "kernels/avx512_emu.h"
#endif

namespace {

using namespace llmforge;
using namespace llmforge::kernels;

std::vector<float> gaussian(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

float round_bf16(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }

struct Shape {
    int64_t n, M, K;  // rows of A, rows of W (outputs), columns of W (inputs)
};

// Shapes around the tile sizes (16 rows/outputs, 32 inputs, 32x32 blocks) and past the AMX
// kernel's 1024-input chunk.
const Shape kShapes[] = {{1, 1, 1},     {5, 7, 3},     {16, 16, 32},   {17, 33, 31},  {33, 47, 65},
                         {64, 64, 64},  {70, 130, 130}, {31, 100, 257}, {40, 96, 1100}, {3, 200, 2050},
                         {129, 65, 96},  {200, 40, 200}};  // the last: the 2-thread split goes by rows

const Bf16GemmPath kPaths[] = {Bf16GemmPath::kScalar, Bf16GemmPath::kAvx512Bf16, Bf16GemmPath::kAmx};

struct Case {
    Shape s;
    bool forward;
    int64_t bm, bk;  // B (bm, bk)
    int64_t lda, ldc;
    std::vector<float> a, w, c0;
};

Case make_case(const Shape& s, bool forward, uint32_t seed) {
    Case cs{s, forward, forward ? s.M : s.K, forward ? s.K : s.M, 0, 0, {}, {}, {}};
    cs.lda = cs.bk + 3;
    cs.ldc = cs.bm + 5;
    cs.a = gaussian(static_cast<size_t>(s.n * cs.lda), seed);
    cs.w = gaussian(static_cast<size_t>(s.M * s.K), seed + 1);
    cs.c0 = gaussian(static_cast<size_t>(s.n * cs.ldc), seed + 2);
    return cs;
}

double b_at(const Case& cs, int64_t j, int64_t k) {
    return cs.forward ? cs.w[j * cs.s.K + k] : cs.w[k * cs.s.K + j];
}

// Checks c against the double-precision sum of the exact bf16 products: only the order of the f32
// additions may differ, so the error is within (K + 1) half-ulps of the running magnitudes.
void expect_close_to_exact(const Case& cs, const std::vector<float>& c, bool accumulate, const char* what) {
    int bad = 0;
    for (int64_t i = 0; i < cs.s.n; ++i)
        for (int64_t j = 0; j < cs.bm; ++j) {
            double s = accumulate ? cs.c0[i * cs.ldc + j] : 0.0, mag = std::fabs(s);
            for (int64_t k = 0; k < cs.bk; ++k) {
                const double p = static_cast<double>(round_bf16(cs.a[i * cs.lda + k])) *
                                 static_cast<double>(round_bf16(static_cast<float>(b_at(cs, j, k))));
                s += p;
                mag += std::fabs(p);
            }
            const double tol = static_cast<double>(cs.bk + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
            const double got = c[i * cs.ldc + j];
            if (!(std::fabs(got - s) <= tol) && ++bad <= 5)
                ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << got << ", exact " << s << ", tol " << tol;
        }
    EXPECT_EQ(bad, 0) << what;
}

std::string describe(const Case& cs, Bf16GemmPath p, bool acc, int threads) {
    return std::string(bf16_gemm_path_name(p)) + (cs.forward ? " fwd" : " bwd") + " n=" + std::to_string(cs.s.n) +
           " M=" + std::to_string(cs.s.M) + " K=" + std::to_string(cs.s.K) + (acc ? " acc" : "") + " threads=" +
           std::to_string(threads);
}

TEST(GemmBf16, ReportsPaths) {
    for (Bf16GemmPath p : kPaths)
        std::printf("bf16 gemm path %-10s %s\n", bf16_gemm_path_name(p),
                    bf16_gemm_path_supported(p) ? "supported" : "not supported on this CPU (its tests skip)");
    std::printf("best: %s\n", bf16_gemm_path_name(bf16_gemm_best_path()));
    EXPECT_TRUE(bf16_gemm_path_supported(Bf16GemmPath::kScalar));
}

// f32 values for the rounding checks: random bits with NaNs, infinities, zeros, denormals,
// the largest finite values and rounding ties mixed in.
std::vector<float> rounding_inputs(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                 0xffa00000u, 0x3f808000u, 0x3f818000u, 0x3f808001u, 0x7f7fffffu, 0x00800000u,
                                 0x007fffffu, 0x80000001u, 0x3f7fffffu, 0x477fff80u};
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) {
        uint32_t u = rng();
        if (i % 7 == 0) u = specials[(i / 7) % (sizeof(specials) / 4)];
        if (i % 11 == 0) u = (u & 0xffff0000u) | 0x8000u;  // a tie
        std::memcpy(&a[i], &u, 4);
    }
    return a;
}

using PackAFn = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, uint16_t*, int64_t, int64_t);

// The packed-A layout of A (n_rows x K, row stride lda) through `pack`, checked element by element
// (padding zeros included) against fp32_to_bf16: normals, zeros, infinities, NaNs, ties and
// denormals, bit for bit. transposed: A = Gᵀ with G (K x n_rows), the weight-gradient packer.
void check_pack_a(PackAFn pack, bool transposed, const char* what) {
    const int64_t n_rows = 37, K = 1000, kb = (K + 31) / 32, n_p = (n_rows + 31) / 32;
    const int64_t ld = (transposed ? n_rows : K) + 3;
    const std::vector<float> a = rounding_inputs(static_cast<size_t>((transposed ? K : n_rows) * ld), 7);
    std::vector<uint16_t> ap(static_cast<size_t>(2 * n_p * kb * 512), 0xdead);
    pack(a.data(), ld, n_rows, K, kb, ap.data(), 0, n_p);
    int64_t mismatches = 0;
    for (int64_t r = 0; r < 32 * n_p; ++r)
        for (int64_t k = 0; k < 32 * kb; ++k) {
            const bool in = r < n_rows && k < K;
            const uint16_t want = in ? fp32_to_bf16(transposed ? a[k * ld + r] : a[r * ld + k]) : 0;
            const uint16_t got = ap[((r / 16) * kb + k / 32) * 512 + (r % 16) * 32 + k % 32];
            if (got != want && ++mismatches <= 5)
                ADD_FAILURE() << what << std::hex << ": row " << std::dec << r << " k " << k << std::hex << " got " << got
                              << ", fp32_to_bf16 " << want;
        }
    EXPECT_EQ(mismatches, 0) << what;
}

// The AVX-512 packers of A round as fp32_to_bf16 (the trainer's round_to_precision) bit for bit,
// as the scalar packer does, so every path multiplies the same bf16 values.
TEST(GemmBf16, Avx512PackersRoundAsFp32ToBf16) {
    if (!bf16_gemm_path_supported(Bf16GemmPath::kAvx512Bf16)) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
    check_pack_a(x86::bf16_pack_a_avx512, false, "pack_a");
    check_pack_a(x86::bf16_pack_at_avx512, true, "pack_at");
}

// The scalar path is the reference's order, so it must match bit for bit; AMX and AVX512-BF16 add
// the same exact products in their instructions' orders (gemm_bf16.h): within f32 rounding of the
// exact sum. Every path gives the same bits with 1 and 2 threads, and leaves C's padding alone.
TEST(GemmBf16, PathsMatchReference) {
    ThreadPool pool1(1), pool2(2);
    uint32_t seed = 100;
    for (const Shape& s : kShapes)
        for (bool forward : {true, false}) {
            const Case cs = make_case(s, forward, seed += 3);
            for (bool acc : {false, true}) {
                std::vector<float> ref = cs.c0;
                gemm_bf16_ref(cs.a.data(), cs.lda, s.n, cs.w.data(), s.K, s.M, s.K, forward, ref.data(), cs.ldc, acc);
                expect_close_to_exact(cs, ref, acc, "reference");
                const PackedBf16 b = pack_bf16(cs.w.data(), s.K, s.M, s.K, forward);
                ASSERT_EQ(b.M, cs.bm);
                ASSERT_EQ(b.K, cs.bk);
                for (Bf16GemmPath p : kPaths) {
                    if (!bf16_gemm_path_supported(p)) continue;
                    std::vector<float> first;
                    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool1, &pool2}) {
                        const int threads = pool == nullptr ? 0 : pool->size();
                        const std::string what = describe(cs, p, acc, threads);
                        std::vector<float> c = cs.c0;
                        gemm_bf16(cs.a.data(), cs.lda, s.n, b, c.data(), cs.ldc, acc, pool, p);
                        for (int64_t i = 0; i < s.n; ++i)
                            for (int64_t j = cs.bm; j < cs.ldc; ++j)
                                ASSERT_EQ(c[i * cs.ldc + j], cs.c0[i * cs.ldc + j]) << what << ": padding written";
                        if (p == Bf16GemmPath::kScalar) {
                            ASSERT_EQ(0, std::memcmp(c.data(), ref.data(), c.size() * 4)) << what << ": not bit-identical";
                        } else {
                            expect_close_to_exact(cs, c, acc, what.c_str());
                        }
                        if (first.empty()) {
                            first = c;
                        } else {
                            ASSERT_EQ(0, std::memcmp(c.data(), first.data(), c.size() * 4))
                                << what << ": depends on the thread count";
                        }
                    }
                }
            }
        }
}

// A bias (the encoders' linear biases, added in the kernels while a tile is in cache) gives, on
// every path, pool and accumulate mode, the bits of the same product without it followed by a
// separate f32 addition of the bias; padding columns stay untouched. An activation (the encoder
// MLP's fused GELU, every kind) then gives the bits of act_rows over the finished outputs.
TEST(GemmBf16, BiasAndActivationAreTheSeparatePasses) {
    ThreadPool pool2(2);
    uint32_t seed = 3300;
    for (const Shape& s : kShapes) {
        const Case cs = make_case(s, true, seed += 3);
        const PackedBf16 b = pack_bf16(cs.w.data(), s.K, s.M, s.K, true);
        const std::vector<float> bias = gaussian(static_cast<size_t>(s.M), seed + 7);
        for (Bf16GemmPath p : kPaths) {
            if (!bf16_gemm_path_supported(p)) continue;
            for (bool acc : {false, true})
                for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2})
                    for (int act = -1; act < 4; ++act)
                        for (const float* bp : {bias.data(), static_cast<const float*>(nullptr)}) {
                            if (bp == nullptr && act < 0) continue;
                            const std::string what = describe(cs, p, acc, pool == nullptr ? 0 : 2) +
                                                     (bp ? " bias" : "") + " act " + std::to_string(act);
                            std::vector<float> want = cs.c0, got = cs.c0;
                            gemm_bf16(cs.a.data(), cs.lda, s.n, b, want.data(), cs.ldc, acc, pool, p);
                            for (int64_t i = 0; i < s.n; ++i) {
                                float* row = &want[i * cs.ldc];
                                for (int64_t j = 0; j < s.M && bp != nullptr; ++j) row[j] += bp[j];
                                if (act >= 0) act_rows(act, row, row, s.M);
                            }
                            gemm_bf16(cs.a.data(), cs.lda, s.n, b, got.data(), cs.ldc, acc, pool, p, bp, act);
                            ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << what;
                        }
        }
#if defined(LLMFORGE_HAVE_AVX512_EMU)
        if (!avx512_emulation_runs_here()) continue;
        const int64_t n_p = (s.n + 31) / 32, n_q = b.jb_count / 2;
        std::vector<uint16_t> ap(static_cast<size_t>(2 * n_p * b.kb_count * 512));
        x86::bf16_pack_a_avx512_emulated(cs.a.data(), cs.lda, s.n, b.K, b.kb_count, ap.data(), 0, n_p);
        std::vector<float> want = cs.c0, got = cs.c0;
        x86::bf16_gemm_avx512_emulated(ap.data(), b.data.get(), b.kb_count, s.n, b.M, want.data(), cs.ldc, false, 0,
                                       n_p, 0, n_q, nullptr);
        for (int64_t i = 0; i < s.n; ++i)
            for (int64_t j = 0; j < s.M; ++j) want[i * cs.ldc + j] += bias[j];
        x86::bf16_gemm_avx512_emulated(ap.data(), b.data.get(), b.kb_count, s.n, b.M, got.data(), cs.ldc, false, 0,
                                       n_p, 0, n_q, bias.data());
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << "emulated avx512bf16 bias";
#endif
    }
}

// Several products of one A (q, k, v) packed once give the bits of separate calls, each with
// its own width and bias (or none), at 1 and 2 threads; a B of another inner size is refused.
TEST(GemmBf16, MultiIsSeparateCalls) {
    ThreadPool pool2(2);
    for (const int64_t n : {1, 37, 197, 300}) {
        const int64_t K = 96, widths[3] = {64, 40, 130};
        const std::vector<float> a = gaussian(static_cast<size_t>(n * K), 71);
        std::vector<PackedBf16> bs;
        std::vector<std::vector<float>> bias;
        for (int i = 0; i < 3; ++i) {
            const std::vector<float> w = gaussian(static_cast<size_t>(widths[i] * K), 80 + i);
            bs.push_back(pack_bf16(w.data(), K, widths[i], K, true));
            bias.push_back(gaussian(static_cast<size_t>(widths[i]), 90 + i));
        }
        for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
            std::vector<std::vector<float>> want(3), got(3);
            const PackedBf16* bp[3] = {&bs[0], &bs[1], &bs[2]};
            float* cp[3];
            const float* biases[3] = {bias[0].data(), nullptr, bias[2].data()};
            for (int i = 0; i < 3; ++i) {
                want[i].assign(static_cast<size_t>(n * widths[i]), 0.0f);
                got[i].assign(want[i].size(), 1.0f);
                cp[i] = got[i].data();
                gemm_bf16(a.data(), K, n, bs[i], want[i].data(), widths[i], false, pool, biases[i]);
            }
            gemm_bf16_multi(a.data(), K, n, 3, bp, cp, biases, pool);
            for (int i = 0; i < 3; ++i)
                ASSERT_EQ(0, std::memcmp(got[i].data(), want[i].data(), want[i].size() * 4)) << "n=" << n << " product " << i;
        }
    }
    const std::vector<float> w(64 * 32, 1.0f), a(4 * 64, 1.0f);
    const PackedBf16 b64 = pack_bf16(w.data(), 64, 32, 64, true), b32 = pack_bf16(w.data(), 32, 64, 32, true);
    std::vector<float> c0(4 * 64), c1(4 * 64);
    const PackedBf16* bp[2] = {&b64, &b32};
    float* cp[2] = {c0.data(), c1.data()};
    EXPECT_THROW(gemm_bf16_multi(a.data(), 64, 4, 2, bp, cp, nullptr, nullptr), std::invalid_argument);
}

// An MLP through packed rows (gemm_bf16_to_rows, then gemm_bf16 on them) gives the bits of the
// f32 route (up-projection with its activation into C, down-projection packing C): the hidden
// values are rounded to bf16 either way. Widths around the tiles, an inner size past the AMX
// kernel's one pass (the f32 fallback), accumulate, 1 and 2 threads.
TEST(GemmBf16, PackedRowsAreTheF32Route) {
    ThreadPool pool2(2);
    for (const int64_t n : {1, 37, 197, 300})
        for (const int64_t K : {96, 1100})
            for (const int64_t F : {64, 130}) {
                const int64_t M = 48;
                const std::vector<float> a = gaussian(static_cast<size_t>(n * K), 11), w1 = gaussian(static_cast<size_t>(F * K), 12);
                const std::vector<float> w2 = gaussian(static_cast<size_t>(M * F), 13), b1 = gaussian(static_cast<size_t>(F), 14);
                const std::vector<float> b2 = gaussian(static_cast<size_t>(M), 15), c0 = gaussian(static_cast<size_t>(n * M), 16);
                const PackedBf16 up = pack_bf16(w1.data(), K, F, K, true), down = pack_bf16(w2.data(), F, M, F, true);
                for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
                    std::vector<float> hidden(static_cast<size_t>(n * F)), want = c0, got = c0;
                    gemm_bf16(a.data(), K, n, up, hidden.data(), F, false, pool, b1.data(), 0);
                    gemm_bf16(hidden.data(), F, n, down, want.data(), M, true, pool, b2.data());
                    PackedRowsBf16 rows;
                    gemm_bf16_to_rows(a.data(), K, n, up, rows, pool, b1.data(), 0);
                    gemm_bf16(rows, down, got.data(), M, true, pool, b2.data());
                    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4))
                        << "n=" << n << " K=" << K << " F=" << F << (pool ? " 2 threads" : "");
                }
            }
}

// The pool-split (and, with AVX512-BF16, vectorised) packer writes the scalar packer's bytes, both
// orientations, odd shapes, strides, NaNs, ties and denormals included (both round as fp32_to_bf16).
TEST(GemmBf16, FastPackMatchesScalarPack) {
    ThreadPool pool2(2);
    uint32_t seed = 900;
    for (const Shape& s : kShapes)
        for (bool fwd : {true, false}) {
            const int64_t ldw = s.K + 3;
            auto w = gaussian(static_cast<size_t>(s.M * ldw), seed += 7);
            const uint32_t specials[] = {0x7fc00000u, 0x7f800001u, 0x3f808000u, 0x3f818000u, 0x007fffffu, 0x80000001u};
            for (size_t i = 0; i < w.size(); i += 5) std::memcpy(&w[i], &specials[(i / 5) % 6], 4);
            const PackedBf16 ref = pack_bf16_scalar(w.data(), ldw, s.M, s.K, fwd);
            for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
                const PackedBf16 got = pack_bf16(w.data(), ldw, s.M, s.K, fwd, pool);
                ASSERT_EQ(got.bytes(), ref.bytes());
                EXPECT_EQ(0, std::memcmp(got.data.get(), ref.data.get(), ref.bytes()))
                    << (fwd ? "fwd" : "bwd") << " M=" << s.M << " K=" << s.K << (pool ? " pool" : "");
            }
        }
}

// The weight-gradient product bf16(G)ᵀ · bf16(X): scalar bit for bit with its reference, the SIMD
// paths within f32 rounding of the exact sum, the same bits with 1 and 2 threads, padding untouched.
TEST(GemmBf16, TransposedProductMatchesReference) {
    ThreadPool pool1(1), pool2(2);
    uint32_t seed = 500;
    for (const Shape& s : kShapes) {
        // G (N, M), X (N, K), C (M, K): N = s.n tokens summed over.
        const int64_t N = s.K, M = s.n, K = s.M;  // reuse the shapes with the summed dimension varied
        const int64_t ldg = M + 2, ldx = K + 1, ldc = K + 4;
        const auto g = gaussian(static_cast<size_t>(N * ldg), seed += 5);
        const auto x = gaussian(static_cast<size_t>(N * ldx), seed + 1);
        const auto c0 = gaussian(static_cast<size_t>(M * ldc), seed + 2);
        for (bool acc : {false, true}) {
            std::vector<float> ref = c0;
            gemm_bf16_tn_ref(g.data(), ldg, x.data(), ldx, N, M, K, ref.data(), ldc, acc);
            for (Bf16GemmPath p : kPaths) {
                if (!bf16_gemm_path_supported(p)) continue;
                std::vector<float> first;
                for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool1, &pool2}) {
                    const std::string what = std::string(bf16_gemm_path_name(p)) + " N=" + std::to_string(N) +
                                             " M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                             (acc ? " acc" : "") + (pool ? " pool" + std::to_string(pool->size()) : "");
                    std::vector<float> c = c0;
                    gemm_bf16_tn(g.data(), ldg, x.data(), ldx, N, M, K, c.data(), ldc, acc, pool, p);
                    int bad = 0;
                    for (int64_t i = 0; i < M; ++i) {
                        for (int64_t j = K; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]) << what << ": padding";
                        for (int64_t j = 0; j < K; ++j) {
                            double e = acc ? c0[i * ldc + j] : 0.0, mag = std::fabs(e);
                            for (int64_t n = 0; n < N; ++n) {
                                const double pr = static_cast<double>(round_bf16(g[n * ldg + i])) * round_bf16(x[n * ldx + j]);
                                e += pr;
                                mag += std::fabs(pr);
                            }
                            const double tol = static_cast<double>(N + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
                            const float got = c[i * ldc + j];
                            if (p == Bf16GemmPath::kScalar) {
                                if (std::memcmp(&got, &ref[i * ldc + j], 4) != 0 && ++bad <= 3)
                                    ADD_FAILURE() << what << ": C[" << i << "][" << j << "] " << got << " vs ref " << ref[i * ldc + j];
                            } else if (!(std::fabs(got - e) <= tol) && ++bad <= 3) {
                                ADD_FAILURE() << what << ": C[" << i << "][" << j << "] " << got << ", exact " << e;
                            }
                        }
                    }
                    EXPECT_EQ(bad, 0) << what;
                    if (first.empty()) first = c;
                    else ASSERT_EQ(0, std::memcmp(c.data(), first.data(), c.size() * 4)) << what << ": thread count";
                }
            }
        }
    }
    std::vector<float> c(4, 0.0f);
    const float z = 0.0f;
    EXPECT_THROW(gemm_bf16_tn(&z, 1, &z, 2, 1, 2, 2, c.data(), 2, false, nullptr), std::invalid_argument);  // ldg < M
    EXPECT_THROW(gemm_bf16_tn(&z, 2, &z, 2, 1, 2, 2, c.data(), 1, false, nullptr), std::invalid_argument);  // ldc < K
}

// A taken in row blocks (a bounded scratch; 64 MiB by default) gives the bits of one block: each
// output row is one kernel call's either way. Budgets of one row pair and of three pairs, against
// the default, for both products, every path, with and without the pool.
TEST(GemmBf16, RowBlocksOfAGiveTheSameBits) {
    ThreadPool pool2(2);
    const Shape shapes[] = {{200, 40, 200}, {129, 65, 96}, {70, 130, 130}, {33, 47, 1100}};
    uint32_t seed = 1300;
    for (const Shape& s : shapes)
        for (Bf16GemmPath p : kPaths) {
            if (!bf16_gemm_path_supported(p)) continue;
            for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
                const Case cs = make_case(s, true, seed += 3);
                const PackedBf16 b = pack_bf16(cs.w.data(), s.K, s.M, s.K, true);
                // the weight gradient with the summed dimension s.K: G (K, n), X (K, M), C (n, M)
                const auto g = gaussian(static_cast<size_t>(s.K * s.n), seed + 1);
                const auto x = gaussian(static_cast<size_t>(s.K * s.M), seed + 2);
                auto run = [&](int64_t budget, std::vector<float>& c, std::vector<float>& ct) {
                    const int64_t old = gemm_bf16_set_max_packed_a(budget);
                    c = cs.c0;
                    gemm_bf16(cs.a.data(), cs.lda, s.n, b, c.data(), cs.ldc, true, pool, p);
                    ct.assign(static_cast<size_t>(s.n * s.M), 0.5f);
                    gemm_bf16_tn(g.data(), s.n, x.data(), s.M, s.K, s.n, s.M, ct.data(), s.M, true, pool, p);
                    gemm_bf16_set_max_packed_a(old);
                };
                std::vector<float> c_one, ct_one;
                run(int64_t{64} << 20, c_one, ct_one);
                const int64_t pair_bytes = 2 * 2 * ((s.K + 31) / 32) * 512;  // the forward's packed row pair
                for (int64_t budget : {int64_t{1}, 3 * pair_bytes}) {
                    std::vector<float> c, ct;
                    run(budget, c, ct);
                    const std::string what = std::string(bf16_gemm_path_name(p)) + " n=" + std::to_string(s.n) +
                                             " K=" + std::to_string(s.K) + " budget=" + std::to_string(budget) +
                                             (pool ? " pool" : "");
                    EXPECT_EQ(0, std::memcmp(c.data(), c_one.data(), c.size() * 4)) << what << ": gemm_bf16";
                    EXPECT_EQ(0, std::memcmp(ct.data(), ct_one.data(), ct.size() * 4)) << what << ": gemm_bf16_tn";
                }
            }
        }
}

TEST(GemmBf16, Bf16WeightPacksLikeRoundedF32) {
    const int64_t M = 37, K = 45;
    const auto w = gaussian(static_cast<size_t>(M * K), 5);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = fp32_to_bf16(w[i]);
    for (bool fwd : {true, false}) {
        const PackedBf16 a = pack_bf16(w.data(), K, M, K, fwd), b = pack_bf16(wb.data(), K, M, K, fwd);
        ASSERT_EQ(a.bytes(), b.bytes());
        EXPECT_EQ(0, std::memcmp(a.data.get(), b.data.get(), a.bytes()));
        EXPECT_EQ(a.jb_count % 2, 0);
    }
}

TEST(GemmBf16, EmptyInnerDimension) {
    const float w = 0.0f;
    const PackedBf16 b = pack_bf16(&w, 0, 3, 0, true);  // W (3, 0)
    for (Bf16GemmPath p : kPaths) {
        if (!bf16_gemm_path_supported(p)) continue;
        std::vector<float> c = {1, 2, 3, 4, 5, 6};
        const float a = 0.0f;
        gemm_bf16(&a, 0, 2, b, c.data(), 3, true, nullptr, p);
        EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4, 5, 6})) << bf16_gemm_path_name(p);
        gemm_bf16(&a, 0, 2, b, c.data(), 3, false, nullptr, p);
        EXPECT_EQ(c, (std::vector<float>(6, 0.0f))) << bf16_gemm_path_name(p);
    }
}

TEST(GemmBf16, RejectsBadInput) {
    std::vector<float> w(12, 1.0f), a(12, 1.0f), c(12, 0.0f);
    EXPECT_THROW(pack_bf16(w.data(), 2, 3, 4, true), std::invalid_argument);  // ldw < K
    EXPECT_THROW(pack_bf16(w.data(), 4, -1, 4, true), std::invalid_argument);
    const PackedBf16 b = pack_bf16(w.data(), 4, 3, 4, true);  // B (3, 4)
    EXPECT_THROW(gemm_bf16(a.data(), 3, 2, b, c.data(), 3, false, nullptr), std::invalid_argument);  // lda < K
    EXPECT_THROW(gemm_bf16(a.data(), 4, 2, b, c.data(), 2, false, nullptr), std::invalid_argument);  // ldc < M
    for (Bf16GemmPath p : kPaths) {
        if (!bf16_gemm_path_supported(p)) {
            EXPECT_THROW(gemm_bf16(a.data(), 4, 2, b, c.data(), 3, false, nullptr, p), std::invalid_argument);
        }
    }
    EXPECT_THROW(gemm_bf16(a.data(), 4, 2, b, c.data(), 3, false, nullptr, nullptr, 4), std::invalid_argument);  // act
}

}  // namespace

namespace {

// Training-sized products (a 110M layer's FFN: 1024 tokens, 2048 x 768) give the same bits on
// every run with a 2-thread pool, forward, dx and dw alike (resumed training relies on it).
TEST(GemmBf16, RepeatableAtTrainingShapes) {
    ThreadPool pool(2);
    const int64_t N = 1024, M = 2048, K = 768;
    const auto x = gaussian(static_cast<size_t>(N * K), 71), w = gaussian(static_cast<size_t>(M * K), 72);
    const auto dy = gaussian(static_cast<size_t>(N * M), 73);
    for (Bf16GemmPath p : kPaths) {
        if (p == Bf16GemmPath::kScalar || !bf16_gemm_path_supported(p)) continue;
        std::vector<float> y0, dx0, dw0;
        for (int rep = 0; rep < 4; ++rep) {
            std::vector<float> y(static_cast<size_t>(N * M)), dx(static_cast<size_t>(N * K), 0.5f),
                dw(static_cast<size_t>(M * K), 0.25f);
            const PackedBf16 fwd = pack_bf16(w.data(), K, M, K, true, &pool), bwd = pack_bf16(w.data(), K, M, K, false, &pool);
            gemm_bf16(x.data(), K, N, fwd, y.data(), M, false, &pool, p);
            gemm_bf16(dy.data(), M, N, bwd, dx.data(), K, true, &pool, p);
            gemm_bf16_tn(dy.data(), M, x.data(), K, N, M, K, dw.data(), K, true, &pool, p);
            if (rep == 0) {
                y0 = y, dx0 = dx, dw0 = dw;
                continue;
            }
            EXPECT_EQ(0, std::memcmp(y.data(), y0.data(), y.size() * 4)) << bf16_gemm_path_name(p) << " y, run " << rep;
            EXPECT_EQ(0, std::memcmp(dx.data(), dx0.data(), dx.size() * 4)) << bf16_gemm_path_name(p) << " dx, run " << rep;
            EXPECT_EQ(0, std::memcmp(dw.data(), dw0.data(), dw.size() * 4)) << bf16_gemm_path_name(p) << " dw, run " << rep;
        }
    }
}

}  // namespace

// The AVX512-BF16 GEMM and the AVX-512 packers compiled over SIMDe (tests/kernels/avx512_emu_bf16.cpp,
// VDPBF16PS emulated): every CPU with AVX2 checks that code, whatever the machine running CI has.
#if defined(LLMFORGE_HAVE_AVX512_EMU)
namespace {

TEST(GemmBf16Emulated, PackersMatchScalar) {
    if (!avx512_emulation_runs_here()) GTEST_SKIP() << "no AVX2/FMA/F16C: the emulation runs on AVX2";
    check_pack_a(x86::bf16_pack_a_avx512_emulated, false, "emulated pack_a");
    check_pack_a(x86::bf16_pack_at_avx512_emulated, true, "emulated pack_at");
    uint32_t seed = 1900;
    for (const Shape& s : kShapes)
        for (bool fwd : {true, false}) {
            const int64_t ldw = s.K + 3;
            const std::vector<float> w = rounding_inputs(static_cast<size_t>(s.M * ldw), seed += 7);
            const PackedBf16 ref = pack_bf16_scalar(w.data(), ldw, s.M, s.K, fwd);
            std::vector<uint16_t> got(ref.bytes() / 2, 0xdead);
            x86::bf16_pack_b_avx512_emulated(w.data(), ldw, fwd, ref.M, ref.K, ref.kb_count, got.data(), 0, ref.jb_count);
            EXPECT_EQ(0, std::memcmp(got.data(), ref.data.get(), ref.bytes()))
                << (fwd ? "fwd" : "bwd") << " M=" << s.M << " K=" << s.K;
        }
    const std::vector<float> x = rounding_inputs(1003, 3);
    std::vector<float> y(x.size());
    x86::round_bf16_avx512_emulated(x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
        const float want = round_bf16(x[i]);
        ASSERT_EQ(0, std::memcmp(&y[i], &want, 4)) << "round_bf16 of element " << i;
    }
}

// C = [C +] A · Bᵀ through the emulated kernel over operands packed as gemm_bf16 packs them: within
// f32 rounding of the exact sum, the padding of C untouched, one call or split by row and column pairs.
TEST(GemmBf16Emulated, ProductMatchesExact) {
    if (!avx512_emulation_runs_here()) GTEST_SKIP() << "no AVX2/FMA/F16C: the emulation runs on AVX2";
    uint32_t seed = 2100;
    for (const Shape& s : kShapes)
        for (bool forward : {true, false}) {
            const Case cs = make_case(s, forward, seed += 3);
            const PackedBf16 b = pack_bf16_scalar(cs.w.data(), s.K, s.M, s.K, forward);
            const int64_t n_p = (s.n + 31) / 32, n_q = b.jb_count / 2;
            std::vector<uint16_t> ap(static_cast<size_t>(2 * n_p * b.kb_count * 512));
            x86::bf16_pack_a_avx512_emulated(cs.a.data(), cs.lda, s.n, b.K, b.kb_count, ap.data(), 0, n_p);
            for (bool acc : {false, true}) {
                const std::string what = describe(cs, Bf16GemmPath::kAvx512Bf16, acc, 1) + " (emulated)";
                std::vector<float> c = cs.c0, split = cs.c0;
                x86::bf16_gemm_avx512_emulated(ap.data(), b.data.get(), b.kb_count, s.n, b.M, c.data(), cs.ldc, acc, 0,
                                               n_p, 0, n_q, nullptr);
                for (int64_t p = 0; p < n_p; ++p)
                    for (int64_t q = 0; q < n_q; ++q)
                        x86::bf16_gemm_avx512_emulated(ap.data(), b.data.get(), b.kb_count, s.n, b.M, split.data(),
                                                       cs.ldc, acc, p, p + 1, q, q + 1, nullptr);
                for (int64_t i = 0; i < s.n; ++i)
                    for (int64_t j = cs.bm; j < cs.ldc; ++j)
                        ASSERT_EQ(c[i * cs.ldc + j], cs.c0[i * cs.ldc + j]) << what << ": padding written";
                expect_close_to_exact(cs, c, acc, what.c_str());
                EXPECT_EQ(0, std::memcmp(c.data(), split.data(), c.size() * 4)) << what << ": depends on the split";
            }
        }
}

}  // namespace
#endif

// attention_bf16 (one (sequence, head) of an encoder's bf16 attention) against float64: S from the
// bf16-rounded Q and K, scale and the additive terms, softmax over the first L keys, O = P · bf16(V).
// P is rounded to bf16 on its way into the second product, so an output may differ from the
// float64 one by 2^-9 relative per weight: within 2^-8 · max |V| over the row's keys.
namespace {

struct AttnCase {
    int64_t T, Tk, L, D, Dv;
    bool adds;
};

double attn_max_error(const AttnCase& c, Bf16GemmPath path, uint32_t seed) {
    const int64_t H = 3, ldq = H * c.D + 1, ldk = H * c.D + 2, ldv = H * c.Dv + 3, ldo = H * c.Dv + 5;
    std::vector<float> q = gaussian(static_cast<size_t>(c.T * ldq), seed);
    std::vector<float> k = gaussian(static_cast<size_t>(c.Tk * ldk), seed + 1);
    std::vector<float> v = gaussian(static_cast<size_t>(c.Tk * ldv), seed + 2);
    std::vector<float> add0 = gaussian(static_cast<size_t>(c.T * c.Tk), seed + 3), add1(add0.size());
    for (size_t i = 0; i < add1.size(); ++i) add1[i] = (i % 7 == 3) ? -100.0f : 0.0f;  // a Swin-style mask
    // Keys past L must get no weight: large values there would show.
    for (int64_t t = c.L; t < c.Tk; ++t)
        for (int64_t d = 0; d < ldv; ++d) v[t * ldv + d] = 1e6f;
    const int64_t h = 1;  // the middle head: neighbours' columns on both sides
    std::vector<float> o(static_cast<size_t>(c.T * ldo), 7.0f);
    AttentionBf16 x;
    x.q = q.data() + h * c.D, x.k = k.data() + h * c.D, x.v = v.data() + h * c.Dv;
    x.ldq = ldq, x.ldk = ldk, x.ldv = ldv, x.T = c.T, x.Tk = c.Tk, x.L = c.L, x.D = c.D, x.Dv = c.Dv;
    x.scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    if (c.adds) x.add[0] = add0.data(), x.add[1] = add1.data();
    x.o = o.data() + h * c.Dv, x.ldo = ldo;
    attention_bf16(x, path);
    double worst = 0;
    for (int64_t i = 0; i < c.T; ++i) {
        std::vector<double> sc(static_cast<size_t>(c.L));
        double m = -1e300, z = 0, vmax = 0;
        for (int64_t t = 0; t < c.L; ++t) {
            double d = 0;
            for (int64_t e = 0; e < c.D; ++e)
                d += static_cast<double>(round_bf16(x.q[i * ldq + e])) * round_bf16(x.k[t * ldk + e]);
            sc[t] = x.scale * d + (c.adds ? static_cast<double>(add0[i * c.Tk + t]) + add1[i * c.Tk + t] : 0.0);
            m = std::max(m, sc[t]);
        }
        for (double& s : sc) z += (s = std::exp(s - m));
        for (int64_t t = 0; t < c.L; ++t)
            for (int64_t e = 0; e < c.Dv; ++e) vmax = std::max(vmax, std::fabs(static_cast<double>(x.v[t * ldv + e])));
        for (int64_t e = 0; e < c.Dv; ++e) {
            double want = 0;
            for (int64_t t = 0; t < c.L; ++t) want += sc[t] / z * round_bf16(x.v[t * ldv + e]);
            worst = std::max(worst, std::fabs(x.o[i * ldo + e] - want) / vmax);
        }
        // Nothing outside the head's columns is written.
        for (int64_t e = 0; e < ldo; ++e) {
            if (e < h * c.Dv || e >= (h + 1) * c.Dv) {
                EXPECT_EQ(o[i * ldo + e], 7.0f) << "column " << e << " row " << i;
            }
        }
    }
    return worst;
}

TEST(AttentionBf16, MatchesFloat64OnEveryPath) {
    // ViT-B's head (197 rows, 64 wide), a Swin window with bias and mask, padded text (L < Tk),
    // cross-attention shapes (T != Tk), widths that are not multiples of 32, one row.
    const AttnCase cases[] = {{197, 197, 197, 64, 64, false}, {49, 49, 49, 32, 32, true}, {20, 40, 13, 64, 64, false},
                              {33, 70, 70, 80, 48, true},     {1, 1, 1, 8, 8, false},    {64, 31, 31, 16, 96, true}};
    const Bf16GemmPath paths[] = {Bf16GemmPath::kScalar, Bf16GemmPath::kAvx512Bf16, Bf16GemmPath::kAmx};
    uint32_t seed = 9000;
    for (const AttnCase& c : cases)
        for (Bf16GemmPath p : paths) {
            if (!bf16_gemm_path_supported(p)) continue;
            const double err = attn_max_error(c, p, seed += 5);
            EXPECT_LT(err, std::ldexp(1.0, -8)) << bf16_gemm_path_name(p) << " T=" << c.T << " Tk=" << c.Tk
                                                << " L=" << c.L << " D=" << c.D << " Dv=" << c.Dv
                                                << (c.adds ? " adds" : "");
        }
}

TEST(AttentionBf16, RejectsBadInput) {
    std::vector<float> m(64 * 64, 1.0f);
    AttentionBf16 x;
    x.q = x.k = x.v = m.data(), x.o = m.data();
    x.ldq = x.ldk = x.ldv = x.ldo = 8, x.T = x.Tk = x.L = 4, x.D = x.Dv = 8;
    EXPECT_NO_THROW(attention_bf16(x));
    AttentionBf16 y = x;
    y.L = 0;
    EXPECT_THROW(attention_bf16(y), std::invalid_argument);
    y = x, y.L = 5;
    EXPECT_THROW(attention_bf16(y), std::invalid_argument);
    y = x, y.ldk = 7;
    EXPECT_THROW(attention_bf16(y), std::invalid_argument);
    y = x, y.T = 0;
    EXPECT_THROW(attention_bf16(y), std::invalid_argument);
}

}  // namespace
