// llmforge command-line entry point. Every user-facing failure ends as one line on stderr
// ("llmforge: <what>") and exit code 1; usage errors exit 2.
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <string>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
    CLI::App app{"llmforge — run, convert and benchmark Llama-family models on the CPU"};
    app.require_subcommand(1);
    std::map<std::string, std::function<int()>> cmds;
    llmforge::cli::add_generate(app, cmds["generate"]);
    llmforge::cli::add_bench(app, cmds["bench"]);
    llmforge::cli::add_info(app, cmds["info"]);
    llmforge::cli::add_convert(app, cmds["convert"]);
    llmforge::cli::add_init_model(app, cmds["init-model"]);
    llmforge::cli::add_tokenize(app, cmds["tokenize"]);
    llmforge::cli::add_detokenize(app, cmds["detokenize"]);
    llmforge::cli::add_chat_template(app, cmds["chat-template"]);
    llmforge::cli::add_serve(app, cmds["serve"]);
    llmforge::cli::add_train(app, cmds["train"]);
    llmforge::cli::add_train_tokenizer(app, cmds["train-tokenizer"]);
    llmforge::cli::add_prepare(app, cmds["prepare"]);
    llmforge::cli::add_perplexity(app, cmds["perplexity"]);
    llmforge::cli::add_gen_dialogues(app, cmds["gen-dialogues"]);
    llmforge::cli::add_gen_vqa(app, cmds["gen-vqa"]);
    llmforge::cli::add_train_vqa(app, cmds["train-vqa"]);
    llmforge::cli::add_vqa(app, cmds["vqa"]);
    llmforge::cli::add_train_vlm(app, cmds["train-vlm"]);
    llmforge::cli::add_vlm_eval(app, cmds["vlm-eval"]);
    llmforge::cli::add_chat(app, cmds["chat"]);
    llmforge::cli::add_logits(app, cmds["logits"]);
    llmforge::cli::add_merge_adapter(app, cmds["merge-adapter"]);
    llmforge::cli::add_augment(app, cmds["augment"]);
    llmforge::cli::add_fisher(app, cmds["fisher"]);
    llmforge::cli::add_code_eval(app, cmds["code-eval"]);
    llmforge::cli::add_grammar(app, cmds["grammar"]);
    llmforge::cli::add_complete(app, cmds["complete"]);
    llmforge::cli::add_quantize(app, cmds["quantize"]);
    llmforge::cli::add_imatrix(app, cmds["imatrix"]);
    llmforge::cli::add_prune(app, cmds["prune"]);
    llmforge::cli::add_compress_report(app, cmds["compress-report"]);
    llmforge::cli::add_shop(app, cmds["shop"]);
    llmforge::cli::add_dst(app, cmds["dst"]);
    llmforge::cli::add_dst_train(app, cmds["dst-train"]);
    llmforge::cli::add_safety(app, cmds["safety"]);
    llmforge::cli::add_safety_train(app, cmds["safety-train"]);
    llmforge::cli::add_retrieve(app, cmds["retrieve"]);
    llmforge::cli::add_retrieval_train(app, cmds["retrieval-train"]);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        return cmds.at(app.get_subcommands().front()->get_name())();
    } catch (const llmforge::Error& e) {
        std::fprintf(stderr, "llmforge: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "llmforge: out of memory (hint: use a smaller model or --ctx-size)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "llmforge: %s\n", e.what());
        return 1;
    }
    return 0;
}
