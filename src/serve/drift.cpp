#include "serve/drift.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>

namespace llmforge::serve {

namespace {

constexpr double kFloor = 1e-4;  // proportions below this are floored so empty bins stay finite

double psi_terms(const std::vector<double>& pr, const std::vector<double>& pc) {
    double s = 0;
    for (size_t i = 0; i < pr.size(); ++i) {
        const double r = std::max(pr[i], kFloor), c = std::max(pc[i], kFloor);
        s += (c - r) * std::log(c / r);
    }
    return s;
}

struct NumericFeature {
    const char* name;
    double (*get)(const RequestStats&);
};

// A constant array with no destructor: the engine thread can still record a request while the
// process runs its exit handlers (a server whose engine outlives main, as in the fuzz target), and
// a function-local std::vector would already be freed then (found by http_request_fuzz under ASan).
constexpr NumericFeature kNumericFeatures[] = {
    {"prompt_tokens", [](const RequestStats& r) { return static_cast<double>(r.prompt_tokens); }},
    {"completion_tokens", [](const RequestStats& r) { return static_cast<double>(r.completion_tokens); }},
    {"mean_logprob", [](const RequestStats& r) { return r.mean_logprob; }},
    {"mean_entropy", [](const RequestStats& r) { return r.mean_entropy; }},
    {"byte_fallback_rate", [](const RequestStats& r) { return r.byte_fallback_rate; }},
};

}  // namespace

std::string prometheus_number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

DriftMonitor::DriftMonitor(DriftConfig cfg) : cfg_(cfg) {
    if (cfg_.bins < 2) cfg_.bins = 2;
    if (cfg_.reference_size < 1) cfg_.reference_size = 1;
    if (cfg_.window_size < 1) cfg_.window_size = 1;
}

double DriftMonitor::psi(const std::vector<double>& ref, const std::vector<double>& cur, int bins) {
    if (ref.empty() || cur.empty()) return 0;
    std::vector<double> sorted = ref;
    std::sort(sorted.begin(), sorted.end());
    // Upper edges at the reference quantiles; equal edges merge (a constant feature is one bin).
    std::vector<double> edges;
    for (int i = 1; i < bins; ++i) {
        const double e = sorted[static_cast<size_t>(i * sorted.size() / bins)];
        if (edges.empty() || e > edges.back()) edges.push_back(e);
    }
    auto hist = [&](const std::vector<double>& xs) {
        std::vector<double> h(edges.size() + 1, 0.0);
        for (double x : xs) h[std::upper_bound(edges.begin(), edges.end(), x) - edges.begin()] += 1;  // x < edge
        for (double& v : h) v /= static_cast<double>(xs.size());
        return h;
    };
    return psi_terms(hist(ref), hist(cur));
}

double DriftMonitor::psi_categorical(const std::vector<std::string>& ref, const std::vector<std::string>& cur) {
    if (ref.empty() || cur.empty()) return 0;
    std::map<std::string, std::pair<double, double>> counts;
    for (const auto& s : ref) counts[s].first += 1;
    for (const auto& s : cur) counts[s].second += 1;
    std::vector<double> pr, pc;
    for (const auto& [k, v] : counts) {
        pr.push_back(v.first / ref.size());
        pc.push_back(v.second / cur.size());
    }
    return psi_terms(pr, pc);
}

double DriftMonitor::ks(std::vector<double> a, std::vector<double> b) {
    if (a.empty() || b.empty()) return 0;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    size_t i = 0, j = 0;
    double d = 0;
    while (i < a.size() && j < b.size()) {
        const double x = std::min(a[i], b[j]);
        while (i < a.size() && a[i] <= x) ++i;
        while (j < b.size() && b[j] <= x) ++j;
        d = std::max(d, std::abs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
    }
    return d;
}

double DriftMonitor::ks_pvalue(double d, size_t n, size_t m) {
    if (n == 0 || m == 0 || d <= 0) return 1;
    const double ne = static_cast<double>(n) * m / (static_cast<double>(n) + m);
    const double sq = std::sqrt(ne);
    const double lambda = (sq + 0.12 + 0.11 / sq) * d;
    // Q_KS(lambda) = 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lambda^2)  (Numerical Recipes, probks)
    if (lambda < 1e-3) return 1;
    double sum = 0, sign = 1, prev = 0;
    for (int j = 1; j <= 100; ++j) {
        const double term = sign * 2 * std::exp(-2.0 * j * j * lambda * lambda);
        sum += term;
        if (std::abs(term) <= 1e-10 * std::abs(sum) || std::abs(term) <= 1e-12 * prev) return std::clamp(sum, 0.0, 1.0);
        prev = std::abs(term);
        sign = -sign;
    }
    return 1;  // the series did not converge: lambda is tiny, no evidence of a difference
}

std::vector<DriftFeature> DriftMonitor::compute() const {
    std::vector<DriftFeature> out;
    const bool full = ref_.size() >= cfg_.reference_size;
    for (const auto& f : kNumericFeatures) {
        DriftFeature d;
        d.name = f.name;
        const auto values = [&](const std::deque<RequestStats>& window) {  // NaN: no value
            std::vector<double> out;
            for (const auto& x : window)
                if (const double v = f.get(x); !std::isnan(v)) out.push_back(v);
            return out;
        };
        const std::vector<double> r = values(ref_);
        d.reference_n = r.size();
        if (full) {
            const std::vector<double> c = values(cur_);
            d.current_n = c.size();
            d.psi = psi(r, c, cfg_.bins);
            d.ks = ks(r, c);
            d.ks_p = ks_pvalue(d.ks, r.size(), c.size());
            // PSI alone is noisy on small windows (its expectation between two samples of one
            // distribution is about (bins-1)(1/n+1/m): 0.3 for 10 bins and 60 requests), so a
            // numeric feature also needs a significant KS test.
            d.drifted = d.current_n >= cfg_.min_window && d.psi > cfg_.psi_threshold && d.ks_p < cfg_.ks_alpha;
        }
        out.push_back(d);
    }
    DriftFeature fr;
    fr.name = "finish_reason";
    std::vector<std::string> r, c;
    for (const auto& x : ref_) r.push_back(x.finish_reason);
    fr.reference_n = r.size();
    if (full) {
        for (const auto& x : cur_) c.push_back(x.finish_reason);
        fr.current_n = c.size();
        fr.psi = psi_categorical(r, c);
        fr.drifted = fr.current_n >= cfg_.min_window && fr.psi > cfg_.psi_threshold;
    }
    out.push_back(fr);
    return out;
}

std::vector<std::string> DriftMonitor::record(const RequestStats& r) {
    std::lock_guard<std::mutex> lk(mu_);
    if (ref_.size() < cfg_.reference_size) {
        ref_.push_back(r);
        return {};
    }
    cur_.push_back(r);
    if (cur_.size() > cfg_.window_size) cur_.pop_front();
    const auto feats = compute();
    was_drifted_.resize(feats.size(), false);
    std::vector<std::string> crossed;
    for (size_t i = 0; i < feats.size(); ++i) {
        if (feats[i].drifted && !was_drifted_[i]) crossed.push_back(feats[i].name);
        was_drifted_[i] = feats[i].drifted;
    }
    return crossed;
}

std::vector<DriftFeature> DriftMonitor::report() const {
    std::lock_guard<std::mutex> lk(mu_);
    return compute();
}

void DriftMonitor::reset() {
    std::lock_guard<std::mutex> lk(mu_);
    ref_.clear();
    cur_.clear();
    was_drifted_.clear();
}

std::string DriftMonitor::json() const {
    std::vector<DriftFeature> feats;
    bool full;
    {
        std::lock_guard<std::mutex> lk(mu_);
        feats = compute();
        full = ref_.size() >= cfg_.reference_size;
    }
    nlohmann::json j = {{"reference_size", cfg_.reference_size}, {"window_size", cfg_.window_size},
                        {"psi_threshold", cfg_.psi_threshold},   {"reference_full", full}};
    nlohmann::json arr = nlohmann::json::array();
    bool any = false;
    for (const auto& f : feats) {
        any = any || f.drifted;
        arr.push_back({{"name", f.name}, {"psi", f.psi}, {"ks", f.ks}, {"ks_p", f.ks_p},
                       {"reference_n", f.reference_n}, {"current_n", f.current_n}, {"drifted", f.drifted}});
    }
    j["features"] = arr;
    j["drifted"] = any;
    return j.dump();
}

std::string DriftMonitor::prometheus() const {
    std::vector<DriftFeature> feats;
    size_t nref, ncur;
    {
        std::lock_guard<std::mutex> lk(mu_);
        feats = compute();
        nref = ref_.size();
        ncur = cur_.size();
    }
    std::ostringstream o;
    auto metric = [&](const char* name, const char* help, auto value) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
        for (const auto& f : feats) o << name << "{feature=\"" << f.name << "\"} " << value(f) << '\n';
    };
    metric("llmforge_drift_psi", "Population stability index of the current window against the reference.",
           [](const DriftFeature& f) { return prometheus_number(f.psi); });
    metric("llmforge_drift_ks", "Two-sample Kolmogorov-Smirnov statistic (numeric features).",
           [](const DriftFeature& f) { return prometheus_number(f.ks); });
    metric("llmforge_drift_detected", "1 when the feature's PSI is over the threshold.",
           [](const DriftFeature& f) { return std::string(f.drifted ? "1" : "0"); });
    o << "# HELP llmforge_drift_window_requests Requests in each drift window.\n"
         "# TYPE llmforge_drift_window_requests gauge\n"
      << "llmforge_drift_window_requests{window=\"reference\"} " << nref << '\n'
      << "llmforge_drift_window_requests{window=\"current\"} " << ncur << '\n';
    return o.str();
}

}  // namespace llmforge::serve
