// Value model: Python str()/repr()/==/</json.dumps for the values a template sees.
#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"
#include "tokenizer/utf8.h"

namespace llmforge::jinja {

const Value* DictData::find(const Value& key) const {
    for (const auto& [k, v] : items)
        if (k.equals(key)) return &v;
    return nullptr;
}

void DictData::set(Value key, Value value) {
    for (auto& [k, v] : items) {
        if (k.equals(key)) {
            v = std::move(value);
            return;
        }
    }
    items.emplace_back(std::move(key), std::move(value));
}

namespace {
thread_local BuildBudget* t_budget = nullptr;
}  // namespace

BuildBudget::BuildBudget(uint64_t bytes) : limit_(bytes), left_(bytes), outer_(t_budget) {
    t_budget = this;
}

BuildBudget::~BuildBudget() {
    t_budget = outer_;
}

void charge_build(uint64_t bytes) {
    BuildBudget* b = t_budget;
    if (!b) return;
    if (bytes > b->left_)
        throw TemplateError(
            "the template built more than " + std::to_string(b->limit_ >> 20) +
                " MiB of strings and lists",
            "it grows a value step by step in a long loop; output directly instead");
    b->left_ -= bytes;
}

Value Value::string(std::string s) {
    charge_build(s.size());
    return Value(std::make_shared<const std::string>(std::move(s)));
}

namespace {

[[noreturn]] void throw_too_deep() {
    throw TemplateError(
        "a value nests more than " + std::to_string(kMaxValueDepth) + " levels of lists and dicts",
        "the template or its inputs nest data too deeply; flatten it");
}

}  // namespace

Value Value::list(std::vector<Value> items, bool tuple) {
    int deepest = 0;
    bool hashable = tuple;
    for (const Value& v : items) {
        deepest = std::max(deepest, v.depth());
        hashable = hashable && is_hashable(v);
    }
    if (deepest >= kMaxValueDepth) throw_too_deep();
    charge_build(items.size() * sizeof(Value));
    return Value(
        std::make_shared<const ListData>(ListData{std::move(items), tuple, deepest + 1, hashable}));
}

Value Value::dict(DictData d) {
    int deepest = 0;
    for (const auto& [k, v] : d.items) deepest = std::max({deepest, k.depth(), v.depth()});
    if (deepest >= kMaxValueDepth) throw_too_deep();
    d.depth = deepest + 1;
    return Value(std::make_shared<const DictData>(std::move(d)));
}

Value Value::object(std::shared_ptr<Object> o) {
    return Value(std::move(o));
}

namespace {

Value json_value(const nlohmann::ordered_json& j, int level);

// The container cases out of line, so each level of the recursion holds only the frame of the
// kind it converts (with both inlined a level took about 0.5 KiB of stack).
[[gnu::noinline]] Value json_array(const nlohmann::ordered_json& j, int level) {
    std::vector<Value> items;
    items.reserve(j.size());
    for (const auto& e : j) items.push_back(json_value(e, level + 1));
    return Value::list(std::move(items));
}

[[gnu::noinline]] Value json_object(const nlohmann::ordered_json& j, int level) {
    DictData d;
    d.items.reserve(j.size());
    for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(Value::string(utf8_sanitize(it.key())), json_value(*it, level + 1));
    return Value::dict(std::move(d));
}

// from_json one level down: `level` containers enclose `j`. The depth is checked before
// descending, so hostile input (20,000 nested '[') never recurses deeply.
Value json_value(const nlohmann::ordered_json& j, int level) {
    using T = nlohmann::ordered_json::value_t;
    switch (j.type()) {
        case T::null:
            return Value::none();
        case T::boolean:
            return Value::boolean(j.get<bool>());
        case T::number_integer:
            return Value::integer(j.get<int64_t>());
        case T::number_unsigned: {
            const auto u = j.get<uint64_t>();
            return u <= INT64_MAX ? Value::integer(static_cast<int64_t>(u))
                                  : Value::number(static_cast<double>(u));
        }
        case T::number_float:
            return Value::number(j.get<double>());
        case T::string:
            return Value::string(utf8_sanitize(j.get_ref<const std::string&>()));
        case T::array:
        case T::object:
            break;
        default:  // binary, discarded
            throw TemplateError("input JSON holds a binary value", "pass only JSON data");
    }
    if (level >= kMaxValueDepth)
        throw TemplateError("input JSON nests more than " + std::to_string(kMaxValueDepth) +
                                " levels of arrays and objects",
                            "the request nests its data too deeply; flatten it");
    return j.is_array() ? json_array(j, level) : json_object(j, level);
}

}  // namespace

Value Value::from_json(const nlohmann::ordered_json& j) {
    return json_value(j, 0);
}

int64_t Value::as_int() const {
    return is_bool() ? as_bool() : std::get<int64_t>(v_);
}

double Value::as_double() const {
    return is_float() ? std::get<double>(v_) : static_cast<double>(as_int());
}

bool Value::truthy() const {
    switch (type()) {
        case Type::kUndefined:
        case Type::kNone:
            return false;
        case Type::kBool:
            return as_bool();
        case Type::kInt:
            return as_int() != 0;
        case Type::kFloat:
            return as_double() != 0;
        case Type::kString:
            return !as_string().empty();
        case Type::kList:
            return !as_list().items.empty();
        case Type::kDict:
            return !as_dict().items.empty();
        case Type::kObject:
            return true;
    }
    return false;
}

std::string Value::str() const {
    switch (type()) {
        case Type::kUndefined:
            return "";
        case Type::kString:
            return as_string();
        default:
            return repr();
    }
}

namespace {

// Python repr() into `out`; `level` counts the lists, dicts and namespaces around `v`. Lists and
// dicts are bounded at construction; namespaces are mutable (one may even hold itself), so
// their nesting is checked here.
void repr_into(std::string& out, const Value& v, int level);

void repr_items(std::string& out, const std::vector<Value>& items, int level) {
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, items[i], level);
        check_string_size(out.size());
    }
}

void repr_dict(std::string& out, const DictData& d, int level) {
    out += '{';
    bool first = true;
    for (const auto& [k, e] : d.items) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, k, level);
        out += ": ";
        repr_into(out, e, level);
        check_string_size(out.size());
    }
    out += '}';
}

void repr_namespace(std::string& out, const Namespace& ns, int level) {
    if (level >= kMaxValueDepth) throw_too_deep();
    // A copy: printing an attribute may run template code (the repr of a loop pulls items
    // through its `if` test, which may call a macro that sets attributes of this namespace).
    const DictData attrs = ns.attrs();
    out += "<Namespace ";
    repr_dict(out, attrs, level + 1);
    out += '>';
}

void repr_into(std::string& out, const Value& v, int level) {
    switch (v.type()) {
        case Value::Type::kUndefined:
            out += "Undefined";
            return;
        case Value::Type::kNone:
            out += "None";
            return;
        case Value::Type::kBool:
            out += v.as_bool() ? "True" : "False";
            return;
        case Value::Type::kInt:
            out += std::to_string(v.as_int());
            return;
        case Value::Type::kFloat:
            out += py::float_repr(v.as_double());
            return;
        case Value::Type::kString:
            out += py::str_repr(v.as_string());
            return;
        case Value::Type::kList: {
            if (level + v.depth() > kMaxValueDepth) throw_too_deep();  // inside a namespace
            const ListData& l = v.as_list();
            out += l.tuple ? '(' : '[';
            repr_items(out, l.items, level + 1);
            out += !l.tuple ? "]" : l.items.size() == 1 ? ",)" : ")";
            return;
        }
        case Value::Type::kDict:
            if (level + v.depth() > kMaxValueDepth) throw_too_deep();
            repr_dict(out, v.as_dict(), level + 1);
            return;
        case Value::Type::kObject:
            if (const auto* ns = dynamic_cast<const Namespace*>(&v.as_object())) {
                repr_namespace(out, *ns, level);
            } else {
                out += v.as_object().repr();
            }
            return;
    }
}

}  // namespace

std::string Value::repr() const {
    std::string out;
    repr_into(out, *this, 0);
    return out;
}

std::string Value::type_name() const {
    switch (type()) {
        case Type::kUndefined:
            return "Undefined";
        case Type::kNone:
            return "NoneType";
        case Type::kBool:
            return "bool";
        case Type::kInt:
            return "int";
        case Type::kFloat:
            return "float";
        case Type::kString:
            return "str";
        case Type::kList:
            return as_list().tuple ? "tuple" : "list";
        case Type::kDict:
            return "dict";
        case Type::kObject:
            return as_object().type_name();
    }
    return "";
}

bool Value::equals(const Value& o) const {
    if (is_number() && o.is_number()) {
        if (is_float() || o.is_float()) return as_double() == o.as_double();
        return as_int() == o.as_int();
    }
    if (type() != o.type()) return false;
    switch (type()) {
        case Type::kUndefined:
        case Type::kNone:
            return true;
        case Type::kString:
            return as_string() == o.as_string();
        case Type::kList: {
            const ListData &a = as_list(), &b = o.as_list();
            if (&a == &b) return true;
            if (a.tuple != b.tuple || a.items.size() != b.items.size()) return false;
            for (size_t i = 0; i < a.items.size(); ++i)
                if (!a.items[i].equals(b.items[i])) return false;
            return true;
        }
        case Type::kDict: {
            const DictData &a = as_dict(), &b = o.as_dict();
            if (&a == &b) return true;
            if (a.items.size() != b.items.size()) return false;
            for (const auto& [k, v] : a.items) {
                const Value* w = b.find(k);
                if (!w || !v.equals(*w)) return false;
            }
            return true;
        }
        case Type::kObject:
            return &as_object() == &o.as_object();
        default:
            return false;
    }
}

bool Value::identical(const Value& o) const {
    if (type() != o.type()) return false;
    switch (type()) {
        case Type::kList:
            return &as_list() == &o.as_list();
        case Type::kDict:
            return &as_dict() == &o.as_dict();
        default:
            return equals(o);
    }
}

bool less_than(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
        return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string())
        return a.as_string() < b.as_string();  // UTF-8 order = code point order
    if (a.is_list() && b.is_list() && a.as_list().tuple == b.as_list().tuple) {
        const auto &x = a.as_list().items, &y = b.as_list().items;
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!x[i].equals(y[i])) return less_than(x[i], y[i]);
        }
        return x.size() < y.size();
    }
    throw TemplateError("'<' not supported between instances of '" + a.type_name() + "' and '" +
                            b.type_name() + "'",
                        kHintType);
}

bool is_hashable(const Value& v) {
    switch (v.type()) {
        case Value::Type::kList:
            return v.as_list().hashable;
        case Value::Type::kDict:
            return false;
        default:
            return true;
    }
}

Value Object::call(CallArgs) {
    throw TemplateError("'" + type_name() + "' object is not callable", kHintType);
}

Value make_function(std::string name, Function::Fn fn) {
    return Value::object(std::make_shared<Function>(std::move(name), std::move(fn)));
}

std::string Namespace::repr() const {
    std::string out;
    repr_namespace(out, *this, 0);
    return out;
}

std::optional<Value> Namespace::get_attr(std::string_view name) const {
    if (const Value* v = attrs_.find(Value::string(std::string(name)))) return *v;
    return std::nullopt;
}

bool Namespace::set_attr(const std::string& name, Value v) {
    attrs_.set(Value::string(name), std::move(v));
    return true;
}

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    for (char32_t c : py::decode(s)) {
        char buf[16];
        switch (c) {
            case '"':
                out += "\\\"";
                continue;
            case '\\':
                out += "\\\\";
                continue;
            case '\n':
                out += "\\n";
                continue;
            case '\r':
                out += "\\r";
                continue;
            case '\t':
                out += "\\t";
                continue;
            case '\b':
                out += "\\b";
                continue;
            case '\f':
                out += "\\f";
                continue;
            default:
                break;
        }
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
            if (c >= 0x10000) {  // a surrogate pair, as Python writes it
                const char32_t v = c - 0x10000;
                std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                              0xDC00 + (v & 0x3FF));
            } else {
                std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
            }
            out += buf;
        } else {
            utf8_append(out, c);
        }
    }
    out += '"';
}

std::string json_float(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
    return py::float_repr(d);
}

// A dict key as json.dumps converts it.
std::string json_key(const Value& k) {
    switch (k.type()) {
        case Value::Type::kString:
            return k.as_string();
        case Value::Type::kBool:
            return k.as_bool() ? "true" : "false";
        case Value::Type::kNone:
            return "null";
        case Value::Type::kInt:
            return std::to_string(k.as_int());
        case Value::Type::kFloat:
            return json_float(k.as_double());
        default:
            throw TemplateError("keys must be str, int, float, bool or None, not " + k.type_name(),
                                "tojson only serializes JSON-like data");
    }
}

void dump(std::string& out, const Value& v, const JsonStyle& st, int level);

void newline(std::string& out, const JsonStyle& st, int level) {
    check_string_size(out.size() + 1 + static_cast<size_t>(level) * st.indent->size());
    out += '\n';
    for (int i = 0; i < level; ++i) out += *st.indent;
}

template <typename Items, typename Emit>
void dump_container(std::string& out, const JsonStyle& st, int level, char open, char close,
                    const Items& items, Emit emit) {
    out += open;
    if (items.empty()) {
        out += close;
        return;
    }
    bool first = true;
    for (const auto& item : items) {
        if (!first) out += st.item_sep;
        first = false;
        if (st.indent) newline(out, st, level + 1);
        emit(item);
        check_string_size(out.size());
    }
    if (st.indent) newline(out, st, level);
    out += close;
}

void dump(std::string& out, const Value& v, const JsonStyle& st, int level) {
    switch (v.type()) {
        case Value::Type::kNone:
            out += "null";
            return;
        case Value::Type::kBool:
            out += v.as_bool() ? "true" : "false";
            return;
        case Value::Type::kInt:
            out += std::to_string(v.as_int());
            return;
        case Value::Type::kFloat:
            out += json_float(v.as_double());
            return;
        case Value::Type::kString:
            json_string(out, v.as_string(), st.ensure_ascii);
            return;
        case Value::Type::kList:
            dump_container(out, st, level, '[', ']', v.as_list().items,
                           [&](const Value& e) { dump(out, e, st, level + 1); });
            return;
        case Value::Type::kDict: {
            std::vector<std::pair<std::string, const Value*>> kv;
            for (const auto& [k, e] : v.as_dict().items) kv.emplace_back(json_key(k), &e);
            if (st.sort_keys)
                std::stable_sort(kv.begin(), kv.end(),
                                 [](const auto& a, const auto& b) { return a.first < b.first; });
            dump_container(out, st, level, '{', '}', kv, [&](const auto& p) {
                json_string(out, p.first, st.ensure_ascii);
                out += st.key_sep;
                dump(out, *p.second, st, level + 1);
            });
            return;
        }
        default:
            throw TemplateError("Object of type " + v.type_name() + " is not JSON serializable",
                                "tojson only serializes JSON-like data; is a value undefined?");
    }
}

}  // namespace

std::string to_json(const Value& v, const JsonStyle& style) {
    std::string out;
    dump(out, v, style, 0);
    return out;
}

}  // namespace llmforge::jinja
