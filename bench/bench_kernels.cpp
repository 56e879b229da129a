// Kernel benchmarks: vec_dot and gemm tiles per dtype per ISA, and the threaded matmul driver for
// decode (M = 1, reported as weight GB/s: decode is memory-bandwidth bound) and prefill (M = 128,
// reported as GFLOP/s = 2 M N K / time). Shapes follow a 1-2B-parameter model's FFN: K = 2048,
// N = 5632.
//
//   build-kernels/bin/bench_kernels --benchmark_filter='Matmul'        # driver only
//   LLMFORGE_BENCH_THREADS=2 build-kernels/bin/bench_kernels ...       # threads for Matmul (default 1)
//
// The M = 1 benchmarks cycle through enough copies of the weight matrix to exceed a 32 MB L3, so
// GB/s is DRAM bandwidth, not cache bandwidth.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"

namespace {

using namespace llmforge;
using namespace llmforge::kernels;

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};

std::vector<float> gaussian(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Rows of dtype t (n_rows x k), quantised by the table's own quantiser.
std::vector<uint8_t> make_rows(const KernelTable& tb, DType t, int64_t n_rows, int64_t k, uint32_t seed) {
    const size_t rb = row_bytes(t, k);
    std::vector<uint8_t> out(rb * static_cast<size_t>(n_rows));
    auto x = gaussian(static_cast<size_t>(k), seed);
    for (int64_t r = 0; r < n_rows; ++r) {
        if (t == DType::F32) {
            std::memcpy(out.data() + r * rb, x.data(), rb);
        } else {
            tb.quantize_row[static_cast<int>(t)](x.data(), out.data() + r * rb, k);
        }
        x[static_cast<size_t>(r) % x.size()] += 0.01f;
    }
    return out;
}

Tensor make_weight(DType t, int64_t n, int64_t k, uint32_t seed) {
    Tensor w = Tensor::empty(t, {n, k});
    const KernelTable& tb = llmforge::kernels::kernels();
    auto x = gaussian(static_cast<size_t>(k) * 8, seed);
    for (int64_t r = 0; r < n; ++r) {
        const float* src = x.data() + (r % 8) * k;
        if (t == DType::F32) {
            std::memcpy(w.row(r), src, static_cast<size_t>(k) * 4);
        } else {
            tb.quantize_row[static_cast<int>(t)](src, w.row(r), k);
        }
    }
    return w;
}

int bench_threads() {
    const char* e = std::getenv("LLMFORGE_BENCH_THREADS");
    return e ? std::max(1, std::atoi(e)) : 1;
}

// One vec_dot of K = 4096 (L1/L2 resident): kernel compute speed, in weight bytes per second.
void bm_vec_dot(benchmark::State& st, const KernelTable* tb, DType t) {
    const int64_t k = 4096;
    auto w = make_rows(*tb, t, 1, k, 1);
    auto x = make_rows(*tb, vec_dot_type(t), 1, k, 2);
    float s = 0;
    for (auto _ : st) {
        s += tb->vec_dot[static_cast<int>(t)](k, w.data(), x.data());
        benchmark::DoNotOptimize(s);
    }
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w.size()));
}

// One gemm tile: 64 weight rows x 32 activation rows x K = 2048 (tile sized as matmul uses it).
void bm_gemm(benchmark::State& st, const KernelTable* tb, DType t) {
    const int64_t k = 2048, nr = 64, nc = 32;
    const DType at = vec_dot_type(t);
    auto w = make_rows(*tb, t, nr, k, 3);
    auto x = make_rows(*tb, at, nc, k, 4);
    std::vector<float> out(static_cast<size_t>(nr * nc));
    for (auto _ : st) {
        tb->gemm[static_cast<int>(t)](k, w.data(), row_bytes(t, k), nr, x.data(), row_bytes(at, k), nc, out.data(),
                                      static_cast<size_t>(nr));
        benchmark::ClobberMemory();
    }
    st.counters["FLOP/s"] = benchmark::Counter(2.0 * k * nr * nc * static_cast<double>(st.iterations()),
                                               benchmark::Counter::kIsRate);
}

void bm_matmul(benchmark::State& st, const KernelTable* tb, DType t, int64_t m) {
    const int64_t k = 2048, n = 5632;
    // Copies so that one sweep over them exceeds the L3 (decode streams weights from DRAM).
    const size_t bytes = row_bytes(t, k) * static_cast<size_t>(n);
    const int copies = m == 1 ? static_cast<int>(std::max<size_t>(1, (96u << 20) / bytes + 1)) : 1;
    std::vector<Tensor> ws;
    for (int i = 0; i < copies; ++i) ws.push_back(make_weight(t, n, k, 5 + i));
    auto x = gaussian(static_cast<size_t>(m * k), 9);
    std::vector<float> y(static_cast<size_t>(m * n));
    ThreadPool pool(bench_threads());
    MatmulScratch scratch;
    int i = 0;
    for (auto _ : st) {
        matmul(*tb, ws[static_cast<size_t>(i)], x.data(), m, y.data(), pool, scratch);
        i = (i + 1) % copies;
        benchmark::ClobberMemory();
    }
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(bytes));
    st.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) * static_cast<double>(st.iterations()),
                                               benchmark::Counter::kIsRate);
    st.counters["threads"] = pool.size();
}

void register_all() {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        const KernelTable* tb = kernels_for(isa);
        if (tb == nullptr) continue;
        for (DType t : kTypes) {
            const std::string s = std::string(dtype_name(t)) + "/" + isa_name(isa);
            benchmark::RegisterBenchmark(("VecDot/" + s).c_str(), bm_vec_dot, tb, t);
            benchmark::RegisterBenchmark(("Gemm/" + s).c_str(), bm_gemm, tb, t);
            if (isa == Isa::kScalar) continue;  // the scalar driver numbers are not interesting
            benchmark::RegisterBenchmark(("Matmul_M1/" + s).c_str(), bm_matmul, tb, t, int64_t{1})
                ->Unit(benchmark::kMillisecond)->UseRealTime();
            benchmark::RegisterBenchmark(("Matmul_M128/" + s).c_str(), bm_matmul, tb, t, int64_t{128})
                ->Unit(benchmark::kMillisecond)->UseRealTime();
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
