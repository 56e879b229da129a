#include "runtime/chat.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/file.h"

namespace llmforge {

namespace {

constexpr const char* kChatmlSource =
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

}  // namespace

std::optional<ChatFormat> load_chat_format(const Tokenizer& tok, const std::string& model, const std::string& choice,
                                           bool allow_pipes) {
    if (choice == kBuiltinChatml) {
        return ChatFormat{ChatTemplate(kChatmlSource, "built-in ChatML template"), kBuiltinChatml, {"<|im_end|>"}};
    }
    if (!choice.empty()) {
        std::error_code ec;
        if (!std::filesystem::exists(choice, ec)) {
            fail_kind(ErrorKind::kNotFound, "%s: no such chat template file (hint: check the --chat-template path, or "
                      "--chat-template %s for the built-in ChatML)", choice.c_str(), kBuiltinChatml);
        }
        const char* hint = "check the --chat-template path";
        std::string source = allow_pipes ? read_input(choice, "chat template", hint) : read_file(choice, "chat template", hint);
        return ChatFormat{ChatTemplate(std::move(source), choice), choice, {}};
    }
    const std::string& own = tok.vocab().chat_template;
    if (own.empty()) return std::nullopt;
    return ChatFormat{ChatTemplate(own, model), model, {}};
}

std::string no_chat_template_message(const std::string& model, const char* option) {
    return strfmt("%s carries no chat template (no tokenizer.chat_template / chat_template); hint: pass %s FILE.jinja, "
                  "or %s %s for ChatML",
                  model.c_str(), option, option, kBuiltinChatml);
}

ChatFormat require_chat_format(const Tokenizer& tok, const std::string& model, const std::string& choice,
                               bool allow_pipes, const char* command, const char* option) {
    std::optional<ChatFormat> f = load_chat_format(tok, model, choice, allow_pipes);
    if (!f) fail("%s: %s", command, no_chat_template_message(model, option).c_str());
    return std::move(*f);
}

std::vector<int32_t> encode_prompt(const Tokenizer& tok, std::string_view text, bool allow_bos, bool parse_special) {
    bool has_bos = false;
    if (parse_special && tok.bos() >= 0) {
        const std::string& bos = tok.token_text(tok.bos());
        has_bos = !bos.empty() && text.substr(0, bos.size()) == bos;
    }
    return tok.encode(text, allow_bos && tok.add_bos_default() && !has_bos, parse_special);
}

std::string render_chat(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in) {
    if (tok.bos() >= 0) in.bos_token = tok.token_text(tok.bos());
    if (tok.eos() >= 0) in.eos_token = tok.token_text(tok.eos());
    return tmpl.render(in);
}

ChatPrompt chat_to_tokens(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in, bool allow_bos) {
    ChatPrompt p;
    p.text = render_chat(tok, tmpl, std::move(in));
    p.tokens = encode_prompt(tok, p.text, allow_bos, true);
    return p;
}

}  // namespace llmforge
