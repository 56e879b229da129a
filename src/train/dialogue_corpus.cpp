#include "train/dialogue_corpus.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>
#include <nlohmann/json.hpp>

#include "core/random.h"

namespace llmforge::train {

namespace {

using Rng = Draws;  // splitmix64 with bounded draws written out: the corpus is the same on every platform

}  // namespace

const std::vector<ShopProduct>& shop_catalogue() {
    static const std::vector<ShopProduct> kProducts = [] {
        const std::vector<std::string> clothes_sizes = {"XS", "S", "M", "L", "XL"};
        const std::vector<std::string> shoe_sizes = {"6", "7", "8", "9", "10", "11", "12"};
        std::vector<ShopProduct> p = {
            {"Classic Cotton T-Shirt", "clothing", "100% organic cotton", 1999, clothes_sizes, {"white", "black", "navy", "sage green"}, true},
            {"Everyday Hoodie", "clothing", "cotton and recycled polyester fleece", 4900, clothes_sizes, {"grey", "black", "forest green"}, true},
            {"Slim Fit Jeans", "clothing", "stretch denim (98% cotton, 2% elastane)", 5900, {"28", "30", "32", "34", "36"}, {"dark blue", "black"}, true},
            {"Packable Rain Jacket", "clothing", "waterproof recycled nylon", 8900, clothes_sizes, {"yellow", "navy", "olive"}, true},
            {"Merino Wool Sweater", "clothing", "100% merino wool", 7900, clothes_sizes, {"oatmeal", "charcoal", "burgundy"}, false},
            {"Linen Button Shirt", "clothing", "100% linen", 4500, clothes_sizes, {"white", "sky blue", "sand"}, true},
            {"Running Shoes", "shoes", "breathable mesh with a rubber sole", 8900, shoe_sizes, {"black", "white", "coral"}, false},
            {"Canvas Sneakers", "shoes", "cotton canvas", 4900, shoe_sizes, {"white", "navy", "red"}, true},
            {"Leather Ankle Boots", "shoes", "full-grain leather", 12900, shoe_sizes, {"brown", "black"}, false},
            {"Wool Hiking Socks (3 pack)", "clothing", "merino wool blend", 1800, {"S", "M", "L"}, {"grey", "multicolour"}, true},
            {"Baseball Cap", "accessories", "cotton twill", 2200, {"one size"}, {"black", "khaki", "navy"}, true},
            {"Knit Beanie", "accessories", "acrylic and wool blend", 1900, {"one size"}, {"mustard", "grey", "black"}, true},
            {"Leather Wallet", "accessories", "vegetable-tanned leather", 3900, {"one size"}, {"tan", "black"}, false},
            {"Canvas Tote Bag", "accessories", "heavy cotton canvas", 2400, {"one size"}, {"natural", "black"}, true},
            {"Ceramic Coffee Mug", "kitchen", "stoneware ceramic", 1400, {"12 oz"}, {"white", "speckled blue", "terracotta"}, true},
            {"French Press", "kitchen", "borosilicate glass and stainless steel", 3400, {"1 litre"}, {"silver", "black"}, true},
            {"Cast Iron Skillet", "kitchen", "pre-seasoned cast iron", 3900, {"10 inch", "12 inch"}, {"black"}, false},
            {"Bamboo Cutting Board", "kitchen", "bamboo", 2600, {"medium", "large"}, {"natural"}, false},
            {"Chef's Knife", "kitchen", "stainless steel with a walnut handle", 6900, {"8 inch"}, {"steel"}, false},
            {"Glass Food Containers (set of 5)", "kitchen", "tempered glass with BPA-free lids", 3200, {"set of 5"}, {"clear"}, true},
            {"Cotton Bath Towel", "home", "100% Turkish cotton", 2900, {"standard", "oversized"}, {"white", "sand", "slate"}, true},
            {"Throw Blanket", "home", "soft recycled cotton", 5400, {"50 x 60 inch"}, {"cream", "rust", "grey"}, true},
            {"Linen Bed Sheet Set", "home", "stonewashed linen", 14900, {"twin", "queen", "king"}, {"white", "oat", "blush"}, true},
            {"Down Alternative Pillow", "home", "microfiber fill with a cotton cover", 3900, {"standard", "king"}, {"white"}, true},
            {"Scented Soy Candle", "home", "soy wax with a cotton wick", 2200, {"8 oz"}, {"cedar", "lavender", "citrus"}, false},
            {"LED Desk Lamp", "home", "aluminium with a dimmable LED", 4900, {"one size"}, {"white", "black"}, false},
            {"Ceramic Plant Pot", "home", "glazed ceramic with a drainage hole", 2500, {"small", "medium", "large"}, {"white", "green"}, false},
            {"Wall Clock", "home", "oak wood and glass", 3500, {"12 inch"}, {"oak", "black"}, false},
            {"Wireless Earbuds", "electronics", "plastic with silicone tips", 7900, {"one size"}, {"black", "white"}, false},
            {"Bluetooth Speaker", "electronics", "water-resistant fabric and rubber", 5900, {"one size"}, {"black", "blue", "red"}, false},
            {"USB-C Fast Charger", "electronics", "fire-resistant plastic", 2500, {"30 W", "65 W"}, {"white"}, false},
            {"Power Bank 10000 mAh", "electronics", "aluminium casing", 3500, {"10000 mAh"}, {"black", "silver"}, false},
            {"Phone Case", "electronics", "shock-absorbing silicone", 1900, {"small phones", "large phones"}, {"black", "clear", "lilac"}, false},
            {"Laptop Sleeve", "electronics", "padded neoprene", 2900, {"13 inch", "15 inch"}, {"grey", "black"}, false},
            {"Smart Watch Band", "electronics", "silicone", 1500, {"S/M", "M/L"}, {"black", "white", "green"}, true},
            {"Webcam HD", "electronics", "plastic with a glass lens", 4900, {"one size"}, {"black"}, false},
            {"Insulated Water Bottle", "outdoors", "double-walled stainless steel", 2900, {"500 ml", "750 ml"}, {"teal", "black", "white"}, false},
            {"Hiking Backpack 30L", "outdoors", "ripstop nylon", 8900, {"30 litres"}, {"green", "black", "orange"}, false},
            {"Yoga Mat", "outdoors", "natural rubber", 4500, {"standard", "long"}, {"purple", "grey", "blue"}, false},
            {"Camping Lantern", "outdoors", "plastic with LED bulbs", 2900, {"one size"}, {"green", "orange"}, false},
            {"Travel Hammock", "outdoors", "parachute nylon", 3900, {"single", "double"}, {"blue", "green"}, false},
            {"Picnic Blanket", "outdoors", "waterproof polyester backing with fleece", 3400, {"60 x 80 inch"}, {"red check", "blue check"}, true},
            {"Jigsaw Puzzle 1000 pieces", "toys", "recycled cardboard", 2200, {"1000 pieces"}, {"mountain scene", "city scene"}, false},
            {"Wooden Building Blocks", "toys", "beech wood with water-based paint", 3400, {"50 pieces"}, {"multicolour"}, false},
            {"Plush Bear", "toys", "polyester plush", 2400, {"12 inch"}, {"brown", "cream"}, true},
            {"Board Game: Harbour Traders", "toys", "cardboard and wooden pieces", 3900, {"2 to 5 players"}, {"standard edition"}, false},
            {"Hardcover Notebook", "stationery", "recycled paper with a linen cover", 1600, {"A5", "A4"}, {"navy", "rust", "black"}, false},
            {"Fountain Pen", "stationery", "brushed steel", 3200, {"fine nib", "medium nib"}, {"silver", "black"}, false},
            {"Desk Organizer", "stationery", "walnut wood", 2800, {"one size"}, {"walnut"}, false},
            {"Watercolour Set", "stationery", "artist-grade pigments in a tin", 2700, {"24 colours"}, {"tin"}, false},
            {"Stainless Steel Lunch Box", "kitchen", "stainless steel with a silicone seal", 2900, {"one size"}, {"steel"}, true},
            {"Electric Kettle", "kitchen", "stainless steel", 4400, {"1.7 litre"}, {"matte black", "white"}, false},
            {"Silk Pillowcase", "home", "mulberry silk", 3900, {"standard", "king"}, {"champagne", "silver", "navy"}, true},
            {"Reading Glasses", "accessories", "acetate frames", 2500, {"+1.0", "+1.5", "+2.0", "+2.5"}, {"tortoise", "black"}, false},
            {"Sunglasses", "accessories", "polarised lenses with acetate frames", 5500, {"one size"}, {"black", "tortoise"}, false},
            {"Umbrella", "accessories", "wind-resistant fibreglass frame", 2800, {"compact", "full size"}, {"black", "navy", "yellow"}, false},
            {"Dog Leash", "pets", "braided nylon", 1900, {"4 ft", "6 ft"}, {"red", "blue", "black"}, true},
            {"Cat Scratching Post", "pets", "sisal rope and wood", 3600, {"one size"}, {"beige"}, false},
            {"Pet Bed", "pets", "washable polyester", 4900, {"small", "medium", "large"}, {"grey", "brown"}, true},
            {"Bird Feeder", "outdoors", "cedar wood", 2600, {"one size"}, {"natural"}, false},
        };
        return p;
    }();
    return kProducts;
}

// The shop's policies and knowledge-base articles: the facts the corpus's assistant states.
const std::vector<std::pair<std::string, std::string>>& shop_policy_texts() {
    static const std::vector<std::pair<std::string, std::string>> k = {
        {"returns", "Items can be returned within 30 days of delivery if they are unused and in their original packaging. "
                    "Returns are free: we email a prepaid label, and the refund goes back to the original payment method "
                    "within 5 business days of the return arriving."},
        {"exchanges", "Exchanges for another size or colour are free. The replacement ships as soon as the carrier scans "
                      "the return."},
        {"refunds", "Refunds go back to the original payment method. Banks usually show them within 5 to 10 business days."},
        {"cancellation", "An order can be cancelled until it ships, with a full refund within 5 business days. A shipped "
                         "order can be refused at delivery or returned within 30 days."},
        {"address_change", "The delivery address of an order can be changed until it ships. A shipped order can be "
                           "redirected on the carrier's website with its tracking number."},
        {"shipping", "Standard shipping takes 3 to 5 business days and is free on orders over $50, otherwise $4.99. "
                     "Express shipping takes 1 to 2 business days and costs $9.99. We ship to the United States, Canada "
                     "and the United Kingdom; international orders take 7 to 12 business days and cost $14.99."},
        {"delivery_problems", "Damaged items are replaced for free or refunded, without returning them. Late parcels: if "
                              "an order has not arrived within 3 business days of its estimate we reship it or refund it. "
                              "A parcel marked delivered but missing: check with neighbours; after 48 hours we open a "
                              "claim and send a replacement."},
        {"payments", "We accept Visa, Mastercard, American Express, PayPal and Northwind gift cards. A declined payment "
                     "usually means the billing address does not match the card; the bank can approve a blocked payment."},
        {"discounts", "Discount codes apply at checkout, one code per order. Some codes need a minimum order value or can "
                      "be used once per account; expired codes cannot be reactivated. Newsletter subscribers get 10% off "
                      "their next order."},
        {"account", "Passwords are reset from the sign-in page with \"Forgot password\"; the emailed link is valid for "
                    "1 hour. The account email is changed under Account, Settings, with a confirmation link sent to the "
                    "new address."},
    };
    return k;
}

const std::vector<std::pair<std::string, std::string>>& shop_article_texts() {
    static const std::vector<std::pair<std::string, std::string>> k = {
        {"How to return an item", "Start a return within 30 days of delivery. We email a prepaid return label; drop the "
                                  "parcel at any location of the carrier that delivered it. Items must be unused and in "
                                  "their original packaging. The refund is issued when the return arrives."},
        {"Exchanging for another size", "Exchanges are free. Tell us the size or colour you need; the replacement ships "
                                        "as soon as your return is scanned by the carrier."},
        {"When will I get my refund?", "Refunds go back to the card or PayPal account you paid with, within 5 business "
                                       "days of the return arriving. Banks usually show the money within 5 to 10 business "
                                       "days."},
        {"Shipping options and prices", "Standard delivery takes 3 to 5 business days and is free on orders over $50 "
                                        "(otherwise $4.99). Express delivery takes 1 to 2 business days for $9.99."},
        {"International shipping", "We deliver to Canada and the United Kingdom in 7 to 12 business days for $14.99. "
                                   "Import duties may apply."},
        {"Tracking your order", "When an order ships we email its carrier and tracking number. Orders ship within 1 to 3 "
                                "days of being placed."},
        {"My parcel is late", "Carriers are sometimes a few days late. If your order has not arrived within 3 business "
                              "days of the estimated date, contact us and we reship it for free or refund it."},
        {"Parcel marked delivered but not received", "Check with neighbours and around your door. If it has not turned "
                                                     "up after 48 hours, we open a claim and send a replacement."},
        {"Damaged items", "If an item arrives damaged we send a free replacement within 1 business day or refund it; "
                          "you do not need to send the damaged item back."},
        {"Cancelling an order", "Orders can be cancelled until they ship. Once shipped, refuse the delivery or return the "
                                "order within 30 days for a full refund."},
        {"Changing the delivery address", "You can change the address of an order that has not shipped yet. For a "
                                          "shipped order, redirect it on the carrier's website."},
        {"Payment methods", "We accept Visa, Mastercard, American Express, PayPal and Northwind gift cards."},
        {"Declined payments", "Check that the billing address matches the card, or try another card or PayPal. Your bank "
                              "can approve a payment it blocked."},
        {"Discount codes", "One code per order. Some codes need a minimum order of $50 or work once per account. Expired "
                           "codes cannot be used; newsletter subscribers get 10% off."},
        {"Resetting your password", "Use \"Forgot password\" on the sign-in page. The reset link we email is valid for "
                                    "1 hour."},
        {"Changing your account email", "Go to Account, then Settings, and edit your email. We send a confirmation link "
                                        "to the new address."},
        {"Caring for your products", "Machine-washable items: gentle cycle, cold water. Wool, leather and electronics "
                                     "should be cleaned by hand; see each product page."},
        {"Privacy and personal data", "We never share one customer's orders or details with another. Only the account "
                                      "holder can see an order, and we never ask for card numbers or passwords in chat."},
    };
    return k;
}

const std::vector<KnowledgePassage>& shop_knowledge() {
    static const std::vector<KnowledgePassage> k = [] {
        std::vector<KnowledgePassage> v;
        for (const auto& [topic, text] : shop_policy_texts()) {
            std::string title = topic;
            for (char& c : title) c = c == '_' ? ' ' : c;
            title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
            v.push_back({"policy:" + topic, title + " policy", text});
        }
        int i = 0;
        for (const auto& [title, body] : shop_article_texts()) v.push_back({"article:" + std::to_string(++i), title, body});
        return v;
    }();
    return k;
}

namespace {

using Lines = std::vector<std::string>;

const std::vector<std::string> kMonths = {"January", "February", "March",     "April",   "May",      "June",
                                          "July",    "August",   "September", "October", "November", "December"};
const std::vector<std::string> kCarriers = {"UPS", "FedEx", "USPS", "DHL"};
const Lines kStreets = {"Maple Street", "Oak Avenue", "Pine Road", "Cedar Lane", "Elm Drive", "Birch Way"};
const Lines kCities = {"Portland", "Denver", "Austin", "Boston", "Seattle", "Chicago", "Toronto", "Leeds"};
const Lines kCodes = {"SAVE10", "WELCOME15", "SPRING20", "FREESHIP", "THANKYOU5"};
const std::vector<std::string> kNames = {"Anna", "Ben", "Carlos", "Dana", "Elif", "Farah", "George", "Hana",
                                         "Ivan", "Julia", "Kofi", "Lena", "Marco", "Nina", "Omar", "Priya",
                                         "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wei", "Yuki"};
const std::vector<std::string> kPayments = {"Visa card", "Mastercard", "American Express card", "PayPal account"};

std::string money(int cents) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%d.%02d", cents / 100, cents % 100);
    return buf;
}

struct Date {
    int month, day;  // month 0-11, day 1-28
    std::string str() const { return kMonths[month] + " " + std::to_string(day); }
    Date plus(int days) const {
        Date d = *this;
        d.day += days;
        while (d.day > 28) d.day -= 28, d.month = (d.month + 1) % 12;
        return d;
    }
};

// The facts of one customer's order.
struct Order {
    std::string id, tracking, carrier, payment;
    const ShopProduct* product;
    std::string size, colour;
    int qty, total_cents;
    Date ordered, shipped, eta;
    bool has_shipped;
};

Order make_order(Rng& r) {
    Order o;
    o.id = "#" + std::string(1, static_cast<char>('A' + r.range(0, 7))) + std::to_string(r.range(10000, 99999));
    o.product = &r.pick(shop_catalogue());
    o.size = r.pick(o.product->sizes);
    o.colour = r.pick(o.product->colours);
    o.qty = r.chance(80) ? 1 : r.range(2, 3);
    o.total_cents = o.product->price_cents * o.qty;
    o.carrier = r.pick(kCarriers);
    static const char* kAlnum = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    o.tracking = o.carrier == "UPS" ? "1Z" : o.carrier == "FedEx" ? "FX" : o.carrier == "USPS" ? "94" : "DH";
    for (int i = 0; i < 10; ++i) o.tracking += kAlnum[r.range(0, 33)];
    o.payment = r.pick(kPayments);
    o.ordered = Date{r.range(0, 11), r.range(1, 28)};
    o.has_shipped = r.chance(70);
    o.shipped = o.ordered.plus(r.range(1, 3));
    o.eta = o.shipped.plus(r.range(2, 6));
    return o;
}

std::string item(const Order& o) {
    return (o.qty > 1 ? std::to_string(o.qty) + " x " : std::string("the ")) + o.product->name;
}

// Casual user style: sometimes lower case, no final punctuation, a greeting in front.
std::string user_style(Rng& r, std::string s, bool first) {
    static const std::vector<std::string> kHello = {"", "", "", "Hi, ", "Hello, ", "Hey, ", "Hi there! ", "Good morning, "};
    std::string hello = first ? r.pick(kHello) : "";
    if (r.chance(15)) {
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (char& c : hello) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!s.empty() && (s.back() == '.' || s.back() == '?')) s.pop_back();
    }
    if (!hello.empty() && !s.empty()) s[0] = hello == "" ? s[0] : static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    if (!s.empty() && s[0] == 'i' && (s.size() == 1 || s[1] == ' ' || s[1] == '\'')) s[0] = 'I';
    return hello + s;
}

std::string fill(std::string t, const Order& o) {
    auto rep = [&](const std::string& key, const std::string& val) {
        for (size_t p; (p = t.find(key)) != std::string::npos;) t.replace(p, key.size(), val);
    };
    rep("{id}", o.id);
    rep("{item}", item(o));
    rep("{product}", o.product->name);
    rep("{size}", o.size);
    rep("{colour}", o.colour);
    rep("{carrier}", o.carrier);
    rep("{tracking}", o.tracking);
    rep("{ordered}", o.ordered.str());
    rep("{shipped}", o.shipped.str());
    rep("{eta}", o.eta.str());
    rep("{total}", money(o.total_cents));
    rep("{payment}", o.payment);
    rep("{material}", o.product->material);
    return t;
}


}  // namespace

std::string month_day(ShopDate d) { return kMonths[static_cast<size_t>((d.month + 11) % 12)] + " " + std::to_string(d.day); }

std::string order_fact_line(const OrderFacts& o) {
    std::string s = "order #" + o.id + " | status " + (o.shipped ? "shipped" : "processing (not shipped yet)") +
                    " | item " + o.product + " | size " + o.size + " | colour " + o.colour + " | quantity " +
                    std::to_string(o.qty) + " | total " + money(o.total_cents) + " | paid by " + o.payment +
                    " | ordered " + month_day(o.ordered) + (o.shipped ? " | shipped " : " | ships ") +
                    month_day(o.ship_date) + " | carrier " + o.carrier;
    if (o.shipped) s += " | tracking " + o.tracking;
    return s + " | delivery by " + month_day(o.eta);
}

std::string product_fact_line(const ProductFacts& p) {
    auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
        return s;
    };
    return "product " + p.name + " | price " + money(p.price_cents) + " | made of " + p.material + " | sizes " +
           list(p.sizes) + " | colours " + list(p.colours) + (p.washable ? " | machine washable" : " | not machine washable");
}

std::string passage_fact_line(const KnowledgePassage& p) { return "kb " + p.title + ": " + p.text; }

SlotValues order_slot_values(const OrderFacts& o) {
    return {{"id", "#" + o.id},
            {"item", (o.qty > 1 ? std::to_string(o.qty) + " x " : std::string("the ")) + o.product},
            {"product", o.product},
            {"size", o.size},
            {"colour", o.colour},
            {"carrier", o.carrier},
            {"tracking", o.tracking},
            {"ordered", month_day(o.ordered)},
            {"shipped", month_day(o.ship_date)},
            {"eta", month_day(o.eta)},
            {"total", money(o.total_cents)},
            {"payment", o.payment}};
}

SlotValues product_slot_values(const ProductFacts& p) {
    std::string sizes;
    for (size_t i = 0; i < p.sizes.size(); ++i) sizes += (i ? (i + 1 == p.sizes.size() ? " and " : ", ") : "") + p.sizes[i];
    return {{"product", p.name}, {"material", p.material}, {"sizes", sizes}, {"price", money(p.price_cents)}};
}

namespace {

// What a reply says where a slot has no value (a model that names a fact nothing was looked up for).
const std::map<std::string, std::string>& slot_fallbacks() {
    static const std::map<std::string, std::string> k = {
        {"id", "your order"},
        {"item", "your items"},
        {"product", "the item"},
        {"size", "your size"},
        {"colour", "your colour"},
        {"carrier", "the carrier"},
        {"tracking", "the tracking number in your shipping email"},
        {"ordered", "the order date"},
        {"shipped", "the ship date in your confirmation email"},
        {"eta", "the delivery date in your confirmation email"},
        {"total", "the amount you paid"},
        {"payment", "your original payment method"},
        {"material", "the materials listed on its product page"},
        {"sizes", "the sizes listed on its product page"},
        {"price", "the price on its product page"},
        {"code", "that code"},
        {"new_address", "the new address"},
    };
    return k;
}

}  // namespace

std::string lexicalize(const std::string& text, const SlotValues& v, std::vector<std::string>* unfilled) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
        const size_t open = text.find('{', i);
        if (open == std::string::npos) {
            out.append(text, i, std::string::npos);
            break;
        }
        out.append(text, i, open - i);
        const size_t close = text.find('}', open);
        const std::string name = close == std::string::npos ? "" : text.substr(open + 1, close - open - 1);
        const auto fb = slot_fallbacks().find(name);
        if (fb == slot_fallbacks().end()) {  // not a slot: kept
            out += '{';
            i = open + 1;
            continue;
        }
        const auto it = v.find(name);
        if (it != v.end() && !it->second.empty()) {
            out += it->second;
        } else {
            out += fb->second;
            if (unfilled) unfilled->push_back(name);
        }
        i = close + 1;
    }
    return out;
}

std::string Lexicalizer::push(std::string_view piece) {
    held_.append(piece.data(), piece.size());
    std::string out;
    // Everything before the last '{' that may still open a slot reference is final.
    while (true) {
        const size_t open = held_.find('{');
        if (open == std::string::npos) {
            out += held_;
            held_.clear();
            break;
        }
        const size_t close = held_.find('}', open);
        if (close != std::string::npos) {
            out += lexicalize(held_.substr(0, close + 1), v_, &unfilled_);
            held_.erase(0, close + 1);
            continue;
        }
        bool may_be_slot = held_.size() - open <= kMaxSlot;
        for (size_t k = open + 1; k < held_.size() && may_be_slot; ++k)
            may_be_slot = std::islower(static_cast<unsigned char>(held_[k])) || held_[k] == '_';
        if (may_be_slot) {
            out += held_.substr(0, open);
            held_.erase(0, open);
            break;
        }
        out += held_.substr(0, open + 1);  // a brace that opens no slot
        held_.erase(0, open + 1);
    }
    return out;
}

std::string Lexicalizer::finish() {
    std::string rest = std::move(held_);
    held_.clear();
    return rest;
}

bool intent_wants_passages(const std::string& intent) {
    return intent == "shipping" || intent == "payment" || intent == "discount" || intent == "account";
}

bool lookup_wanted(const std::string& intent) { return intent != "greeting" && intent != "thanks"; }

std::string intent_fact_line(const std::string& intent) { return "intent " + intent; }

namespace {

OrderFacts order_facts(const Order& o) {
    OrderFacts f;
    f.id = o.id.substr(1);
    f.shipped = o.has_shipped;
    f.product = o.product->name;
    f.size = o.size;
    f.colour = o.colour;
    f.payment = o.payment;
    f.carrier = o.carrier;
    f.tracking = o.tracking;
    f.qty = o.qty;
    f.total_cents = o.total_cents;
    f.ordered = ShopDate{o.ordered.month + 1, o.ordered.day};
    f.ship_date = ShopDate{o.shipped.month + 1, o.shipped.day};
    f.eta = ShopDate{o.eta.month + 1, o.eta.day};
    return f;
}

ProductFacts product_facts(const ShopProduct& p) {
    return ProductFacts{p.name, p.material, p.price_cents, p.sizes, p.colours, p.washable};
}

const KnowledgePassage& passage(const std::string& id) {
    for (const auto& p : shop_knowledge())
        if (p.id == id) return p;
    throw std::logic_error("dialogue corpus: no knowledge passage " + id);
}

struct Builder {
    Rng& r;
    Dialogue& d;
    const Order& o;
    Rng& look;  // the tool turns' own draws, so that the dialogue text is the same with or without them
    bool greeted = false;  // only the first user turn may open with a greeting
    bool order_named = false, product_named = false;
    std::string intent;  // the dialogue state's intent for this topic's turns (dst.h's names)
    std::vector<std::string> passages;  // the knowledge passages the next user turn's question needs
    // lookup: false for thanks and goodbyes, which the chat system answers without a lookup (see
    // lookup_wanted).
    void user(const Lines& options, bool plain = false, bool lookup = true) {
        d.turns.push_back({"user", user_style(r, fill(r.pick(options), o), !greeted && !plain)});
        greeted = true;
        if (lookup) tool();
    }
    // The chat system's lookup after a user turn (see order_fact_line): the order once named, else
    // the product once named, and the passages a knowledge question needs — one of the two that
    // answer it, sometimes with an unrelated one before or after (retrieval returns a few).
    void tool() {
        std::string upper = d.turns.back().content;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        order_named |= upper.find(o.id.substr(1)) != std::string::npos;
        std::vector<std::string> lines;
        if (order_named) lines.push_back(order_fact_line(order_facts(o)));
        else if (product_named) lines.push_back(product_fact_line(product_facts(*o.product)));
        if (!passages.empty()) {
            std::vector<std::string> kb = {passage_fact_line(passage(look.pick(passages)))};
            if (look.chance(40)) {
                const auto& other = look.pick(shop_knowledge());
                if (std::find(passages.begin(), passages.end(), other.id) == passages.end())
                    kb.insert(look.chance(50) ? kb.begin() : kb.end(), passage_fact_line(other));
            }
            lines.insert(lines.end(), kb.begin(), kb.end());
            passages.clear();
        }
        if (!intent.empty()) lines.push_back(intent_fact_line(intent));
        if (lines.empty()) return;
        std::string text;
        for (const auto& l : lines) text += (text.empty() ? "" : "\n") + l;
        d.turns.push_back({"tool", text});
    }
    // The assistant's words are delexicalised: facts stay slot references ({id}, {eta}, …; see
    // lexicalize()), filled from the lookups when shown.
    void assistant(const Lines& options) { d.turns.push_back({"assistant", r.pick(options)}); }
    // The customer asks about an order; sometimes without its number, which the assistant asks for.
    void ask_about_order(const Lines& with_id, const Lines& without_id) {
        if (r.chance(25)) {
            user(without_id);
            assistant({"I can help with that. Could you tell me your order number? It starts with # and is in your order "
                       "confirmation email.",
                       "Sure! What is the order number? You can find it in the confirmation email we sent you.",
                       "Happy to check. Please share your order number (for example #A12345)."});
            user({"It's {id}.", "Sure, it's {id}", "{id}", "The order number is {id}.", "Order {id}, thanks."});
        } else {
            user(with_id);
        }
    }
};

std::string sorry(Rng& r) {
    static const Lines k = {"I'm sorry about that. ", "I'm really sorry for the trouble. ", "Sorry to hear that! ",
                            "I apologise for the inconvenience. "};
    return r.pick(k);
}

void topic_order_status(Builder& b) {
    b.ask_about_order({"Where is my order {id}?", "Can you tell me the status of order {id}?",
                       "I ordered {item} ({id}) on {ordered}. When will it arrive?", "Has order {id} shipped yet?",
                       "What's happening with my order {id}?", "Any update on {id}?"},
                      {"Where is my order?", "Can you check on my order please?", "When will my package arrive?",
                       "I'd like to know the status of my order."});
    if (b.o.has_shipped) {
        b.assistant({"Thanks! Order {id} with {item} shipped on {shipped} with {carrier}. The tracking number is {tracking}, "
                     "and it should arrive by {eta}.",
                     "Good news: order {id} is on its way. It left our warehouse on {shipped} with {carrier} (tracking "
                     "number {tracking}) and the estimated delivery date is {eta}.",
                     "Order {id} shipped on {shipped}. You can follow it with {carrier} using tracking number {tracking}; "
                     "it is expected on {eta}."});
    } else {
        b.assistant({"Order {id} with {item} is being packed right now. It will ship on {shipped} and should arrive by {eta}. "
                     "You'll get an email with the tracking number as soon as it leaves.",
                     "Your order {id} hasn't shipped yet: it's scheduled to leave our warehouse on {shipped}, with delivery "
                     "expected by {eta}. We'll email you the tracking number then."});
    }
}

void topic_shipping(Builder& b) {
    b.passages = {"policy:shipping", "article:4"};
    b.user({"How much does shipping cost?", "Do you offer free shipping?", "How long does delivery take?",
            "What are your shipping options?", "Is there express shipping?"});
    b.assistant({"Standard shipping is free on orders over $50; below that it costs $4.99 and takes 3 to 5 business days. "
                 "Express shipping costs $9.99 and takes 1 to 2 business days.",
                 "We have two options: standard shipping (3 to 5 business days, free over $50, otherwise $4.99) and "
                 "express shipping (1 to 2 business days, $9.99)."});
    if (b.r.chance(40)) {
        b.passages = {"policy:shipping", "article:5"};
        b.user({"Do you ship internationally?", "Can you ship to Canada?", "Do you deliver to the UK?"});
        b.assistant({"Yes, we ship to the United States, Canada and the United Kingdom. International orders take 7 to 12 "
                     "business days and shipping costs $14.99.",
                     "We deliver to the US, Canada and the UK. Outside the US delivery takes 7 to 12 business days and "
                     "costs $14.99."});
    }
}

void topic_delivery_problem(Builder& b) {
    const int kind = b.r.range(0, 2);
    if (kind == 0) {  // damaged
        b.ask_about_order({"The {product} from order {id} arrived damaged.", "My order {id} came broken.",
                           "I received {item} today ({id}) but it's damaged."},
                          {"My package arrived damaged.", "The item I received is broken."});
        b.assistant({sorry(b.r) + "I've sent a free replacement of {item} for order {id}; it ships within 1 business day. "
                                  "There's no need to return the damaged one.",
                     sorry(b.r) + "For order {id} I can send a replacement right away or refund {total} to your {payment}. "
                                  "Which would you prefer?"});
        if (b.d.turns.back().content.find("prefer") != std::string::npos) {
            if (b.r.chance(50)) {
                b.user({"A replacement please.", "Please send a new one.", "Replacement, thanks."});
                b.assistant({"Done! A new {product} ({colour}, {size}) ships within 1 business day. You'll get the tracking "
                             "number by email."});
            } else {
                b.user({"I'd like a refund.", "Refund please.", "Just refund me please."});
                b.assistant({"Done! I've refunded {total} to your {payment}. It usually shows up within 5 to 10 business "
                             "days."});
            }
        }
    } else if (kind == 1) {  // late
        b.ask_about_order({"My order {id} is late. It was supposed to arrive by {eta}.", "Order {id} still hasn't arrived.",
                           "It's been ages and {id} is not here yet."},
                          {"My order is late.", "My package still hasn't arrived."});
        if (!b.o.has_shipped) {  // what the order's record says, not what the customer thinks (same draws)
            b.assistant({sorry(b.r) + "Order {id} hasn't shipped yet: it is scheduled to leave our warehouse on {shipped} "
                                      "and should arrive by {eta}. You'll get the tracking number by email when it ships.",
                         sorry(b.r) + "I checked order {id}: it is still being packed and will ship on {shipped}, with "
                                      "delivery expected by {eta}."});
            return;
        }
        b.assistant({sorry(b.r) + "Order {id} shipped on {shipped} with {carrier} (tracking {tracking}). The carrier reports a "
                                  "delay; if it hasn't arrived within 3 business days, I'll send a replacement or a full "
                                  "refund, whichever you prefer.",
                     sorry(b.r) + "I checked order {id}: {carrier} has it in transit (tracking {tracking}). Carriers are "
                                  "sometimes a few days late. If it's not with you in 3 business days, write to us and we'll "
                                  "reship it for free."});
    } else {  // marked delivered, not received
        b.ask_about_order({"The tracking for {id} says delivered but I never got it.",
                           "Order {id} shows as delivered, but there's nothing here."},
                          {"My package says delivered but I didn't receive it."});
        if (!b.o.has_shipped) {
            b.assistant({sorry(b.r) + "Order {id} hasn't shipped yet, so it can't have been delivered: it leaves our "
                                      "warehouse on {shipped} and should arrive by {eta}.",
                         sorry(b.r) + "Our records show order {id} is still being packed; it ships on {shipped} and is "
                                      "expected by {eta}. You'll get the tracking number by email."});
            return;
        }
        b.assistant({sorry(b.r) + "{carrier} marked order {id} as delivered. Please check with neighbours and around your door. "
                                  "If it doesn't turn up within 48 hours, I'll open a claim and send you a replacement.",
                     sorry(b.r) + "Sometimes packages are marked delivered a day early. If order {id} is still missing "
                                  "tomorrow, reply here and I'll reship {item} at no cost."});
    }
}

void topic_returns(Builder& b) {
    b.ask_about_order({"Can I return the {product} from order {id}?", "I want to return {item} ({id}).",
                       "How do I send back order {id}?", "The {product} doesn't fit. Can I return it? Order {id}."},
                      {"What is your return policy?", "I'd like to return something.", "How do returns work?"});
    b.assistant({"Yes! You can return items within 30 days of delivery if they're unused and in their original packaging. "
                 "I've emailed you a prepaid return label for order {id}; drop the parcel at any {carrier} location. "
                 "Your refund of {total} goes back to your {payment} once we receive it.",
                 "Of course. Returns are free within 30 days of delivery. I've sent a return label for order {id} to your "
                 "email; once the {product} is back with us, we refund {total} to your {payment} within 5 business days."});
    if (b.r.chance(35)) {
        b.user({"Can I exchange it for another size instead?", "Could I get a different size?"});
        b.assistant({"Yes, exchanges are free. Which size would you like instead of {size}?",
                     "Sure! Tell me the size you need and I'll ship it as soon as the return is scanned."});
        b.user({"Size " + b.r.pick(b.o.product->sizes) + " please.", b.r.pick(b.o.product->sizes) + ", thanks."});
        b.assistant({"Done! The new size ships as soon as {carrier} scans your return. You'll get a confirmation email.",
                     "Great, I've set up the exchange for order {id}. The replacement ships when your return is on its way."});
    }
}

void topic_refund(Builder& b) {
    b.ask_about_order({"When will I get my refund for order {id}?", "I returned {item} ({id}). Where's my refund?",
                       "Has my refund for {id} been processed?"},
                      {"Where is my refund?", "I'm still waiting for a refund."});
    b.assistant({"Your refund of {total} for order {id} was issued on {eta}. It takes 5 to 10 business days to appear on your "
                 "{payment}.",
                 "I can see the return for order {id} arrived, and {total} was refunded to your {payment} on {eta}. Banks "
                 "usually show it within 5 to 10 business days."});
}

void topic_cancel(Builder& b) {
    b.ask_about_order({"Please cancel order {id}.", "I'd like to cancel my order {id}.", "Can I still cancel {id}?"},
                      {"I want to cancel my order.", "Can I cancel an order?"});
    if (!b.o.has_shipped) {
        b.assistant({"Done: order {id} is cancelled, and {total} will be refunded to your {payment} within 5 business days.",
                     "No problem. I've cancelled order {id} before it shipped; the refund of {total} goes back to your "
                     "{payment} within 5 business days."});
    } else {
        b.assistant({"I'm sorry, order {id} already shipped on {shipped}, so I can't cancel it. Once it arrives you can "
                     "return it for free within 30 days and get a full refund of {total}.",
                     "Order {id} left our warehouse on {shipped}, so it can no longer be cancelled. You can refuse the "
                     "delivery or return it within 30 days for a full refund."});
    }
}

void topic_address(Builder& b) {
    b.ask_about_order({"I need to change the shipping address for order {id}.", "Can I update the address on {id}?",
                       "I moved. Can you send order {id} to my new address?"},
                      {"I need to change my shipping address.", "Can I change the delivery address of my order?"});
    if (b.o.has_shipped) {
        b.assistant({"Order {id} already shipped with {carrier}, so I can't change it here, but you can redirect it on the "
                     "{carrier} website with tracking number {tracking}."});
        return;
    }
    b.assistant({"Sure, order {id} hasn't shipped yet. What's the new address?",
                 "I can still change it. Please send me the full new address for order {id}."});
    const std::string addr = std::to_string(b.r.range(2, 999)) + " " + b.r.pick(kStreets) + ", " + b.r.pick(kCities);
    b.user({addr, "It's " + addr + ".", "New address: " + addr});
    b.d.slots["new_address"] = addr;
    b.d.turns.push_back({"assistant", "Thanks! Order {id} will now go to {new_address}. It still ships on {shipped}."});
}

void topic_product(Builder& b) {
    const ShopProduct& p = *b.o.product;
    const int q = b.r.range(0, 3);
    b.product_named = true;
    if (q == 0) {
        b.user({"What is the {product} made of?", "What material is the {product}?"});
        b.assistant({"The {product} is made of {material}.", "It's made of {material}."});
    } else if (q == 1) {
        b.user({"What sizes does the {product} come in?", "Which sizes are available for the {product}?"});
        b.d.turns.push_back({"assistant", "The {product} comes in {sizes}."});
    } else if (q == 2) {
        b.user({"Is the {product} machine washable?", "Can I put the {product} in the washing machine?"});
        b.assistant({p.washable ? "Yes, the {product} is machine washable. Use a gentle cycle and cold water."
                                : "No, the {product} isn't machine washable. Please clean it by hand."});
    } else {
        b.user({"Is the {product} in {colour} in stock?", "Do you have the {product} in {colour}, size {size}?"});
        if (b.r.chance(70)) {
            b.assistant({"Yes, the {product} in that colour and size is in stock and ships within 1 business day.",
                         "Good news: we have the {product} in that colour and size in stock."});
        } else {
            b.assistant({"The {product} in that colour is sold out right now. We expect new stock within two weeks.",
                         "Sorry, that one is out of stock. It should be back within two weeks."});
        }
    }
    b.d.turns.back().content += p.price_cents > 0 && b.r.chance(50) ? " It costs {price}." : "";
}

void topic_payment(Builder& b) {
    if (b.r.chance(50)) {
        b.passages = {"policy:payments", "article:13"};
        b.user({"My card was declined. What should I do?", "Payment failed at checkout.", "Why was my payment declined?"});
        b.assistant({"Sorry about that! Please check that the billing address matches your card, or try another card or "
                     "PayPal. If it still fails, your bank may have blocked the payment and can approve it.",
                     "That usually happens when the billing address doesn't match the card. You can also try PayPal or "
                     "another card."});
    } else {
        b.passages = {"policy:payments", "article:12"};
        b.user({"What payment methods do you accept?", "Do you accept PayPal?", "Can I pay with a gift card?"});
        b.assistant({"We accept Visa, Mastercard, American Express, PayPal and our own gift cards."});
    }
}

void topic_discount(Builder& b) {
    const std::string code = b.r.pick(kCodes);
    b.passages = {"policy:discounts", "article:14"};
    b.user({"My discount code " + code + " doesn't work.", "Why isn't the code " + code + " working?",
            "Can I still use the code " + code + "?"});
    const int why = b.r.range(0, 2);
    b.d.slots["code"] = code;
    b.d.turns.push_back({"assistant", why == 0 ? "The code {code} has expired, sorry! Sign up "
                                                 "for our newsletter to get 10% off your next order."
                                      : why == 1 ? "The code {code} works on orders over $50. Add a little more to your "
                                                   "cart and it will apply."
                                                 : "The code {code} can be used once per account, and it looks like it "
                                                   "was already used."});
}

void topic_account(Builder& b) {
    if (b.r.chance(50)) {
        b.passages = {"policy:account", "article:15"};
        b.user({"I forgot my password.", "I can't log in to my account.", "How do I reset my password?"});
        b.assistant({"No problem! Click \"Forgot password\" on the sign-in page and we'll email you a reset link. It's valid "
                     "for 1 hour.",
                     "You can reset it from the sign-in page with \"Forgot password\". The email with the link arrives "
                     "within a few minutes."});
    } else {
        b.passages = {"policy:account", "article:16"};
        b.user({"How do I change the email on my account?", "Can I update my email address?"});
        b.assistant({"Go to Account, then Settings, and edit your email address. We'll send a confirmation link to the new "
                     "address."});
    }
}

void topic_greeting(Builder& b) {
    b.user({"Hi!", "Hello", "Hey there", "Good morning!", "Hi, is anyone there?"}, true, false);
    b.assistant({"Hello! I'm the Northwind Goods assistant. How can I help you today?",
                 "Hi! Welcome to Northwind Goods. What can I do for you?",
                 "Hello! I can help with orders, shipping, returns and our products. What do you need?"});
}

}  // namespace

const std::vector<std::string>& dialogue_topics() {
    static const std::vector<std::string> k = {"order_status", "shipping",     "delivery_problem", "returns",
                                               "refund",       "cancellation", "address_change",   "product_question",
                                               "payment",      "discount",     "account",          "greeting"};
    return k;
}

namespace {

// Dialogue n's generator, positioned where make_order reads it.
Rng dialogue_rng(uint64_t seed, uint64_t n) {
    Rng r(seed * kGoldenGamma + n * 0xd1b54a32d192ed03ull + 1);
    r.next();
    return r;
}

ShopDate shop_date(const Date& d) { return ShopDate{d.month + 1, d.day}; }

}  // namespace

ShopOrder shop_order(uint64_t seed, uint64_t n) {
    Rng r = dialogue_rng(seed, n);
    const Order o = make_order(r);
    return ShopOrder{o.id.substr(1), o.product, o.size, o.colour, o.carrier, o.tracking, o.payment, o.qty, o.total_cents,
                     shop_date(o.ordered), shop_date(o.shipped), shop_date(o.eta), o.has_shipped};
}

const std::vector<std::string>& shop_carriers() { return kCarriers; }
const std::vector<std::string>& shop_names() { return kNames; }
const std::vector<std::string>& shop_streets() { return kStreets; }
const std::vector<std::string>& shop_cities() { return kCities; }
const std::vector<std::string>& shop_discount_codes() { return kCodes; }

Dialogue make_dialogue(uint64_t seed, uint64_t n) {
    Rng r = dialogue_rng(seed, n);
    Dialogue d;
    const Order o = make_order(r);
    d.turns.push_back({"system", r.chance(80) ? "You are the customer-service assistant of Northwind Goods, an online shop. "
                                                "Answer politely and briefly."
                                              : "You are a helpful assistant for the Northwind Goods online shop."});
    Rng look(seed * 0x94d049bb133111ebull + n * kGoldenGamma + 7);
    Builder b{r, d, o, look};
    if (r.chance(12)) topic_greeting(b);
    static const std::vector<void (*)(Builder&)> kTopics = {
        topic_order_status, topic_shipping, topic_delivery_problem, topic_returns, topic_refund,  topic_cancel,
        topic_address,      topic_product,  topic_payment,          topic_discount, topic_account, topic_greeting};
    const size_t t = r.next() % (kTopics.size() - 1);  // greeting only as an opener
    d.topic = dialogue_topics()[t];
    static const std::map<std::string, std::string> kIntent = {
        {"order_status", "order_status"}, {"shipping", "shipping"},     {"delivery_problem", "order_status"},
        {"returns", "return"},            {"refund", "refund"},         {"cancellation", "cancel"},
        {"address_change", "change_address"}, {"product_question", "product"}, {"payment", "payment"},
        {"discount", "discount"},         {"account", "account"}};
    b.intent = kIntent.at(d.topic);
    kTopics[t](b);
    bool has_order = false;
    for (const auto& turn : d.turns) has_order |= turn.role != "assistant" && turn.content.find(o.id) != std::string::npos;
    if (has_order) d.order_id = o.id;
    for (const auto& [k, v] : order_slot_values(order_facts(o))) d.slots[k] = v;
    if (!has_order)  // a product question: the product's
        for (const auto& [k, v] : product_slot_values(product_facts(*o.product))) d.slots[k] = v;
    if (r.chance(45)) {
        b.user({"Thanks!", "Thank you so much.", "Great, thanks for your help.", "ok thx", "Perfect, thank you!"}, false, false);
        b.assistant({"You're welcome! Have a great day.", "Happy to help! Anything else I can do for you?",
                     "My pleasure. Enjoy your purchase!"});
    }
    if (d.turns.back().role == "assistant" && d.turns.back().content.find("Anything else") != std::string::npos &&
        r.chance(60)) {
        b.user({"No, that's all.", "Nope, that's it. Bye!", "That's everything, thanks."}, false, false);
        b.assistant({"Thanks for shopping with Northwind Goods. Goodbye!", "Have a wonderful day!"});
    }
    return d;
}

std::string dialogue_json(const Dialogue& d) {
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    for (const auto& t : d.turns) msgs.push_back({{"role", t.role}, {"content", t.content}});
    return nlohmann::ordered_json{{"messages", msgs}}.dump();
}

}  // namespace llmforge::train
