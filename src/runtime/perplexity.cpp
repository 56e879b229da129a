#include "runtime/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "runtime/context.h"

namespace llmforge {

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int64_t n_ctx, int threads,
                            const std::function<void(int64_t, int64_t, double)>& progress,
                            const SeqAdapter& adapter, const KvTypes& kv_types, LshStats* lsh_stats) {
    if (tokens.size() < 2) fail("perplexity: the text has %zu tokens, expected at least 2", tokens.size());
    if (n_ctx < 2) fail("perplexity: --ctx %lld, expected at least 2", (long long)n_ctx);
    ContextParams cp;
    cp.n_ctx = n_ctx + adapter.n_virtual;
    cp.n_threads = threads;
    cp.adapter = adapter;
    cp.kv_types = kv_types;
    Context ctx(model, cp);
    ctx.scratch().lsh_stats = lsh_stats;
    const int64_t V = model.config().n_vocab;
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t windows = (n + n_ctx - 1) / n_ctx;
    PerplexityResult r;
    double sum_sq = 0;
    for (int64_t w = 0; w < windows; ++w) {
        const int64_t b = w * n_ctx, e = std::min(n, b + n_ctx);
        if (e - b < 2) break;  // a single trailing token has nothing before it in its window
        std::vector<int32_t> win(tokens.begin() + b, tokens.begin() + e);
        ctx.clear();  // keeps the virtual rows
        const std::vector<float> logits = ctx.decode_all(win);  // (len, V)
        for (int64_t i = 0; i + 1 < static_cast<int64_t>(win.size()); ++i) {
            const float* row = logits.data() + i * V;
            double mx = row[0];
            for (int64_t j = 1; j < V; ++j) mx = std::max(mx, static_cast<double>(row[j]));
            double s = 0;
            for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
            const double nll = mx + std::log(s) - row[win[i + 1]];
            r.nll_sum += nll;
            sum_sq += nll * nll;
            ++r.n_scored;
        }
        ++r.n_windows;
        if (progress) progress(w + 1, windows, std::exp(r.nll_sum / static_cast<double>(r.n_scored)));
    }
    const double m = r.nll_sum / static_cast<double>(r.n_scored);
    const double var = r.n_scored > 1 ? (sum_sq / r.n_scored - m * m) * r.n_scored / (r.n_scored - 1) : 0.0;
    r.ppl = std::exp(m);
    r.ppl_stderr = r.ppl * std::sqrt(std::max(0.0, var) / static_cast<double>(r.n_scored));
    return r;
}

}  // namespace llmforge
