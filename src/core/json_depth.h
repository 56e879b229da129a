// How deeply a JSON text nests, measured before it is parsed.
//
// nlohmann's parser is iterative, but copying, comparing, dumping and converting a parsed value
// recurse once per level, so a body of 20,000 nested '[' overflows the stack long after parsing
// succeeded. Callers that parse untrusted JSON scan it first and refuse texts nesting deeper than
// they need (the server: kMaxRequestJsonDepth in serve/openai_api.h).
//
// The scan is linear, allocation-free and works on any bytes: it counts '[' and '{' outside JSON
// strings (a backslash escapes the next byte inside a string), so brackets in string values and
// escaped quotes do not count. Unbalanced or otherwise invalid text is left to the parser. The
// scan errs on the side of counting: it reads past a NUL byte, where nlohmann's parser stops, so
// it may refuse a text whose parsed part is shallow, never accept one that nests deeper.
#pragma once

#include <cstddef>
#include <string_view>

namespace llmforge {

struct JsonNesting {
    size_t max_depth = 0;  // deepest nesting of arrays/objects (0: a scalar or nothing)
    size_t at = 0;         // 1-based byte position of the bracket that first reached max_depth
};

inline JsonNesting json_nesting(std::string_view text) {
    JsonNesting r;
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;  // the escaped byte (a quote or a backslash) is part of the string
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
            case '"': in_string = true; break;
            case '[':
            case '{':
                if (++depth > r.max_depth) {
                    r.max_depth = depth;
                    r.at = i + 1;
                }
                break;
            case ']':
            case '}':
                if (depth > 0) --depth;  // unbalanced: the parser reports it
                break;
            default: break;
        }
    }
    return r;
}

}  // namespace llmforge
