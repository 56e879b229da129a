// llmforge shop init --db shop.db: the shop's SQLite database, seeded from the corpus generator
// (apps/shop/shop_db.h); llmforge shop order ID --db shop.db: one order as JSON (ids in any form
// customers write them: "#c-48213" -> C48213); llmforge shop check --db shop.db < replies.jsonl:
// grounding and resolution of assistant replies (apps/shop/grounding.h), one line out per line in.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/shop/grounding.h"
#include "apps/shop/shop_db.h"
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_shop(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("shop", "The shop assistant's database: init, order, check");
    sub->require_subcommand(1);
    static std::string db;
    static apps::ShopInitOptions o;
    static bool force = false;
    static std::string id;
    auto* init = sub->add_subcommand("init", "Create the shop database (customers, products, orders, policies, articles)");
    init->add_option("--db", db, "database file to create")->required();
    init->add_option("--seed", o.seed, "corpus seed whose orders go in (same seed, same database)")->capture_default_str();
    init->add_option("--customers", o.customers, "customers")->capture_default_str();
    init->add_option("--orders", o.orders, "orders")->capture_default_str();
    init->add_flag("--force", force, "replace an existing file");
    auto* order = sub->add_subcommand("order", "Print one order as JSON");
    order->add_option("id", id, "order id (C48213, #c-48213, \"order 48213\")")->required();
    order->add_option("--db", db, "shop database")->required();
    auto* check = sub->add_subcommand(
        "check", "Check assistant replies against the database: stdin lines {\"state\": {...}, \"reply\": \"...\"} -> "
                 "{\"facts\", \"wrong\", \"grounded\", \"counted\", \"resolved\", \"missing\"}");
    check->add_option("--db", db, "shop database")->required();
    run = [init, order, check] {
        if (check->parsed()) {
            apps::ShopDb d(db);
            std::vector<std::string> names;
            for (const auto& p : d.products()) names.push_back(p.name);
            std::istringstream in(read_stdin("shop check"));
            std::string line;
            for (int64_t no = 1; std::getline(in, line); ++no) {
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                const auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object() || !j.contains("state") || !j.contains("reply") || !j["reply"].is_string())
                    fail("shop check: stdin line %lld: expected {\"state\": {...}, \"reply\": \"...\"}, found %.60s",
                         (long long)no, line.c_str());
                const apps::DstState st = apps::DstState::from_json(j["state"]);
                const std::string reply = j["reply"].get<std::string>();
                std::optional<apps::OrderRecord> o;
                std::optional<apps::ProductRecord> p;
                if (st.order_id) o = d.order(*st.order_id);
                if (st.product) p = d.product(*st.product);
                nlohmann::ordered_json out = nlohmann::ordered_json::object();
                if (o) {
                    const apps::FactCheck fc = apps::check_order_facts(*o, names, reply);
                    out["facts"] = fc.facts;
                    out["wrong"] = fc.wrong;
                    out["grounded"] = fc.grounded();
                } else {
                    out["facts"] = 0;
                    out["wrong"] = nlohmann::ordered_json::array();
                    out["grounded"] = nullptr;
                }
                const apps::Resolution r = apps::check_resolution(st, o, p, reply);
                out["counted"] = r.counted;
                out["resolved"] = r.resolved;
                out["missing"] = r.missing;
                std::printf("%s\n", out.dump().c_str());
            }
            return 0;
        }
        if (init->parsed()) {
            apps::ShopDb::init(db, o, force);
            apps::ShopDb d(db);
            std::fprintf(stderr, "shop init: %lld customers, %lld products, %lld orders, %lld policies, %lld articles -> %s\n",
                         (long long)d.count("customers"), (long long)d.count("products"), (long long)d.count("orders"),
                         (long long)d.count("policies"), (long long)d.count("articles"), db.c_str());
            return 0;
        }
        (void)order;
        apps::ShopDb d(db);
        const std::string norm = apps::normalize_order_id(id);
        if (norm.empty()) fail("shop order: '%s' is not an order id (expected a letter and 5 digits, e.g. C48213)", id.c_str());
        auto r = d.order(norm);
        if (!r && id.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == std::string::npos) {
            const auto ids = d.orders_with_digits(norm.substr(1));
            if (ids.size() == 1) r = d.order(ids[0]);
        }
        if (!r) fail("shop order: no order %s in %s (hint: llmforge shop init seeds ids like the corpus's)", norm.c_str(), db.c_str());
        nlohmann::ordered_json items = nlohmann::ordered_json::array();
        for (const auto& it : r->items)
            items.push_back({{"product", it.product}, {"size", it.size}, {"colour", it.colour}, {"qty", it.qty}, {"price_cents", it.price_cents}});
        nlohmann::ordered_json j = {{"id", r->id},           {"customer_id", r->customer_id}, {"customer", r->customer_name},
                                    {"status", r->status},   {"ordered", r->ordered},         {"shipped", r->shipped},
                                    {"eta", r->eta},         {"carrier", r->carrier},         {"tracking", r->tracking},
                                    {"address", r->address}, {"payment", r->payment},         {"total_cents", r->total_cents},
                                    {"items", items}};
        std::printf("%s\n", j.dump().c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
