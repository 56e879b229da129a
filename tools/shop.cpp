// llmforge shop init --db shop.db: the shop's SQLite database, seeded from the corpus generator
// (apps/shop/shop_db.h); llmforge shop order ID --db shop.db: one order as JSON (ids in any form
// customers write them: "#c-48213" -> C48213).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/shop/shop_db.h"
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_shop(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("shop", "The shop assistant's database: init, order");
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
    run = [init, order] {
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
