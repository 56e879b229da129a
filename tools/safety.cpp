// llmforge safety [-m MODEL] < messages.jsonl: the shop assistant's safety filter
// (apps/shop/safety.h). Each line {"text": …} (or {"content": …}) gives {"blocked": bool,
// "category": …}; --score reads gold "blocked"/"category" from the same lines and prints block
// rate, category accuracy and false-positive rate to stderr. llmforge safety-train --out DIR
// trains the classifier (make safety-model; the rules are data in DIR/rules.json).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/shop/safety.h"
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_safety(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("safety", "Check messages with the shop assistant's safety filter (JSONL in, JSONL out)");
    static std::string model;
    static bool score = false;
    static double threshold = -1;
    sub->add_option("-m,--model", model, "safety model folder (default: the shipped models/safety)");
    sub->add_option("--threshold", threshold, "classifier probability that blocks (default: the model's)");
    sub->add_flag("--score", score, "score against the input's gold \"blocked\" / \"category\" (stderr)");
    run = [] {
        apps::SafetyFilter f(model.empty() ? shipped_model("safety") : model);
        if (threshold >= 0) {
            if (!(threshold <= 1)) fail("safety: --threshold %g, expected 0..1", threshold);
            f.threshold = threshold;
        }
        std::istringstream in(read_stdin("safety"));
        apps::SafetyScore sc;
        std::string line;
        for (int64_t no = 1; std::getline(in, line); ++no) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const auto j = nlohmann::json::parse(line, nullptr, false);
            const char* key = j.is_object() && j.contains("text") ? "text" : "content";
            if (j.is_discarded() || !j.is_object() || !j.contains(key) || !j[key].is_string())
                fail("safety: stdin line %lld: expected {\"text\": \"…\"}, found %.60s", (long long)no, line.c_str());
            const apps::SafetyVerdict v = f.check(j[key].get<std::string>());
            std::printf("%s\n", v.to_json().dump().c_str());
            if (score) {
                if (!j.contains("blocked") || !j["blocked"].is_boolean())
                    fail("safety --score: stdin line %lld: expected a gold \"blocked\": true|false", (long long)no);
                if (j["blocked"].get<bool>()) {
                    ++sc.violations;
                    sc.blocked += v.blocked;
                    sc.right_category += v.blocked && j.contains("category") && j["category"].is_string() &&
                                         v.category == j["category"].get<std::string>();
                } else {
                    ++sc.ordinary;
                    sc.false_positives += v.blocked;
                }
            }
        }
        if (score) std::fprintf(stderr, "%s\n", sc.to_json().dump().c_str());
        return 0;
    };
}

void add_safety_train(CLI::App& app, std::function<int()>& run) {
    auto* tr = app.add_subcommand("safety-train", "Train the safety classifier on generated messages");
    static std::string out;
    static uint64_t seed = 1;
    static int64_t per_category = 2000;
    static double C = 4.0;
    tr->add_option("-o,--out", out, "model folder (its rules.json is kept)")->required();
    tr->add_option("--seed", seed, "generator seed")->capture_default_str();
    tr->add_option("--per-category", per_category, "messages per violation category")->capture_default_str();
    tr->add_option("--C", C, "inverse regularisation strength")->capture_default_str();
    run = [] {
        if (per_category < 10) fail("safety-train: --per-category %lld, expected >= 10", (long long)per_category);
        const double acc = apps::train_safety(out, seed, per_category, C);
        std::fprintf(stderr, "safety-train: held-out accuracy on generated messages %.4f -> %s\n", acc, out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
