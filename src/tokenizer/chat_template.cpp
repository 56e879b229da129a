// HF chat-template convention on top of the Jinja engine (see chat_template.h).
#include "tokenizer/chat_template.h"

#include <ctime>

#include "core/error.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge {

namespace {

using jinja::CallArgs;
using jinja::DictData;
using jinja::Value;

std::string origin_of(const std::string& name) {
    return name.rfind("chat template", 0) == 0 ? name : "chat template " + name;
}

Value raise_exception(CallArgs& a) {
    const std::string msg = a.pos.empty() ? std::string() : a.pos[0].str();
    throw jinja::TemplateError(msg, "the template rejected these inputs (raise_exception)");
}

// datetime.now().strftime(fmt)
Value strftime_now(CallArgs& a) {
    if (a.pos.size() != 1 || !a.pos[0].is_string())
        throw jinja::TemplateError("strftime_now() takes one format string", jinja::kHintType);
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[512];
    const size_t n = std::strftime(buf, sizeof(buf), a.pos[0].as_string().c_str(), &local);
    return Value::string(std::string(buf, n));
}

void put(DictData& d, const char* key, Value v) {
    d.set(Value::string(key), std::move(v));
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string name)
    : template_(source, origin_of(name)) {}

std::string ChatTemplate::render(const ChatTemplateInputs& in) const {
    const std::string& origin = template_.origin();
    if (!in.messages.is_array())
        throw Error(
            origin +
            ": messages must be a JSON array; hint: pass [{\"role\": ..., \"content\": ...}]");
    if (!in.extra.is_null() && !in.extra.is_object())
        throw Error(origin + ": extra context must be a JSON object; hint: pass {\"name\": value}");
    // Input JSON that cannot become template values (nested deeper than jinja::kMaxValueDepth)
    // is an Error naming the variable.
    auto convert = [&origin](const std::string& name, const nlohmann::ordered_json& j) {
        try {
            return Value::from_json(j);
        } catch (const jinja::TemplateError& e) {
            throw Error(origin + ": " + name + ": " + e.what() + "; hint: " + e.hint());
        }
    };
    DictData ctx, extra;
    put(ctx, "messages", convert("messages", in.messages));
    put(ctx, "tools", convert("tools", in.tools));
    if (in.extra.is_object())
        for (const auto& [k, v] : in.extra.items()) put(extra, k.c_str(), convert(k, v));
    put(ctx, "documents", Value::none());
    put(ctx, "add_generation_prompt", Value::boolean(in.add_generation_prompt));
    if (!in.bos_token.empty()) put(ctx, "bos_token", Value::string(in.bos_token));
    if (!in.eos_token.empty()) put(ctx, "eos_token", Value::string(in.eos_token));
    put(ctx, "raise_exception", jinja::make_function("raise_exception", raise_exception));
    put(ctx, "strftime_now", jinja::make_function("strftime_now", strftime_now));
    for (auto& [k, v] : extra.items) ctx.set(k, v);  // extra may override any of the above
    return template_.render(ctx);
}

std::string chat_template_from_config(const nlohmann::json& config, const std::string& which) {
    const auto it = config.is_object() ? config.find("chat_template") : config.end();
    if (it == config.end() || it->is_null())
        throw Error(
            "tokenizer_config.json has no chat_template; hint: pass the template explicitly");
    if (it->is_string()) return it->get<std::string>();
    auto text_of = [](const nlohmann::json& e) -> const nlohmann::json* {
        if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) return nullptr;
        return &e["template"];
    };
    if (it->is_array() && !it->empty()) {
        for (const auto& e : *it)
            if (e.is_object() && e.value("name", "") == which && text_of(e))
                return text_of(e)->get<std::string>();
        if (which == "default" && text_of((*it)[0])) return text_of((*it)[0])->get<std::string>();
    }
    std::string names;
    if (it->is_array())
        for (const auto& e : *it)
            if (e.is_object())
                names += (names.empty() ? "" : ", ") + e.value("name", std::string("?"));
    throw Error("tokenizer_config.json: no chat template named '" + which + "' (found: " + names +
                "); hint: pick one of the names listed");
}

}  // namespace llmforge
