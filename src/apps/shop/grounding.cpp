#include "apps/shop/grounding.h"

#include <cctype>
#include <cstdio>
#include <regex>
#include <set>

namespace llmforge::apps {

namespace {

// "2026-03-05" -> "March 5", as replies write dates; "" when malformed.
std::string month_day(const std::string& iso) {
    const auto d = shop_date_of_iso(iso);
    return d ? train::month_day(*d) : "";
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool has(const std::string& text, const std::string& what) { return lower(text).find(lower(what)) != std::string::npos; }

std::string money(int64_t cents) {
    char b[32];
    std::snprintf(b, sizeof b, "$%lld.%02lld", (long long)(cents / 100), (long long)(cents % 100));
    return b;
}

const std::regex& date_re() {
    static const std::regex r(
        "\\b(January|February|March|April|May|June|July|August|September|October|November|December) ([0-9]{1,2})\\b");
    return r;
}

}  // namespace

FactCheck check_order_facts(const OrderRecord& o, const std::vector<std::string>& product_names, const std::string& reply) {
    FactCheck fc;
    auto fact = [&](bool ok, const std::string& what) {
        ++fc.facts;
        if (!ok) fc.wrong.push_back(what);
    };
    static const std::regex id_re("(^|[^A-Za-z0-9])#?([A-Ha-h])-?([0-9]{5})(?![0-9])");
    for (std::sregex_iterator it(reply.begin(), reply.end(), id_re), end; it != end; ++it) {
        const std::string id = std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>((*it)[2].str()[0])))) +
                               (*it)[3].str();
        fact(id == o.id, "order id " + id);
    }
    const std::set<std::string> dates = {month_day(o.ordered), month_day(o.shipped), month_day(o.eta)};
    for (std::sregex_iterator it(reply.begin(), reply.end(), date_re()), end; it != end; ++it)
        fact(dates.count(it->str()) > 0, "date " + it->str());
    static const std::regex money_re("\\$([0-9]+)(\\.([0-9]{2}))?");
    std::set<int64_t> amounts = {o.total_cents, 499, 999, 1499, 5000};
    for (const auto& item : o.items) amounts.insert(item.price_cents);
    for (std::sregex_iterator it(reply.begin(), reply.end(), money_re), end; it != end; ++it) {
        const int64_t cents = std::stoll((*it)[1].str()) * 100 + ((*it)[3].matched ? std::stoll((*it)[3].str()) : 0);
        fact(amounts.count(cents) > 0, "amount " + it->str());
    }
    static const std::regex tracking_re("\\b(1Z|FX|94|DH)[A-Z0-9]{10}\\b");
    for (std::sregex_iterator it(reply.begin(), reply.end(), tracking_re), end; it != end; ++it)
        fact(it->str() == o.tracking, "tracking " + it->str());
    static const std::regex carrier_re("\\b(UPS|FedEx|USPS|DHL)\\b");
    for (std::sregex_iterator it(reply.begin(), reply.end(), carrier_re), end; it != end; ++it)
        fact(it->str() == o.carrier, "carrier " + it->str());
    for (const auto& name : product_names) {
        if (!has(reply, name)) continue;
        bool mine = false;
        for (const auto& item : o.items) mine |= item.product == name;
        fact(mine, "product " + name);
    }
    static const std::regex says_shipped("shipped on|is on its way|left our warehouse|already shipped|in transit|"
                                         "marked .{0,40}delivered",
                                         std::regex::icase);
    static const std::regex says_processing("hasn't shipped|has not shipped|being packed|will ship on|scheduled to leave|"
                                            "before it shipped|is cancelled|i've cancelled|have cancelled|ships on",
                                            std::regex::icase);
    const bool shipped = o.status == "shipped";
    if (std::regex_search(reply, says_shipped)) fact(shipped, "status: says shipped, the order is " + o.status);
    if (std::regex_search(reply, says_processing)) fact(!shipped, "status: says not shipped, the order is " + o.status);
    return fc;
}

Resolution check_resolution(const DstState& st, const std::optional<OrderRecord>& o, const std::optional<ProductRecord>& p,
                            const std::string& reply) {
    Resolution r;
    auto need = [&](bool ok, const std::string& what) {
        r.counted = true;
        r.resolved = ok;
        if (!ok) r.missing = what;
    };
    const std::string& in = st.intent;
    const bool shipped = o && o->status == "shipped";
    if (in == "order_status" && o) {
        const bool eta = has(reply, month_day(o->eta));
        need(shipped ? eta || has(reply, o->tracking) : eta || has(reply, month_day(o->shipped)),
             shipped ? "the delivery estimate or the tracking number" : "the ship or delivery date");
    } else if (in == "cancel" && o) {
        need(shipped ? std::regex_search(reply, std::regex("already shipped|left our warehouse|can no longer|can't cancel",
                                                            std::regex::icase))
                     : has(reply, "cancel") && has(reply, money(o->total_cents)),
             shipped ? "that the order already shipped" : "the cancellation with the refund amount");
    } else if (in == "return") {
        need(has(reply, "label") || has(reply, "30 days"), "the return label or the 30-day window");
    } else if (in == "refund" && o) {
        need(has(reply, money(o->total_cents)), "the refund amount");
    } else if (in == "change_address" && o) {
        need(shipped ? has(reply, o->carrier) && has(reply, o->tracking) : has(reply, "address"),
             shipped ? "the carrier and tracking number to redirect it" : "a request for the new address");
    } else if (in == "shipping") {
        need(has(reply, "$4.99") || has(reply, "$9.99") || has(reply, "$14.99"), "a shipping price");
    } else if (in == "payment") {
        need(has(reply, "billing address") || has(reply, "Visa") || has(reply, "PayPal"), "the billing address or the accepted cards");
    } else if (in == "discount") {
        need(st.discount_code ? has(reply, *st.discount_code) : has(reply, "code"), "the discount code's rule");
    } else if (in == "account") {
        need(has(reply, "Forgot password") || has(reply, "Settings"), "\"Forgot password\" or the account settings");
    } else if (in == "product" && p) {
        need(has(reply, p->material) || has(reply, "washable") || has(reply, money(p->price_cents)) ||
                 (!p->sizes.empty() && has(reply, p->sizes.back())),
             "the product's material, sizes, washing or price");
    }
    return r;
}

}  // namespace llmforge::apps
