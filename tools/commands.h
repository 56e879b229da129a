// Subcommands of the llmforge executable; each lives in tools/<name>.cpp and registers itself on
// the CLI11 app. A subcommand's run function returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace llmforge::cli {

// Registers the subcommand; `run` is set to the action to call if it was chosen.
void add_generate(CLI::App& app, std::function<int()>& run);
void add_bench(CLI::App& app, std::function<int()>& run);
void add_info(CLI::App& app, std::function<int()>& run);
void add_convert(CLI::App& app, std::function<int()>& run);
void add_init_model(CLI::App& app, std::function<int()>& run);
void add_tokenize(CLI::App& app, std::function<int()>& run);
void add_detokenize(CLI::App& app, std::function<int()>& run);
void add_chat_template(CLI::App& app, std::function<int()>& run);

}  // namespace llmforge::cli
