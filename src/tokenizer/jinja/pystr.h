// Python 3 `str` semantics on UTF-8 strings, as chat templates observe them through jinja2:
// lengths and indices count code points, strip()/split() use Python's whitespace set, repr()
// quotes like Python, floats print as repr(float) ("1.0", "1e-05", "0.30000000000000004").
//
// Strings handed to these functions are well-formed UTF-8 (the engine sanitizes its inputs).
// Case mapping is Unicode's simple mapping (utf8proc) plus 'ß' -> "SS", 'İ' -> "i̇"; Python's other full
// mappings (a few ligatures) and the final-sigma rule are not applied. isalpha / isdigit /
// islower / isupper use the Unicode general categories, as Python does.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge::jinja::py {

std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
size_t length(std::string_view s);  // in code points

bool is_space(char32_t c);  // str.isspace() for one character (also regex \s)
bool is_alpha(char32_t c);
bool is_digit(char32_t c);
bool is_word(char32_t c);  // regex \w: alnum or '_'
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize()
std::string title(std::string_view s);       // str.title()
bool is_lower(std::string_view s);           // str.islower()
bool is_upper(std::string_view s);           // str.isupper()

// str.strip/lstrip/rstrip; `chars` absent strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);
// str.split / str.rsplit; `sep` absent splits on whitespace runs. maxsplit < 0: no limit.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
// str.replace; count < 0 replaces all.
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.find / str.rfind over s[start:end] (Python slice bounds, in code points); -1 when absent.
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> end, bool reverse);
int64_t count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
              std::optional<int64_t> end);
// str.center / ljust / rjust with a one-character fill.
std::string pad(std::string_view s, int64_t width, char32_t fill, char align);

std::string float_repr(double v);          // repr(float)
std::string str_repr(std::string_view s);  // repr(str)
// A Python string literal's one-character escape \<e> that needs no digits: \\ \' \" \a \b \f \n \r
// \t \v (appending the character to out) and a backslash-newline (appending nothing). False,
// with out untouched, for any other e (\x \u \U \N, octal digits, unknown escapes).
bool append_simple_escape(char e, std::string& out);

// Python slice bounds: clamps start/stop for a sequence of length n and the given step (!= 0).
void adjust_slice(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop,
                  int64_t step, int64_t& first, int64_t& count);

}  // namespace llmforge::jinja::py
