// GFLOP/s of gemm_bf16 (kernels/cpu/gemm_bf16.h: AMX, AVX512-BF16) next to OpenBLAS sgemm
// (kernels::sgemm over the pool, the f32 path the trainer uses today) for the weight products of a
// 110M Llama training step: N = 1024 rows (tokens) against frozen W (M, K) =
// (768, 768) attention, (2048, 768) FFN up/gate, (768, 2048) FFN down, (32000, 768) head;
//   fwd: Y (N, M) = X (N, K) · Wᵀ          bwd: dX (N, K) = dY (N, M) · W
// GFLOP/s = 2 N M K / time, best of several runs after a warm-up; packing is done once, outside the
// timing (frozen weights), the f32 -> bf16 rounding of A is inside it.
//
//   build/bin/bench_bf16_gemm [threads_max=2] [min_seconds_per_case=0.5] [scalar]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_f32.h"

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

template <class Fn>
double best_gflops(double flops, double min_s, Fn fn) {
    fn();  // warm-up (page faults, caches)
    double best = 1e30, total = 0;
    int reps = 0;
    while (reps < 3 || total < min_s) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s);
        total += s;
        ++reps;
    }
    return flops / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    const int max_threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const double min_s = argc > 2 ? std::atof(argv[2]) : 0.5;
    const bool with_scalar = argc > 3 && std::strcmp(argv[3], "scalar") == 0;
    const int64_t N = 1024;
    const int64_t shapes[][2] = {{768, 768}, {2048, 768}, {768, 2048}, {32000, 768}};

    std::vector<Bf16GemmPath> paths;
    for (Bf16GemmPath p : {Bf16GemmPath::kAmx, Bf16GemmPath::kAvx512Bf16, Bf16GemmPath::kScalar})
        if (bf16_gemm_path_supported(p) && (p != Bf16GemmPath::kScalar || with_scalar)) paths.push_back(p);

    std::printf("%-4s %6s %6s %6s %-11s", "dir", "N", "M", "K", "kernel");
    for (int t = 1; t <= max_threads; ++t) std::printf("  %5dt GF/s", t);
    std::printf("\n");
    for (const auto& mk : shapes) {
        const int64_t M = mk[0], K = mk[1];
        const auto w = gaussian(static_cast<size_t>(M * K), 1);
        const PackedBf16 bf = pack_bf16(w.data(), K, M, K, true), bb = pack_bf16(w.data(), K, M, K, false);
        for (bool fwd : {true, false}) {
            const int64_t in = fwd ? K : M, out = fwd ? M : K;  // A (N, in), C (N, out)
            const auto a = gaussian(static_cast<size_t>(N * in), 2);
            std::vector<float> c(static_cast<size_t>(N * out));
            const double flops = 2.0 * N * M * K;
            auto row = [&](const char* name, auto run) {
                std::printf("%-4s %6lld %6lld %6lld %-11s", fwd ? "fwd" : "bwd", static_cast<long long>(N),
                            static_cast<long long>(M), static_cast<long long>(K), name);
                for (int t = 1; t <= max_threads; ++t) {
                    ThreadPool pool(t);
                    std::printf("  %11.1f", best_gflops(flops, min_s, [&] { run(pool); }));
                    std::fflush(stdout);
                }
                std::printf("\n");
            };
            for (Bf16GemmPath p : paths)
                row(bf16_gemm_path_name(p), [&](ThreadPool& pool) {
                    gemm_bf16(a.data(), in, N, fwd ? bf : bb, c.data(), out, false, &pool, p);
                });
            row("sgemm", [&](ThreadPool& pool) {
                if (fwd) {
                    sgemm(pool, false, true, N, M, K, 1.0f, a.data(), K, w.data(), K, 0.0f, c.data(), M);
                } else {
                    sgemm(pool, false, false, N, K, M, 1.0f, a.data(), M, w.data(), K, 0.0f, c.data(), K);
                }
            });
        }
    }
    return 0;
}
