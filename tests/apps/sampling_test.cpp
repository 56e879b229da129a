// sample_completions on the real TinyStories 260K model (../shared/assets/llama2c-stories260K):
// greedy output equals llama2.c's own greedy story (the shared expected file), N samples per
// prompt through the continuous-batching scheduler are reproducible for a seed whatever the
// number of slots, samples differ from each other, and texts are cut at the first stop sequence.
#include <gtest/gtest.h>

#include <set>

#include "apps/codegen/sampling.h"
#include "core/error.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::codegen;
using namespace llmforge::test;

namespace {

SampleOptions options(const std::string& model, const std::string& tok) {
    SampleOptions o;
    o.model = model;
    o.tokenizer = tok;
    o.threads = 2;
    return o;
}

}  // namespace

#define REQUIRE_STORIES()                                                              \
    LF_REQUIRE_ASSET(model, "llama2c-stories260K/stories260K.bin");                    \
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");                           \
    LF_REQUIRE_ASSET(expected, "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt")

TEST(SampleCompletions, GreedyIsLlama2cReferenceStory) {
    REQUIRE_STORIES();
    std::string story = read_file(expected);
    story.pop_back();  // llama2.c's final newline
    SampleOptions o = options(model, tok);
    o.sampling.temperature = 0;
    o.max_tokens = 256;
    o.n_samples = 3;
    o.slots = 2;
    size_t last_done = 0, calls = 0;
    o.progress = [&](size_t done, size_t total) {
        EXPECT_EQ(total, 6u);
        EXPECT_EQ(done, last_done + 1);
        last_done = done;
        ++calls;
    };
    const auto out = sample_completions(o, {"", ""}, {});
    ASSERT_EQ(out.size(), 2u);
    for (const auto& samples : out) {
        ASSERT_EQ(samples.size(), 3u);
        for (const auto& s : samples) EXPECT_EQ(s, story);
    }
    EXPECT_EQ(calls, 6u);
}

TEST(SampleCompletions, CutAtTheFirstStopSequence) {
    REQUIRE_STORIES();
    std::string story = read_file(expected);
    story.pop_back();
    SampleOptions o = options(model, tok);
    o.sampling.temperature = 0;
    o.max_tokens = 256;
    // The earliest occurrence wins, whichever stop is listed first.
    const auto out = sample_completions(o, {"", ""}, {{"park.", "named"}, {"never-there"}});
    EXPECT_EQ(out[0][0], story.substr(0, story.find("named")));
    EXPECT_EQ(out[1][0], story);
    EXPECT_EQ(cut_at_first_stop("a\n}\nb\n//c", {"\n//", "\n}"}), "a");
    EXPECT_EQ(cut_at_first_stop("abc", {"", "x"}), "abc");
}

TEST(SampleCompletions, ReproducibleForASeedWhateverTheSlots) {
    REQUIRE_STORIES();
    SampleOptions o = options(model, tok);
    o.sampling.temperature = 1.0f;
    o.sampling.seed = 1234;
    o.max_tokens = 40;
    o.n_samples = 4;
    const std::vector<std::string> prompts = {"Once upon a time", "The cat"};
    o.slots = 4;
    const auto a = sample_completions(o, prompts, {{}, {}});
    o.slots = 1;
    const auto b = sample_completions(o, prompts, {{}, {}});
    EXPECT_EQ(a, b);
    // Samples of one prompt differ (their seeds differ), and a new base seed gives new text.
    for (const auto& samples : a) {
        EXPECT_GE(std::set<std::string>(samples.begin(), samples.end()).size(), 3u);
        for (const auto& s : samples) EXPECT_FALSE(s.empty());
    }
    o.sampling.seed = 99;
    const auto c = sample_completions(o, prompts, {{}, {}});
    EXPECT_NE(a, c);
    // Sample j uses seed base + j: sample 1 under seed 1234 is sample 0 under seed 1235.
    o.sampling.seed = 1235;
    o.n_samples = 1;
    const auto d = sample_completions(o, prompts, {{}, {}});
    EXPECT_EQ(d[0][0], a[0][1]);
    EXPECT_EQ(d[1][0], a[1][1]);
}

TEST(SampleCompletions, BadInput) {
    REQUIRE_STORIES();
    SampleOptions o = options(model, tok);
    o.n_samples = 0;
    EXPECT_THROW(sample_completions(o, {"x"}, {}), Error);
    o.n_samples = 1;
    EXPECT_THROW(sample_completions(o, {"x", "y"}, {{}}), Error);
    o.model = "/nonexistent/model.bin";
    EXPECT_THROW(sample_completions(o, {"x"}, {}), Error);
    o = options(model, tok);
    o.sampling.top_p = 7;
    EXPECT_THROW(sample_completions(o, {"x"}, {}), Error);
    o = options(model, tok);
    std::string long_prompt;
    for (int i = 0; i < 600; ++i) long_prompt += " cat";
    EXPECT_THROW(sample_completions(o, {long_prompt}, {}), Error);
    EXPECT_TRUE(sample_completions(options(model, tok), {}, {}).empty());
}
