// LSH-bucketed attention (model/lsh.h, train/lsh_ops.h) against our dense attention (train/ops.h
// attention(): blocks of query rows through OpenBLAS sgemm, the masked upper triangle skipped) for
// one 110M-shaped layer: 12 heads of 64, one sequence of n tokens, random q / k / v.
// Per n: forward time (no gradient kept), forward + backward time (each the best of two runs), scores computed per head, the
// bytes each keeps for backward, and the LSH error against dense on sampled rows (relative to the
// row's largest value) with the share of the dense softmax mass LSH's candidates hold.
//
//   build/bin/bench_lsh_attention [threads=1] [max_n=16384] [n_buckets=0 (auto: n / 64)] [n_hashes=2] [window=128] [local=0]
//
// Dense forward is the engine's blocked prompt attention (nothing kept, any n); dense forward +
// backward (the trainer's attention(), which keeps its probabilities, n² / 2 per head) is skipped
// where those would not fit in 8 GiB. Columns "kept MiB": what each keeps for backward.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "model/lsh.h"
#include "train/lsh_ops.h"
#include "train/ops.h"

namespace {

using namespace llmforge;
using namespace llmforge::train;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::unique_ptr<Param> gaussian(const char* name, int64_t rows, int64_t cols, uint32_t seed) {
    auto p = std::make_unique<Param>();
    p->name = name;
    p->shape = {rows, cols};
    p->value = FloatBuffer(rows * cols);
    p->grad = FloatBuffer(rows * cols);
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (int64_t i = 0; i < rows * cols; ++i) p->value[i] = d(rng);
    return p;
}

// Dense causal attention for inference, the engine's prompt path (model.cpp EagerOps::attention):
// per head, blocks of 64 query rows, scores = Q_blk K^T through sgemm over the keys the block can
// see, a causal softmax per row, out = P V; nothing is kept, so it runs at any n.
void dense_streaming(const float* q, const float* k, const float* v, int64_t n, int64_t H, int64_t D, float* out,
                     ThreadPool& pool) {
    const int64_t blk = 64, nb = (n + blk - 1) / blk;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const auto& kt = kernels::kernels();
    std::vector<std::vector<float>> sc(static_cast<size_t>(pool.size()));
    pool.run(nb * H, [&](int64_t item, int tid) {
        const int64_t b = item / H, h = item % H, i0 = b * blk, nq = std::min(blk, n - i0), nk = i0 + nq;
        std::vector<float>& s = sc[static_cast<size_t>(tid)];
        s.resize(static_cast<size_t>(blk * n));
        kernels::sgemm(false, true, nq, nk, D, scale, q + i0 * H * D + h * D, H * D, k + h * D, H * D, 0.0f, s.data(), nk);
        for (int64_t r = 0; r < nq; ++r) {
            float* row = s.data() + r * nk;
            kt.softmax(row, i0 + r + 1);
            std::fill(row + i0 + r + 1, row + nk, 0.0f);
        }
        kernels::sgemm(false, false, nq, D, nk, 1.0f, s.data(), nk, v + h * D, H * D, 0.0f, out + i0 * H * D + h * D, H * D);
    });
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    const int64_t max_n = argc > 2 ? std::atoll(argv[2]) : 16384;
    const int64_t fixed_buckets = argc > 3 ? std::atoll(argv[3]) : 0;
    LshSpec spec;
    spec.n_hashes = argc > 4 ? std::atoll(argv[4]) : 2;
    spec.window = argc > 5 ? std::atoll(argv[5]) : 128;
    spec.local = argc > 6 ? std::atoll(argv[6]) : 0;
    const int64_t H = 12, D = 64;
    ThreadPool pool(threads);
    std::printf("| n | buckets | dense fwd s | LSH fwd s | fwd speed-up | dense fwd+bwd s | LSH fwd+bwd s | fwd+bwd speed-up "
                "| dense scores / head | LSH scores / head | dense kept MiB | LSH kept MiB | max row error | dense mass kept |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int64_t n = 1024; n <= max_n; n *= 4) {
        spec.n_buckets = fixed_buckets > 0 ? fixed_buckets : std::max<int64_t>(2, n / 64);
        auto q = gaussian("q", n, H * D, 1), k = gaussian("k", n, H * D, 2), v = gaussian("v", n, H * D, 3);
        std::vector<LshHash> hashes;
        for (int64_t g = 0; g < H; ++g) hashes.emplace_back(spec, 0, g, D);
        const bool dense_fits = static_cast<double>(n) * n / 2 * H * 4 < 8.0 * (1LL << 30);
        auto run_once = [&](bool lsh, bool backward, Var* out_keep, Tape& t) {
            t.grad_enabled = backward;
            Var a = t.param(*q), b = t.param(*k), c = t.param(*v);
            const auto t0 = Clock::now();
            Var y;
            if (lsh) {
                auto bk = lsh_buckets(q->value.data(), k->value.data(), n, H, H, D, hashes.data(), pool);
                y = lsh_attention(t, a, b, c, 1, n, H, H, spec, bk);
            } else {
                y = attention(t, a, b, c, 1, n, H, H);
            }
            if (backward) {
                float* g = t.grad(y);
                for (int64_t i = 0; i < y->numel; ++i) g[i] = 1e-3f * static_cast<float>((i * 7919) % 13 - 6);
                t.backward(t.make({1}, false));
            }
            const double s = seconds_since(t0);
            if (out_keep) *out_keep = y;
            return s;
        };
        // Best of two runs (the first also pays for page faults).
        auto run = [&](bool lsh, bool backward, Var* out_keep, Tape& t) {
            double best = 1e30;
            for (int rep = 0; rep < 2; ++rep) {
                t.reset();
                best = std::min(best, run_once(lsh, backward, out_keep, t));
            }
            return best;
        };
        double dense_f = 1e30, dense_fb = 0, lsh_f, lsh_fb;
        std::vector<float> dense_out(static_cast<size_t>(n * H * D));
        for (int rep = 0; rep < (n >= 65536 ? 1 : 2); ++rep) {
            const auto t0 = Clock::now();
            dense_streaming(q->value.data(), k->value.data(), v->value.data(), n, H, D, dense_out.data(), pool);
            dense_f = std::min(dense_f, seconds_since(t0));
        }
        if (dense_fits) {
            Tape t(pool);
            dense_fb = run(false, true, nullptr, t);
        }
        std::vector<float> lsh_out;
        int64_t scores = 0;
        {
            Tape t(pool);
            Var y;
            lsh_f = run(true, false, &y, t);
            lsh_out.assign(y->data, y->data + y->numel);
            t.reset();
            lsh_fb = run(true, true, nullptr, t);
        }
        // Scores per head and the candidates' share of the dense softmax mass on sampled rows.
        auto bk = lsh_buckets(q->value.data(), k->value.data(), n, H, H, D, hashes.data(), pool);
        double worst = 0, mass = 0;
        int64_t sampled = 0;
        {
            const int64_t h = 0;
            LshIndex idx(spec.n_hashes, spec.n_buckets);
            for (int64_t j = 0; j < n; ++j) idx.add(j, &bk->k[j * H * spec.n_hashes + h * spec.n_hashes]);
            std::vector<int32_t> cand;
            for (int64_t p = 0; p < n; ++p) {
                idx.candidates(p, &bk->q[p * H * spec.n_hashes + h * spec.n_hashes], spec, cand);
                scores += static_cast<int64_t>(cand.size());
                if (p % (n / 64) != n / 128) continue;
                std::vector<double> s(static_cast<size_t>(p + 1));
                double m = -1e300, z = 0, kept = 0;
                for (int64_t j = 0; j <= p; ++j) {
                    double d = 0;
                    for (int64_t i = 0; i < D; ++i) d += static_cast<double>(q->value[p * H * D + i]) * k->value[j * H * D + i];
                    m = std::max(m, s[j] = d / 8.0);
                }
                for (int64_t j = 0; j <= p; ++j) z += (s[j] = std::exp(s[j] - m));
                for (int32_t j : cand) kept += s[j] / z;
                mass += kept;
                ++sampled;
                {
                    double md = 0, mr = 0;
                    for (int64_t i = 0; i < D; ++i) {
                        md = std::max(md, std::abs(static_cast<double>(lsh_out[p * H * D + i]) - dense_out[p * H * D + i]));
                        mr = std::max(mr, std::abs(static_cast<double>(dense_out[p * H * D + i])));
                    }
                    worst = std::max(worst, md / mr);
                }
            }
        }
        const double dense_kept = static_cast<double>(n) * (n + 64) / 2 * H * 4 / (1 << 20);
        const double lsh_kept = static_cast<double>(scores) * H * 4 / (1 << 20);
        auto cell = [&](double x) { return dense_fits ? x : NAN; };
        std::printf("| %lld | %lld | %.3f | %.3f | %.1fx | %.3f | %.3f | %.1fx | %lld | %lld | %.0f | %.1f | %.3g | %.3f |\n",
                    (long long)n, (long long)spec.n_buckets, dense_f, lsh_f, dense_f / lsh_f, cell(dense_fb),
                    lsh_fb, cell(dense_fb / lsh_fb), (long long)(n * (n + 1) / 2), (long long)scores, dense_kept,
                    lsh_kept, worst, mass / std::max<int64_t>(sampled, 1));
        std::fflush(stdout);
    }
    return 0;
}
