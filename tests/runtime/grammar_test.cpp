// GBNF parser and matcher against llama.cpp: its parser test cases (rule encodings compared
// element by element), its integration cases (grammar, passing and failing strings), its
// build-failure cases, the grammars it ships, and verdicts recorded from llama-gbnf-validator.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "runtime/grammar.h"
#include "runtime/grammar_internal.h"
#include "test_util.h"

using namespace llmforge;
using test::src_path;
using nlohmann::json;

namespace {

json load_json(const std::string& rel) {
    std::ifstream f(src_path(rel));
    EXPECT_TRUE(f.good()) << "missing " << src_path(rel) << " (set LLMFORGE_SRC to the source tree)";
    if (!f.good()) return json::object();
    return json::parse(f);
}

std::string parse_error(std::string_view gbnf, std::string_view root = "root") {
    try {
        Grammar::parse(gbnf, root, "t.gbnf");
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
        const std::string m = e.what();
        EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
        return m;
    }
    return "";
}

// The verdict three ways: grammar_check, the matcher fed code point by code point, and the
// matcher fed byte by byte (partial UTF-8 across calls).
bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    const bool whole = grammar_check(*g, text).accepted;
    GrammarMatcher m(g);
    bool ok = true;
    for (size_t i = 0; i < text.size() && ok; ++i) ok = m.accept(text.substr(i, 1));
    const bool bytewise = ok && m.can_end();
    EXPECT_EQ(whole, bytewise) << "grammar_check and byte-wise matching disagree on '" << text << "'";
    return whole;
}

// The rules of a printed grammar, order aside (parsing it again numbers the rules differently).
std::vector<std::string> rule_lines(const Grammar& g) {
    std::vector<std::string> lines;
    std::istringstream in(g.to_gbnf());
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::sort(lines.begin(), lines.end());
    return lines;
}

const char* type_name(GType t) {
    static const char* n[] = {"END", "ALT", "RULE_REF", "CHAR", "CHAR_NOT", "CHAR_RNG_UPPER", "CHAR_ALT", "CHAR_ANY"};
    return n[static_cast<int>(t)];
}

}  // namespace

TEST(Grammar, LlamaParserEncodings) {
    const json d = load_json("tests/runtime/ref/llama_grammar_cases.json");
    ASSERT_GE(d["parsing"].size(), 10u);
    for (const json& c : d["parsing"]) {
        const std::string gbnf = c["grammar"];
        auto g = Grammar::parse(gbnf, "root", "case");
        const GrammarImpl& im = g->impl();
        for (const auto& [name, id] : c["symbols"].items()) {
            ASSERT_LT(id.get<size_t>(), im.names.size()) << gbnf;
            EXPECT_EQ(im.names[id.get<size_t>()], name) << gbnf;
        }
        EXPECT_EQ(im.names.size(), c["symbols"].size()) << gbnf;
        std::vector<std::pair<std::string, uint32_t>> ours, want;
        for (const auto& r : im.rules)
            for (const GElem& e : r) ours.push_back({type_name(e.type), e.value});
        for (const json& e : c["rules"]) want.push_back({e[0].get<std::string>(), e[1].get<uint32_t>()});
        EXPECT_EQ(ours, want) << gbnf;
        // Printed back and parsed again: the same rules.
        auto again = Grammar::parse(g->to_gbnf(), "root", "printed");
        EXPECT_EQ(rule_lines(*again), rule_lines(*g)) << gbnf;
    }
}

TEST(Grammar, LlamaParserFailures) {
    const json d = load_json("tests/runtime/ref/llama_grammar_cases.json");
    ASSERT_GE(d["parse_failures"].size(), 2u);
    for (const json& c : d["parse_failures"]) EXPECT_NE(parse_error(c.get<std::string>()), "") << c;
}

TEST(Grammar, LlamaIntegrationCases) {
    const json d = load_json("tests/runtime/ref/llama_grammar_cases.json");
    ASSERT_GE(d["integration"].size(), 10u);
    size_t n = 0;
    for (const json& c : d["integration"]) {
        auto g = Grammar::parse(c["grammar"].get<std::string>(), "root", c["desc"].get<std::string>());
        for (const json& s : c["passing"]) {
            EXPECT_TRUE(accepts(g, s)) << c["desc"] << ": should accept '" << s.get<std::string>() << "'";
            ++n;
        }
        for (const json& s : c["failing"]) {
            EXPECT_FALSE(accepts(g, s)) << c["desc"] << ": should reject '" << s.get<std::string>() << "'";
            ++n;
        }
        // The printed grammar accepts the same strings.
        auto printed = Grammar::parse(g->to_gbnf(), "root", "printed");
        for (const json& s : c["passing"]) EXPECT_TRUE(grammar_check(*printed, s.get<std::string>()).accepted) << g->to_gbnf();
        for (const json& s : c["failing"]) EXPECT_FALSE(grammar_check(*printed, s.get<std::string>()).accepted) << g->to_gbnf();
    }
    EXPECT_GE(n, 100u);
}

TEST(Grammar, LlamaBuildFailures) {
    const json d = load_json("tests/runtime/ref/llama_grammar_cases.json");
    ASSERT_EQ(d["build_fails"].size(), 6u);
    for (const json& c : d["build_fails"]) {
        const std::string m = parse_error(c["grammar"].get<std::string>());
        ASSERT_NE(m, "") << c["grammar"];
        if (c["kind"] == "missing_root") {
            EXPECT_NE(m.find("no rule named 'root'"), std::string::npos) << m;
        } else if (c["grammar"].get<std::string>().find("numero") != std::string::npos) {
            EXPECT_NE(m.find("rule 'numero' is used but never defined (line 3, column 18)"), std::string::npos) << m;
        } else {
            EXPECT_NE(m.find("left-recursive"), std::string::npos) << m;
        }
    }
    EXPECT_NE(parse_error("root ::= \"a\" | root \"a\"").find("rule 'root' is left-recursive (root -> root)"), std::string::npos);
    EXPECT_NE(parse_error("root ::= asdf\nasdf ::= \"a\" | foo \"b\"\nfoo ::= \"c\" | asdf \"d\"")
                  .find("(asdf -> foo -> asdf)"),
              std::string::npos);
    // Through a rule that is nullable only through other rules (llama.cpp misses this one and
    // loops forever when it expands the rule): rejected at load.
    EXPECT_NE(parse_error("root ::= b root \"x\" | \"y\"\nb ::= c\nc ::= \"\" | \"z\"").find("left-recursive"),
              std::string::npos);
}

TEST(Grammar, ShippedGrammarsLoad) {
    for (const char* name : {"arithmetic", "c", "chess", "english", "japanese", "json", "json_arr", "list"}) {
        const std::string text = test::read_file(src_path(std::string("grammars/") + name + ".gbnf"));
        ASSERT_FALSE(text.empty()) << name;
        auto g = Grammar::parse(text, "root", name);
        auto again = Grammar::parse(g->to_gbnf(), "root", name);
        EXPECT_EQ(rule_lines(*again), rule_lines(*g)) << name;
    }
    auto json_g = Grammar::parse(test::read_file(src_path("grammars/json.gbnf")), "root", "json.gbnf");
    EXPECT_TRUE(accepts(json_g, R"({"a": [1, 2.5e3, "x\"y", true, null], "b": {}})"));
    EXPECT_FALSE(accepts(json_g, R"({"a": [1, 2,]})"));
    EXPECT_FALSE(accepts(json_g, R"({"a": 1)"));
    auto arith = Grammar::parse(test::read_file(src_path("grammars/arithmetic.gbnf")), "root", "arithmetic.gbnf");
    EXPECT_TRUE(accepts(arith, "(1+2)*3= 9\n"));
    EXPECT_FALSE(accepts(arith, "(1+2)*3\n"));
    auto chess = Grammar::parse(test::read_file(src_path("grammars/chess.gbnf")), "root", "chess.gbnf");
    EXPECT_TRUE(accepts(chess, "1. e4 e5\n2. Nf3 Nc6\n"));
}

TEST(Grammar, SyntaxErrorsNameLineAndColumn) {
    EXPECT_NE(parse_error("root ::= \"a\"\nx ::= [a-z").find("line 2, column 7: expected ']'"), std::string::npos)
        << parse_error("root ::= \"a\"\nx ::= [a-z");
    EXPECT_NE(parse_error("root ::= \"a\" )").find("line 1, column 14"), std::string::npos);
    EXPECT_NE(parse_error("root := \"a\"").find("line 1, column 6: expected '::='"), std::string::npos);
    EXPECT_NE(parse_error("root ::= (\"a\"").find("expected ')'"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"a\\q\"").find("unknown escape '\\q'"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"\\x4\"").find("expected 2 hex digits"), std::string::npos);
    EXPECT_NE(parse_error("root ::= *").find("nothing to repeat"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"a\"{x}").find("expected a number"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"abc").find("unterminated string"), std::string::npos);
    EXPECT_NE(parse_error("").find("the grammar is empty"), std::string::npos);
    EXPECT_NE(parse_error("# only a comment\n").find("the grammar is empty"), std::string::npos);
    EXPECT_NE(parse_error("a ::= \"x\"").find("no rule named 'root'"), std::string::npos);
    EXPECT_NE(parse_error("a ::= \"x\"", "start").find("no rule named 'start'"), std::string::npos);
    EXPECT_NE(parse_error(std::string("root ::= \"a\0\"", 13)).find("NUL"), std::string::npos);
}

TEST(Grammar, HugeRepetitionAndDeepNestingAreErrors) {
    EXPECT_NE(parse_error("root ::= \"a\"{100000000}").find("more than"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"a\"{2,99999999999999999999}").find("more than"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"abcdefgh\"{1000000}").find("more than"), std::string::npos);
    EXPECT_NE(parse_error("root ::= " + std::string(100000, '(')).find("nested more than"), std::string::npos);
    // Within the limits: fine, and the parser's recursion fits a small stack.
    test::on_small_stack(256 * 1024, [] {
        auto g = Grammar::parse("root ::= " + std::string(200, '(') + "\"x\"" + std::string(200, ')'));
        EXPECT_TRUE(grammar_check(*g, "x").accepted);
    });
    auto g = Grammar::parse("root ::= \"ab\"{3,5}");
    EXPECT_FALSE(accepts(g, "abab"));
    EXPECT_TRUE(accepts(g, "ababab"));
    EXPECT_TRUE(accepts(g, "ababababab"));
    EXPECT_FALSE(accepts(g, "abababababab"));
    // A long chain of rules (the left-recursion check and the expansion are iterative).
    std::string chain = "root ::= r0\n";
    for (int i = 0; i < 20000; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
    chain += "r20000 ::= \"z\"\n";
    test::on_small_stack(256 * 1024, [&] { EXPECT_TRUE(grammar_check(*Grammar::parse(chain), "z").accepted); });
}

TEST(Grammar, CheckReportsOffsetInCodePoints) {
    auto g = Grammar::parse("root ::= \"é\"+ \"!\"");
    GrammarCheck r = grammar_check(*g, "ééx");
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.fail_offset, 2);
    EXPECT_NE(r.reason.find("unexpected 'x' at code point 2"), std::string::npos) << r.reason;
    r = grammar_check(*g, "éé");
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.fail_offset, 2);
    EXPECT_EQ(r.reason, "text ends before the grammar does");
    r = grammar_check(*g, "é\xff");
    EXPECT_EQ(r.fail_offset, 1);
    EXPECT_TRUE(grammar_check(*g, "éé!").accepted);
    EXPECT_EQ(grammar_check(*g, "éé!").fail_offset, -1);
}

TEST(Grammar, MatcherKeepsPartialUtf8AndStateOnReject) {
    auto g = Grammar::parse("root ::= [à-ÿ] \"b\"");
    GrammarMatcher m(g);
    EXPECT_TRUE(m.accept("\xc3"));        // first byte of à..ÿ (U+00E0..U+00FF): could still match
    EXPECT_FALSE(m.can_end());
    GrammarMatcher copy = m;
    EXPECT_FALSE(m.accept("\x80"));       // U+00C0 is outside the class: rejected, state unchanged
    EXPECT_TRUE(m.accept("\xa9"));        // é
    EXPECT_TRUE(copy.accept("\xa0" "b"));    // the copy is independent: à then b
    EXPECT_TRUE(copy.can_end());
    EXPECT_FALSE(m.can_end());
    EXPECT_TRUE(m.accept("b"));
    EXPECT_TRUE(m.can_end());
    EXPECT_FALSE(m.accept("b"));
    m.reset();
    EXPECT_FALSE(m.accept("\xe2"));       // a 3-byte lead cannot complete to U+00E0..U+00FF
    EXPECT_FALSE(m.accept("a"));
}

TEST(Grammar, PartialUtf8InNegatedClassIsExact) {
    auto g = Grammar::parse("root ::= [^\\u2028]");
    GrammarMatcher m(g);
    EXPECT_TRUE(m.accept("\xe2\x80"));   // could still become U+2026 (allowed)
    GrammarMatcher n = m;
    EXPECT_FALSE(m.accept("\xa8"));       // U+2028: excluded
    EXPECT_TRUE(n.accept("\xa6"));        // U+2026
    EXPECT_TRUE(n.can_end());
    auto only = Grammar::parse("root ::= [^\\u0800-\\u0FFF]");
    GrammarMatcher o(only);
    EXPECT_FALSE(o.accept("\xe0"));       // every completion of E0 (U+0800..U+0FFF) is excluded
    EXPECT_FALSE(o.accept("\xf5"));       // never a UTF-8 byte
}

TEST(Grammar, VerdictsMatchLlamaGbnfValidator) {
    std::ifstream f(src_path("tests/runtime/ref/grammar_verdicts.jsonl"));
    if (!f.good()) GTEST_SKIP() << "tests/runtime/ref/grammar_verdicts.jsonl not recorded yet";
    std::map<std::string, std::shared_ptr<const Grammar>> grammars;
    std::string line;
    size_t n = 0, n_pass = 0;
    while (std::getline(f, line)) {
        const json c = json::parse(line);
        const std::string name = c["grammar"];
        auto& g = grammars[name];
        if (!g) g = Grammar::parse(test::read_file(src_path("grammars/" + name)), "root", name);
        const bool want = c["llama_cpp"].get<bool>();
        const GrammarCheck r = grammar_check(*g, c["text"].get<std::string>());
        EXPECT_EQ(r.accepted, want) << name << ": llama-gbnf-validator says " << want << " for " << c["text"];
        if (!want) {
            EXPECT_EQ(r.fail_offset, c["pos"].get<int64_t>()) << name << ": " << c["text"] << ": " << r.reason;
        }
        ++n;
        n_pass += want;
    }
    EXPECT_GE(n, 200u);
    EXPECT_GT(n_pass, n / 5);
    EXPECT_LT(n_pass, n - n / 5);
}

TEST(Grammar, AmbiguousGrammarStaysBounded) {
    // Many ways to split the same text: the stack set grows with the ambiguity, deduplicated
    // interned stacks keep it polynomial.
    auto g = Grammar::parse("root ::= (\"a\"{0,30}){0,30} \"b\"");
    EXPECT_TRUE(grammar_check(*g, std::string(400, 'a') + "b").accepted);
    EXPECT_FALSE(grammar_check(*g, std::string(901, 'a') + "b").accepted);
    // Limits reached are errors naming the grammar, never a crash.
    std::string wide = "root ::= x\nx ::= ";
    for (int i = 0; i < 70000; ++i) wide += (i ? " | \"a\" \"" : "\"a\" \"") + std::to_string(i) + "\"";
    auto w = Grammar::parse(wide + "\n", "root", "wide.gbnf");
    EXPECT_TRUE(grammar_check(*w, "b").fail_offset == 0);  // 70000 stacks, none takes 'b'
    try {
        grammar_check(*w, "a1");  // 70000 stacks alive after 'a': over StackPool::kMaxStacks
        FAIL() << "expected the stack limit";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kResource);
        EXPECT_NE(std::string(e.what()).find("grammar 'wide.gbnf': more than 65536 alternative parses"), std::string::npos)
            << e.what();
    }
}
