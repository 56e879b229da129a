// The Jinja value model: the Python objects a chat template sees through jinja2, with the
// behaviour that shows in the rendered text. Undefined (with the reason it is undefined), None,
// bool, int (64-bit; overflow is an error where Python would grow), float, str (UTF-8, indexed
// by code point), list and tuple, dict (insertion-ordered, any hashable scalar key) and Object
// (namespace(), loop, macros, functions, bound methods).
//
// Values are cheap to copy: strings, lists and dicts are shared and immutable, like the inputs
// under HF's ImmutableSandboxedEnvironment; only a Namespace changes (`{% set ns.x = ... %}`).
// A Value is not thread-safe to share while a render mutates a namespace; each render builds its
// own values, so a parsed template can render on many threads at once.
//
// Nesting is bounded (kMaxValueDepth): every list and dict knows its depth from construction, so
// the recursive walks over values (str/repr, tojson, ==, <, hashing, `in`, sort, and the
// destructor chain of nested shared lists) cannot overflow the stack whatever a template builds
// or its JSON inputs hold.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace llmforge::jinja {

class Value;
class Object;

// How deeply lists, tuples and dicts may nest. A scalar (or an object) has depth 0, a container
// 1 + the depth of its deepest item or key: `[]` is 1, `[[1]]` is 2, {"a": [[]]} is 3.
// Value::list / Value::dict refuse to build anything deeper and Value::from_json checks before it
// descends, both with a TemplateError ("... nests more than 256 levels ..."). Bounding the depth
// bounds every recursive walk: 0.1 to 0.5 KiB of stack a level in an optimised build (repr the
// least, from_json the most), so at most about 128 KiB at the limit; the tests run them on a
// 256 KiB thread. Printing a namespace counts it as one level, checked while printing (a
// namespace is mutable, so its depth is not known when it is built).
inline constexpr int kMaxValueDepth = 256;

struct ListData {
    std::vector<Value> items;
    bool tuple = false;     // prints "(a, b)" and never equals a list
    int depth = 1;          // set by Value::list: 1 + the deepest item's depth
    bool hashable = false;  // set by Value::list: a tuple of hashable items (see is_hashable)
};

struct DictData {
    std::vector<std::pair<Value, Value>> items;  // insertion order
    int depth = 1;  // set by Value::dict (1 + the deepest key or value); not kept up by set()
    const Value* find(const Value& key) const;
    // Inserts, or replaces the value in place (Python keeps the first key position).
    void set(Value key, Value value);
};

// Positional and keyword arguments of a call, filter or test.
struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
};

class Value {
  public:
    enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject };

    Value() : v_(Undef{}) {}  // undefined, no reason given
    static Value undefined(std::string reason) { return Value(Undef{std::move(reason)}); }
    static Value none() { return Value(None{}); }
    static Value boolean(bool b) { return Value(b); }
    static Value integer(int64_t i) { return Value(i); }
    static Value number(double d) { return Value(d); }
    static Value string(std::string s);
    // list() and dict() throw TemplateError when the result would nest deeper than
    // kMaxValueDepth.
    static Value list(std::vector<Value> items, bool tuple = false);
    static Value dict(DictData d);
    static Value object(std::shared_ptr<Object> o);
    // Strings are sanitized to UTF-8. Throws TemplateError for input nested deeper than
    // kMaxValueDepth (checked before descending, so any JSON converts without deep recursion).
    static Value from_json(const nlohmann::ordered_json& j);

    Type type() const { return static_cast<Type>(v_.index()); }
    bool is_undefined() const { return type() == Type::kUndefined; }
    bool is_none() const { return type() == Type::kNone; }
    bool is_bool() const { return type() == Type::kBool; }
    bool is_int() const { return type() == Type::kInt; }  // not bool
    bool is_float() const { return type() == Type::kFloat; }
    bool is_number() const { return is_bool() || is_int() || is_float(); }
    bool is_string() const { return type() == Type::kString; }
    bool is_list() const { return type() == Type::kList; }  // list or tuple
    bool is_dict() const { return type() == Type::kDict; }
    bool is_object() const { return type() == Type::kObject; }

    bool as_bool() const { return std::get<bool>(v_); }
    int64_t as_int() const;    // bool or int
    double as_double() const;  // bool, int or float
    const std::string& as_string() const { return *std::get<StrPtr>(v_); }
    const ListData& as_list() const { return *std::get<ListPtr>(v_); }
    const DictData& as_dict() const { return *std::get<DictPtr>(v_); }
    Object& as_object() const { return *std::get<ObjPtr>(v_); }
    const std::string& undefined_reason() const { return std::get<Undef>(v_).reason; }
    // Nesting depth: 0 for scalars and objects, ListData/DictData::depth for containers.
    int depth() const { return is_list() ? as_list().depth : is_dict() ? as_dict().depth : 0; }

    bool truthy() const;      // Python bool(); undefined is false
    std::string str() const;  // Python str(); undefined is ""
    // Python repr(); throws TemplateError past kMaxStringBytes (a value that shares sublists can
    // print exponentially long) or for namespaces nested too deeply.
    std::string repr() const;
    std::string type_name() const;  // Python type(x).__name__
    // Python ==; undefined equals undefined; a list or dict equals itself at once (Python's
    // identity shortcut, which keeps `x == x` linear when x shares sublists).
    bool equals(const Value& o) const;
    bool identical(const Value& o) const;  // Python `is` (scalars by value)

  private:
    struct Undef {
        std::string reason;
    };
    struct None {};
    using StrPtr = std::shared_ptr<const std::string>;
    using ListPtr = std::shared_ptr<const ListData>;
    using DictPtr = std::shared_ptr<const DictData>;
    using ObjPtr = std::shared_ptr<Object>;
    using Variant =
        std::variant<Undef, None, bool, int64_t, double, StrPtr, ListPtr, DictPtr, ObjPtr>;

    template <typename T>
    explicit Value(T v) : v_(std::move(v)) {}

    Variant v_;
};

// Python `a < b` for numbers, strings and same-kind sequences; throws TemplateError otherwise.
bool less_than(const Value& a, const Value& b);

// Caps the bytes of strings and list slots created on this thread while it lives (one render):
// templates that build a string quadratically (`set ns.s = ns.s ~ x` in a long loop) stop with
// an error instead of running for hours. Budgets nest; the innermost one is charged.
class BuildBudget {
  public:
    explicit BuildBudget(uint64_t bytes);
    ~BuildBudget();
    BuildBudget(const BuildBudget&) = delete;
    BuildBudget& operator=(const BuildBudget&) = delete;

  private:
    friend void charge_build(uint64_t bytes);
    uint64_t limit_, left_;
    BuildBudget* outer_;
};
// Charges the current budget (if any); throws TemplateError when it is spent.
void charge_build(uint64_t bytes);

// Python's hashability, needed for dict keys: scalars and tuples of scalars. O(1): a tuple
// knows it from construction.
bool is_hashable(const Value& v);

// Everything that is not a scalar or container: namespace(), loop, macros, functions.
class Object {
  public:
    virtual ~Object() = default;
    virtual std::string type_name() const = 0;
    virtual std::string repr() const {
        return std::string("<").append(type_name()).append(" object>");
    }
    // Attribute lookup; nullopt when there is no such attribute.
    virtual std::optional<Value> get_attr(std::string_view name) const { return std::nullopt; }
    // `{% set obj.name = v %}`; false when the object does not allow it.
    virtual bool set_attr(const std::string& name, Value v) { return false; }
    virtual bool callable() const { return false; }
    virtual Value call(CallArgs args);  // throws unless callable
    // Drops references to other values, so reference cycles made during a render (a namespace
    // holding itself, a macro stored in its own scope) are freed when the render ends.
    virtual void release() {}
};

// A native function (globals, bound methods, loop.cycle).
class Function : public Object {
  public:
    using Fn = std::function<Value(CallArgs&)>;
    Function(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
    std::string type_name() const override { return "function"; }
    std::string repr() const override { return "<function " + name_ + ">"; }
    bool callable() const override { return true; }
    Value call(CallArgs args) override { return fn_(args); }

  private:
    std::string name_;
    Fn fn_;
};

Value make_function(std::string name, Function::Fn fn);

// namespace(...): the one mutable object, so loops can carry state out of their scope.
class Namespace : public Object {
  public:
    explicit Namespace(DictData attrs) : attrs_(std::move(attrs)) {}
    std::string type_name() const override { return "Namespace"; }
    std::string repr() const override;
    std::optional<Value> get_attr(std::string_view name) const override;
    bool set_attr(const std::string& name, Value v) override;
    void release() override { attrs_.items.clear(); }
    const DictData& attrs() const { return attrs_; }

  private:
    DictData attrs_;
};

// Python json.dumps(x, ensure_ascii, indent, separators, sort_keys), the `tojson` of HF's
// chat-template environment. `indent` empty: one line.
struct JsonStyle {
    bool ensure_ascii = false;
    std::optional<std::string> indent;
    std::string item_sep = ", ";
    std::string key_sep = ": ";
    bool sort_keys = false;
};
// Throws TemplateError for non-JSON values and past kMaxStringBytes.
std::string to_json(const Value& v, const JsonStyle& style);

}  // namespace llmforge::jinja
