// Conversations -> prompt tokens, written once for every front end (generate --chat, chat, the
// server's /v1/chat/completions and the completions prompt):
//  * which chat template a model is prompted with: the one the user chose (a Jinja file, or the
//    built-in "chatml"), else the one the model's tokenizer carries, else none — and then chat is
//    an error everywhere (no silent fallback: a model without a template was not trained on one);
//  * the BOS rule: BOS is added only when the tokenizer adds one by default and the text does not
//    already start with it (templates such as Llama 3's write BOS themselves).
//
// Thread safety: free functions; a ChatFormat is immutable and may be shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

// The --chat-template value that names the built-in ChatML template (<|im_start|>role\n...
// <|im_end|>); a file of that name is given as ./chatml.
constexpr const char* kBuiltinChatml = "chatml";

struct ChatFormat {
    ChatTemplate tmpl;
    std::string name;                // where the template came from (a path, the model, "chatml")
    std::vector<std::string> stops;  // stop strings it needs beyond EOG tokens (ChatML: "<|im_end|>")
};

// The chat format for a model whose tokenizer is `tok` (`model` names it in messages). `choice`
// is the user's --chat-template: empty for the model's own template, kBuiltinChatml, or a Jinja
// file (read with read_input when allow_pipes, as the CLI does; read_file otherwise, which never
// waits on a pipe, as a server must). nullopt when choice is empty and the model has no template.
// Throws Error for an unreadable file (kNotFound when it does not exist) or a template that
// does not parse.
std::optional<ChatFormat> load_chat_format(const Tokenizer& tok, const std::string& model, const std::string& choice,
                                           bool allow_pipes);

// The same, failing when there is none:
// "COMMAND: MODEL carries no chat template (...); hint: pass OPTION FILE.jinja or OPTION chatml".
ChatFormat require_chat_format(const Tokenizer& tok, const std::string& model, const std::string& choice,
                               bool allow_pipes, const char* command, const char* option);

// The one-line message of a model without a chat template (require_chat_format's, the server's).
std::string no_chat_template_message(const std::string& model, const char* option);

// Ids of a prompt text: BOS first when allow_bos, the tokenizer adds one by default, and the text
// does not already begin with BOS's text parsed as a special token.
std::vector<int32_t> encode_prompt(const Tokenizer& tok, std::string_view text, bool allow_bos, bool parse_special);

struct ChatPrompt {
    std::string text;             // the rendered conversation
    std::vector<int32_t> tokens;  // its ids (special-token text parsed)
};

// Renders `in` with `tmpl`, bos_token / eos_token set from `tok`. Throws Error when the template fails.
std::string render_chat(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in);

// Renders `in` with `tmpl` (bos_token / eos_token set from `tok`) and encodes it with
// encode_prompt(..., allow_bos, parse_special = true). Throws Error when the template fails.
ChatPrompt chat_to_tokens(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in, bool allow_bos = true);

}  // namespace llmforge
