// llmforge prepare --tokenizer TOK --input FILES… --out DIR: tokenises text / JSONL into the token
// shards `llmforge train --data DIR` reads (format: src/train/prepare_data.h). With --chat the input
// is OpenAI-style conversations ({"messages": [...]} per .jsonl line) and the folder is SFT data: a
// loss mask beside the tokens counts only the assistant replies and their end-of-turn tokens.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "progress.h"
#include "train/prepare_data.h"

namespace llmforge::cli {

void add_prepare(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("prepare", "Tokenise text or JSONL into token shards for training");
    static train::PrepareOptions o;
    static bool no_eos = false;
    sub->add_option("--tokenizer", o.tokenizer, "tokenizer.json (or its folder), GGUF or tok*.bin")->required();
    sub->add_option("--input", o.inputs, "text files (documents split on blank lines) or .jsonl")->required();
    sub->add_option("-o,--out", o.out, "output folder")->required();
    sub->add_option("--val-fraction", o.val_fraction, "share of documents for validation")->capture_default_str();
    sub->add_option("--shard-tokens", o.shard_tokens, "tokens per shard file at most")->capture_default_str();
    sub->add_option("--field", o.field, "JSONL text field")->capture_default_str();
    sub->add_flag("--no-eos", no_eos, "do not end documents with the EOS token");
    sub->add_flag("--chat", o.chat,
                  "SFT data: each .jsonl line is {\"messages\": [...]}, rendered with the chat template; the loss "
                  "counts only assistant replies");
    sub->add_option("--chat-template", o.chat_template,
                    "a Jinja chat template file, or 'chatml' (default: the tokenizer's own)");
    run = [] {
        o.eos = !no_eos;
        std::unique_ptr<Progress> prog;
        train::PrepareResult r = train::prepare_data(o, [&](double done, double total) {
            if (!prog) prog = std::make_unique<Progress>("prepare", total, "B");
            prog->update(done, std::to_string(static_cast<long long>(done / 1e6)) + " of " +
                                   std::to_string(static_cast<long long>(total / 1e6)) + " MB");
        });
        std::fprintf(stderr, "prepare: %lld %s, %lld train + %lld validation tokens%s, %.1f MB at %.1f MB/s -> %s\n",
                     (long long)r.documents, o.chat ? "dialogues" : "documents", (long long)r.train_tokens,
                     (long long)r.val_tokens,
                     o.chat ? (" (" + std::to_string(r.counted_tokens) + " counted by the loss)").c_str() : "",
                     r.bytes / 1e6, r.bytes / 1e6 / std::max(r.seconds, 1e-9), o.out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
