// libFuzzer target: the Jinja chat-template engine on arbitrary template text, rendered over a
// fixed conversation with tools. Any llmforge::Error (syntax, unsupported construct,
// raise_exception, limits) is an accepted outcome; a crash, a sanitizer report, a hang or
// unbounded output is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/chat_template.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const ChatTemplateInputs kInputs = [] {
        ChatTemplateInputs in;
        in.messages = nlohmann::ordered_json::parse(R"([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi <b>"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
              "function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "tool", "content": "{\"ok\": true}"},
            {"role": "user", "content": [{"type": "text", "text": "more"}]}])");
        in.tools = nlohmann::ordered_json::parse(
            R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
        in.bos_token = "<s>";
        in.eos_token = "</s>";
        return in;
    }();
    try {
        const ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
        (void)t.render(kInputs);
    } catch (const Error&) {
    }
    return 0;
}
