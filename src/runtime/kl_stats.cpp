#include "runtime/kl_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "runtime/context.h"

namespace llmforge {

namespace {

// Base log-probabilities at or under this are left out of the KL sum (llama.cpp's cut: below the
// floor of its 16-bit store, p < 1.1e-7).
constexpr float kLogpCut = -16.0f;

// llama.cpp's mean_and_uncertainty: the mean and sqrt(var / (n - 1)), no uncertainty for n <= 10.
std::pair<double, double> mean_unc(double sum, double sum2, int64_t n) {
    if (n < 1) return {0.0, 0.0};
    const double f = sum / static_cast<double>(n);
    const double v = sum2 / static_cast<double>(n) - f * f;
    return {f, v > 0 && n > 10 ? std::sqrt(v / static_cast<double>(n - 1)) : 0.0};
}

// llama.cpp's covariance of the two means (0 under 10 positions).
double mean_cov(double suma, double sumb, double sumab, int64_t n) {
    if (n < 10) return 0.0;
    const double c = static_cast<double>(n);
    return (sumab / c - (suma / c) * (sumb / c)) / (c - 1);
}

// One window of the text: tokens [begin, begin + len), logits rows first..len-2 scored.
struct Window {
    int64_t begin, len, first;
};

std::vector<Window> windows_of(int64_t n, const KlOptions& opt) {
    std::vector<Window> ws;
    const int64_t total = (n + opt.n_ctx - 1) / opt.n_ctx;
    const int64_t limit = opt.max_windows > 0 ? std::min(total, opt.max_windows) : total;
    for (int64_t w = 0; w < limit; ++w) {
        const int64_t b = w * opt.n_ctx, len = std::min(n, b + opt.n_ctx) - b;
        const int64_t first = opt.second_half ? len / 2 : 0;
        if (len - 1 - first < 1) continue;  // nothing to score (a lone trailing token, or half of 2)
        ws.push_back({b, len, first});
    }
    return ws;
}

void check_inputs(const std::vector<int32_t>& tokens, const KlOptions& opt, const char* what) {
    if (opt.n_ctx < 2) fail("%s: window of %lld tokens, expected at least 2 (hint: --ctx)", what, (long long)opt.n_ctx);
    if (tokens.size() < 2) fail("%s: the text has %zu tokens, expected at least 2", what, tokens.size());
    if (windows_of(static_cast<int64_t>(tokens.size()), opt).empty())
        fail("%s: %zu tokens in windows of %lld score no token (hint: a longer text or a larger --ctx)", what,
             tokens.size(), (long long)opt.n_ctx);
}

// Runs a model window by window: fn(window, logits (len, V)).
class WindowRunner {
public:
    // with_adapter: the options' adapter and KV types apply (the compared model, never the base).
    WindowRunner(const Model& m, const KlOptions& opt, bool with_adapter) : ctx_(m, params(opt, with_adapter)) {}
    std::vector<float> run(const std::vector<int32_t>& tokens, const Window& w) {
        ctx_.clear();
        return ctx_.decode_all(std::vector<int32_t>(tokens.begin() + w.begin, tokens.begin() + w.begin + w.len));
    }
    ThreadPool& pool() { return ctx_.pool(); }

private:
    static ContextParams params(const KlOptions& opt, bool with_adapter) {
        ContextParams cp;
        cp.n_ctx = opt.n_ctx;
        cp.n_threads = opt.n_threads;
        if (with_adapter) {
            cp.adapter = opt.adapter;
            cp.n_ctx += opt.adapter.n_virtual;
            cp.kv_types = opt.kv_types;
        }
        return cp;
    }
    Context ctx_;
};

void check_vocab(const Model& a, const Model& b, const char* what) {
    if (a.config().n_vocab != b.config().n_vocab)
        fail("%s: the model has a vocabulary of %lld tokens, the base %lld (hint: compare models with the same "
             "tokenizer)",
             what, (long long)b.config().n_vocab, (long long)a.config().n_vocab);
}

// KlRows of one window's scored rows, in parallel; `base_row(i, buf)` gives scored row i's base
// log-probabilities (it may fill buf, or return another pointer).
void score_window(ThreadPool& pool, const std::vector<int32_t>& tokens, const Window& w, const float* logits,
                  int64_t V, const std::function<const float*(int64_t, float*)>& base_row, KlAccumulator& acc) {
    const int64_t n = w.len - 1 - w.first;
    std::vector<KlRow> rows(static_cast<size_t>(n));
    std::vector<std::vector<float>> bufs(static_cast<size_t>(pool.size()), std::vector<float>(static_cast<size_t>(V)));
    pool.run(n, [&](int64_t i, int tid) {
        const int64_t r = w.first + i;
        const float* lp = base_row(i, bufs[static_cast<size_t>(tid)].data());
        rows[static_cast<size_t>(i)] = kl_row(lp, logits + r * V, V, tokens[static_cast<size_t>(w.begin + r + 1)]);
    });
    for (const KlRow& r : rows) acc.add(r);  // in order: the sums do not depend on the thread count
}

}  // namespace

void log_softmax_row(const float* logits, int64_t V, float* out) {
    double mx = logits[0];
    for (int64_t i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
    double s = 0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
    const double lse = mx + std::log(s);
    for (int64_t i = 0; i < V; ++i) out[i] = static_cast<float>(static_cast<double>(logits[i]) - lse);
}

KlRow kl_row(const float* base_logp, const float* logits, int64_t V, int32_t target) {
    LF_ASSERT(V > 0 && target >= 0 && target < V);
    int64_t top = 0, top_base = 0;
    double mx = logits[0];
    for (int64_t i = 1; i < V; ++i) {
        if (logits[i] > logits[top]) top = i;
        if (base_logp[i] > base_logp[top_base]) top_base = i;
    }
    mx = logits[top];
    double s = 0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
    const double lse = mx + std::log(s);  // log q_i = logits_i - lse
    double kld = 0;
    for (int64_t i = 0; i < V; ++i) {
        const double lp = base_logp[i];
        if (!(lp > kLogpCut)) continue;
        kld += std::exp(lp) * (lp - (static_cast<double>(logits[i]) - lse));
    }
    KlRow r;
    r.kld = kld;
    r.nll = lse - static_cast<double>(logits[target]);
    r.nll_base = -static_cast<double>(base_logp[target]);
    r.p_diff = static_cast<float>(std::exp(-r.nll) - std::exp(-r.nll_base));
    r.same_top = top == top_base;
    return r;
}

void KlAccumulator::add(const KlRow& r) {
    ++n_;
    n_same_top_ += r.same_top ? 1 : 0;
    sum_nll_ += r.nll;
    sum_nll2_ += r.nll * r.nll;
    sum_nll_base_ += r.nll_base;
    sum_nll_base2_ += r.nll_base * r.nll_base;
    sum_nll_nll_base_ += r.nll * r.nll_base;
    sum_kld_ += r.kld;
    sum_kld2_ += r.kld * r.kld;
    const double d = r.p_diff, d2 = d * d;
    sum_p_diff_ += d;
    sum_p_diff2_ += d2;
    sum_p_diff4_ += d2 * d2;
    kld_.push_back(static_cast<float>(r.kld));
    p_diff_.push_back(r.p_diff);
}

double kl_percentile(const std::vector<float>& v, double fraction) {
    if (v.empty()) return 0;
    if (fraction <= 0) return v.front();
    if (fraction >= 1) return v.back();
    double p = fraction * static_cast<double>(v.size() - 1);
    const size_t ip = static_cast<size_t>(p);
    p -= static_cast<double>(ip);
    return (1 - p) * v[ip] + p * v[std::min(ip + 1, v.size() - 1)];
}

double kl_median(const std::vector<float>& v) {
    if (v.empty()) return 0;
    const size_t m = v.size() / 2;
    return v.size() % 2 == 0 ? 0.5 * (static_cast<double>(v[m]) + v[m - 1]) : v[m];
}

KlStats KlAccumulator::stats() const {
    KlStats s;
    s.n = n_;
    if (n_ == 0) return s;
    const auto lp = mean_unc(sum_nll_, sum_nll2_, n_);
    const auto lb = mean_unc(sum_nll_base_, sum_nll_base2_, n_);
    s.ppl = std::exp(lp.first);
    s.ppl_unc = s.ppl * lp.second;  // delta method: d exp(x) = exp(x) dx
    s.ppl_base = std::exp(lb.first);
    s.ppl_base_unc = s.ppl_base * lb.second;
    const double cov = mean_cov(sum_nll_, sum_nll_base_, sum_nll_nll_base_, n_);
    s.ln_ppl_cor = lp.second > 0 && lb.second > 0 ? cov / (lp.second * lb.second) : 0;
    s.ln_ratio = lp.first - lb.first;
    s.ln_ratio_unc = std::sqrt(std::max(0.0, lp.second * lp.second + lb.second * lb.second - 2 * cov));
    s.ppl_ratio = std::exp(s.ln_ratio);
    s.ppl_ratio_unc = s.ppl_ratio * s.ln_ratio_unc;
    s.ppl_diff = s.ppl - s.ppl_base;
    s.ppl_diff_unc = std::sqrt(std::max(
        0.0, s.ppl_unc * s.ppl_unc + s.ppl_base_unc * s.ppl_base_unc - 2 * s.ppl * s.ppl_base * cov));

    const auto kl = mean_unc(sum_kld_, sum_kld2_, n_);
    s.kld_mean = kl.first;
    s.kld_unc = kl.second;
    std::vector<float> k = kld_;
    std::sort(k.begin(), k.end());
    s.kld_max = k.back();
    s.kld_p999 = kl_percentile(k, 0.999);
    s.kld_p99 = kl_percentile(k, 0.99);
    s.kld_median = kl_median(k);
    s.kld_p10 = kl_percentile(k, 0.10);
    s.kld_p5 = kl_percentile(k, 0.05);
    s.kld_p1 = kl_percentile(k, 0.01);
    s.kld_min = k.front();

    const auto dp = mean_unc(sum_p_diff_, sum_p_diff2_, n_);
    s.dp_mean = dp.first;
    s.dp_unc = dp.second;
    const auto mse = mean_unc(sum_p_diff2_, sum_p_diff4_, n_);
    s.dp_rms = std::sqrt(mse.first);
    s.dp_rms_unc = s.dp_rms > 0 ? 0.5 / s.dp_rms * mse.second : 0;
    std::vector<float> d = p_diff_;
    std::sort(d.begin(), d.end());
    s.dp_max = d.back();
    s.dp_p999 = kl_percentile(d, 0.999);
    s.dp_p99 = kl_percentile(d, 0.99);
    s.dp_p95 = kl_percentile(d, 0.95);
    s.dp_p90 = kl_percentile(d, 0.90);
    s.dp_p75 = kl_percentile(d, 0.75);
    s.dp_median = kl_median(d);
    s.dp_p25 = kl_percentile(d, 0.25);
    s.dp_p10 = kl_percentile(d, 0.10);
    s.dp_p5 = kl_percentile(d, 0.05);
    s.dp_p1 = kl_percentile(d, 0.01);
    s.dp_p01 = kl_percentile(d, 0.001);
    s.dp_min = d.front();

    s.same_top = static_cast<double>(n_same_top_) / static_cast<double>(n_);
    s.same_top_unc = n_ > 1 ? std::sqrt(s.same_top * (1 - s.same_top) / static_cast<double>(n_ - 1)) : 0;
    return s;
}

std::string format_kl_stats(const KlStats& s) {
    std::string out;
    char b[160];
    auto line = [&](const char* fmt, auto... a) {
        std::snprintf(b, sizeof b, fmt, a...);
        out += b;
        out += '\n';
    };
    line("====== Perplexity statistics (%lld positions) ======", (long long)s.n);
    line("Mean PPL(Q)                   : %10.6f ± %10.6f", s.ppl, s.ppl_unc);
    line("Mean PPL(base)                : %10.6f ± %10.6f", s.ppl_base, s.ppl_base_unc);
    line("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%", 100.0 * s.ln_ppl_cor);
    line("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f", s.ln_ratio, s.ln_ratio_unc);
    line("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f", s.ppl_ratio, s.ppl_ratio_unc);
    line("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f", s.ppl_diff, s.ppl_diff_unc);
    out += '\n';
    line("====== KL divergence statistics ======");
    line("Mean    KLD: %10.6f ± %10.6f", s.kld_mean, s.kld_unc);
    line("Maximum KLD: %10.6f", s.kld_max);
    line("99.9%%   KLD: %10.6f", s.kld_p999);
    line("99.0%%   KLD: %10.6f", s.kld_p99);
    line("Median  KLD: %10.6f", s.kld_median);
    line("10.0%%   KLD: %10.6f", s.kld_p10);
    line(" 5.0%%   KLD: %10.6f", s.kld_p5);
    line(" 1.0%%   KLD: %10.6f", s.kld_p1);
    line("Minimum KLD: %10.6f", s.kld_min);
    out += '\n';
    line("====== Token probability statistics ======");
    line("Mean    Δp: %6.3f ± %5.3f %%", 100 * s.dp_mean, 100 * s.dp_unc);
    line("Maximum Δp: %6.3f%%", 100 * s.dp_max);
    line("99.9%%   Δp: %6.3f%%", 100 * s.dp_p999);
    line("99.0%%   Δp: %6.3f%%", 100 * s.dp_p99);
    line("95.0%%   Δp: %6.3f%%", 100 * s.dp_p95);
    line("90.0%%   Δp: %6.3f%%", 100 * s.dp_p90);
    line("75.0%%   Δp: %6.3f%%", 100 * s.dp_p75);
    line("Median  Δp: %6.3f%%", 100 * s.dp_median);
    line("25.0%%   Δp: %6.3f%%", 100 * s.dp_p25);
    line("10.0%%   Δp: %6.3f%%", 100 * s.dp_p10);
    line(" 5.0%%   Δp: %6.3f%%", 100 * s.dp_p5);
    line(" 1.0%%   Δp: %6.3f%%", 100 * s.dp_p1);
    line(" 0.1%%   Δp: %6.3f%%", 100 * s.dp_p01);
    line("Minimum Δp: %6.3f%%", 100 * s.dp_min);
    line("RMS Δp    : %6.3f ± %5.3f %%", 100 * s.dp_rms, 100 * s.dp_rms_unc);
    line("Same top p: %6.3f ± %5.3f %%", 100 * s.same_top, 100 * s.same_top_unc);
    return out;
}

void BaseLogProbs::push(const float* logits) {
    const size_t V = static_cast<size_t>(n_vocab_);
    if (!quantized_) {
        f32_.resize(f32_.size() + V);
        log_softmax_row(logits, n_vocab_, f32_.data() + f32_.size() - V);
    } else {
        // llama.cpp's form: codes over [floor, top] in 65535 steps, floor = max(min, top - 16).
        std::vector<float> lp(V);
        log_softmax_row(logits, n_vocab_, lp.data());
        const float hi = *std::max_element(lp.begin(), lp.end());
        const float lo = std::max(*std::min_element(lp.begin(), lp.end()), hi - 16.0f);
        const float scale = (hi - lo) / 65535.0f;
        const size_t at = u16_.size();
        u16_.resize(at + V);
        for (size_t i = 0; i < V; ++i)
            u16_[at + i] = scale > 0 && lp[i] > lo
                               ? static_cast<uint16_t>(std::min(65535.0f, std::nearbyint((lp[i] - lo) / scale)))
                               : 0;
        scale_.push_back(scale);
        floor_.push_back(lo);
    }
    ++rows_;
}

void BaseLogProbs::row(int64_t i, float* out) const {
    LF_ASSERT(i >= 0 && i < rows_);
    const size_t V = static_cast<size_t>(n_vocab_), at = static_cast<size_t>(i) * V;
    if (!quantized_) {
        std::copy(f32_.begin() + static_cast<ptrdiff_t>(at), f32_.begin() + static_cast<ptrdiff_t>(at + V), out);
        return;
    }
    const float s = scale_[static_cast<size_t>(i)], lo = floor_[static_cast<size_t>(i)];
    for (size_t j = 0; j < V; ++j) out[j] = lo + s * u16_[at + j];
}

size_t BaseLogProbs::bytes() const {
    return f32_.size() * sizeof(float) + u16_.size() * sizeof(uint16_t) + (scale_.size() + floor_.size()) * sizeof(float);
}

int64_t kl_windows(int64_t n_tokens, const KlOptions& opt) {
    if (opt.n_ctx < 2) return 0;
    return static_cast<int64_t>(windows_of(n_tokens, opt).size());
}

BaseLogProbs base_log_probs(const Model& base, const std::vector<int32_t>& tokens, const KlOptions& opt,
                            const KlProgress& progress) {
    check_inputs(tokens, opt, "kl-divergence");
    const std::vector<Window> ws = windows_of(static_cast<int64_t>(tokens.size()), opt);
    const int64_t V = base.config().n_vocab;
    int64_t n_rows = 0;
    for (const Window& w : ws) n_rows += w.len - 1 - w.first;
    const bool quantized = static_cast<double>(n_rows) * static_cast<double>(V) * 4 > static_cast<double>(opt.f32_budget);
    BaseLogProbs out(V, quantized);
    out.targets.reserve(static_cast<size_t>(n_rows));
    WindowRunner run(base, opt, false);
    double sum = 0, sum2 = 0;
    std::vector<float> lp(static_cast<size_t>(V));
    for (size_t k = 0; k < ws.size(); ++k) {
        const Window& w = ws[k];
        const std::vector<float> logits = run.run(tokens, w);
        for (int64_t r = w.first; r + 1 < w.len; ++r) {
            const float* row = logits.data() + r * V;
            out.push(row);
            const int32_t t = tokens[static_cast<size_t>(w.begin + r + 1)];
            out.targets.push_back(t);
            log_softmax_row(row, V, lp.data());
            sum -= lp[static_cast<size_t>(t)];
            sum2 += static_cast<double>(lp[static_cast<size_t>(t)]) * lp[static_cast<size_t>(t)];
        }
        if (progress) progress(static_cast<int64_t>(k + 1), static_cast<int64_t>(ws.size()));
    }
    const auto m = mean_unc(sum, sum2, n_rows);
    out.ppl = std::exp(m.first);
    out.ppl_unc = out.ppl * m.second;
    return out;
}

KlStats compare_to_base(const Model& model, const BaseLogProbs& base, const std::vector<int32_t>& tokens,
                        const KlOptions& opt, const KlProgress& progress) {
    check_inputs(tokens, opt, "kl-divergence");
    const int64_t V = model.config().n_vocab;
    if (V != base.n_vocab())
        fail("kl-divergence: the model has a vocabulary of %lld tokens, the base %lld (hint: compare models with the "
             "same tokenizer)",
             (long long)V, (long long)base.n_vocab());
    const std::vector<Window> ws = windows_of(static_cast<int64_t>(tokens.size()), opt);
    {
        std::vector<int32_t> targets;
        for (const Window& w : ws)
            for (int64_t r = w.first; r + 1 < w.len; ++r) targets.push_back(tokens[static_cast<size_t>(w.begin + r + 1)]);
        if (targets != base.targets)
            fail("kl-divergence: the base log-probabilities hold %zu positions of another text or window rule, "
                 "expected %zu of this one",
                 base.targets.size(), targets.size());
    }
    WindowRunner run(model, opt, true);
    KlAccumulator acc;
    int64_t row0 = 0;
    for (size_t k = 0; k < ws.size(); ++k) {
        const Window& w = ws[k];
        const std::vector<float> logits = run.run(tokens, w);
        score_window(run.pool(), tokens, w, logits.data(), V, [&](int64_t i, float* buf) {
            base.row(row0 + i, buf);
            return static_cast<const float*>(buf);
        }, acc);
        row0 += w.len - 1 - w.first;
        if (progress) progress(static_cast<int64_t>(k + 1), static_cast<int64_t>(ws.size()));
    }
    return acc.stats();
}

KlStats compare_models(const Model& base, const Model& model, const std::vector<int32_t>& tokens,
                       const KlOptions& opt, const KlProgress& progress) {
    check_inputs(tokens, opt, "kl-divergence");
    check_vocab(base, model, "kl-divergence");
    const int64_t V = model.config().n_vocab;
    const std::vector<Window> ws = windows_of(static_cast<int64_t>(tokens.size()), opt);
    WindowRunner run_base(base, opt, false), run(model, opt, true);
    KlAccumulator acc;
    for (size_t k = 0; k < ws.size(); ++k) {
        const Window& w = ws[k];
        const std::vector<float> base_logits = run_base.run(tokens, w);
        const std::vector<float> logits = run.run(tokens, w);
        score_window(run.pool(), tokens, w, logits.data(), V, [&](int64_t i, float* buf) {
            log_softmax_row(base_logits.data() + (w.first + i) * V, V, buf);
            return static_cast<const float*>(buf);
        }, acc);
        if (progress) progress(static_cast<int64_t>(k + 1), static_cast<int64_t>(ws.size()));
    }
    return acc.stats();
}

}  // namespace llmforge
