// JSON Schema -> GBNF, with llama.cpp's conventions (common/json-schema-to-grammar.cpp): the same
// rule names and output for the same schema, properties in the schema's order (required ones
// first as llama.cpp orders them), no additional properties unless the schema allows them, and a
// primitive rule set (space, value, string, number...) added only when used. The output differs
// from llama.cpp's only where llama.cpp's grammar accepts text that is not valid JSON or not valid
// for the schema (listed in json_schema.cpp, pinned in tests/runtime/json_schema_test.cpp).
//
// Supported: type (one or a list), enum, const, properties, required, additionalProperties
// (false / true / a schema), items (a schema, or an array as a tuple), prefixItems, minItems,
// maxItems, minLength, maxLength, pattern, format date / time / date-time / uuid, integer minimum /
// maximum / exclusiveMinimum / exclusiveMaximum (also draft 4's boolean form), anyOf, oneOf (as
// anyOf), allOf (of object schemas, merged as llama.cpp does), $ref to '#/...' (recursion allowed).
// Annotations (title, description, default, examples, $comment, $schema, $id, other formats...)
// and keywords that are not JSON Schema's are ignored, as validators ignore them. A JSON Schema
// keyword that would narrow what is valid and that the grammar does not express is an error
// naming it and its JSON pointer, never silently ignored; so is a remote $ref. Keywords that
// only constrain types the grammar never produces (minLength next to "type": "integer") are
// vacuous and accepted. The grammar may be stricter than the schema (a fixed property order, no
// additional properties unless allowed, {} producing objects), never looser.
//
// Also: a regular expression (the common ECMAScript subset: literals, escapes, classes, . , groups,
// alternation, ? * + {m,n}, ^ $ anchors at the ends) -> GBNF. In a schema's "pattern" the regex
// applies to the decoded string (its characters are written in their JSON encoding) and, as JSON
// Schema says, is unanchored unless it starts with ^ / ends with $.
//
// Thread safety: free functions over their arguments.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {

// The GBNF for `schema` (root rule "root"). `source` names the schema in messages. Throws Error
// (kBadInput), one line: "json schema 'tool get_weather': unsupported keyword 'patternProperties'
// at #/properties/x (supported: …)".
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, std::string_view source = "json schema");
// The GBNF that accepts any JSON object (OpenAI's response_format {"type":"json_object"}).
std::string json_object_gbnf();
// The GBNF for a regular expression, whole-text match. Throws Error (kBadInput) with the offset.
std::string regex_to_gbnf(std::string_view regex, std::string_view source = "regex");

// The GBNF of the command line's constraint options, at most one of them set: a GBNF file, a JSON
// Schema file (converted with json_schema_to_gbnf) or a regular expression (regex_to_gbnf).
// `source` names it for messages (the file name, or "--regex"). Both empty when none is set.
// Throws Error: a missing file (kNotFound), a schema that is not JSON or nests too deeply, and
// the converters' errors (kBadInput).
struct ConstraintGbnf {
    std::string gbnf;
    std::string source;
};
ConstraintGbnf constraint_gbnf(const std::string& grammar_file, const std::string& json_schema_file,
                               const std::string& regex);

namespace detail {

// Adds rule `name` ::= `body` to the grammar being built and returns the name it got (a suffix is
// added when another body already has that name, as llama.cpp's _add_rule does).
using AddRule = std::function<std::string(const std::string& name, const std::string& body)>;

// How regex_gbnf_expr writes the regex.
enum class RegexTarget {
    kText,        // the text itself (regex_to_gbnf, --regex)
    kJsonString,  // the inside of a JSON string: each code point in its JSON encoding ("\"", "\n")
};

// The regex as one GBNF expression (alternatives allowed, to be wrapped in parentheses by the
// caller), adding the helper rules it needs through add_rule (sub-rules `<name>-N` for {m,n}
// repetitions of non-literals, `dot`). A leading '^' and a trailing '$' are dropped; *anchored_start
// / *anchored_end (when not null) say whether they were there. Throws Error (kBadInput) prefixed
// with `what`, naming the offset (in code points) of the unsupported or malformed construct.
std::string regex_gbnf_expr(std::string_view regex, const std::string& name, RegexTarget target,
                            const AddRule& add_rule, const std::string& what,
                            bool* anchored_start = nullptr, bool* anchored_end = nullptr);

// The rule name llama.cpp gives `name`: runs of characters outside [a-zA-Z0-9-] become '-'.
std::string gbnf_rule_name(std::string_view name);
// llama.cpp's _add_rule over a rule map: rules[gbnf_rule_name(name)] = body, or, when that name
// already holds another body, the first of name0, name1... that is free or holds the same body.
// Returns the name used.
std::string add_gbnf_rule(std::map<std::string, std::string>& rules, const std::string& name,
                          const std::string& body);
// llama.cpp's build_repetition: `item` repeated min..max times (max < 0: unbounded) as
// x? / x* / x+ / x{m,n}; with a separator rule, "item (sep item){m-1,n-1}".
std::string gbnf_repetition(const std::string& item, int64_t min, int64_t max, const std::string& sep = "");
// `s` as a GBNF string literal, quotes included: \ " \n \r \t and \xHH for other control bytes.
std::string gbnf_literal(std::string_view s);
// One code point as it stands inside a GBNF character class [...]: \ ] [ " - ^ \n \r \t escaped,
// \xHH for other control characters and DEL, anything else as its UTF-8 bytes.
std::string gbnf_class_char(uint32_t cp);
// The code points of UTF-8 text; ill-formed UTF-8 is an Error (kBadInput) prefixed with `what`,
// naming the byte offset.
std::vector<uint32_t> decode_utf8(std::string_view s, const std::string& what);

}  // namespace detail

}  // namespace llmforge
