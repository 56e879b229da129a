// llmforge perplexity: the final line's format on stdout, the window rule in its counts, and one-line
// errors for bad input (missing file, too little text, --ctx out of range, no tokenizer).
#include <gtest/gtest.h>

#include <regex>

#include "cli_run.h"

namespace llmforge::test {
namespace {

const char* kStories = "llama2c-stories260K/stories260K.bin";
const char* kTok = "llama2c-stories260K/tok512.bin";
const char* kGreedy = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt";

TEST(PerplexityCli, FinalLineFormatAndWindowCounts) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(f, kGreedy);
    const std::string base = "perplexity -m " + q(m) + " --tokenizer " + q(t) + " -f " + q(f) + " -t 2";
    const std::regex line(R"(perplexity: ([0-9]+\.[0-9]{4}) ± ([0-9]+\.[0-9]+) \(([0-9]+) tokens, ([0-9]+) windows\)\n)");
    // BOS + 257 text tokens = 258: one window of 512 scores 257; windows of 64 are 64,64,64,64,2 and
    // score 258 - 5 = 253.
    for (const auto& [ctx, scored, windows] : {std::tuple{"", 257, 1}, std::tuple{" --ctx 64", 253, 5}}) {
        const CliRun r = run_cli(base + ctx);
        ASSERT_EQ(r.rc, 0) << r.err;
        std::smatch mt;
        ASSERT_TRUE(std::regex_match(r.out, mt, line)) << "stdout: " << r.out;
        EXPECT_EQ(std::stoi(mt[3]), scored) << ctx;
        EXPECT_EQ(std::stoi(mt[4]), windows) << ctx;
        const double ppl = std::stod(mt[1]), se = std::stod(mt[2]);
        EXPECT_GT(ppl, 1.0);
        EXPECT_LT(ppl, 3.0);  // the model's own greedy text: observed 1.6384 (ctx 512), 1.8451 (ctx 64)
        EXPECT_GT(se, 0.0);
        EXPECT_LT(se, ppl);
        EXPECT_NE(r.err.find("window"), std::string::npos) << "per-window progress on stderr: " << r.err;
    }
}

TEST(PerplexityCli, BadInputIsOneLine) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(f, kGreedy);
    const std::string dir = temp_dir();
    write_file(dir + "/empty.txt", "");
    const std::string mt = "perplexity -m " + q(m) + " --tokenizer " + q(t);
    expect_one_line_error(run_cli(mt + " -f " + q(dir + "/missing.txt")), "missing.txt");
    expect_one_line_error(run_cli(mt + " -f " + q(dir + "/empty.txt")), "at least 2");
    expect_one_line_error(run_cli(mt + " -f " + q(f) + " --ctx 4096"), "4096");
    expect_one_line_error(run_cli(mt + " -f " + q(f) + " --ctx 1"), "--ctx");
    expect_one_line_error(run_cli("perplexity -m " + q(m) + " -f " + q(f)), "tokenizer");
}

}  // namespace
}  // namespace llmforge::test
