// The byte-level BPE learner: merges a hand-worked corpus must give, determinism, and the written
// tokenizer.json loading through the Hugging Face loader with lossless round trips on real text.
#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/bpe_learner.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {
namespace {

const std::vector<std::string> kSpecial = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

std::string merge_text(const BpeLearnResult& r, size_t i) {
    return r.tokens[r.merges[i].first] + " " + r.tokens[r.merges[i].second];
}

TEST(BpeLearner, FirstMergesOfAHandWorkedCorpus) {
    // One word "aaabdaaabac": pairs aa x4, ab x2, bd, da, ba, ac. Merge 1 is "a a"; the word becomes
    // [aa a b d aa a b a c], where (aa, a) and (a, b) both occur twice: the tie goes to the smaller
    // pair of ids, (a, b), because 'a' (a byte token) has a smaller id than the new "aa".
    BpeLearner l;
    l.add_text("aaabdaaabac");
    l.add_text("aaabdaaabac");  // twice, so pairs clear --min-frequency 2
    BpeLearnResult r = l.learn(3 + 256 + 3, kSpecial);
    ASSERT_EQ(r.merges.size(), 3u);
    EXPECT_EQ(merge_text(r, 0), "a a");
    EXPECT_EQ(merge_text(r, 1), "a b");
    EXPECT_EQ(merge_text(r, 2), "aa ab");
    EXPECT_EQ(r.tokens[3 + 256], "aa");
    EXPECT_EQ(r.tokens[0], "<|endoftext|>");
}

TEST(BpeLearner, WordsDoNotMergeAcrossPreTokenizerBoundaries) {
    BpeLearner l;
    for (int i = 0; i < 10; ++i) l.add_text("ab ab ab");
    BpeLearnResult r = l.learn(3 + 256 + 10, kSpecial);
    for (size_t i = 0; i < r.merges.size(); ++i) {
        const std::string m = merge_text(r, i);
        // "Ġ" (U+0120) is the byte-level space; "b Ġ" would join two words.
        EXPECT_EQ(m.find("b \xc4\xa0"), std::string::npos) << m;
    }
    EXPECT_EQ(r.tokens.back(), "\xc4\xa0" "ab");  // " ab" is a word of its own
}

std::string corpus() {
    std::string txt = test::read_file(test::asset("llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt"));
    std::string prose;
    for (int i = 0; i < 20; ++i) prose += txt;
    return prose;
}

TEST(BpeLearner, TrainedVocabularyLoadsAndRoundTripsRealText) {
    LF_REQUIRE_ASSET(story, "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt");
    const std::string prose = test::read_file(story);
    BpeLearner l;
    l.add_text(corpus());
    l.add_text("Prices: $4.99, 30% off! Café, naïve, 日本語, emoji 🙂.\n\tTabs  and   spaces.");
    BpeLearnResult r = l.learn(600, kSpecial, 2);
    const BpeLearnResult r2 = [&] {
        BpeLearner l2;
        l2.add_text(corpus());
        l2.add_text("Prices: $4.99, 30% off! Café, naïve, 日本語, emoji 🙂.\n\tTabs  and   spaces.");
        return l2.learn(600, kSpecial, 2);
    }();
    EXPECT_EQ(r.merges, r2.merges);  // deterministic
    const std::string json = bpe_tokenizer_json(r);
    const std::string cfg = bpe_tokenizer_config_json("<|im_end|>", "<|endoftext|>");
    Vocab v = hf_tokenizer_json_parse(json, cfg);
    auto tok = Tokenizer::create(v);
    ASSERT_EQ(tok->n_vocab(), static_cast<int32_t>(r.tokens.size()));
    EXPECT_EQ(tok->eos(), 2);
    EXPECT_FALSE(v.chat_template.empty());
    for (const std::string& s : {prose, std::string("Café, naïve, 日本語 and 🙂 — \"quoted\"\r\n"), std::string(""),
                                 std::string("   leading spaces"), std::string("x<|im_end|>y")}) {
        const auto ids = tok->encode(s, false, false);
        EXPECT_EQ(tok->decode(ids), s);
    }
    // Learned merges compress English prose well below one token per 2 bytes.
    const auto ids = tok->encode(prose, false, false);
    EXPECT_LT(ids.size() * 2, prose.size()) << ids.size() << " tokens for " << prose.size() << " bytes";
    // Special tokens are single ids when parsed.
    const auto sp = tok->encode("<|im_start|>user\nhi<|im_end|>", false, true);
    ASSERT_GE(sp.size(), 3u);
    EXPECT_EQ(sp.front(), 1);
    EXPECT_EQ(sp.back(), 2);
}

TEST(BpeLearner, DigitsAreNeverMerged) {
    BpeLearner l;
    for (int i = 0; i < 50; ++i) l.add_text("order 12345 costs 4999 on 2024 and 12345 again abc123");
    BpeLearnResult r = l.learn(3 + 256 + 40, kSpecial);
    ASSERT_FALSE(r.merges.empty());
    for (const std::string& t : r.tokens)
        if (t.size() > 1 && t.find_first_of("0123456789") != std::string::npos) ADD_FAILURE() << "merged digit token " << t;
}

TEST(BpeLearner, TooSmallVocabularyIsAClearError) {
    BpeLearner l;
    l.add_text("hello");
    try {
        l.learn(100, kSpecial);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at least 259"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace llmforge
