// Jinja parser: tokens -> syntax tree, a recursive-descent transcription of jinja2 3.1's
// parser (jinja2/parser.py), so precedence and quirks match: `~` binds tighter than `+`,
// `-x|f` is `(-x)|f`, `a is test` and filters bind tighter than arithmetic, comparisons chain,
// `{% if %}` conditions and `for ... in` iterables take no inline if-else.
//
// Supported statements: if/elif/else, for (with `if` filter, `else`, `recursive`), set (name,
// tuple, namespace attribute, block form with filters), macro, call, filter, with, print, raw
// (in the lexer), break/continue (jinja2.ext.loopcontrols) and HF's generation. Template
// inheritance and loading ({% extends %}, {% block %}, {% include %}, {% import %},
// {% from %}) and {% autoescape %} are rejected with an error naming the tag: a chat template
// is one string with no loader. An unknown filter or test is an
// error here, except inside an `if` where, as in jinja2, only reaching it at render time fails.
//
// Nesting is limited (kMaxNesting) so hostile input cannot overflow the stack: the parser's own
// recursion (blocks, brackets, `not`, inline if-else) and the height of every expression tree,
// where each link of a chain (`a or b or ...`, `x|f|g`, `a.b.c`, `f()()`) is one level.
#pragma once

#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace llmforge::jinja {

inline constexpr int kMaxNesting = 200;

// Parses the whole template and resolves its scoping (symbols.h). Throws TemplateError with a
// position.
Program parse(const std::vector<Token>& tokens);

}  // namespace llmforge::jinja
