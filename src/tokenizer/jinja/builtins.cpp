// Argument binding for builtins and the jinja2 globals range() and dict().
#include "tokenizer/jinja/builtins.h"

#include "tokenizer/jinja/ops.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {
constexpr const char* kHintArgs = "check the arguments against jinja2's documentation";
}  // namespace

Params::Params(std::string what, CallArgs& args, std::initializer_list<std::string_view> names)
    : what_(std::move(what)), names_(names), slots_(names.size()), given_(names.size(), false) {
    if (args.pos.size() > names_.size())
        throw TemplateError(what_ + " takes at most " + std::to_string(names_.size()) +
                                " argument(s), got " + std::to_string(args.pos.size()),
                            kHintArgs);
    for (size_t i = 0; i < args.pos.size(); ++i) {
        slots_[i] = std::move(args.pos[i]);
        given_[i] = true;
    }
    for (auto& [name, v] : args.kw) {
        size_t i = 0;
        while (i < names_.size() && names_[i] != name) ++i;
        if (i == names_.size())
            throw TemplateError(what_ + " got an unexpected keyword argument '" + name + "'",
                                kHintArgs);
        if (given_[i])
            throw TemplateError(what_ + " got multiple values for argument '" + name + "'",
                                kHintArgs);
        slots_[i] = std::move(v);
        given_[i] = true;
    }
}

const Value& Params::require(size_t i) const {
    if (!given_[i])
        throw TemplateError(what_ + " missing required argument '" + std::string(names_[i]) + "'",
                            kHintArgs);
    return slots_[i];
}

int64_t Params::int_or(size_t i, int64_t def) const {
    if (!given_[i]) return def;
    const Value& v = slots_[i];
    if (!v.is_int() && !v.is_bool())
        throw TemplateError(what_ + ": argument '" + std::string(names_[i]) +
                                "' must be an integer, not " + v.type_name(),
                            kHintArgs);
    return v.as_int();
}

std::optional<std::string> Params::str_opt(size_t i) const {
    if (!given_[i] || slots_[i].is_none()) return std::nullopt;
    if (!slots_[i].is_string())
        throw TemplateError(what_ + ": argument '" + std::string(names_[i]) +
                                "' must be a string, not " + slots_[i].type_name(),
                            kHintArgs);
    return slots_[i].as_string();
}

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value range(CallArgs& args) {
    if (!args.kw.empty()) throw TemplateError("range() takes no keyword arguments", kHintArgs);
    if (args.pos.empty() || args.pos.size() > 3)
        throw TemplateError(
            "range expected 1 to 3 arguments, got " + std::to_string(args.pos.size()), kHintArgs);
    for (const Value& v : args.pos) {
        if (v.is_undefined()) throw_undefined(v);
        if (!v.is_int() && !v.is_bool())
            throw TemplateError(
                "'" + v.type_name() + "' object cannot be interpreted as an integer", kHintType);
    }
    const bool one = args.pos.size() == 1;
    const int64_t start = one ? 0 : args.pos[0].as_int();
    const int64_t stop = one ? args.pos[0].as_int() : args.pos[1].as_int();
    const int64_t step = args.pos.size() == 3 ? args.pos[2].as_int() : 1;
    if (step == 0) throw TemplateError("range() arg 3 must not be zero", kHintArgs);
    const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
    const __int128 n = span <= 0 ? 0 : (span - 1) / (step > 0 ? step : -__int128(step)) + 1;
    if (n > kMaxRange)
        throw TemplateError(
            "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
            "iterate over fewer items");
    std::vector<Value> out;
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i)
        out.push_back(Value::integer(start + i * step));
    return Value::list(std::move(out));
}

}  // namespace

DictData dict_from_args(const char* what, CallArgs& args) {
    if (args.pos.size() > 1)
        throw TemplateError(std::string(what) + " expected at most 1 positional argument",
                            kHintArgs);
    DictData d;
    if (!args.pos.empty()) {
        const Value& src = args.pos[0];
        if (src.is_dict()) {
            d = src.as_dict();
        } else {
            for (const Value& pair : iterate(src)) {
                const std::vector<Value> kv = iterate(pair);
                if (kv.size() != 2)
                    throw TemplateError(std::string(what) + " sequence element has length " +
                                            std::to_string(kv.size()) + "; 2 is required",
                                        kHintArgs);
                if (!is_hashable(kv[0]))
                    throw TemplateError("unhashable type: '" + kv[0].type_name() + "'", kHintType);
                d.set(kv[0], kv[1]);
            }
        }
    }
    for (auto& [k, v] : args.kw) d.set(Value::string(k), v);
    return d;
}

DictData engine_globals() {
    DictData g;
    g.set(Value::string("range"), make_function("range", range));
    g.set(Value::string("dict"), make_function("dict", [](CallArgs& a) {
              return Value::dict(dict_from_args("dict", a));
          }));
    return g;
}

}  // namespace llmforge::jinja
