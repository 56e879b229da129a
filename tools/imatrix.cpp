// llmforge imatrix (issue 16): being written.
#include "commands.h"

#include "core/error.h"

namespace llmforge::cli {

void add_imatrix(CLI::App& app, std::function<int()>& run) {
    app.add_subcommand("imatrix", "(not yet implemented)");
    run = [] { fail("imatrix: not implemented yet"); return 2; };
}

}  // namespace llmforge::cli
