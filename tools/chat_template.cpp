// llmforge chat-template: renders a conversation with a model's own Jinja chat template, the way
// Hugging Face's apply_chat_template does, and prints the prompt (nothing added).
//
//   chat-template -m MODEL_OR_TOKENIZER --messages FILE.json [--template FILE.jinja]
//                 [--no-generation-prompt] [--var NAME=JSON]...
//
// The template is the vocabulary's (GGUF tokenizer.chat_template, or chat_template in the
// tokenizer_config.json beside a tokenizer.json) unless --template names a file. FILE.json is
// either the list of messages or an object {"messages": [...], "tools": [...],
// "add_generation_prompt": bool, other keys passed to the template as variables}. --var adds or
// overrides one variable, e.g. --var enable_thinking=false (JSON if it parses, else a string).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json_depth.h"
#include "model/vocab_source.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/value.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

namespace {

using nlohmann::ordered_json;

ordered_json parse_json(const std::string& text, const std::string& where) {
    // Checked before parsing: a parsed value is copied and converted recursively, so a file of
    // 500,000 nested '[' would overflow the stack. One level more than a template may see is
    // allowed for the object that holds "messages".
    const JsonNesting n = json_nesting(text);
    if (n.max_depth > static_cast<size_t>(jinja::kMaxValueDepth) + 1) {
        fail("chat-template: %s nests %zu levels deep at byte %zu, expected at most %d (hint: flatten the data)",
             where.c_str(), n.max_depth, n.at, jinja::kMaxValueDepth + 1);
    }
    try {
        return ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail("chat-template: %s is not valid JSON: %s (hint: strings need double quotes)",
             where.c_str(), e.what());
    }
}

// Fills `in` from the --messages file: a list of messages, or an object holding one.
void read_conversation(const std::string& path, ChatTemplateInputs& in) {
    ordered_json j = parse_json(read_input(path, "messages file"), path);
    if (j.is_array()) {
        in.messages = std::move(j);
        return;
    }
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
        fail("chat-template: %s: expected a list of messages or an object with a \"messages\" "
             "list, found %s",
             path.c_str(), j.type_name());
    }
    in.extra = ordered_json::object();
    for (auto& [key, value] : j.items()) {
        if (key == "messages") {
            in.messages = std::move(value);
        } else if (key == "tools") {
            in.tools = std::move(value);
        } else if (key == "add_generation_prompt" && value.is_boolean()) {
            in.add_generation_prompt = value.get<bool>();
        } else {
            in.extra[key] = std::move(value);
        }
    }
}

}  // namespace

std::string render_chat(const Tokenizer* tok, const std::string& model,
                        const std::string& template_file, const char* template_option,
                        const char* command, ChatTemplateInputs in) {
    std::string source, name;
    if (tok != nullptr) {
        if (tok->bos() >= 0) in.bos_token = tok->token_text(tok->bos());
        if (tok->eos() >= 0) in.eos_token = tok->token_text(tok->eos());
        source = tok->vocab().chat_template;
        name = model;
    }
    if (!template_file.empty()) {
        source = read_input(template_file, "template");
        name = template_file;
    }
    if (source.empty()) {
        fail("%s: %s carries no chat template (no tokenizer.chat_template / chat_template); "
             "hint: pass %s FILE.jinja",
             command, model.c_str(), template_option);
    }
    return ChatTemplate(source, name).render(in);
}

void add_chat_template(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("chat-template",
                                   "Render a conversation with the model's Jinja chat template");
    static std::string model, messages, template_file;
    static bool no_generation_prompt = false;
    static std::vector<std::string> vars;
    sub->add_option("-m,--model", model,
                    "GGUF file, tokenizer.json, folder holding one (the template and BOS/EOS "
                    "come from it)");
    sub->add_option("--messages", messages, "JSON file: the messages, or {\"messages\": ...}")
        ->required();
    sub->add_option("--template", template_file, "Jinja file to use instead of the model's");
    sub->add_flag("--no-generation-prompt", no_generation_prompt,
                  "do not open the assistant's turn at the end");
    sub->add_option("--var", vars, "NAME=JSON: a template variable (e.g. enable_thinking=false)");
    run = [] {
        if (model.empty() && template_file.empty()) {
            fail("chat-template: no template: give -m MODEL (whose tokenizer carries one) or "
                 "--template FILE.jinja");
        }
        std::unique_ptr<Tokenizer> tok;
        if (!model.empty()) tok = Tokenizer::create(load_vocab(model));
        ChatTemplateInputs in;
        read_conversation(messages, in);
        if (no_generation_prompt) in.add_generation_prompt = false;
        if (!in.extra.is_object()) in.extra = ordered_json::object();
        for (const std::string& v : vars) {
            const size_t eq = v.find('=');
            if (eq == std::string::npos || eq == 0) {
                fail("chat-template: --var '%s': expected NAME=JSON (e.g. enable_thinking=false)",
                     v.c_str());
            }
            // JSON when it parses (false, 3, ["a"]), else the plain string.
            ordered_json value = ordered_json::parse(v.substr(eq + 1), nullptr, false);
            in.extra[v.substr(0, eq)] = value.is_discarded() ? ordered_json(v.substr(eq + 1)) : value;
        }
        const std::string prompt =
            render_chat(tok.get(), model, template_file, "--template", "chat-template", std::move(in));
        std::fwrite(prompt.data(), 1, prompt.size(), stdout);
        return 0;
    };
}

}  // namespace llmforge::cli
