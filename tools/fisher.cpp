// llmforge fisher -m MODEL --data TASK_A -o FISHER: the diagonal Fisher information of a model on
// a task's data and the model's weights, for EWC (`train --ewc-lambda L --ewc-fisher FISHER`;
// src/train/ewc.h).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "train/ewc.h"

namespace llmforge::cli {

void add_fisher(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("fisher", "Diagonal Fisher information on a task's data (for train --ewc-fisher)");
    static train::FisherOptions o;
    sub->add_option("-m,--model", o.model, "the model (as trained on task A): HF folder, GGUF or llama2.c")->required();
    sub->add_option("--data", o.data, "task A's tokens: a .u16/.u32 file or a prepare folder")->required();
    sub->add_option("-o,--out", o.out, "the Fisher file (safetensors)")->required();
    sub->add_option("--samples", o.samples, "rows (one gradient each)")->capture_default_str();
    sub->add_option("--seq-len", o.seq_len, "tokens per row")->capture_default_str();
    sub->add_option("--seed", o.seed, "row choice")->capture_default_str();
    sub->add_option("-t,--threads", o.threads, "threads (0 = all cores)");
    run = [] {
        std::unique_ptr<Progress> prog;
        const train::FisherResult r = train::compute_fisher(o, [&](int64_t done, int64_t total) {
            if (!prog) prog = std::make_unique<Progress>("fisher", static_cast<double>(total), "rows");
            prog->update(static_cast<double>(done), std::to_string(done) + " of " + std::to_string(total) + " rows");
        });
        std::fprintf(stderr, "fisher: %lld rows, %lld parameters, mean F %.3g, %.1f s -> %s\n", (long long)r.samples,
                     (long long)r.params, r.mean_fisher, r.seconds, o.out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
