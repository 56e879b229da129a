// The built-in library of the engine, matching jinja2 3.1 inside HF's chat-template environment:
// filters (filters.cpp), tests (is_tests.cpp), methods of str/dict/list (methods.cpp) and the
// globals range/dict/namespace (builtins.cpp). `tojson` is transformers' override (json.dumps
// with ensure_ascii=False, no HTML escaping, keys in insertion order).
//
// Builtins are pure functions of their arguments; they throw TemplateError.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace llmforge::jinja {

// Python-style binding of CallArgs to named parameters: positional first, then keywords; extra
// or unknown arguments are errors. `what` names the callee in errors ("filter 'indent'").
class Params {
  public:
    Params(std::string what, CallArgs& args, std::initializer_list<std::string_view> names);

    bool has(size_t i) const { return given_[i]; }
    const Value& get(size_t i) const { return slots_[i]; }  // undefined when absent
    const Value& require(size_t i) const;                   // throws when absent
    Value get_or(size_t i, Value def) const { return has(i) ? slots_[i] : def; }
    int64_t int_or(size_t i, int64_t def) const;
    bool bool_or(size_t i, bool def) const { return has(i) ? slots_[i].truthy() : def; }
    // A string parameter; absent or None gives nullopt.
    std::optional<std::string> str_opt(size_t i) const;

  private:
    std::string what_;
    std::vector<std::string_view> names_;
    std::vector<Value> slots_;
    std::vector<bool> given_;
};

using FilterFn = Value (*)(const Value& input, CallArgs& args);
using TestFn = bool (*)(const Value& input, CallArgs& args);

const FilterFn* find_filter(std::string_view name);  // nullptr when unknown
const TestFn* find_test(std::string_view name);

// A method of a str, dict or list bound to `self` (None when the type has no such method;
// mutating list/dict methods give the Undefined the sandbox returns for unsafe attributes).
std::optional<Value> bound_method(const Value& self, std::string_view name);

// Python `fmt % args` (printf-style) and `fmt.format(*args, **kwargs)`.
std::string percent_format(const std::string& fmt, const Value& args);
std::string str_format(const std::string& fmt, const CallArgs& args);

// range() and dict(), two of the jinja2 globals (range capped at 100000 items like the
// sandbox's MAX_RANGE); the interpreter adds namespace(), which must track what it creates.
DictData engine_globals();
// The mapping dict(*args, **kwargs) builds; `what` names the caller in errors.
DictData dict_from_args(const char* what, CallArgs& args);

}  // namespace llmforge::jinja
