// llmforge compress-report (issue 16): being written.
#include "commands.h"

#include "core/error.h"

namespace llmforge::cli {

void add_compress_report(CLI::App& app, std::function<int()>& run) {
    app.add_subcommand("compress-report", "(not yet implemented)");
    run = [] { fail("compress-report: not implemented yet"); return 2; };
}

}  // namespace llmforge::cli
