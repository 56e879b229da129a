// Subcommands of the llmforge executable; each lives in tools/<name>.cpp and registers itself on
// the CLI11 app. A subcommand's run function returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

// Registers the subcommand; `run` is set to the action to call if it was chosen.
void add_generate(CLI::App& app, std::function<int()>& run);
void add_bench(CLI::App& app, std::function<int()>& run);
void add_info(CLI::App& app, std::function<int()>& run);
void add_convert(CLI::App& app, std::function<int()>& run);
void add_init_model(CLI::App& app, std::function<int()>& run);
void add_tokenize(CLI::App& app, std::function<int()>& run);
void add_detokenize(CLI::App& app, std::function<int()>& run);
void add_chat_template(CLI::App& app, std::function<int()>& run);
void add_serve(CLI::App& app, std::function<int()>& run);
void add_train(CLI::App& app, std::function<int()>& run);
void add_train_tokenizer(CLI::App& app, std::function<int()>& run);
void add_prepare(CLI::App& app, std::function<int()>& run);
void add_perplexity(CLI::App& app, std::function<int()>& run);
void add_gen_dialogues(CLI::App& app, std::function<int()>& run);
void add_gen_vqa(CLI::App& app, std::function<int()>& run);  // gen_vqa.cpp
void add_train_vqa(CLI::App& app, std::function<int()>& run);  // vqa.cpp
void add_vqa(CLI::App& app, std::function<int()>& run);        // vqa.cpp
void add_train_vlm(CLI::App& app, std::function<int()>& run);  // vlm.cpp
void add_vlm_eval(CLI::App& app, std::function<int()>& run);   // vlm.cpp
void add_chat(CLI::App& app, std::function<int()>& run);
void add_fisher(CLI::App& app, std::function<int()>& run);
void add_logits(CLI::App& app, std::function<int()>& run);
void add_merge_adapter(CLI::App& app, std::function<int()>& run);
void add_augment(CLI::App& app, std::function<int()>& run);
void add_code_eval(CLI::App& app, std::function<int()>& run);
void add_grammar(CLI::App& app, std::function<int()>& run);
void add_complete(CLI::App& app, std::function<int()>& run);
void add_quantize(CLI::App& app, std::function<int()>& run);         // quantize.cpp
void add_imatrix(CLI::App& app, std::function<int()>& run);          // imatrix.cpp
void add_prune(CLI::App& app, std::function<int()>& run);            // prune.cpp
void add_compress_report(CLI::App& app, std::function<int()>& run);  // compress_report.cpp
void add_shop(CLI::App& app, std::function<int()>& run);             // shop.cpp
void add_dst(CLI::App& app, std::function<int()>& run);              // dst.cpp
void add_dst_train(CLI::App& app, std::function<int()>& run);        // dst.cpp
void add_safety(CLI::App& app, std::function<int()>& run);           // safety.cpp
void add_safety_train(CLI::App& app, std::function<int()>& run);     // safety.cpp
void add_retrieve(CLI::App& app, std::function<int()>& run);         // retrieve.cpp
void add_retrieval_train(CLI::App& app, std::function<int()>& run);  // retrieve.cpp
// A model the project ships under models/ ($LLMFORGE_MODELS overrides the folder).
std::string shipped_model(const char* name);

// All of stdin (binary-safe); a read error is fail() with "<command>: cannot read stdin".
std::string read_stdin(const char* command);

// Renders `in` with the Jinja file `template_file`, or else the tokenizer's own chat template;
// BOS/EOS texts come from `tok` (may be null when a template file is given). `model` names the
// tokenizer's source, `template_option` the flag that gives a file, `command` prefixes errors.
std::string render_chat(const Tokenizer* tok, const std::string& model,
                        const std::string& template_file, const char* template_option,
                        const char* command, ChatTemplateInputs in);

}  // namespace llmforge::cli
