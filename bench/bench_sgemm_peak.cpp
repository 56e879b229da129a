// Measured f32 peak of this CPU for the training model-FLOPs-utilisation figure
// (docs/PERFORMANCE.md): a large square sgemm (the training products' kernel, kernels::sgemm over
// the pool) at 1 and N threads, best of several runs, in GFLOP/s. Prints one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm_f32.h"

int main(int argc, char** argv) {
    const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2048;
    const int max_threads = argc > 2 ? std::atoi(argv[2]) : 2;
    std::vector<float> a(n * n), b(n * n), c(n * n);
    for (int64_t i = 0; i < n * n; ++i) a[i] = static_cast<float>(i % 17) * 0.01f, b[i] = static_cast<float>(i % 13) * 0.01f;
    std::printf("{\"n\": %lld", static_cast<long long>(n));
    for (int t = 1; t <= max_threads; ++t) {
        llmforge::ThreadPool pool(t);
        double best = 0;
        for (int rep = 0; rep < 5; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            llmforge::kernels::sgemm(pool, false, true, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            best = std::max(best, 2.0 * n * n * n / s / 1e9);
        }
        std::printf(", \"gflops_%dt\": %.1f", t, best);
    }
    std::printf("}\n");
    return 0;
}
