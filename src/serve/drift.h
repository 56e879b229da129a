// Drift monitoring for the server: per-request features (prompt length, output length, mean
// token log-probability and entropy, finish reason, tokenizer byte-fallback rate) are compared
// between a reference window (the first N requests after start or reload) and a rolling current
// window (the last M requests), with the population stability index (PSI, quantile bins of the
// reference) and, for numeric features, the two-sample Kolmogorov-Smirnov statistic.
//
// PSI rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant shift.
// Thread safety: every method locks one internal mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace llmforge::serve {

// A sample value as Prometheus' text format spells it (NaN, +Inf, -Inf, %.9g).
std::string prometheus_number(double v);

struct RequestStats {  // one finished sequence
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    double mean_logprob = 0;   // NaN when nothing was generated
    double mean_entropy = 0;   // nats; NaN when nothing was generated
    std::string finish_reason;
    double byte_fallback_rate = 0;  // share of prompt tokens that are byte tokens
};

struct DriftConfig {
    size_t reference_size = 200;
    size_t window_size = 200;
    size_t min_window = 50;   // no verdict before the current window holds this many
    double psi_threshold = 0.2;
    double ks_alpha = 0.01;  // numeric features: drift also needs KS p-value below this
    int bins = 10;
};

struct DriftFeature {
    std::string name;
    double psi = 0;
    double ks = 0;    // numeric features only
    double ks_p = 1;  // asymptotic p-value of ks
    size_t reference_n = 0, current_n = 0;
    bool drifted = false;  // psi > threshold (and, numeric, ks_p < ks_alpha) with a full enough window
};

class DriftMonitor {
public:
    explicit DriftMonitor(DriftConfig cfg = {});
    // Adds one request; returns the features that just crossed the threshold (false -> true).
    std::vector<std::string> record(const RequestStats& r);
    std::vector<DriftFeature> report() const;
    std::string json() const;        // GET /admin/drift
    std::string prometheus() const;  // lines for /metrics
    void reset();                    // a new reference window (after a model reload)
    const DriftConfig& config() const { return cfg_; }

    // The statistics, exposed for tests. PSI of two samples over the reference's quantile bins.
    static double psi(const std::vector<double>& ref, const std::vector<double>& cur, int bins);
    static double psi_categorical(const std::vector<std::string>& ref, const std::vector<std::string>& cur);
    // Two-sample KS statistic D and its asymptotic p-value.
    static double ks(std::vector<double> a, std::vector<double> b);
    static double ks_pvalue(double d, size_t n, size_t m);

private:
    std::vector<DriftFeature> compute() const;

    DriftConfig cfg_;
    mutable std::mutex mu_;
    std::deque<RequestStats> ref_, cur_;
    std::vector<bool> was_drifted_;
};

}  // namespace llmforge::serve
