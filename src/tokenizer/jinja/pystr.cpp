// Python str semantics on UTF-8 (see pystr.h for the coverage of case mapping and classes).
#include "tokenizer/jinja/pystr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <utf8proc.h>

#include "tokenizer/utf8.h"

namespace llmforge::jinja::py {

std::u32string decode(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    while (!s.empty()) {
        const Utf8Char c = utf8_decode(s);
        out += static_cast<char32_t>(c.cp);
        s.remove_prefix(c.len);
    }
    return out;
}

std::string encode(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s)
        utf8_append(out, (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF ? 0xFFFD : c);
    return out;
}

size_t length(std::string_view s) {
    size_t n = 0;
    for (unsigned char b : s) n += (b & 0xC0) != 0x80;
    return n;
}

bool is_space(char32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Case mapping and character classes come from utf8proc (Unicode data, a Debian library the
// tokenizer already uses), not from hand-kept tables.
char32_t to_lower(char32_t c) {
    return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

char32_t to_upper(char32_t c) {
    return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}

namespace {

utf8proc_category_t category(char32_t c) {
    return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// Python's "cased" characters: Lu, Ll, Lt (and 'ß', lower case without a one-character upper).
bool is_lower_char(char32_t c) {
    return category(c) == UTF8PROC_CATEGORY_LL;
}
bool is_upper_char(char32_t c) {
    return category(c) == UTF8PROC_CATEGORY_LU || category(c) == UTF8PROC_CATEGORY_LT;
}
bool is_cased(char32_t c) {
    return is_lower_char(c) || is_upper_char(c);
}

// Appends the lower-case form of c ('İ' becomes "i̇" as in Python's full case mapping).
void append_lower(std::u32string& out, char32_t c) {
    if (c == 0x130) {
        out += U"i\u0307";
    } else {
        out += to_lower(c);
    }
}

// Appends the upper-case form of c ('ß' becomes "SS" as in Python's full case mapping).
void append_upper(std::u32string& out, char32_t c) {
    if (c == 0xDF) {
        out += U"SS";
    } else {
        out += to_upper(c);
    }
}

}  // namespace

bool is_alpha(char32_t c) {  // str.isalpha(): categories Lu Ll Lt Lm Lo
    const auto k = category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

bool is_digit(char32_t c) {  // str.isdigit(): decimal digits plus the superscript digits
    return category(c) == UTF8PROC_CATEGORY_ND || c == 0xB2 || c == 0xB3 || c == 0xB9 ||
           (c >= 0x2070 && c <= 0x2079 && c != 0x2071 && c != 0x2072 && c != 0x2073) ||
           (c >= 0x2080 && c <= 0x2089);
}

bool is_word(char32_t c) {
    return c == '_' || is_alpha(c) || is_digit(c);
}

std::string upper(std::string_view s) {
    std::u32string out;
    for (char32_t c : decode(s)) append_upper(out, c);
    return encode(out);
}

std::string lower(std::string_view s) {
    std::u32string out;
    for (char32_t c : decode(s)) append_lower(out, c);
    return encode(out);
}

std::string capitalize(std::string_view s) {
    const std::u32string u = decode(s);
    std::u32string out;
    for (size_t i = 0; i < u.size(); ++i) {
        if (i == 0) {
            append_upper(out, u[0]);
        } else {
            append_lower(out, u[i]);
        }
    }
    return encode(out);
}

std::string title(std::string_view s) {
    std::u32string out;
    bool prev_cased = false;
    for (char32_t c : decode(s)) {
        if (prev_cased) {
            append_lower(out, c);
        } else {
            append_upper(out, c);
        }
        prev_cased = is_cased(c);
    }
    return encode(out);
}

bool is_lower(std::string_view s) {
    bool any = false;
    for (char32_t c : decode(s)) {
        if (is_upper_char(c)) return false;
        any = any || is_lower_char(c);
    }
    return any;
}

bool is_upper(std::string_view s) {
    bool any = false;
    for (char32_t c : decode(s)) {
        if (is_lower_char(c)) return false;
        any = any || is_upper_char(c);
    }
    return any;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right) {
    const std::u32string u = decode(s);
    const std::u32string set = chars ? decode(*chars) : std::u32string();
    auto strippable = [&](char32_t c) {
        return chars ? set.find(c) != std::u32string::npos : is_space(c);
    };
    size_t b = 0, e = u.size();
    while (left && b < e && strippable(u[b])) ++b;
    while (right && e > b && strippable(u[e - 1])) --e;
    return encode(std::u32string_view(u).substr(b, e - b));
}

namespace {

std::vector<std::string> split_whitespace(const std::u32string& u, int64_t maxsplit) {
    std::vector<std::string> out;
    size_t i = 0;
    while (true) {
        while (i < u.size() && is_space(u[i])) ++i;
        if (i == u.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
            out.push_back(encode(std::u32string_view(u).substr(i)));
            break;
        }
        size_t j = i;
        while (j < u.size() && !is_space(u[j])) ++j;
        out.push_back(encode(std::u32string_view(u).substr(i, j - i)));
        i = j;
    }
    return out;
}

std::vector<std::string> rsplit_whitespace(const std::u32string& u, int64_t maxsplit) {
    std::vector<std::string> out;
    size_t e = u.size();
    while (true) {
        while (e > 0 && is_space(u[e - 1])) --e;
        if (e == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
            out.push_back(encode(std::u32string_view(u).substr(0, e)));
            break;
        }
        size_t b = e;
        while (b > 0 && !is_space(u[b - 1])) --b;
        out.push_back(encode(std::u32string_view(u).substr(b, e - b)));
        e = b;
    }
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
    if (!sep) return split_whitespace(decode(s), maxsplit);
    std::vector<std::string> out;
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        const size_t hit = s.find(*sep, pos);
        if (hit == std::string_view::npos) break;
        out.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
    if (!sep) return rsplit_whitespace(decode(s), maxsplit);
    std::vector<std::string> out;
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        if (end < sep->size()) break;
        const size_t hit = s.rfind(*sep, end - sep->size());
        if (hit == std::string_view::npos) break;
        out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
        end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
    const std::u32string u = decode(s);
    std::vector<std::string> out;
    size_t start = 0, i = 0;
    while (i < u.size()) {
        const char32_t c = u[i];
        const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C ||
                         c == 0x1D || c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
            ++i;
            continue;
        }
        size_t eol = i + 1;
        if (c == '\r' && eol < u.size() && u[eol] == '\n') ++eol;
        out.push_back(encode(std::u32string_view(u).substr(start, (keepends ? eol : i) - start)));
        start = i = eol;
    }
    if (start < u.size()) out.push_back(encode(std::u32string_view(u).substr(start)));
    return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    int64_t count) {
    std::string out;
    if (old.empty()) {  // Python inserts `repl` around every character
        const std::u32string u = decode(s);
        int64_t done = 0;
        for (size_t i = 0; i <= u.size(); ++i) {
            if (count < 0 || done < count) {
                out += repl;
                ++done;
            }
            if (i < u.size()) out += encode(std::u32string_view(&u[i], 1));
        }
        return out;
    }
    size_t pos = 0;
    for (int64_t done = 0; count < 0 || done < count; ++done) {
        const size_t hit = s.find(old, pos);
        if (hit == std::string_view::npos) break;
        out.append(s.substr(pos, hit - pos)).append(repl);
        pos = hit + old.size();
    }
    out.append(s.substr(pos));
    return out;
}

void adjust_slice(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop,
                  int64_t step, int64_t& first, int64_t& count) {
    auto clamp = [n](int64_t v, int64_t lo, int64_t hi) {
        if (v < 0) v += n;
        return std::clamp(v, lo, hi);
    };
    if (step > 0) {
        const int64_t b = start ? clamp(*start, 0, n) : 0;
        const int64_t e = stop ? clamp(*stop, 0, n) : n;
        first = b;
        count = e > b ? (e - b - 1) / step + 1 : 0;
    } else {
        const int64_t b = start ? clamp(*start, -1, n - 1) : n - 1;
        const int64_t e = stop ? clamp(*stop, -1, n - 1) : -1;
        first = b;
        count = b > e ? (b - e - 1) / (-step) + 1 : 0;
    }
}

namespace {

// The code-point window s[start:end] (Python slice bounds, step 1).
std::u32string window(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> end,
                      int64_t& offset) {
    const std::u32string u = decode(s);
    int64_t first = 0, n = 0;
    adjust_slice(static_cast<int64_t>(u.size()), start, end, 1, first, n);
    offset = first;
    return u.substr(static_cast<size_t>(first), static_cast<size_t>(n));
}

}  // namespace

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> end, bool reverse) {
    int64_t offset = 0;
    const std::u32string w = window(s, start, end, offset);
    const std::u32string needle = decode(sub);
    if (start && *start > static_cast<int64_t>(length(s))) return -1;
    const size_t hit = reverse ? w.rfind(needle) : w.find(needle);
    return hit == std::u32string::npos ? -1 : offset + static_cast<int64_t>(hit);
}

int64_t count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
              std::optional<int64_t> end) {
    int64_t offset = 0;
    const std::u32string w = window(s, start, end, offset);
    const std::u32string needle = decode(sub);
    if (needle.empty()) return static_cast<int64_t>(w.size()) + 1;
    int64_t n = 0;
    for (size_t pos = w.find(needle); pos != std::u32string::npos;
         pos = w.find(needle, pos + needle.size()))
        ++n;
    return n;
}

std::string pad(std::string_view s, int64_t width, char32_t fill, char align) {
    const int64_t len = static_cast<int64_t>(length(s));
    if (width <= len) return std::string(s);
    const int64_t marg = width - len;
    int64_t left = 0;
    if (align == 'c') left = marg / 2 + (marg & width & 1);  // CPython's str.center
    if (align == 'r') left = marg;
    const std::string f = encode(std::u32string(1, fill));
    std::string out;
    for (int64_t i = 0; i < left; ++i) out += f;
    out += s;
    for (int64_t i = 0; i < marg - left; ++i) out += f;
    return out;
}

std::string float_repr(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
    // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |v| < 1e16.
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
    const size_t epos = sci.find('e');
    std::string digits;
    bool neg = false;
    for (char c : sci.substr(0, epos)) {
        if (c == '-') neg = true;
        if (c >= '0' && c <= '9') digits += c;
    }
    int exp = 0;
    std::from_chars(sci.data() + epos + (sci[epos + 1] == '+' ? 2 : 1), sci.data() + sci.size(),
                    exp);
    const int decpt = exp + 1;  // digits[0] sits at 10^(decpt-1)
    const int nd = static_cast<int>(digits.size());
    std::string out = neg ? "-" : "";
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
        } else if (decpt >= nd) {
            out += digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
        } else {
            out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
                   digits.substr(static_cast<size_t>(decpt));
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (nd > 1) out.append(".").append(digits, 1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", decpt - 1 < 0 ? '-' : '+', std::abs(decpt - 1));
    return out + e;
}

namespace {

// str.isprintable() for non-ASCII code points (approximate: controls, format characters,
// separators other than space, surrogates, private use and non-characters are not printable).
bool printable(char32_t c) {
    if (c < 0x20 || c == 0x7F) return false;
    if (c < 0x7F) return true;
    if (c <= 0xA0 || c == 0xAD) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB))
        return false;
    if ((c >= 0xD800 && c <= 0xF8FF) || c >= 0xF0000) return false;
    return (c & 0xFFFE) != 0xFFFE;
}

}  // namespace

bool append_simple_escape(char e, std::string& out) {
    switch (e) {
        case '\n': return true;  // line continuation
        case '\\': out += '\\'; return true;
        case '\'': out += '\''; return true;
        case '"': out += '"'; return true;
        case 'a': out += '\a'; return true;
        case 'b': out += '\b'; return true;
        case 'f': out += '\f'; return true;
        case 'n': out += '\n'; return true;
        case 'r': out += '\r'; return true;
        case 't': out += '\t'; return true;
        case 'v': out += '\v'; return true;
        default: return false;
    }
}

std::string str_repr(std::string_view s) {
    const std::u32string u = decode(s);
    const bool has_single = u.find(U'\'') != std::u32string::npos;
    const bool has_double = u.find(U'"') != std::u32string::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    std::string out(1, quote);
    for (char32_t c : u) {
        if (c == static_cast<char32_t>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (printable(c)) {
            utf8_append(out, c);
        } else {
            char buf[16];
            const char* fmt = c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x";
            std::snprintf(buf, sizeof(buf), fmt, static_cast<unsigned>(c));
            out += buf;
        }
    }
    return out + quote;
}

}  // namespace llmforge::jinja::py
