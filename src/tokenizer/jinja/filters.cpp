// jinja2 3.1's built-in filters (the ones templates use; see builtins.h), with their defaults,
// argument names and edge cases (e.g. `"42.7"|int` is 42, `x|length` of an undefined x is 0,
// `sort` ignores case unless asked). Lazy results (map, select, unique, ...) are lists.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

constexpr const char* kHintFilterArgs = "check the filter's arguments";

[[noreturn]] void filter_error(std::string what) {
    throw TemplateError(std::move(what), kHintFilterArgs);
}

// ---- helpers shared by several filters ----

// jinja2's make_attrgetter: "a.b.0" looks up item a, then b, then index 0; "a,b" (sort only)
// gives several keys.
std::vector<Value> attribute_path(const Value& attribute) {
    if (!attribute.is_string()) return {attribute};
    std::vector<Value> parts;
    for (const std::string& part : py::split(attribute.as_string(), std::string("."), -1)) {
        const bool digits =
            !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
        parts.push_back(digits ? Value::integer(std::strtoll(part.c_str(), nullptr, 10))
                               : Value::string(part));
    }
    return parts;
}

Value get_path(Value item, const std::vector<Value>& path) {
    for (const Value& part : path) item = get_item(item, part);
    return item;
}

Value ignore_case(const Value& v) {
    return v.is_string() ? Value::string(py::lower(v.as_string())) : v;
}

// Key function for sort/unique/min/max: attribute path plus optional case folding.
struct KeyFn {
    std::vector<std::vector<Value>> paths;  // empty: the item itself
    bool fold_case = true;

    KeyFn(const Value& attribute, bool case_sensitive) : fold_case(!case_sensitive) {
        if (attribute.is_none() || attribute.is_undefined()) return;
        if (attribute.is_string()) {
            for (const std::string& a : py::split(attribute.as_string(), std::string(","), -1))
                paths.push_back(attribute_path(Value::string(a)));
        } else {
            paths.push_back({attribute});
        }
    }
    Value operator()(const Value& item) const {
        if (paths.empty()) return fold_case ? ignore_case(item) : item;
        std::vector<Value> keys;
        for (const auto& p : paths) {
            const Value k = get_path(item, p);
            keys.push_back(fold_case ? ignore_case(k) : k);
        }
        return keys.size() == 1 ? keys[0] : Value::list(std::move(keys), true);
    }
};

Value string_filter(const Value& in, CallArgs& a, const char* name,
                    std::string (*fn)(std::string_view)) {
    Params p(std::string("filter '") + name + "'", a, {});
    return Value::string(fn(in.str()));
}

// Python int(str, base): whitespace, sign, base prefixes and '_' between digits.
std::optional<int64_t> parse_int(std::string_view s, int base) {
    while (!s.empty() && py::is_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && py::is_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    bool neg = false;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s.size() >= 2 && s[0] == '0') {
        const char p = static_cast<char>(s[1] | 32);
        const int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            s.remove_prefix(2);
            if (!s.empty() && s[0] == '_') s.remove_prefix(1);
        }
    }
    if (base == 0) {
        base = 10;
        if (s.size() > 1 && s[0] == '0' && s.find_first_not_of("0_") != std::string_view::npos)
            return std::nullopt;
    }
    if (s.empty() || s.front() == '_' || s.back() == '_') return std::nullopt;
    __int128 v = 0;
    char prev = 0;
    for (char c : s) {
        if (c == '_') {
            if (prev == '_') return std::nullopt;
            prev = c;
            continue;
        }
        prev = c;
        const int d = c >= '0' && c <= '9'                 ? c - '0'
                      : (c | 32) >= 'a' && (c | 32) <= 'z' ? (c | 32) - 'a' + 10
                                                           : 99;
        if (d >= base) return std::nullopt;
        v = v * base + d;
        if (v > (__int128(1) << 63))
            throw TemplateError("integer overflow", "this engine's integers are 64-bit");
    }
    if (neg) v = -v;
    if (v > INT64_MAX) throw TemplateError("integer overflow", "this engine's integers are 64-bit");
    return static_cast<int64_t>(v);
}

// Python float(str).
std::optional<double> parse_float(std::string_view s) {
    while (!s.empty() && py::is_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && py::is_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    std::string clean;
    for (size_t i = 0; i < s.size(); ++i) {
        const bool digit_around = i > 0 && i + 1 < s.size() &&
                                  std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                                  std::isdigit(static_cast<unsigned char>(s[i + 1]));
        if (s[i] == '_' && !digit_around) return std::nullopt;
        if (s[i] != '_') clean += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    }
    const std::string_view body =
        std::string_view(clean).substr(!clean.empty() && (clean[0] == '+' || clean[0] == '-'));
    if (body == "inf" || body == "infinity" || body == "nan")
        return std::strtod(clean.c_str(), nullptr);
    if (body.empty() || body.find_first_not_of("0123456789.e+-") != std::string_view::npos ||
        body[0] == 'e' || (body[0] == '.' && body.size() == 1))
        return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(clean.c_str(), &end);
    if (end != clean.c_str() + clean.size()) return std::nullopt;
    return v;
}

int64_t float_to_int(double d) {
    if (std::isnan(d)) throw TemplateError("cannot convert float NaN to integer", kHintType);
    if (std::isinf(d)) throw TemplateError("cannot convert float infinity to integer", kHintType);
    if (std::fabs(d) >= 9.2233720368547758e18)
        throw TemplateError("integer overflow", "this engine's integers are 64-bit");
    return static_cast<int64_t>(d);
}

// Python round(x, n) for floats: correctly rounded, ties to even.
double round_float(double x, int64_t n) {
    if (!std::isfinite(x) || n > 323) return x;
    if (n < 0) {
        const double scale = std::pow(10.0, static_cast<double>(-n));
        return std::nearbyint(x / scale) * scale;
    }
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(n), x);
    return std::strtod(buf, nullptr);
}

// ---- the filters, alphabetically ----

Value f_abs(const Value& in, CallArgs& a) {
    Params p("filter 'abs'", a, {});
    if (in.is_float()) return Value::number(std::fabs(in.as_double()));
    if (in.is_int() || in.is_bool())
        return in.as_int() < 0 ? negate(in) : Value::integer(in.as_int());
    throw TemplateError("bad operand type for abs(): '" + in.type_name() + "'", kHintType);
}

Value f_attr(const Value& in, CallArgs& a) {
    Params p("filter 'attr'", a, {"name"});
    const Value& name = p.require(0);
    if (!name.is_string()) return Value::undefined("attribute name must be a string");
    return get_attr_only(in, name.as_string());
}

Value f_batch(const Value& in, CallArgs& a) {
    Params p("filter 'batch'", a, {"linecount", "fill_with"});
    const int64_t n = p.int_or(0, 0);
    if (n < 1) filter_error("batch: linecount must be at least 1");
    std::vector<Value> out, row;
    for (const Value& item : iterate(in)) {
        if (static_cast<int64_t>(row.size()) == n)
            out.push_back(Value::list(std::exchange(row, {})));
        row.push_back(item);
    }
    if (!row.empty()) {
        const Value fill = p.get_or(1, Value::none());
        while (!fill.is_none() && static_cast<int64_t>(row.size()) < n) row.push_back(fill);
        out.push_back(Value::list(std::move(row)));
    }
    return Value::list(std::move(out));
}

Value f_capitalize(const Value& in, CallArgs& a) {
    return string_filter(in, a, "capitalize", py::capitalize);
}
Value f_lower(const Value& in, CallArgs& a) {
    return string_filter(in, a, "lower", py::lower);
}
Value f_upper(const Value& in, CallArgs& a) {
    return string_filter(in, a, "upper", py::upper);
}

Value f_center(const Value& in, CallArgs& a) {
    Params p("filter 'center'", a, {"width"});
    const int64_t width = p.int_or(0, 80);
    check_string_size(static_cast<size_t>(std::max<int64_t>(width, 0)));
    return Value::string(py::pad(in.str(), width, ' ', 'c'));
}

Value f_default(const Value& in, CallArgs& a) {
    Params p("filter 'default'", a, {"default_value", "boolean"});
    const bool use_default = in.is_undefined() || (p.bool_or(1, false) && !in.truthy());
    return use_default ? p.get_or(0, Value::string("")) : in;
}

Value sorted(std::vector<Value> items, const KeyFn& key, bool reverse) {
    std::vector<std::pair<Value, Value>> keyed;
    for (Value& v : items) keyed.emplace_back(key(v), std::move(v));
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
        return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
    });
    std::vector<Value> out;
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return Value::list(std::move(out));
}

Value f_dictsort(const Value& in, CallArgs& a) {
    Params p("filter 'dictsort'", a, {"case_sensitive", "by", "reverse"});
    if (!in.is_dict()) filter_error("dictsort expects a mapping, got " + in.type_name());
    const std::string by = p.str_opt(1).value_or("key");
    if (by != "key" && by != "value")
        filter_error("You can only sort by either \"key\" or \"value\"");
    KeyFn key(Value::integer(by == "key" ? 0 : 1), p.bool_or(0, false));
    std::vector<Value> pairs;
    for (const auto& [k, v] : in.as_dict().items) pairs.push_back(Value::list({k, v}, true));
    return sorted(std::move(pairs), key, p.bool_or(2, false));
}

Value f_escape(const Value& in, CallArgs& a) {
    Params p("filter 'escape'", a, {});
    std::string out;
    for (char c : in.str()) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&#34;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return Value::string(std::move(out));
}

Value f_first(const Value& in, CallArgs& a) {
    Params p("filter 'first'", a, {});
    const std::vector<Value> items = iterate(in);
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(const Value& in, CallArgs& a) {
    Params p("filter 'last'", a, {});
    const std::vector<Value> items = iterate(in);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_float(const Value& in, CallArgs& a) {
    Params p("filter 'float'", a, {"default"});
    if (in.is_undefined()) throw_undefined(in);
    if (in.is_number()) return Value::number(in.as_double());
    if (in.is_string())
        if (auto d = parse_float(in.as_string())) return Value::number(*d);
    return p.get_or(0, Value::number(0.0));
}

Value f_format(const Value& in, CallArgs& a) {
    if (!a.pos.empty() && !a.kw.empty())
        filter_error("can't handle positional and keyword arguments at the same time");
    if (!a.kw.empty()) {
        DictData d;
        for (auto& [k, v] : a.kw) d.set(Value::string(k), v);
        return Value::string(percent_format(in.str(), Value::dict(std::move(d))));
    }
    return Value::string(percent_format(in.str(), Value::list(a.pos, true)));
}

Value f_indent(const Value& in, CallArgs& a) {
    Params p("filter 'indent'", a, {"width", "first", "blank"});
    if (in.is_undefined()) throw_undefined(in);
    if (!in.is_string())
        throw TemplateError(
            "unsupported operand type(s) for +=: '" + in.type_name() + "' and 'str'", kHintType);
    const Value width = p.get_or(0, Value::integer(4));
    const std::string ind =
        width.is_string()
            ? width.as_string()
            : std::string(static_cast<size_t>(std::max<int64_t>(p.int_or(0, 4), 0)), ' ');
    std::vector<std::string> lines = py::splitlines(in.as_string() + "\n", false);
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i) out += "\n";
        const bool indent = i > 0 && (p.bool_or(2, false) || !lines[i].empty());
        out += (indent ? ind : "") + lines[i];
        check_string_size(out.size());
    }
    return Value::string(p.bool_or(1, false) ? ind + out : out);
}

Value f_int(const Value& in, CallArgs& a) {
    Params p("filter 'int'", a, {"default", "base"});
    const Value def = p.get_or(0, Value::integer(0));
    if (in.is_undefined()) throw_undefined(in);
    if (in.is_float()) return Value::integer(float_to_int(in.as_double()));
    if (in.is_int() || in.is_bool()) return Value::integer(in.as_int());
    if (!in.is_string()) return def;
    const int64_t base = p.int_or(1, 10);
    if (base != 0 && (base < 2 || base > 36))
        filter_error("int() base must be >= 2 and <= 36, or 0");
    if (auto i = parse_int(in.as_string(), static_cast<int>(base))) return Value::integer(*i);
    if (auto d = parse_float(in.as_string()); d && !std::isnan(*d))
        return Value::integer(float_to_int(*d));
    return def;
}

Value f_items(const Value& in, CallArgs& a) {
    Params p("filter 'items'", a, {});
    if (in.is_undefined()) return Value::list({});
    if (!in.is_dict()) throw TemplateError("Can only get item pairs from a mapping.", kHintType);
    std::vector<Value> out;
    for (const auto& [k, v] : in.as_dict().items) out.push_back(Value::list({k, v}, true));
    return Value::list(std::move(out));
}

Value f_join(const Value& in, CallArgs& a) {
    Params p("filter 'join'", a, {"d", "attribute"});
    const std::string sep = p.get_or(0, Value::string("")).str();
    const bool by_attr = p.has(1) && !p.get(1).is_none();
    const std::vector<Value> path = by_attr ? attribute_path(p.get(1)) : std::vector<Value>{};
    std::string out;
    bool first = true;
    for (const Value& item : iterate(in)) {
        if (!first) out += sep;
        first = false;
        out += (by_attr ? get_path(item, path) : item).str();
        check_string_size(out.size());
    }
    return Value::string(std::move(out));
}

Value f_length(const Value& in, CallArgs& a) {
    Params p("filter 'length'", a, {});
    return Value::integer(length(in));
}

Value f_list(const Value& in, CallArgs& a) {
    Params p("filter 'list'", a, {});
    return Value::list(iterate(in));
}

Value call_filter(std::string_view name, const Value& in, CallArgs args) {
    const FilterFn* f = find_filter(name);
    if (!f)
        throw TemplateError("No filter named '" + std::string(name) + "'",
                            "jinja2 has no such built-in; check the spelling");
    return (*f)(in, args);
}

bool call_test(const Value& name, const Value& in, CallArgs args) {
    const TestFn* t = name.is_string() ? find_test(name.as_string()) : nullptr;
    if (!t)
        throw TemplateError("No test named " + name.repr(),
                            "jinja2 has no such built-in; check the spelling");
    return (*t)(in, args);
}

Value f_map(const Value& in, CallArgs& a) {
    std::vector<Value> out;
    if (!in.truthy()) return Value::list({});  // jinja2 iterates only a truthy value
    if (a.pos.empty()) {
        Params p("filter 'map'", a, {"attribute", "default"});
        const std::vector<Value> path = attribute_path(p.require(0));
        const Value def = p.get_or(1, Value::none());
        for (const Value& item : iterate(in)) {
            const Value v = get_path(item, path);
            out.push_back(v.is_undefined() && !def.is_none() ? def : v);
        }
        return Value::list(std::move(out));
    }
    const Value name = a.pos[0];
    if (!name.is_string()) filter_error("map: the filter name must be a string");
    CallArgs rest{std::vector<Value>(a.pos.begin() + 1, a.pos.end()), a.kw};
    for (const Value& item : iterate(in)) out.push_back(call_filter(name.as_string(), item, rest));
    return Value::list(std::move(out));
}

template <bool kMax>
Value f_minmax(const Value& in, CallArgs& a) {
    Params p(kMax ? "filter 'max'" : "filter 'min'", a, {"case_sensitive", "attribute"});
    const KeyFn key(p.get_or(1, Value::none()), p.bool_or(0, false));
    const std::vector<Value> items = iterate(in);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    Value best_key = key(items[0]);
    for (size_t i = 1; i < items.size(); ++i) {
        Value k = key(items[i]);
        if (kMax ? less_than(best_key, k) : less_than(k, best_key))
            best = i, best_key = std::move(k);
    }
    return items[best];
}

// select/reject/selectattr/rejectattr.
template <bool kKeep, bool kAttr>
Value f_select(const Value& in, CallArgs& a) {
    size_t off = 0;
    std::vector<Value> path;
    if (kAttr) {
        if (a.pos.empty()) filter_error("Missing parameter for attribute name");
        path = attribute_path(a.pos[0]);
        off = 1;
    }
    const bool has_test = a.pos.size() > off;
    CallArgs test_args{
        has_test ? std::vector<Value>(a.pos.begin() + off + 1, a.pos.end()) : std::vector<Value>{},
        a.kw};
    std::vector<Value> out;
    if (!in.truthy()) return Value::list({});  // jinja2 iterates only a truthy value
    for (const Value& item : iterate(in)) {
        const Value v = kAttr ? get_path(item, path) : item;
        const bool pass = has_test ? call_test(a.pos[off], v, test_args) : v.truthy();
        if (pass == kKeep) out.push_back(item);
    }
    return Value::list(std::move(out));
}

Value f_replace(const Value& in, CallArgs& a) {
    Params p("filter 'replace'", a, {"old", "new", "count"});
    const int64_t count = p.has(2) && !p.get(2).is_none() ? p.int_or(2, -1) : -1;
    std::string out = py::replace(in.str(), p.require(0).str(), p.require(1).str(), count);
    check_string_size(out.size());
    return Value::string(std::move(out));
}

Value f_reverse(const Value& in, CallArgs& a) {
    Params p("filter 'reverse'", a, {});
    if (in.is_string()) {
        std::u32string u = py::decode(in.as_string());
        std::reverse(u.begin(), u.end());
        return Value::string(py::encode(u));
    }
    std::vector<Value> items = iterate(in);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
}

Value f_round(const Value& in, CallArgs& a) {
    Params p("filter 'round'", a, {"precision", "method"});
    const int64_t precision = p.int_or(0, 0);
    const std::string method = p.str_opt(1).value_or("common");
    if (method != "common" && method != "ceil" && method != "floor")
        filter_error("method must be common, ceil or floor");
    if (in.is_undefined()) throw_undefined(in);
    if (!in.is_number())
        throw TemplateError("type " + in.type_name() + " doesn't define __round__ method",
                            kHintType);
    if (method == "common") {
        if (in.is_float()) return Value::number(round_float(in.as_double(), precision));
        if (precision >= 0) return Value::integer(in.as_int());
        return Value::integer(
            static_cast<int64_t>(round_float(static_cast<double>(in.as_int()), precision)));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double v = in.as_double() * scale;
    return Value::number((method == "ceil" ? std::ceil(v) : std::floor(v)) / scale);
}

Value f_string(const Value& in, CallArgs& a) {
    Params p("filter 'string'", a, {});
    return Value::string(in.str());
}

Value f_sort(const Value& in, CallArgs& a) {
    Params p("filter 'sort'", a, {"reverse", "case_sensitive", "attribute"});
    const KeyFn key(p.get_or(2, Value::none()), p.bool_or(1, false));
    return sorted(iterate(in), key, p.bool_or(0, false));
}

Value f_sum(const Value& in, CallArgs& a) {
    Params p("filter 'sum'", a, {"attribute", "start"});
    const bool by_attr = p.has(0) && !p.get(0).is_none();
    const std::vector<Value> path = by_attr ? attribute_path(p.get(0)) : std::vector<Value>{};
    Value total = p.get_or(1, Value::integer(0));
    for (const Value& item : iterate(in))
        total = binary_op(BinOp::kAdd, total, by_attr ? get_path(item, path) : item);
    return total;
}

// jinja2's title filter: capitalizes each word after '-', whitespace or an opening bracket.
Value f_title(const Value& in, CallArgs& a) {
    Params p("filter 'title'", a, {});
    std::u32string word;
    std::string out;
    auto flush = [&]() {
        if (!word.empty())
            out += py::upper(py::encode(word.substr(0, 1))) + py::lower(py::encode(word.substr(1)));
        word.clear();
    };
    for (char32_t c : py::decode(in.str())) {
        const bool sep =
            c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py::is_space(c);
        if (sep) {
            flush();
            out += py::encode({&c, 1});
        } else {
            word += c;
        }
    }
    flush();
    return Value::string(std::move(out));
}

Value f_tojson(const Value& in, CallArgs& a) {
    Params p("filter 'tojson'", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonStyle st;
    st.ensure_ascii = p.bool_or(0, false);
    const Value indent = p.get_or(1, Value::none());
    if (indent.is_string()) {
        st.indent = indent.as_string();
    } else if (!indent.is_none()) {
        st.indent =
            std::string(static_cast<size_t>(std::clamp<int64_t>(p.int_or(1, 0), 0, 1024)), ' ');
    }
    if (st.indent) st.item_sep = ",";
    if (p.has(2) && !p.get(2).is_none()) {
        const std::vector<Value> seps = iterate(p.get(2));
        if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
            filter_error("tojson: separators must be a pair of strings");
        st.item_sep = seps[0].as_string();
        st.key_sep = seps[1].as_string();
    }
    st.sort_keys = p.bool_or(3, false);
    std::string out = to_json(in, st);
    check_string_size(out.size());
    return Value::string(std::move(out));
}

Value f_trim(const Value& in, CallArgs& a) {
    Params p("filter 'trim'", a, {"chars"});
    return Value::string(py::strip(in.str(), p.str_opt(0), true, true));
}

Value f_unique(const Value& in, CallArgs& a) {
    Params p("filter 'unique'", a, {"case_sensitive", "attribute"});
    const KeyFn key(p.get_or(1, Value::none()), p.bool_or(0, false));
    std::vector<Value> out, seen;
    for (const Value& item : iterate(in)) {
        Value k = key(item);
        if (!is_hashable(k))
            throw TemplateError("unhashable type: '" + k.type_name() + "'", kHintType);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return s.equals(k); })) {
            seen.push_back(std::move(k));
            out.push_back(item);
        }
    }
    return Value::list(std::move(out));
}

Value f_wordcount(const Value& in, CallArgs& a) {
    Params p("filter 'wordcount'", a, {});
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : py::decode(in.str())) {
        const bool w = py::is_word(c);
        n += w && !in_word;
        in_word = w;
    }
    return Value::integer(n);
}

struct NamedFilter {
    std::string_view name;
    FilterFn fn;
};

constexpr NamedFilter kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_minmax<true>},
    {"min", f_minmax<false>},
    {"reject", f_select<false, false>},
    {"rejectattr", f_select<false, true>},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_string},
    {"select", f_select<true, false>},
    {"selectattr", f_select<true, true>},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

}  // namespace

const FilterFn* find_filter(std::string_view name) {
    for (const NamedFilter& f : kFilters)
        if (f.name == name) return &f.fn;
    return nullptr;
}

}  // namespace llmforge::jinja
