// llmforge bench: prompt-processing and generation throughput like llama-bench
// (pp: P tokens in one batch from an empty cache; tg: N single-token decodes from an empty cache),
// mean ± sd over R repetitions after one warm-up, plus peak RSS. --adapter DIR[:scale]
// (repeatable): the same with PEFT adapters (LoRA deltas on every row; a prompt adapter's virtual
// tokens are run once, before the first repetition, and stay in the cache).
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "runtime/adapters.h"
#include "runtime/context.h"

namespace llmforge::cli {

namespace {

struct Stat {
    double mean = 0, sd = 0;
};
Stat stats(const std::vector<double>& v) {
    Stat s;
    for (double x : v) s.mean += x;
    s.mean /= v.size();
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
    return s;
}
double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double peak_rss_mib() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

}  // namespace

void add_bench(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("bench", "Measure prompt processing and generation speed");
    static std::string model;
    static int n_prompt = 512, n_gen = 128, threads = 0, reps = 5, mmap = 1;
    static std::vector<std::string> adapters;
    sub->add_option("-m,--model", model, "model file or folder")->required();
    sub->add_option("-p,--n-prompt", n_prompt, "prompt tokens (0 = skip pp)")->capture_default_str();
    sub->add_option("-n,--n-gen", n_gen, "generated tokens (0 = skip tg)")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("-r,--repetitions", reps, "repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
    sub->add_option("--mmap", mmap, "1: weights stay memory-mapped; 0: loaded into huge-page memory")
        ->capture_default_str()->check(CLI::Range(0, 1));
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    run = [] {
        auto m = Model::load(model, "", mmap != 0);
        const ModelConfig& c = m->config();
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "bench: adapters: %s\n", ads.describe().c_str());
        ContextParams cp;
        cp.adapter = ads.seq_adapter();
        cp.n_ctx = std::max(n_prompt, n_gen) + 1 + ads.n_virtual();
        cp.n_batch = std::max(n_prompt, 1);
        cp.n_threads = threads;
        Context ctx(*m, cp);
        if (ads.n_virtual() > 0) ctx.decode({});  // the virtual rows, once (clear() keeps them)
        std::mt19937 rng(42);
        std::vector<int32_t> prompt(n_prompt);
        for (auto& t : prompt) t = static_cast<int32_t>(rng() % c.n_vocab);

        std::string types;
        {
            std::map<std::string, size_t> by;
            for (const auto& [n, t] : m->files().tensors) by[dtype_name(t.dtype())] += t.nbytes();
            size_t best = 0;
            for (const auto& [k, b] : by)
                if (b > best) best = b, types = k;
        }
        std::fprintf(stderr, "bench: %s: %s %.1fM params, %s weights %.1f MiB, %d threads, kernels %s, mmap %d\n",
                     model.c_str(), c.arch.c_str(), m->n_params() / 1e6, types.c_str(),
                     m->weight_bytes() / 1048576.0, ctx.pool().size(),
                     kernels::isa_name(kernels::kernels().isa), mmap);
        std::printf("| model | type | size | threads | test | t/s |\n|---|---|---|---|---|---|\n");
        auto row = [&](const char* test, const std::vector<double>& v) {
            Stat s = stats(v);
            std::printf("| %s %.0fM | %s | %.1f MiB | %d | %s | %.2f ± %.2f |\n", c.arch.c_str(),
                        m->n_params() / 1e6, types.c_str(), m->weight_bytes() / 1048576.0,
                        ctx.pool().size(), test, s.mean, s.sd);
            std::fflush(stdout);
        };
        if (n_prompt > 0) {
            std::vector<double> tps;
            for (int r = -1; r < reps; ++r) {
                ctx.clear();
                double t0 = now();
                ctx.decode(prompt);
                double dt = now() - t0;
                if (r >= 0) tps.push_back(n_prompt / dt);
                std::fprintf(stderr, "\rbench: pp%d rep %d/%d: %.1f t/s   ", n_prompt, r + 1, reps, n_prompt / dt);
            }
            std::fprintf(stderr, "\n");
            row(("pp" + std::to_string(n_prompt)).c_str(), tps);
        }
        if (n_gen > 0) {
            std::vector<double> tps;
            for (int r = -1; r < reps; ++r) {
                ctx.clear();
                int32_t tok = static_cast<int32_t>(rng() % c.n_vocab);
                double t0 = now();
                for (int i = 0; i < n_gen; ++i) {
                    const auto& lg = ctx.decode({tok});
                    tok = static_cast<int32_t>((static_cast<uint32_t>(lg[0] * 1e3f) + i) % c.n_vocab);
                }
                double dt = now() - t0;
                if (r >= 0) tps.push_back(n_gen / dt);
                std::fprintf(stderr, "\rbench: tg%d rep %d/%d: %.2f t/s   ", n_gen, r + 1, reps, n_gen / dt);
            }
            std::fprintf(stderr, "\n");
            row(("tg" + std::to_string(n_gen)).c_str(), tps);
        }
        std::printf("\npeak RSS: %.1f MiB\n", peak_rss_mib());
        return 0;
    };
}

}  // namespace llmforge::cli
