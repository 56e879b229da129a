// llmforge dst [-m MODEL] < dialogues.jsonl: dialogue-state tracking (apps/shop/dst.h). Each input
// line {"turns": ["user text", …]} gives one output line {"states": [state after each turn]}; with
// --score, lines that also carry gold "states" are scored (joint goal and per-slot accuracy on
// stderr as JSON). llmforge dst-train --out DIR trains the intent classifier (make dst-model).
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/shop/dst.h"
#include "commands.h"
#include "core/error.h"

#ifndef LLMFORGE_SOURCE_DIR
#define LLMFORGE_SOURCE_DIR "."
#endif

namespace llmforge::cli {

// The shipped models: $LLMFORGE_MODELS, else the source tree's models/ folder.
std::string shipped_model(const char* name) {
    const char* env = std::getenv("LLMFORGE_MODELS");
    return std::string(env && *env ? env : LLMFORGE_SOURCE_DIR "/models") + "/" + name;
}

void add_dst(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("dst", "Track dialogue states of shop conversations (JSONL in, JSONL out)");
    static std::string model;
    static bool score = false;
    sub->add_option("-m,--model", model, "DST model folder (default: the shipped models/dst)");
    sub->add_flag("--score", score, "score against the input's gold \"states\" (printed to stderr)");
    run = [] {
        const apps::DialogueStateTracker dst(model.empty() ? shipped_model("dst") : model);
        std::istringstream in(read_stdin("dst"));
        std::string line;
        std::vector<std::vector<apps::DstState>> pred, gold;
        for (int64_t no = 1; std::getline(in, line); ++no) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object() || !j.contains("turns") || !j["turns"].is_array())
                fail("dst: stdin line %lld: expected {\"turns\": [\"user text\", …]}, found %.60s", (long long)no, line.c_str());
            std::vector<std::string> turns;
            for (const auto& t : j["turns"]) {
                if (!t.is_string()) fail("dst: stdin line %lld: every turn must be a string, found %s", (long long)no, t.dump().c_str());
                turns.push_back(t.get<std::string>());
            }
            const auto states = dst.track(turns);
            nlohmann::ordered_json out = {{"states", nlohmann::ordered_json::array()}};
            for (const auto& s : states) out["states"].push_back(s.to_json());
            std::printf("%s\n", out.dump().c_str());
            if (score) {
                if (!j.contains("states") || !j["states"].is_array() || j["states"].size() != turns.size())
                    fail("dst --score: stdin line %lld: expected gold \"states\", one per turn", (long long)no);
                std::vector<apps::DstState> g;
                for (const auto& s : j["states"]) g.push_back(apps::DstState::from_json(s));
                gold.push_back(std::move(g));
                pred.push_back(states);
            }
        }
        if (score) std::fprintf(stderr, "%s\n", apps::score_dst(pred, gold).to_json().dump().c_str());
        return 0;
    };
}

void add_dst_train(CLI::App& app, std::function<int()>& run) {
    auto* tr = app.add_subcommand("dst-train", "Train the DST intent classifier on generated utterances");
    static std::string out;
    static uint64_t seed = 1;
    static int64_t per_label = 3000;
    static double C = 4.0;
    tr->add_option("-o,--out", out, "model folder to write")->required();
    tr->add_option("--seed", seed, "generator seed")->capture_default_str();
    tr->add_option("--per-label", per_label, "utterances per label")->capture_default_str();
    tr->add_option("--C", C, "inverse regularisation strength")->capture_default_str();
    run = [] {
        if (per_label < 10) fail("dst-train: --per-label %lld, expected >= 10", (long long)per_label);
        const double acc = apps::train_dst(out, seed, per_label, C);
        std::fprintf(stderr, "dst-train: held-out accuracy on generated utterances %.4f -> %s\n", acc, out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
