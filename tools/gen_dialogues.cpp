// llmforge gen-dialogues --n N --seed S --out FILE.jsonl: the synthetic customer-service corpus
// the default chat model is trained on (src/train/dialogue_corpus.h), one dialogue per line.
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "train/dialogue_corpus.h"

namespace llmforge::cli {

void add_gen_dialogues(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("gen-dialogues", "Write the synthetic shop customer-service dialogue corpus (JSONL)");
    static int64_t n = 20000;
    static uint64_t seed = 1;
    static std::string out;
    sub->add_option("--n", n, "dialogues")->capture_default_str();
    sub->add_option("--seed", seed, "seed (same seed, same bytes)")->capture_default_str();
    sub->add_option("-o,--out", out, "output .jsonl")->required();
    run = [] {
        if (n < 1) fail("gen-dialogues: --n is %lld, expected at least 1", (long long)n);
        AtomicFile f(out);
        size_t bytes = 0;
        for (int64_t i = 0; i < n; ++i) {
            std::string line = train::dialogue_json(train::make_dialogue(seed, static_cast<uint64_t>(i))) + "\n";
            f.write(line.data(), line.size());
            bytes += line.size();
        }
        f.commit();
        std::fprintf(stderr, "gen-dialogues: %lld dialogues, %.1f MB -> %s\n", (long long)n, bytes / 1e6, out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
