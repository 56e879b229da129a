// jinja2 3.1's built-in tests (`x is defined`, `x is divisibleby 3`), with its quirks: an
// undefined value is `iterable`, `sequence` and `callable`; `sameas` compares scalars by value
// (CPython's identity of small ints and interned strings is not modelled).
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

using Type = Value::Type;

template <typename Pred>
bool unary(const char* name, const Value& v, CallArgs& a, Pred pred) {
    Params p(std::string("test '") + name + "'", a, {});
    return pred(v);
}

bool t_defined(const Value& v, CallArgs& a) {
    return unary("defined", v, a, [](const Value& x) { return !x.is_undefined(); });
}
bool t_undefined(const Value& v, CallArgs& a) {
    return unary("undefined", v, a, [](const Value& x) { return x.is_undefined(); });
}
bool t_none(const Value& v, CallArgs& a) {
    return unary("none", v, a, [](const Value& x) { return x.is_none(); });
}
bool t_boolean(const Value& v, CallArgs& a) {
    return unary("boolean", v, a, [](const Value& x) { return x.is_bool(); });
}
bool t_true(const Value& v, CallArgs& a) {
    return unary("true", v, a, [](const Value& x) { return x.is_bool() && x.as_bool(); });
}
bool t_false(const Value& v, CallArgs& a) {
    return unary("false", v, a, [](const Value& x) { return x.is_bool() && !x.as_bool(); });
}
bool t_integer(const Value& v, CallArgs& a) {
    return unary("integer", v, a, [](const Value& x) { return x.is_int(); });
}
bool t_float(const Value& v, CallArgs& a) {
    return unary("float", v, a, [](const Value& x) { return x.is_float(); });
}
bool t_number(const Value& v, CallArgs& a) {
    return unary("number", v, a, [](const Value& x) { return x.is_number(); });
}
bool t_string(const Value& v, CallArgs& a) {
    return unary("string", v, a, [](const Value& x) { return x.is_string(); });
}
bool t_mapping(const Value& v, CallArgs& a) {
    return unary("mapping", v, a, [](const Value& x) { return x.is_dict(); });
}

bool t_iterable(const Value& v, CallArgs& a) {
    return unary("iterable", v, a, [](const Value& x) {
        return x.is_undefined() || x.is_string() || x.is_list() || x.is_dict();
    });
}

bool t_sequence(const Value& v, CallArgs& a) {
    return t_iterable(v, a);
}  // len() and [] work on the same types

bool t_callable(const Value& v, CallArgs& a) {
    return unary("callable", v, a, [](const Value& x) {
        return x.is_undefined() || (x.is_object() && x.as_object().callable());
    });
}

bool t_lower(const Value& v, CallArgs& a) {
    return unary("lower", v, a, [](const Value& x) { return py::is_lower(x.str()); });
}
bool t_upper(const Value& v, CallArgs& a) {
    return unary("upper", v, a, [](const Value& x) { return py::is_upper(x.str()); });
}

// `value % n == 0` with Python's modulo.
bool divisible(const Value& v, const Value& n) {
    return binary_op(BinOp::kMod, v, n).equals(Value::integer(0));
}

bool t_odd(const Value& v, CallArgs& a) {
    return unary("odd", v, a, [](const Value& x) {
        return binary_op(BinOp::kMod, x, Value::integer(2)).equals(Value::integer(1));
    });
}
bool t_even(const Value& v, CallArgs& a) {
    return unary("even", v, a, [](const Value& x) { return divisible(x, Value::integer(2)); });
}

bool t_divisibleby(const Value& v, CallArgs& a) {
    Params p("test 'divisibleby'", a, {"num"});
    return divisible(v, p.require(0));
}

template <CmpOp kOp>
bool t_compare(const Value& v, CallArgs& a) {
    Params p("comparison test", a, {"other"});
    return compare(kOp, v, p.require(0));
}

bool t_sameas(const Value& v, CallArgs& a) {
    Params p("test 'sameas'", a, {"other"});
    return v.identical(p.require(0));
}

bool t_in(const Value& v, CallArgs& a) {
    Params p("test 'in'", a, {"seq"});
    return contains(p.require(0), v);
}

bool t_filter(const Value& v, CallArgs& a) {
    Params p("test 'filter'", a, {});
    return v.is_string() && find_filter(v.as_string()) != nullptr;
}

bool t_test(const Value& v, CallArgs& a) {
    Params p("test 'test'", a, {});
    return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct NamedTest {
    std::string_view name;
    TestFn fn;
};

constexpr NamedTest kTests[] = {
    {"!=", t_compare<CmpOp::kNe>},
    {"<", t_compare<CmpOp::kLt>},
    {"<=", t_compare<CmpOp::kLe>},
    {"==", t_compare<CmpOp::kEq>},
    {">", t_compare<CmpOp::kGt>},
    {">=", t_compare<CmpOp::kGe>},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_compare<CmpOp::kEq>},
    {"equalto", t_compare<CmpOp::kEq>},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_compare<CmpOp::kGe>},
    {"greaterthan", t_compare<CmpOp::kGt>},
    {"gt", t_compare<CmpOp::kGt>},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_compare<CmpOp::kLe>},
    {"lessthan", t_compare<CmpOp::kLt>},
    {"lower", t_lower},
    {"lt", t_compare<CmpOp::kLt>},
    {"mapping", t_mapping},
    {"ne", t_compare<CmpOp::kNe>},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

}  // namespace

const TestFn* find_test(std::string_view name) {
    for (const NamedTest& t : kTests)
        if (t.name == name) return &t.fn;
    return nullptr;
}

}  // namespace llmforge::jinja
