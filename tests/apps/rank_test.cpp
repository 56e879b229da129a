// CodeT ranking (Chen et al. 2022): dual execution agreement on hand-computed examples, ties, no
// tests and all failing; the test-generation prompt; extraction of generated tests from realistic
// model output; and an end-to-end ranking where Python itself runs the extracted tests against
// correct and wrong candidates.
#include <gtest/gtest.h>

#include "apps/codegen/rank.h"
#include "core/error.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::codegen;

namespace {

Problem python_add() {
    Problem p;
    p.task_id = "HumanEval/53";
    p.language = "python";
    p.prompt = "\n\ndef add(x: int, y: int):\n    \"\"\"Add two numbers x and y\n    >>> add(2, 3)\n    5\n    \"\"\"\n";
    p.entry_point = "add";
    return p;
}

Problem lang_add(const std::string& lang) {
    Problem p;
    p.task_id = "HumanEval_" + lang + "/53";
    p.language = lang;
    p.entry_point = "add";
    p.prompt = lang == "cpp" ? "#include<assert.h>\n#include<bits/stdc++.h>\n// Add two numbers x and y\nlong add(long x, long y) {\n"
                             : "//Add two numbers x and y\nfunction add(x, y){\n";
    return p;
}

}  // namespace

// Six candidates, four tests; hand-computed: {0, 2, 5} pass tests {0, 1} -> 3 x 2 = 6;
// {1, 4} pass {0, 1, 2} -> 2 x 3 = 6; {3} passes nothing -> 0. Equal scores keep index order.
TEST(CodeT, ScoresAndTiesByIndex) {
    const std::vector<std::vector<bool>> passes = {
        {1, 1, 0, 0}, {1, 1, 1, 0}, {1, 1, 0, 0}, {0, 0, 0, 0}, {1, 1, 1, 0}, {1, 1, 0, 0},
    };
    EXPECT_EQ(codet_scores(passes), (std::vector<double>{6, 6, 6, 0, 6, 6}));
    EXPECT_EQ(codet_rank(passes), (std::vector<size_t>{0, 1, 2, 4, 5, 3}));
}

// A larger consensus beats a lone candidate that passes more tests: {0, 2, 3} pass 2 tests -> 6,
// {1} passes all 3 -> 3, {4} passes 1 -> 1.
TEST(CodeT, ConsensusOutranksALoneBetterCandidate) {
    const std::vector<std::vector<bool>> passes = {{1, 0, 1}, {1, 1, 1}, {1, 0, 1}, {1, 0, 1}, {0, 1, 0}};
    EXPECT_EQ(codet_scores(passes), (std::vector<double>{6, 3, 6, 6, 1}));
    EXPECT_EQ(codet_rank(passes), (std::vector<size_t>{0, 2, 3, 1, 4}));
}

TEST(CodeT, NoTestsAllFailingAndBadShapes) {
    EXPECT_EQ(codet_rank({{}, {}, {}}), (std::vector<size_t>{0, 1, 2}));
    EXPECT_EQ(codet_rank({{0, 0}, {0, 0}, {0, 0}}), (std::vector<size_t>{0, 1, 2}));
    EXPECT_EQ(codet_scores({{0, 0}, {0, 0}}), (std::vector<double>{0, 0}));
    EXPECT_TRUE(codet_rank({}).empty());
    EXPECT_THROW(codet_rank({{1, 0}, {1}}), Error);
}

TEST(CodeT, TestGenerationPrompt) {
    const Problem p = python_add();
    EXPECT_EQ(test_generation_prompt(p), p.prompt + "    pass\n\n# check the correctness of add\nassert add(");
    EXPECT_EQ(test_generation_prompt(lang_add("cpp")),
              lang_add("cpp").prompt + "}\n\n// check the correctness of add\nassert(add(");
    EXPECT_EQ(test_generation_prompt(lang_add("js")),
              lang_add("js").prompt + "}\n\n// check the correctness of add\nassert.deepEqual(add(");
    Problem bad = p;
    bad.language = "rust";
    EXPECT_THROW(test_generation_prompt(bad), Error);
}

// What a model writes after "assert add(": several asserts on one line, a duplicate with other
// spacing, one calling a function the program does not define, builtins, a message, a comment,
// and a last line cut by the token limit.
TEST(CodeT, ExtractsPythonTests) {
    const std::string generated =
        "1, 2) == 3\n"
        "assert add(2, 3) == 5 assert add(0, 0) == 0\n"
        "assert add(1,2)==3  # same as the first\n"
        "assert add(5, 5) == sub(20, 10)\n"
        "assert add(len([1]), 1) == 2; assert add(-1, 1) == 0\n"
        "assert add(3, 4) == 7, 'seven'\n"
        "print(add(1, 1))\n"
        "assert add(10, ";
    EXPECT_EQ(extract_generated_tests(python_add(), generated),
              (std::vector<std::string>{"assert add(1, 2) == 3", "assert add(2, 3) == 5", "assert add(0, 0) == 0",
                                        "assert add(len([1]), 1) == 2", "assert add(-1, 1) == 0",
                                        "assert add(3, 4) == 7, 'seven'"}));
    // The prefix may come with the text; a line with a malformed expression is dropped.
    EXPECT_EQ(extract_generated_tests(python_add(), "assert add(1, 1) == 2\nassert add(1, ) == == 2\n"),
              (std::vector<std::string>{"assert add(1, 1) == 2"}));
    EXPECT_TRUE(extract_generated_tests(python_add(), "").empty());
}

TEST(CodeT, ExtractsCppAndJsTests) {
    EXPECT_EQ(extract_generated_tests(lang_add("cpp"),
                                      "1, 2) == 3);\n"
                                      "    assert(add(2, 3) == 5); assert(add(0,0)==0);\n"
                                      "    assert(add(1, 2)==3);\n"
                                      "    assert(add(foo(1), 2) == 3);\n"
                                      "    assert(add(3, 4) == std::abs(-7));\n"
                                      "    assert(add(9, "),
              (std::vector<std::string>{"assert(add(1, 2) == 3);", "assert(add(2, 3) == 5);", "assert(add(0,0)==0);",
                                        "assert(add(3, 4) == std::abs(-7));"}));
    EXPECT_EQ(extract_generated_tests(lang_add("js"),
                                      "1, 2), 3);\n"
                                      "assert.deepEqual(add(2, 3), 5); assert.equal(add(0, 0), 0);\n"
                                      "assert.deepEqual(add(Math.abs(-1), 1), 2);\n"
                                      "assert.deepEqual(add(x, 1), helper(2));\n"
                                      "console.log(add(1, 2));\n"
                                      "assert.deepEqual(add(\"a)\", 1), \"a)1\");\n"
                                      "assert.deepEqual(add(4"),
              (std::vector<std::string>{"assert.deepEqual(add(1, 2), 3);", "assert.deepEqual(add(2, 3), 5);",
                                        "assert.equal(add(0, 0), 0);", "assert.deepEqual(add(Math.abs(-1), 1), 2);",
                                        "assert.deepEqual(add(\"a)\", 1), \"a)1\");"}));
}

// End to end: python3 runs each extracted test against each candidate; the correct candidates
// agree and rank first.
TEST(CodeT, RanksRealExecutions) {
    if (test::run_command("command -v python3 >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not installed";
    const Problem p = python_add();
    const std::vector<std::string> tests = extract_generated_tests(
        p, "1, 2) == 3\nassert add(2, 2) == 4\nassert add(0, 5) == 5\nassert add(2, 2) == 5\n");
    ASSERT_EQ(tests.size(), 4u);
    const std::vector<std::string> candidates = {
        "    return x * y\n",  // wrong: agrees with the buggy generated test add(2, 2) == 4 only
        "    return x + y\n",
        "    return y + x\n",
        "    return x - y\n",
        "    return x + y\n",
    };
    const std::string dir = test::temp_dir();
    std::vector<std::vector<bool>> passes;
    for (size_t c = 0; c < candidates.size(); ++c) {
        passes.emplace_back();
        for (size_t t = 0; t < tests.size(); ++t) {
            const std::string file = dir + "/c" + std::to_string(c) + "_t" + std::to_string(t) + ".py";
            test::write_file(file, p.prompt + candidates[c] + "\n" + generated_test_snippet(p, tests[t]));
            passes.back().push_back(test::run_command("python3 -I " + file + " >/dev/null 2>&1") == 0);
        }
    }
    EXPECT_EQ(passes[1], (std::vector<bool>{true, true, true, false}));
    EXPECT_EQ(passes[0], (std::vector<bool>{false, true, false, false}));
    const std::vector<size_t> order = codet_rank(passes);
    // {1, 2, 4} pass 3 tests -> 9; {0} passes 1 -> 1; {3}: add(0, 5) = -5, passes none -> 0.
    EXPECT_EQ(order, (std::vector<size_t>{1, 2, 4, 0, 3}));
    EXPECT_EQ(generated_test_snippet(lang_add("cpp"), "assert(add(1, 2) == 3);"),
              "}\nint main() {\n    assert(add(1, 2) == 3);\n}\n");
}

// Every prefix of a realistic generation, in each language, extracts without crashing, and only
// ever yields statements that start with "assert".
TEST(CodeT, EveryPrefixOfGeneratedTextIsSafe) {
    const std::string text =
        "1, [2, 'a\\'b\"]) == {\"k\": (1,)}\nassert add(`x`, 2) == 3; assert(add(1, \"a\\\\\"));\n"
        "assert.deepEqual(add(/*c*/ 1, 2), [3]); // done\n#x\nassert add((((1\n";
    for (const std::string lang : {"python", "cpp", "js"}) {
        const Problem p = lang == "python" ? python_add() : lang_add(lang);
        for (size_t n = 0; n <= text.size(); ++n) {
            std::vector<std::string> tests;
            EXPECT_NO_THROW(tests = extract_generated_tests(p, std::string_view(text).substr(0, n))) << lang << " " << n;
            for (const auto& t : tests) EXPECT_EQ(t.rfind("assert", 0), 0u) << t;
        }
    }
}
