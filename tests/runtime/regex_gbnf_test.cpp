// Regex -> GBNF against std::regex (ECMAScript), an implementation nobody on the team wrote:
// for each regex, every string over a small alphabet up to some length, plus random longer ones,
// must be accepted by our grammar exactly when std::regex_match accepts it. Schema patterns are
// checked the same way inside JSON strings (regex_search: JSON Schema patterns are unanchored).
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

using namespace llmforge;
using json = nlohmann::ordered_json;

namespace {

// All strings over `alphabet` of length <= max_len, then `n_random` random ones up to 12 chars.
std::vector<std::string> samples(const std::string& alphabet, size_t max_len, int n_random, uint32_t seed) {
    std::vector<std::string> out = {""};
    std::vector<std::string> layer = {""};
    for (size_t len = 1; len <= max_len; ++len) {
        std::vector<std::string> next;
        for (const auto& s : layer)
            for (char c : alphabet) next.push_back(s + c);
        out.insert(out.end(), next.begin(), next.end());
        layer.swap(next);
    }
    std::mt19937 rng(seed);
    for (int i = 0; i < n_random; ++i) {
        std::string s;
        const size_t len = rng() % 13;
        for (size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        out.push_back(s);
    }
    return out;
}

size_t exhaustive_len(size_t k) {
    size_t len = 0, total = 1, pow = 1;
    while (true) {
        pow *= k;
        if (total + pow > 6000) return len;
        total += pow;
        ++len;
    }
}

struct RegexCase {
    const char* regex;
    const char* alphabet;
    std::vector<std::string> extra = {};  // more samples (matches the random ones rarely find)
};

const RegexCase kRegexes[] = {
    {"abc?d*efg+(hij)?kl", "abcdefghijkl", {"abdefgkl", "abcddefggghijkl", "abcefgkl", "abefghijkl", "abcdefgkk"}},
    {"(a|bc)*d", "abcd"},
    {"[a-c]{2,3}x?", "abcxy"},
    {"a{2}b{0,1}c{1,}", "abc"},
    {"(ab|a)(c|bcd)(d*)", "abcd"},
    {"[^abc]+", "abcd-"},
    {"\\d{1,3}(\\.\\d{1,3}){0,2}", "019.a"},
    {"\\w+\\s?\\w*", "a_Z9 \t-"},
    {"[\\d_-]+x", "1_-x"},
    {".a.", "a\nb\r"},
    {"(?:x|y)+z", "xyz"},
    {"a|b|", "abc"},
    {"(|a)b", "ab"},
    {"[a\\-z]+", "az-b"},
    {"\\D\\W?", "1a-"},
    {"[a\\Sb]", "ab \t1"},
    {"^ab$", "ab"},
    {"a*?b+?", "ab"},
    {"[.]\\.\\*", ".*a"},
    {"\\x41\\u0042[\\x43-\\x45]", "ABCDEF"},
    {"(a{1,2}){2}", "ab"},
    {"\\(\\)\\[\\]\\{\\}\\|\\+\\?\\^\\$\\\\", "()[]{}|+?^$\\", {"()[]{}|+?^$\\", "()[]{}|+?^$", "()[]{}|+?^$\\\\"}},
    {"\"q\"[\"']", "\"q'"},
    {"((a|b)c|d){1,3}", "abcd"},
    {"[^\\d\\s]", "1 a\n"},
    {"a\\tb\\nc", "abc\t\n"},
    {"[\\w.-]+@[a-z]+\\.(com|org)", "a.-@bcomrg", {"a@b.com", "x.y-z@ab.org", "@b.com", "a@b.net", "a@.com"}},
};

}  // namespace

TEST(RegexGbnf, AgreesWithStdRegex) {
    for (const RegexCase& c : kRegexes) {
        SCOPED_TRACE(c.regex);
        std::string gbnf;
        ASSERT_NO_THROW(gbnf = regex_to_gbnf(c.regex));
        std::shared_ptr<const Grammar> g;
        ASSERT_NO_THROW(g = Grammar::parse(gbnf, "root", c.regex)) << gbnf;
        const std::regex re(c.regex, std::regex::ECMAScript);
        const std::string alphabet = c.alphabet;
        int n_match = 0;
        std::vector<std::string> texts = samples(alphabet, exhaustive_len(alphabet.size()), 3000, 1234);
        texts.insert(texts.end(), c.extra.begin(), c.extra.end());
        for (const std::string& s : texts) {
            const bool want = std::regex_match(s, re);
            n_match += want;
            ASSERT_EQ(grammar_check(*g, s).accepted, want) << "text '" << s << "'\n" << gbnf;
        }
        EXPECT_GT(n_match, 0) << "no sample matches: the case checks nothing positive";
    }
}

TEST(RegexGbnf, SchemaPatternsMatchInsideJsonStrings) {
    // The JSON text of every sample: accepted exactly when the pattern finds a match in the
    // decoded string. The alphabets hold '"', '\\' and control characters to check the encoding.
    const RegexCase cases[] = {
        {"^[a-c\"]{1,3}$", "ab\"\\"},
        {"^\\\\\"?$", "\\\"a"},
        {"^.\\n?$", "a\"\\\n\t"},
        {"^[^a]+$", "a\"\\\n\tb"},
        {"^\\s*x$", " \t\n\rx"},
        {"b\"", "ab\""},
        {"^a", "ab\\"},
        {"c$", "c\"d"},
    };
    for (const RegexCase& c : cases) {
        SCOPED_TRACE(c.regex);
        const json schema = {{"type", "string"}, {"pattern", c.regex}};
        std::string gbnf;
        ASSERT_NO_THROW(gbnf = json_schema_to_gbnf(schema));
        std::shared_ptr<const Grammar> g;
        ASSERT_NO_THROW(g = Grammar::parse(gbnf)) << gbnf;
        const std::regex re(c.regex, std::regex::ECMAScript);
        int n_match = 0;
        const std::string alphabet = c.alphabet;
        for (const std::string& s : samples(alphabet, exhaustive_len(alphabet.size()), 500, 99)) {
            const bool want = std::regex_search(s, re);
            n_match += want;
            // One JSON encoding of s (nlohmann writes "\"", "\\\\", "\\n", "\\t").
            const std::string text = json(s).dump();
            ASSERT_EQ(grammar_check(*g, text).accepted, want) << "text " << text << "\n" << gbnf;
        }
        EXPECT_GT(n_match, 0);
    }
}

TEST(RegexGbnf, LlamaCppStyleOutput) {
    // The conventions of llama.cpp's _visit_pattern: merged literals, a quantified character on
    // its own, sub-rules for {m,n} of non-literals, `dot`.
    EXPECT_EQ(regex_to_gbnf("abc?d*efg+(hij)?kl"), "root ::= \"ab\" \"c\"? \"d\"* \"ef\" \"g\"+ (\"hij\")? \"kl\"\n");
    EXPECT_EQ(regex_to_gbnf("^[0-9]{3}-a{2}$"), "root ::= root-1{3,3} \"-\" \"a\"{2,2}\nroot-1 ::= [0-9]\n");
    EXPECT_EQ(regex_to_gbnf("A|B"), "root ::= \"A\" | \"B\"\n");
    EXPECT_EQ(regex_to_gbnf("a.b"), "dot ::= [^\\x0A\\x0D\\u2028\\u2029]\nroot ::= \"a\" dot \"b\"\n");
}

TEST(RegexGbnf, UnsupportedConstructsNameTheOffset) {
    const std::pair<const char*, const char*> cases[] = {
        {"ab(?=c)", "lookahead '(?=' is not supported at offset 2"},
        {"ab(?!c)", "lookahead '(?!' is not supported at offset 2"},
        {"(?<=a)b", "lookbehind '(?<=' is not supported at offset 0"},
        {"(?<!a)b", "lookbehind '(?<!' is not supported at offset 0"},
        {"(a)\\1", "backreference '\\1' is not supported at offset 3"},
        {"(?<n>a)\\k<n>", "backreference '\\k' is not supported at offset 7"},
        {"a\\bc", "word boundary '\\b' is not supported at offset 1"},
        {"a^b", "anchor '^' is only supported at the start of the pattern at offset 1"},
        {"a$b", "anchor '$' is only supported at the end of the pattern at offset 1"},
        {"(ab", "unclosed group: expected ')' at offset 0"},
        {"ab)", "unbalanced ')' (no group to close) at offset 2"},
        {"[ab", "unclosed character class: expected ']' at offset 0"},
        {"*a", "nothing to repeat before '*' at offset 0"},
        {"a**", "quantifier after a quantifier) at offset 2"},
        {"[z-a]", "class range out of order at offset 1"},
        {"a{3,2}", "repetition {m,n} with n < m at offset 1"},
        {"a{100000}", "repetition count above 10000 at offset 1"},
        {"(?i)a", "group modifier '(?' is not supported at offset 0"},
        {"\\p{L}", "Unicode property escape '\\p' is not supported at offset 0"},
        {"\\q", "unknown escape '\\q' at offset 0"},
        {"ab\\", "pattern ends with a lone '\\' at offset 2"},
        {"[]", "empty class '[]' matches nothing at offset 0"},
        {"é(?=x)", "at offset 1"},  // offsets count code points
    };
    for (const auto& [regex, needle] : cases) {
        SCOPED_TRACE(regex);
        try {
            regex_to_gbnf(regex, "--regex");
            ADD_FAILURE() << "no error";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("regex '--regex': ", 0), 0u) << msg;
            EXPECT_NE(msg.find(needle), std::string::npos) << msg;
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        }
    }
    EXPECT_THROW(regex_to_gbnf(std::string("a\xff", 2)), Error);  // not UTF-8
}

TEST(RegexGbnf, NonAsciiLiteralsAndClasses) {
    auto g = Grammar::parse(regex_to_gbnf("[à-é]+ü\\u00df"));
    EXPECT_TRUE(grammar_check(*g, "àéüß").accepted);
    EXPECT_FALSE(grammar_check(*g, "aüß").accepted);
    // A named group is a plain group (no backreferences).
    auto named = Grammar::parse(regex_to_gbnf("(?<word>ab)+c"));
    EXPECT_TRUE(grammar_check(*named, "ababc").accepted);
    EXPECT_FALSE(grammar_check(*named, "c").accepted);
    auto any = Grammar::parse(regex_to_gbnf("[^]"));
    EXPECT_TRUE(grammar_check(*any, "\n").accepted);
    EXPECT_TRUE(grammar_check(*any, "😀").accepted);
}
