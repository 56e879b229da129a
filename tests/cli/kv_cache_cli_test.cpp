// --cache-type-k / --cache-type-v on the command line (generate, perplexity, bench, serve) with
// the real TinyStories 260K checkpoint: an f16 cache reproduces llama2.c's greedy text exactly and
// its perplexity to 4 digits; bench --depth reports decode at a depth and the cache's real bytes;
// a quantised type the model's 8-wide heads cannot take, and a type that is not a KV type, are
// one-line errors in every command.
#include <gtest/gtest.h>

#include <regex>

#include "cli_run.h"

namespace llmforge::test {
namespace {

const char* kStories = "llama2c-stories260K/stories260K.bin";
const char* kTok = "llama2c-stories260K/tok512.bin";
const char* kGreedy = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt";

TEST(KvCacheCli, F16CacheReproducesTheGreedyText) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(g, kGreedy);
    const CliRun r = run_cli("generate -m " + q(m) + " --tokenizer " + q(t) +
                             " -n 256 --temp 0 -t 2 --cache-type-k f16 --cache-type-v f16");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, read_file(g));
}

TEST(KvCacheCli, PerplexityWithAnF16Cache) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(g, kGreedy);
    const std::string base = "perplexity -m " + q(m) + " --tokenizer " + q(t) + " -f " + q(g) + " -t 2";
    const CliRun a = run_cli(base), b = run_cli(base + " --cache-type-k f16 --cache-type-v f16");
    ASSERT_EQ(a.rc, 0) << a.err;
    ASSERT_EQ(b.rc, 0) << b.err;
    EXPECT_EQ(a.out, b.out);  // "perplexity: 1.6384 ± ..." to 4 digits
    EXPECT_NE(b.err.find("KV cache k=f16 v=f16"), std::string::npos) << b.err;
}

TEST(KvCacheCli, BenchAtADepthReportsTheCachesBytes) {
    LF_REQUIRE_ASSET(m, kStories);
    const CliRun r = run_cli("bench -m " + q(m) + " -p 8 -n 4 -r 1 -t 1 --depth 64 --cache-type-k f16 --cache-type-v f16");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("| pp8 @ d64 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("| tg4 @ d64 |"), std::string::npos) << r.out;
    // 5 layers x (K 32 + V 32 values) x 2 bytes = 640 bytes per position; 64 + 8 + 1 positions.
    EXPECT_NE(r.out.find("KV cache: k=f16 v=f16, 0.6 KiB per position, 0.0 MiB for 73 positions"), std::string::npos)
        << r.out;
}

TEST(KvCacheCli, BadCacheTypesAreOneLine) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(g, kGreedy);
    const std::string mt = " -m " + q(m) + " --tokenizer " + q(t);
    // stories260K's heads are 8 wide: no whole q8_0 / q4_0 blocks per head.
    expect_one_line_error(run_cli("generate" + mt + " -n 4 --cache-type-k q8_0"), "--cache-type-k q8_0");
    expect_one_line_error(run_cli("perplexity" + mt + " -f " + q(g) + " --cache-type-v q4_0"), "value heads are 8 wide");
    expect_one_line_error(run_cli("bench -m " + q(m) + " -p 8 -n 2 -r 1 --cache-type-k q4_0"), "multiple of the q4_0 block");
    expect_one_line_error(run_cli("generate" + mt + " -n 4 --cache-type-v q4_k"), "--cache-type-v 'q4_k'");
    expect_one_line_error(run_cli("serve" + mt + " --cache-type-k bf16"), "not a KV cache type");
}

}  // namespace
}  // namespace llmforge::test
