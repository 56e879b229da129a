// PLACEHOLDER (being written this session): llmforge perplexity.
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_perplexity(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("perplexity", "(not yet built)");
    (void)sub;
    run = []() -> int { throw Error("perplexity: not yet built"); };
}

}  // namespace llmforge::cli
