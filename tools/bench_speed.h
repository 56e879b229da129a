// The two speed measurements of `llmforge bench`, shared with `compress-report`:
//   pp: the prompt in one batch (prefill in the context's n_batch chunks) from an empty cache;
//   tg: n single-token decodes from an empty cache, each next token a function of the last logits.
// Each runs one warm-up and then `reps` timed repetitions; the result is tokens/s per repetition.
// on_rep(rep, tokens/s) after each run (rep 0 is the warm-up, 1..reps the timed ones).
// keep >= 0: each run starts from the first `keep` positions of the cache (ctx.truncate(keep): a
// depth already prefilled, llama-bench's -d) instead of an empty one (ctx.clear()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "runtime/context.h"

namespace llmforge::cli {

inline double bench_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline void bench_reset(Context& ctx, int64_t keep) {
    if (keep >= 0)
        ctx.truncate(keep);
    else
        ctx.clear();
}

inline std::vector<double> bench_pp(Context& ctx, const std::vector<int32_t>& prompt, int reps,
                                    const std::function<void(int, double)>& on_rep = nullptr, int64_t keep = -1) {
    std::vector<double> tps;
    const double n = static_cast<double>(prompt.size());
    for (int r = -1; r < reps; ++r) {
        bench_reset(ctx, keep);
        const double t0 = bench_now();
        ctx.decode(prompt);
        const double dt = bench_now() - t0;
        if (r >= 0) tps.push_back(n / dt);
        if (on_rep) on_rep(r + 1, n / dt);
    }
    return tps;
}

inline std::vector<double> bench_tg(Context& ctx, int n_gen, int reps, std::mt19937& rng,
                                    const std::function<void(int, double)>& on_rep = nullptr, int64_t keep = -1) {
    const int64_t V = ctx.model().config().n_vocab;
    std::vector<double> tps;
    for (int r = -1; r < reps; ++r) {
        bench_reset(ctx, keep);
        int32_t tok = static_cast<int32_t>(rng() % V);
        const double t0 = bench_now();
        for (int i = 0; i < n_gen; ++i) {
            const auto& lg = ctx.decode({tok});
            tok = static_cast<int32_t>((static_cast<uint32_t>(lg[0] * 1e3f) + i) % V);
        }
        const double dt = bench_now() - t0;
        if (r >= 0) tps.push_back(n_gen / dt);
        if (on_rep) on_rep(r + 1, n_gen / dt);
    }
    return tps;
}

}  // namespace llmforge::cli
