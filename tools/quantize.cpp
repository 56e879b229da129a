// llmforge quantize (issue 16): being written.
#include "commands.h"

#include "core/error.h"

namespace llmforge::cli {

void add_quantize(CLI::App& app, std::function<int()>& run) {
    app.add_subcommand("quantize", "(not yet implemented)");
    run = [] { fail("quantize: not implemented yet"); return 2; };
}

}  // namespace llmforge::cli
