// Syntax tree of a parsed template, mirroring jinja2's nodes (jinja2/nodes.py). One node struct
// per category (expression, statement) with a kind tag; the comment on each kind says which
// fields it uses. Trees are immutable after parsing and shared by concurrent renders.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/value.h"

namespace llmforge::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Keyword {
    std::string name;
    ExprPtr value;
};

// Call arguments as written: f(a, b, k=v, *rest, **more).
struct ArgList {
    std::vector<ExprPtr> pos;
    std::vector<Keyword> kw;
    ExprPtr star;       // *rest, may be null
    ExprPtr star_star;  // **more, may be null
};

enum class ExprKind {
    kConst,    // value
    kName,     // name
    kList,     // kids: items
    kTuple,    // kids: items
    kDict,     // kids: key0, value0, key1, value1, ...
    kGetattr,  // kids[0].name
    kGetitem,  // kids[0][kids[1]]; kids[1] may be a kSlice
    kSlice,    // kids: start, stop, step (each may be null)
    kCall,     // kids[0](args)
    kFilter,   // kids[0] | name(args); kids[0] null in {% filter %} and {% set x | f %}; filter
    kTest,     // kids[0] is name(args); test
    kNeg,      // -kids[0]
    kPos,      // +kids[0]
    kNot,      // not kids[0]
    kBinary,   // kids[0] op kids[1]
    kConcat,   // kids[0] ~ kids[1] ~ ...
    kCompare,  // kids[0] cmp[0] kids[1] cmp[1] kids[2] ... (chained like Python)
    kAnd,      // kids[0] and kids[1]
    kOr,       // kids[0] or kids[1]
    kCond,     // kids[0] if kids[1] else kids[2] (kids[2] may be null)
};

struct Expr {
    ExprKind kind;
    size_t pos = 0;  // byte offset in the normalised source, for errors
    Value value;
    std::string name;
    std::vector<ExprPtr> kids;
    ArgList args;
    BinOp op = BinOp::kAdd;
    std::vector<CmpOp> cmp;
    // Resolved at parse time; null for a name jinja2 only rejects when it runs (inside an `if`).
    const FilterFn* filter = nullptr;
    const TestFn* test = nullptr;

    Expr() = default;
    Expr(const Expr&) = delete;
    Expr& operator=(const Expr&) = delete;
    // Iterative (parser.cpp): an operator or filter chain may be long. The parser keeps every
    // tree at most kMaxNesting high, so passes over a parsed tree may recurse.
    ~Expr();
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct IfBranch {
    ExprPtr test;
    Body body;
};

enum class StmtKind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches (if/elif), else_body
    kFor,          // for target in expr [if cond] [recursive]: body [else: else_body]
    kSet,          // set target = expr (target: kName, kTuple of names, or kGetattr on a namespace)
    kSetBlock,     // set target [| expr filters]: body
    kMacro,        // macro name(params = defaults): body
    kCallBlock,    // call(params = defaults) expr (a kCall): body becomes `caller`
    kFilterBlock,  // filter expr (kFilter chain): body
    kWith,         // with targets = values: body
    kGeneration,   // HF's {% generation %}: body, rendered in place in its own scope
    kBreak,
    kContinue,
};

struct Stmt {
    StmtKind kind;
    size_t pos = 0;
    std::string text;
    std::string name;
    ExprPtr expr;
    ExprPtr target;
    ExprPtr cond;
    std::vector<IfBranch> branches;
    Body body;
    Body else_body;
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults;  // for the last defaults.size() params
    std::vector<ExprPtr> targets;   // kWith
    std::vector<ExprPtr> values;    // kWith
    bool recursive = false;         // kFor
    // kMacro / kCallBlock: the body reads `caller`, `varargs`, `kwargs` (jinja2 then binds them).
    bool uses_caller = false;
    bool catch_varargs = false;
    bool catch_kwargs = false;
    // Names that start out undefined in the scope this statement opens (kFor: each iteration;
    // else_locals: the for's else); see symbols.h.
    std::vector<std::string> locals;
    std::vector<std::string> else_locals;
};

struct Program {
    Body body;
    std::vector<std::string> locals;  // of the template's own scope
};

}  // namespace llmforge::jinja
