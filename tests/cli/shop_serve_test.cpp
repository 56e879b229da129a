// llmforge serve --app shop: the shop assistant served with the shipped default model, on a
// database seeded with seed 2 (orders the model never saw in training: seed 1).
// - Grounding on questions the generator did not make (tests/apps/data/shop/
//   grounding_handwritten.jsonl, written by hand before the retrained model was tried): each
//   asks about one of the signed-in customer's real orders; every reply is checked against the
//   database by `llmforge shop check` (apps/shop/grounding.h).
// - Sessions: persisted in SQLite across a server restart, never shared between customers; an
//   unknown session id is a 404 with one clear line; another customer's order is refused with
//   nothing of it in the answer; a streamed reply ends with [DONE] and its first chunk carries the
//   tracked state.
#include <gtest/gtest.h>

#include <fstream>

#include "serve_process.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

// Thresholds: the measured shares (greedy, this machine) with room for two replies, as another
// CPU's float rounding may change a greedy reply (docs/SHOP.md).
constexpr int kGroundedPercent = 93;  // measured 32/32 (100%); target 98%
constexpr int kResolvedPercent = 84;  // measured 30/33 (91%); target 89%

struct ShopServer {
    std::string db;
    std::vector<std::string> args() const {
        return {"-m", src_path("models/default"), "--api-key", "test-key", "--threads", "2", "--ctx-size", "512",
                "--app", "shop", "--db", db, "--safety", src_path("models/safety")};
    }
};

std::string q(const std::string& s) { return "'" + s + "'"; }

ShopServer make_db() {
    ShopServer s{temp_dir() + "/shop.db"};
    EXPECT_EQ(run_command(q(cli_path()) + " shop init --seed 2 --customers 60 --orders 240 --db " + q(s.db) + " 2>&1"), 0);
    return s;
}

json post(const ServerProcess& s, const std::string& path, const json& body, int* status = nullptr) {
    auto res = s.client().Post(path, body.dump(), "application/json");
    EXPECT_TRUE(res);
    if (!res) return json();
    if (status) *status = res->status;
    return json::parse(res->body);
}

json get(const ServerProcess& s, const std::string& path, int* status = nullptr) {
    auto res = s.client().Get(path);
    EXPECT_TRUE(res);
    if (!res) return json();
    if (status) *status = res->status;
    return json::parse(res->body);
}

// The customers of the database with their orders (llmforge shop order prints one order).
struct Customer {
    std::string id;
    std::vector<json> orders;
};
std::vector<Customer> customers_with_orders(const std::string& db, size_t n) {
    std::vector<Customer> out;
    std::string text;
    EXPECT_EQ(run_command("python3 -c \"import sqlite3,json,sys; c=sqlite3.connect(sys.argv[1]); "
                          "print(json.dumps([dict(id=a,customer_id=b) for a,b in c.execute('SELECT id, customer_id FROM "
                          "orders ORDER BY customer_id, id')]))\" " + q(db),
                          &text),
              0);
    const size_t p = text.find('[');
    const json rows = json::parse(p == std::string::npos ? std::string("[]") : text.substr(p));
    for (const auto& r : rows) {
        if (out.empty() || out.back().id != r["customer_id"]) {
            if (out.size() == n) break;
            out.push_back({r["customer_id"], {}});
        }
        std::string o;
        run_command(q(cli_path()) + " shop order " + r["id"].get<std::string>() + " --db " + q(db), &o);
        out.back().orders.push_back(json::parse(o));
    }
    return out;
}

json chat(const ServerProcess& s, const std::string& session, const std::string& text, int* status = nullptr) {
    return post(s, "/v1/chat/completions",
                {{"session_id", session}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"temperature", 0},
                 {"max_tokens", 120}},
                status);
}

TEST(ShopServe, RepliesStateTheDatabasesFactsOnHandWrittenQuestions) {
    const ShopServer db = make_db();
    const auto customers = customers_with_orders(db.db, 30);
    ASSERT_GE(customers.size(), 10u);
    ServerProcess s(db.args());
    ASSERT_GT(s.port(), 0) << s.log();
    std::ifstream in(src_path("tests/apps/data/shop/grounding_handwritten.jsonl"));
    std::string checks;  // lines for `llmforge shop check`
    std::vector<std::string> shown;
    int n = 0;
    for (std::string line; std::getline(in, line); ++n) {
        const Customer& c = customers[static_cast<size_t>(n) % customers.size()];
        const json& order = c.orders[static_cast<size_t>(n) % c.orders.size()];
        const std::string id = order["id"];
        std::string written = id;  // as customers write ids: C48213, #C48213, c-48213
        if (n % 3 == 0) written = "#" + id;
        if (n % 3 == 2) written = std::string(1, static_cast<char>(std::tolower(id[0]))) + "-" + id.substr(1);
        const json session = post(s, "/v1/app/sessions", {{"customer_id", c.id}});
        ASSERT_TRUE(session.contains("id")) << session.dump();
        const json dialogue = json::parse(line);
        bool named = false;  // the customer has named the order by now
        for (size_t k = 0; k < dialogue["turns"].size(); ++k) {
            std::string turn = dialogue["turns"][k];
            named |= turn.find("{id}") != std::string::npos;
            for (size_t p; (p = turn.find("{id}")) != std::string::npos;) turn.replace(p, 4, written);
            const json r = chat(s, session["id"], turn);
            ASSERT_TRUE(r.contains("choices")) << r.dump();
            const std::string reply = r["choices"][0]["message"]["content"];
            // Judged against the hand-written intent and the order the question is about (a
            // tracker's mistake that leads to a wrong reply counts against the system).
            const json gold = {{"intent", dialogue["intents"][k]}, {"order_id", named ? json(id) : json()},
                               {"product", nullptr}, {"new_address", nullptr}, {"discount_code", nullptr}};
            checks += json{{"state", gold}, {"reply", reply}}.dump() + "\n";
            shown.push_back(turn + " -> " + reply + "  [tracked: " + r["app"]["state"].dump() + "]");
        }
    }
    ASSERT_EQ(n, 30);
    const std::string replies = temp_dir() + "/replies.jsonl";
    write_file(replies, checks);
    std::string out;
    ASSERT_EQ(run_command(q(cli_path()) + " shop check --db " + q(db.db) + " < " + q(replies), &out), 0);
    std::istringstream lines(out);
    int with_facts = 0, grounded = 0, counted = 0, resolved = 0, i = 0;
    for (std::string l; std::getline(lines, l); ++i) {
        const json j = json::parse(l);
        if (j["facts"].get<int>() > 0) {
            ++with_facts;
            grounded += j["grounded"].get<bool>();
            if (!j["grounded"].get<bool>()) std::printf("not grounded: %s  %s\n", shown[i].c_str(), j["wrong"].dump().c_str());
        }
        if (j["counted"].get<bool>()) {
            ++counted;
            resolved += j["resolved"].get<bool>();
            if (!j["resolved"].get<bool>()) std::printf("not resolved: %s  (%s)\n", shown[i].c_str(), j["missing"].get<std::string>().c_str());
        }
    }
    std::printf("grounded %d/%d replies with facts, resolved %d/%d\n", grounded, with_facts, resolved, counted);
    EXPECT_GE(with_facts, 25);
    EXPECT_GE(grounded * 100, with_facts * kGroundedPercent) << "grounded share below the measured level";
    EXPECT_GE(resolved * 100, counted * kResolvedPercent);
}

TEST(ShopServe, SessionsPersistAcrossARestartAndStayApart) {
    const ShopServer db = make_db();
    const auto customers = customers_with_orders(db.db, 2);
    ASSERT_EQ(customers.size(), 2u);
    const std::string alice_order = customers[0].orders[0]["id"], tracking = customers[0].orders[0]["tracking"];
    std::string sa, sb, first_reply;
    {
        ServerProcess s(db.args());
        ASSERT_GT(s.port(), 0) << s.log();
        sa = post(s, "/v1/app/sessions", {{"customer_id", customers[0].id}})["id"];
        sb = post(s, "/v1/app/sessions", {{"customer_id", customers[1].id}})["id"];
        // Streamed: the first chunk carries the state, the stream ends with [DONE], the reply is kept.
        const StreamResult r = stream_completion(
            s.port(),
            {{"session_id", sa}, {"messages", {{{"role", "user"}, {"content", "Where is my order " + alice_order + "?"}}}},
             {"temperature", 0}, {"max_tokens", 120}, {"stream", true}},
            0, "/v1/chat/completions");
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_TRUE(r.done);
        EXPECT_EQ(r.first["app"]["state"]["order_id"], alice_order) << r.first.dump();
        first_reply = r.text;
        // Bob asks for Alice's order: refused, nothing of it in the answer.
        int status = 0;
        const json b = chat(s, sb, "what is the status of order " + alice_order + "?", &status);
        ASSERT_EQ(status, 200) << b.dump();
        const std::string br = b["choices"][0]["message"]["content"];
        EXPECT_NE(br.find("couldn't find order #" + alice_order + " on your account"), std::string::npos) << br;
        EXPECT_EQ(b.dump().find(tracking), std::string::npos) << b.dump();
        EXPECT_EQ(b.dump().find(customers[0].orders[0]["address"].get<std::string>()), std::string::npos);
        // Bad input: an unknown session, no session.
        const json u = chat(s, "s0123456789abcdef", "hello", &status);
        EXPECT_EQ(status, 404) << u.dump();
        EXPECT_NE(u["error"]["message"].get<std::string>().find("no such session"), std::string::npos) << u.dump();
        const json none = post(s, "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}, &status);
        EXPECT_EQ(status, 400) << none.dump();
        EXPECT_NE(none["error"]["message"].get<std::string>().find("session_id"), std::string::npos);
        // Fields of the wrong type, bodies of the wrong shape: 400 with one line, never a 500.
        const std::pair<const char*, std::string> bad[] = {
            {"/v1/app/sessions", R"({"customer_id": 5})"},
            {"/v1/app/sessions", "[1, 2]"},
            {"/v1/app/sessions", R"({"customer_id": {"id": "U00001"}})"},
            {"/v1/chat/completions", R"({"session_id": ")" + sa + R"(", "messages": [{"role": 5, "content": "hi"}]})"},
            {"/v1/chat/completions", R"({"session_id": ")" + sa + R"(", "messages": [{"role": "user", "content": [{"type": 7, "text": "hi"}]}]})"},
            {"/v1/chat/completions", R"({"session_id": ")" + sa + R"(", "messages": "hi"})"},
        };
        for (const auto& [path, body] : bad) {
            auto res = s.client().Post(path, body, "application/json");
            ASSERT_TRUE(res) << body;
            EXPECT_EQ(res->status, 400) << path << " " << body << " -> " << res->body;
            const json e = json::parse(res->body, nullptr, false);
            ASSERT_TRUE(e.contains("error")) << res->body;
            const std::string m = e["error"]["message"];
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            EXPECT_EQ(m.find("HTTP error"), std::string::npos) << m;
        }
        EXPECT_EQ(s.terminate(30), 0);
    }
    ServerProcess s(db.args());  // a restart on the same database
    ASSERT_GT(s.port(), 0) << s.log();
    const json ja = get(s, "/v1/app/sessions/" + sa);
    ASSERT_EQ(ja["turns"].size(), 3u) << ja.dump();  // user, tool, assistant
    EXPECT_EQ(ja["turns"][2]["content"], first_reply);
    EXPECT_EQ(ja["turns"][0]["state"]["order_id"], alice_order);
    const json jb = get(s, "/v1/app/sessions/" + sb);
    EXPECT_EQ(jb.dump().find(tracking), std::string::npos);
    const json list = get(s, "/v1/app/sessions?customer_id=" + customers[1].id);
    ASSERT_EQ(list["data"].size(), 1u);
    EXPECT_EQ(list["data"][0]["id"], sb);
    // The conversation goes on where it stopped: the order carries over.
    const json next = chat(s, sa, "can I still cancel it?");
    EXPECT_EQ(next["app"]["state"]["order_id"], alice_order) << next.dump();
}

}  // namespace
}  // namespace llmforge::test
