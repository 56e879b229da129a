// The retriever's training questions: for each knowledge passage (shop_db.h's shop_knowledge),
// questions written for this generator, varied with greetings, politeness, case and spelling
// mistakes; and customer turns of the chat corpus and of the DST generator, labelled with the
// passage their topic or intent needs. Deterministic in the seed.
#include <cctype>
#include <map>

#include "apps/shop/dst.h"
#include "apps/shop/retriever.h"
#include "apps/shop/generator_noise.h"
#include "core/random.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

namespace {

using Lines = std::vector<std::string>;

const std::map<std::string, Lines>& passage_questions() {
    static const std::map<std::string, Lines> k = {
        {"policy:returns", {"what is your return policy", "can i give back something i bought", "are returns free",
                            "what condition must items be in to return them", "return window length"}},
        {"policy:exchanges", {"do you do exchanges", "can i trade this for another size", "is exchanging free",
                              "exchange for a different colour"}},
        {"policy:refunds", {"how are refunds paid", "where does my refund go", "refund processing time",
                            "do refunds go back to paypal"}},
        {"policy:cancellation", {"can orders be cancelled", "cancel policy", "what if i want to cancel an order that shipped",
                                 "is there a cancellation fee"}},
        {"policy:address_change", {"can i edit the shipping address", "change delivery address before shipping",
                                   "redirect a shipped parcel", "update where my order goes"}},
        {"policy:shipping", {"shipping prices", "how long is standard delivery", "do you offer express",
                             "which countries do you ship to", "free delivery threshold"}},
        {"policy:delivery_problems", {"problem with my delivery", "parcel never came", "package arrived broken",
                                      "order is taking too long to arrive", "what if my parcel is missing"}},
        {"policy:payments", {"accepted payment options", "which cards do you take", "can i pay with paypal",
                             "payment failed", "do you accept gift cards"}},
        {"policy:discounts", {"how do discount codes work", "rules for promo codes", "code minimum order value",
                              "can codes be combined", "newsletter discount"}},
        {"policy:account", {"account help", "reset my password", "change account email", "trouble signing in"}},
        {"article:1", {"steps to return an item", "how do i print the return label", "where do i drop off a return",
                       "return shipping label"}},
        {"article:2", {"exchange an item for another size", "how long does an exchange take", "size swap process"}},
        {"article:3", {"when is my refund issued", "refund still not on my statement", "how many days for a refund"}},
        {"article:4", {"delivery options and costs", "standard vs express shipping", "cost of delivery under $50"}},
        {"article:5", {"shipping abroad", "international delivery time", "do i pay import duties",
                       "shipping to the united kingdom"}},
        {"article:6", {"track my order", "where is the tracking number", "how soon do orders ship",
                       "order status information"}},
        {"article:7", {"late parcel", "delivery is overdue", "my order missed its estimated date",
                       "carrier delay"}},
        {"article:8", {"tracking says delivered but nothing arrived", "parcel shows delivered, not received",
                       "package stolen from doorstep"}},
        {"article:9", {"item arrived damaged", "broken product in the box", "replacement for a damaged item",
                       "do i have to send back a damaged item"}},
        {"article:10", {"cancel my order", "stop an order before it ships", "refuse a delivery"}},
        {"article:11", {"change the address of my order", "wrong address on the order", "fix the delivery address"}},
        {"article:12", {"payment methods", "do you take american express", "pay with gift card"}},
        {"article:13", {"card declined", "why did my payment fail", "billing address mismatch",
                        "bank blocked my payment"}},
        {"article:14", {"discount code not working", "expired promo code", "one code per order",
                        "how to get 10% off"}},
        {"article:15", {"forgot password", "password reset email", "reset link expired"}},
        {"article:16", {"change my account email", "update email on my profile", "confirm my new email"}},
        {"article:17", {"how to wash this", "is it machine washable", "care instructions", "clean leather or wool"}},
        {"article:18", {"privacy policy", "do you share my data", "who can see my orders",
                        "will you ask for my password"}},
    };
    return k;
}

// What a corpus topic or a DST intent needs.
const std::map<std::string, std::string>& topic_passage() {
    static const std::map<std::string, std::string> k = {
        {"order_status", "article:6"},           {"shipping", "policy:shipping"},
        {"delivery_problem", "policy:delivery_problems"}, {"returns", "policy:returns"},
        {"return", "policy:returns"},            {"refund", "policy:refunds"},
        {"cancellation", "policy:cancellation"}, {"cancel", "policy:cancellation"},
        {"address_change", "policy:address_change"}, {"change_address", "policy:address_change"},
        {"product_question", "article:17"},      {"payment", "policy:payments"},
        {"discount", "policy:discounts"},        {"account", "policy:account"},
    };
    return k;
}

const Lines kPrefixes = {"", "", "", "hi, ", "hello, ", "quick question: ", "can you help? ", "i need info: "};
const Lines kSuffixes = {"", "", "", "?", " please", " thanks", "??"};


}  // namespace

std::vector<std::pair<std::string, std::string>> retrieval_training_questions(uint64_t seed, int64_t per_passage) {
    std::vector<std::pair<std::string, std::string>> out;
    Draws d(seed * 0x9e3779b97f4a7c15ull + 0x7e7);
    for (const auto& [id, lines] : passage_questions())
        for (int64_t i = 0; i < per_passage; ++i) {
            std::string t = d.pick(kPrefixes) + d.pick(lines) + d.pick(kSuffixes);
            if (d.chance(20)) t = one_typo(d, t);
            out.emplace_back(std::move(t), id);
        }
    // Customer turns of the corpus (the dialogue's first user turn names its topic) and of the DST
    // generator, as many as the written questions.
    const int64_t n = per_passage * static_cast<int64_t>(passage_questions().size());
    for (int64_t i = 0; i < n / 2; ++i) {
        const train::Dialogue dl = train::make_dialogue(seed + 11, static_cast<uint64_t>(i));
        const auto it = topic_passage().find(dl.topic);
        if (it == topic_passage().end()) continue;
        for (const auto& turn : dl.turns)
            if (turn.role == "user") {
                if (turn.content.size() > 12) out.emplace_back(turn.content, it->second);  // not "Hi!"
                break;
            }
    }
    for (const auto& [text, label] : dst_training_utterances(seed + 12, n / 28 + 1)) {
        const auto it = topic_passage().find(label);
        if (it != topic_passage().end()) out.emplace_back(text, it->second);
    }
    return out;
}

}  // namespace llmforge::apps
