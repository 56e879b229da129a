// llmforge perplexity -m MODEL -f TEXT [--ctx N]: perplexity of any model the engine loads on a text
// file (rule: src/runtime/perplexity.h — windows of --ctx tokens from an empty cache, every token
// after a window's first scored). --adapter DIR[:scale] (repeatable): PEFT adapters (LoRA deltas; a
// prompt adapter's virtual tokens before each window, never scored). --kl-base MODEL: also the KL
// divergence of this model's next-token distributions from MODEL's over the same windows (llama.cpp's
// --kl-divergence statistics, runtime/kl_stats.h; both models run side by side, nothing stored).
#include <chrono>
#include <cstdio>

#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "model/model.h"
#include "progress.h"
#include "runtime/adapters.h"
#include "runtime/kl_stats.h"
#include "runtime/perplexity.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

void add_perplexity(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("perplexity",
                                   "Perplexity of a model on a text file: windows of --ctx tokens, each from an empty "
                                   "cache, every token after a window's first scored");
    static std::string model, tokenizer, file;
    static int64_t n_ctx = 0;
    static int threads = 0;
    static std::vector<std::string> adapters;
    static std::string kl_base;
    static std::string cache_k = "f32", cache_v = "f32";
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    static int64_t lsh_probe = -1;
    sub->add_option("--lsh-probe", lsh_probe,
                    "LSH attention: print the query-key scores computed per layer and head, and on every Nth position "
                    "compare LSH with dense attention (0: counts only)");
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF)");
    sub->add_option("-f,--file", file, "text file")->required();
    sub->add_option("-c,--ctx", n_ctx, "window size in tokens (default: min(model context, 512))");
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("--cache-type-k", cache_k, "KV cache type of keys: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("--cache-type-v", cache_v, "KV cache type of values: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    sub->add_option("--kl-base,--kl-divergence-base", kl_base,
                    "base model (e.g. the f32 original): also print the KL divergence from it, top-1 agreement and "
                    "the perplexity ratio (llama.cpp's --kl-divergence statistics)");
    run = [] {
        const KvTypes kv{parse_kv_type(cache_k, "--cache-type-k"), parse_kv_type(cache_v, "--cache-type-v")};
        auto m = Model::load(model, tokenizer);
        m->set_attention(attention);
        if (m->vocab().empty()) fail("perplexity: %s has no tokenizer (hint: --tokenizer)", model.c_str());
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "perplexity: adapters: %s\n", ads.describe().c_str());
        const int64_t train_ctx = m->config().n_ctx_train;
        if (n_ctx == 0) n_ctx = std::min<int64_t>(train_ctx > 0 ? train_ctx : 512, 512);
        if (n_ctx < 2) fail("perplexity: --ctx %lld, expected at least 2 tokens per window", (long long)n_ctx);
        if (train_ctx > 0 && n_ctx > train_ctx)
            fail("perplexity: --ctx %lld is larger than the model's context %lld (hint: --ctx %lld or less)",
                 (long long)n_ctx, (long long)train_ctx, (long long)train_ctx);
        const std::string text = read_input(file, "text");
        auto tok = Tokenizer::create(m->vocab());
        const std::vector<int32_t> ids = tok->encode(text, tok->add_bos_default(), false);
        if (ids.size() < 2)
            fail("perplexity: %s gives %zu tokens, expected at least 2 to score", file.c_str(), ids.size());
        const int64_t windows = (static_cast<int64_t>(ids.size()) + n_ctx - 1) / n_ctx;
        if (!kv.is_f32())
            std::fprintf(stderr, "perplexity: KV cache %s\n",
                         m->config().ds.kv_lora_rank > 0 ? (std::string("MLA latent ") + dtype_name(kv.k)).c_str()
                                                         : kv_types_name(kv).c_str());
        std::fprintf(stderr, "perplexity: %s, %zu tokens, %lld windows of %lld\n", file.c_str(), ids.size(),
                     (long long)windows, (long long)n_ctx);
        if (lsh_probe >= 0 && !m->config().attention_lsh)
            fail("perplexity: --lsh-probe %lld on a model that runs dense attention (hint: add --attention lsh)",
                 (long long)lsh_probe);
        if (m->config().attention_lsh) std::fprintf(stderr, "perplexity: attention %s\n", m->config().lsh.describe().c_str());
        LshStats lsh_stats;
        lsh_stats.probe_every = std::max<int64_t>(lsh_probe, 0);
        Progress prog("perplexity", static_cast<double>(ids.size()), "tokens");
        const auto t0 = std::chrono::steady_clock::now();
        PerplexityResult r = perplexity(*m, ids, n_ctx, threads, [&](int64_t w, int64_t nw, double ppl) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "window %lld/%lld ppl %.4f", (long long)w, (long long)nw, ppl);
            prog.update(static_cast<double>(std::min<int64_t>(w * n_ctx, static_cast<int64_t>(ids.size()))), buf);
        }, ads.seq_adapter(), kv, lsh_probe >= 0 ? &lsh_stats : nullptr);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("perplexity: %.4f ± %.4f (%lld tokens, %lld windows)\n", r.ppl, r.ppl_stderr, (long long)r.n_scored,
                    (long long)r.n_windows);
        std::fprintf(stderr, "perplexity: %.0f tokens/s\n", static_cast<double>(ids.size()) / std::max(s, 1e-9));
        if (lsh_probe >= 0) std::printf("%s", lsh_stats.report().c_str());
        if (!kl_base.empty()) {
            auto base = Model::load(kl_base, tokenizer);
            KlOptions ko;
            ko.n_ctx = n_ctx;
            ko.n_threads = threads;
            ko.adapter = ads.seq_adapter();
            ko.kv_types = kv;  // the base runs with an f32 cache: --kl-base M with -m M measures the KV types
            Progress kprog("kl-divergence", static_cast<double>(windows), "windows");
            const KlStats ks = compare_models(*base, *m, ids, ko, [&](int64_t w, int64_t nw) {
                kprog.update(static_cast<double>(w), "window " + std::to_string(w) + "/" + std::to_string(nw));
            });
            std::printf("\nkl-divergence from %s:\n%s", kl_base.c_str(), format_kl_stats(ks).c_str());
        }
        return 0;
    };
}

}  // namespace llmforge::cli
