// End-to-end tests of the llmforge executable against the shared reference assets:
// the real TinyStories 260K model byte-for-byte, format conversion, the shared GGUF fixture, and
// bad input giving one clear error line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/context.h"
#include "runtime/sampler.h"
#include "cli_run.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

CliRun run(const std::string& args) { return run_cli(args); }

const char* kStories = "llama2c-stories260K/stories260K.bin";
const char* kTok = "llama2c-stories260K/tok512.bin";
const char* kExpected = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt";
const char* kExpectedTokens = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.tokens";

std::vector<int32_t> greedy_tokens(const std::string& model_path, int n) {
    auto m = Model::load(model_path);
    Context ctx(*m, ContextParams{512, 512, 1});
    SamplerParams sp;
    sp.temperature = 0;
    Sampler s(sp);
    std::vector<int32_t> out = {1};
    ctx.decode({1});
    for (int i = 0; i < n; ++i) {
        int32_t id = s.sample(ctx.logits().data(), ctx.logits().size());
        out.push_back(id);
        if (i + 1 < n) ctx.decode({id});
    }
    return out;
}

std::vector<int32_t> expected_tokens(const std::string& path) {
    std::istringstream ss(read_file(path));
    std::vector<int32_t> v;
    int32_t x;
    while (ss >> x) v.push_back(x);
    return v;
}

TEST(Cli, Stories260KGreedyIsByteExact) {
    LF_REQUIRE_ASSET(model, kStories);
    LF_REQUIRE_ASSET(tok, kTok);
    LF_REQUIRE_ASSET(expected, kExpected);
    for (const char* threads : {"1", "2"}) {
        CliRun r = run("generate -m " + q(model) + " --tokenizer " + q(tok) + " --temp 0 -n 256 -p '' -t " + threads);
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_EQ(r.out, read_file(expected)) << "threads " << threads;
    }
}

// The reference story starts with "Once upon a time" (ids 403 407 261 378 after BOS). With that
// as the prompt, llama2.c's run feeds the same 5 tokens, so the greedy continuation over 256
// positions must be the rest of the reference text, byte for byte.
TEST(Cli, Stories260KWithPromptContinuesTheReference) {
    LF_REQUIRE_ASSET(model, kStories);
    LF_REQUIRE_ASSET(tok, kTok);
    LF_REQUIRE_ASSET(expected, kExpected);
    const std::string want = read_file(expected);
    const std::string prefix = "Once upon a time";
    ASSERT_EQ(want.rfind(prefix, 0), 0u);
    CliRun r = run("generate -m " + q(model) + " --tokenizer " + q(tok) + " --temp 0 -n 256 -p " + q(prefix));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("5 prompt tokens"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, want.substr(prefix.size()));
}

TEST(Cli, Stories260KConvertedToGgufF32IsByteExactAndQ8_0Agrees) {
    LF_REQUIRE_ASSET(model, kStories);
    LF_REQUIRE_ASSET(tok, kTok);
    LF_REQUIRE_ASSET(expected, kExpected);
    LF_REQUIRE_ASSET(expected_toks, kExpectedTokens);
    const std::string dir = temp_dir();
    const std::string f32 = dir + "/stories-f32.gguf", q8 = dir + "/stories-q8_0.gguf";
    CliRun c = run("convert -m " + q(model) + " --tokenizer " + q(tok) + " -o " + q(f32) + " --type f32");
    ASSERT_EQ(c.rc, 0) << c.err;
    CliRun r = run("generate -m " + q(f32) + " --temp 0 -n 256 -p ''");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, read_file(expected));

    c = run("convert -m " + q(model) + " --tokenizer " + q(tok) + " -o " + q(q8) + " --type q8_0");
    ASSERT_EQ(c.rc, 0) << c.err;
    const auto want = expected_tokens(expected_toks);
    const auto got = greedy_tokens(q8, 256);
    ASSERT_EQ(want.size(), got.size());
    size_t agree = 0;
    while (agree < want.size() && want[agree] == got[agree]) ++agree;
    std::printf("q8_0: the first %zu of %zu greedy tokens agree with the f32 reference\n", agree, want.size());
    EXPECT_GE(agree, 65u);  // BOS + 64 generated tokens
}

TEST(Cli, SharedTinyRandomGgufLoadsAndRuns) {
    LF_REQUIRE_ASSET(model, "gguf-fixtures/llama-2-tiny-random.gguf");
    CliRun i = run("info -m " + q(model));
    ASSERT_EQ(i.rc, 0) << i.err;
    EXPECT_NE(i.out.find("llama"), std::string::npos);
    EXPECT_NE(i.out.find("32000"), std::string::npos);
    CliRun r = run("generate -m " + q(model) + " -p 'Hello world' -n 8 --temp 0.7 --seed 3");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
}

TEST(Cli, InitModelConvertRoundTripsEveryType) {
    const std::string dir = temp_dir();
    const std::string base = dir + "/base.gguf";
    CliRun c = run("init-model --arch llama --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 --vocab 512 --type f32 --out " + q(base));
    ASSERT_EQ(c.rc, 0) << c.err;
    for (const char* t : {"f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"}) {
        const std::string out = dir + "/m-" + t + ".gguf";
        CliRun cv = run("convert -m " + q(base) + " -o " + q(out) + " --type " + t);
        ASSERT_EQ(cv.rc, 0) << t << ": " << cv.err;
        CliRun g = run("generate -m " + q(out) + " -p 'abc' -n 4 --temp 0");
        EXPECT_EQ(g.rc, 0) << t << ": " << g.err;
        CliRun i = run("info -m " + q(out));
        EXPECT_NE(i.out.find(t), std::string::npos) << t << ": " << i.out;
    }
    CliRun qw = run("init-model --arch qwen2 --dim 128 --layers 1 --heads 4 --kv-heads 2 --ffn 256 --vocab 400 --tied --out " + q(dir + "/qwen.gguf"));
    ASSERT_EQ(qw.rc, 0) << qw.err;
    CliRun g = run("generate -m " + q(dir + "/qwen.gguf") + " -p 'x' -n 4 --temp 0");
    EXPECT_EQ(g.rc, 0) << g.err;
}

TEST(Cli, BadInputGivesOneClearLine) {
    LF_REQUIRE_ASSET(model, "gguf-fixtures/llama-2-tiny-random.gguf");
    LF_REQUIRE_ASSET(stories, kStories);
    const std::string dir = temp_dir();
    const std::string bytes = read_file(model);
    auto write = [&](const std::string& name, const std::string& data) {
        std::ofstream f(dir + "/" + name, std::ios::binary);
        f << data;
        return dir + "/" + name;
    };
    // Truncated GGUF (inside the tensor data).
    std::string p = write("truncated.gguf", bytes.substr(0, bytes.size() - 100));
    expect_one_line_error(run("info -m " + q(p)), "truncated.gguf");
    // Wrong magic.
    std::string bad = bytes;
    bad[0] = 'X';
    p = write("magic.gguf", bad);
    expect_one_line_error(run("info -m " + q(p)), "magic.gguf");
    // Truncated llama2.c checkpoint.
    const std::string sb = read_file(stories);
    p = write("short.bin", sb.substr(0, sb.size() / 2));
    expect_one_line_error(run("info -m " + q(p)), "short.bin");
    // Missing file.
    expect_one_line_error(run("info -m " + q(dir + "/nope.gguf")), "nope.gguf");
    // Unknown dtype name.
    expect_one_line_error(run("convert -m " + q(model) + " -o " + q(dir + "/x.gguf") + " --type q3_x"), "q3_x");
}

}  // namespace
