// Methods of str, dict and list that templates call (`s.strip()`, `d.items()`), with Python's
// semantics, and Python's two string-formatting mini-languages (`%` and str.format).
// Mutating methods are refused as HF's ImmutableSandboxedEnvironment refuses them.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

using MethodFn = Value (*)(const Value& self, CallArgs& args);
struct Method {
    std::string_view name;
    MethodFn fn;
};

std::optional<int64_t> opt_int(const Params& p, size_t i) {
    if (!p.has(i) || p.get(i).is_none()) return std::nullopt;
    return p.int_or(i, 0);
}

const std::string& str_arg(const Params& p, size_t i, const char* what) {
    const Value& v = p.require(i);
    if (!v.is_string())
        throw TemplateError(std::string(what) + " argument must be str, not " + v.type_name(),
                            kHintType);
    return v.as_string();
}

Value str_list(std::vector<std::string> parts) {
    std::vector<Value> out;
    out.reserve(parts.size());
    for (auto& s : parts) out.push_back(Value::string(std::move(s)));
    return Value::list(std::move(out));
}

template <bool kLeft, bool kRight>
Value m_strip(const Value& self, CallArgs& a) {
    Params p("str.strip", a, {"chars"});
    return Value::string(py::strip(self.as_string(), p.str_opt(0), kLeft, kRight));
}

template <bool kReverse>
Value m_split(const Value& self, CallArgs& a) {
    Params p("str.split", a, {"sep", "maxsplit"});
    const auto sep = p.str_opt(0);
    if (sep && sep->empty()) throw TemplateError("empty separator", "split on a non-empty string");
    const int64_t maxsplit = p.int_or(1, -1);
    return str_list(kReverse ? py::rsplit(self.as_string(), sep, maxsplit)
                             : py::split(self.as_string(), sep, maxsplit));
}

Value m_splitlines(const Value& self, CallArgs& a) {
    Params p("str.splitlines", a, {"keepends"});
    return str_list(py::splitlines(self.as_string(), p.bool_or(0, false)));
}

template <bool kEnd>
Value m_startswith(const Value& self, CallArgs& a) {
    Params p(kEnd ? "str.endswith" : "str.startswith", a, {"prefix", "start", "end"});
    const Value& what = p.require(0);
    std::vector<Value> options;
    if (what.is_string()) {
        options.push_back(what);
    } else if (what.is_list() && what.as_list().tuple) {
        options = what.as_list().items;
    } else {
        throw TemplateError(std::string(kEnd ? "endswith" : "startswith") +
                                " first arg must be str or a tuple of str, not " + what.type_name(),
                            kHintType);
    }
    const Value window =
        get_slice(self, p.get_or(1, Value::none()), p.get_or(2, Value::none()), Value::none());
    const std::string& s = window.as_string();
    for (const Value& o : options) {
        if (!o.is_string())
            throw TemplateError("tuple for startswith must only contain str, not " + o.type_name(),
                                kHintType);
        const std::string& x = o.as_string();
        if (x.size() <= s.size() && (kEnd ? s.compare(s.size() - x.size(), x.size(), x) == 0
                                          : s.compare(0, x.size(), x) == 0))
            return Value::boolean(true);
    }
    return Value::boolean(false);
}

template <std::string (*kFn)(std::string_view)>
Value m_case(const Value& self, CallArgs& a) {
    Params p("str method", a, {});
    return Value::string(kFn(self.as_string()));
}

Value m_replace(const Value& self, CallArgs& a) {
    Params p("str.replace", a, {"old", "new", "count"});
    const std::string out = py::replace(self.as_string(), str_arg(p, 0, "replace()"),
                                        str_arg(p, 1, "replace()"), p.int_or(2, -1));
    check_string_size(out.size());
    return Value::string(out);
}

template <bool kReverse, bool kRaise>
Value m_find(const Value& self, CallArgs& a) {
    Params p("str.find", a, {"sub", "start", "end"});
    const int64_t i =
        py::find(self.as_string(), str_arg(p, 0, "find()"), opt_int(p, 1), opt_int(p, 2), kReverse);
    if (kRaise && i < 0)
        throw TemplateError("substring not found", "check the string first with 'in'");
    return Value::integer(i);
}

Value m_count(const Value& self, CallArgs& a) {
    Params p("str.count", a, {"sub", "start", "end"});
    return Value::integer(
        py::count(self.as_string(), str_arg(p, 0, "count()"), opt_int(p, 1), opt_int(p, 2)));
}

Value m_join(const Value& self, CallArgs& a) {
    Params p("str.join", a, {"iterable"});
    std::string out;
    size_t i = 0;
    for (const Value& v : iterate(p.require(0))) {
        if (!v.is_string())
            throw TemplateError("sequence item " + std::to_string(i) + ": expected str instance, " +
                                    v.type_name() + " found",
                                kHintType);
        if (i++) out += self.as_string();
        out += v.as_string();
        check_string_size(out.size());
    }
    return Value::string(std::move(out));
}

Value m_format(const Value& self, CallArgs& a) {
    return Value::string(str_format(self.as_string(), a));
}

template <bool (*kPred)(char32_t)>
Value m_is(const Value& self, CallArgs& a) {
    Params p("str method", a, {});
    const std::u32string u = py::decode(self.as_string());
    bool ok = !u.empty();
    for (char32_t c : u) ok = ok && kPred(c);
    return Value::boolean(ok);
}

bool is_alnum(char32_t c) {
    return py::is_alpha(c) || py::is_digit(c);
}

template <bool (*kPred)(std::string_view)>
Value m_is_case(const Value& self, CallArgs& a) {
    Params p("str method", a, {});
    return Value::boolean(kPred(self.as_string()));
}

template <char kAlign>
Value m_pad(const Value& self, CallArgs& a) {
    Params p("str.center", a, {"width", "fillchar"});
    const std::u32string fill = py::decode(p.str_opt(1).value_or(" "));
    if (fill.size() != 1)
        throw TemplateError("The fill character must be exactly one character long", kHintType);
    const int64_t width = p.int_or(0, 0);
    check_string_size(static_cast<size_t>(std::max<int64_t>(width, 0)));
    return Value::string(py::pad(self.as_string(), width, fill[0], kAlign));
}

Value m_zfill(const Value& self, CallArgs& a) {
    Params p("str.zfill", a, {"width"});
    const std::string& s = self.as_string();
    const int64_t width = p.int_or(0, 0);
    check_string_size(static_cast<size_t>(std::max<int64_t>(width, 0)));
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    std::string padded = py::pad(s.substr(sign), width - sign, '0', 'r');
    return Value::string(sign ? s.substr(0, 1) + padded : padded);
}

template <bool kReverse>
Value m_partition(const Value& self, CallArgs& a) {
    Params p("str.partition", a, {"sep"});
    const std::string& s = self.as_string();
    const std::string& sep = str_arg(p, 0, "partition()");
    if (sep.empty()) throw TemplateError("empty separator", "partition on a non-empty string");
    const size_t hit = kReverse ? s.rfind(sep) : s.find(sep);
    std::vector<Value> parts;
    if (hit == std::string::npos) {
        parts = kReverse ? std::vector<Value>{Value::string(""), Value::string(""), self}
                         : std::vector<Value>{self, Value::string(""), Value::string("")};
    } else {
        parts = {Value::string(s.substr(0, hit)), Value::string(sep),
                 Value::string(s.substr(hit + sep.size()))};
    }
    return Value::list(std::move(parts), true);
}

template <bool kSuffix>
Value m_remove_affix(const Value& self, CallArgs& a) {
    Params p("str.removeprefix", a, {"affix"});
    const std::string& s = self.as_string();
    const std::string& x = str_arg(p, 0, "removeprefix()");
    if (x.size() > s.size()) return self;
    if (kSuffix)
        return s.compare(s.size() - x.size(), x.size(), x) == 0
                   ? Value::string(s.substr(0, s.size() - x.size()))
                   : self;
    return s.compare(0, x.size(), x) == 0 ? Value::string(s.substr(x.size())) : self;
}

constexpr Method kStrMethods[] = {
    {"strip", m_strip<true, true>},
    {"lstrip", m_strip<true, false>},
    {"rstrip", m_strip<false, true>},
    {"split", m_split<false>},
    {"rsplit", m_split<true>},
    {"splitlines", m_splitlines},
    {"startswith", m_startswith<false>},
    {"endswith", m_startswith<true>},
    {"upper", m_case<py::upper>},
    {"lower", m_case<py::lower>},
    {"casefold", m_case<py::lower>},
    {"title", m_case<py::title>},
    {"capitalize", m_case<py::capitalize>},
    {"replace", m_replace},
    {"find", m_find<false, false>},
    {"rfind", m_find<true, false>},
    {"index", m_find<false, true>},
    {"rindex", m_find<true, true>},
    {"count", m_count},
    {"join", m_join},
    {"format", m_format},
    {"isdigit", m_is<py::is_digit>},
    {"isalpha", m_is<py::is_alpha>},
    {"isalnum", m_is<is_alnum>},
    {"isspace", m_is<py::is_space>},
    {"islower", m_is_case<py::is_lower>},
    {"isupper", m_is_case<py::is_upper>},
    {"center", m_pad<'c'>},
    {"ljust", m_pad<'l'>},
    {"rjust", m_pad<'r'>},
    {"zfill", m_zfill},
    {"partition", m_partition<false>},
    {"rpartition", m_partition<true>},
    {"removeprefix", m_remove_affix<false>},
    {"removesuffix", m_remove_affix<true>},
};

Value d_items(const Value& self, CallArgs& a) {
    Params p("dict.items", a, {});
    std::vector<Value> out;
    for (const auto& [k, v] : self.as_dict().items) out.push_back(Value::list({k, v}, true));
    return Value::list(std::move(out));
}

Value d_keys(const Value& self, CallArgs& a) {
    Params p("dict.keys", a, {});
    return Value::list(iterate(self));
}

Value d_values(const Value& self, CallArgs& a) {
    Params p("dict.values", a, {});
    std::vector<Value> out;
    for (const auto& kv : self.as_dict().items) out.push_back(kv.second);
    return Value::list(std::move(out));
}

Value d_get(const Value& self, CallArgs& a) {
    Params p("dict.get", a, {"key", "default"});
    const Value& key = p.require(0);
    if (!is_hashable(key))
        throw TemplateError("unhashable type: '" + key.type_name() + "'", kHintType);
    const Value* v = self.as_dict().find(key);
    return v ? *v : p.get_or(1, Value::none());
}

Value same(const Value& self, CallArgs& a) {
    Params p("copy", a, {});
    return self;
}

constexpr Method kDictMethods[] = {
    {"items", d_items}, {"keys", d_keys}, {"values", d_values}, {"get", d_get}, {"copy", same},
};

Value l_index(const Value& self, CallArgs& a) {
    Params p("list.index", a, {"value"});
    const auto& items = self.as_list().items;
    for (size_t i = 0; i < items.size(); ++i)
        if (items[i].equals(p.require(0))) return Value::integer(static_cast<int64_t>(i));
    throw TemplateError(p.get(0).repr() + " is not in list", "check membership first with 'in'");
}

Value l_count(const Value& self, CallArgs& a) {
    Params p("list.count", a, {"value"});
    int64_t n = 0;
    for (const Value& v : self.as_list().items) n += v.equals(p.require(0));
    return Value::integer(n);
}

constexpr Method kListMethods[] = {{"index", l_index}, {"count", l_count}, {"copy", same}};

constexpr std::string_view kUnsafeList[] = {"append", "clear",  "extend",  "insert",
                                            "pop",    "remove", "reverse", "sort"};
constexpr std::string_view kUnsafeDict[] = {"clear", "pop", "popitem", "setdefault", "update"};

template <size_t N, size_t M>
std::optional<Value> lookup(const Value& self, std::string_view name, const Method (&table)[N],
                            const std::string_view (&unsafe)[M]) {
    for (const Method& m : table) {
        if (m.name == name) {
            const MethodFn fn = m.fn;
            return make_function(self.type_name() + "." + std::string(name),
                                 [self, fn](CallArgs& a) { return fn(self, a); });
        }
    }
    for (std::string_view u : unsafe) {
        if (u == name)
            return Value::undefined("access to attribute '" + std::string(name) + "' of '" +
                                    self.type_name() + "' object is unsafe.");
    }
    return std::nullopt;
}

}  // namespace

std::optional<Value> bound_method(const Value& self, std::string_view name) {
    constexpr std::string_view kNone[] = {""};
    if (self.is_string()) return lookup(self, name, kStrMethods, kNone);
    if (self.is_dict()) return lookup(self, name, kDictMethods, kUnsafeDict);
    if (self.is_list() && !self.as_list().tuple)
        return lookup(self, name, kListMethods, kUnsafeList);
    if (self.is_list()) return lookup(self, name, kListMethods, kNone);
    return std::nullopt;
}

// ---- printf-style formatting (`fmt % args`) ----

namespace {

[[noreturn]] void format_error(std::string what) {
    throw TemplateError(std::move(what), "check the format string against its arguments");
}

struct PercentSpec {
    std::string flags;
    int width = -1, precision = -1;
    char conv = 0;
};

std::string pad_text(std::string s, const PercentSpec& sp) {
    if (sp.width < 0) return s;
    return py::pad(s, sp.width, ' ', sp.flags.find('-') != std::string::npos ? 'l' : 'r');
}

std::string format_number(const Value& v, const PercentSpec& sp) {
    std::string cfmt = "%" + sp.flags;
    if (sp.width >= 0) cfmt += std::to_string(sp.width);
    if (sp.precision >= 0) cfmt += "." + std::to_string(sp.precision);
    char buf[512];
    const char c = sp.conv == 'i' || sp.conv == 'u' ? 'd' : sp.conv;
    if (c == 'd' || c == 'x' || c == 'X' || c == 'o') {
        if ((c != 'd' && v.is_float()) || !v.is_number())
            format_error(std::string("%") + sp.conv +
                         " format: " + (c == 'd' ? "a real number" : "an integer") +
                         " is required, not " + v.type_name());
        const long long i = v.is_float() ? static_cast<long long>(v.as_double()) : v.as_int();
        std::snprintf(buf, sizeof(buf), (cfmt + "ll" + c).c_str(), i);
    } else {
        if (!v.is_number()) format_error("must be real number, not " + v.type_name());
        std::snprintf(buf, sizeof(buf), (cfmt + c).c_str(), v.as_double());
    }
    return buf;
}

std::string format_one(const Value& v, const PercentSpec& sp) {
    switch (sp.conv) {
        case 's':
        case 'r':
        case 'a': {
            std::string s = sp.conv == 's' ? v.str() : v.repr();
            if (sp.precision >= 0)
                s = py::encode(py::decode(s).substr(0, static_cast<size_t>(sp.precision)));
            return pad_text(std::move(s), sp);
        }
        case 'c':
            if (v.is_string() && py::length(v.as_string()) == 1) return pad_text(v.as_string(), sp);
            if (!v.is_int()) format_error("%c requires int or char");
            return pad_text(py::encode(std::u32string(1, static_cast<char32_t>(v.as_int()))), sp);
        default:
            if (std::string_view("diuxXoeEfFgG").find(sp.conv) == std::string_view::npos)
                format_error(std::string("unsupported format character '") + sp.conv + "'");
            if (sp.width > 400 || sp.precision > 400)
                format_error("format width or precision too large");
            return format_number(v, sp);
    }
}

}  // namespace

std::string percent_format(const std::string& fmt, const Value& args) {
    const bool is_tuple = args.is_list() && args.as_list().tuple;
    const std::vector<Value> positional =
        is_tuple ? args.as_list().items : std::vector<Value>{args};
    size_t next = 0;
    bool used_mapping = false;
    std::string out;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        if (++i == fmt.size()) format_error("incomplete format");
        PercentSpec sp;
        const Value* arg = nullptr;
        Value keyed;
        if (fmt[i] == '(') {
            const size_t close = fmt.find(')', i);
            if (close == std::string::npos) format_error("incomplete format key");
            if (!args.is_dict()) format_error("format requires a mapping");
            keyed = get_item(args, Value::string(fmt.substr(i + 1, close - i - 1)));
            if (keyed.is_undefined()) format_error("KeyError: " + fmt.substr(i + 1, close - i - 1));
            arg = &keyed;
            used_mapping = true;
            i = close + 1;
        }
        while (i < fmt.size() && std::string_view("-+ 0#").find(fmt[i]) != std::string_view::npos)
            sp.flags += fmt[i++];
        auto number = [&]() {
            int n = 0;
            while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9' && n < 100000)
                n = n * 10 + (fmt[i++] - '0');
            return n;
        };
        if (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') sp.width = number();
        if (i < fmt.size() && fmt[i] == '.') {
            ++i;
            sp.precision = number();
        }
        if (i == fmt.size()) format_error("incomplete format");
        sp.conv = fmt[i];
        if (sp.conv == '%') {
            out += '%';
            continue;
        }
        if (!arg) {
            if (next >= positional.size()) format_error("not enough arguments for format string");
            arg = &positional[next++];
        }
        out += format_one(*arg, sp);
        check_string_size(out.size());
    }
    // Python skips the leftover check when the argument supports [] (a dict, a list, Undefined).
    const bool consumed = used_mapping || next == positional.size() || args.is_dict() ||
                          args.is_undefined() || (!is_tuple && args.is_list());
    if (!consumed) format_error("not all arguments converted during string formatting");
    return out;
}

// ---- str.format ----

namespace {

struct FormatSpec {
    char32_t fill = ' ';
    char align = 0;  // '<', '>', '^' or 0 (default for the type)
    char sign = '-';
    int width = -1, precision = -1;
    char type = 0;
};

FormatSpec parse_spec(const std::u32string& s) {
    FormatSpec sp;
    size_t i = 0;
    auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^'; };
    if (s.size() >= 2 && is_align(s[1])) {
        sp.fill = s[0];
        sp.align = static_cast<char>(s[1]);
        i = 2;
    } else if (!s.empty() && is_align(s[0])) {
        sp.align = static_cast<char>(s[0]);
        i = 1;
    }
    if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' '))
        sp.sign = static_cast<char>(s[i++]);
    if (i < s.size() && s[i] == '0' && !sp.align) {
        sp.fill = '0';
        sp.align = '=';
        ++i;
    }
    auto number = [&]() {
        int n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && n < 100000)
            n = n * 10 + static_cast<int>(s[i++] - '0');
        return n;
    };
    if (i < s.size() && s[i] >= '0' && s[i] <= '9') sp.width = number();
    if (i < s.size() && s[i] == '.') {
        ++i;
        sp.precision = number();
    }
    if (i < s.size()) sp.type = static_cast<char>(s[i++]);
    if (i != s.size() || sp.width > 400 || sp.precision > 400)
        format_error("unsupported format spec '" + py::encode(s) + "'");
    return sp;
}

std::string apply_spec(const Value& v, const FormatSpec& sp) {
    std::string body;
    const bool numeric = v.is_number();
    if (!numeric || (sp.type == 0 && sp.precision < 0) || sp.type == 's') {
        if (sp.type != 0 && sp.type != 's')
            format_error(std::string("Unknown format code '") + sp.type + "' for object of type '" +
                         v.type_name() + "'");
        body = v.str();
        if (sp.precision >= 0)
            body = py::encode(py::decode(body).substr(0, static_cast<size_t>(sp.precision)));
    } else {
        PercentSpec ps;
        if (sp.sign != '-') ps.flags += sp.sign;
        ps.precision = sp.precision;
        ps.conv = sp.type ? sp.type : 'g';
        if (ps.conv == '%') {
            ps.conv = 'f';
            body = format_one(Value::number(v.as_double() * 100), ps) + "%";
        } else {
            body = format_one(v, ps);
        }
    }
    if (sp.width < 0) return body;
    if (sp.align == '=') {  // zero padding after the sign
        const bool sign = !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ');
        return body.substr(0, sign) + py::pad(body.substr(sign), sp.width - sign, '0', 'r');
    }
    const char align = sp.align ? sp.align : (numeric ? '>' : '<');
    return py::pad(body, sp.width, sp.fill, align == '<' ? 'l' : align == '>' ? 'r' : 'c');
}

// Resolves "0", "name", "0.attr", "name[key]" against the arguments.
Value resolve_field(const std::string& field, const CallArgs& args, size_t& auto_index, int& mode) {
    size_t end = field.find_first_of(".[");
    const std::string head = field.substr(0, end);
    Value v;
    if (head.empty() || std::isdigit(static_cast<unsigned char>(head[0]))) {
        const int want = head.empty() ? 1 : 2;
        if (mode && mode != want)
            format_error(
                "cannot switch between automatic field numbering and manual field specification");
        mode = want;
        const size_t idx = head.empty() ? auto_index++ : std::stoul(head.substr(0, 9));
        if (idx >= args.pos.size())
            format_error("Replacement index " + std::to_string(idx) + " out of range");
        v = args.pos[idx];
    } else {
        bool found = false;
        for (const auto& [k, x] : args.kw) {
            if (k == head) {
                v = x;
                found = true;
            }
        }
        if (!found) format_error("KeyError: '" + head + "'");
    }
    while (end != std::string::npos && end < field.size()) {
        if (field[end] == '.') {
            const size_t next = field.find_first_of(".[", end + 1);
            v = get_attr(v, field.substr(end + 1, next - end - 1));
            end = next;
        } else {
            const size_t close = field.find(']', end);
            if (close == std::string::npos) format_error("Missing ']' in format string");
            const std::string key = field.substr(end + 1, close - end - 1);
            const bool digits =
                !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
            v = get_item(
                v, digits ? Value::integer(std::stoll(key.substr(0, 18))) : Value::string(key));
            end = close + 1;
        }
    }
    return v;
}

}  // namespace

std::string str_format(const std::string& fmt, const CallArgs& args) {
    std::string out;
    size_t auto_index = 0;
    int mode = 0;  // 0 unknown, 1 automatic numbering, 2 manual
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
            out += c;
            ++i;
            continue;
        }
        if (c == '}') format_error("Single '}' encountered in format string");
        if (c != '{') {
            out += c;
            continue;
        }
        const size_t close = fmt.find('}', i);
        if (close == std::string::npos) format_error("Single '{' encountered in format string");
        std::string field = fmt.substr(i + 1, close - i - 1), spec;
        char conv = 0;
        if (const size_t colon = field.find(':'); colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field.resize(colon);
        }
        if (const size_t bang = field.find('!'); bang != std::string::npos) {
            conv = bang + 1 < field.size() ? field[bang + 1] : '?';
            if (bang + 2 != field.size() || (conv != 'r' && conv != 's' && conv != 'a'))
                format_error("invalid conversion in format string");
            field.resize(bang);
        }
        Value v = resolve_field(field, args, auto_index, mode);
        if (conv) v = Value::string(conv == 's' ? v.str() : v.repr());
        out += apply_spec(v, parse_spec(py::decode(spec)));
        check_string_size(out.size());
        i = close;
    }
    return out;
}

}  // namespace llmforge::jinja
