// Measured f32 peak of this CPU for the training model-FLOPs-utilisation figure
// (docs/PERFORMANCE.md): a large square sgemm (the training products' kernel, kernels::sgemm over
// the pool) at 1 and N threads, best of several runs, in GFLOP/s. Prints one JSON line.
//
//   bench_sgemm_peak [n=2048] [max_threads=2]
//   bench_sgemm_peak shapes [threads=1]   the products of a 110M training step (1024 tokens,
//                                         dim 768, ffn 2048, vocab 32000): forward (x·Wᵀ), dx
//                                         (dy·W) and dw (dyᵀ·x); one JSON line per product, the
//                                         median of 5 runs. Run it with LLMFORGE_SGEMM=blas and
//                                         without to compare OpenBLAS with the AVX-512 kernel.
//   bench_sgemm_peak fma                  the instruction peaks the GEMMs are measured against:
//                                         12 independent chains of zmm FMAs (fp32) and of
//                                         VDPBF16PS (bf16 pairs), 1 and 2 threads, GFLOP/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own _mm512_undefined_*() operands (GCC
// bug 105593, fixed in 13), as in kernels/cpu/x86/avx512/table_avx512.cpp.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "core/thread_pool.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"

namespace {

double seconds_of(llmforge::ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a,
                  const float* b, float* c, float beta) {
    const auto t0 = std::chrono::steady_clock::now();
    llmforge::kernels::sgemm(pool, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, beta, c, n);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int shapes(int threads) {
    struct P {
        const char* name;
        bool ta, tb;
        int64_t m, n, k;
        float beta;
    };
    const int64_t N = 1024;
    const P ps[] = {{"fwd 768x768", false, true, N, 768, 768, 0.0f},     {"fwd 2048x768", false, true, N, 2048, 768, 0.0f},
                    {"fwd 768x2048", false, true, N, 768, 2048, 0.0f},   {"fwd 32000x768", false, true, N, 32000, 768, 0.0f},
                    {"dx 768x768", false, false, N, 768, 768, 1.0f},     {"dx 2048x768", false, false, N, 768, 2048, 1.0f},
                    {"dx 32000x768", false, false, N, 768, 32000, 1.0f}, {"dw 768x768", true, false, 768, 768, N, 1.0f},
                    {"dw 2048x768", true, false, 2048, 768, N, 1.0f},    {"dw 32000x768", true, false, 32000, 768, N, 1.0f}};
    llmforge::ThreadPool pool(threads);
    const char* impl = llmforge::kernels::sgemm_uses_avx512() ? "avx512" : "blas";
    for (const P& p : ps) {
        std::vector<float> a(static_cast<size_t>(p.m * p.k)), b(static_cast<size_t>(p.k * p.n)),
            c(static_cast<size_t>(p.m * p.n), 0.0f);
        for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 17) * 0.01f;
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 13) * 0.01f;
        seconds_of(pool, p.ta, p.tb, p.m, p.n, p.k, a.data(), b.data(), c.data(), p.beta);  // warm-up
        std::vector<double> t;
        for (int rep = 0; rep < 5; ++rep) t.push_back(seconds_of(pool, p.ta, p.tb, p.m, p.n, p.k, a.data(), b.data(), c.data(), p.beta));
        std::sort(t.begin(), t.end());
        std::printf("{\"impl\": \"%s\", \"product\": \"%s\", \"threads\": %d, \"gflops\": %.1f}\n", impl, p.name, threads,
                    2.0 * static_cast<double>(p.m * p.n * p.k) / t[2] / 1e9);
    }
    return 0;
}

#if defined(__x86_64__)
// GFLOP/s of `iters` rounds of 12 independent accumulator chains (different start values, so the
// compiler cannot merge them): KIND 0 = VFMADD231PS zmm (32 flops), 1 = VDPBF16PS zmm (64 flops:
// 32 bf16 products and their sums).
template <int KIND>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) double chains(int64_t iters) {
    __m512 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
    const __m512i pairs = _mm512_set1_epi32(0x3f803f80);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t it = 0; it < iters; ++it) {
        for (int i = 0; i < 12; ++i) {
            if constexpr (KIND == 0) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
            else acc[i] = _mm512_dpbf16_ps(acc[i], reinterpret_cast<const __m512bh&>(pairs), reinterpret_cast<const __m512bh&>(pairs));
        }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    __m512 sum = acc[0];
    for (int i = 1; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(sum);
    (void)sink;
    return (KIND == 0 ? 32.0 : 64.0) * 12.0 * static_cast<double>(iters) / s / 1e9;
}

template <int KIND>
void peak_line(const char* name) {
    const int64_t iters = 50'000'000;
    double one = 0;
    for (int r = 0; r < 3; ++r) one = std::max(one, chains<KIND>(iters));
    double two[2] = {0, 0};
    std::thread t1([&] { two[0] = chains<KIND>(iters); }), t2([&] { two[1] = chains<KIND>(iters); });
    t1.join();
    t2.join();
    std::printf("{\"peak\": \"%s\", \"gflops_1t\": %.1f, \"gflops_2t\": %.1f}\n", name, one, two[0] + two[1]);
}

int fma_peaks() {
    const llmforge::kernels::CpuFeatures& f = llmforge::kernels::cpu_features();
    if (!f.avx512f) {
        std::printf("{\"peak\": \"none\", \"note\": \"no AVX-512 on this CPU\"}\n");
        return 0;
    }
    peak_line<0>("fp32 FMA zmm");
    if (f.avx512_bf16) peak_line<1>("VDPBF16PS zmm");
    return 0;
}
#else
int fma_peaks() { return 0; }
#endif

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "fma") == 0) return fma_peaks();
    if (argc > 1 && std::strcmp(argv[1], "shapes") == 0) return shapes(argc > 2 ? std::atoi(argv[2]) : 1);
    const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2048;
    const int max_threads = argc > 2 ? std::atoi(argv[2]) : 2;
    std::vector<float> a(n * n), b(n * n), c(n * n);
    for (int64_t i = 0; i < n * n; ++i) a[i] = static_cast<float>(i % 17) * 0.01f, b[i] = static_cast<float>(i % 13) * 0.01f;
    std::printf("{\"n\": %lld", static_cast<long long>(n));
    for (int t = 1; t <= max_threads; ++t) {
        llmforge::ThreadPool pool(t);
        double best = 0;
        for (int rep = 0; rep < 5; ++rep) best = std::max(best, 2.0 * n * n * n / seconds_of(pool, false, true, n, n, n, a.data(), b.data(), c.data(), 0.0f) / 1e9);
        std::printf(", \"gflops_%dt\": %.1f", t, best);
    }
    std::printf("}\n");
    return 0;
}
