// A synthetic customer-service corpus for the project's default chat model: dialogues between
// customers and the assistant of a fictional online shop (orders, shipping, returns, refunds,
// cancellations, address changes, product questions, payments, discount codes, accounts, small
// talk), with order numbers, dates, products, prices and tracking numbers that stay consistent
// within a dialogue (the reply names the order, product and amount the customer's order has).
//
// Deterministic: the same seed gives the same bytes on every machine (own bounded draws from
// splitmix64; std:: distributions are implementation-defined).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmforge::train {

struct DialogueTurn {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

struct Dialogue {
    std::string topic;     // "order_status", "shipping", …
    std::string order_id;  // "" when the dialogue has no order
    std::vector<DialogueTurn> turns;
};

// The shop the corpus is about; `llmforge shop init` (apps/shop/shop_db.h) puts the same products
// and the same orders into its database.
struct ShopProduct {
    std::string name, category, material;
    int price_cents;
    std::vector<std::string> sizes, colours;
    bool washable;
};
const std::vector<ShopProduct>& shop_catalogue();

// A date of the shop's calendar year (month 1-12, day 1-28): the corpus never names a year.
struct ShopDate {
    int month, day;
};

// The order dialogue n of make_dialogue(seed, n) is about (whether or not the dialogue names it).
struct ShopOrder {
    std::string id;  // "C48213" (the corpus writes "#C48213")
    const ShopProduct* product;
    std::string size, colour, carrier, tracking, payment;
    int qty, total_cents;
    ShopDate ordered, shipped, eta;  // shipped: the planned date when !has_shipped
    bool has_shipped;
};
ShopOrder shop_order(uint64_t seed, uint64_t n);
// The lists the generator draws from: carriers, first names, streets, cities, discount codes.
const std::vector<std::string>& shop_carriers();
const std::vector<std::string>& shop_names();
const std::vector<std::string>& shop_streets();
const std::vector<std::string>& shop_cities();
const std::vector<std::string>& shop_discount_codes();

// The n-th dialogue of the corpus with this seed (independent of the others, so any slice can be
// generated alone).
Dialogue make_dialogue(uint64_t seed, uint64_t n);
// Every topic make_dialogue draws from.
const std::vector<std::string>& dialogue_topics();
// One JSON line: {"messages":[{"role":…,"content":…},…]}.
std::string dialogue_json(const Dialogue& d);

}  // namespace llmforge::train
