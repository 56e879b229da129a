// Whether a reply of the shop assistant states the database's facts, and whether it gives the
// customer what their question needs: the measures of issue 19's grounded replies, one definition
// for the tests, `llmforge shop check` and bench/shop_eval.py.
//
// Facts a reply can state about an order, each checked against the order's record:
//   order ids ("#C48213", "C48213": must be the order's), dates ("March 5": the order date, the
//   ship date or the delivery estimate), amounts ("$89.00": the total, a unit price, or one of the
//   shop's fixed amounts — shipping $4.99 / $9.99 / $14.99, the $50 free-shipping line), tracking
//   numbers (the order's), carriers (the order's), catalogue product names (the order's items), and
//   the shipping status (saying it shipped / left / is on its way for an order still processing,
//   or that it has not shipped / will ship for a shipped one, is wrong).
// A reply is grounded when it states at least one such fact and every one is right.
//
// Resolution: the reply contains what the intent needs: order_status: for a shipped order the
// delivery estimate or the tracking number, for one still processing the ship or delivery date; cancel: for a processing order that
// it is cancelled with the refund amount, for a shipped one that it already shipped; return: the
// return label or the 30-day window; refund: the amount; change_address: for a processing order a
// request for the new address, for a shipped one the carrier and tracking number; shipping: a
// shipping price; payment: the billing address or the accepted cards; discount: the code named;
// account: "Forgot password" or the account settings; product: the product's material, sizes,
// washing or price. Other intents (greeting, thanks, other) need nothing and are not counted.
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apps/shop/dst.h"
#include "apps/shop/shop_db.h"

namespace llmforge::apps {

struct FactCheck {
    int facts = 0;
    std::vector<std::string> wrong;  // "date April 3", "status: says shipped", …
    bool grounded() const { return facts > 0 && wrong.empty(); }
};
// The facts `reply` states about `order` (products: the database's product names).
FactCheck check_order_facts(const OrderRecord& order, const std::vector<std::string>& product_names,
                            const std::string& reply);

struct Resolution {
    bool counted = false;  // the intent needs something
    bool resolved = false;
    std::string missing;   // what it lacked, when not resolved
};
// Whether `reply` resolves the turn whose state is `state` (order: the order it names, if any;
// product: the product it names, if any).
Resolution check_resolution(const DstState& state, const std::optional<OrderRecord>& order,
                            const std::optional<ProductRecord>& product, const std::string& reply);

}  // namespace llmforge::apps
