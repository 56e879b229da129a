// llmforge logits -m MODEL [--adapter DIR[:scale]]… --ids "1 2 3" -o OUT.f32: the raw logits of
// every given position as float32, little-endian, row-major (n_ids, vocab), for test suites and
// cross-checks against other implementations (PyTorch, llama.cpp).
//
// Exactly the ids given are run, from an empty cache at position 0 (no BOS is added). With a
// prompt adapter its N virtual rows run first (positions 0..N-1) and only the rows of the given
// ids are written. The file is replaced atomically; on any error it is left as it was.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "model/model.h"
#include "runtime/adapters.h"
#include "runtime/context.h"

namespace llmforge::cli {

namespace {

// "1 2 3" (spaces, tabs, newlines or commas between) -> ids, each checked against the vocabulary.
std::vector<int32_t> parse_ids(const std::string& text, int64_t n_vocab) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            ++i;
            continue;
        }
        size_t e = i;
        while (e < text.size() && !std::strchr(" \t\n\r,", text[e])) ++e;
        const std::string word = text.substr(i, e - i);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(word.c_str(), &end, 10);
        if (end != word.c_str() + word.size() || errno == ERANGE || word[0] == '+')
            fail("logits: --ids: '%s' (item %zu) is not a token id (expected integers separated by spaces)",
                 word.c_str(), ids.size() + 1);
        if (v < 0 || v >= n_vocab)
            fail("logits: --ids: token id %lld (item %zu) is out of range (expected 0 <= id < vocab size %lld)", v,
                 ids.size() + 1, (long long)n_vocab);
        ids.push_back(static_cast<int32_t>(v));
        i = e;
    }
    if (ids.empty()) fail("logits: --ids is empty (expected token ids such as \"1 2 3\")");
    return ids;
}

}  // namespace

void add_logits(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("logits",
                                   "Write the raw float32 logits of every position of the given token ids "
                                   "(row-major [n_ids][vocab], little-endian)");
    static std::string model, tokenizer, ids_text, out;
    static std::vector<std::string> adapters;
    static int threads = 0;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF)");
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    sub->add_option("--ids", ids_text, "token ids, e.g. \"1 2 3\" (run exactly as given: no BOS is added)")
        ->required();
    sub->add_option("-o,--out", out, "output file (.f32)")->required();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    run = [] {
        static_assert(sizeof(float) == 4);
        {
            const uint16_t probe = 1;
            uint8_t b;
            std::memcpy(&b, &probe, 1);
            LF_ASSERT(b == 1);  // the floats are written as they are in memory: little-endian hosts only
        }
        auto m = Model::load(model, tokenizer);
        m->set_attention(attention);
        const int64_t V = m->config().n_vocab;
        const std::vector<int32_t> ids = parse_ids(ids_text, V);
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "logits: adapters: %s\n", ads.describe().c_str());
        ContextParams cp;
        cp.n_ctx = static_cast<int64_t>(ids.size()) + ads.n_virtual();
        cp.n_threads = threads;
        cp.adapter = ads.seq_adapter();
        if (m->config().n_ctx_train > 0 && cp.n_ctx > m->config().n_ctx_train)
            std::fprintf(stderr, "logits: note: %lld positions, more than the model's context of %lld\n",
                         (long long)cp.n_ctx, (long long)m->config().n_ctx_train);
        Context ctx(*m, cp);
        const std::vector<float> logits = ctx.decode_all(ids);  // (n_ids, V)
        AtomicFile f(out);
        f.write(logits.data(), logits.size() * sizeof(float));
        f.commit();
        std::fprintf(stderr, "logits: wrote %s (%zu x %lld float32)\n", out.c_str(), ids.size(), (long long)V);
        return 0;
    };
}

}  // namespace llmforge::cli
