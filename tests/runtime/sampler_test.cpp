// Sampler chain: each stage's effect on known distributions, seeds, and bad parameters; the
// chain's seams (custom stages that read token texts, greedy as the last stage, accept() reaching
// every stage) and seeded results pinned to those of the sampler before it became a chain.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>

#include "core/error.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;

namespace {

std::map<int, int> histogram(SamplerParams p, const std::vector<float>& logits, int draws) {
    Sampler s(p);
    std::map<int, int> h;
    for (int i = 0; i < draws; ++i) ++h[s.sample(logits.data(), logits.size())];
    return h;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
    SamplerParams p;
    p.temperature = 0;
    Sampler s(p);
    std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
    EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
    SamplerParams p;
    p.temperature = 1.5f;
    p.top_k = 1;
    auto h = histogram(p, {0.0f, 1.0f, 0.5f}, 200);
    EXPECT_EQ(h.size(), 1u);
    EXPECT_EQ(h[1], 200);
}

TEST(Sampler, TemperatureOneFollowsSoftmax) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    auto h = histogram(p, l, 20000);
    EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.02);
    EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.02);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.min_p = 0;
    p.top_p = 0.75f;  // 0.5 + 0.3 >= 0.75: ids 0 and 1 survive
    auto h = histogram(p, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 5000);
    EXPECT_EQ(h.count(2), 0u);
    EXPECT_NEAR(h[0] / 5000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0.5f;  // keep p >= 0.25: ids 0 (0.5) and 1 (0.3)
    auto h = histogram(p, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 3000);
    EXPECT_EQ(h.count(2), 0u);
    EXPECT_GT(h[1], 0);
}

TEST(Sampler, PenaltiesChangeGreedyChoice) {
    SamplerParams p;
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    std::vector<float> l = {2.0f, 1.5f};
    s.accept(0);  // 2.0 / 2 = 1.0 < 1.5
    EXPECT_EQ(s.sample(l.data(), 2), 1);
    SamplerParams q;
    q.temperature = 0;
    q.frequency_penalty = 0.3f;
    Sampler f(q);
    f.accept(0);
    EXPECT_EQ(f.sample(l.data(), 2), 0);  // 2.0 - 0.3 = 1.7 > 1.5
    f.accept(0);
    EXPECT_EQ(f.sample(l.data(), 2), 1);  // 2.0 - 0.6 = 1.4 < 1.5
    SamplerParams r;
    r.temperature = 0;
    r.presence_penalty = 0.6f;
    Sampler pr(r);
    pr.accept(0);
    EXPECT_EQ(pr.sample(l.data(), 2), 1);
}

TEST(Sampler, SameSeedSameSequence) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.seed = 1234;
    std::vector<float> l(50);
    for (int i = 0; i < 50; ++i) l[i] = std::sin(i * 1.7f);
    Sampler a(p), b(p);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(a.sample(l.data(), 50), b.sample(l.data(), 50));
}

TEST(Sampler, LogitBiasMinus100BansTheArgmaxUnderGreedy) {
    SamplerParams p;
    p.temperature = 0;
    const std::vector<float> l = {0.1f, 9.0f, 3.0f, -2.0f};
    {
        Sampler s(p);
        EXPECT_EQ(s.sample(l.data(), 4), 1);
    }
    p.logit_bias = {{1, -100.0f}};
    Sampler s(p);
    EXPECT_EQ(s.sample(l.data(), 4), 2);  // the runner-up
    p.logit_bias = {{1, -100.0f}, {2, -100.0f}};
    Sampler t(p);
    EXPECT_EQ(t.sample(l.data(), 4), 0);
    // The caller's logits are not modified.
    EXPECT_EQ(l[1], 9.0f);
}

TEST(Sampler, LogitBiasPlus100ForcesAToken) {
    SamplerParams p;
    p.temperature = 0;
    p.logit_bias = {{3, 100.0f}};
    const std::vector<float> l = {0.1f, 9.0f, 3.0f, -2.0f};
    Sampler g(p);
    EXPECT_EQ(g.sample(l.data(), 4), 3);
    // Sampling at a high temperature with every filter off: still only token 3.
    p.temperature = 2.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    auto h = histogram(p, l, 2000);
    EXPECT_EQ(h.size(), 1u);
    EXPECT_EQ(h[3], 2000);
}

TEST(Sampler, LogitBiasShiftsTheSampledDistribution) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    // Equal logits; a bias of ln(3) on token 0 makes it 3 times as likely as each other: 3/5.
    const std::vector<float> l = {0.0f, 0.0f, 0.0f};
    p.logit_bias = {{0, std::log(3.0f)}};
    auto h = histogram(p, l, 20000);
    EXPECT_NEAR(h[0] / 20000.0, 0.6, 0.02);
    EXPECT_NEAR(h[1] / 20000.0, 0.2, 0.02);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
    // A negative bias of -ln(2) on token 2: 1 : 1 : 0.5.
    p.logit_bias = {{2, -std::log(2.0f)}};
    h = histogram(p, l, 20000);
    EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
    EXPECT_NEAR(h[0] / 20000.0, 0.4, 0.02);
}

TEST(Sampler, LogitBiasComesBeforePenaltiesAndTopK) {
    // top_k 1 after a +5 bias on token 0: only token 0 survives the cut.
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 1;
    p.logit_bias = {{0, 5.0f}};
    auto h = histogram(p, {0.0f, 3.0f, 2.0f}, 200);
    EXPECT_EQ(h[0], 200);
    // The bias is applied before the repetition penalty: (1 + 1) / 2 = 1 < 1.5.
    SamplerParams q;
    q.temperature = 0;
    q.repeat_penalty = 2.0f;
    q.logit_bias = {{0, 1.0f}};
    Sampler s(q);
    const std::vector<float> l = {1.0f, 1.5f};
    EXPECT_EQ(s.sample(l.data(), 2), 0);  // 2.0 > 1.5 before any history
    s.accept(0);
    EXPECT_EQ(s.sample(l.data(), 2), 1);
}

TEST(Sampler, LogitBiasOutsideTheVocabularyIsIgnoredAndBadValuesRejected) {
    SamplerParams p;
    p.temperature = 0;
    p.logit_bias = {{1000, 100.0f}};
    Sampler s(p);
    const std::vector<float> l = {0.0f, 1.0f};
    EXPECT_EQ(s.sample(l.data(), 2), 1);
    p.logit_bias = {{0, 100.5f}};
    EXPECT_THROW(Sampler{p}, Error);
    p.logit_bias = {{0, std::nanf("")}};
    EXPECT_THROW(Sampler{p}, Error);
    p.logit_bias = {{-1, 1.0f}};
    EXPECT_THROW(Sampler{p}, Error);
}

TEST(Sampler, BadParametersAreRejected) {
    SamplerParams p;
    p.top_p = 0;
    EXPECT_THROW(Sampler{p}, Error);
    p = {};
    p.temperature = -1;
    EXPECT_THROW(Sampler{p}, Error);
    p = {};
    p.min_p = 2;
    EXPECT_THROW(Sampler{p}, Error);
}

// ---- the chain's seams -----------------------------------------------------------------------

// A SentencePiece vocabulary of whole words, so stages can be tested on token texts.
std::unique_ptr<Tokenizer> word_tokenizer() {
    Vocab v;
    v.model = "llama";
    const std::string sp = "\xE2\x96\x81";  // SentencePiece's space
    v.tokens = {"<unk>", "<s>", "</s>", sp + "cat", sp + "bad", sp + "badger", sp + "good", sp + "dog"};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
               TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal};
    for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(-static_cast<float>(i));
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return Tokenizer::create(v);
}

// Drops every candidate whose text contains `word`: what a banned-words rule or a grammar does,
// reading the vocabulary through the SamplerContext.
class BanWordStage : public SamplerStage {
public:
    explicit BanWordStage(std::string word) : word_(std::move(word)) {}
    const char* name() const override { return "ban-word"; }
    void apply(Candidates& c, const SamplerContext& ctx) override {
        if (ctx.tokenizer == nullptr) fail("ban-word: this stage needs the vocabulary's texts (no tokenizer given)");
        c.remove_if([&](const Candidate& x) { return ctx.tokenizer->token_to_piece(x.id).find(word_) != std::string::npos; });
    }

private:
    std::string word_;
};

TEST(SamplerChain, ACustomStageBansTokensByTheirText) {
    const auto tok = word_tokenizer();
    // "bad" is the argmax, "badger" the runner-up, "good" third.
    const std::vector<float> l = {0.0f, 0.0f, 0.0f, 1.0f, 5.0f, 4.0f, 3.0f, 2.0f};
    SamplerParams p;
    p.temperature = 0;
    {
        Sampler s(p, tok.get());
        EXPECT_EQ(s.sample(l.data(), 8), 4);
    }
    Sampler g(p, tok.get());
    g.add_stage(std::make_unique<BanWordStage>("bad"));
    EXPECT_EQ(g.sample(l.data(), 8), 6) << "greedy must pick the best token whose text has no 'bad'";
    // Drawing: the banned texts never come out, whatever the seed.
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    Sampler d(p, tok.get());
    d.add_stage(std::make_unique<BanWordStage>("bad"), StageSlot::kFirst);
    std::map<int, int> h;
    for (int i = 0; i < 2000; ++i) ++h[d.sample(l.data(), 8)];
    EXPECT_EQ(h.count(4) + h.count(5), 0u);
    EXPECT_GT(h[6], 0);
    EXPECT_GT(h[3], 0);
    // A stage that bans everything is a clear error naming it, not a crash.
    Sampler all(p, tok.get());
    all.add_stage(std::make_unique<BanWordStage>(""));
    try {
        all.sample(l.data(), 8);
        ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'ban-word' stage left no candidate"), std::string::npos) << e.what();
    }
    // Without a vocabulary the stage says what it needs.
    Sampler bare(p);
    bare.add_stage(std::make_unique<BanWordStage>("bad"));
    EXPECT_THROW(bare.sample(l.data(), 8), Error);
}

// Records what it saw of each step and every accepted token; optionally removes the best
// candidate it is shown.
class SpyStage : public SamplerStage {
public:
    explicit SpyStage(bool drop_best = false) : drop_best_(drop_best) {}
    const char* name() const override { return "spy"; }
    void apply(Candidates& c, const SamplerContext&) override {
        seen.push_back(c.items.size());
        sorted.push_back(c.sorted);
        if (drop_best_ && !c.items.empty()) {
            c.sort();
            const int32_t best = c.items[0].id;
            c.remove_if([&](const Candidate& x) { return x.id == best; });
        }
    }
    void accept(int32_t token, const SamplerContext&) override { accepted.push_back(token); }
    void reset() override { accepted.clear(); }
    std::vector<size_t> seen;
    std::vector<bool> sorted;
    std::vector<int32_t> accepted;

private:
    bool drop_best_;
};

std::vector<std::string> stage_names(const Sampler& s) {
    std::vector<std::string> out;
    for (const SamplerStage* st : s.stages()) out.push_back(st->name());
    return out;
}

TEST(SamplerChain, GreedyIsTheLastStageAfterTheFilters) {
    SamplerParams p;  // top-k 40, top-p 0.95, min-p 0.05
    p.temperature = 0;
    p.logit_bias = {{1, 1.0f}};
    p.repeat_penalty = 1.1f;
    EXPECT_EQ(stage_names(Sampler(p)),
              (std::vector<std::string>{"logit-bias", "penalties", "top-k", "top-p", "min-p", "greedy"}));
    p.temperature = 0.7f;
    EXPECT_EQ(stage_names(Sampler(p)), (std::vector<std::string>{"logit-bias", "penalties", "top-k", "top-p", "min-p",
                                                                  "temperature", "draw"}));
    // A stage added before the pick sees the filters' survivors (top-k 2: two, sorted), and the
    // greedy pick chooses among what it leaves: dropping the argmax gives the runner-up.
    SamplerParams q;
    q.temperature = 0;
    q.top_k = 2;
    q.top_p = 1;
    q.min_p = 0;
    Sampler s(q);
    auto spy = std::make_unique<SpyStage>(true);
    SpyStage* seen = spy.get();
    s.add_stage(std::move(spy));
    EXPECT_EQ(stage_names(s), (std::vector<std::string>{"top-k", "spy", "greedy"}));
    const std::vector<float> l = {0.5f, 3.0f, 2.0f, 2.5f, -1.0f};
    EXPECT_EQ(s.sample(l.data(), 5), 3);
    ASSERT_EQ(seen->seen.size(), 1u);
    EXPECT_EQ(seen->seen[0], 2u);
    EXPECT_TRUE(seen->sorted[0]);
    // First of all (before top-k): it sees the whole vocabulary, and top-k then works on the rest.
    Sampler f(q);
    auto first = std::make_unique<SpyStage>(true);
    SpyStage* seen_first = first.get();
    f.add_stage(std::move(first), StageSlot::kFirst);
    EXPECT_EQ(f.sample(l.data(), 5), 3);
    EXPECT_EQ(seen_first->seen[0], 5u);
}

TEST(SamplerChain, GreedyAfterTheFiltersKeepsTodaysArgmax) {
    // Whatever the filters, greedy = argmax after bias and penalties, ties to the lowest id.
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    for (int trial = 0; trial < 200; ++trial) {
        const int V = 1 + static_cast<int>(rng() % 60);
        std::vector<float> l(V);
        for (auto& x : l) x = std::round(u(rng) * 2) / 2;  // coarse values: many ties
        SamplerParams p;
        p.temperature = 0;
        p.top_k = static_cast<int32_t>(rng() % 8);
        p.top_p = trial % 3 == 0 ? 1.0f : 0.3f + 0.1f * (rng() % 7);
        p.min_p = trial % 4 == 0 ? 0.0f : 0.1f * (rng() % 9);
        p.repeat_penalty = 1.0f + 0.25f * (rng() % 3);
        p.presence_penalty = 0.5f * (rng() % 2);
        p.logit_bias = {{static_cast<int32_t>(rng() % V), u(rng)}};
        const std::vector<int32_t> history = {static_cast<int32_t>(rng() % V), static_cast<int32_t>(rng() % V)};
        Sampler s(p);
        for (int32_t t : history) s.accept(t);
        // The reference: bias, then penalties, then the first maximum.
        std::vector<float> ref = l;
        ref[p.logit_bias[0].first] += p.logit_bias[0].second;
        std::map<int32_t, int> count;
        for (int32_t t : history) ++count[t];
        for (const auto& [id, n] : count) {
            float& x = ref[id];
            x = x > 0 ? x / p.repeat_penalty : x * p.repeat_penalty;
            x -= p.presence_penalty;
        }
        const int32_t want = static_cast<int32_t>(std::max_element(ref.begin(), ref.end()) - ref.begin());
        ASSERT_EQ(s.sample(l.data(), V), want) << "trial " << trial;
    }
}

TEST(SamplerChain, AcceptAndResetReachEveryStage) {
    SamplerParams p;
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    auto a = std::make_unique<SpyStage>(), b = std::make_unique<SpyStage>();
    SpyStage* first = a.get();
    SpyStage* last = b.get();
    s.add_stage(std::move(a), StageSlot::kFirst);
    s.add_stage(std::move(b));
    for (int32_t t : {0, 3, 0}) s.accept(t);
    EXPECT_EQ(first->accepted, (std::vector<int32_t>{0, 3, 0}));
    EXPECT_EQ(last->accepted, (std::vector<int32_t>{0, 3, 0}));
    // The built-in penalties stage got them too: 2.0 / 2 = 1.0 < 1.5.
    const std::vector<float> l = {2.0f, 1.5f, 0.0f, 0.0f};
    EXPECT_EQ(s.sample(l.data(), 4), 1);
    s.reset();
    EXPECT_TRUE(first->accepted.empty());
    EXPECT_TRUE(last->accepted.empty());
    EXPECT_EQ(s.sample(l.data(), 4), 0) << "reset must clear the penalties' history";
}

TEST(SamplerChain, SeededDrawsEqualThoseOfThePreChainSampler) {
    // Pinned from the sampler before it became a chain of stages (same logits, params, seed 42,
    // each draw accepted): the chain must give the very same tokens.
    std::vector<float> l(300);
    for (int i = 0; i < 300; ++i) l[i] = 3.0f * std::sin(i * 0.37f) + 0.01f * (i % 7);
    struct Case {
        float t;
        int32_t k;
        float top_p, min_p, repeat, freq, presence;
        std::vector<std::pair<int32_t, float>> bias;
        std::vector<int32_t> want;
    };
    const std::vector<Case> cases = {
        {0.8f, 40, 0.95f, 0.05f, 1.0f, 0, 0, {},
         {107, 73, 107, 89, 275, 208, 90, 72, 4, 225, 174, 21, 292, 73, 141, 207, 107, 259, 293, 55, 107, 89, 106, 208}},
        {1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0, {},
         {227, 6, 227, 4, 228, 123, 294, 56, 39, 141, 174, 260, 108, 6, 121, 18, 227, 173, 208, 89, 274, 38, 275, 276}},
        {1.3f, 0, 0.9f, 0.0f, 1.1f, 0.2f, 0.3f, {{5, 2.0f}, {17, -100.0f}},
         {159, 54, 142, 242, 53, 55, 156, 158, 21, 141, 5, 122, 257, 74, 155, 109, 210, 175, 293, 89, 206, 72, 226, 157}},
        {0.7f, 12, 1.0f, 0.1f, 1.3f, 0, 0, {},
         {157, 276, 38, 293, 106, 55, 191, 123, 242, 72, 174, 140, 90, 39, 22, 158, 73, 259, 208, 89, 209, 225, 292, 4}},
        {0.0f, 40, 0.95f, 0.05f, 1.2f, 0.1f, 0.1f, {{3, 1.5f}},
         {3, 3, 3, 3, 174, 293, 55, 208, 89, 242, 123, 276, 157, 4, 38, 191, 3, 72, 225, 106, 259, 140, 21, 5}},
    };
    for (size_t c = 0; c < cases.size(); ++c) {
        const Case& k = cases[c];
        SamplerParams p;
        p.temperature = k.t;
        p.top_k = k.k;
        p.top_p = k.top_p;
        p.min_p = k.min_p;
        p.repeat_penalty = k.repeat;
        p.frequency_penalty = k.freq;
        p.presence_penalty = k.presence;
        p.logit_bias = k.bias;
        p.seed = 42;
        Sampler s(p);
        std::vector<int32_t> got;
        for (size_t i = 0; i < k.want.size(); ++i) {
            got.push_back(s.sample(l.data(), 300));
            s.accept(got.back());
        }
        EXPECT_EQ(got, k.want) << "case " << c;
    }
}

}  // namespace
