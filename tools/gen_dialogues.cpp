// PLACEHOLDER (being written this session): llmforge gen-dialogues.
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_gen_dialogues(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("gen-dialogues", "(not yet built)");
    (void)sub;
    run = []() -> int { throw Error("gen-dialogues: not yet built"); };
}

}  // namespace llmforge::cli
