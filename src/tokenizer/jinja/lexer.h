// Jinja lexer: splits template source into text and the tokens inside {{ }}, {% %} and {# #},
// reproducing jinja2 3.1's lexer as Hugging Face configures it (trim_blocks, lstrip_blocks,
// keep_trailing_newline=False): newlines normalised to "\n", one trailing newline dropped,
// `-`/`+` whitespace control on either side of a tag, {% raw %} blocks kept verbatim, string
// literals decoded the way jinja2 does (Python unicode-escape, unknown escapes kept).
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge::jinja {

enum class TokenType {
    kText,           // template data between tags (already whitespace-controlled)
    kVariableBegin,  // {{
    kVariableEnd,    // }}
    kBlockBegin,     // {%
    kBlockEnd,       // %}
    kName,
    kString,    // value: the decoded literal
    kInteger,   // int_value
    kFloat,     // float_value
    kOperator,  // value: "+", "//", "==", "(", ...
    kEof,
};

struct Token {
    TokenType type;
    std::string value;
    size_t pos = 0;  // byte offset in the normalised source
    int64_t int_value = 0;
    double float_value = 0;
};

// Newlines -> "\n", one trailing newline removed, ill-formed UTF-8 replaced by U+FFFD.
std::string normalize_source(std::string_view source);

// Tokens of a normalised source, ending with kEof. Throws TemplateError (with a position).
std::vector<Token> tokenize(std::string_view source);

}  // namespace llmforge::jinja
