// PLACEHOLDER (being written this session): llmforge train-tokenizer.
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_train_tokenizer(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("train-tokenizer", "(not yet built)");
    (void)sub;
    run = []() -> int { throw Error("train-tokenizer: not yet built"); };
}

}  // namespace llmforge::cli
