// JSON Schema -> GBNF (see json_schema.h).
//
// Written by hand after llama.cpp's common/json-schema-to-grammar.cpp (the reference for the rule
// names and the output text; no Debian library converts schemas to grammars). Where llama.cpp's
// grammar would accept text that is not valid JSON, or not valid for the schema, we differ on
// purpose, each time in the smallest way (tests/runtime/json_schema_test.cpp pins each case):
//  * keys of additional properties: the negated first-character class also excludes '\' and
//    control characters (llama.cpp's [^"a] lets `"\"` through, an unterminated string);
//  * string patterns: characters are written in their JSON encoding (a '"' in a pattern is `\"`
//    in the text), and `.` cannot produce a raw '"', '\' or control character;
//  * a property named "" no longer takes the rule name `root`;
//  * key texts with a backslash are escaped for GBNF.
// And unlike llama.cpp, every keyword that would narrow what is valid and that the grammar does
// not express is an error naming it and its JSON pointer, never silently dropped.
#include "runtime/json_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/json_depth.h"

namespace llmforge {

namespace {

using json = nlohmann::ordered_json;

constexpr int kMaxSchemaDepth = 64;       // nested subschemas (and $ref hops) per path
constexpr int64_t kMaxCount = 10000;      // minItems/maxItems/minLength/maxLength (the grammar expands them)
constexpr long double kMaxInt = 1e15L;    // integer bounds (16 digits, as llama.cpp's digit ranges)

const char* const kSpaceRule = "| \" \" | \"\\n\" [ \\t]{0,20}";

struct Builtin {
    const char* body;
    std::vector<const char*> deps;
};

// The primitive rules of llama.cpp's converter (their text is part of the expected output).
const std::map<std::string, Builtin>& primitive_rules() {
    static const std::map<std::string, Builtin> m = {
        {"boolean", {"(\"true\" | \"false\") space", {}}},
        {"decimal-part", {"[0-9]{1,16}", {}}},
        {"integral-part", {"[0] | [1-9] [0-9]{0,15}", {}}},
        {"number", {"(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? space",
                    {"integral-part", "decimal-part"}}},
        {"integer", {"(\"-\"? integral-part) space", {"integral-part"}}},
        {"value", {"object | array | string | number | boolean | null",
                   {"object", "array", "string", "number", "boolean", "null"}}},
        {"object", {"\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? \"}\" space",
                    {"string", "value"}}},
        {"array", {"\"[\" space ( value (\",\" space value)* )? \"]\" space", {"value"}}},
        {"uuid", {"\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
                  "[0-9a-fA-F]{12} \"\\\"\" space",
                  {}}},
        {"char", {"[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})", {}}},
        {"string", {"\"\\\"\" char* \"\\\"\" space", {"char"}}},
        {"null", {"\"null\" space", {}}},
    };
    return m;
}

const std::map<std::string, Builtin>& format_rules() {
    static const std::map<std::string, Builtin> m = {
        {"date", {"[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )", {}}},
        {"time", {"([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | "
                  "\"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
                  {}}},
        {"date-time", {"date \"T\" time", {"date", "time"}}},
        {"date-string", {"\"\\\"\" date \"\\\"\" space", {"date"}}},
        {"time-string", {"\"\\\"\" time \"\\\"\" space", {"time"}}},
        {"date-time-string", {"\"\\\"\" date-time \"\\\"\" space", {"date-time"}}},
    };
    return m;
}

bool is_reserved(const std::string& name) {
    return name == "root" || primitive_rules().count(name) || format_rules().count(name);
}

// JSON types as a bit set. kInt is the integers, kNum the other numbers.
enum : unsigned { kObj = 1, kArr = 2, kStr = 4, kNum = 8, kInt = 16, kBool = 32, kNull = 64, kAll = 127 };

unsigned type_bits(const std::string& t) {
    if (t == "object") return kObj;
    if (t == "array") return kArr;
    if (t == "string") return kStr;
    if (t == "number") return kNum | kInt;
    if (t == "integer") return kInt;
    if (t == "boolean") return kBool;
    if (t == "null") return kNull;
    return 0;
}

unsigned value_bits(const json& v) {
    switch (v.type()) {
        case json::value_t::object: return kObj;
        case json::value_t::array: return kArr;
        case json::value_t::string: return kStr;
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return kInt;
        case json::value_t::number_float: {
            const double d = v.get<double>();
            return std::isfinite(d) && d == std::floor(d) ? kInt : kNum;
        }
        case json::value_t::boolean: return kBool;
        case json::value_t::null: return kNull;
        default: return 0;
    }
}

// Keywords that do not change what is valid (annotations, containers of definitions). "format"
// is an annotation too (JSON Schema 2019-09+: assertion only when a validator opts in); the
// formats the grammar knows (date, time, date-time, uuid) are enforced.
const std::set<std::string>& annotation_keywords() {
    static const std::set<std::string> s = {
        "$schema", "$id", "id", "$anchor", "$dynamicAnchor", "$comment", "$defs", "definitions",
        "$vocabulary", "title", "description", "default", "examples", "example", "deprecated", "readOnly",
        "writeOnly", "contentEncoding", "contentMediaType", "contentSchema", "format", "discriminator",
        "externalDocs", "xml",
    };
    return s;
}

// Validation keywords and the JSON types they constrain (a keyword is vacuous for other types).
const std::map<std::string, unsigned>& validation_keywords() {
    static const std::map<std::string, unsigned> m = {
        {"type", kAll}, {"enum", kAll}, {"const", kAll}, {"allOf", kAll}, {"anyOf", kAll}, {"oneOf", kAll},
        {"not", kAll}, {"if", kAll}, {"then", kAll}, {"else", kAll}, {"$ref", kAll}, {"$dynamicRef", kAll},
        {"$recursiveRef", kAll}, {"$recursiveAnchor", kAll},
        {"properties", kObj}, {"patternProperties", kObj}, {"additionalProperties", kObj},
        {"propertyNames", kObj}, {"required", kObj}, {"minProperties", kObj}, {"maxProperties", kObj},
        {"dependentRequired", kObj}, {"dependentSchemas", kObj}, {"dependencies", kObj},
        {"unevaluatedProperties", kObj},
        {"items", kArr}, {"prefixItems", kArr}, {"additionalItems", kArr}, {"contains", kArr},
        {"minContains", kArr}, {"maxContains", kArr}, {"minItems", kArr}, {"maxItems", kArr},
        {"uniqueItems", kArr}, {"unevaluatedItems", kArr},
        {"minLength", kStr}, {"maxLength", kStr}, {"pattern", kStr},
        {"minimum", kNum | kInt}, {"maximum", kNum | kInt}, {"exclusiveMinimum", kNum | kInt},
        {"exclusiveMaximum", kNum | kInt}, {"multipleOf", kNum | kInt},
    };
    return m;
}

std::string pointer_token(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

const char* json_type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::object: return "an object";
        case json::value_t::array: return "an array";
        case json::value_t::string: return "a string";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::null: return "null";
        default: return "a number";
    }
}

// JSON-encoded code point trie for the keys additional properties must avoid.
struct KeyTrie {
    std::map<uint32_t, KeyTrie> children;
    bool end = false;
};

class SchemaConverter {
public:
    SchemaConverter(const json& root, std::string what) : root_(root), what_(std::move(what)) {
        rules_["space"] = kSpaceRule;
    }

    std::string run() {
        visit(root_, "", "#", 0, true);
        std::string out;
        for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
        return out;
    }

    std::string add_rule(const std::string& name, const std::string& body) {
        return detail::add_gbnf_rule(rules_, name, body);
    }

private:
    [[noreturn]] void bad(const std::string& ptr, const std::string& msg) const {
        fail("%s: %s at %s", what_.c_str(), msg.c_str(), ptr.c_str());
    }
    [[noreturn]] void unsupported(const std::string& kw, const std::string& ptr, const std::string& why) const {
        fail("%s: unsupported keyword '%s' at %s (%s)", what_.c_str(), kw.c_str(), ptr.c_str(), why.c_str());
    }

    static std::string child_name(const std::string& name, const std::string& suffix) {
        return name + (name.empty() ? "" : "-") + suffix;
    }

    std::string add_primitive(const std::string& name, const Builtin& rule) {
        const std::string n = add_rule(name, rule.body);
        for (const char* dep : rule.deps) {
            if (rules_.count(dep)) continue;
            auto it = primitive_rules().find(dep);
            if (it == primitive_rules().end()) it = format_rules().find(dep);
            add_primitive(dep, it->second);
        }
        return n;
    }
    std::string primitive(const std::string& type) { return add_primitive(type, primitive_rules().at(type)); }

    // Every keyword of `s` is consumed, an annotation, not a JSON Schema keyword, or constrains
    // only types that `produced` excludes. Otherwise: an error naming it.
    void check_keywords(const json& s, const std::string& ptr, std::initializer_list<const char*> consumed,
                        unsigned produced, const std::string& branch) const {
        for (const auto& kv : s.items()) {
            const std::string& k = kv.key();
            bool used = false;
            for (const char* c : consumed) used = used || k == c;
            if (used || annotation_keywords().count(k)) continue;
            auto it = validation_keywords().find(k);
            if (it == validation_keywords().end()) continue;  // not JSON Schema: validators ignore it too
            if ((it->second & produced) == 0) continue;        // constrains only types never produced
            unsupported(k, ptr, std::string("not supported with ") + branch +
                                    "; supported: type, enum, const, properties, required, additionalProperties, "
                                    "items, prefixItems, minItems, maxItems, minLength, maxLength, pattern, format, "
                                    "minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, oneOf, allOf, $ref");
        }
    }

    // The allowed types named by "type" (a string or an array of strings).
    unsigned declared_types(const json& s, const std::string& ptr) const {
        if (!s.contains("type")) return kAll;
        const json& t = s["type"];
        unsigned bits = 0;
        auto one = [&](const json& v) {
            const unsigned b = v.is_string() ? type_bits(v.get<std::string>()) : 0;
            if (b == 0) {
                bad(ptr + "/type", "unknown type " + v.dump() +
                                       " (expected object, array, string, number, integer, boolean or null)");
            }
            bits |= b;
        };
        if (t.is_array()) {
            if (t.empty()) bad(ptr + "/type", "empty type list (nothing would be valid)");
            for (const json& v : t) one(v);
        } else {
            one(t);
        }
        return bits;
    }

    const json& resolve_pointer(const std::string& ref, const std::string& ptr) const {
        if (ref.empty() || ref[0] != '#') {
            bad(ptr, "remote or relative $ref '" + ref + "' is not supported (only '#/...' inside the schema, e.g. "
                     "'#/$defs/name')");
        }
        const json* cur = &root_;
        size_t i = 1;
        if (i < ref.size() && ref[i] != '/') bad(ptr, "$ref '" + ref + "' is not a JSON pointer (expected '#/...')");
        while (i < ref.size()) {
            size_t j = ref.find('/', i + 1);
            if (j == std::string::npos) j = ref.size();
            std::string tok;
            for (size_t k = i + 1; k < j; ++k) {
                if (ref[k] == '~' && k + 1 < j && (ref[k + 1] == '0' || ref[k + 1] == '1')) {
                    tok += ref[k + 1] == '0' ? '~' : '/';
                    ++k;
                } else if (ref[k] == '%' && k + 2 < j && std::isxdigit(static_cast<unsigned char>(ref[k + 1])) &&
                           std::isxdigit(static_cast<unsigned char>(ref[k + 2]))) {
                    tok += static_cast<char>(std::stoi(ref.substr(k + 1, 2), nullptr, 16));
                    k += 2;
                } else {
                    tok += ref[k];
                }
            }
            if (cur->is_object() && cur->contains(tok)) {
                cur = &(*cur)[tok];
            } else if (cur->is_array() && !tok.empty() && tok.size() < 10 &&
                       tok.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoul(tok) < cur->size()) {
                cur = &(*cur)[std::stoul(tok)];
            } else {
                bad(ptr, "$ref '" + ref + "' does not resolve: no '" + tok + "' in the schema");
            }
            i = j;
        }
        return *cur;
    }

    std::string resolve_ref(const std::string& ref, const std::string& ptr, int depth) {
        auto done = ref_rules_.find(ref);
        if (done != ref_rules_.end()) return done->second;
        const json& target = resolve_pointer(ref, ptr);
        auto busy = resolving_.find(ref);
        if (busy != resolving_.end()) return busy->second;  // recursion: the name it will get
        std::string base = ref.substr(ref.find_last_of('/') + 1);
        if (base.empty() || base == "#") base = "ref";
        std::string name = detail::gbnf_rule_name(is_reserved(base) ? base + "-" : base);
        if (rules_.count(name)) {
            int i = 0;
            while (rules_.count(name + std::to_string(i))) ++i;
            name += std::to_string(i);
        }
        resolving_[ref] = name;
        const std::string got = visit(target, name, ref, depth + 1, false);
        resolving_.erase(ref);
        ref_rules_[ref] = got;
        return got;
    }

    // Which JSON types the grammar for `s` can produce (kAll when unknown).
    unsigned produced_types(const json& s, int depth) const {
        if (depth > kMaxSchemaDepth || !s.is_object()) return s.is_boolean() && !s.get<bool>() ? 0 : kAll;
        if (s.contains("$ref") && s["$ref"].is_string()) {
            try {
                return produced_types(resolve_pointer(s["$ref"].get<std::string>(), "#"), depth + 1);
            } catch (const Error&) {
                return kAll;
            }
        }
        for (const char* k : {"anyOf", "oneOf"}) {
            if (s.contains(k) && s[k].is_array()) {
                unsigned bits = 0;
                for (const json& a : s[k]) bits |= produced_types(a, depth + 1);
                return bits;
            }
        }
        unsigned declared = kAll;
        try {
            declared = declared_types(s, "#");
        } catch (const Error&) {
        }
        if (s.contains("const")) return value_bits(s["const"]) & (declared | (declared & kNum ? kInt : 0));
        if (s.contains("enum") && s["enum"].is_array()) {
            unsigned bits = 0;
            for (const json& v : s["enum"]) bits |= value_bits(v);
            return bits & declared;
        }
        if (declared != kAll) return declared;
        if (s.contains("properties") || s.contains("additionalProperties") || s.contains("allOf")) return kObj;
        if (s.contains("items") || s.contains("prefixItems")) return kArr;
        if (s.contains("pattern") || s.contains("format")) return kStr;
        return kAll;
    }

    // "type" next to $ref / anyOf / oneOf: every alternative must already have one of its types.
    void check_type_sibling(const json& s, const std::string& ptr, const char* kw, int depth) const {
        if (!s.contains("type")) return;
        unsigned allowed = declared_types(s, ptr);
        if (allowed & kNum) allowed |= kInt;
        auto check = [&](const json& alt, const std::string& where) {
            const unsigned t = produced_types(alt, depth + 1);
            if ((t & ~allowed) != 0) {
                unsupported("type", ptr, std::string("'type' next to '") + kw + "' is enforced only when every "
                                         "alternative has one of its types, and " + where + " may not (hint: move "
                                         "'type' into the alternatives)");
            }
        };
        if (s[kw].is_array()) {
            for (size_t i = 0; i < s[kw].size(); ++i) check(s[kw][i], ptr + "/" + kw + "/" + std::to_string(i));
        } else {
            check(s, ptr + "/" + kw);
        }
    }

    int64_t count_keyword(const json& s, const char* kw, const std::string& ptr) const {
        const json& v = s[kw];
        if (!v.is_number() || value_bits(v) != kInt || v.get<double>() < 0) {
            bad(ptr + "/" + kw, std::string("'") + kw + "' must be a non-negative integer, found " + v.dump());
        }
        const double d = v.get<double>();
        if (d > static_cast<double>(kMaxCount)) {
            unsupported(kw, ptr, "values above " + std::to_string(kMaxCount) + " are not supported (the grammar "
                                 "expands the repetition)");
        }
        return static_cast<int64_t>(d);
    }

    std::string constant(const json& v) { return detail::gbnf_literal(v.dump()); }

    std::string visit(const json& s, const std::string& name, const std::string& ptr, int depth, bool top) {
        if (depth > kMaxSchemaDepth) bad(ptr, "schema nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
        const std::string rule_name = top ? "root" : name.empty() ? "empty" : is_reserved(name) ? name + "-" : name;
        if (s.is_boolean()) {
            if (!s.get<bool>()) bad(ptr, "schema 'false' accepts nothing");
            return add_rule(rule_name, primitive("object"));  // as {}
        }
        if (!s.is_object()) bad(ptr, std::string("expected a schema (an object or a boolean), found ") + json_type_name(s));

        if (s.contains("$ref")) {
            if (!s["$ref"].is_string()) bad(ptr + "/$ref", "'$ref' must be a string");
            check_keywords(s, ptr, {"$ref", "type"}, produced_types(s, depth), "'$ref'");
            check_type_sibling(s, ptr, "$ref", depth);
            return add_rule(rule_name, resolve_ref(s["$ref"].get<std::string>(), ptr + "/$ref", depth));
        }
        if (s.contains("oneOf") || s.contains("anyOf")) {
            if (s.contains("oneOf") && s.contains("anyOf")) {
                unsupported("anyOf", ptr, "'anyOf' together with 'oneOf' in one schema");
            }
            const char* kw = s.contains("oneOf") ? "oneOf" : "anyOf";
            const json& alts = s[kw];
            if (!alts.is_array() || alts.empty()) bad(ptr + "/" + kw, std::string("'") + kw + "' must be a non-empty array");
            check_keywords(s, ptr, {kw, "type"}, produced_types(s, depth), kw);
            check_type_sibling(s, ptr, kw, depth);
            // oneOf is treated as anyOf: the grammar cannot exclude matching two alternatives.
            std::string body;
            for (size_t i = 0; i < alts.size(); ++i) {
                if (i > 0) body += " | ";
                body += visit(alts[i], name + (name.empty() ? "alternative-" : "-") + std::to_string(i),
                              ptr + "/" + kw + "/" + std::to_string(i), depth + 1, false);
            }
            return add_rule(rule_name, body);
        }
        const unsigned declared = declared_types(s, ptr);
        if (s.contains("const") || s.contains("enum")) {
            std::vector<json> values;
            const char* kw = s.contains("const") ? "const" : "enum";
            if (s.contains("const") && s.contains("enum")) unsupported("enum", ptr, "'enum' together with 'const'");
            if (s.contains("const")) {
                values.push_back(s["const"]);
            } else {
                if (!s["enum"].is_array() || s["enum"].empty()) bad(ptr + "/enum", "'enum' must be a non-empty array");
                for (const json& v : s["enum"]) values.push_back(v);
            }
            // Only the values of the declared types are valid.
            std::vector<json> kept;
            unsigned bits = 0;
            for (const json& v : values) {
                if (value_bits(v) & (declared | (declared & kNum ? kInt : 0))) {
                    kept.push_back(v);
                    bits |= value_bits(v);
                }
            }
            if (kept.empty()) bad(ptr + "/" + kw, std::string("no value of '") + kw + "' has the declared 'type'");
            check_keywords(s, ptr, {kw, "type"}, bits, kw);
            if (s.contains("const")) return add_rule(rule_name, constant(kept[0]) + " space");
            std::string body = "(";
            for (size_t i = 0; i < kept.size(); ++i) body += (i ? " | " : "") + constant(kept[i]);
            return add_rule(rule_name, body + ") space");
        }
        if (s.contains("type") && s["type"].is_array()) {
            std::string body;
            const json& types = s["type"];
            for (size_t i = 0; i < types.size(); ++i) {
                json copy = s;
                copy["type"] = types[i];
                if (i > 0) body += " | ";
                body += visit(copy, name + (name.empty() ? "alternative-" : "-") + std::to_string(i), ptr, depth + 1, false);
            }
            return add_rule(rule_name, body);
        }
        const std::string type = s.contains("type") ? s["type"].get<std::string>() : "";
        const bool any_type = type.empty();
        if ((any_type || type == "object") &&
            (s.contains("properties") || (s.contains("additionalProperties") && s["additionalProperties"] != true))) {
            check_keywords(s, ptr, {"type", "properties", "required", "additionalProperties"}, kObj, "an object");
            return add_rule(rule_name, object_rule(s, name, ptr, depth));
        }
        if (any_type && s.contains("allOf") && s["allOf"].is_array() && s["allOf"].size() == 1) {
            // One component (pydantic's {"allOf": [{"$ref": ...}], "default": ...}): that schema.
            check_keywords(s, ptr, {"allOf"}, produced_types(s["allOf"][0], depth), "'allOf'");
            return visit(s["allOf"][0], name, ptr + "/allOf/0", depth + 1, top);
        }
        if ((any_type || type == "object") && s.contains("allOf")) {
            check_keywords(s, ptr, {"type", "allOf"}, kObj, "'allOf'");
            return add_rule(rule_name, all_of_rule(s, name, ptr, depth));
        }
        if ((any_type || type == "array") && (s.contains("items") || s.contains("prefixItems"))) {
            check_keywords(s, ptr, {"type", "items", "prefixItems", "minItems", "maxItems"}, kArr, "an array");
            return add_rule(rule_name, array_rule(s, name, ptr, depth));
        }
        if ((any_type || type == "string") && s.contains("pattern")) {
            check_keywords(s, ptr, {"type", "pattern"}, kStr, "'pattern'");
            return pattern_rule(s, rule_name, ptr);
        }
        const std::string format = s.contains("format") && s["format"].is_string() ? s["format"].get<std::string>() : "";
        const bool uuid = format.size() >= 4 && format.compare(0, 4, "uuid") == 0 &&
                          (format.size() == 4 || (format.size() == 5 && format[4] >= '1' && format[4] <= '5'));
        if ((any_type || type == "string") && uuid) {
            check_keywords(s, ptr, {"type"}, kStr, "format 'uuid'");
            return add_primitive(rule_name == "root" ? "root" : format, primitive_rules().at("uuid"));
        }
        if ((any_type || type == "string") && format_rules().count(format + "-string")) {
            check_keywords(s, ptr, {"type"}, kStr, "format '" + format + "'");
            const std::string prim = format + "-string";
            return add_rule(rule_name, add_primitive(prim, format_rules().at(prim)));
        }
        if (type == "string" && (s.contains("minLength") || s.contains("maxLength"))) {
            check_keywords(s, ptr, {"type", "minLength", "maxLength"}, kStr, "a string");
            const int64_t lo = s.contains("minLength") ? count_keyword(s, "minLength", ptr) : 0;
            const int64_t hi = s.contains("maxLength") ? count_keyword(s, "maxLength", ptr) : -1;
            if (hi >= 0 && hi < lo) bad(ptr, "maxLength is below minLength (nothing would be valid)");
            const std::string c = primitive("char");
            return add_rule(rule_name, "\"\\\"\" " + detail::gbnf_repetition(c, lo, hi) + " \"\\\"\" space");
        }
        if (type == "integer" && (s.contains("minimum") || s.contains("exclusiveMinimum") || s.contains("maximum") ||
                                  s.contains("exclusiveMaximum"))) {
            check_keywords(s, ptr, {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}, kInt,
                           "an integer");
            return add_rule(rule_name, "(" + integer_range(s, ptr) + ") space");
        }
        bool empty = true;  // no keyword but annotations and unknown ones
        for (const auto& kv : s.items())
            if (validation_keywords().count(kv.key())) empty = false;
        if (empty || type == "object") {
            if (type == "object" && s.contains("additionalProperties") && s["additionalProperties"] == true) {
                check_keywords(s, ptr, {"type", "additionalProperties"}, kObj, "an object");
            } else {
                check_keywords(s, ptr, {"type"}, kObj, "an object without properties");
            }
            return add_rule(rule_name, primitive("object"));
        }
        if (any_type || !primitive_rules().count(type) || type_bits(type) == 0) {
            // No type and only keywords of some types: which type to produce is unknown.
            for (const auto& kv : s.items()) {
                if (validation_keywords().count(kv.key()) && kv.key() != "type") {
                    unsupported(kv.key(), ptr, "without a 'type' this keyword alone does not say what to generate "
                                                "(hint: add \"type\")");
                }
            }
            bad(ptr, "unrecognized schema " + s.dump());
        }
        check_keywords(s, ptr, {"type"}, type_bits(type), "type '" + type + "'");
        return add_primitive(rule_name == "root" ? "root" : type, primitive_rules().at(type));
    }

    std::string not_strings(const std::vector<std::string>& keys, const std::string& ptr) {
        KeyTrie trie;
        for (const std::string& k : keys) {
            for (char c : k) {
                const auto u = static_cast<unsigned char>(c);
                if (u < 0x20 || c == '"' || c == '\\') {
                    unsupported("additionalProperties", ptr, "property names with quotes, backslashes or control "
                                                             "characters cannot be combined with additional properties");
                }
            }
            KeyTrie* node = &trie;
            for (uint32_t cp : detail::decode_utf8(k, what_)) node = &node->children[cp];
            node->end = true;
        }
        const std::string char_rule = primitive("char");
        std::string out = "[\"] ( ";
        std::function<void(const KeyTrie&)> walk = [&](const KeyTrie& node) {
            std::string rejects;
            bool first = true;
            for (const auto& [cp, child] : node.children) {
                rejects += detail::gbnf_class_char(cp);
                if (!first) out += " | ";
                first = false;
                out += "[" + detail::gbnf_class_char(cp) + "]";
                if (!child.children.empty()) {
                    out += " (";
                    walk(child);
                    out += ")";
                } else if (child.end) {
                    out += " " + char_rule + "+";
                }
            }
            if (!node.children.empty()) {
                if (!first) out += " | ";
                // llama.cpp writes [^"<rejects>]; '\' and control characters are excluded too, so
                // that the first character cannot open an escape the grammar does not finish.
                out += "[^\"" + rejects + "\\\\\\x7F\\x00-\\x1F] " + char_rule + "*";
            }
        };
        walk(trie);
        out += " )";
        if (!trie.end) out += "?";
        return out + " [\"] space";
    }

    std::string object_rule(const json& s, const std::string& name, const std::string& ptr, int depth) {
        std::vector<std::pair<std::string, const json*>> props;
        if (s.contains("properties")) {
            if (!s["properties"].is_object()) bad(ptr + "/properties", "'properties' must be an object");
            for (const auto& kv : s["properties"].items()) props.emplace_back(kv.key(), &kv.value());
        }
        std::set<std::string> required;
        if (s.contains("required")) {
            const json& r = s["required"];
            if (!r.is_array()) bad(ptr + "/required", "'required' must be an array of property names");
            for (const json& k : r) {
                if (!k.is_string()) bad(ptr + "/required", "'required' must be an array of property names");
                bool known = false;
                for (const auto& p : props) known = known || p.first == k.get<std::string>();
                if (!known) {
                    unsupported("required", ptr, "required property '" + k.get<std::string>() +
                                                     "' is not in 'properties' (hint: declare it there)");
                }
                required.insert(k.get<std::string>());
            }
        }
        const json ap = s.contains("additionalProperties") ? s["additionalProperties"] : json();
        if (!ap.is_null() && !ap.is_boolean() && !ap.is_object()) {
            bad(ptr + "/additionalProperties", "'additionalProperties' must be a boolean or a schema");
        }
        return build_object(props, required, name, ptr, depth, ap);
    }

    std::string build_object(const std::vector<std::pair<std::string, const json*>>& props,
                             const std::set<std::string>& required, const std::string& name, const std::string& ptr,
                             int depth, const json& ap) {
        struct Kv {
            std::string key, rule;
            bool additional = false;
        };
        std::vector<Kv> req, opt;
        std::vector<std::string> names;
        for (const auto& [key, sub] : props) {
            const std::string value_rule =
                visit(*sub, child_name(name, key), ptr + "/properties/" + pointer_token(key), depth + 1, false);
            const std::string kv = add_rule(child_name(name, key) + "-kv",
                                            detail::gbnf_literal(json(key).dump()) + " space \":\" space " + value_rule);
            (required.count(key) ? req : opt).push_back({key, kv});
            names.push_back(key);
        }
        if ((ap.is_boolean() && ap.get<bool>()) || ap.is_object()) {
            const std::string sub = child_name(name, "additional");
            const std::string value_rule = ap.is_object() ? visit(ap, sub + "-value", ptr + "/additionalProperties", depth + 1, false)
                                                          : primitive("value");
            const std::string key_rule =
                names.empty() ? primitive("string") : add_rule(sub + "-k", not_strings(names, ptr));
            opt.push_back({"*", add_rule(sub + "-kv", key_rule + " \":\" space " + value_rule), true});
        }
        std::string rule = "\"{\" space ";
        for (size_t i = 0; i < req.size(); ++i) {
            if (i > 0) rule += " \",\" space ";
            rule += req[i].rule;
        }
        if (!opt.empty()) {
            rule += " (";
            if (!req.empty()) rule += " \",\" space ( ";
            // The optional properties in order, each present or not: "k1 rest1 | k2 rest2 | ...",
            // rest_i a rule for what may follow k_i.
            std::function<std::string(size_t, bool)> chain = [&](size_t from, bool first_optional) {
                const Kv& k = opt[from];
                const std::string comma = "( \",\" space " + k.rule + " )";
                std::string res = first_optional ? comma + (k.additional ? "*" : "?")
                                                 : k.rule + (k.additional ? " " + comma + "*" : "");
                if (from + 1 < opt.size()) {
                    res += " " + add_rule(child_name(name, k.key) + "-rest", chain(from + 1, true));
                }
                return res;
            };
            for (size_t i = 0; i < opt.size(); ++i) {
                if (i > 0) rule += " | ";
                rule += chain(i, false);
            }
            if (!req.empty()) rule += " )";
            rule += " )?";
        }
        return rule + " \"}\" space";
    }

    std::string all_of_rule(const json& s, const std::string& name, const std::string& ptr, int depth) {
        const json& parts = s["allOf"];
        if (!parts.is_array() || parts.empty()) bad(ptr + "/allOf", "'allOf' must be a non-empty array");
        std::vector<std::pair<std::string, const json*>> props;
        std::set<std::string> required;
        // A component contributes its properties (required unless it sits in an anyOf); the result
        // allows no other property, which only narrows what the schema allows.
        std::function<void(const json&, bool, const std::string&, int)> add = [&](const json& c, bool is_required,
                                                                                 const std::string& at, int d) {
            if (d > kMaxSchemaDepth) bad(at, "allOf nests too deeply");
            if (!c.is_object()) bad(at, "an 'allOf' component must be a schema object");
            if (c.contains("$ref")) {
                if (!c["$ref"].is_string()) bad(at + "/$ref", "'$ref' must be a string");
                check_keywords(c, at, {"$ref"}, kObj, "an 'allOf' component");
                add(resolve_pointer(c["$ref"].get<std::string>(), at + "/$ref"), is_required,
                    c["$ref"].get<std::string>(), d + 1);
                return;
            }
            if (c.contains("type") && c["type"] != "object") {
                unsupported("type", at, "'allOf' components must be objects");
            }
            if (c.contains("required") && !is_required && !c["required"].empty()) {
                unsupported("required", at, "'required' inside an 'anyOf' of 'allOf'");
            }
            check_keywords(c, at, {"type", "properties", "required"}, kObj, "an 'allOf' component");
            if (c.contains("properties")) {
                if (!c["properties"].is_object()) bad(at + "/properties", "'properties' must be an object");
                for (const auto& kv : c["properties"].items()) {
                    props.emplace_back(kv.key(), &kv.value());
                    if (is_required) required.insert(kv.key());
                }
            }
        };
        for (size_t i = 0; i < parts.size(); ++i) {
            const json& t = parts[i];
            const std::string at = ptr + "/allOf/" + std::to_string(i);
            if (t.is_object() && t.contains("anyOf")) {
                check_keywords(t, at, {"anyOf"}, kObj, "an 'allOf' component");
                if (!t["anyOf"].is_array()) bad(at + "/anyOf", "'anyOf' must be an array");
                for (size_t j = 0; j < t["anyOf"].size(); ++j) {
                    add(t["anyOf"][j], false, at + "/anyOf/" + std::to_string(j), 0);
                }
            } else {
                add(t, true, at, 0);
            }
        }
        return build_object(props, required, name, ptr, depth, json());
    }

    std::string array_rule(const json& s, const std::string& name, const std::string& ptr, int depth) {
        if (s.contains("items") && s.contains("prefixItems")) {
            unsupported("prefixItems", ptr, "'prefixItems' together with 'items'");
        }
        const char* kw = s.contains("items") ? "items" : "prefixItems";
        const json& items = s[kw];
        const int64_t lo = s.contains("minItems") ? count_keyword(s, "minItems", ptr) : 0;
        const int64_t hi = s.contains("maxItems") ? count_keyword(s, "maxItems", ptr) : -1;
        if (hi >= 0 && hi < lo) bad(ptr, "maxItems is below minItems (nothing would be valid)");
        if (items.is_array()) {
            // A tuple of exactly these items.
            const auto n = static_cast<int64_t>(items.size());
            if (n < lo || (hi >= 0 && n > hi)) {
                unsupported(s.contains("minItems") && n < lo ? "minItems" : "maxItems", ptr,
                            "a tuple has exactly " + std::to_string(n) + " items");
            }
            std::string rule = "\"[\" space ";
            for (size_t i = 0; i < items.size(); ++i) {
                if (i > 0) rule += " \",\" space ";
                rule += visit(items[i], child_name(name, "tuple-" + std::to_string(i)),
                              ptr + "/" + kw + "/" + std::to_string(i), depth + 1, false);
            }
            return rule + " \"]\" space";
        }
        if (items.is_boolean() && !items.get<bool>()) {
            if (lo > 0) bad(ptr, "'items': false with minItems > 0 (nothing would be valid)");
            return "\"[\" space \"]\" space";
        }
        const std::string item = visit(items, child_name(name, "item"), ptr + "/" + kw, depth + 1, false);
        return "\"[\" space " + detail::gbnf_repetition(item, lo, hi, "\",\" space") + " \"]\" space";
    }

    std::string pattern_rule(const json& s, const std::string& rule_name, const std::string& ptr) {
        if (!s["pattern"].is_string()) bad(ptr + "/pattern", "'pattern' must be a string");
        const std::string pattern = s["pattern"].get<std::string>();
        bool start = false, end = false;
        const detail::AddRule add = [this](const std::string& n, const std::string& b) { return add_rule(n, b); };
        std::string expr = detail::regex_gbnf_expr(pattern, rule_name, detail::RegexTarget::kJsonString, add,
                                                   what_ + ": 'pattern' at " + ptr + "/pattern", &start, &end);
        if (!start || !end) {
            // JSON Schema patterns are not anchored: any text may come before / after.
            const std::string c = primitive("char");
            expr = (start ? "" : c + "* ") + "(" + expr + ")" + (end ? "" : " " + c + "*");
        }
        return add_rule(rule_name, "\"\\\"\" (" + expr + ") \"\\\"\" space");
    }

    // llama.cpp's digit-range construction for min <= n <= max (either bound optional).
    static void digit_range(std::string& out, char from, char to) {
        out += "[";
        out += from;
        if (from != to) {
            out += "-";
            out += to;
        }
        out += "]";
    }
    static void more_digits(std::string& out, int lo, int hi /* < 0: unbounded */) {
        out += "[0-9]";
        if (lo == hi && lo == 1) return;
        out += "{" + std::to_string(lo);
        if (hi != lo) out += "," + (hi >= 0 ? std::to_string(hi) : "");
        out += "}";
    }
    // Numbers from `from` to `to`, both with the same number of digits.
    static void uniform_range(std::string& out, const std::string& from, const std::string& to) {
        size_t i = 0;
        while (i < from.size() && i < to.size() && from[i] == to[i]) ++i;
        if (i > 0) out += "\"" + from.substr(0, i) + "\"";
        if (i >= from.size() || i >= to.size()) return;
        if (i > 0) out += " ";
        const size_t rest = from.size() - i - 1;
        if (rest == 0) {
            out += "[";
            out += from[i];
            out += "-";
            out += to[i];
            out += "]";
            return;
        }
        const std::string from_rest = from.substr(i + 1), to_rest = to.substr(i + 1);
        const std::string zeros(rest, '0'), nines(rest, '9');
        bool to_done = false;
        out += "(";
        if (from_rest == zeros) {
            digit_range(out, from[i], static_cast<char>(to[i] - 1));
            out += " ";
            more_digits(out, static_cast<int>(rest), static_cast<int>(rest));
        } else {
            out += "[";
            out += from[i];
            out += "] (";
            uniform_range(out, from_rest, nines);
            out += ")";
            if (from[i] < to[i] - 1) {
                out += " | ";
                if (to_rest == nines) {
                    digit_range(out, static_cast<char>(from[i] + 1), to[i]);
                    to_done = true;
                } else {
                    digit_range(out, static_cast<char>(from[i] + 1), static_cast<char>(to[i] - 1));
                }
                out += " ";
                more_digits(out, static_cast<int>(rest), static_cast<int>(rest));
            }
        }
        if (!to_done) {
            out += " | ";
            digit_range(out, to[i], to[i]);
            out += " ";
            uniform_range(out, zeros, to_rest);
        }
        out += ")";
    }
    static void int_range(std::string& out, bool has_min, int64_t lo, bool has_max, int64_t hi, int decimals = 16,
                          bool top = true) {
        if (has_min && has_max) {
            if (lo < 0 && hi < 0) {
                out += "\"-\" (";
                int_range(out, true, -hi, true, -lo, decimals, true);
                out += ")";
                return;
            }
            if (lo < 0) {
                out += "\"-\" (";
                int_range(out, true, 0, true, -lo, decimals, true);
                out += ") | ";
                lo = 0;
            }
            std::string lo_s = std::to_string(lo);
            const std::string hi_s = std::to_string(hi);
            for (size_t digits = lo_s.size(); digits < hi_s.size(); ++digits) {
                uniform_range(out, lo_s, std::string(digits, '9'));
                lo_s = "1" + std::string(digits, '0');
                out += " | ";
            }
            uniform_range(out, lo_s, hi_s);
            return;
        }
        const int less = std::max(decimals - 1, 1);
        if (has_min) {
            if (lo < 0) {
                out += "\"-\" (";
                int_range(out, false, 0, true, -lo, decimals, false);
                out += ") | [0] | [1-9] ";
                more_digits(out, 0, decimals - 1);
            } else if (lo == 0) {
                if (top) {
                    out += "[0] | [1-9] ";
                    more_digits(out, 0, less);
                } else {
                    more_digits(out, 1, decimals);
                }
            } else if (lo <= 9) {
                const char c = static_cast<char>('0' + lo);
                const char start = top ? '1' : '0';
                if (c > start) {
                    digit_range(out, start, static_cast<char>(c - 1));
                    out += " ";
                    more_digits(out, 1, less);
                    out += " | ";
                }
                digit_range(out, c, '9');
                out += " ";
                more_digits(out, 0, less);
            } else {
                const std::string lo_s = std::to_string(lo);
                const int len = static_cast<int>(lo_s.size());
                const char c = lo_s[0];
                if (c > '1') {
                    digit_range(out, top ? '1' : '0', static_cast<char>(c - 1));
                    out += " ";
                    more_digits(out, len, less);
                    out += " | ";
                }
                digit_range(out, c, c);
                out += " (";
                int_range(out, true, std::stoll(lo_s.substr(1)), false, 0, less, false);
                out += ")";
                if (c < '9') {
                    out += " | ";
                    digit_range(out, static_cast<char>(c + 1), '9');
                    out += " ";
                    more_digits(out, len - 1, less);
                }
            }
            return;
        }
        if (hi >= 0) {
            if (top) {
                out += "\"-\" [1-9] ";
                more_digits(out, 0, less);
                out += " | ";
            }
            int_range(out, true, 0, true, hi, decimals, true);
        } else {
            out += "\"-\" (";
            int_range(out, true, -hi, false, 0, decimals, false);
            out += ")";
        }
    }

    std::string integer_range(const json& s, const std::string& ptr) {
        auto number = [&](const char* kw) -> long double {
            const json& v = s[kw];
            if (!v.is_number()) bad(ptr + "/" + kw, std::string("'") + kw + "' must be a number, found " + v.dump());
            const long double d = v.is_number_float() ? static_cast<long double>(v.get<double>())
                                  : v.is_number_unsigned() ? static_cast<long double>(v.get<uint64_t>())
                                                           : static_cast<long double>(v.get<int64_t>());
            if (!std::isfinite(static_cast<double>(d)) || std::fabs(d) >= kMaxInt) {
                unsupported(kw, ptr, "integer bounds beyond +-10^15 are not supported");
            }
            return d;
        };
        bool has_lo = false, has_hi = false;
        long double lo = 0, hi = 0;
        auto raise_lo = [&](long double v) {
            lo = has_lo ? std::max(lo, v) : v;
            has_lo = true;
        };
        auto lower_hi = [&](long double v) {
            hi = has_hi ? std::min(hi, v) : v;
            has_hi = true;
        };
        // Draft 4 wrote exclusiveMinimum/exclusiveMaximum as booleans modifying minimum/maximum.
        const bool old_excl_lo = s.contains("exclusiveMinimum") && s["exclusiveMinimum"].is_boolean();
        const bool old_excl_hi = s.contains("exclusiveMaximum") && s["exclusiveMaximum"].is_boolean();
        if (s.contains("minimum")) {
            const long double m = number("minimum");
            raise_lo(old_excl_lo && s["exclusiveMinimum"].get<bool>() ? std::floor(m) + 1 : std::ceil(m));
        }
        if (s.contains("exclusiveMinimum") && !old_excl_lo) raise_lo(std::floor(number("exclusiveMinimum")) + 1);
        if (s.contains("maximum")) {
            const long double m = number("maximum");
            lower_hi(old_excl_hi && s["exclusiveMaximum"].get<bool>() ? std::ceil(m) - 1 : std::floor(m));
        }
        if (s.contains("exclusiveMaximum") && !old_excl_hi) lower_hi(std::ceil(number("exclusiveMaximum")) - 1);
        if (has_lo && has_hi && lo > hi) bad(ptr, "no integer lies between the minimum and the maximum");
        if (!has_lo && !has_hi) {
            return "\"-\"? " + primitive("integral-part");  // only draft-4 boolean flags, no bound
        }
        std::string out;
        int_range(out, has_lo, static_cast<int64_t>(lo), has_hi, static_cast<int64_t>(hi));
        return out;
    }

    const json& root_;
    std::string what_;
    std::map<std::string, std::string> rules_;          // name -> body, printed in name order
    std::map<std::string, std::string> ref_rules_;      // $ref -> its rule
    std::map<std::string, std::string> resolving_;      // $ref being converted -> the name it will get
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, std::string_view source) {
    const std::string what = source == "json schema" ? std::string("json schema")
                                                     : "json schema '" + std::string(source) + "'";
    SchemaConverter conv(schema, what);
    return conv.run();
}

ConstraintGbnf constraint_gbnf(const std::string& grammar_file, const std::string& json_schema_file,
                               const std::string& regex) {
    const int n = !grammar_file.empty() + !json_schema_file.empty() + !regex.empty();
    if (n > 1) fail("give one of --grammar-file, --json-schema and --regex, not %d of them", n);
    ConstraintGbnf c;
    if (!grammar_file.empty()) {
        c.source = grammar_file;
        c.gbnf = read_input(grammar_file, "grammar", "a GBNF file, as llama.cpp's grammars/*.gbnf");
    } else if (!json_schema_file.empty()) {
        c.source = json_schema_file;
        const std::string text = read_input(json_schema_file, "JSON schema", "a JSON Schema file");
        const JsonNesting depth = json_nesting(text);
        if (depth.max_depth > 2 * static_cast<size_t>(kMaxSchemaDepth)) {
            fail("json schema '%s': nests %zu levels deep at byte %zu, more than the %d supported",
                 json_schema_file.c_str(), depth.max_depth, depth.at, 2 * kMaxSchemaDepth);
        }
        nlohmann::ordered_json schema;
        try {
            schema = nlohmann::ordered_json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            std::string what = e.what();
            for (char& ch : what)
                if (ch == '\n') ch = ' ';
            fail("json schema '%s': not JSON: %s (hint: check the file is a JSON Schema object)",
                 json_schema_file.c_str(), what.c_str());
        }
        c.gbnf = json_schema_to_gbnf(schema, json_schema_file);
    } else if (!regex.empty()) {
        c.source = "--regex";
        c.gbnf = regex_to_gbnf(regex, "--regex");
    }
    return c;
}

std::string json_object_gbnf() { return json_schema_to_gbnf(nlohmann::ordered_json{{"type", "object"}}, "json_object"); }

}  // namespace llmforge
