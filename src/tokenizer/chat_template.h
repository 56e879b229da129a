// Chat templates as Hugging Face transformers applies them (apply_chat_template): the Jinja
// template from tokenizer_config.json rendered over the conversation, with the variables and
// helpers transformers provides. The Jinja engine itself is src/tokenizer/jinja/.
//
// Context of a render (as transformers builds it): messages, tools (None when absent),
// documents (None), add_generation_prompt, bos_token / eos_token (left undefined when empty, as
// transformers omits special tokens a tokenizer does not have), the functions
// raise_exception(msg) and strftime_now(fmt) (local time), then every key of `extra`, which may
// override any of them.
//
// Thread safety: a ChatTemplate is immutable after construction; render() may run concurrently.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/jinja/template.h"

namespace llmforge {

struct ChatTemplateInputs {
    nlohmann::ordered_json messages;  // [{"role":..., "content":..., "tool_calls":...}, ...]
    nlohmann::ordered_json tools;     // null when none
    bool add_generation_prompt = true;
    std::string bos_token, eos_token;  // token texts, as HF passes them
    nlohmann::ordered_json extra;  // more context variables (e.g. enable_thinking), object or null
};

class ChatTemplate {  // parsed once, render many times; const methods thread-safe
  public:
    // Throws llmforge::Error on syntax errors. Errors read "chat template <name>:<line>:<col>:
    // ...".
    explicit ChatTemplate(std::string source, std::string name = "chat template");
    // Throws llmforge::Error (also for the template's raise_exception).
    std::string render(const ChatTemplateInputs& in) const;

  private:
    jinja::Template template_;
};

// The template from a tokenizer_config.json value: a string, or a list of {"name","template"}
// (the one named `which`; for "default", the first when none is named so). Throws Error when
// there is none.
std::string chat_template_from_config(const nlohmann::json& tokenizer_config,
                                      const std::string& which = "default");

}  // namespace llmforge
