// Tree-walking interpreter for parsed templates, with jinja2's scoping: a for loop's body gets
// a fresh scope each iteration (a `set` inside does not leave the loop; namespace() carries
// state out), `if` shares its enclosing scope, macros see the scope they were defined in at the
// time they are called, `with`, call and filter blocks open their own scope, and each scope
// starts with the undefined locals the parser resolved (symbols.h).
//
// Bad templates cannot hang or exhaust the renderer: output, total loop iterations, macro
// recursion and the bytes of all strings and lists created are capped by Limits (errors name
// the limit), each string by kMaxStringBytes, range() by
// the sandbox's 100000, parse nesting and expression height by kMaxNesting, the nesting of
// lists and dicts by kMaxValueDepth (value.h), and the nesting of evaluation across macro calls,
// recursive loops and call blocks by 1000 levels (about 0.5 MiB of stack in an optimised build,
// a few MiB under ASan).
//
// Thread safety: render() keeps all its state local; concurrent renders of one tree are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tokenizer/jinja/ast.h"

namespace llmforge::jinja {

struct Limits {
    size_t max_output_bytes = size_t{64} << 20;
    uint64_t max_loop_iterations = 1'000'000;      // over the whole render
    int max_call_depth = 64;                       // nested macro calls
    uint64_t max_built_bytes = uint64_t{4} << 30;  // strings and lists created (see BuildBudget)
};

// Renders `program` with the variables in `context` (string keys) over jinja2's globals.
// Throws TemplateError.
std::string render(const Program& program, const DictData& context, const Limits& limits);

}  // namespace llmforge::jinja
