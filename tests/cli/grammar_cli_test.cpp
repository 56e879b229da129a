// llmforge grammar check / from-schema / from-regex, and the constraint flags of generate: exit
// codes (0 accepted, 1 rejected with the code-point offset, 2 a bad grammar, schema or regex),
// one line on stderr for each failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "cli_run.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

// Exit code 2 and exactly one stderr line, starting "llmforge:" and containing `needle`.
void expect_exit_2(const CliRun& r, const std::string& needle) {
    EXPECT_EQ(r.rc, 2) << r.err;
    std::istringstream ss(r.err);
    std::string line, only;
    int n = 0;
    while (std::getline(ss, line)) ++n, only = line;
    EXPECT_EQ(n, 1) << r.err;
    EXPECT_EQ(only.rfind("llmforge: ", 0), 0u) << only;
    EXPECT_NE(only.find(needle), std::string::npos) << only;
}

std::string write_temp(const std::string& name, const std::string& text) {
    static const std::string dir = temp_dir();
    const std::string path = dir + "/" + name;
    write_file(path, text);
    return path;
}

const char* kSchema = R"({"type":"object","properties":{"n":{"type":"integer","minimum":1,"maximum":5},
  "s":{"type":"string","maxLength":2}},"required":["n"],"additionalProperties":false})";

}  // namespace

TEST(GrammarCli, CheckAcceptsAndRejectsWithOffset) {
    const std::string schema = write_temp("s.json", kSchema);
    CliRun ok = run_cli_input("grammar check --json-schema " + q(schema), R"({"n": 3, "s": "ab"})");
    EXPECT_EQ(ok.rc, 0) << ok.err;
    EXPECT_EQ(ok.err, "");

    // '7' is code point 6 of {"n": 7}; "é" before it counts as one code point, not two bytes.
    CliRun bad = run_cli_input("grammar check --json-schema " + q(schema), R"({"n": 7})");
    EXPECT_EQ(bad.rc, 1);
    EXPECT_NE(bad.err.find("at code point 6"), std::string::npos) << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
    CliRun bad2 = run_cli_input("grammar check --json-schema " + q(schema), R"({"n": 1, "s": "éé)");
    EXPECT_EQ(bad2.rc, 1);
    EXPECT_NE(bad2.err.find("at code point 17"), std::string::npos) << bad2.err;  // ends early

    // A GBNF file, with another start rule.
    const std::string g = write_temp("ab.gbnf", "root ::= \"a\"+ tail\ntail ::= [bc]\nother ::= \"x\" tail\n");
    EXPECT_EQ(run_cli_input("grammar check -g " + q(g), "aab").rc, 0);
    EXPECT_EQ(run_cli_input("grammar check -g " + q(g), "aab\n").rc, 1);  // the newline is text
    EXPECT_EQ(run_cli_input("grammar check -g " + q(g) + " --root other", "xc").rc, 0);
    // A regex, whole text.
    EXPECT_EQ(run_cli_input("grammar check --regex '[a-c]{2}\\d'", "ab7").rc, 0);
    CliRun re = run_cli_input("grammar check --regex '[a-c]{2}\\d'", "abx");
    EXPECT_EQ(re.rc, 1);
    EXPECT_NE(re.err.find("at code point 2"), std::string::npos) << re.err;
}

TEST(GrammarCli, BadGrammarsSchemasAndRegexesExit2OneLine) {
    expect_exit_2(run_cli_input("grammar check -g " + q(write_temp("syntax.gbnf", "root ::= \"a\"\nx ::= [ab\n")), "a"),
                  "line 2, column");
    expect_exit_2(run_cli_input("grammar check -g " + q(write_temp("undef.gbnf", "root ::= \"a\" missing\n")), "a"),
                  "rule 'missing' is used but never defined");
    expect_exit_2(run_cli_input("grammar check -g " + q(write_temp("left.gbnf", "root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"\n")), "1"),
                  "left-recursive");
    expect_exit_2(run_cli_input("grammar check --json-schema " +
                                    q(write_temp("pp.json", R"({"type":"object","properties":{"a":{"type":"object","patternProperties":{"x":{}}}}})")),
                                "{}"),
                  "unsupported keyword 'patternProperties' at #/properties/a");
    expect_exit_2(run_cli_input("grammar check --json-schema " + q(write_temp("notjson.json", "{\"type\": ")), "{}"),
                  "not JSON");
    expect_exit_2(run_cli_input("grammar check --regex 'ab(?=c)'", "ab"), "lookahead '(?=' is not supported at offset 2");
    expect_exit_2(run_cli_input("grammar check -g /nonexistent/x.gbnf", "a"), "/nonexistent/x.gbnf");
    expect_exit_2(run_cli_input("grammar check", "a"), "give the grammar");
    // The options exclude each other (a usage error: exit 2 too).
    EXPECT_EQ(run_cli_input("grammar check --regex a -g " + q(write_temp("a.gbnf", "root ::= \"a\"\n")), "a").rc, 2);
    // A schema nesting 10,000 levels is refused before it is parsed.
    std::string deep;
    for (int i = 0; i < 10000; ++i) deep += "{\"items\":";
    deep += "{}";
    for (int i = 0; i < 10000; ++i) deep += "}";
    expect_exit_2(run_cli_input("grammar check --json-schema " + q(write_temp("deep.json", deep)), "[]"), "levels deep");
}

TEST(GrammarCli, FromSchemaAndFromRegexPrintLoadableGbnf) {
    const std::string schema = write_temp("s2.json", kSchema);
    CliRun r = run_cli("grammar from-schema " + q(schema));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, json_schema_to_gbnf(nlohmann::ordered_json::parse(kSchema), schema));
    // The printed grammar, used as a GBNF file, accepts what the schema accepts.
    const std::string g = write_temp("from-schema.gbnf", r.out);
    EXPECT_EQ(run_cli_input("grammar check -g " + q(g), R"({ "n" : 5 })").rc, 0);
    EXPECT_EQ(run_cli_input("grammar check -g " + q(g), R"({"n": 0})").rc, 1);

    CliRun rr = run_cli("grammar from-regex 'a[0-9]{2}'");
    ASSERT_EQ(rr.rc, 0) << rr.err;
    EXPECT_EQ(rr.out, "root ::= \"a\" root-1{2,2}\nroot-1 ::= [0-9]\n");
    expect_exit_2(run_cli("grammar from-regex 'a\\1'"), "backreference");
    expect_exit_2(run_cli("grammar from-schema " + q(write_temp("remote.json", R"({"$ref":"https://x.org/s.json"})"))),
                  "remote or relative $ref");
}

TEST(GrammarCli, GenerateFollowsJsonSchemaAndStopsWhenComplete) {
    LF_REQUIRE_ASSET(model, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");
    const std::string schema = write_temp("gen.json", kSchema);
    auto grammar = Grammar::parse(json_schema_to_gbnf(nlohmann::ordered_json::parse(kSchema)));
    for (int seed = 1; seed <= 5; ++seed) {
        CliRun r = run_cli("generate -m " + q(model) + " --tokenizer " + q(tok) + " --json-schema " + q(schema) +
                           " --temp 1 -s " + std::to_string(seed) + " -n 512");
        ASSERT_EQ(r.rc, 0) << r.err;
        ASSERT_FALSE(r.out.empty());
        const std::string text = r.out.substr(0, r.out.size() - 1);  // generate's final newline
        EXPECT_TRUE(grammar_check(*grammar, text).accepted) << text;
        EXPECT_NE(r.err.find("finish: stop"), std::string::npos) << r.err;  // the grammar ended it
        const auto v = nlohmann::json::parse(text);
        EXPECT_GE(v["n"].get<int>(), 1);
        EXPECT_LE(v["n"].get<int>(), 5);
    }
    // A regex constraint, and the flags exclude each other.
    CliRun re = run_cli("generate -m " + q(model) + " --tokenizer " + q(tok) + " --regex 'Once upon a (time|day)[.!]'" +
                        " --temp 1 -s 3 -n 512");
    ASSERT_EQ(re.rc, 0) << re.err;
    EXPECT_TRUE(re.out == "Once upon a time.\n" || re.out == "Once upon a time!\n" || re.out == "Once upon a day.\n" ||
                re.out == "Once upon a day!\n")
        << re.out;
    EXPECT_EQ(run_cli("generate -m " + q(model) + " --json-schema " + q(schema) + " --regex a").rc, 2);
    // In generate a bad constraint is the usual one-line error (exit 1), before the model loads.
    expect_one_line_error(run_cli("generate -m /nonexistent.bin --regex 'a(?!b)'"), "lookahead");
}
