// jinja2's compile-time scoping (jinja2/idtracking.py), which decides what a name means before
// the template runs. Each frame (the template, a for body or else, a macro, a call/filter/set
// block, a with, a block) gets a local for every name it assigns; when the first mention of that
// name in the frame is the assignment and no enclosing frame mentions it, the local starts out
// undefined, so reading it earlier, or from an inner loop or macro, does not see a context
// variable of the same name:
//
//   {% for m in messages %}{% for x in y %}{{ tools }}{% endfor %}{% set tools = 1 %}{% endfor %}
//
// prints nothing for `tools` even when the caller passes `tools`. resolve_locals() reproduces
// that analysis (including jinja2's rule for names assigned in only some if/elif/else branches)
// and records, per frame, the names the interpreter must start as undefined; everything else is
// found by looking up through the enclosing scopes at run time, which jinja2 resolves the same
// way.
#pragma once

#include "tokenizer/jinja/ast.h"

namespace llmforge::jinja {

// Fills Program::locals and Stmt::locals / Stmt::else_locals.
void resolve_locals(Program& program);

}  // namespace llmforge::jinja
