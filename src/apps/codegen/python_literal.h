// A reader for the small part of Python that code-generation problem sets are written in: the
// expressions of HumanEval's tests and prompts (literals, names, calls, subscripts, unary and
// binary operators, comparisons), logical lines (brackets, triple-quoted strings and backslashes
// joining physical lines) and top-level `def` headers with their docstrings.
//
// Why by hand: there is no C++ library in Debian that parses Python, and the evaluation must run
// without a Python interpreter (the sandbox runs the programs under test, never our tooling).
// The grammar covered is deliberately small; anything outside it (lambdas, comprehensions,
// keyword arguments, f-strings, complex numbers) throws Error, and callers treat that as
// "untranslatable", as MultiPL-E does when Python's own ast holds a node it cannot translate.
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge::codegen {

struct PyExpr {
    enum Kind {
        kInt,    // int_value
        kFloat,  // float_value
        kStr,    // str (UTF-8, escapes resolved; adjacent literals joined)
        kBool,   // bool_value
        kNone,
        kList,       // items
        kTuple,      // items
        kSet,        // items
        kDict,       // items = keys, values = values
        kName,       // str = identifier
        kAttribute,  // items[0].str
        kCall,       // items[0] = callee, args = items[1..]
        kSubscript,  // items[0][items[1]]
        kUnary,      // op ("-", "+", "not", "~") items[0]
        kBinary,     // items[0] op items[1]; op in + - * / // % **
        kBoolOp,     // op ("and", "or"), items
        kCompare,    // items[0] ops[0] items[1] ops[1] items[2] ...; ops: == != < <= > >= is "is not" in "not in"
    };
    Kind kind = kNone;
    int64_t int_value = 0;
    double float_value = 0;
    bool bool_value = false;
    std::string str;
    std::string op;
    std::vector<std::string> ops;
    std::vector<PyExpr> items;
    std::vector<PyExpr> values;

    bool is_number() const { return kind == kInt || kind == kFloat; }
    double number() const { return kind == kInt ? static_cast<double>(int_value) : float_value; }
};

// Parses one expression (the whole of `src`, comments and surrounding blanks allowed). Throws
// Error (kBadInput) naming the offset and what was found when it is not in the covered grammar.
// Integer literals outside int64 are an error too.
PyExpr parse_python_expr(std::string_view src);

// `expr` rendered back as Python source (canonical spacing, repr-style literals: strings in
// single quotes as Python's repr() picks them, floats in the shortest round-trip form, a minus
// on a number literal as the negative number; other operators fully parenthesised). For literal
// values it is exactly Python's repr() of the value (checked by the tests against Python).
std::string python_repr(const PyExpr& expr);
// Python's repr() of a float ('r' format: shortest round-trip digits; positional for decimal
// exponents in [-4, 16), else scientific as in 1e-06; "inf", "nan").
std::string python_float_repr(double v);

// One logical line: physical lines joined inside brackets, triple-quoted strings and after a
// trailing backslash. indent counts leading spaces (a tab as 8 columns, Python's rule); text has
// the indentation removed and a trailing comment kept (parse_python_expr skips comments).
// Blank and comment-only lines are left out.
struct PyLogicalLine {
    int indent = 0;
    int line_no = 0;  // 1-based physical line where it starts
    std::string text;
};
std::vector<PyLogicalLine> python_logical_lines(std::string_view src);

struct PyParam {
    std::string name;
    std::optional<PyExpr> annotation;
    std::optional<PyExpr> default_value;
};

// A `def` at indentation 0 with its docstring (the string literal that is its body's first
// statement after any imports, escapes resolved, otherwise not altered: no dedent, no strip).
struct PyFunctionDef {
    std::string name;
    std::vector<PyParam> params;
    std::optional<PyExpr> returns;
    std::optional<std::string> docstring;
    int line_no = 0;
    bool has_star_params = false;  // *args / **kwargs / keyword-only marker: not translatable
};

// The top-level function definitions of a module (a HumanEval prompt). Throws Error when a def
// header cannot be parsed.
std::vector<PyFunctionDef> python_top_level_defs(std::string_view src);

// The check body of an `assert TEST[, MSG]` statement; nullopt when the line is not an assert.
// Throws Error when it is one but TEST does not parse.
std::optional<PyExpr> parse_python_assert(std::string_view logical_line);

}  // namespace llmforge::codegen
