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

// The n-th dialogue of the corpus with this seed (independent of the others, so any slice can be
// generated alone).
Dialogue make_dialogue(uint64_t seed, uint64_t n);
// Every topic make_dialogue draws from.
const std::vector<std::string>& dialogue_topics();
// One JSON line: {"messages":[{"role":…,"content":…},…]}.
std::string dialogue_json(const Dialogue& d);

}  // namespace llmforge::train
