// Operators and lookups with the semantics jinja2 gives them in HF's ImmutableSandboxedEnvironment:
// Python arithmetic (int/float, str * int, list + list), `in`, len(), iteration, and jinja's
// forgiving lookups: `x.name` tries the attribute (a method of str/dict/list) then the item,
// `x[key]` the item then the attribute; a miss yields Undefined (which only errors when used),
// while any lookup ON an Undefined raises, as jinja2's default Undefined does.
//
// All functions throw TemplateError (without a position; the interpreter adds it).
// Thread safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace llmforge::jinja {

// Longest string (bytes) `*`, `+`, `~`, join and filters may build: a template cannot make the
// renderer allocate without bound.
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;

enum class BinOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
const char* binop_symbol(BinOp op);

Value binary_op(BinOp op, const Value& a, const Value& b);
Value negate(const Value& v);  // unary -
Value unary_plus(const Value& v);

enum class CmpOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };
bool compare(CmpOp op, const Value& a, const Value& b);    // Python `a op b`
bool contains(const Value& container, const Value& item);  // Python `item in container`
std::vector<Value> iterate(const Value& v);                // list(v); undefined -> []
int64_t length(const Value& v);                            // len(v); undefined -> 0

Value get_attr(const Value& obj, std::string_view name);  // `obj.name`
Value get_item(const Value& obj, const Value& key);       // `obj[key]`
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// `obj.name` without the item fallback (the `attr` filter).
Value get_attr_only(const Value& obj, std::string_view name);

// Throws the UndefinedError jinja2 raises when an undefined value is used.
[[noreturn]] void throw_undefined(const Value& v);
// Checks the length of a string about to be built.
void check_string_size(size_t bytes);

}  // namespace llmforge::jinja
