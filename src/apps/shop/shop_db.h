// The shop's data in SQLite (Debian's libsqlite3): customers, products, orders with their items,
// policies, knowledge-base articles and discount codes — what the customer-service chat system
// looks facts up in. `llmforge shop init` seeds it deterministically from the same generator as
// the training corpus (train/dialogue_corpus.h): the products are the corpus's catalogue and the
// orders are the orders its dialogues talk about, so a model trained on the corpus meets the same
// world in the database.
//
// A database carries PRAGMA application_id 'LFSH' and user_version kShopSchemaVersion; open()
// refuses anything else with one clear line (what, where, expected vs found, hint).
//
// Thread safety: a ShopDb is one SQLite connection; use it from one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "train/dialogue_corpus.h"

struct sqlite3;

namespace llmforge::apps {

constexpr int kShopSchemaVersion = 2;  // 2: sessions and their turns

struct ShopInitOptions {
    uint64_t seed = 1;        // the corpus seed whose orders go in
    int64_t customers = 400;  // customers, each with one or more orders
    int64_t orders = 2000;    // distinct orders (the first dialogues' orders, duplicates skipped)
};

struct OrderItem {
    std::string product, size, colour;
    int64_t qty = 0, price_cents = 0;  // unit price
};

struct OrderRecord {
    std::string id, customer_id, customer_name, status;  // status: "processing" | "shipped"
    std::string ordered, shipped, eta;  // ISO dates; shipped is the planned date while processing
    std::string carrier, tracking, address, payment;
    int64_t total_cents = 0;
    std::vector<OrderItem> items;
};

struct ProductRecord {
    std::string name, category, material;
    int64_t price_cents = 0;
    std::vector<std::string> sizes, colours, aliases;
    bool washable = false;
};

struct CustomerRecord {
    std::string id, name, email, address;
};

// A chat session of the shop assistant: one customer's conversation, kept across restarts.
struct SessionRecord {
    std::string id, customer_id, created;  // created: ISO time (UTC)
    int64_t turns = 0;
};
struct SessionTurn {
    std::string role, content;  // "user" | "tool" | "assistant"; content: as the customer saw it
    std::string state;          // user turns: the tracked state after it (JSON); else ""
    std::string generated;      // assistant turns: as the model wrote it (slot references); else ""
    std::string info;           // user turns: what the assistant showed with the turn (JSON); else ""
};

struct Article {
    int64_t id = 0;
    std::string title, body;
};

class ShopDb {
public:
    // Creates `path` (which must not exist unless overwrite) and fills it; throws Error.
    static void init(const std::string& path, const ShopInitOptions& o, bool overwrite = false);
    // Opens an existing shop database read-write; throws Error (missing file, not a shop database,
    // another schema version).
    explicit ShopDb(const std::string& path);
    ~ShopDb();
    ShopDb(const ShopDb&) = delete;
    ShopDb& operator=(const ShopDb&) = delete;

    std::optional<OrderRecord> order(const std::string& id) const;  // id normalised ("C48213")
    std::vector<OrderRecord> orders_of(const std::string& customer_id) const;
    std::optional<CustomerRecord> customer(const std::string& id) const;
    std::vector<CustomerRecord> customers() const;
    std::vector<ProductRecord> products() const;
    std::optional<ProductRecord> product(const std::string& name) const;
    std::vector<std::pair<std::string, std::string>> policies() const;  // (topic, text)
    std::vector<Article> articles() const;
    // Order ids whose digits are `digits` (a customer who typed "order 48213").
    std::vector<std::string> orders_with_digits(const std::string& digits) const;
    int64_t count(const char* table) const;

    // Sessions. create_session throws Error for an unknown customer; session() is nullopt for an
    // unknown id. append_turns adds turns at the end of a session's history, all or none.
    std::string create_session(const std::string& customer_id);
    std::optional<SessionRecord> session(const std::string& id) const;
    std::vector<SessionRecord> sessions_of(const std::string& customer_id) const;
    std::vector<SessionTurn> session_turns(const std::string& id) const;
    void append_turns(const std::string& id, const std::vector<SessionTurn>& turns);
    const std::string& path() const { return path_; }

private:
    sqlite3* db_ = nullptr;
    std::string path_;
};

// The shop's knowledge passages (policies and articles, train/dialogue_corpus.h: the corpus's
// world), as ShopDb::init stores them: the retriever's passages.
using train::KnowledgePassage;
using train::shop_knowledge;

// What customers call a catalogue product ("hoodie" for "Everyday Hoodie"): the shop's search
// words, stored with each product (products.aliases). Lower case.
std::vector<std::string> product_aliases(const std::string& name);

// "C48213", "#C48213", "c-48213", "C 48213", "order 48213" -> "C48213" (a bare number takes the
// letter C, the shop's default series); "" when s holds no order id (a letter A-Z and 5 digits,
// or 5 digits after the word "order"). The last id in s wins (a customer correcting themselves).
std::string normalize_order_id(const std::string& s);

// A record's ISO date ("2026-03-05") as the shop's calendar date (March 5: the corpus never names a
// year); nullopt when malformed.
std::optional<train::ShopDate> shop_date_of_iso(const std::string& iso);

}  // namespace llmforge::apps
