// JSON Schema -> GBNF against llama.cpp's converter.
//
// kLlamaCases are the cases of llama.cpp's tests/test-json-schema-to-grammar.cpp (the Feb-2025
// checkout at /work/llama.cpp), ported as data: the schema and llama.cpp's expected grammar, or
// expected failure. Our output must equal the expected text after the normalisation llama.cpp's
// own test applies (leading indentation of each line and surrounding blank space dropped).
// kDivergences lists the cases where we print something else on purpose, each with a text that
// llama.cpp's grammar accepts although it is not valid JSON (or not valid for the schema); our
// grammar rejects it. kReferenceCases are further schemas whose expected grammars were produced
// by llama.cpp's own C++ converter (json_schema_to_grammar from common/libcommon.a of that
// checkout) and pinned here.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/error.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

using namespace llmforge;
using json = nlohmann::ordered_json;

namespace {

struct LlamaCase {
    bool success;
    const char* name;
    const char* schema;
    const char* expected;
};

const LlamaCase kLlamaCases[] = {
    {true, "min 0",
     R"JS({"type": "integer", "minimum": 0})JS",
     R"GBNF(root ::= ([0] | [1-9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 1",
     R"JS({"type": "integer", "minimum": 1})JS",
     R"GBNF(root ::= ([1-9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 3",
     R"JS({"type": "integer", "minimum": 3})JS",
     R"GBNF(root ::= ([1-2] [0-9]{1,15} | [3-9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 9",
     R"JS({"type": "integer", "minimum": 9})JS",
     R"GBNF(root ::= ([1-8] [0-9]{1,15} | [9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 10",
     R"JS({"type": "integer", "minimum": 10})JS",
     R"GBNF(root ::= ([1] ([0-9]{1,15}) | [2-9] [0-9]{1,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 25",
     R"JS({"type": "integer", "minimum": 25})JS",
     R"GBNF(root ::= ([1] [0-9]{2,15} | [2] ([0-4] [0-9]{1,14} | [5-9] [0-9]{0,14}) | [3-9] [0-9]{1,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "max 30",
     R"JS({"type": "integer", "maximum": 30})JS",
     R"GBNF(root ::= ("-" [1-9] [0-9]{0,15} | [0-9] | ([1-2] [0-9] | [3] "0")) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min -5",
     R"JS({"type": "integer", "minimum": -5})JS",
     R"GBNF(root ::= ("-" ([0-5]) | [0] | [1-9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min -123",
     R"JS({"type": "integer", "minimum": -123})JS",
     R"GBNF(root ::= ("-" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] [0-3])) | [0] | [1-9] [0-9]{0,15}) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "max -5",
     R"JS({"type": "integer", "maximum": -5})JS",
     R"GBNF(root ::= ("-" ([0-4] [0-9]{1,15} | [5-9] [0-9]{0,15})) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "max 1",
     R"JS({"type": "integer", "maximum": 1})JS",
     R"GBNF(root ::= ("-" [1-9] [0-9]{0,15} | [0-1]) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "max 100",
     R"JS({"type": "integer", "maximum": 100})JS",
     R"GBNF(root ::= ("-" [1-9] [0-9]{0,15} | [0-9] | ([1-8] [0-9] | [9] [0-9]) | "100") space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 0 max 23",
     R"JS({"type": "integer", "minimum": 0, "maximum": 23})JS",
     R"GBNF(root ::= ([0-9] | ([1] [0-9] | [2] [0-3])) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 15 max 300",
     R"JS({"type": "integer", "minimum": 15, "maximum": 300})JS",
     R"GBNF(root ::= (([1] ([5-9]) | [2-9] [0-9]) | ([1-2] [0-9]{2} | [3] "00")) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min 5 max 30",
     R"JS({"type": "integer", "minimum": 5, "maximum": 30})JS",
     R"GBNF(root ::= ([5-9] | ([1-2] [0-9] | [3] "0")) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min -123 max 42",
     R"JS({"type": "integer", "minimum": -123, "maximum": 42})JS",
     R"GBNF(root ::= ("-" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] [0-3])) | [0-9] | ([1-3] [0-9] | [4] [0-2])) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min -10 max 10",
     R"JS({"type": "integer", "minimum": -10, "maximum": 10})JS",
     R"GBNF(root ::= ("-" ([0-9] | "10") | [0-9] | "10") space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {false, "unknown type",
     R"JS({"type": "kaboom"})JS",
     R"GBNF()GBNF"},
    {false, "invalid type",
     R"JS({"type": 123})JS",
     R"GBNF()GBNF"},
    {true, "empty schema (object)",
     R"JS({})JS",
     R"GBNF(array ::= "[" space ( value ("," space value)* )? "]" space
boolean ::= ("true" | "false") space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
null ::= "null" space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
root ::= object
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null)GBNF"},
    {true, "exotic formats",
     R"JS({"items": [{"format": "date"}, {"format": "uuid"}, {"format": "time"}, {"format": "date-time"}]})JS",
     R"GBNF(date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )
date-string ::= "\"" date "\"" space
date-time ::= date "T" time
date-time-string ::= "\"" date-time "\"" space
root ::= "[" space tuple-0 "," space uuid "," space tuple-2 "," space tuple-3 "]" space
space ::= | " " | "\n" [ \t]{0,20}
time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
time-string ::= "\"" time "\"" space
tuple-0 ::= date-string
tuple-2 ::= time-string
tuple-3 ::= date-time-string
uuid ::= "\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space)GBNF"},
    {true, "string",
     R"JS({"type": "string"})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char* "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string w/ min length 1",
     R"JS({"type": "string", "minLength": 1})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char+ "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string w/ min length 3",
     R"JS({"type": "string", "minLength": 3})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char{3,} "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string w/ max length",
     R"JS({"type": "string", "maxLength": 3})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char{0,3} "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string w/ min & max length",
     R"JS({"type": "string", "minLength": 1, "maxLength": 4})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char{1,4} "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "boolean",
     R"JS({"type": "boolean"})JS",
     R"GBNF(root ::= ("true" | "false") space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "integer",
     R"JS({"type": "integer"})JS",
     R"GBNF(integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= ("-"? integral-part) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string const",
     R"JS({"const": "foo"})JS",
     R"GBNF(root ::= "\"foo\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "non-string const",
     R"JS({"const": 123})JS",
     R"GBNF(root ::= "123" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "non-string enum",
     R"JS({"enum": ["red", "amber", "green", null, 42, ["foo"]]})JS",
     R"GBNF(root ::= ("\"red\"" | "\"amber\"" | "\"green\"" | "null" | "42" | "[\"foo\"]") space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "string array",
     R"JS({"type": "array", "prefixItems": {"type": "string"}})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "[" space (string ("," space string)*)? "]" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "nullable string array",
     R"JS({"type": ["array", "null"], "prefixItems": {"type": "string"}})JS",
     R"GBNF(alternative-0 ::= "[" space (string ("," space string)*)? "]" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
null ::= "null" space
root ::= alternative-0 | null
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "tuple1",
     R"JS({"prefixItems": [{"type": "string"}]})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "[" space string "]" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "tuple2",
     R"JS({"prefixItems": [{"type": "string"}, {"type": "number"}]})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "[" space string "," space number "]" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "number",
     R"JS({"type": "number"})JS",
     R"GBNF(decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "minItems",
     R"JS({"items": {"type": "boolean"}, "minItems": 2})JS",
     R"GBNF(boolean ::= ("true" | "false") space
root ::= "[" space boolean ("," space boolean)+ "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "maxItems 1",
     R"JS({"items": {"type": "boolean"}, "maxItems": 1})JS",
     R"GBNF(boolean ::= ("true" | "false") space
root ::= "[" space boolean? "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "maxItems 2",
     R"JS({"items": {"type": "boolean"}, "maxItems": 2})JS",
     R"GBNF(boolean ::= ("true" | "false") space
root ::= "[" space (boolean ("," space boolean)?)? "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min + maxItems",
     R"JS({"items": {"type": ["number", "integer"]}, "minItems": 3, "maxItems": 5})JS",
     R"GBNF(decimal-part ::= [0-9]{1,16}
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
item ::= number | integer
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "[" space item ("," space item){2,4} "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min + max items with min + max values across zero",
     R"JS({"items": {"type": "integer", "minimum": -12, "maximum": 207}, "minItems": 3, "maxItems": 5})JS",
     R"GBNF(item ::= ("-" ([0-9] | "1" [0-2]) | [0-9] | ([1-8] [0-9] | [9] [0-9]) | ([1] [0-9]{2} | [2] "0" [0-7])) space
root ::= "[" space item ("," space item){2,4} "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "min + max items with min + max values",
     R"JS({"items": {"type": "integer", "minimum": 12, "maximum": 207}, "minItems": 3, "maxItems": 5})JS",
     R"GBNF(item ::= (([1] ([2-9]) | [2-9] [0-9]) | ([1] [0-9]{2} | [2] "0" [0-7])) space
root ::= "[" space item ("," space item){2,4} "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "simple regexp",
     R"JS({"type": "string", "pattern": "^abc?d*efg+(hij)?kl$"})JS",
     R"GBNF(root ::= "\"" ("ab" "c"? "d"* "ef" "g"+ ("hij")? "kl") "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "regexp escapes",
     R"JS({"type": "string", "pattern": "^\\[\\]\\{\\}\\(\\)\\|\\+\\*\\?$"})JS",
     R"GBNF(root ::= "\"" ("[]{}()|+*?") "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "regexp quote",
     R"JS({"type": "string", "pattern": "^\"$"})JS",
     R"GBNF(root ::= "\"" ("\"") "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "regexp with top-level alternation",
     R"JS({"type": "string", "pattern": "^A|B|C|D$"})JS",
     R"GBNF(root ::= "\"" ("A" | "B" | "C" | "D") "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "regexp",
     R"JS({"type": "string", "pattern": "^(\\([0-9]{1,3}\\))?[0-9]{3}-[0-9]{4} a{3,5}nd...$"})JS",
     R"GBNF(dot ::= [^\x0A\x0D]
root ::= "\"" (("(" root-1{1,3} ")")? root-1{3,3} "-" root-1{4,4} " " "a"{3,5} "nd" dot dot dot) "\"" space
root-1 ::= [0-9]
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "required props in original order",
     R"JS({"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "string"}, "a": {"type": "string"}}, "required": ["a", "b", "c"], "additionalProperties": false, "definitions": {}})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space string
b-kv ::= "\"b\"" space ":" space string
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "{" space b-kv "," space c-kv "," space a-kv "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "1 optional prop",
     R"JS({"properties": {"a": {"type": "string"}}, "additionalProperties": false})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "{" space  (a-kv )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "N optional props",
     R"JS({"properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}, "additionalProperties": false})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space string
a-rest ::= ( "," space b-kv )? b-rest
b-kv ::= "\"b\"" space ":" space string
b-rest ::= ( "," space c-kv )?
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "{" space  (a-kv a-rest | b-kv b-rest | c-kv )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "required + optional props each in original order",
     R"JS({"properties": {"b": {"type": "string"}, "a": {"type": "string"}, "d": {"type": "string"}, "c": {"type": "string"}}, "required": ["a", "b"], "additionalProperties": false})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space string
b-kv ::= "\"b\"" space ":" space string
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
d-kv ::= "\"d\"" space ":" space string
d-rest ::= ( "," space c-kv )?
root ::= "{" space b-kv "," space a-kv ( "," space ( d-kv d-rest | c-kv ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "additional props",
     R"JS({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}})JS",
     R"GBNF(additional-kv ::= string ":" space additional-value
additional-value ::= "[" space (number ("," space number)*)? "]" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space  (additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "additional props (true)",
     R"JS({"type": "object", "additionalProperties": true})JS",
     R"GBNF(array ::= "[" space ( value ("," space value)* )? "]" space
boolean ::= ("true" | "false") space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
null ::= "null" space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
root ::= object
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null)GBNF"},
    {true, "additional props (implicit)",
     R"JS({"type": "object"})JS",
     R"GBNF(array ::= "[" space ( value ("," space value)* )? "]" space
boolean ::= ("true" | "false") space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
null ::= "null" space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
root ::= object
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null)GBNF"},
    {true, "empty w/o additional props",
     R"JS({"type": "object", "additionalProperties": false})JS",
     R"GBNF(root ::= "{" space  "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "required + additional props",
     R"JS({"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"], "additionalProperties": {"type": "string"}})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space number
additional-k ::= ["] ( [a] char+ | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space a-kv ( "," space ( additional-kv ( "," space additional-kv )* ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "optional + additional props",
     R"JS({"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": {"type": "number"}})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space number
a-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] char+ | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space number
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space  (a-kv a-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "required + optional + additional props",
     R"JS({"type": "object", "properties": {"and": {"type": "number"}, "also": {"type": "number"}}, "required": ["and"], "additionalProperties": {"type": "number"}})JS",
     R"GBNF(additional-k ::= ["] ( [a] ([l] ([s] ([o] char+ | [^"o] char*) | [^"s] char*) | [n] ([d] char+ | [^"d] char*) | [^"ln] char*) | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space number
also-kv ::= "\"also\"" space ":" space number
also-rest ::= ( "," space additional-kv )*
and-kv ::= "\"and\"" space ":" space number
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space and-kv ( "," space ( also-kv also-rest | additional-kv ( "," space additional-kv )* ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "optional props with empty name",
     R"JS({"properties": {"": {"type": "integer"}, "a": {"type": "integer"}}, "additionalProperties": {"type": "integer"}})JS",
     R"GBNF(-kv ::= "\"\"" space ":" space root
-rest ::= ( "," space a-kv )? a-rest
a-kv ::= "\"a\"" space ":" space integer
a-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] char+ | [^"a] char* ) ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= ("-"? integral-part) space
root0 ::= "{" space  (-kv -rest | a-kv a-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "optional props with nested names",
     R"JS({"properties": {"a": {"type": "integer"}, "aa": {"type": "integer"}}, "additionalProperties": {"type": "integer"}})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space integer
a-rest ::= ( "," space aa-kv )? aa-rest
aa-kv ::= "\"aa\"" space ":" space integer
aa-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] ([a] char+ | [^"a] char*) | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= "{" space  (a-kv a-rest | aa-kv aa-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "optional props with common prefix",
     R"JS({"properties": {"ab": {"type": "integer"}, "ac": {"type": "integer"}}, "additionalProperties": {"type": "integer"}})JS",
     R"GBNF(ab-kv ::= "\"ab\"" space ":" space integer
ab-rest ::= ( "," space ac-kv )? ac-rest
ac-kv ::= "\"ac\"" space ":" space integer
ac-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] ([b] char+ | [c] char+ | [^"bc] char*) | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= "{" space  (ab-kv ab-rest | ac-kv ac-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "top-level $ref",
     R"JS({"$ref": "#/definitions/foo", "definitions": {"foo": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}}})JS",
     R"GBNF(char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
foo ::= "{" space foo-a-kv "}" space
foo-a-kv ::= "\"a\"" space ":" space string
root ::= foo
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF"},
    {true, "anyOf",
     R"JS({"anyOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}], "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}}, "type": "object"})JS",
     R"GBNF(alternative-0 ::= foo
alternative-1 ::= bar
bar ::= "{" space  (bar-b-kv )? "}" space
bar-b-kv ::= "\"b\"" space ":" space number
decimal-part ::= [0-9]{1,16}
foo ::= "{" space  (foo-a-kv )? "}" space
foo-a-kv ::= "\"a\"" space ":" space number
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= alternative-0 | alternative-1
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "mix of allOf, anyOf and $ref (similar to https://json.schemastore.org/tsconfig.json)",
     R"JS({"allOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}, {"anyOf": [{"$ref": "#/definitions/baz"}, {"$ref": "#/definitions/bam"}]}], "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}, "bam": {"properties": {"c": {"type": "number"}}}, "baz": {"properties": {"d": {"type": "number"}}}}, "type": "object"})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space number
b-kv ::= "\"b\"" space ":" space number
c-kv ::= "\"c\"" space ":" space number
d-kv ::= "\"d\"" space ":" space number
d-rest ::= ( "," space c-kv )?
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space a-kv "," space b-kv ( "," space ( d-kv d-rest | c-kv ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {true, "conflicting names",
     R"JS({"type": "object", "properties": {"number": {"type": "object", "properties": {"number": {"type": "object", "properties": {"root": {"type": "number"}}, "required": ["root"], "additionalProperties": false}}, "required": ["number"], "additionalProperties": false}}, "required": ["number"], "additionalProperties": false, "definitions": {}})JS",
     R"GBNF(decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
number- ::= "{" space number-number-kv "}" space
number-kv ::= "\"number\"" space ":" space number-
number-number ::= "{" space number-number-root-kv "}" space
number-number-kv ::= "\"number\"" space ":" space number-number
number-number-root-kv ::= "\"root\"" space ":" space number
root ::= "{" space number-kv "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
};

struct Divergence {
    const char* name;
    const char* ours;      // our grammar for the case's schema
    const char* evidence;  // accepted by llama.cpp's expected grammar, wrong for the schema
    const char* why;
};

const Divergence kDivergences[] = {
    {"regexp quote",
     R"GBNF(root ::= "\"" ("\\\"") "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT(""")TXT", "a quote in the pattern must be escaped inside the JSON string"},
    {"regexp",
     R"GBNF(dot ::= [^"\\\x00-\x1F\u2028\u2029] | "\\" ["\\/bft]
root ::= "\"" (("(" root-1{1,3} ")")? root-1{3,3} "-" root-1{4,4} " " "a"{3,5} "nd" dot dot dot) "\"" space
root-1 ::= [0-9]
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT("123-4567 aaand"ab")TXT", "`.` must not produce a raw '\"' inside the JSON string"},
    {"required + additional props",
     R"GBNF(a-kv ::= "\"a\"" space ":" space number
additional-k ::= ["] ( [a] char+ | [^"a\\\x7F\x00-\x1F] char* )? ["] space
additional-kv ::= additional-k ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space a-kv ( "," space ( additional-kv ( "," space additional-kv )* ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space)GBNF",
     R"TXT({"a":1,"\":"x"})TXT", "a key may not start with a raw backslash"},
    {"optional + additional props",
     R"GBNF(a-kv ::= "\"a\"" space ":" space number
a-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] char+ | [^"a\\\x7F\x00-\x1F] char* )? ["] space
additional-kv ::= additional-k ":" space number
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space  (a-kv a-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT({"\":1})TXT", "a key may not start with a raw backslash"},
    {"required + optional + additional props",
     R"GBNF(additional-k ::= ["] ( [a] ([l] ([s] ([o] char+ | [^"o\\\x7F\x00-\x1F] char*) | [^"s\\\x7F\x00-\x1F] char*) | [n] ([d] char+ | [^"d\\\x7F\x00-\x1F] char*) | [^"ln\\\x7F\x00-\x1F] char*) | [^"a\\\x7F\x00-\x1F] char* )? ["] space
additional-kv ::= additional-k ":" space number
also-kv ::= "\"also\"" space ":" space number
also-rest ::= ( "," space additional-kv )*
and-kv ::= "\"and\"" space ":" space number
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space and-kv ( "," space ( also-kv also-rest | additional-kv ( "," space additional-kv )* ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT({"and":1,"\":2})TXT", "a key may not start with a raw backslash"},
    {"optional props with empty name",
     R"GBNF(-kv ::= "\"\"" space ":" space integer
-rest ::= ( "," space a-kv )? a-rest
a-kv ::= "\"a\"" space ":" space integer
a-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] char+ | [^"a\\\x7F\x00-\x1F] char* ) ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= "{" space  (-kv -rest | a-kv a-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT(5)TXT", "the root rule must be the object, not the type of property \"\""},
    {"optional props with nested names",
     R"GBNF(a-kv ::= "\"a\"" space ":" space integer
a-rest ::= ( "," space aa-kv )? aa-rest
aa-kv ::= "\"aa\"" space ":" space integer
aa-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] ([a] char+ | [^"a\\\x7F\x00-\x1F] char*) | [^"a\\\x7F\x00-\x1F] char* )? ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= "{" space  (a-kv a-rest | aa-kv aa-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT({"\":1})TXT", "a key may not start with a raw backslash"},
    {"optional props with common prefix",
     R"GBNF(ab-kv ::= "\"ab\"" space ":" space integer
ab-rest ::= ( "," space ac-kv )? ac-rest
ac-kv ::= "\"ac\"" space ":" space integer
ac-rest ::= ( "," space additional-kv )*
additional-k ::= ["] ( [a] ([b] char+ | [c] char+ | [^"bc\\\x7F\x00-\x1F] char*) | [^"a\\\x7F\x00-\x1F] char* )? ["] space
additional-kv ::= additional-k ":" space integer
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
root ::= "{" space  (ab-kv ab-rest | ac-kv ac-rest | additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF",
     R"TXT({"\":1})TXT", "a key may not start with a raw backslash"},
};

struct ReferenceCase {
    const char* name;
    const char* schema;
    const char* expected;
};

const ReferenceCase kReferenceCases[] = {
    {"nested object with $defs",
     R"JS({"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 120}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}, "address": {"$ref": "#/$defs/address"}}, "required": ["name", "age"], "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city"]}}})JS",
     R"GBNF(address ::= "{" space address-city-kv ( "," space ( address-zip-kv ) )? "}" space
address-city-kv ::= "\"city\"" space ":" space string
address-kv ::= "\"address\"" space ":" space address0
address-zip ::= "\"" (address-zip-1{5,5}) "\"" space
address-zip-1 ::= [0-9]
address-zip-kv ::= "\"zip\"" space ":" space address-zip
address0 ::= address
age ::= ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] "0")) space
age-kv ::= "\"age\"" space ":" space age
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
name ::= "\"" char{1,20} "\"" space
name-kv ::= "\"name\"" space ":" space name
root ::= "{" space name-kv "," space age-kv ( "," space ( tags-kv tags-rest | address-kv ) )? "}" space
space ::= | " " | "\n" [ \t]{0,20}
string ::= "\"" char* "\"" space
tags ::= "[" space (string ("," space string){0,2})? "]" space
tags-kv ::= "\"tags\"" space ":" space tags
tags-rest ::= ( "," space address-kv )?)GBNF"},
    {"string enum with type",
     R"JS({"type": "string", "enum": ["red", "green", "blue"]})JS",
     R"GBNF(root ::= ("\"red\"" | "\"green\"" | "\"blue\"") space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"anyOf primitives",
     R"JS({"anyOf": [{"type": "integer"}, {"type": "null"}, {"type": "boolean"}]})JS",
     R"GBNF(boolean ::= ("true" | "false") space
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
null ::= "null" space
root ::= integer | null | boolean
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"prefixItems tuple with exclusive bounds",
     R"JS({"type": "array", "prefixItems": [{"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, {"const": "x"}]})JS",
     R"GBNF(root ::= "[" space tuple-0 "," space tuple-1 "]" space
space ::= | " " | "\n" [ \t]{0,20}
tuple-0 ::= ([1-9]) space
tuple-1 ::= "\"x\"" space)GBNF"},
    {"oneOf objects",
     R"JS({"oneOf": [{"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "number"}}, "required": ["kind", "x"]}, {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]}]})JS",
     R"GBNF(alternative-0 ::= "{" space alternative-0-kind-kv "," space alternative-0-x-kv "}" space
alternative-0-kind ::= "\"a\"" space
alternative-0-kind-kv ::= "\"kind\"" space ":" space alternative-0-kind
alternative-0-x-kv ::= "\"x\"" space ":" space number
alternative-1 ::= "{" space alternative-1-kind-kv "}" space
alternative-1-kind ::= "\"b\"" space
alternative-1-kind-kv ::= "\"kind\"" space ":" space alternative-1-kind
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= alternative-0 | alternative-1
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"recursive $ref",
     R"JS({"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"]}}, "$ref": "#/$defs/node"})JS",
     R"GBNF(integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
node ::= "{" space node-value-kv ( "," space ( node-children-kv ) )? "}" space
node-children ::= "[" space (node-children-item ("," space node-children-item)*)? "]" space
node-children-item ::= node
node-children-kv ::= "\"children\"" space ":" space node-children
node-value-kv ::= "\"value\"" space ":" space integer
root ::= node
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"date-time and uuid properties",
     R"JS({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "id": {"type": "string", "format": "uuid"}}, "required": ["when", "id"]})JS",
     R"GBNF(date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )
date-time ::= date "T" time
date-time-string ::= "\"" date-time "\"" space
id-kv ::= "\"id\"" space ":" space uuid
root ::= "{" space when-kv "," space id-kv "}" space
space ::= | " " | "\n" [ \t]{0,20}
time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
uuid ::= "\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space
when ::= date-time-string
when-kv ::= "\"when\"" space ":" space when)GBNF"},
    {"negative integer range",
     R"JS({"type": "integer", "minimum": -1000, "maximum": -10})JS",
     R"GBNF(root ::= ("-" (([1-8] [0-9] | [9] [0-9]) | ([1-8] [0-9]{2} | [9] ([0-8] [0-9] | [9] [0-9])) | "1000")) space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"nullable string with maxLength",
     R"JS({"type": ["string", "null"], "maxLength": 5})JS",
     R"GBNF(alternative-0 ::= "\"" char{0,5} "\"" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
null ::= "null" space
root ::= alternative-0 | null
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"pattern with group alternation",
     R"JS({"type": "string", "pattern": "^(cat|dog)s?-[a-z]+$"})JS",
     R"GBNF(root ::= "\"" (("cat" | "dog") "s"? "-" [a-z]+) "\"" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"array of enums with minItems and maxItems",
     R"JS({"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 1, "maxItems": 4})JS",
     R"GBNF(item ::= ("1" | "2" | "3") space
root ::= "[" space item ("," space item){0,3} "]" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
    {"annotations are ignored",
     R"JS({"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "T", "description": "d", "type": "object", "properties": {"a": {"type": "boolean", "description": "x", "default": true, "examples": [false]}}, "required": ["a"], "additionalProperties": false})JS",
     R"GBNF(a-kv ::= "\"a\"" space ":" space boolean
boolean ::= ("true" | "false") space
root ::= "{" space a-kv "}" space
space ::= | " " | "\n" [ \t]{0,20})GBNF"},
};

// llama.cpp's trim(): surrounding blank space and each line's leading indentation dropped.
std::string normalise(const std::string& s) {
    std::string out;
    bool line_start = true;
    for (char c : s) {
        if (line_start && (c == ' ' || c == '\t')) continue;
        line_start = c == '\n';
        out += c;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t' || out.back() == '\r')) {
        out.pop_back();
    }
    size_t b = out.find_first_not_of(" \n\r\t");
    return b == std::string::npos ? "" : out.substr(b);
}

const Divergence* divergence(const std::string& name) {
    for (const auto& d : kDivergences)
        if (name == d.name) return &d;
    return nullptr;
}

std::string convert(const char* schema) { return json_schema_to_gbnf(json::parse(schema)); }

bool accepts(const std::string& gbnf, const std::string& text) {
    return grammar_check(*Grammar::parse(gbnf), text).accepted;
}

}  // namespace

TEST(JsonSchema, LlamaCppCases) {
    int checked = 0;
    for (const LlamaCase& c : kLlamaCases) {
        SCOPED_TRACE(c.name);
        if (!c.success) {
            EXPECT_THROW(convert(c.schema), Error);
            ++checked;
            continue;
        }
        std::string got;
        ASSERT_NO_THROW(got = convert(c.schema));
        const Divergence* d = divergence(c.name);
        EXPECT_EQ(normalise(got), normalise(d ? d->ours : c.expected));
        // Every grammar we print loads, and so does llama.cpp's expectation.
        EXPECT_NO_THROW(Grammar::parse(got, "root", c.name));
        EXPECT_NO_THROW(Grammar::parse(c.expected, "root", c.name));
        ++checked;
    }
    EXPECT_EQ(checked, 65);  // every case of llama.cpp's test file
    EXPECT_EQ(sizeof(kDivergences) / sizeof(kDivergences[0]), 8u);
}

TEST(JsonSchema, DivergencesFixRealDefects) {
    for (const Divergence& d : kDivergences) {
        SCOPED_TRACE(std::string(d.name) + ": " + d.why);
        const LlamaCase* c = nullptr;
        for (const auto& l : kLlamaCases)
            if (std::string(l.name) == d.name) c = &l;
        ASSERT_NE(c, nullptr);
        const std::string evidence = d.evidence;
        // llama.cpp's grammar takes the text...
        EXPECT_TRUE(accepts(c->expected, evidence));
        // ...which is not JSON, or (the empty-name case) not an object as the schema demands.
        if (json::accept(evidence)) {
            EXPECT_FALSE(json::parse(evidence).is_object());
        }
        // Ours refuses it.
        EXPECT_FALSE(accepts(d.ours, evidence));
    }
    // And ours still accepts the valid texts around those defects.
    EXPECT_TRUE(accepts(kDivergences[0].ours, R"("\"")"));
    EXPECT_TRUE(accepts(kDivergences[1].ours, R"("123-4567 aaand\"ab")"));
    EXPECT_TRUE(accepts(kDivergences[1].ours, R"("(12)123-4567 aaaaand\\\t\/")"));
    EXPECT_FALSE(accepts(kDivergences[1].ours, "\"123-4567 aaand\nab\""));
    EXPECT_TRUE(accepts(kDivergences[3].ours, R"({"a":1, "b": 2})"));  // declared properties first, as llama.cpp
    EXPECT_TRUE(accepts(kDivergences[3].ours, R"({"a": 1, "ab": 2, "x\"y": 3})"));
    EXPECT_TRUE(accepts(kDivergences[5].ours, R"({"": 1, "a": 2, "b": 3})"));
}

TEST(JsonSchema, LlamaCppReferenceConverterCases) {
    for (const ReferenceCase& c : kReferenceCases) {
        SCOPED_TRACE(c.name);
        std::string got;
        ASSERT_NO_THROW(got = convert(c.schema));
        EXPECT_EQ(normalise(got), normalise(c.expected));
        EXPECT_NO_THROW(Grammar::parse(got, "root", c.name));
    }
}

namespace {

// The one-line message of the Error converting `schema` throws ("" when it does not throw).
std::string error_of(const std::string& schema, const std::string& source = "json schema") {
    try {
        json_schema_to_gbnf(json::parse(schema), source);
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
        return e.what();
    }
    return "";
}

}  // namespace

TEST(JsonSchema, UnsupportedKeywordsNameKeywordAndPointer) {
    struct Bad {
        const char* schema;
        const char* keyword;
        const char* pointer;
    };
    const Bad cases[] = {
        {R"({"type":"object","properties":{"x":{"type":"object","patternProperties":{"^a":{}}}}})",
         "patternProperties", "#/properties/x"},
        {R"({"type":"number","minimum":0})", "minimum", "#"},
        {R"({"type":"integer","multipleOf":3})", "multipleOf", "#"},
        {R"({"type":"array","items":{"type":"string"},"uniqueItems":true})", "uniqueItems", "#"},
        {R"({"type":"array","items":{"type":"string"},"contains":{"const":"a"}})", "contains", "#"},
        {R"({"type":"string","pattern":"^a+$","maxLength":3})", "maxLength", "#"},
        {R"({"type":"object","properties":{"a":{"type":"string"}},"minProperties":1})", "minProperties", "#"},
        {R"({"type":"object","properties":{"a":{"type":"string"}},"required":["b"]})", "required", "#"},
        {R"({"type":"object","required":["a"]})", "required", "#"},
        {R"({"not":{"type":"string"}})", "not", "#"},
        {R"({"$defs":{"a/b":{"type":"string","if":{"minLength":1}}},"$ref":"#/$defs/a~1b"})", "if", "#/$defs/a~1b"},
        {R"({"anyOf":[{"type":"string"}],"oneOf":[{"type":"null"}]})", "anyOf", "#"},
        {R"({"anyOf":[{"type":"string"},{"type":"integer"}],"type":"string"})", "type", "#"},
        {R"({"properties":{"a":{"$ref":"#/$defs/x","maxLength":2}},"$defs":{"x":{"type":"string"}}})", "maxLength",
         "#/properties/a"},
        {R"({"type":"string","format":"date","minLength":2})", "minLength", "#"},
        {R"({"minLength":3})", "minLength", "#"},
        {R"({"type":"array","items":{"type":"integer"},"maxItems":1000000})", "maxItems", "#"},
        {R"({"type":"integer","minimum":1e300})", "minimum", "#"},
        {R"({"type":"array","prefixItems":[{"type":"string"}],"minItems":2})", "minItems", "#"},
        {R"({"allOf":[{"properties":{"a":{"type":"string"}},"additionalProperties":false},{"properties":{"b":{}}}]})",
         "additionalProperties", "#/allOf/0"},
    };
    for (const Bad& b : cases) {
        SCOPED_TRACE(b.schema);
        const std::string msg = error_of(b.schema, "tool get_weather");
        EXPECT_NE(msg.find(std::string("json schema 'tool get_weather': unsupported keyword '") + b.keyword + "' at " +
                           b.pointer + " "),
                  std::string::npos)
            << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

TEST(JsonSchema, AnnotationsAndVacuousKeywordsAreAccepted) {
    // Keywords of other types than the one produced do not change what is valid.
    EXPECT_EQ(error_of(R"({"type":"string","minimum":3,"items":{"type":"string"},"required":["x"]})"), "");
    EXPECT_EQ(error_of(R"({"type":["string","null"],"maxLength":5})"), "");
    EXPECT_EQ(error_of(R"({"type":"boolean","title":"t","description":"d","default":true,"examples":[true],
                          "$comment":"c","deprecated":false,"readOnly":true})"),
              "");
    // Non-standard keywords are ignored by validators too.
    EXPECT_EQ(error_of(R"({"type":"string","x-internal":{"a":1}})"), "");
    // format is an annotation unless it is one the grammar enforces.
    EXPECT_EQ(error_of(R"({"type":"string","format":"email"})"), "");
}

TEST(JsonSchema, BadSchemasAreOneLineErrors) {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"$ref":"https://example.com/s.json#/a"})", "remote or relative $ref"},
        {R"({"$ref":"other.json"})", "remote or relative $ref"},
        {R"({"$ref":"#/$defs/missing"})", "does not resolve"},
        {R"({"type":"integer","minimum":5,"maximum":4})", "no integer"},
        {R"({"type":"string","minLength":5,"maxLength":4})", "maxLength is below minLength"},
        {R"({"type":"array","items":{},"minItems":-1})", "non-negative integer"},
        {R"({"type":"string","pattern":"^(?=a)b$"})", "lookahead"},
        {R"({"type":"string","pattern":"^(a)\\1$"})", "backreference"},
        {R"({"type":"string","enum":[1,2]})", "no value of 'enum'"},
        {R"({"type":[]})", "empty type list"},
        {R"({"anyOf":[]})", "non-empty array"},
        {R"([1,2])", "expected a schema"},
        {R"({"properties":{"a":false}})", "accepts nothing"},
    };
    for (const auto& [schema, needle] : cases) {
        SCOPED_TRACE(schema);
        const std::string msg = error_of(schema);
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    // A pattern error names the pointer and the regex offset.
    const std::string msg = error_of(R"({"properties":{"p":{"type":"string","pattern":"^ab(?<=c)$"}}})");
    EXPECT_NE(msg.find("#/properties/p/pattern"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at offset 3"), std::string::npos) << msg;
}

TEST(JsonSchema, IntegerRangesMatchArithmetic) {
    // The digit-range construction against plain comparison, for every n in a window.
    const std::pair<int, int> ranges[] = {{0, 23},    {15, 300},  {-123, 42}, {-10, 10}, {5, 30},
                                          {-1000, -10}, {7, 7},   {99, 1001}, {-5, -5},  {0, 0}};
    for (const auto& [lo, hi] : ranges) {
        SCOPED_TRACE(std::to_string(lo) + ".." + std::to_string(hi));
        json s = {{"type", "integer"}, {"minimum", lo}, {"maximum", hi}};
        auto g = Grammar::parse(json_schema_to_gbnf(s));
        for (int n = -1300; n <= 1300; ++n) {
            ASSERT_EQ(grammar_check(*g, std::to_string(n)).accepted, n >= lo && n <= hi) << n;
        }
        EXPECT_FALSE(grammar_check(*g, "01").accepted);
        EXPECT_FALSE(grammar_check(*g, "-0").accepted && lo > 0);
    }
    // One-sided and exclusive bounds (draft 2020-12 numbers and draft 4 booleans).
    const std::pair<const char*, std::pair<int, int>> one_sided[] = {
        {R"({"type":"integer","minimum":25})", {25, 1 << 30}},
        {R"({"type":"integer","minimum":-123})", {-123, 1 << 30}},
        {R"({"type":"integer","maximum":100})", {-(1 << 30), 100}},
        {R"({"type":"integer","maximum":-5})", {-(1 << 30), -5}},
        {R"({"type":"integer","exclusiveMinimum":3,"exclusiveMaximum":9})", {4, 8}},
        {R"({"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":9.5})", {4, 9}},
        {R"({"type":"integer","minimum":2.5,"maximum":7,"exclusiveMaximum":true})", {3, 6}},
    };
    for (const auto& [schema, r] : one_sided) {
        SCOPED_TRACE(schema);
        auto g = Grammar::parse(convert(schema));
        for (int n = -1300; n <= 1300; ++n) {
            ASSERT_EQ(grammar_check(*g, std::to_string(n)).accepted, n >= r.first && n <= r.second) << n;
        }
    }
}

TEST(JsonSchema, GrammarsAcceptValidAndRejectInvalidJson) {
    struct Case {
        const char* schema;
        std::vector<const char*> valid, invalid;
    };
    const Case cases[] = {
        {R"({"type":"object","properties":{"n":{"type":"string","minLength":2,"maxLength":3},
             "t":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":2}},"required":["n"]})",
         {R"({"n":"ab"})", R"({"n":"abc","t":["a"]})", R"({ "n" : "x\"y", "t" : ["b", "a"] })"},
         {R"({"n":"a"})", R"({"n":"abcd"})", R"({"t":["a"]})", R"({"n":"ab","t":[]})", R"({"n":"ab","t":["a","b","a"]})",
          R"({"n":"ab","z":1})", R"({"n":"ab","t":["c"]})"}},
        {R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
             "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},"$ref":"#/$defs/node"})",
         {R"({"v":1})", R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"},
         {R"({"v":1,"kids":[{}]})", R"({"v":"1"})"}},
        {R"({"anyOf":[{"type":"string","format":"date"},{"type":"string","format":"uuid"},{"type":"null"}]})",
         {R"("2024-02-29")", R"("123e4567-e89b-12d3-a456-426614174000")", "null"},
         {R"("2024-13-01")", R"("123e4567")", "1"}},
        {R"({"type":"string","pattern":"[0-9]{3}"})",  // unanchored: anywhere in the string
         {R"("abc123def")", R"("123")", R"("x\"123\n")"},
         {R"("12a3")", R"("")"}},
        {R"({"type":"string","format":"date-time"})",
         {R"("2024-01-02T03:04:05Z")", R"("2024-01-02T03:04:05.123+01:00")"},
         {R"("2024-01-02 03:04:05Z")"}},
        {R"({"properties":{"c":{"allOf":[{"$ref":"#/$defs/color"}],"default":"red"}},"required":["c"],
             "$defs":{"color":{"type":"string","enum":["red","blue"]}}})",
         {R"({"c":"red"})", R"({"c": "blue"})"},
         {R"({"c":"green"})", R"({})"}},
        {R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"boolean"}]})",
         {"[1, true]"},
         {"[1]", "[true, 1]", "[1, true, 2]"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.schema);
        auto g = Grammar::parse(convert(c.schema));
        for (const char* v : c.valid) EXPECT_TRUE(grammar_check(*g, v).accepted) << v;
        for (const char* v : c.invalid) EXPECT_FALSE(grammar_check(*g, v).accepted) << v;
    }
}

TEST(JsonSchema, JsonObjectGrammar) {
    auto g = Grammar::parse(json_object_gbnf(), "root", "json_object");
    for (const char* v : {"{}", R"({"a": [1, 2.5e3, "x", null, true, {"b": {}}]})", "{ \"k\" : \"\\u00e9\\n\" }"}) {
        EXPECT_TRUE(grammar_check(*g, v).accepted) << v;
    }
    for (const char* v : {"[]", "1", "\"s\"", "{", R"({"a":})", R"({a:1})", "{\"a\":1,}"}) {
        EXPECT_FALSE(grammar_check(*g, v).accepted) << v;
    }
}

TEST(JsonSchema, DeepSchemasAreRefusedNotOverflowed) {
    json s = {{"type", "string"}};
    for (int i = 0; i < 200; ++i) s = json{{"type", "array"}, {"items", s}};
    EXPECT_THROW(json_schema_to_gbnf(s), Error);
    // A $ref cycle that consumes nothing is reported, not looped on.
    EXPECT_THROW(Grammar::parse(json_schema_to_gbnf(json::parse(R"({"$ref":"#"})"))), Error);
}
