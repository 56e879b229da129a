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
    int with_order = 0, asked_for_number = 0, facts_checked = 0;
    constexpr int kN = 2000;
    for (uint64_t i = 0; i < kN; ++i) {
        const Dialogue d = make_dialogue(7, i);
        const std::string line = dialogue_json(d);
        const auto j = nlohmann::json::parse(line);  // valid JSON
        ASSERT_TRUE(j["messages"].is_array());
        ASSERT_GE(d.turns.size(), 3u);
        EXPECT_EQ(d.turns[0].role, "system");
        // user, [tool], assistant, user, [tool], assistant, …: a tool turn only right after a user turn.
        std::string prev = "system";
        for (size_t t = 1; t < d.turns.size(); ++t) {
            const std::string& role = d.turns[t].role;
            if (role == "tool") EXPECT_EQ(prev, "user") << line;
            else EXPECT_EQ(role, prev == "assistant" || prev == "system" ? "user" : "assistant") << line;
            EXPECT_FALSE(d.turns[t].content.empty());
            prev = role;
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
                    // ... and the tool turn before it carries the order's facts.
                    ASSERT_EQ(d.turns[t + 1].role, "tool") << line;
                    EXPECT_EQ(d.turns[t + 1].content.rfind("order " + d.order_id + " | status ", 0), 0u) << line;
                    ASSERT_LT(t + 2, d.turns.size());
                    EXPECT_NE(d.turns[t + 2].content.find("{id}"), std::string::npos) << line;
                    break;
                }
            }
        }
        for (const auto& t : d.turns)
            if (t.role == "assistant" && t.content.find("order number?") != std::string::npos) ++asked_for_number;
        // Whatever a reply states about the order (dates, amounts, tracking numbers) stands in the
        // tool turn the chat system gave it: the model can copy, it never has to invent.
        static const std::regex fact_re(
            "(January|February|March|April|May|June|July|August|September|October|November|December) [0-9]+|"
            "\\$[0-9]+\\.[0-9]{2}|\\b(1Z|FX|94|DH)[A-Z0-9]{10}\\b");
        // Every slot a reply refers to has a value where it is used: order slots after an order's
        // tool turn, product slots after a product's.
        static const std::regex slot_re("\\{([a-z_]+)\\}");
        static const std::set<std::string> product_slots = {"material", "sizes", "price"},
                                            free_slots = {"code", "new_address"};
        std::string tool;
        for (const auto& t : d.turns) {
            if (t.role == "tool") tool = t.content;
            if (t.role != "assistant") continue;
            for (std::sregex_iterator it(t.content.begin(), t.content.end(), slot_re), end; it != end; ++it) {
                const std::string name = (*it)[1];
                if (free_slots.count(name)) continue;
                const bool product = product_slots.count(name) || (name == "product" && tool.rfind("product ", 0) == 0);
                EXPECT_EQ(tool.rfind(product ? "product " : "order ", 0), 0u) << name << " in " << line;
            }
            std::vector<std::string> unfilled;
            const std::string shown = lexicalize(t.content, d.slots, &unfilled);
            EXPECT_TRUE(unfilled.empty()) << line;
            EXPECT_EQ(shown.find('{'), std::string::npos) << shown;
            if (tool.rfind("order ", 0) != 0) continue;
            for (std::sregex_iterator it(shown.begin(), shown.end(), fact_re), end; it != end; ++it) {
                const bool policy = it->str() == "$50.00" || it->str() == "$4.99" || it->str() == "$9.99";
                if (!policy) EXPECT_NE(tool.find(it->str()), std::string::npos) << it->str() << " in " << line;
                ++facts_checked;
            }
        }
    }
    EXPECT_GE(distinct.size(), kN * 85 / 100);   // measured 88%
    EXPECT_GE(openings.size(), 800u);
    EXPECT_EQ(topics.size(), dialogue_topics().size() - 1);  // every topic but the greeting opener
    EXPECT_GT(with_order, kN / 3);
    EXPECT_GT(asked_for_number, 20);
    EXPECT_GT(facts_checked, 1000);
}

}  // namespace
}  // namespace llmforge::train

namespace llmforge::train {
namespace {

TEST(Lexicalize, FillsSlotsWholeOrStreamedInAnyPieces) {
    const SlotValues v = {{"id", "#C48213"}, {"eta", "May 4"}, {"tracking", "1ZABCDEFGHJK"}};
    const std::string text = "Order {id} ships; tracking {tracking}, by {eta}. {carrier} {not a slot} {x";
    std::vector<std::string> unfilled;
    const std::string whole = lexicalize(text, v, &unfilled);
    EXPECT_EQ(whole, "Order #C48213 ships; tracking 1ZABCDEFGHJK, by May 4. the carrier {not a slot} {x");
    EXPECT_EQ(unfilled, std::vector<std::string>{"carrier"});
    // Streamed one byte, two bytes, … at a time: the same text, and nothing of a slot reference leaks.
    for (size_t step = 1; step <= 7; ++step) {
        Lexicalizer lex(v);
        std::string out;
        for (size_t i = 0; i < text.size(); i += step) {
            const std::string piece = lex.push(text.substr(i, step));
            EXPECT_EQ(piece.find("{id"), std::string::npos) << piece;
            EXPECT_EQ(piece.find("{eta"), std::string::npos) << piece;
            out += piece;
        }
        out += lex.finish();
        EXPECT_EQ(out, whole) << "step " << step;
        EXPECT_EQ(lex.unfilled(), std::vector<std::string>{"carrier"});
    }
    // A brace that cannot open a slot is not held back.
    Lexicalizer lex(v);
    EXPECT_EQ(lex.push("a {B"), "a {B");
    EXPECT_EQ(lex.push(" {"), " ");
    EXPECT_EQ(lex.push("id} done"), "#C48213 done");
}

}  // namespace
}  // namespace llmforge::train
