// The f32 GEMM of training (kernels/cpu/gemm_f32.h) against its double-precision reference: the
// AVX-512 kernel itself on every transpose combination, odd sizes around its 14 x 32 micro-tile and
// 256 / 168 / 1024 blocks, row strides, alpha and beta (beta = 0 never reads C: NaNs there stay
// out), and the dispatching sgemm (whatever it uses here) over 1 and 2 threads, repeatable.
#include "kernels/cpu/gemm_f32.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/quant_fixtures.h"
#if defined(LLMFORGE_HAVE_AVX512_EMU)
#include <cstdlib>
#include <memory>

#include "kernels/avx512_emu.h"
#include "kernels/cpu/x86/avx512/sgemm_x86.h"
#endif

namespace {

using namespace llmforge;
using namespace llmforge::kernels;

using qfix::gaussian;

bool have_avx512() {
    const CpuFeatures& f = cpu_features();
    return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
}

struct Problem {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    int64_t lda, ldb, ldc;
    std::vector<float> a, b, c0;
};

Problem make(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta, uint32_t seed) {
    Problem p{ta, tb, m, n, k, alpha, beta, (ta ? m : k) + 3, (tb ? k : n) + 1, n + 5, {}, {}, {}};
    p.a = gaussian(static_cast<size_t>((ta ? k : m) * p.lda), seed);
    p.b = gaussian(static_cast<size_t>((tb ? n : k) * p.ldb), seed + 1);
    p.c0 = gaussian(static_cast<size_t>(m * p.ldc), seed + 2);
    if (beta == 0.0f)  // must never be read
        for (int64_t i = 0; i < m; ++i) p.c0[i * p.ldc + (i % n)] = std::numeric_limits<float>::quiet_NaN();
    return p;
}

// got within f32 rounding of the double reference: (k + 2) ulps of the summed magnitudes.
void expect_close(const Problem& p, const std::vector<float>& got, const std::string& what) {
    int bad = 0;
    for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t j = 0; j < p.n; ++j) {
            double s = 0, mag = 0;
            for (int64_t q = 0; q < p.k; ++q) {
                const double av = p.ta ? p.a[q * p.lda + i] : p.a[i * p.lda + q];
                const double bv = p.tb ? p.b[j * p.ldb + q] : p.b[q * p.ldb + j];
                s += av * bv;
                mag += std::fabs(av * bv);
            }
            const double prev = p.beta == 0.0f ? 0.0 : static_cast<double>(p.beta) * p.c0[i * p.ldc + j];
            const double want = p.alpha * s + prev;
            const double tol = (static_cast<double>(p.k) + 4) * std::ldexp(1.0, -23) * (std::fabs(p.alpha) * mag + std::fabs(prev)) + 1e-30;
            const float g = got[i * p.ldc + j];
            if (!(std::fabs(g - want) <= tol) && ++bad <= 3) ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << g << ", want " << want;
        }
        for (int64_t j = p.n; j < p.ldc; ++j)
            if (std::memcmp(&got[i * p.ldc + j], &p.c0[i * p.ldc + j], 4) != 0 && ++bad <= 3)
                ADD_FAILURE() << what << ": padding C[" << i << "][" << j << "] written";
    }
    EXPECT_EQ(bad, 0) << what;
}

std::string describe(const Problem& p) {
    return std::string(p.ta ? "T" : "N") + (p.tb ? "T" : "N") + " m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) +
           " k=" + std::to_string(p.k) + " alpha=" + std::to_string(p.alpha) + " beta=" + std::to_string(p.beta);
}

struct Dims {
    int64_t m, n, k;
};
// Around the micro-tile (14 x 32), the 16-wide transposes, the k block (256), the row block (168)
// and the column block (1024).
const Dims kDims[] = {{1, 1, 1},    {13, 31, 15},  {14, 32, 16},  {15, 33, 17},  {29, 65, 255}, {28, 64, 256},
                      {30, 47, 257}, {169, 40, 30}, {170, 97, 513}, {20, 1030, 40}, {3, 1, 700},  {1, 300, 3}};

// Every problem of kDims x the four transpose combinations x three (alpha, beta): run(p, c) puts
// its product into c (a copy of C) and names itself; c must be within rounding of the reference.
template <class Run>
void for_each_problem(Run run) {
    uint32_t seed = 10;
    for (const Dims& d : kDims)
        for (int t = 0; t < 4; ++t)
            for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{1.0f, 1.0f}, std::pair{-0.5f, 0.75f}}) {
                const Problem p = make(t & 1, t & 2, d.m, d.n, d.k, alpha, beta, seed += 3);
                std::vector<float> c = p.c0;
                const std::string name = run(p, c);
                expect_close(p, c, name + describe(p));
            }
}

TEST(GemmF32, Avx512KernelMatchesReference) {
    if (!have_avx512()) GTEST_SKIP() << "no AVX-512F/BW/VL/DQ on this CPU";
    for_each_problem([](const Problem& p, std::vector<float>& c) {
        sgemm_avx512(p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta, c.data(), p.ldc);
        return "avx512 ";
    });
}

// The same kernel source compiled over SIMDe (tests/kernels/avx512_emu_sgemm.cpp): every CPU
// with AVX2 checks the AVX-512 code, whatever the machine running CI has.
TEST(GemmF32, Avx512KernelEmulatedMatchesReference) {
#if !defined(LLMFORGE_HAVE_AVX512_EMU)
    GTEST_SKIP() << "built without SIMDe (libsimde-dev)";
#else
    if (!avx512_emulation_runs_here()) GTEST_SKIP() << "no AVX2/FMA/F16C: the emulation runs on AVX2";
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    const std::unique_ptr<float, Free> wa(static_cast<float*>(std::aligned_alloc(64, x86::kSgemmAFloats * 4))),
        wb(static_cast<float*>(std::aligned_alloc(64, x86::kSgemmBFloats * 4)));
    for_each_problem([&](const Problem& p, std::vector<float>& c) {
        x86::sgemm_avx512_emulated(p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta,
                                   c.data(), p.ldc, wa.get(), wb.get());
        return "emulated avx512 ";
    });
#endif
}

// k = 0: C = beta · C (0 when beta = 0), as BLAS defines it.
TEST(GemmF32, Avx512EmptyInnerDimension) {
    if (!have_avx512()) GTEST_SKIP() << "no AVX-512F/BW/VL/DQ on this CPU";
    std::vector<float> c = {1, 2, 3, 4};
    const float z = 0.0f;
    sgemm_avx512(false, false, 2, 2, 0, 1.0f, &z, 1, &z, 2, 0.5f, c.data(), 2);
    EXPECT_EQ(c, (std::vector<float>{0.5f, 1, 1.5f, 2}));
    sgemm_avx512(false, false, 2, 2, 0, 1.0f, &z, 1, &z, 2, 0.0f, c.data(), 2);
    EXPECT_EQ(c, (std::vector<float>(4, 0.0f)));
}

// What the trainer calls: the dispatching sgemm split over a pool, on training-like and odd
// shapes; every thread count within rounding of the reference, and the same bits run to run.
TEST(GemmF32, PoolSgemmMatchesReferenceAndRepeats) {
    std::printf("sgemm: %s\n", sgemm_uses_avx512() ? "AVX-512 kernel" : "OpenBLAS / fallback");
    ThreadPool pool1(1), pool2(2);
    uint32_t seed = 400;
    const Dims dims[] = {{96, 200, 70}, {300, 64, 129}, {64, 520, 300}};
    for (const Dims& d : dims)
        for (int t = 0; t < 4; ++t) {
            Problem p = make(t & 1, t & 2, d.m, d.n, d.k, 1.0f, t == 3 ? 1.0f : 0.0f, seed += 5);
            for (ThreadPool* pool : {&pool1, &pool2}) {
                std::vector<float> first;
                for (int rep = 0; rep < 2; ++rep) {
                    std::vector<float> c = p.c0;
                    sgemm(*pool, p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta, c.data(), p.ldc);
                    if (rep == 0) {
                        expect_close(p, c, "pool " + std::to_string(pool->size()) + " " + describe(p));
                        first = c;
                    } else {
                        EXPECT_EQ(0, std::memcmp(c.data(), first.data(), c.size() * 4)) << describe(p) << ": differs run to run";
                    }
                }
            }
        }
}

}  // namespace
