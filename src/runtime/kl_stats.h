// Comparing a model's next-token distributions with a base model's over the same text: the
// statistics of llama.cpp's `perplexity --kl-divergence` (perplexity of both and their ratio,
// KL divergence from the base with its mean ± uncertainty and percentiles, Δp of the right token,
// "same top p" = top-1 agreement). Used by `compress-report` (every quantised model against the
// f32 reference) and `perplexity --kl-base`.
//
// Scored positions: the windows of runtime/perplexity.h (consecutive windows of n_ctx tokens, each
// from an empty cache, every token after a window's first scored), so PPL(Q) here equals
// `llmforge perplexity` on the same text and --ctx. With `second_half` only the second half of each
// window is scored, as llama.cpp's kl-divergence and perplexity do (every scored token then has at
// least n_ctx/2 tokens of context).
//
// Per scored position, with p the base's and q the model's distribution over the V tokens and t the
// next token:
//   KLD   = sum_i p_i (log p_i - log q_i)   in double; terms with log p_i <= -16 (p_i < 1.1e-7) are
//           left out, as llama.cpp does (they are below its 16-bit store's floor)
//   Δp    = q_t - p_t
//   NLL   = -log q_t,  NLL_base = -log p_t
//   same top: argmax q == argmax p (the first index on ties)
// Aggregates follow llama.cpp's formulas: mean ± sqrt(var / (n - 1)) (the uncertainty is 0 with 10
// positions or fewer), ln(PPL(Q)/PPL(base)) with the covariance of the two NLLs, percentiles by
// linear interpolation between sorted values, the median the mean of the middle two.
//
// Thread safety: the runners use their own Contexts; Models are only read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/context.h"

namespace llmforge {

// One scored position (the values above).
struct KlRow {
    double kld = 0, nll = 0, nll_base = 0;
    float p_diff = 0;
    bool same_top = false;
};

// base_logp: the base's log-probabilities (V, normalised); logits: the model's raw logits (V).
KlRow kl_row(const float* base_logp, const float* logits, int64_t n_vocab, int32_t target);

// log-softmax of one row of logits, in double, into out (V).
void log_softmax_row(const float* logits, int64_t n_vocab, float* out);

struct KlStats {
    int64_t n = 0;  // positions scored
    // Perplexity of the model (Q) and the base over the same positions, ± uncertainty.
    double ppl = 0, ppl_unc = 0, ppl_base = 0, ppl_base_unc = 0;
    double ln_ppl_cor = 0;                     // correlation of the two NLLs
    double ln_ratio = 0, ln_ratio_unc = 0;     // mean ln(PPL(Q)/PPL(base))
    double ppl_ratio = 0, ppl_ratio_unc = 0;   // PPL(Q)/PPL(base)
    double ppl_diff = 0, ppl_diff_unc = 0;     // PPL(Q)-PPL(base)
    // KL divergence from the base.
    double kld_mean = 0, kld_unc = 0;
    double kld_max = 0, kld_p999 = 0, kld_p99 = 0, kld_median = 0, kld_p10 = 0, kld_p5 = 0, kld_p1 = 0,
           kld_min = 0;
    // Δp of the next token.
    double dp_mean = 0, dp_unc = 0, dp_rms = 0, dp_rms_unc = 0;
    double dp_max = 0, dp_p999 = 0, dp_p99 = 0, dp_p95 = 0, dp_p90 = 0, dp_p75 = 0, dp_median = 0, dp_p25 = 0,
           dp_p10 = 0, dp_p5 = 0, dp_p1 = 0, dp_p01 = 0, dp_min = 0;
    // Top-1 agreement (llama.cpp's "same top p"), a fraction in [0, 1].
    double same_top = 0, same_top_unc = 0;
};

// Sums and per-position values of KlRows; stats() at any time.
class KlAccumulator {
public:
    void add(const KlRow& r);
    int64_t count() const { return n_; }
    KlStats stats() const;

private:
    int64_t n_ = 0, n_same_top_ = 0;
    double sum_nll_ = 0, sum_nll2_ = 0, sum_nll_base_ = 0, sum_nll_base2_ = 0, sum_nll_nll_base_ = 0;
    double sum_kld_ = 0, sum_kld2_ = 0;
    double sum_p_diff_ = 0, sum_p_diff2_ = 0, sum_p_diff4_ = 0;
    std::vector<float> kld_, p_diff_;  // per position (sorted copies for the percentiles)
};

// The value at `fraction` (0..1) of sorted values, linear between neighbours (llama.cpp's rule);
// 0 for no values.
double kl_percentile(const std::vector<float>& sorted, double fraction);
// The middle value, or the mean of the middle two; 0 for no values.
double kl_median(const std::vector<float>& sorted);

// llama.cpp's "====== Perplexity statistics ======" ... "Same top p" block, one value a line.
std::string format_kl_stats(const KlStats& s);

// The base's log-probabilities at every scored position of a text, computed once and compared
// with several models. Kept as f32 while rows * V * 4 bytes fits `f32_budget`, otherwise in
// llama.cpp's 16-bit form (per row: a scale and the log-probability of a floor 16 nats under the
// top; every entry rounded to one of 65536 steps above it, entries below the floor at the floor).
class BaseLogProbs {
public:
    BaseLogProbs() = default;
    BaseLogProbs(int64_t n_vocab, bool quantized) : n_vocab_(n_vocab), quantized_(quantized) {}
    // Appends the log-softmax of one row of raw logits (V).
    void push(const float* logits);
    // Row i's log-probabilities into out (V).
    void row(int64_t i, float* out) const;
    int64_t rows() const { return rows_; }
    int64_t n_vocab() const { return n_vocab_; }
    bool quantized() const { return quantized_; }
    size_t bytes() const;
    // Filled by base_log_probs(): the next token of each row, and the base's own perplexity.
    std::vector<int32_t> targets;
    double ppl = 0, ppl_unc = 0;

private:
    int64_t n_vocab_ = 0, rows_ = 0;
    bool quantized_ = false;
    std::vector<float> f32_;       // (rows, V)
    std::vector<uint16_t> u16_;    // (rows, V)
    std::vector<float> scale_, floor_;  // (rows): log p = floor + scale * code
};

struct KlOptions {
    int64_t n_ctx = 512;         // window size in tokens (>= 2)
    int64_t max_windows = 0;     // 0: every window of the text
    bool second_half = false;    // score only the second half of each window (llama.cpp's rule)
    int n_threads = 0;           // 0: all cores
    size_t f32_budget = size_t(1) << 30;  // BaseLogProbs kept as f32 up to this many bytes
    SeqAdapter adapter;          // the compared model's adapter (never the base's); its virtual rows
                                 // come before each window, as in perplexity()
    KvTypes kv_types;            // the compared model's KV cache types (the base's stays f32): with
                                 // the same model as base, the cost of a quantised KV cache
};

// progress(windows_done, n_windows) after each window.
using KlProgress = std::function<void(int64_t, int64_t)>;

// Windows the options evaluate on a text of n tokens (after max_windows).
int64_t kl_windows(int64_t n_tokens, const KlOptions& opt);

// Runs `base` over the text and keeps its log-probabilities at every scored position.
// Errors: fewer than 2 tokens, n_ctx < 2, ids outside the vocabulary.
BaseLogProbs base_log_probs(const Model& base, const std::vector<int32_t>& tokens, const KlOptions& opt,
                            const KlProgress& progress = nullptr);

// Runs `model` over the same text (same options) and compares it with the stored base.
// Errors: another vocabulary size, a base from another text or options.
KlStats compare_to_base(const Model& model, const BaseLogProbs& base, const std::vector<int32_t>& tokens,
                        const KlOptions& opt, const KlProgress& progress = nullptr);

// The same without storing the base: both models run window by window side by side.
KlStats compare_models(const Model& base, const Model& model, const std::vector<int32_t>& tokens,
                       const KlOptions& opt, const KlProgress& progress = nullptr);

}  // namespace llmforge
