// Python operators and jinja2's sandboxed lookups (see ops.h).
#include "tokenizer/jinja/ops.h"

#include <cmath>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

bool is_intlike(const Value& v) {
    return v.is_int() || v.is_bool();
}

[[noreturn]] void type_error(std::string what) {
    throw TemplateError(std::move(what), kHintType);
}

[[noreturn]] void unsupported(BinOp op, const Value& a, const Value& b) {
    type_error(std::string("unsupported operand type(s) for ") + binop_symbol(op) + ": '" +
               a.type_name() + "' and '" + b.type_name() + "'");
}

[[noreturn]] void overflow() {
    throw TemplateError("integer overflow", "this engine's integers are 64-bit, Python's are not");
}

int64_t checked_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) overflow();
    return r;
}

int64_t checked_sub(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) overflow();
    return r;
}

int64_t checked_mul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) overflow();
    return r;
}

Value repeat(const Value& seq, int64_t n) {
    if (seq.is_string()) {
        const std::string& s = seq.as_string();
        if (n <= 0 || s.empty()) return Value::string("");
        check_string_size(s.size() *
                          static_cast<size_t>(std::min<int64_t>(n, kMaxStringBytes + 1)));
        std::string out;
        out.reserve(s.size() * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) out += s;
        return Value::string(std::move(out));
    }
    const ListData& l = seq.as_list();
    if (n <= 0 || l.items.empty()) return Value::list({}, l.tuple);
    if (l.items.size() * sizeof(Value) *
            static_cast<size_t>(std::min<int64_t>(n, kMaxStringBytes + 1)) >
        kMaxStringBytes)
        throw TemplateError("list repetition too large",
                            "the template repeats a list too many times");
    std::vector<Value> out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), l.items.begin(), l.items.end());
    return Value::list(std::move(out), l.tuple);
}

Value add(const Value& a, const Value& b) {
    if (a.is_string() && b.is_string()) {
        check_string_size(a.as_string().size() + b.as_string().size());
        return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_string())
        type_error("can only concatenate str (not \"" + b.type_name() + "\") to str");
    if (a.is_list() && b.is_list() && a.as_list().tuple == b.as_list().tuple) {
        std::vector<Value> out = a.as_list().items;
        out.insert(out.end(), b.as_list().items.begin(), b.as_list().items.end());
        return Value::list(std::move(out), a.as_list().tuple);
    }
    if (a.is_list())
        type_error("can only concatenate " + a.type_name() + " (not \"" + b.type_name() +
                   "\") to " + a.type_name());
    if (!a.is_number() || !b.is_number()) unsupported(BinOp::kAdd, a, b);
    if (a.is_float() || b.is_float()) return Value::number(a.as_double() + b.as_double());
    return Value::integer(checked_add(a.as_int(), b.as_int()));
}

Value mul(const Value& a, const Value& b) {
    if ((a.is_string() || a.is_list()) && is_intlike(b)) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && is_intlike(a)) return repeat(b, a.as_int());
    if (a.is_string() || a.is_list() || b.is_string() || b.is_list()) {
        const Value& other = a.is_string() || a.is_list() ? b : a;
        type_error("can't multiply sequence by non-int of type '" + other.type_name() + "'");
    }
    if (!a.is_number() || !b.is_number()) unsupported(BinOp::kMul, a, b);
    if (a.is_float() || b.is_float()) return Value::number(a.as_double() * b.as_double());
    return Value::integer(checked_mul(a.as_int(), b.as_int()));
}

[[noreturn]] void zero_division(const char* what) {
    throw TemplateError(what, "the template divides by a zero value");
}

// Python's floor division and modulo (the result of % takes the divisor's sign).
Value floordiv_mod(BinOp op, const Value& a, const Value& b) {
    if (a.is_float() || b.is_float()) {
        const double x = a.as_double(), y = b.as_double();
        if (y == 0)
            zero_division(op == BinOp::kMod ? "float modulo" : "float floor division by zero");
        double m = std::fmod(x, y);
        double d = (x - m) / y;
        if (m != 0 && ((y < 0) != (m < 0))) {
            m += y;
            d -= 1;
        }
        if (op == BinOp::kMod) return Value::number(m == 0 ? std::copysign(0.0, y) : m);
        if (d == 0) return Value::number(std::copysign(0.0, x / y));
        const double f = std::floor(d);
        return Value::number(d - f > 0.5 ? f + 1 : f);
    }
    const int64_t x = a.as_int(), y = b.as_int();
    if (y == 0) zero_division("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) overflow();
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
        m += y;
        q -= 1;
    }
    return Value::integer(op == BinOp::kMod ? m : q);
}

Value power(const Value& a, const Value& b) {
    if (is_intlike(a) && is_intlike(b) && b.as_int() >= 0) {
        int64_t base = a.as_int(), e = b.as_int(), r = 1;
        while (e > 0) {
            if (e & 1) r = checked_mul(r, base);
            e >>= 1;
            if (e > 0) base = checked_mul(base, base);
        }
        return Value::integer(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0)
        zero_division("0.0 cannot be raised to a negative power");
    return Value::number(std::pow(a.as_double(), b.as_double()));
}

std::string object_type_repr(const Value& obj) {
    return obj.is_none() ? "None" : obj.type_name() + " object";
}

Value missing_attr(const Value& obj, std::string_view name) {
    std::string msg = "'";  // appended piecewise: GCC 12 misreports "lit" + string (-Wrestrict)
    msg.append(object_type_repr(obj)).append("' has no attribute '").append(name).append("'");
    return Value::undefined(msg);
}

// Index of `key` into a sequence of n elements, or nullopt when out of range.
std::optional<size_t> seq_index(const Value& key, size_t n) {
    int64_t i = key.as_int();
    if (i < 0) i += static_cast<int64_t>(n);
    if (i < 0 || i >= static_cast<int64_t>(n)) return std::nullopt;
    return static_cast<size_t>(i);
}

std::optional<int64_t> slice_bound(const Value& v) {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!is_intlike(v)) type_error("slice indices must be integers or None");
    return v.as_int();
}

}  // namespace

const char* binop_symbol(BinOp op) {
    static const char* const kSymbols[] = {"+", "-", "*", "/", "//", "%", "**"};
    return kSymbols[static_cast<int>(op)];
}

void check_string_size(size_t bytes) {
    if (bytes > kMaxStringBytes)
        throw TemplateError("string of more than 64 MiB",
                            "the template builds a string without bound");
}

void throw_undefined(const Value& v) {
    const std::string& why = v.undefined_reason();
    if (why.find("is unsafe.") != std::string::npos)  // a mutating method (see bound_method)
        throw TemplateError(
            why, "values are immutable in chat templates; build a new one (e.g. xs + [x])");
    throw TemplateError(why.empty() ? "undefined value" : why, kHintUndefined);
}

Value binary_op(BinOp op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw_undefined(a);
    if (op == BinOp::kMod && a.is_string()) return Value::string(percent_format(a.as_string(), b));
    if (b.is_undefined()) throw_undefined(b);
    switch (op) {
        case BinOp::kAdd:
            return add(a, b);
        case BinOp::kMul:
            return mul(a, b);
        default:
            break;
    }
    if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
    switch (op) {
        case BinOp::kSub: {
            if (a.is_float() || b.is_float()) return Value::number(a.as_double() - b.as_double());
            return Value::integer(checked_sub(a.as_int(), b.as_int()));
        }
        case BinOp::kDiv:
            if (b.as_double() == 0) zero_division("division by zero");
            return Value::number(a.as_double() / b.as_double());
        case BinOp::kFloorDiv:
        case BinOp::kMod:
            return floordiv_mod(op, a, b);
        default:
            return power(a, b);
    }
}

Value negate(const Value& v) {
    if (v.is_undefined()) throw_undefined(v);
    if (v.is_float()) return Value::number(-v.as_double());
    if (!is_intlike(v)) type_error("bad operand type for unary -: '" + v.type_name() + "'");
    return Value::integer(checked_sub(0, v.as_int()));
}

Value unary_plus(const Value& v) {
    if (v.is_undefined()) throw_undefined(v);
    if (v.is_float()) return v;
    if (!is_intlike(v)) type_error("bad operand type for unary +: '" + v.type_name() + "'");
    return Value::integer(v.as_int());
}

bool compare(CmpOp op, const Value& a, const Value& b) {
    switch (op) {
        case CmpOp::kEq:
            return a.equals(b);
        case CmpOp::kNe:
            return !a.equals(b);
        case CmpOp::kIn:
            return contains(b, a);
        case CmpOp::kNotIn:
            return !contains(b, a);
        default:
            break;
    }
    if (a.is_undefined()) throw_undefined(a);
    if (b.is_undefined()) throw_undefined(b);
    switch (op) {
        case CmpOp::kLt:
            return less_than(a, b);
        case CmpOp::kLe:
            return less_than(a, b) || a.equals(b);
        case CmpOp::kGt:
            return less_than(b, a);
        default:
            return less_than(b, a) || a.equals(b);
    }
}

bool contains(const Value& container, const Value& item) {
    switch (container.type()) {
        case Value::Type::kUndefined:
            return false;
        case Value::Type::kString:
            if (!item.is_string())
                type_error("'in <string>' requires string as left operand, not " +
                           item.type_name());
            return container.as_string().find(item.as_string()) != std::string::npos;
        case Value::Type::kList:
            for (const Value& e : container.as_list().items)
                if (e.equals(item)) return true;
            return false;
        case Value::Type::kDict:
            if (!is_hashable(item)) type_error("unhashable type: '" + item.type_name() + "'");
            return container.as_dict().find(item) != nullptr;
        default:
            type_error("argument of type '" + container.type_name() + "' is not iterable");
    }
}

std::vector<Value> iterate(const Value& v) {
    switch (v.type()) {
        case Value::Type::kUndefined:
            return {};
        case Value::Type::kString: {
            std::vector<Value> out;
            for (char32_t c : py::decode(v.as_string()))
                out.push_back(Value::string(py::encode({&c, 1})));
            return out;
        }
        case Value::Type::kList:
            return v.as_list().items;
        case Value::Type::kDict: {
            std::vector<Value> out;
            for (const auto& kv : v.as_dict().items) out.push_back(kv.first);
            return out;
        }
        default:
            type_error("'" + v.type_name() + "' object is not iterable");
    }
}

int64_t length(const Value& v) {
    switch (v.type()) {
        case Value::Type::kUndefined:
            return 0;
        case Value::Type::kString:
            return static_cast<int64_t>(py::length(v.as_string()));
        case Value::Type::kList:
            return static_cast<int64_t>(v.as_list().items.size());
        case Value::Type::kDict:
            return static_cast<int64_t>(v.as_dict().items.size());
        default:
            type_error("object of type '" + v.type_name() + "' has no len()");
    }
}

Value get_attr_only(const Value& obj, std::string_view name) {
    if (obj.is_undefined()) throw_undefined(obj);
    if (obj.is_object()) {
        if (auto v = obj.as_object().get_attr(name)) return *v;
        return missing_attr(obj, name);
    }
    if (auto m = bound_method(obj, name)) return *m;
    return missing_attr(obj, name);
}

Value get_attr(const Value& obj, std::string_view name) {
    if (!obj.is_dict()) return get_attr_only(obj, name);
    if (auto m = bound_method(obj, name)) return *m;  // d.items is the method, as in Python
    if (const Value* e = obj.as_dict().find(Value::string(std::string(name)))) return *e;
    return missing_attr(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) throw_undefined(obj);
    if (obj.is_dict() && is_hashable(key)) {
        if (const Value* e = obj.as_dict().find(key)) return *e;
    } else if ((obj.is_list() || obj.is_string()) && is_intlike(key)) {
        if (obj.is_list()) {
            const auto& items = obj.as_list().items;
            if (auto i = seq_index(key, items.size())) return items[*i];
        } else {
            const std::u32string u = py::decode(obj.as_string());
            if (auto i = seq_index(key, u.size())) return Value::string(py::encode({&u[*i], 1}));
        }
    }
    if (key.is_string()) return get_attr_only(obj, key.as_string());
    return Value::undefined(object_type_repr(obj) + " has no element " + key.repr());
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
    if (obj.is_undefined()) throw_undefined(obj);
    const int64_t st = slice_bound(step).value_or(1);
    if (st == 0) throw TemplateError("slice step cannot be zero", "use a non-zero step");
    const bool is_str = obj.is_string();
    if (obj.is_dict())
        type_error("unhashable type: 'slice'");  // jinja2 slices with plain Python []
    if (!is_str && !obj.is_list())
        type_error("'" + obj.type_name() + "' object is not subscriptable");
    const std::u32string u = is_str ? py::decode(obj.as_string()) : std::u32string();
    const int64_t n = is_str ? static_cast<int64_t>(u.size()) : length(obj);
    int64_t first = 0, count = 0;
    py::adjust_slice(n, slice_bound(start), slice_bound(stop), st, first, count);
    if (is_str) {
        std::u32string out;
        for (int64_t k = 0; k < count; ++k) out += u[static_cast<size_t>(first + k * st)];
        return Value::string(py::encode(out));
    }
    std::vector<Value> out;
    for (int64_t k = 0; k < count; ++k)
        out.push_back(obj.as_list().items[static_cast<size_t>(first + k * st)]);
    return Value::list(std::move(out), obj.as_list().tuple);
}

}  // namespace llmforge::jinja
