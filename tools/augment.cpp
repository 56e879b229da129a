// llmforge augment -i IN.jsonl -o OUT.jsonl: data augmentation for fine-tuning sets — EDA word
// operations (--sr/--ri with a --synonyms file, --rs, --rd) and back-translation through a chat
// model (--back-translate MODEL --via LANG), seeded and reproducible. Formats, the synonym file
// and the random streams: src/train/augment.h.
//
// Checks come first, in order: flags, the synonym file, every input line, then the model is
// loaded; the output is written atomically, so a failure leaves no (or the old) output file.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "progress.h"
#include "train/augment.h"

namespace llmforge::cli {

namespace {

// Stands in for the model while the flags are checked (before the model is loaded).
struct PendingTranslator : train::Translator {
    std::string translate(const std::string&, const std::string&, uint64_t) override {
        fail_kind(ErrorKind::kInternal, "augment: translator used before the model was loaded");
    }
};

}  // namespace

void add_augment(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand(
        "augment", "Augment text/chat JSONL for fine-tuning: EDA (synonyms, insert, swap, delete) and back-translation");
    static std::string input, output, synonyms, bt_model, via, source_lang = "English";
    static train::EdaParams eda;
    static int copies = 1;
    static bool no_originals = false;
    static uint64_t seed = 0;
    static std::vector<std::string> roles = {"user", "assistant"};
    static train::ModelTranslatorOptions mo;
    sub->add_option("-i,--input", input, "input JSONL: {\"text\": ...} or {\"messages\": [...]} per line")->required();
    sub->add_option("-o,--out", output, "output JSONL (written atomically)")->required();
    sub->add_option("--copies", copies, "augmented variants per line")->capture_default_str();
    sub->add_flag("--no-originals", no_originals, "leave the original lines out of the output");
    sub->add_option("-s,--seed", seed, "random seed")->capture_default_str();
    sub->add_option("--sr", eda.sr, "synonym replacement: alpha in (0, 1], words changed = max(1, round(alpha*words))");
    sub->add_option("--ri", eda.ri, "random insertion of synonyms: alpha in (0, 1]");
    sub->add_option("--rs", eda.rs, "random swap of two words: alpha in (0, 1]");
    sub->add_option("--rd", eda.rd, "random deletion: each word with probability p in (0, 1)");
    sub->add_option("--synonyms", synonyms, "synonym file: one comma-separated group per line, '#' comments");
    sub->add_option("--roles", roles, "chat roles whose content is augmented")->delimiter(',')->capture_default_str();
    sub->add_option("--back-translate", bt_model, "chat model for back-translation (HF folder, GGUF)");
    sub->add_option("--via", via, "language to translate through (e.g. French)");
    sub->add_option("--source-lang", source_lang, "language to translate back to")->capture_default_str();
    sub->add_option("--temperature,--temp", mo.temperature, "back-translation sampling temperature (0 = greedy)")
        ->capture_default_str();
    sub->add_option("--top-k", mo.top_k, "back-translation top-k (0 = off)")->capture_default_str();
    sub->add_option("--top-p", mo.top_p, "back-translation top-p (1 = off)")->capture_default_str();
    sub->add_option("-n,--max-tokens", mo.max_tokens, "tokens per translation at most")->capture_default_str();
    sub->add_option("--chat-template", mo.chat_template, "Jinja file instead of the model's template ('chatml': the built-in ChatML)");
    sub->add_option("-c,--ctx-size", mo.ctx_size, "context size (0 = the model's)");
    sub->add_option("-t,--threads", mo.threads, "threads for the model (0 = all cores; output depends on it)");
    run = [] {
        const bool bt = !bt_model.empty();
        if (!bt && !via.empty()) fail("augment: --via needs --back-translate MODEL (hint: --back-translate models/default --via French)");
        PendingTranslator pending;
        train::AugmentConfig cfg;
        cfg.eda = eda;
        cfg.copies = copies;
        cfg.originals = !no_originals;
        cfg.seed = seed;
        cfg.roles = roles;
        cfg.via = via;
        cfg.source_lang = source_lang;
        cfg.translator = bt ? &pending : nullptr;
        train::SynonymTable syn;
        if (!synonyms.empty()) {
            syn = train::SynonymTable::load(synonyms);
            cfg.synonyms = &syn;
        }
        (void)train::Augmenter(cfg);  // checks the flags before anything is read
        const std::string text = read_input(input, "a JSONL file", "check the --input path");
        const train::AugmentStats counts = train::Augmenter::check_input(text, input);
        std::fprintf(stderr, "augment: %s: %lld lines (%lld text, %lld chat)%s\n", input.c_str(), (long long)counts.lines,
                     (long long)counts.text_lines, (long long)counts.chat_lines,
                     cfg.synonyms ? strfmt(", %zu synonym groups", syn.n_groups()).c_str() : "");
        std::unique_ptr<train::ModelTranslator> translator;
        if (bt) {
            mo.model = bt_model;
            translator = std::make_unique<train::ModelTranslator>(mo);
            cfg.translator = translator.get();
            std::fprintf(stderr, "augment: back-translation via %s with %s\n", via.c_str(), translator->describe().c_str());
        }
        const train::Augmenter aug(cfg);
        std::unique_ptr<Progress> prog;
        const train::AugmentStats st = train::augment_to_file(aug, text, input, output, [&](int64_t done, int64_t total) {
            if (!prog) prog = std::make_unique<Progress>("augment", static_cast<double>(total), "lines");
            prog->update(static_cast<double>(done),
                         std::to_string(static_cast<long long>(done)) + " of " + std::to_string(static_cast<long long>(total)) + " lines");
        });
        std::fprintf(stderr, "augment: %lld lines -> %lld variants (%lld texts augmented%s) -> %s\n", (long long)st.lines,
                     (long long)st.variants, (long long)st.texts,
                     bt ? strfmt(", %lld generations, %lld empty back-translations kept the text",
                                 (long long)st.generations, (long long)st.bt_empty).c_str()
                        : "",
                     output.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
