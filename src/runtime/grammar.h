// Grammar-constrained decoding: GBNF grammars (llama.cpp's syntax and matching semantics), a
// character-level pushdown matcher, and the sampler stage that keeps only the tokens whose text
// the grammar can still accept.
//
// GBNF (llama.cpp grammars/README.md): `name ::= alternatives`, sequences of literals "…",
// character classes [a-z] / [^…], any character `.`, rule references, groups ( … ), repetition
// * + ? {m} {m,} {m,n}, comments from #. Escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH.
// Rules may be referenced before they are defined; an undefined rule and left recursion are load
// errors naming the rule; a syntax error names its line and column.
//
// Matching follows llama.cpp's llama_grammar: a set of stacks of grammar positions, advanced one
// code point at a time; the text so far is a complete match when some stack is empty. Token texts
// may end inside a UTF-8 sequence (byte tokens); the matcher keeps the partial sequence.
//
// Python-style indentation (runtime/indent_lexer.h): a grammar that asks for the indentation lexer
// (grammar_wants_indent_lexer: the first line `# llmforge: indent-lexer`, or the virtual symbols
// U+E000..U+E002 in its text) sees raw text through that lexer everywhere: GrammarMatcher,
// grammar_check and the sampler stage feed each byte to the lexer and the lexer's output (the
// byte, or NEWLINE / INDENT / DEDENT) to the matcher; the end of the text is the lexer's
// indent_finish() followed by the grammar's end.
//
// Thread safety: a Grammar and a GrammarVocab are immutable after construction and may be shared
// by any number of threads; a GrammarMatcher and a stage belong to one sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"

namespace llmforge {

class Tokenizer;
class GrammarImpl;

// A parsed, checked GBNF grammar.
class Grammar {
public:
    // Parses `gbnf` with start rule `root`. `source` names the text in messages (a file name,
    // "response_format"). Throws Error (kBadInput), one line, e.g.
    //   "grammar 'json.gbnf': line 3, column 12: expected ']' to close the character class …"
    //   "grammar 'x.gbnf': rule 'value' is used but never defined (line 2, column 9) …"
    //   "grammar 'x.gbnf': rule 'expr' is left-recursive (expr -> term -> expr) …"
    static std::shared_ptr<const Grammar> parse(std::string_view gbnf, std::string_view root = "root",
                                                std::string_view source = "grammar");
    // The grammar printed back as GBNF (rules in definition order; generated rules included).
    std::string to_gbnf() const;
    const std::string& source() const;
    // The grammar asks for the indentation lexer (see above).
    bool uses_indent_lexer() const;
    const GrammarImpl& impl() const { return *impl_; }
    ~Grammar();

private:
    explicit Grammar(std::unique_ptr<GrammarImpl> impl);
    std::unique_ptr<GrammarImpl> impl_;
};

// The state of a match: copyable (a copy is an independent state).
class GrammarMatcher {
public:
    // run_lexer = false feeds the grammar's own code points even when the grammar uses the
    // indentation lexer (virtual symbols as their UTF-8): IndentedMatcher's form.
    explicit GrammarMatcher(std::shared_ptr<const Grammar> g, bool run_lexer = true);
    GrammarMatcher(const GrammarMatcher&);
    GrammarMatcher& operator=(const GrammarMatcher&);
    ~GrammarMatcher();
    // Feeds UTF-8 bytes (possibly ending or starting inside a multi-byte sequence). Returns false
    // and leaves the state unchanged when some code point is rejected (or the bytes are not UTF-8).
    bool accept(std::string_view bytes);
    // The text so far is a complete match (some stack is empty, no partial UTF-8 pending; with the
    // lexer: after the lexer's indent_finish()).
    bool can_end() const;
    // Back to the start state.
    void reset();

private:
    struct State;
    std::unique_ptr<State> s_;
};

// Result of checking a whole text.
struct GrammarCheck {
    bool accepted = false;
    // Not accepted: the code-point offset of the first code point the grammar rejects, or the
    // text's length in code points when the whole text is a proper prefix of a match. With the
    // indentation lexer: offsets in the original text (a rejected INDENT / DEDENT / NEWLINE is
    // reported at the character that made the lexer emit it).
    int64_t fail_offset = -1;
    std::string reason;  // one line: "unexpected 'x' at code point 12" / "text ends before the grammar does"
};
GrammarCheck grammar_check(const Grammar& g, std::string_view text);

// A tokenizer's vocabulary prepared for masks (token texts as bytes, a prefix trie, the
// end-of-generation ids). Build once per tokenizer and share it between sequences.
class GrammarVocab {
public:
    static std::shared_ptr<const GrammarVocab> build(const Tokenizer& tok);
    ~GrammarVocab();
    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    explicit GrammarVocab(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The sampler stage (put first in the chain, StageSlot::kFirst): keeps the tokens whose text the
// matcher accepts, and end-of-generation tokens only when the text so far is a complete match;
// control tokens otherwise never pass. accept() advances the matcher. Throws Error when no token
// is left (a grammar that cannot continue). Masks are cached per matcher state, so repeated states
// (inside a JSON string) cost one lookup.
//
// Details (decided here):
//  * Tokens accepted before the first apply() are the prompt (Sampler::accept is called for
//    prompt tokens) and do not move the grammar: the grammar constrains the generated text only.
//  * Hidden tokens (Tokenizer::is_hidden: control, unknown, unused) never pass, even when their
//    text is what the grammar wants next; the grammar's text can always be spelled with ordinary
//    and byte tokens. End-of-generation tokens pass exactly when can_end().
//  * accept() of a token the grammar rejects throws Error (a caller that bypassed the mask).
//  * A token may end inside a UTF-8 sequence (byte tokens); it passes when some completion of the
//    sequence could be accepted (exact, where llama.cpp over-rejects for negated classes).
//  * Grammars with the indentation lexer: a token's bytes go through the lexer, then the
//    matcher; the mask is exact (a token passes iff accept() takes it; no steering by
//    indent_lookahead), cached per (lexer state, matcher state) and per (lexer state, stack);
//    end-of-generation passes when the matcher accepts indent_finish() and is then complete.
//  * Matching needs no recursion; limits on live stacks and expansion work (StackPool in
//    grammar_internal.h) turn a pathological grammar into Error (kResource), never a crash.
std::unique_ptr<SamplerStage> make_grammar_stage(std::shared_ptr<const Grammar> g,
                                                 std::shared_ptr<const GrammarVocab> vocab);

}  // namespace llmforge
