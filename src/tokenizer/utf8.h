// Strict UTF-8 decoding for the tokenizer: splitting text into characters, telling a complete
// character from the start of one that a later token will finish, and replacing ill-formed bytes.
//
// "Well-formed" follows Unicode 15 table 3-7 (no overlong forms, no surrogates, nothing above
// U+10FFFF). Replacement follows the W3C/WHATWG "maximal subpart" practice: each maximal prefix of
// an ill-formed sequence becomes one U+FFFD, so every decoder agrees on the output.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmforge {

enum class Utf8Status {
    kOk,          // a well-formed character of `len` bytes
    kIncomplete,  // `len` bytes (all there is) start a well-formed character that is cut off
    kInvalid,     // `len` >= 1 bytes form a maximal ill-formed subpart
};

struct Utf8Char {
    Utf8Status status;
    size_t len;   // bytes consumed; >= 1 unless s is empty
    uint32_t cp;  // the code point when status == kOk, else 0xFFFD
};

// Decodes the character at the start of s (s must not be empty).
Utf8Char utf8_decode(std::string_view s);

// Appends the UTF-8 encoding of cp (<= 0x10FFFF, not a surrogate) to out.
void utf8_append(std::string& out, uint32_t cp);

// True when the whole of s is well-formed UTF-8.
bool utf8_is_valid(std::string_view s);

// s with every ill-formed subpart (an incomplete tail included) replaced by U+FFFD.
std::string utf8_sanitize(std::string_view s);

inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace llmforge
