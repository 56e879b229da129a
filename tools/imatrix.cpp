// llmforge imatrix -m MODEL -f TEXT -o imatrix.gguf [--chunk 512] [--chunks N] [-t N]
// [--process-output]: an importance matrix (runtime/imatrix.h) in llama.cpp's format — GGUF when
// the output ends in .gguf, else the legacy .dat — collected as llama-imatrix collects it.
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "model/model.h"
#include "progress.h"
#include "runtime/imatrix.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

void add_imatrix(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("imatrix", "Collect an importance matrix (activation statistics per input column "
                                              "of every weight) over a calibration text, in llama.cpp's format");
    static std::string model, tokenizer, file, out;
    static ImatrixOptions o;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF)");
    sub->add_option("-f,--file", file, "calibration text")->required();
    sub->add_option("-o,--out", out, "output: .gguf (llama.cpp's current format) or any other name (legacy .dat)")
        ->required();
    sub->add_option("-c,--chunk", o.chunk, "tokens per chunk, each from an empty context")->capture_default_str();
    sub->add_option("--chunks", o.max_chunks, "at most this many chunks (0: all)");
    sub->add_flag("--process-output", o.process_output, "also collect output.weight (llama-imatrix --process-output)");
    sub->add_option("-t,--threads", o.n_threads, "threads (0 = all cores)");
    run = [] {
        auto m = Model::load(model, tokenizer);
        if (m->vocab().empty()) fail("imatrix: %s has no tokenizer (hint: --tokenizer)", model.c_str());
        if (o.chunk < 16)
            fail("imatrix: --chunk %lld, expected at least 16 tokens (smaller products are not collected, as in "
                 "llama-imatrix)", (long long)o.chunk);
        const int64_t ctx = m->config().n_ctx_train;
        if (ctx > 0 && o.chunk > ctx)
            fail("imatrix: --chunk %lld is larger than the model's context %lld (hint: --chunk %lld)", (long long)o.chunk,
                 (long long)ctx, (long long)ctx);
        std::string text = read_input(file, "calibration text");
        // llama.cpp's -f drops one trailing newline.
        if (!text.empty() && text.back() == '\n') text.pop_back();
        auto tok = Tokenizer::create(m->vocab());
        const std::vector<int32_t> ids = tok->encode(text, tok->add_bos_default(), false);
        const int64_t avail = static_cast<int64_t>(ids.size()) / o.chunk;
        const int64_t n = o.max_chunks > 0 ? std::min(o.max_chunks, avail) : avail;
        std::fprintf(stderr, "imatrix: %s, %zu tokens, %lld chunks of %lld\n", file.c_str(), ids.size(), (long long)n,
                     (long long)o.chunk);
        Progress prog("imatrix", static_cast<double>(std::max<int64_t>(n, 1) * o.chunk), "tokens");
        o.on_chunk = [&](int64_t done, int64_t all) {
            prog.update(static_cast<double>(done * o.chunk), strfmt("chunk %lld/%lld", (long long)done, (long long)all));
        };
        Imatrix im = collect_imatrix(*m, ids, o);
        im.datasets = {file};
        write_imatrix(im, out);
        std::fprintf(stderr, "imatrix: wrote %s (%zu entries, %lld chunks of %lld tokens)\n", out.c_str(),
                     im.tensors.size(), (long long)im.chunks, (long long)im.chunk_size);
        return 0;
    };
}

}  // namespace llmforge::cli
