// Indentation for grammar-constrained generation of Python (issue 15): a deterministic lexer in
// front of the GBNF matcher turns raw text into the code points the grammar sees, with Python's
// NEWLINE / INDENT / DEDENT tokens as virtual symbols from the private-use area:
//     NEWLINE = U+E000, INDENT = U+E001, DEDENT = U+E002
// (in GBNF "\uE000" …; grammars/python.gbnf uses them like Python's own grammar does and starts
// with the directive line `# llmforge: indent-lexer`).
//
// Why a lexer and not grammar rules: Python's tokenizer decides INDENT/DEDENT from the text alone
// (the leading spaces of each logical line against a stack of indentation widths), which a
// context-free grammar cannot express for unbounded nesting. The lexer is that tokenizer's
// indentation part, nothing more; everything else stays in the grammar.
//
// Rules (the subset the grammar allows: no implicit joining inside brackets, no triple-quoted
// strings, no backslash continuation, so every '\n' ends a logical line):
//  * '\n' after content ends the logical line: NEWLINE is emitted at once (as Python's tokenizer
//    does), and the lexer is "pending" with width w = 0.
//  * While pending: ' ' widens w; '\n' is a blank line (w = 0, nothing emitted); '#' starts a
//    comment-only line, skipped up to its '\n' (Python's tokenizer emits no NEWLINE / INDENT for it
//    either); '\t', '\f', '\r' are rejected (indentation is spaces only). Any other character c
//    resolves the indentation: w > top of the stack: push w, emit INDENT; w < top: pop and emit
//    DEDENT until top <= w, and top != w then is rejected (Python's "unindent does not match any
//    outer indentation level"); then c passes through.
//  * The text starts pending with w = 0 and the stack {0}: leading blank and comment lines are
//    skipped, and spaces before the first statement give an INDENT the grammar rejects (Python's
//    "unexpected indent").
//  * The text's end (indent_finish): NEWLINE unless pending, then DEDENT for every level above 0.
//  * The lexer checks UTF-8 as Python's decoder does (no overlong forms, surrogates, or code points
//    above U+10FFFF) and rejects U+E000..U+E002 in the raw text, so a virtual symbol can only come
//    from the lexer. Other bytes pass through untouched.
//
// Viability for token masks: a text may end pending (a token "\n    "). Such a text always has a
// valid continuation once the grammar accepted the NEWLINE: a whitespace-only line is legal Python
// at any width, so '\n' may follow. IndentedMatcher::accept is exact in that sense. A mask may
// still steer (indent_lookahead): when the text ends pending wider than the current level and the
// grammar cannot take INDENT next, the line can only become a blank one, so leaving such tokens
// out costs nothing and keeps the model from lines of spaces. Tokens ending in '\n' itself end at
// width 0 and are never left out by it, so the steered mask is never empty where the exact one
// is not.
//
// Thread safety: plain values and free functions; an IndentedMatcher belongs to one sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/grammar.h"

namespace llmforge {

// The virtual symbols, as code points and as the UTF-8 the grammar is fed.
constexpr uint32_t kIndentNewline = 0xE000;
constexpr uint32_t kIndentIndent = 0xE001;
constexpr uint32_t kIndentDedent = 0xE002;
inline constexpr std::string_view kNewlineUtf8 = "\xEE\x80\x80";
inline constexpr std::string_view kIndentUtf8 = "\xEE\x80\x81";
inline constexpr std::string_view kDedentUtf8 = "\xEE\x80\x82";

// The lexer's whole state: small, copyable, comparable and hashable, so a mask cache can key on
// (lexer state, matcher state).
struct IndentLexerState {
    std::vector<uint16_t> stack{0};  // indentation widths, bottom 0, strictly increasing
    int32_t pending = 0;             // -1: inside a line; else the spaces so far on a new line
    bool comment = false;            // inside a skipped comment-only line (pending stays >= 0)
    uint8_t utf8_need = 0;           // continuation bytes still due in the current code point
    uint8_t utf8_lo = 0x80;          // allowed range of the next continuation byte
    uint8_t utf8_hi = 0xBF;
    uint32_t utf8_value = 0;         // bits of the code point so far

    bool operator==(const IndentLexerState& o) const {
        return stack == o.stack && pending == o.pending && comment == o.comment && utf8_need == o.utf8_need &&
               utf8_lo == o.utf8_lo && utf8_hi == o.utf8_hi && utf8_value == o.utf8_value;
    }
    bool operator!=(const IndentLexerState& o) const { return !(*this == o); }
    uint64_t hash() const;
};

// Deepest indentation accepted (levels on the stack) and widest indentation (spaces); Python's
// own limit is 100 levels.
constexpr size_t kIndentMaxLevels = 100;
constexpr int32_t kIndentMaxWidth = 4000;

// Feeds one byte of text; appends to `out` what the grammar must see (the byte itself, virtual
// symbols as UTF-8, or nothing). Returns false when the text is rejected here (a tab or other
// control in the indentation, an inconsistent dedent, invalid UTF-8, a raw U+E000..U+E002, too
// deep); `s` and `out` are then unspecified: feed a copy to keep the old state.
bool indent_feed(IndentLexerState& s, uint8_t byte, std::string& out);

// Feeds a whole string (stops at the first rejected byte, returns false).
bool indent_feed(IndentLexerState& s, std::string_view bytes, std::string& out);

// What to feed the grammar when the text ends: NEWLINE unless pending, then a DEDENT for every
// level above 0. Empty while inside a UTF-8 sequence is not special-cased: the caller's matcher
// rejects the truncated text.
std::string indent_finish(const IndentLexerState& s);

// Steering for masks (see above): INDENT when `s` is pending wider than the current level — a
// token ending there is worth allowing only if the grammar accepts this next — else "".
std::string indent_lookahead(const IndentLexerState& s);

// One line for messages: why indent_feed rejected `byte` in state `s` ("" when it would not).
std::string indent_reject_reason(const IndentLexerState& s, uint8_t byte);

// A GrammarMatcher behind an IndentLexer, through GrammarMatcher's public API only: the form the
// tests use and the model for the grammar stage's integration.
class IndentedMatcher {
public:
    explicit IndentedMatcher(std::shared_ptr<const Grammar> g);
    // Feeds raw text. Returns false and leaves the state unchanged when the lexer or the grammar
    // rejects it (exact: no steering by indent_lookahead).
    bool accept(std::string_view bytes);
    // The text so far is a whole program: its indent_finish() is accepted and the grammar can end.
    bool can_end() const;
    void reset();
    const IndentLexerState& lexer() const { return lex_; }
    const GrammarMatcher& matcher() const { return m_; }

private:
    std::shared_ptr<const Grammar> g_;
    GrammarMatcher m_;
    IndentLexerState lex_;
};

// True when a grammar's text asks for the lexer: a first line `# llmforge: indent-lexer`, or any
// of the virtual symbols written as \uE000..\uE002 / \xEE… escapes or raw UTF-8 in it.
bool grammar_wants_indent_lexer(std::string_view gbnf);

}  // namespace llmforge
