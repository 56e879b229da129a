#include "apps/codegen/multipl_e.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "apps/codegen/python_literal.h"
#include "core/error.h"

namespace llmforge::codegen {

namespace {

// Thrown inside the translator for anything that has no translation; never escapes this file.
struct Untranslatable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A value type as the translation sees it.
struct Type {
    enum Kind { kUnknown, kInt, kFloat, kStr, kBool, kNone, kList, kTuple, kDict, kOptional, kAny } kind = kUnknown;
    std::vector<Type> args;
    bool open_tuple = false;  // bare `tuple` hint: arity unknown
};

Type make(Type::Kind k, std::vector<Type> args = {}) {
    Type t;
    t.kind = k;
    t.args = std::move(args);
    return t;
}

// ---- Python values ----

bool is_literal(const PyExpr& e) {
    switch (e.kind) {
        case PyExpr::kInt:
        case PyExpr::kFloat:
        case PyExpr::kStr:
        case PyExpr::kBool:
        case PyExpr::kNone:
            return true;
        case PyExpr::kList:
        case PyExpr::kTuple:
            return std::all_of(e.items.begin(), e.items.end(), is_literal);
        case PyExpr::kDict:
            return std::all_of(e.items.begin(), e.items.end(), is_literal) &&
                   std::all_of(e.values.begin(), e.values.end(), is_literal);
        default:
            return false;
    }
}

PyExpr number(double v) {
    PyExpr e;
    e.kind = PyExpr::kFloat;
    e.float_value = v;
    return e;
}

PyExpr integer(int64_t v) {
    PyExpr e;
    e.kind = PyExpr::kInt;
    e.int_value = v;
    return e;
}

// Constant arithmetic folded with Python's semantics (ints stay ints except under "/"); throws
// Untranslatable for anything that is not a literal afterwards.
PyExpr fold(const PyExpr& e) {
    switch (e.kind) {
        case PyExpr::kList:
        case PyExpr::kTuple:
        case PyExpr::kDict: {
            PyExpr r = e;
            for (auto& x : r.items) x = fold(x);
            for (auto& x : r.values) x = fold(x);
            return r;
        }
        case PyExpr::kUnary: {
            PyExpr x = fold(e.items[0]);
            if (!x.is_number() || e.op == "not" || e.op == "~") throw Untranslatable("unary " + e.op);
            if (e.op == "+") return x;
            if (x.kind == PyExpr::kInt) {
                if (x.int_value == INT64_MIN) throw Untranslatable("overflow");
                return integer(-x.int_value);
            }
            return number(-x.float_value);
        }
        case PyExpr::kBinary: {
            PyExpr a = fold(e.items[0]), b = fold(e.items[1]);
            if (!a.is_number() || !b.is_number()) throw Untranslatable("arithmetic on non-numbers");
            const bool ints = a.kind == PyExpr::kInt && b.kind == PyExpr::kInt;
            if (ints && (e.op == "+" || e.op == "-" || e.op == "*")) {
                int64_t r = 0;
                bool ovf = e.op == "+"   ? __builtin_add_overflow(a.int_value, b.int_value, &r)
                           : e.op == "-" ? __builtin_sub_overflow(a.int_value, b.int_value, &r)
                                         : __builtin_mul_overflow(a.int_value, b.int_value, &r);
                if (ovf) throw Untranslatable("integer overflow");
                return integer(r);
            }
            if (ints && (e.op == "//" || e.op == "%")) {
                if (b.int_value == 0) throw Untranslatable("division by zero");
                int64_t q = a.int_value / b.int_value, m = a.int_value % b.int_value;
                if (m != 0 && ((m < 0) != (b.int_value < 0))) {
                    --q;
                    m += b.int_value;
                }
                return integer(e.op == "//" ? q : m);
            }
            const double x = a.number(), y = b.number();
            if (e.op == "+") return number(x + y);
            if (e.op == "-") return number(x - y);
            if (e.op == "*") return number(x * y);
            if (e.op == "/") {
                if (y == 0) throw Untranslatable("division by zero");
                return number(x / y);
            }
            if (e.op == "**" && ints && b.int_value >= 0 && b.int_value < 64) {
                int64_t r = 1;
                for (int64_t i = 0; i < b.int_value; ++i) {
                    if (__builtin_mul_overflow(r, a.int_value, &r)) throw Untranslatable("integer overflow");
                }
                return integer(r);
            }
            if (e.op == "**") return number(std::pow(x, y));
            throw Untranslatable("operator " + e.op);
        }
        default:
            if (!is_literal(e)) throw Untranslatable("not a literal: " + python_repr(e));
            return e;
    }
}

// ---- types ----

std::optional<Type> unify(const Type& a, const Type& b);

std::optional<Type> unify_all(const std::vector<Type>& ts) {
    Type acc;
    for (const Type& t : ts) {
        auto u = unify(acc, t);
        if (!u) return std::nullopt;
        acc = *u;
    }
    return acc;
}

std::optional<Type> unify(const Type& a, const Type& b) {
    if (a.kind == Type::kUnknown) return b;
    if (b.kind == Type::kUnknown) return a;
    if (a.kind == Type::kAny || b.kind == Type::kAny) return make(Type::kAny);
    if (a.kind == Type::kNone && b.kind == Type::kNone) return a;
    if (a.kind == Type::kNone) return b.kind == Type::kOptional ? b : make(Type::kOptional, {b});
    if (b.kind == Type::kNone) return unify(b, a);
    if (a.kind == Type::kOptional || b.kind == Type::kOptional) {
        const Type& x = a.kind == Type::kOptional ? a.args[0] : a;
        const Type& y = b.kind == Type::kOptional ? b.args[0] : b;
        auto u = unify(x, y);
        if (!u) return std::nullopt;
        return make(Type::kOptional, {*u});
    }
    if ((a.kind == Type::kInt && b.kind == Type::kFloat) || (a.kind == Type::kFloat && b.kind == Type::kInt)) {
        return make(Type::kFloat);
    }
    if (a.kind != b.kind) return std::nullopt;
    if (a.kind == Type::kTuple) {
        if (a.open_tuple) return b;
        if (b.open_tuple) return a;
        if (a.args.size() != b.args.size()) return std::nullopt;
    }
    Type r = a;
    for (size_t i = 0; i < a.args.size(); ++i) {
        auto u = unify(a.args[i], b.args[i]);
        if (!u) return std::nullopt;
        r.args[i] = *u;
    }
    return r;
}

// The type most values agree on when they do not all unify (HumanEval's hex_key passes both
// strings and a list): the values of the most frequent kind first, then every value that unifies
// with them. Asserts whose values do not fit are dropped later.
std::optional<Type> unify_majority(const std::vector<Type>& ts) {
    if (auto all = unify_all(ts)) return all;
    int count[Type::kAny + 1] = {};
    for (const Type& t : ts) ++count[t.kind];
    int best = 0;
    for (int k = 0; k <= Type::kAny; ++k) {
        if (k != Type::kNone && count[k] > count[best]) best = k;
    }
    Type acc;
    for (int pass = 0; pass < 2; ++pass) {
        for (const Type& t : ts) {
            if ((t.kind == best) != (pass == 0)) continue;
            if (auto u = unify(acc, t)) acc = *u;
        }
    }
    return acc;
}

// The type of a folded literal.
Type value_type(const PyExpr& v) {
    switch (v.kind) {
        case PyExpr::kInt:
            return make(Type::kInt);
        case PyExpr::kFloat:
            return make(Type::kFloat);
        case PyExpr::kStr:
            return make(Type::kStr);
        case PyExpr::kBool:
            return make(Type::kBool);
        case PyExpr::kNone:
            return make(Type::kNone);
        case PyExpr::kList: {
            std::vector<Type> ts;
            for (const auto& x : v.items) ts.push_back(value_type(x));
            auto u = unify_all(ts);
            if (!u) throw Untranslatable("list with mixed element types: " + python_repr(v));
            return make(Type::kList, {*u});
        }
        case PyExpr::kTuple: {
            Type t = make(Type::kTuple);
            for (const auto& x : v.items) t.args.push_back(value_type(x));
            return t;
        }
        case PyExpr::kDict: {
            std::vector<Type> ks, vs;
            for (const auto& x : v.items) ks.push_back(value_type(x));
            for (const auto& x : v.values) vs.push_back(value_type(x));
            auto k = unify_all(ks), w = unify_all(vs);
            if (!k || !w) throw Untranslatable("dict with mixed key or value types: " + python_repr(v));
            return make(Type::kDict, {*k, *w});
        }
        default:
            throw Untranslatable("not a literal: " + python_repr(v));
    }
}

std::string type_name_of(const PyExpr& e) {
    if (e.kind == PyExpr::kName) return e.str;
    if (e.kind == PyExpr::kAttribute && e.items[0].kind == PyExpr::kName && e.items[0].str == "typing") return e.str;
    if (e.kind == PyExpr::kNone) return "None";
    return "";
}

// A type hint; unknown parts (bare `list`) stay kUnknown for inference to fill.
Type hint_type(const PyExpr& ann) {
    const std::string n = type_name_of(ann);
    if (n == "int") return make(Type::kInt);
    if (n == "float") return make(Type::kFloat);
    if (n == "str") return make(Type::kStr);
    if (n == "bool") return make(Type::kBool);
    if (n == "None") return make(Type::kNone);
    if (n == "Any") return make(Type::kAny);
    if (n == "list" || n == "List") return make(Type::kList, {Type{}});
    if (n == "dict" || n == "Dict") return make(Type::kDict, {Type{}, Type{}});
    if (n == "tuple" || n == "Tuple") {
        Type t = make(Type::kTuple);
        t.open_tuple = true;
        return t;
    }
    if (ann.kind == PyExpr::kSubscript) {
        const std::string g = type_name_of(ann.items[0]);
        const PyExpr& idx = ann.items[1];
        std::vector<PyExpr> params = idx.kind == PyExpr::kTuple ? idx.items : std::vector<PyExpr>{idx};
        if ((g == "List" || g == "list") && params.size() == 1) return make(Type::kList, {hint_type(params[0])});
        if ((g == "Dict" || g == "dict") && params.size() == 2) {
            return make(Type::kDict, {hint_type(params[0]), hint_type(params[1])});
        }
        if (g == "Optional" && params.size() == 1) return make(Type::kOptional, {hint_type(params[0])});
        if (g == "Tuple" || g == "tuple") {
            if (params.size() == 2 && params[1].kind == PyExpr::kName && params[1].str == "...") {
                return make(Type::kList, {hint_type(params[0])});  // MultiPL-E: Tuple[T, ...] is a list
            }
            Type t = make(Type::kTuple);
            for (const auto& p : params) t.args.push_back(hint_type(p));
            return t;
        }
        if (g == "Union") {
            std::vector<Type> ts;
            bool has_none = false;
            for (const auto& p : params) {
                Type t = hint_type(p);
                if (t.kind == Type::kNone) {
                    has_none = true;
                } else {
                    ts.push_back(t);
                }
            }
            if (ts.size() == 1 && has_none) return make(Type::kOptional, {ts[0]});
            throw Untranslatable("Union type hint " + python_repr(ann) + " (only Optional unions are translated)");
        }
    }
    throw Untranslatable("type hint " + python_repr(ann));
}

// The hint with its unknown parts filled from what the tests show.
Type refine(const Type& hint, const std::optional<Type>& seen) {
    if (!seen) return hint;
    if (hint.kind == Type::kUnknown) return *seen;
    if (hint.kind == Type::kTuple && hint.open_tuple && seen->kind == Type::kTuple) return *seen;
    const Type& s = seen->kind == Type::kOptional && hint.kind != Type::kOptional ? seen->args[0] : *seen;
    if (hint.kind == Type::kOptional) {
        return make(Type::kOptional, {refine(hint.args[0], s.kind == Type::kOptional ? std::optional<Type>(s.args[0])
                                                                                     : std::optional<Type>(s))});
    }
    if (hint.kind != s.kind || hint.args.size() != s.args.size()) return hint;
    Type r = hint;
    for (size_t i = 0; i < hint.args.size(); ++i) r.args[i] = refine(hint.args[i], s.args[i]);
    return r;
}

// Unknown parts default to long (MultiPL-E: an empty list is a std::vector<long>).
Type resolve(const Type& t) {
    if (t.kind == Type::kUnknown) return make(Type::kInt);
    if (t.kind == Type::kTuple && t.open_tuple) throw Untranslatable("tuple type whose arity no test shows");
    if (t.kind == Type::kNone) throw Untranslatable("a value that is always None");
    Type r = t;
    for (auto& a : r.args) a = resolve(a);
    return r;
}

// ---- C++ ----

std::string cpp_type(const Type& t) {
    switch (t.kind) {
        case Type::kInt:
            return "long";
        case Type::kFloat:
            return "float";
        case Type::kStr:
            return "std::string";
        case Type::kBool:
            return "bool";
        case Type::kAny:
            return "std::any";
        case Type::kList:
            return "std::vector<" + cpp_type(t.args[0]) + ">";
        case Type::kOptional:
            return "std::optional<" + cpp_type(t.args[0]) + ">";
        case Type::kDict:
            return "std::map<" + cpp_type(t.args[0]) + "," + cpp_type(t.args[1]) + ">";
        case Type::kTuple: {
            std::string s = "std::tuple<";
            for (size_t i = 0; i < t.args.size(); ++i) s += (i ? ", " : "") + cpp_type(t.args[i]);
            return s + ">";
        }
        default:
            throw Untranslatable("no C++ type");
    }
}

std::string cpp_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7F) {
            char b[8];
            std::snprintf(b, sizeof b, "\\%03o", c);  // octal: never swallows a following digit
            out += b;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string cpp_float(double v) {
    if (!std::isfinite(v)) throw Untranslatable("non-finite float");
    return python_float_repr(v) + "f";
}

std::string cpp_value(const PyExpr& v, const Type& t) {
    auto join = [](const std::vector<std::string>& xs) {
        std::string s;
        for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + xs[i];
        return s;
    };
    switch (t.kind) {
        case Type::kInt:
            if (v.kind != PyExpr::kInt) break;
            return std::to_string(v.int_value) + (v.int_value > INT32_MAX || v.int_value < INT32_MIN ? "L" : "");
        case Type::kFloat:
            if (!v.is_number()) break;
            return cpp_float(v.number());
        case Type::kStr:
            if (v.kind != PyExpr::kStr) break;
            return cpp_string(v.str);
        case Type::kBool:
            if (v.kind != PyExpr::kBool) break;
            return v.bool_value ? "true" : "false";
        case Type::kOptional:
            if (v.kind == PyExpr::kNone) return "std::nullopt";
            return cpp_value(v, t.args[0]);
        case Type::kAny: {
            const Type vt = resolve(value_type(v));
            if (vt.kind == Type::kInt) return "std::any((long)" + std::to_string(v.int_value) + ")";
            if (vt.kind == Type::kStr) return "std::any(std::string(" + cpp_string(v.str) + "))";
            if (vt.kind == Type::kList || vt.kind == Type::kDict || vt.kind == Type::kTuple) {
                return "std::any(" + cpp_value(v, vt) + ")";
            }
            return "std::any(" + cpp_value(v, vt) + ")";
        }
        case Type::kList: {
            if (v.kind != PyExpr::kList && v.kind != PyExpr::kTuple) break;
            std::vector<std::string> xs;
            for (const auto& x : v.items) xs.push_back(cpp_value(x, t.args[0]));
            return cpp_type(t) + (xs.empty() ? "()" : "({" + join(xs) + "})");
        }
        case Type::kTuple: {
            if ((v.kind != PyExpr::kList && v.kind != PyExpr::kTuple) || v.items.size() != t.args.size()) break;
            std::vector<std::string> xs;
            for (size_t i = 0; i < v.items.size(); ++i) xs.push_back(cpp_value(v.items[i], t.args[i]));
            return cpp_type(t) + "(" + join(xs) + ")";
        }
        case Type::kDict: {
            if (v.kind != PyExpr::kDict) break;
            std::vector<std::string> xs;
            for (size_t i = 0; i < v.items.size(); ++i) {
                xs.push_back("{" + cpp_value(v.items[i], t.args[0]) + ", " + cpp_value(v.values[i], t.args[1]) + "}");
            }
            return cpp_type(t) + (xs.empty() ? "()" : "({" + join(xs) + "})");
        }
        default:
            break;
    }
    throw Untranslatable("value " + python_repr(v) + " does not fit the type " +
                         (t.kind == Type::kUnknown ? std::string("?") : cpp_type(t)));
}

std::string cpp_name(const std::string& n) {
    // MultiPL-E's renames, then any other C++ keyword gets a trailing underscore.
    if (n == "operator") return "op";
    if (n == "strlen") return "string_length";
    static const std::set<std::string> kKeywords = {
        "alignas",  "alignof", "and",      "asm",       "auto",     "bitand",   "bitor",     "break",  "case",
        "catch",    "char",    "class",    "compl",     "const",    "continue", "default",   "delete", "do",
        "double",   "else",    "enum",     "explicit",  "export",   "extern",   "float",     "for",    "friend",
        "goto",     "if",      "inline",   "int",       "long",     "mutable",  "namespace", "new",    "noexcept",
        "not",      "or",      "private",  "protected", "public",   "register", "return",    "short",  "signed",
        "sizeof",   "static",  "struct",   "switch",    "template", "this",     "throw",     "try",    "typedef",
        "typename", "union",   "unsigned", "using",     "virtual",  "void",     "volatile",  "while",  "xor",
        "main",     "assert"};
    return kKeywords.count(n) ? n + "_" : n;
}

// ---- JavaScript ----

std::string js_value(const PyExpr& v) {
    switch (v.kind) {
        case PyExpr::kInt:
            return std::to_string(v.int_value);
        case PyExpr::kFloat:
            if (!std::isfinite(v.float_value)) throw Untranslatable("non-finite float");
            return python_float_repr(v.float_value);
        case PyExpr::kStr:
            return nlohmann::json(v.str).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        case PyExpr::kBool:
            return v.bool_value ? "true" : "false";
        case PyExpr::kNone:
            return "undefined";  // MultiPL-E's choice
        case PyExpr::kList:
        case PyExpr::kTuple: {
            std::string s = "[";
            for (size_t i = 0; i < v.items.size(); ++i) s += (i ? ", " : "") + js_value(v.items[i]);
            return s + "]";
        }
        case PyExpr::kDict: {
            std::string s = "{";
            for (size_t i = 0; i < v.items.size(); ++i) {
                s += (i ? ", " : "") + js_value(v.items[i]) + ": " + js_value(v.values[i]);
            }
            return s + "}";
        }
        default:
            throw Untranslatable("not a literal: " + python_repr(v));
    }
}

// ---- tests ----

struct TestCase {
    std::vector<PyExpr> args;  // folded literals
    PyExpr expected;           // folded literal
    bool approx = false;       // |candidate(args) - expected| < tol
    double tol = 0;
};

bool is_call_to(const PyExpr& e, const std::string& fn) {
    return e.kind == PyExpr::kCall && e.items[0].kind == PyExpr::kName && e.items[0].str == fn;
}

PyExpr boolean(bool b) {
    PyExpr e;
    e.kind = PyExpr::kBool;
    e.bool_value = b;
    return e;
}

std::vector<PyExpr> call_args(const PyExpr& call) {
    std::vector<PyExpr> args;
    for (size_t i = 1; i < call.items.size(); ++i) args.push_back(fold(call.items[i]));
    return args;
}

// One assert's test expression as a test case; nullopt for `assert True` (nothing to check);
// Untranslatable for forms that have no translation.
std::optional<TestCase> test_case(const PyExpr& t) {
    TestCase tc;
    if (t.kind == PyExpr::kBool || (t.kind == PyExpr::kInt && t.int_value != 0) ||
        (t.kind == PyExpr::kStr && !t.str.empty())) {
        return std::nullopt;  // `assert True, "..."`: HumanEval's filler lines
    }
    if (is_call_to(t, "candidate")) {  // assert candidate(...)
        tc.args = call_args(t);
        tc.expected = boolean(true);
        return tc;
    }
    if (t.kind == PyExpr::kUnary && t.op == "not" && is_call_to(t.items[0], "candidate")) {
        tc.args = call_args(t.items[0]);
        tc.expected = boolean(false);
        return tc;
    }
    if (t.kind == PyExpr::kCompare && t.ops.size() == 1) {
        const PyExpr& l = t.items[0];
        const PyExpr& r = t.items[1];
        const std::string& op = t.ops[0];
        if (op == "==" && is_call_to(l, "candidate")) {
            tc.args = call_args(l);
            tc.expected = fold(r);
            return tc;
        }
        if (op == "==" && is_call_to(l, "tuple") && l.items.size() == 2 && is_call_to(l.items[1], "candidate")) {
            tc.args = call_args(l.items[1]);
            const PyExpr& rr = is_call_to(r, "tuple") && r.items.size() == 2 ? r.items[1] : r;
            tc.expected = fold(rr);
            if (tc.expected.kind == PyExpr::kTuple) tc.expected.kind = PyExpr::kList;
            if (tc.expected.kind != PyExpr::kList) throw Untranslatable("tuple(...) compared with a non-sequence");
            return tc;
        }
        if ((op == "is") && is_call_to(l, "candidate") && (r.kind == PyExpr::kBool || r.kind == PyExpr::kNone)) {
            tc.args = call_args(l);
            tc.expected = r;
            return tc;
        }
        // abs(candidate(...) - E) < T, or abs(E - candidate(...)) < T
        if ((op == "<" || op == "<=") && is_call_to(l, "abs") && l.items.size() == 2 &&
            l.items[1].kind == PyExpr::kBinary && l.items[1].op == "-") {
            const PyExpr& d = l.items[1];
            const int ci = is_call_to(d.items[0], "candidate") ? 0 : is_call_to(d.items[1], "candidate") ? 1 : -1;
            if (ci >= 0) {
                tc.args = call_args(d.items[ci]);
                tc.expected = fold(d.items[1 - ci]);
                const PyExpr tol = fold(r);
                if (!tc.expected.is_number() || !tol.is_number())
                    throw Untranslatable("approximate test on non-numbers");
                tc.approx = true;
                tc.tol = tol.number();
                return tc;
            }
        }
    }
    throw Untranslatable("assert form " + python_repr(t));
}

struct ParsedTests {
    std::vector<TestCase> cases;
    int dropped = 0;
};

// The asserts of `def check(candidate):` at the body's own indentation; other statements are
// skipped together with the lines nested under them.
ParsedTests parse_check(const std::string& test_src) {
    const std::vector<PyLogicalLine> lines = python_logical_lines(test_src);
    ParsedTests out;
    size_t i = 0;
    while (i < lines.size() && !(lines[i].indent == 0 && lines[i].text.rfind("def check(", 0) == 0)) ++i;
    if (i == lines.size()) throw Untranslatable("the test has no `def check(candidate):`");
    ++i;
    if (i >= lines.size() || lines[i].indent == 0) throw Untranslatable("check() has no body");
    const int body = lines[i].indent;
    for (; i < lines.size() && lines[i].indent > 0; ++i) {
        if (lines[i].indent != body) {  // nested under a skipped statement
            if (lines[i].text.rfind("assert", 0) == 0) ++out.dropped;
            continue;
        }
        std::optional<PyExpr> test;
        try {
            test = parse_python_assert(lines[i].text);
        } catch (const Error&) {
            ++out.dropped;
            continue;
        }
        if (!test) continue;  // import, loop, assignment, print: skipped
        try {
            if (auto tc = test_case(*test)) out.cases.push_back(std::move(*tc));
        } catch (const Untranslatable&) {
            ++out.dropped;
        }
    }
    return out;
}

// ---- prompt ----

// Python's str.strip() over ASCII whitespace.
std::string strip(const std::string& s) {
    const char* ws = " \t\n\r\f\v";
    const size_t a = s.find_first_not_of(ws);
    if (a == std::string::npos) return "";
    const size_t b = s.find_last_not_of(ws);
    return s.substr(a, b - a + 1);
}

// MultiPL-E: "//" + lead + re.sub(r"\n(\s*)", "\n// ", description.strip()) + "\n".
std::string comment_block(const std::string& description, const std::string& lead) {
    const std::string d = strip(description);
    std::string out = "//" + lead;
    for (size_t i = 0; i < d.size();) {
        if (d[i] == '\n') {
            size_t j = i;
            while (j < d.size() && std::isspace(static_cast<unsigned char>(d[j]))) ++j;
            out += "\n// ";
            i = j;
        } else {
            out += d[i++];
        }
    }
    return out + "\n";
}

struct Signature {
    std::string name;
    std::vector<std::string> params;
    std::vector<Type> param_types;  // resolved (C++ only)
    Type ret;
    bool types_ok = false;
    std::string type_error;
};

std::string cpp_call_args(const std::vector<PyExpr>& args, const Signature& sig) {
    if (args.size() != sig.param_types.size()) throw Untranslatable("wrong number of arguments");
    std::string s;
    for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + cpp_value(args[i], sig.param_types[i]);
    return s;
}

std::string js_call_args(const std::vector<PyExpr>& args) {
    std::string s;
    for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + js_value(args[i]);
    return s;
}

// MultiPL-E's "transform" of doctests: each `>>> CALL` line and the output line after it are
// rewritten in the target language; a doctest that does not translate is kept as it is.
std::string transform_doctests(const std::string& desc, const Signature& sig, bool cpp) {
    std::string out;
    size_t pos = 0;
    for (;;) {
        const size_t at = desc.find(">>>", pos);
        if (at == std::string::npos) break;
        const size_t nl1 = desc.find('\n', at);
        if (nl1 == std::string::npos) break;
        const size_t nl2 = desc.find('\n', nl1 + 1);
        if (nl2 == std::string::npos) break;
        out += desc.substr(pos, at - pos);
        std::string replaced = desc.substr(at, nl2 + 1 - at);
        try {
            std::string call_src = desc.substr(at, nl1 - at);
            // Python's str.strip('>>> '): both ends, any of '>' and ' '.
            const size_t a = call_src.find_first_not_of("> ");
            const size_t b = call_src.find_last_not_of("> ");
            call_src = a == std::string::npos ? "" : call_src.substr(a, b - a + 1);
            const PyExpr call = parse_python_expr(call_src);
            const PyExpr output = fold(parse_python_expr(strip(desc.substr(nl1 + 1, nl2 - nl1 - 1))));
            if (!is_call_to(call, sig.name)) throw Untranslatable("doctest calls another function");
            const std::vector<PyExpr> args = call_args(call);
            if (cpp) {
                if (!sig.types_ok) throw Untranslatable("types");
                replaced = ">>> " + cpp_name(sig.name) + "(" + cpp_call_args(args, sig) + ")\n    (" +
                           cpp_value(output, sig.ret) + ")\n";
            } else {
                replaced = ">>> " + sig.name + "(" + js_call_args(args) + ")\n    " + js_value(output) + "\n";
            }
        } catch (const Error&) {
        } catch (const Untranslatable&) {
        }
        out += replaced;
        pos = nl2 + 1;
    }
    return out + desc.substr(pos);
}

std::string lang_task_id(const std::string& id, const std::string& lang) {
    const size_t slash = id.find('/');
    if (slash == std::string::npos) return id + "_" + lang;
    return id.substr(0, slash) + "_" + lang + id.substr(slash);
}

Problem translate_or_throw(const Problem& py, const std::string& lang) {
    const bool cpp = lang == "cpp";
    std::vector<PyFunctionDef> defs;
    try {
        defs = python_top_level_defs(py.prompt);
    } catch (const Error& e) {
        throw Untranslatable(std::string("prompt does not parse: ") + e.what());
    }
    if (defs.size() != 1) {
        throw Untranslatable("the prompt defines " + std::to_string(defs.size()) +
                             " functions (helpers are not translated, as in MultiPL-E)");
    }
    const PyFunctionDef& def = defs[0];
    if (def.name != py.entry_point) throw Untranslatable("the prompt's function is not the entry point");
    if (def.has_star_params) throw Untranslatable("*args/**kwargs parameters");
    if (!def.docstring) throw Untranslatable("the prompt has no docstring");

    ParsedTests tests;
    try {
        tests = parse_check(py.test);
    } catch (const Error& e) {
        throw Untranslatable(std::string("test does not parse: ") + e.what());
    }

    Signature sig;
    sig.name = def.name;
    for (const auto& p : def.params) sig.params.push_back(p.name);
    // Types: the hints, with what the tests' values show filled in.
    try {
        std::vector<std::vector<Type>> seen_args(def.params.size());
        std::vector<Type> seen_ret;
        for (const TestCase& tc : tests.cases) {
            if (tc.args.size() != def.params.size()) continue;
            try {
                std::vector<Type> ts;
                for (const auto& a : tc.args) ts.push_back(value_type(a));
                Type rt = tc.approx ? make(Type::kFloat) : value_type(tc.expected);
                for (size_t i = 0; i < ts.size(); ++i) seen_args[i].push_back(ts[i]);
                seen_ret.push_back(rt);
            } catch (const Untranslatable&) {
            }
        }
        for (size_t i = 0; i < def.params.size(); ++i) {
            const Type hint = def.params[i].annotation ? hint_type(*def.params[i].annotation) : Type{};
            sig.param_types.push_back(resolve(refine(hint, unify_majority(seen_args[i]))));
        }
        const Type rhint = def.returns ? hint_type(*def.returns) : Type{};
        sig.ret = resolve(refine(rhint, unify_majority(seen_ret)));
        if (sig.ret.kind == Type::kAny) throw Untranslatable("returns Any (no equality in C++)");
        sig.types_ok = true;
    } catch (const Untranslatable& e) {
        sig.type_error = e.what();
        if (cpp) throw;
    }

    Problem out;
    out.task_id = lang_task_id(py.task_id, lang);
    out.language = lang;
    out.entry_point = cpp ? cpp_name(def.name) : def.name;
    out.stop = multipl_e_stops(lang);
    out.completion_includes_prompt = false;
    const std::string desc = transform_doctests(*def.docstring, sig, cpp);

    std::string test;
    int kept = 0;
    if (cpp) {
        std::string params;
        for (size_t i = 0; i < def.params.size(); ++i) {
            params += (i ? ", " : "") + cpp_type(sig.param_types[i]) + " " + cpp_name(def.params[i].name);
        }
        out.prompt = "#include<assert.h>\n#include<bits/stdc++.h>\n" + comment_block(desc, " ") + cpp_type(sig.ret) +
                     " " + out.entry_point + "(" + params + ") {\n";
        test = "}\nint main() {\n    auto candidate = " + out.entry_point + ";\n";
        for (const TestCase& tc : tests.cases) {
            try {
                const std::string call = "candidate(" + cpp_call_args(tc.args, sig) + ")";
                if (tc.approx) {
                    if (sig.ret.kind != Type::kFloat) throw Untranslatable("approximate test of a non-float");
                    test += "    assert(std::abs(" + call + " - (" + cpp_float(tc.expected.number()) + ")) < " +
                            python_float_repr(std::max(tc.tol, 1e-4)) + ");\n";
                } else {
                    test += "    assert(" + call + " == (" + cpp_value(tc.expected, sig.ret) + "));\n";
                }
                ++kept;
            } catch (const Untranslatable&) {
            }
        }
        test += "}\n";
    } else {
        std::string params;
        for (size_t i = 0; i < sig.params.size(); ++i) params += (i ? ", " : "") + sig.params[i];
        out.prompt = comment_block(desc, "") + "function " + def.name + "(" + params + "){\n";
        test = "const assert = require('node:assert');\n\n\nfunction test() {\n  let candidate = " + def.name + ";\n";
        for (const TestCase& tc : tests.cases) {
            try {
                if (tc.args.size() != def.params.size()) throw Untranslatable("wrong number of arguments");
                const std::string call = "candidate(" + js_call_args(tc.args) + ")";
                if (tc.approx) {
                    test += "  assert.ok(Math.abs(" + call + " - (" + js_value(tc.expected) + ")) < " +
                            python_float_repr(tc.tol) + ");\n";
                } else {
                    test += "  assert.deepEqual(" + call + "," + js_value(tc.expected) + ");\n";
                }
                ++kept;
            } catch (const Untranslatable&) {
            }
        }
        test += "}\n\ntest();";
    }
    if (kept == 0) throw Untranslatable("no assert of the test could be translated");
    out.test = std::move(test);
    return out;
}

}  // namespace

std::vector<std::string> multipl_e_stops(const std::string& language) {
    if (language == "cpp") return {"\n}"};
    if (language == "js") return {"\nfunction ", "\n/*", "\n//", "\nconsole.log"};
    fail("multipl-e: unknown language '%s' (expected cpp or js)", language.c_str());
}

std::optional<Problem> translate_problem(const Problem& python, const std::string& language, std::string* why) {
    if (language != "cpp" && language != "js") {
        fail("multipl-e: unknown target language '%s' (expected cpp or js)", language.c_str());
    }
    if (!python.language.empty() && python.language != "python") {
        if (why) *why = "not a Python problem (language " + python.language + ")";
        return std::nullopt;
    }
    try {
        return translate_or_throw(python, language);
    } catch (const Untranslatable& e) {
        if (why) *why = e.what();
        return std::nullopt;
    } catch (const Error& e) {  // a Python reader error not caught nearer: the problem is malformed
        if (why) *why = e.what();
        return std::nullopt;
    }
}

std::vector<Problem> translate_problems(const std::vector<Problem>& python, const std::string& language,
                                        std::vector<std::string>* skipped) {
    std::vector<Problem> out;
    for (const Problem& p : python) {
        std::string why;
        if (auto t = translate_problem(p, language, &why)) {
            out.push_back(std::move(*t));
        } else if (skipped) {
            skipped->push_back(p.task_id + ": " + why);
        }
    }
    return out;
}

}  // namespace llmforge::codegen
