// generate(): stop strings (also when split across tokens), streaming chunks, cancellation and
// max tokens, on the real TinyStories 260K model (its greedy story is known from llama2.c).
#include <gtest/gtest.h>

#include "runtime/generator.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

struct Fixture {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
    std::string story;  // llama2.c's greedy output (no trailing newline)
};

bool load(Fixture& f) {
    const std::string m = asset("llama2c-stories260K/stories260K.bin");
    const std::string t = asset("llama2c-stories260K/tok512.bin");
    const std::string e = asset("llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt");
    if (m.empty() || t.empty() || e.empty()) return false;
    f.model = Model::load(m, t);
    f.tok = Tokenizer::create(f.model->vocab());
    f.story = read_file(e);
    f.story.pop_back();  // llama2.c's final newline
    return true;
}

GenerateResult run(Fixture& f, GenerateParams gp, std::string* streamed = nullptr, int cancel_after = -1) {
    Context ctx(*f.model, ContextParams{512, 512, 2});
    SamplerParams sp;
    sp.temperature = 0;
    Sampler s(sp);
    int chunks = 0;
    return generate(ctx, *f.tok, s, {f.tok->bos()}, gp, [&](std::string_view piece) {
        if (streamed) *streamed += piece;
        return ++chunks != cancel_after;
    });
}

TEST(Generator, GreedyStreamsTheReferenceStory) {
    Fixture f;
    if (!load(f)) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K";
    GenerateParams gp;
    gp.max_tokens = 256;
    gp.stop_on_bos = true;
    std::string streamed;
    GenerateResult r = run(f, gp, &streamed);
    EXPECT_EQ(r.text, f.story);
    EXPECT_EQ(streamed, f.story);
    EXPECT_EQ(r.tokens.size(), 256u);
    EXPECT_EQ(r.finish_reason, "length");
}

TEST(Generator, StopStringEndsTextBeforeIt) {
    Fixture f;
    if (!load(f)) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K";
    // "named Lily" spans several tokens; the text must end right before it.
    for (const std::string stop : {"named Lily", "park.", "\n"}) {
        GenerateParams gp;
        gp.max_tokens = 256;
        gp.stop = {"never-appears", stop};
        std::string streamed;
        GenerateResult r = run(f, gp, &streamed);
        const size_t at = f.story.find(stop);
        ASSERT_NE(at, std::string::npos);
        EXPECT_EQ(r.text, f.story.substr(0, at)) << stop;
        EXPECT_EQ(streamed, r.text) << "streamed text must never include the stop string: " << stop;
        EXPECT_EQ(r.finish_reason, "stop");
    }
}

TEST(Generator, MaxTokensAndCancel) {
    Fixture f;
    if (!load(f)) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K";
    GenerateParams gp;
    gp.max_tokens = 10;
    GenerateResult r = run(f, gp);
    EXPECT_EQ(r.tokens.size(), 10u);
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.text, f.story.substr(0, r.text.size()));
    gp.max_tokens = 100;
    std::string streamed;
    GenerateResult c = run(f, gp, &streamed, 3);
    EXPECT_EQ(c.finish_reason, "cancelled");
    EXPECT_LT(c.tokens.size(), 100u);
}

}  // namespace
