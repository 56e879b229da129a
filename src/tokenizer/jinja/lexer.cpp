// Jinja lexer, a hand-written transcription of jinja2 3.1's regex lexer (jinja2/lexer.py) for
// HF's settings; comments name the jinja2 rule each step reproduces.
#include "tokenizer/jinja/lexer.h"

#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"
#include "tokenizer/utf8.h"

namespace llmforge::jinja {

namespace {

constexpr const char* kHintSyntax = "fix the template syntax at this position";

bool is_ascii_digit(char c) {
    return c >= '0' && c <= '9';
}

[[noreturn]] void literal_error(const std::string& what, size_t pos) {
    throw TemplateError(what, kHintSyntax, pos);
}

// Python unicode-escape decoding of an all-ASCII literal body.
std::string unicode_unescape(std::string_view s, size_t pos) {
    std::string out;
    auto fail = [pos](const std::string& what) { literal_error(what, pos); };
    auto hex = [&](size_t at, size_t n) {
        if (at + n > s.size()) fail("truncated escape in string literal");
        uint32_t v = 0;
        for (size_t k = 0; k < n; ++k) {
            const char c = s[at + k];
            const int d = is_ascii_digit(c)                    ? c - '0'
                          : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                               : -1;
            if (d < 0) fail("truncated \\x, \\u or \\U escape in string literal");
            v = v * 16 + static_cast<uint32_t>(d);
        }
        return v;
    };
    auto append = [&](uint32_t cp) {
        utf8_append(out, cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
    };
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (++i == s.size()) fail("\\ at end of string");
        const char c = s[i];
        if (py::append_simple_escape(c, out)) continue;
        switch (c) {
            case 'x':
                append(hex(i + 1, 2));
                i += 2;
                break;
            case 'u':
                append(hex(i + 1, 4));
                i += 4;
                break;
            case 'U': {
                const uint32_t cp = hex(i + 1, 8);
                if (cp > 0x10FFFF) fail("illegal Unicode character in string literal");
                append(cp);
                i += 8;
                break;
            }
            case 'N':
                literal_error("\\N{...} escapes are not supported", pos);
            default:
                if (c >= '0' && c <= '7') {
                    uint32_t v = 0;
                    size_t n = 0;
                    for (; n < 3 && i + n < s.size() && s[i + n] >= '0' && s[i + n] <= '7'; ++n)
                        v = v * 8 + (s[i + n] - '0');
                    append(v);
                    i += n - 1;
                } else {
                    out += '\\';
                    out += c;
                }
        }
    }
    return out;
}

// jinja2 decodes literals with .encode("ascii", "backslashreplace").decode("unicode-escape").
std::string decode_literal(std::string_view body, size_t pos) {
    std::string ascii;
    for (char32_t c : py::decode(body)) {
        if (c < 0x80) {
            ascii += static_cast<char>(c);
            continue;
        }
        char buf[16];
        const char* fmt = c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x";
        std::snprintf(buf, sizeof(buf), fmt, static_cast<unsigned>(c));
        ascii += buf;
    }
    return unicode_unescape(ascii, pos);
}

class Lexer {
  public:
    explicit Lexer(std::string_view src) : src_(src) {}

    std::vector<Token> run() {
        while (pos_ < src_.size()) lex_root();
        push(TokenType::kEof, "", src_.size());
        return std::move(out_);
    }

  private:
    enum class Tag { kVariable, kBlock, kComment, kRaw };

    [[noreturn]] void fail(const std::string& what, size_t at) const {
        throw TemplateError(what, kHintSyntax, at);
    }

    void push(TokenType t, std::string v, size_t at) { out_.push_back(Token{t, std::move(v), at}); }

    bool starts(size_t at, std::string_view s) const { return src_.substr(at, s.size()) == s; }

    // Python's \s at `at`: the byte length of the whitespace character there, or 0.
    size_t space_len(size_t at) const {
        if (at >= src_.size()) return 0;
        const Utf8Char c = utf8_decode(src_.substr(at));
        return py::is_space(c.cp) ? c.len : 0;
    }
    size_t skip_spaces(size_t at) const {
        while (size_t n = space_len(at)) at += n;
        return at;
    }

    // The raw_begin rule: {%[-+]?\s*raw\s*(-%}\s*|%}) at `at`; returns its end or npos.
    size_t match_raw_begin(size_t at) const {
        size_t p = at + 2;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
        p = skip_spaces(p);
        if (!starts(p, "raw")) return std::string_view::npos;
        p = skip_spaces(p + 3);
        if (starts(p, "-%}")) return skip_spaces(p + 3);
        return starts(p, "%}") ? p + 2 : std::string_view::npos;
    }

    // Text before a tag, with the OptionalLStrip rule: a `-` sign strips all whitespace before the
    // tag; otherwise lstrip_blocks removes spaces between a line start and a block or comment tag.
    void emit_text(size_t begin, size_t end, char sign, bool lstrip) {
        std::string_view text = src_.substr(begin, end - begin);
        if (sign == '-') {
            text = text.substr(0, strip_right(text));
        } else if (sign != '+' && lstrip) {
            const size_t nl = text.rfind('\n');
            const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
            if ((l_pos > 0 || line_starting_) && l_pos < text.size() &&
                skip_spaces(begin + l_pos) == end)
                text = text.substr(0, l_pos);
        }
        if (!text.empty()) push(TokenType::kText, std::string(text), begin);
    }

    size_t strip_right(std::string_view text) const {
        const std::u32string u = py::decode(text);
        size_t keep = u.size();
        while (keep > 0 && py::is_space(u[keep - 1])) --keep;
        return py::encode(std::u32string_view(u).substr(0, keep)).size();
    }

    // The root rule: text up to the next {{, {% or {# (raw_begin first), then that tag.
    void lex_root() {
        size_t at = pos_;
        while (true) {
            at = src_.find('{', at);
            if (at == std::string_view::npos || at + 1 >= src_.size()) {
                emit_text(pos_, src_.size(), 0, false);
                pos_ = src_.size();
                return;
            }
            const char k = src_[at + 1];
            if (k == '{' || k == '%' || k == '#') break;
            ++at;
        }
        const char kind = src_[at + 1];
        const char sign =
            at + 2 < src_.size() && (src_[at + 2] == '-' || src_[at + 2] == '+') ? src_[at + 2] : 0;
        const size_t raw_end = kind == '%' ? match_raw_begin(at) : std::string_view::npos;
        emit_text(pos_, at, sign, kind != '{');
        line_starting_ = false;
        if (raw_end != std::string_view::npos) {
            line_starting_ = src_[raw_end - 1] == '\n';
            pos_ = raw_end;
            lex_raw(at);
            return;
        }
        pos_ = at + 2 + (sign != 0);
        if (kind == '#') {
            lex_comment(at);
        } else {
            lex_tag(kind == '{' ? Tag::kVariable : Tag::kBlock, at);
        }
    }

    // Ends a tag at `end` (just past "%}"/"#}"/"}}"): a `-` sign also eats the whitespace after
    // it, a plain block or comment end eats one newline (trim_blocks), `+` neither.
    void finish_tag(size_t end, char sign, bool trim) {
        if (sign == '-') {
            end = skip_spaces(end);
        } else if (sign != '+' && trim && end < src_.size() && src_[end] == '\n') {
            ++end;
        }
        line_starting_ = src_[end - 1] == '\n';
        pos_ = end;
    }

    void lex_comment(size_t start) {
        for (size_t p = pos_; p + 1 < src_.size(); ++p) {
            const char sign = src_[p] == '-' || src_[p] == '+' ? src_[p] : 0;
            if (starts(p + (sign != 0), "#}")) {
                finish_tag(p + (sign != 0) + 2, sign, true);
                return;
            }
        }
        if (pos_ < src_.size())
            fail("Missing end of comment tag", start);  // jinja2 accepts "{#" at the very end
    }

    // The raw state: everything up to {%[-+]?\s*endraw\s*[-+]?%} is text.
    void lex_raw(size_t start) {
        for (size_t p = src_.find("{%", pos_); p != std::string_view::npos;
             p = src_.find("{%", p + 1)) {
            const char sign =
                p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
            size_t q = skip_spaces(p + 2 + (sign != 0));
            if (!starts(q, "endraw")) continue;
            q = skip_spaces(q + 6);
            const char end_sign =
                q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
            if (!starts(q + (end_sign != 0), "%}")) continue;
            emit_text(pos_, p, sign, true);
            finish_tag(q + (end_sign != 0) + 2, end_sign, true);
            return;
        }
        if (pos_ < src_.size())
            fail("Missing end of raw directive", start);  // as jinja2, fine at the very end
    }

    // Tokens inside {{ }} or {% %} until the end marker (only when brackets are balanced).
    void lex_tag(Tag tag, size_t start) {
        const bool block = tag == Tag::kBlock;
        push(block ? TokenType::kBlockBegin : TokenType::kVariableBegin, "", start);
        const std::string_view close = block ? "%}" : "}}";
        std::string brackets;
        while (true) {
            if (pos_ >= src_.size())
                fail(block ? "unexpected end of template inside '{%' (missing '%}')"
                           : "unexpected end of template inside '{{' (missing '}}')",
                     start);
            if (brackets.empty() && lex_tag_end(block, close)) return;
            if (size_t n = space_len(pos_)) {
                pos_ += n;
                continue;
            }
            if (lex_number() || lex_name() || lex_string()) continue;
            lex_operator(brackets);
        }
    }

    bool lex_tag_end(bool block, std::string_view close) {
        const char sign = src_[pos_] == '-' || (block && src_[pos_] == '+') ? src_[pos_] : 0;
        if (!starts(pos_ + (sign != 0), close)) return false;
        push(block ? TokenType::kBlockEnd : TokenType::kVariableEnd, "", pos_);
        finish_tag(pos_ + (sign != 0) + 2, sign, block);
        return true;
    }

    // (\d+_)*\d+ at `at`: returns the end, or `at` when there is no digit.
    size_t digits(size_t at) const {
        size_t p = at;
        while (p < src_.size() && is_ascii_digit(src_[p])) {
            ++p;
            if (p + 1 < src_.size() && src_[p] == '_' && is_ascii_digit(src_[p + 1])) ++p;
        }
        return p;
    }

    bool lex_number() {
        if (!is_ascii_digit(src_[pos_])) return false;
        const size_t start = pos_;
        // float_re: (?<!\.)digits((\.digits)?e[+-]?digits|\.digits)
        const size_t int_end = digits(start);
        size_t end = std::string_view::npos;
        if (start == 0 || src_[start - 1] != '.') {
            size_t frac_end = int_end;
            if (int_end < src_.size() && src_[int_end] == '.' && digits(int_end + 1) > int_end + 1)
                frac_end = digits(int_end + 1);
            size_t e = frac_end;
            if (e < src_.size() && (src_[e] | 32) == 'e') {
                size_t q = e + 1;
                if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
                if (digits(q) > q) end = digits(q);
            }
            if (end == std::string_view::npos && frac_end > int_end) end = frac_end;
        }
        if (end != std::string_view::npos) {
            std::string text;
            for (char c : src_.substr(start, end - start))
                if (c != '_') text += c;
            Token t{TokenType::kFloat, text, start};
            t.float_value = std::strtod(text.c_str(), nullptr);
            out_.push_back(std::move(t));
            pos_ = end;
            return true;
        }
        lex_integer(start);
        return true;
    }

    // integer_re: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*
    void lex_integer(size_t start) {
        int base = 10;
        size_t p = start;
        if (src_[p] == '0' && p + 1 < src_.size()) {
            const char x = static_cast<char>(src_[p + 1] | 32);
            base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 10;
        }
        auto is_digit_of = [&](char c) {
            const int d = is_ascii_digit(c)                    ? c - '0'
                          : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                               : 99;
            return base == 10 && src_[start] == '0' ? c == '0' : d < base;
        };
        size_t q = base == 10 ? p + 1 : p + 2;
        if (base != 10 &&
            !(q < src_.size() && (is_digit_of(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() &&
                                                           is_digit_of(src_[q + 1]))))) {
            base = 10;  // "0x" without digits lexes as 0 followed by a name
            q = p + 1;
        }
        while (q < src_.size()) {
            if (is_digit_of(src_[q])) {
                ++q;
            } else if (src_[q] == '_' && q + 1 < src_.size() && is_digit_of(src_[q + 1])) {
                q += 2;
            } else {
                break;
            }
        }
        __int128 v = 0;
        for (char c : src_.substr(start + (base == 10 ? 0 : 2), q - start - (base == 10 ? 0 : 2))) {
            if (c == '_') continue;
            v = v * base + (is_ascii_digit(c) ? c - '0' : (c | 32) - 'a' + 10);
            if (v > INT64_MAX) fail("integer literal too large for this engine (64-bit)", start);
        }
        Token t{TokenType::kInteger, std::string(src_.substr(start, q - start)), start};
        t.int_value = static_cast<int64_t>(v);
        out_.push_back(std::move(t));
        pos_ = q;
    }

    bool lex_name() {
        auto ident = [&](size_t at, bool first) -> size_t {
            if (at >= src_.size()) return 0;
            const Utf8Char c = utf8_decode(src_.substr(at));
            const bool ok =
                c.cp == '_' || py::is_alpha(c.cp) || (!first && py::is_digit(c.cp) && c.cp < 0x80);
            return ok ? c.len : 0;
        };
        size_t n = ident(pos_, true);
        if (!n) return false;
        size_t end = pos_ + n;
        while ((n = ident(end, false))) end += n;
        push(TokenType::kName, std::string(src_.substr(pos_, end - pos_)), pos_);
        pos_ = end;
        return true;
    }

    bool lex_string() {
        const char q = src_[pos_];
        if (q != '\'' && q != '"') return false;
        size_t p = pos_ + 1;
        while (p < src_.size() && src_[p] != q) p += src_[p] == '\\' ? 2 : 1;
        if (p >= src_.size()) fail("unterminated string literal", pos_);
        push(TokenType::kString, decode_literal(src_.substr(pos_ + 1, p - pos_ - 1), pos_), pos_);
        pos_ = p + 1;
        return true;
    }

    void lex_operator(std::string& brackets) {
        static constexpr std::string_view kTwo[] = {"**", "//", "==", "!=", ">=", "<="};
        static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
        std::string op;
        for (std::string_view t : kTwo)
            if (starts(pos_, t)) op = t;
        if (op.empty() && kOne.find(src_[pos_]) != std::string_view::npos) op = src_[pos_];
        if (op.empty()) {
            const Utf8Char c = utf8_decode(src_.substr(pos_));
            fail("unexpected char " + py::str_repr(src_.substr(pos_, c.len)), pos_);
        }
        if (op == "(" || op == "[" || op == "{")
            brackets += op == "(" ? ')' : op == "[" ? ']' : '}';
        if (op == ")" || op == "]" || op == "}") {
            if (brackets.empty()) fail("unexpected '" + op + "'", pos_);
            if (brackets.back() != op[0])
                fail("unexpected '" + op + "', expected '" + std::string(1, brackets.back()) + "'",
                     pos_);
            brackets.pop_back();
        }
        push(TokenType::kOperator, op, pos_);
        pos_ += op.size();
    }

    std::string_view src_;
    size_t pos_ = 0;
    bool line_starting_ = true;
    std::vector<Token> out_;
};

}  // namespace

std::string normalize_source(std::string_view source) {
    const std::string clean = utf8_sanitize(source);
    std::string out;
    out.reserve(clean.size());
    for (size_t i = 0; i < clean.size(); ++i) {
        if (clean[i] == '\r') {
            out += '\n';
            if (i + 1 < clean.size() && clean[i + 1] == '\n') ++i;
        } else {
            out += clean[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::vector<Token> tokenize(std::string_view source) {
    return Lexer(source).run();
}

}  // namespace llmforge::jinja
