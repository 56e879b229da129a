// The shop assistant's turn planning (apps/shop/assistant.h) on a real database with the shipped
// DST and retriever models: sessions that survive reopening the database, two customers who never
// see each other's orders or turns, the lookups that become the tool turn (the database's own
// facts, in the corpus's line format), knowledge passages for policy questions only, long-term
// memory of an order named before the window, and one clear line for an unknown session.
#include <gtest/gtest.h>

#include "apps/shop/assistant.h"
#include "apps/shop/grounding.h"
#include "core/error.h"
#include "test_util.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {
namespace {

struct Shop {
    std::string db;
    std::string alice, bob;  // two customers with orders
    OrderRecord alice_order, bob_order;
};

Shop make_shop() {
    Shop s;
    s.db = test::temp_dir() + "/shop.db";
    ShopInitOptions o;
    o.seed = 2, o.customers = 30, o.orders = 120;  // seed 2: orders the default model never saw
    ShopDb::init(s.db, o);
    ShopDb db(s.db);
    for (const auto& c : db.customers()) {
        auto orders = db.orders_of(c.id);
        if (orders.empty()) continue;
        if (s.alice.empty()) s.alice = c.id, s.alice_order = orders[0];
        else if (s.bob.empty()) s.bob = c.id, s.bob_order = orders[0];
    }
    return s;
}

AssistantOptions options(const std::string& db) {
    AssistantOptions o;
    o.db_path = db;
    o.dst_dir = test::src_path("models/dst");
    o.retriever_dir = test::src_path("models/retriever");
    return o;
}

TEST(ShopAssistant, LooksUpTheCustomersOrderAsTheCorpusWritesIt) {
    const Shop s = make_shop();
    ShopAssistant a(options(s.db));
    const std::string sid = a.create_session(s.alice);
    const TurnPlan p = a.plan(sid, "hi, where is my order #" + s.alice_order.id + "?");
    EXPECT_EQ(p.state.intent, "order_status");
    ASSERT_TRUE(p.state.order_id);
    EXPECT_EQ(*p.state.order_id, s.alice_order.id);
    EXPECT_FALSE(p.fixed_reply);
    // The tool turn is the order's facts as the training corpus writes them.
    EXPECT_EQ(p.tool.rfind("order #" + s.alice_order.id + " | status ", 0), 0u) << p.tool;
    if (s.alice_order.status == "shipped") EXPECT_NE(p.tool.find("tracking " + s.alice_order.tracking), std::string::npos);
    // A reply copying the tool turn's facts is grounded by the checker.
    std::vector<std::string> names;
    for (const auto& pr : ShopDb(s.db).products()) names.push_back(pr.name);
    EXPECT_TRUE(check_order_facts(s.alice_order, names, "Order #" + s.alice_order.id + " with " +
                                                             s.alice_order.items[0].product + ", " + s.alice_order.carrier)
                    .grounded());
    // The model's messages: system, the user turn, the tool turn.
    ASSERT_EQ(p.messages.size(), 3u);
    EXPECT_EQ(p.messages[1]["role"], "user");
    EXPECT_EQ(p.messages[2]["role"], "tool");
    EXPECT_EQ(p.messages[2]["content"], p.tool);
    EXPECT_TRUE(p.passages.empty());  // an order question gets no policy passages
    // The reply's slot references are filled from the same record.
    EXPECT_EQ(train::lexicalize("{id}: {tracking}, by {eta}", p.slots),
              "#" + s.alice_order.id + ": " + s.alice_order.tracking + ", by " +
                  p.slots.at("eta"));
    EXPECT_EQ(p.slots.at("total"), "$" + std::to_string(s.alice_order.total_cents / 100) + "." +
                                       (s.alice_order.total_cents % 100 < 10 ? "0" : "") +
                                       std::to_string(s.alice_order.total_cents % 100));
}

TEST(ShopAssistant, AnotherCustomersOrderIsRefusedLikeAnUnknownOne) {
    const Shop s = make_shop();
    ShopAssistant a(options(s.db));
    const std::string sid = a.create_session(s.bob);
    const TurnPlan p = a.plan(sid, "Can you tell me the status of order " + s.alice_order.id + "?");
    ASSERT_TRUE(p.fixed_reply);
    EXPECT_EQ(*p.fixed_reply, order_not_found_reply(s.alice_order.id));
    const TurnPlan q = a.plan(sid, "Can you tell me the status of order Z99999?");
    ASSERT_TRUE(q.fixed_reply);  // unknown: the same words, so ids cannot be probed
    EXPECT_EQ(*q.fixed_reply, order_not_found_reply(q.state.order_id.value_or("?")));
    // Nothing of Alice's order reaches the model or the client.
    for (const std::string& text : {p.tool, p.messages.dump(), p.info().dump()}) {
        EXPECT_EQ(text.find(s.alice_order.tracking), std::string::npos) << text;
        EXPECT_EQ(text.find(s.alice_order.address), std::string::npos) << text;
        EXPECT_EQ(text.find(s.alice_order.items[0].product), std::string::npos) << text;
    }
}

TEST(ShopAssistant, SessionsSurviveReopeningAndStayApart) {
    const Shop s = make_shop();
    std::string sa, sb;
    {
        ShopAssistant a(options(s.db));
        sa = a.create_session(s.alice);
        sb = a.create_session(s.bob);
        const TurnPlan p = a.plan(sa, "I want to cancel order " + s.alice_order.id);
        a.commit(p, "Order #" + s.alice_order.id + " is cancelled.", "Order {id} is cancelled.");
        const TurnPlan q = a.plan(sb, "How much does shipping cost?");
        a.commit(q, "assistant reply two", "assistant reply two");
    }
    ShopAssistant a(options(s.db));  // a restart: a new connection to the same file
    const auto ja = a.session_json(sa);
    ASSERT_EQ(ja["turns"].size(), 3u);  // user, tool, assistant
    EXPECT_EQ(ja["turns"][0]["state"]["order_id"], s.alice_order.id);
    EXPECT_EQ(ja["turns"][2]["content"], "Order #" + s.alice_order.id + " is cancelled.");  // as shown
    EXPECT_EQ(ja["customer_id"], s.alice);
    const auto jb = a.session_json(sb);
    EXPECT_EQ(jb.dump().find(s.alice_order.id), std::string::npos);
    EXPECT_EQ(a.sessions(s.alice).size(), 1u);
    EXPECT_EQ(a.sessions(s.alice)[0].id, sa);
    // The state carries over the restart: a new question about "it" looks the order up again, and
    // the model sees it afresh (a new question starts its window).
    const TurnPlan t = a.plan(sa, "ok, and when will it arrive then?");
    ASSERT_TRUE(t.state.order_id) << t.info().dump();
    EXPECT_EQ(*t.state.order_id, s.alice_order.id);
    EXPECT_NE(t.tool.find("order #" + s.alice_order.id), std::string::npos);
    EXPECT_EQ(t.messages.size(), 3u) << t.messages.dump();
    // The same question goes on ("thanks", or the cancellation again): the window holds the earlier
    // turns, tool turn included, before the new user turn.
    for (const std::string& more : {std::string("thanks!"), "yes, please cancel " + s.alice_order.id}) {
        const TurnPlan w = a.plan(sa, more);
        ASSERT_GE(w.messages.size(), 5u) << more << ": " << w.messages.dump();
        EXPECT_EQ(w.messages[1]["role"], "user");
        EXPECT_EQ(w.messages[2]["role"], "tool");
        EXPECT_EQ(w.messages[3]["content"], "Order {id} is cancelled.");  // the model's own words
        EXPECT_EQ(w.messages[4]["content"], more);
    }
    // Bob's session never carries Alice's state.
    const TurnPlan u = a.plan(sb, "and where is my order?");
    EXPECT_FALSE(u.state.order_id && *u.state.order_id == s.alice_order.id);
}

TEST(ShopAssistant, PolicyQuestionsGetPassagesWithinTheBudget) {
    const Shop s = make_shop();
    AssistantOptions o = options(s.db);
    ShopAssistant a(o);
    const std::string sid = a.create_session(s.alice);
    const TurnPlan p = a.plan(sid, "how much is express delivery?");
    EXPECT_EQ(p.state.intent, "shipping");
    ASSERT_FALSE(p.passages.empty());
    EXPECT_TRUE(p.passages[0].id == "policy:shipping" || p.passages[0].id == "article:4") << p.info().dump();
    EXPECT_NE(p.tool.find("kb "), std::string::npos);
    o.passage_budget_tokens = 5;  // no passage fits
    ShopAssistant tight(o);
    EXPECT_TRUE(tight.plan(sid, "how much is express delivery?").passages.empty());
    // Greetings and thanks get no lookup at all.
    EXPECT_TRUE(a.plan(sid, "hello!").tool.empty());
}

TEST(ShopAssistant, LongTermMemoryRecallsAnOrderNamedBeforeTheWindow) {
    const Shop s = make_shop();
    AssistantOptions o = options(s.db);
    o.window = 2;
    ShopAssistant a(o);
    const std::string sid = a.create_session(s.alice);
    a.commit(a.plan(sid, "My order " + s.alice_order.id + " has not arrived yet"), "reply", "reply");
    a.commit(a.plan(sid, "How much does express shipping cost?"), "reply", "reply");
    a.commit(a.plan(sid, "And do you ship to Canada?"), "reply", "reply");
    // The order is outside the window of 2 messages and the subject changed (the state dropped it).
    const TurnPlan p = a.plan(sid, "has my order arrived yet?");
    EXPECT_EQ(p.state.intent, "order_status");
    ASSERT_TRUE(p.recalled_order) << p.info().dump();
    EXPECT_EQ(*p.recalled_order, s.alice_order.id);
    EXPECT_NE(p.tool.find("order #" + s.alice_order.id), std::string::npos);
    ASSERT_FALSE(p.memories.empty());
    EXPECT_NE(p.memories[0].text.find(s.alice_order.id), std::string::npos);
}

TEST(ShopAssistant, UnknownSessionsAndCustomersAreOneClearLine) {
    const Shop s = make_shop();
    ShopAssistant a(options(s.db));
    for (const std::string& e : {test::error_of([&] { a.plan("s0000000000000000", "hi"); }),
                                 test::error_of([&] { a.session_json("nope"); })}) {
        EXPECT_NE(e.find("no such session"), std::string::npos) << e;
        EXPECT_NE(e.find("hint:"), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
    try {
        a.create_session("U99999");
        ADD_FAILURE() << "an unknown customer got a session";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
        EXPECT_NE(std::string(e.what()).find("unknown customer 'U99999'"), std::string::npos) << e.what();
    }
    const std::string sid = a.create_session(s.alice);
    EXPECT_NE(test::error_of([&] { a.plan(sid, "   "); }).find("empty"), std::string::npos);
}

}  // namespace
}  // namespace llmforge::apps
