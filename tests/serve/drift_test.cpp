// DriftMonitor: the statistics against hand-computed values, and the monitor's verdicts on
// same-distribution and shifted replays.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "serve/drift.h"

namespace llmforge::serve {
namespace {

TEST(Drift, PsiEqualsTheHandComputedValue) {
    // Reference 0..9 (bins of 5 with edges at 2,4,6,8 -> 0.2 each). Current: 6 values in the
    // first bin, 1 in each other bin -> 0.6, 0.1 x4.
    std::vector<double> ref, cur = {0, 0, 0, 1, 1, 1, 3, 5, 7, 9};
    for (int i = 0; i < 10; ++i) ref.push_back(i);
    const double want = (0.6 - 0.2) * std::log(0.6 / 0.2) + 4 * (0.1 - 0.2) * std::log(0.1 / 0.2);
    EXPECT_NEAR(DriftMonitor::psi(ref, cur, 5), want, 1e-12);
    EXPECT_NEAR(DriftMonitor::psi(ref, ref, 5), 0.0, 1e-12);
    // A constant feature makes one bin, not NaN.
    EXPECT_EQ(DriftMonitor::psi({3, 3, 3}, {3, 3}, 10), 0.0);
    EXPECT_TRUE(std::isfinite(DriftMonitor::psi({3, 3, 3}, {9, 9}, 10)));
}

TEST(Drift, CategoricalPsiAndKs) {
    const std::vector<std::string> a = {"stop", "stop", "stop", "length"}, b = {"length", "length", "length", "stop"};
    const double want = 2 * (0.75 - 0.25) * std::log(3.0);
    EXPECT_NEAR(DriftMonitor::psi_categorical(a, b), want, 1e-12);
    EXPECT_DOUBLE_EQ(DriftMonitor::ks({1, 2, 3, 4}, {1, 2, 3, 4}), 0.0);
    EXPECT_DOUBLE_EQ(DriftMonitor::ks({1, 2, 3, 4}, {5, 6, 7, 8}), 1.0);
    EXPECT_DOUBLE_EQ(DriftMonitor::ks({1, 2, 3, 4}, {3, 4, 5, 6}), 0.5);
    // Kolmogorov's asymptotic series, values from an independent Python evaluation.
    EXPECT_NEAR(DriftMonitor::ks_pvalue(0.5, 10, 10), 0.11084033741322809, 1e-9);
    EXPECT_NEAR(DriftMonitor::ks_pvalue(0.3, 100, 200), 8.274053605444962e-06, 1e-12);
    EXPECT_EQ(DriftMonitor::ks_pvalue(0.0, 10, 10), 1.0);
}

RequestStats req(double prompt, const char* finish = "stop", double logprob = -1.0) {
    RequestStats r;
    r.prompt_tokens = static_cast<int64_t>(prompt);
    r.completion_tokens = 20;
    r.mean_logprob = logprob;
    r.mean_entropy = 1.5;
    r.finish_reason = finish;
    return r;
}

TEST(Drift, SameDistributionStaysQuietShiftedPromptsRaiseIt) {
    DriftConfig cfg;
    cfg.reference_size = cfg.window_size = 200;
    DriftMonitor m(cfg);
    std::mt19937 rng(1);
    std::lognormal_distribution<double> len(4.0, 0.5);
    for (int i = 0; i < 200; ++i) EXPECT_TRUE(m.record(req(len(rng))).empty());
    for (int i = 0; i < 200; ++i) EXPECT_TRUE(m.record(req(len(rng))).empty()) << i;
    for (const auto& f : m.report()) {
        EXPECT_FALSE(f.drifted) << f.name;
        EXPECT_LT(f.psi, 0.2) << f.name;
    }
    int crossings = 0;
    for (int i = 0; i < 200; ++i) {
        for (const auto& name : m.record(req(3 * len(rng)))) {
            EXPECT_EQ(name, "prompt_tokens");
            ++crossings;
        }
    }
    EXPECT_EQ(crossings, 1);  // reported once, when it crossed
    for (const auto& f : m.report()) {
        if (f.name != "prompt_tokens") {
            EXPECT_FALSE(f.drifted) << f.name;
            continue;
        }
        EXPECT_TRUE(f.drifted);
        EXPECT_GT(f.psi, 1.0);
        EXPECT_LT(f.ks_p, 1e-10);
    }
    const auto j = nlohmann::json::parse(m.json());
    EXPECT_TRUE(j["drifted"].get<bool>());
    EXPECT_EQ(j["features"].size(), 6u);
    m.reset();
    for (const auto& f : m.report()) EXPECT_EQ(f.reference_n, 0u);
}

TEST(Drift, FinishReasonShiftAndNanLogprobs) {
    DriftConfig cfg;
    cfg.reference_size = cfg.window_size = 100;
    DriftMonitor m(cfg);
    for (int i = 0; i < 100; ++i) m.record(req(50, i % 10 ? "stop" : "length", i % 4 ? -1.0 : std::nan("")));
    for (int i = 0; i < 100; ++i) m.record(req(50, i % 10 ? "length" : "stop", std::nan("")));
    for (const auto& f : m.report()) {
        EXPECT_TRUE(std::isfinite(f.psi)) << f.name;
        if (f.name == "finish_reason") {
            EXPECT_TRUE(f.drifted);
        }
        if (f.name == "mean_logprob") {
            EXPECT_EQ(f.reference_n, 75u);  // NaN skipped
            EXPECT_EQ(f.current_n, 0u);
            EXPECT_FALSE(f.drifted);
        }
    }
}

TEST(Drift, PrometheusLinesAreWellFormed) {
    DriftMonitor m;
    m.record(req(10));
    std::istringstream in(m.prometheus());
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
        const auto sp = line.rfind(' ');
        ASSERT_NE(sp, std::string::npos) << line;
        const std::string name = line.substr(0, sp), value = line.substr(sp + 1);
        EXPECT_TRUE(name.rfind("llmforge_drift_", 0) == 0) << line;
        EXPECT_NO_THROW(std::stod(value)) << line;
        ++samples;
    }
    EXPECT_EQ(samples, 6 * 3 + 2);
}

}  // namespace
}  // namespace llmforge::serve
