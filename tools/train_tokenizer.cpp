// llmforge train-tokenizer --input FILES… --vocab-size N --out DIR/tokenizer.json: learns a
// byte-level BPE vocabulary (src/tokenizer/bpe_learner.h) and writes tokenizer.json plus
// tokenizer_config.json (EOS, chat template) beside it.
//   Inputs: text files (all of the text), or .jsonl files whose lines hold a "text" field
//   (--field) or a "messages" array of {role, content} (the contents are used).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "io/atomic_file.h"
#include "progress.h"
#include "tokenizer/bpe_learner.h"
#include "tokenizer/utf8.h"

namespace llmforge::cli {

namespace {

// Calls fn with each text of an input file (see the header comment).
void for_each_text(const std::string& path, const std::string& field, const std::function<void(const std::string&)>& fn) {
    if (!std::filesystem::exists(path)) fail("%s: no such input file", path.c_str());
    const bool jsonl = std::filesystem::path(path).extension() == ".jsonl";
    if (!jsonl) {
        fn(read_input(path, "input"));
        return;
    }
    std::ifstream f(path);
    std::string line;
    int64_t no = 0;
    while (std::getline(f, line)) {
        ++no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            fail("%s:%lld: not valid JSON (%s)", path.c_str(), (long long)no, e.what());
        }
        if (j.is_object() && j.contains(field) && j[field].is_string()) {
            fn(j[field].get<std::string>());
        } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
            for (const auto& m : j["messages"])
                if (m.is_object() && m.contains("content") && m["content"].is_string()) fn(m["content"].get<std::string>());
        } else {
            fail("%s:%lld: expected an object with a \"%s\" string or a \"messages\" array", path.c_str(), (long long)no,
                 field.c_str());
        }
    }
}

}  // namespace

void add_train_tokenizer(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("train-tokenizer", "Learn a byte-level BPE vocabulary (writes tokenizer.json)");
    static std::vector<std::string> inputs, special = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    static int64_t vocab_size = 4096, min_freq = 2;
    static std::string out, field = "text", eos = "<|im_end|>";
    sub->add_option("--input", inputs, "text or .jsonl files")->required();
    sub->add_option("--vocab-size", vocab_size, "tokens in the vocabulary (special + 256 bytes + merges)")
        ->capture_default_str();
    sub->add_option("-o,--out", out, "tokenizer.json to write (tokenizer_config.json goes beside it)")->required();
    sub->add_option("--special", special, "special tokens (ids 0, 1, …)")->capture_default_str();
    sub->add_option("--eos", eos, "the end-of-sequence token (one of --special)")->capture_default_str();
    sub->add_option("--min-frequency", min_freq, "stop when the best pair is rarer than this")->capture_default_str();
    sub->add_option("--field", field, "JSONL text field")->capture_default_str();
    run = [] {
        if (std::find(special.begin(), special.end(), eos) == special.end())
            fail("train-tokenizer: --eos '%s' is not one of the --special tokens", eos.c_str());
        const auto t0 = std::chrono::steady_clock::now();
        BpeLearner learner;
        size_t bytes = 0;
        for (const std::string& in : inputs) {
            for_each_text(in, field, [&](const std::string& text) {
                if (!utf8_is_valid(text)) fail("%s: text is not valid UTF-8", in.c_str());
                learner.add_text(text);
                bytes += text.size();
            });
        }
        if (bytes == 0) fail("train-tokenizer: the inputs hold no text (empty corpus)");
        std::fprintf(stderr, "train-tokenizer: %.1f MB of text, %lld distinct words\n", bytes / 1e6,
                     (long long)learner.n_words());
        Progress prog("train-tokenizer", static_cast<double>(vocab_size), "tokens");
        BpeLearnResult r = learner.learn(vocab_size, special, min_freq, [&](int64_t done, int64_t want) {
            prog.update(static_cast<double>(vocab_size - want + done),
                        std::to_string(done) + "/" + std::to_string(want) + " merges");
        });
        std::filesystem::path p(out);
        if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
        const std::string tj = bpe_tokenizer_json(r);
        const std::string tc = bpe_tokenizer_config_json(eos, "<|endoftext|>");
        AtomicFile f1(out);
        f1.write(tj.data(), tj.size());
        f1.commit();
        AtomicFile f2((p.parent_path() / "tokenizer_config.json").string());
        f2.write(tc.data(), tc.size());
        f2.commit();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "train-tokenizer: %zu tokens (%zu merges) in %.1f s -> %s\n", r.tokens.size(), r.merges.size(),
                     s, out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
