// PLACEHOLDER (being written this session): llmforge prepare.
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_prepare(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("prepare", "(not yet built)");
    (void)sub;
    run = []() -> int { throw Error("prepare: not yet built"); };
}

}  // namespace llmforge::cli
