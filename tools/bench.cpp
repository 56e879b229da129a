// llmforge bench: prompt-processing and generation throughput like llama-bench
// (pp: P tokens in one batch from an empty cache; tg: N single-token decodes from an empty cache),
// mean ± sd over R repetitions after one warm-up, plus peak RSS. --adapter DIR[:scale]
// (repeatable): the same with PEFT adapters (LoRA deltas on every row; a prompt adapter's virtual
// tokens are run once, before the first repetition, and stay in the cache).
// --cache-type-k / --cache-type-v: how the KV cache stores keys and values (f32, f16, q8_0, q4_0);
// --depth D: both tests start with D tokens already in the cache (a random prompt prefilled once,
// untimed; each repetition truncates back to it), like llama-bench's -d: decode speed at a depth.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "attention_flags.h"
#include "bench_speed.h"
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
    static std::string cache_k = "f32", cache_v = "f32";
    static int depth = 0;
    sub->add_option("-m,--model", model, "model file or folder")->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    sub->add_option("-p,--n-prompt", n_prompt, "prompt tokens (0 = skip pp)")->capture_default_str();
    sub->add_option("-n,--n-gen", n_gen, "generated tokens (0 = skip tg)")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("-r,--repetitions", reps, "repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
    sub->add_option("--mmap", mmap, "1: weights stay memory-mapped; 0: loaded into huge-page memory")
        ->capture_default_str()->check(CLI::Range(0, 1));
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    sub->add_option("--cache-type-k", cache_k, "KV cache type of keys: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("--cache-type-v", cache_v, "KV cache type of values: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("-d,--depth", depth, "tokens already in the cache before each test (tg at depth D)")
        ->capture_default_str()->check(CLI::Range(0, 1 << 24));
    run = [] {
        const KvTypes kv{parse_kv_type(cache_k, "--cache-type-k"), parse_kv_type(cache_v, "--cache-type-v")};
        auto m = Model::load(model, "", mmap != 0);
        m->set_attention(attention);
        const ModelConfig& c = m->config();
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "bench: adapters: %s\n", ads.describe().c_str());
        ContextParams cp;
        cp.adapter = ads.seq_adapter();
        cp.n_ctx = depth + std::max(n_prompt, n_gen) + 1 + ads.n_virtual();
        cp.kv_types = kv;
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
        // --depth: the cache holds `depth` random tokens (after any virtual rows) before each run.
        const int64_t base = ctx.n_past();
        if (depth > 0) {
            std::vector<int32_t> fill(depth);
            for (auto& t : fill) t = static_cast<int32_t>(rng() % c.n_vocab);
            ctx.decode(fill);
        }
        const std::string at = depth > 0 ? " @ d" + std::to_string(depth) : "";
        auto at_depth = [&](const std::function<double()>& once, const char* what) {
            std::vector<double> tps;
            for (int r = -1; r < reps; ++r) {
                ctx.truncate(base + depth);
                const double v = once();
                if (r >= 0) tps.push_back(v);
                std::fprintf(stderr, "\rbench: %s%s rep %d/%d: %.2f t/s   ", what, at.c_str(), r + 1, reps, v);
            }
            return tps;
        };
        if (n_prompt > 0) {
            const std::vector<double> tps =
                depth > 0 ? at_depth([&] {
                    const double t0 = bench_now();
                    ctx.decode(prompt);
                    return n_prompt / (bench_now() - t0);
                }, ("pp" + std::to_string(n_prompt)).c_str())
                          : bench_pp(ctx, prompt, reps, [](int r, double tps) {
                                std::fprintf(stderr, "\rbench: pp%d rep %d/%d: %.1f t/s   ", n_prompt, r, reps, tps);
                            });
            std::fprintf(stderr, "\n");
            row(("pp" + std::to_string(n_prompt) + at).c_str(), tps);
        }
        if (n_gen > 0) {
            const std::vector<double> tps =
                depth > 0 ? at_depth([&] {
                    int32_t tok = static_cast<int32_t>(rng() % c.n_vocab);
                    const double t0 = bench_now();
                    for (int i = 0; i < n_gen; ++i) {
                        const auto& lg = ctx.decode({tok});
                        tok = static_cast<int32_t>((static_cast<uint32_t>(lg[0] * 1e3f) + i) % c.n_vocab);
                    }
                    return n_gen / (bench_now() - t0);
                }, ("tg" + std::to_string(n_gen)).c_str())
                          : bench_tg(ctx, n_gen, reps, rng, [](int r, double tps) {
                                std::fprintf(stderr, "\rbench: tg%d rep %d/%d: %.2f t/s   ", n_gen, r, reps, tps);
                            });
            std::fprintf(stderr, "\n");
            row(("tg" + std::to_string(n_gen) + at).c_str(), tps);
        }
        const size_t kv_pos = m->new_memory(1, kv)->bytes_per_position();
        // MLA (DeepSeek) caches one latent row per layer, stored as --cache-type-k.
        const std::string kv_name = m->config().ds.kv_lora_rank > 0
                                        ? std::string("MLA latent ") + dtype_name(kv.k)
                                        : kv_types_name(kv);
        std::printf("\nKV cache: %s, %.1f KiB per position, %.1f MiB for %lld positions\n", kv_name.c_str(),
                    kv_pos / 1024.0, kv_pos * static_cast<double>(ctx.n_ctx()) / 1048576.0, (long long)ctx.n_ctx());
        std::printf("peak RSS: %.1f MiB\n", peak_rss_mib());
        return 0;
    };
}

}  // namespace llmforge::cli
