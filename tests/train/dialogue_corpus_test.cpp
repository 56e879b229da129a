// The synthetic customer-service corpus: deterministic, well-formed, self-consistent and varied.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "train/dialogue_corpus.h"

namespace llmforge::train {
namespace {

TEST(DialogueCorpus, SameSeedSameBytesOtherSeedOtherText) {
    int differ = 0;
    for (uint64_t i = 0; i < 200; ++i) {
        EXPECT_EQ(dialogue_json(make_dialogue(1, i)), dialogue_json(make_dialogue(1, i)));
        differ += dialogue_json(make_dialogue(1, i)) != dialogue_json(make_dialogue(2, i));
    }
    // Short fixed-answer dialogues (a shipping question and its reply) can coincide by chance.
    EXPECT_GE(differ, 170);
}

TEST(DialogueCorpus, WellFormedConsistentAndVaried) {
    std::set<std::string> distinct, openings, topics;
    const std::regex order_re("#[A-H][0-9]{5}");
    int with_order = 0, asked_for_number = 0;
    constexpr int kN = 2000;
    for (uint64_t i = 0; i < kN; ++i) {
        const Dialogue d = make_dialogue(7, i);
        const std::string line = dialogue_json(d);
        const auto j = nlohmann::json::parse(line);  // valid JSON
        ASSERT_TRUE(j["messages"].is_array());
        ASSERT_GE(d.turns.size(), 3u);
        EXPECT_EQ(d.turns[0].role, "system");
        for (size_t t = 1; t < d.turns.size(); ++t) {
            EXPECT_EQ(d.turns[t].role, t % 2 == 1 ? "user" : "assistant") << line;
            EXPECT_FALSE(d.turns[t].content.empty());
        }
        EXPECT_EQ(d.turns.back().role, "assistant");
        distinct.insert(line);
        openings.insert(d.turns[1].content);
        topics.insert(d.topic);
        // Every order number in the dialogue is the customer's one order: the assistant never
        // names another.
        std::set<std::string> ids;
        for (const auto& t : d.turns)
            for (std::sregex_iterator it(t.content.begin(), t.content.end(), order_re), end; it != end; ++it)
                if (it->str() != "#A12345") ids.insert(it->str());  // the format example in "for example #A12345"
        EXPECT_LE(ids.size(), 1u) << line;
        if (!d.order_id.empty()) {
            ++with_order;
            EXPECT_EQ(*ids.begin(), d.order_id);
            // The first assistant turn after the customer gives the number names it.
            for (size_t t = 1; t + 1 < d.turns.size(); ++t) {
                std::string upper = d.turns[t].content;  // casual customers type "#a86657"
                for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                if (d.turns[t].role == "user" && upper.find(d.order_id) != std::string::npos) {
                    EXPECT_NE(d.turns[t + 1].content.find(d.order_id), std::string::npos) << line;
                    break;
                }
            }
        }
        for (const auto& t : d.turns)
            if (t.role == "assistant" && t.content.find("order number?") != std::string::npos) ++asked_for_number;
    }
    EXPECT_GE(distinct.size(), kN * 85 / 100);   // measured 88%
    EXPECT_GE(openings.size(), 800u);
    EXPECT_EQ(topics.size(), dialogue_topics().size() - 1);  // every topic but the greeting opener
    EXPECT_GT(with_order, kN / 3);
    EXPECT_GT(asked_for_number, 20);
}

}  // namespace
}  // namespace llmforge::train
