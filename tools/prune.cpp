// llmforge prune (issue 16): being written.
#include "commands.h"

#include "core/error.h"

namespace llmforge::cli {

void add_prune(CLI::App& app, std::function<int()>& run) {
    app.add_subcommand("prune", "(not yet implemented)");
    run = [] { fail("prune: not implemented yet"); return 2; };
}

}  // namespace llmforge::cli
