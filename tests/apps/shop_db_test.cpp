// The shop database: seeded from the corpus generator (its orders are the dialogues' orders),
// deterministic, customers' data apart, and one clear line for a file that is not this schema.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "apps/shop/shop_db.h"
#include "test_util.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {
namespace {

std::string fresh_db(const ShopInitOptions& o = {}) {
    const std::string p = test::temp_dir() + "/shop.db";
    ShopDb::init(p, o);
    return p;
}

TEST(ShopDb, OrdersAreTheCorpusDialoguesOrders) {
    ShopInitOptions o;
    o.seed = 3, o.orders = 300, o.customers = 40;
    ShopDb db(fresh_db(o));
    EXPECT_EQ(db.count("orders"), 300);
    EXPECT_EQ(db.count("products"), static_cast<int64_t>(train::shop_catalogue().size()));
    int named = 0;
    for (uint64_t n = 0; n < 200; ++n) {
        const train::ShopOrder so = train::shop_order(3, n);
        const auto r = db.order(so.id);
        ASSERT_TRUE(r) << so.id;
        if (r->items.size() == 1 && r->items[0].product == so.product->name && r->items[0].qty == so.qty &&
            r->total_cents == so.total_cents && r->tracking == so.tracking && r->carrier == so.carrier &&
            r->status == (so.has_shipped ? "shipped" : "processing")) {
        } else {
            ADD_FAILURE() << "order " << so.id << " differs from dialogue " << n << "'s";  // an id drawn twice keeps the first
        }
        // The dialogue's text names the same order the database holds.
        const train::Dialogue d = train::make_dialogue(3, n);
        if (!d.order_id.empty()) {
            EXPECT_EQ(d.order_id, "#" + so.id);
            ++named;
        }
        EXPECT_EQ(r->ordered.substr(0, 5), "2026-");
        EXPECT_LE(r->ordered, r->shipped);
        EXPECT_LE(r->shipped, r->eta);
    }
    EXPECT_GT(named, 80);
}

TEST(ShopDb, DeterministicInTheSeed) {
    ShopInitOptions a;
    a.orders = 100, a.customers = 20;
    ShopDb x(fresh_db(a)), y(fresh_db(a));
    ShopInitOptions b = a;
    b.seed = 2;
    ShopDb z(fresh_db(b));
    auto dump = [](const ShopDb& db) {
        std::string s;
        for (const auto& c : db.customers())
            for (const auto& o : db.orders_of(c.id)) s += c.id + c.name + c.address + o.id + o.eta + o.tracking + "\n";
        return s;
    };
    EXPECT_EQ(dump(x), dump(y));
    EXPECT_NE(dump(x), dump(z));
}

TEST(ShopDb, EachCustomerSeesOnlyTheirOrders) {
    ShopDb db(fresh_db());
    int64_t total = 0;
    for (const auto& c : db.customers()) {
        for (const auto& o : db.orders_of(c.id)) {
            EXPECT_EQ(o.customer_id, c.id);
            EXPECT_EQ(o.address, c.address);
        }
        total += static_cast<int64_t>(db.orders_of(c.id).size());
    }
    EXPECT_EQ(total, db.count("orders"));
    EXPECT_FALSE(db.customer("U99999"));
    EXPECT_FALSE(db.order("Z00000"));
    EXPECT_EQ(db.policies().size(), 10u);
    EXPECT_GE(db.articles().size(), 15u);
    const auto hoodie = db.product("Everyday Hoodie");
    ASSERT_TRUE(hoodie);
    EXPECT_EQ(hoodie->price_cents, 4900);
    EXPECT_EQ(hoodie->aliases, product_aliases("Everyday Hoodie"));
}

TEST(ShopDb, OneClearLineForWhatIsNotThisSchema) {
    const std::string dir = test::temp_dir();
    auto err = [](const std::string& p) { return test::error_of([&] { ShopDb db(p); }); };
    EXPECT_NE(err(dir + "/missing.db").find("no such file (hint: llmforge shop init"), std::string::npos);
    test::write_file(dir + "/text.db", "this is not a database, just some text that is long enough.......\n");
    EXPECT_NE(err(dir + "/text.db").find("not an SQLite database"), std::string::npos) << err(dir + "/text.db");
    {  // an SQLite file of something else
        sqlite3* db;
        ASSERT_EQ(sqlite3_open((dir + "/other.db").c_str(), &db), SQLITE_OK);
        sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
        sqlite3_close(db);
    }
    EXPECT_NE(err(dir + "/other.db").find("not a shop database"), std::string::npos) << err(dir + "/other.db");
    const std::string p = fresh_db();
    {  // a shop database of another schema version
        sqlite3* db;
        ASSERT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA user_version=1", nullptr, nullptr, nullptr);  // before sessions
        sqlite3_close(db);
    }
    const std::string e = err(p);
    EXPECT_NE(e.find("schema version 1, expected 2"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
    // init does not replace an existing file unless told to
    const std::string before = test::read_file(p);
    EXPECT_NE(test::error_of([&] { ShopDb::init(p, {}); }).find("already exists (hint: --force"), std::string::npos);
    EXPECT_EQ(test::read_file(p), before);
    ShopDb::init(p, {}, true);
    EXPECT_EQ(ShopDb(p).count("orders"), 2000);
}

TEST(ShopDb, OrderIdsAsCustomersWriteThem) {
    const std::pair<const char*, const char*> cases[] = {
        {"C48213", "C48213"},
        {"#C48213", "C48213"},
        {"c-48213", "C48213"},
        {"order 48213", "C48213"},
        {"Order number 48213 please", "C48213"},
        {"my order no. 48213", "C48213"},
        {"where is #b 12345?", "B12345"},
        {"its A0  sorry, A50812", "A50812"},
        {"Where is order 40404? Sorry, I meant D40404", "D40404"},
        {"the Power Bank 10000 mAh", ""},
        {"size 12, colour navy", ""},
        {"C482130", ""},
        {"ABC12345", ""},
        {"", ""},
    };
    for (const auto& [in, want] : cases) EXPECT_EQ(normalize_order_id(in), want) << in;
}

}  // namespace
}  // namespace llmforge::apps
