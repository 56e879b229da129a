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
#include <map>
#include <string_view>
#include <utility>
#include <vector>

namespace llmforge::train {

struct DialogueTurn {
    std::string role;  // "system", "user", "tool", "assistant"
    std::string content;
};

struct Dialogue {
    std::string topic;     // "order_status", "shipping", …
    std::string order_id;  // "" when the dialogue has no order
    // Assistant turns are delexicalised: the facts they state are slot references ("{eta}"), see
    // lexicalize(); `slots` holds this dialogue's values (its order's and product's, the code and
    // address the customer wrote), which fill them as the customer would read them.
    std::vector<DialogueTurn> turns;
    std::map<std::string, std::string> slots;
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

// The shop's policies (topic, text) and knowledge-base articles (title, body): the facts the
// corpus's assistant states. `llmforge shop init` stores them; the retriever indexes them.
const std::vector<std::pair<std::string, std::string>>& shop_policy_texts();
const std::vector<std::pair<std::string, std::string>>& shop_article_texts();
// Both as passages: "policy:returns" ("Returns policy", text), …, "article:1" (title, body), ….
struct KnowledgePassage {
    std::string id, title, text;
};
const std::vector<KnowledgePassage>& shop_knowledge();

// The tool-result turn ({"role": "tool"}): what the chat system looked up for the customer's last
// turn, one fact line per thing its dialogue state names. The corpus puts one after every user
// turn once the dialogue names an order (or a product, or asks a knowledge question), and the
// shop chat system (apps/shop) writes the same lines from its database, so the model learns to
// copy an order's facts from this turn instead of inventing them. The rule, as the corpus
// applies it: the order the state names (from the turn that names it on); else the product it
// names; else, for questions about shipping, payments, discount codes and accounts (the intents
// whose answer is a policy), the knowledge passages found for the turn; last, the intent.
struct OrderFacts {
    std::string id;  // "C48213"
    bool shipped = false;
    std::string product, size, colour, payment, carrier, tracking;
    int qty = 1, total_cents = 0;
    ShopDate ordered{1, 1}, ship_date{1, 1}, eta{1, 1};  // ship_date: planned while !shipped
};
std::string order_fact_line(const OrderFacts& o);
struct ProductFacts {
    std::string name, material;
    int price_cents = 0;
    std::vector<std::string> sizes, colours;
    bool washable = false;
};
std::string product_fact_line(const ProductFacts& p);
std::string passage_fact_line(const KnowledgePassage& p);
// "March 3".
std::string month_day(ShopDate d);

// Delexicalised replies. The model writes facts as slot references — {id} {item} {product} {size}
// {colour} {carrier} {tracking} {ordered} {shipped} {eta} {total} {payment} (the order looked
// up), {material} {sizes} {price} (the product), {code} {new_address} (what the customer wrote, as
// the dialogue state holds it) — and the chat system fills them from what it looked up: the model
// decides which facts a reply states (from the tool turn: shipped or not, the order or the
// product), the database gives their values, so a reply cannot misspell a tracking number. This is
// the delexicalisation of task-oriented dialogue systems (Wen et al. 2017, "A Network-based
// End-to-End Trainable Task-oriented Dialogue System"). A small model learns it in minutes; copying
// ids character by character from the context it did not learn in 700 steps (measured).
using SlotValues = std::map<std::string, std::string>;
SlotValues order_slot_values(const OrderFacts& o);
SlotValues product_slot_values(const ProductFacts& p);
// Every "{name}" of a known slot replaced by its value; one without a value by a neutral phrase
// ("the tracking number in your shipping email"), its name added to *unfilled. Other braces stay.
std::string lexicalize(const std::string& text, const SlotValues& v, std::vector<std::string>* unfilled = nullptr);
// lexicalize() on streamed text: holds back a piece that may be the start of a slot reference
// until it is complete (at most kMaxSlot bytes), passes everything else on at once.
class Lexicalizer {
public:
    explicit Lexicalizer(SlotValues v) : v_(std::move(v)) {}
    std::string push(std::string_view piece);
    std::string finish();  // what is held back, as is
    const std::vector<std::string>& unfilled() const { return unfilled_; }
    static constexpr size_t kMaxSlot = 16;

private:
    SlotValues v_;
    std::string held_;
    std::vector<std::string> unfilled_;
};
// The intents (dst.h) whose tool turn carries knowledge passages.
bool intent_wants_passages(const std::string& intent);
// Whether a user turn of this intent gets a tool turn at all: not greetings, thanks and goodbyes.
bool lookup_wanted(const std::string& intent);
// The tool turn's last line: the dialogue state's intent ("intent cancel"), so the model answers the
// question the tracker understood (it picks the reply's kind from it, not only from the words).
std::string intent_fact_line(const std::string& intent);

// The n-th dialogue of the corpus with this seed (independent of the others, so any slice can be
// generated alone).
Dialogue make_dialogue(uint64_t seed, uint64_t n);
// Every topic make_dialogue draws from.
const std::vector<std::string>& dialogue_topics();
// One JSON line: {"messages":[{"role":…,"content":…},…]}.
std::string dialogue_json(const Dialogue& d);

}  // namespace llmforge::train
