// Python indentation as a lexer in front of the GBNF matcher (see indent_lexer.h).
//
// Written by hand: it is the indentation part of CPython's tokenizer (Parser/tokenizer.c,
// tok_get's "Get indentation level" block), a few dozen lines of state machine that no Debian
// library offers separately from a whole Python parser.
#include "runtime/indent_lexer.h"

#include <cctype>

#include "core/error.h"

namespace llmforge {

uint64_t IndentLexerState::hash() const {
    uint64_t h = 0xCBF29CE484222325ull;
    auto mix = [&](uint64_t x) { h = (h ^ x) * 0x100000001B3ull; };
    for (uint16_t w : stack) mix(w);
    mix(stack.size());
    mix(static_cast<uint32_t>(pending));
    mix(comment);
    mix((uint64_t{utf8_need} << 16) | (uint64_t{utf8_lo} << 8) | utf8_hi);
    mix(utf8_value);
    return h;
}

namespace {

// Starts a UTF-8 sequence at lead byte b (not ASCII). False for bytes that cannot lead. The range
// of the first continuation byte excludes overlong forms, surrogates and > U+10FFFF (RFC 3629).
bool utf8_start(IndentLexerState& s, uint8_t b) {
    s.utf8_lo = 0x80;
    s.utf8_hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        s.utf8_need = 1;
        s.utf8_value = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        s.utf8_need = 2;
        s.utf8_value = b & 0x0F;
        if (b == 0xE0) s.utf8_lo = 0xA0;
        if (b == 0xED) s.utf8_hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        s.utf8_need = 3;
        s.utf8_value = b & 0x07;
        if (b == 0xF0) s.utf8_lo = 0x90;
        if (b == 0xF4) s.utf8_hi = 0x8F;
    } else {
        return false;
    }
    return true;
}

// Resolves a pending indentation before the first character of a line; appends INDENT / DEDENTs.
bool resolve_indent(IndentLexerState& s, std::string& out) {
    const int32_t w = s.pending;
    s.pending = -1;
    if (w > s.stack.back()) {
        if (s.stack.size() >= kIndentMaxLevels) return false;
        s.stack.push_back(static_cast<uint16_t>(w));
        out += kIndentUtf8;
        return true;
    }
    while (w < s.stack.back()) {
        s.stack.pop_back();
        out += kDedentUtf8;
    }
    return w == s.stack.back();
}

}  // namespace

bool indent_feed(IndentLexerState& s, uint8_t b, std::string& out) {
    if (s.utf8_need > 0) {  // a continuation byte
        if (b < s.utf8_lo || b > s.utf8_hi) return false;
        s.utf8_lo = 0x80;
        s.utf8_hi = 0xBF;
        s.utf8_value = (s.utf8_value << 6) | (b & 0x3F);
        if (--s.utf8_need == 0 && s.utf8_value >= kIndentNewline && s.utf8_value <= kIndentDedent) return false;
        if (!s.comment) out += static_cast<char>(b);
        return true;
    }
    if (s.comment) {  // a comment-only line: skipped up to its end
        if (b == '\n') {
            s.comment = false;
            s.pending = 0;
        } else if (b < 0x20 && b != '\t') {
            return false;  // NUL, CR, other controls: not in Python source
        } else if (b >= 0x80) {
            return utf8_start(s, b);
        }
        return true;
    }
    if (s.pending >= 0) {
        if (b == ' ') {
            if (s.pending >= kIndentMaxWidth) return false;
            ++s.pending;
            return true;
        }
        if (b == '\n') {  // a blank line
            s.pending = 0;
            return true;
        }
        if (b == '#') {
            s.comment = true;
            return true;
        }
        if (b < 0x20) return false;  // tab, form feed, CR, NUL in the indentation
        if (!resolve_indent(s, out)) return false;
    } else if (b == '\n') {
        out += kNewlineUtf8;
        s.pending = 0;
        return true;
    }
    if (b >= 0x80) {
        if (!utf8_start(s, b)) return false;
    }
    out += static_cast<char>(b);
    return true;
}

bool indent_feed(IndentLexerState& s, std::string_view bytes, std::string& out) {
    for (char c : bytes)
        if (!indent_feed(s, static_cast<uint8_t>(c), out)) return false;
    return true;
}

std::string indent_finish(const IndentLexerState& s) {
    std::string out;
    if (s.pending < 0) out += kNewlineUtf8;
    for (size_t i = 1; i < s.stack.size(); ++i) out += kDedentUtf8;
    return out;
}

std::string indent_lookahead(const IndentLexerState& s) {
    if (s.pending >= 0 && !s.comment && s.utf8_need == 0 && s.pending > s.stack.back()) return std::string(kIndentUtf8);
    return "";
}

std::string indent_reject_reason(const IndentLexerState& s, uint8_t b) {
    IndentLexerState t = s;
    std::string out;
    if (indent_feed(t, b, out)) return "";
    if (s.utf8_need > 0 || b >= 0x80)
        return t.utf8_need == 0 && t.utf8_value >= kIndentNewline && t.utf8_value <= kIndentDedent
                   ? strfmt("U+%04X is reserved for the indentation lexer's virtual symbols", t.utf8_value)
                   : strfmt("byte 0x%02X is not valid UTF-8 here", b);
    if (s.pending >= 0 && !s.comment) {
        if (b == '\t') return "a tab in the indentation (indent with spaces only)";
        if (b < 0x20) return strfmt("control character 0x%02X in the indentation", b);
        if (s.pending > s.stack.back())
            return strfmt("more than %zu indentation levels", kIndentMaxLevels);
        if (s.pending >= kIndentMaxWidth) return strfmt("indentation wider than %d spaces", kIndentMaxWidth);
        return strfmt("unindent to %d spaces does not match any outer indentation level", s.pending);
    }
    return strfmt("control character 0x%02X", b);
}

// ============================================================================ IndentedMatcher

// m_ runs without the grammar's own lexer: this class is the lexer in front of it.
IndentedMatcher::IndentedMatcher(std::shared_ptr<const Grammar> g) : g_(g), m_(std::move(g), false) {}

bool IndentedMatcher::accept(std::string_view bytes) {
    IndentLexerState lex = lex_;
    std::string out;
    if (!indent_feed(lex, bytes, out)) return false;
    if (!m_.accept(out)) return false;  // unchanged on rejection
    lex_ = std::move(lex);
    return true;
}

bool IndentedMatcher::can_end() const {
    if (lex_.utf8_need > 0) return false;
    GrammarMatcher m = m_;
    return m.accept(indent_finish(lex_)) && m.can_end();
}

void IndentedMatcher::reset() {
    m_.reset();
    lex_ = IndentLexerState{};
}

bool grammar_wants_indent_lexer(std::string_view gbnf) {
    const size_t eol = gbnf.find('\n');
    std::string_view first = gbnf.substr(0, eol);
    while (!first.empty() && (first.back() == '\r' || first.back() == ' ')) first.remove_suffix(1);
    if (first == "# llmforge: indent-lexer") return true;
    for (size_t i = 0; i + 6 <= gbnf.size(); ++i) {
        if (gbnf[i] != '\\') continue;
        std::string_view rest = gbnf.substr(i + 1);
        auto lower = [](std::string_view v) {
            std::string r(v);
            for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return r;
        };
        const std::string u4 = lower(rest.substr(0, 5)), u8 = lower(rest.substr(0, 9));
        if (u4 == "ue000" || u4 == "ue001" || u4 == "ue002") return true;
        if (u8 == "u0000e000" || u8 == "u0000e001" || u8 == "u0000e002") return true;
        ++i;  // skip the escaped character (an escaped backslash is not an escape start)
    }
    return gbnf.find(kNewlineUtf8) != std::string_view::npos || gbnf.find(kIndentUtf8) != std::string_view::npos ||
           gbnf.find(kDedentUtf8) != std::string_view::npos;
}

}  // namespace llmforge
