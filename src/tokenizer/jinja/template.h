// A Jinja template: parsed once, rendered many times. This is the engine's public entry point.
//
// Why hand-written: chat templates (tokenizer_config.json "chat_template") are Jinja, and no
// C++ Jinja library ships with Debian, so lexer, parser and interpreter are written here to
// reproduce jinja2 3.1 as Hugging Face transformers configures it for apply_chat_template
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, HF's tojson and
// {% generation %}). Python's value semantics are kept where output depends on them (str() and
// repr() of values, int vs float, undefined handling); see value.h, ops.h and builtins.h.
//
// Known differences from jinja2 (none of them shows in the real chat templates tested in
// tests/tokenizer/chat_template_test.cpp, which match jinja2 byte for byte):
//  * lazy results are lists: map/select/reject/unique/batch/items/reverse, range() and
//    dict.items() print as lists (jinja2 prints "<generator object ...>", "range(0, 3)",
//    "dict_items([...])"), and `items` of a non-mapping fails at once, not when iterated;
//  * integers are 64-bit (overflow is an error); attributes of numbers (x.real) are absent;
//  * jinja2 folds constant expressions with a lenient lookup, so `{{ 5[1:] }}` prints "" there
//    while `{{ n[1:] }}` fails; here both fail;
//  * escaping is not tracked (no autoescape in chat templates): `|safe` gives a plain string,
//    `x|e|e` escapes twice; no \N{...} string escapes;
//  * {% block %} is rejected with the inheritance tags (jinja2 renders it in place);
//  * case mapping is Unicode's simple one plus "ß", "İ" (see pystr.h); `sameas`
//    compares scalars by value; reprs of functions differ;
//  * nesting is bounded where Python only has its recursion limit: lists, tuples and dicts nest
//    at most kMaxValueDepth (256) levels, a printed namespace counts as one level (so one that
//    holds itself fails to print; jinja2 prints "{...}"), and an expression tree is at most
//    kMaxNesting (200) high.
//
// Errors are llmforge::Error with one line "<origin>:<line>:<col>: <what>; hint: <hint>".
// Thread safety: construction is not shared; render() is const and safe to call concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

class Template {
  public:
    // Parses `source`; `origin` names the template in errors. Throws llmforge::Error.
    Template(std::string_view source, std::string origin, Limits limits = {});

    // Renders with `context` (variables by name; keys must be strings). Throws llmforge::Error.
    std::string render(const DictData& context) const;

    const std::string& origin() const { return origin_; }

  private:
    [[noreturn]] void fail(const TemplateError& e) const;

    std::string source_;  // normalised, for error positions
    std::string origin_;
    Limits limits_;
    std::shared_ptr<const Program> program_;
};

}  // namespace llmforge::jinja
