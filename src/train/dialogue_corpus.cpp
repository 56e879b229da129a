#include "train/dialogue_corpus.h"

#include <cstdio>
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


struct Builder {
    Rng& r;
    Dialogue& d;
    const Order& o;
    bool greeted = false;  // only the first user turn may open with a greeting
    void user(const Lines& options, bool plain = false) {
        d.turns.push_back({"user", user_style(r, fill(r.pick(options), o), !greeted && !plain)});
        greeted = true;
    }
    void assistant(const Lines& options) { d.turns.push_back({"assistant", fill(r.pick(options), o)}); }
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
    b.user({"How much does shipping cost?", "Do you offer free shipping?", "How long does delivery take?",
            "What are your shipping options?", "Is there express shipping?"});
    b.assistant({"Standard shipping is free on orders over $50; below that it costs $4.99 and takes 3 to 5 business days. "
                 "Express shipping costs $9.99 and takes 1 to 2 business days.",
                 "We have two options: standard shipping (3 to 5 business days, free over $50, otherwise $4.99) and "
                 "express shipping (1 to 2 business days, $9.99)."});
    if (b.r.chance(40)) {
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
    b.d.turns.push_back({"assistant", fill("Thanks! Order {id} will now go to " + addr + ". It still ships on {shipped}.", b.o)});
}

void topic_product(Builder& b) {
    const ShopProduct& p = *b.o.product;
    const int q = b.r.range(0, 3);
    if (q == 0) {
        b.user({"What is the {product} made of?", "What material is the {product}?"});
        b.assistant({"The {product} is made of {material}.", "It's made of {material}."});
    } else if (q == 1) {
        std::string sizes;
        for (size_t i = 0; i < p.sizes.size(); ++i) sizes += (i ? (i + 1 == p.sizes.size() ? " and " : ", ") : "") + p.sizes[i];
        b.user({"What sizes does the {product} come in?", "Which sizes are available for the {product}?"});
        b.d.turns.push_back({"assistant", fill("The {product} comes in " + sizes + ".", b.o)});
    } else if (q == 2) {
        b.user({"Is the {product} machine washable?", "Can I put the {product} in the washing machine?"});
        b.assistant({p.washable ? "Yes, the {product} is machine washable. Use a gentle cycle and cold water."
                                : "No, the {product} isn't machine washable. Please clean it by hand."});
    } else {
        b.user({"Is the {product} in {colour} in stock?", "Do you have the {product} in {colour}, size {size}?"});
        if (b.r.chance(70)) {
            b.assistant({"Yes, the {product} in {colour} ({size}) is in stock and ships within 1 business day.",
                         "Good news: we have the {product} in {colour}, size {size}, in stock."});
        } else {
            b.assistant({"The {product} in {colour} is sold out right now. We expect new stock on {eta}.",
                         "Sorry, that one is out of stock. It should be back on {eta}."});
        }
    }
    b.d.turns.back().content += p.price_cents > 0 && b.r.chance(50) ? " It costs " + money(p.price_cents) + "." : "";
}

void topic_payment(Builder& b) {
    if (b.r.chance(50)) {
        b.user({"My card was declined. What should I do?", "Payment failed at checkout.", "Why was my payment declined?"});
        b.assistant({"Sorry about that! Please check that the billing address matches your card, or try another card or "
                     "PayPal. If it still fails, your bank may have blocked the payment and can approve it.",
                     "That usually happens when the billing address doesn't match the card. You can also try PayPal or "
                     "another card."});
    } else {
        b.user({"What payment methods do you accept?", "Do you accept PayPal?", "Can I pay with a gift card?"});
        b.assistant({"We accept Visa, Mastercard, American Express, PayPal and our own gift cards."});
    }
}

void topic_discount(Builder& b) {
    const std::string code = b.r.pick(kCodes);
    b.user({"My discount code " + code + " doesn't work.", "Why isn't the code " + code + " working?",
            "Can I still use the code " + code + "?"});
    const int why = b.r.range(0, 2);
    b.d.turns.push_back({"assistant", why == 0 ? "The code " + code + " expired on " + b.o.ordered.str() + ", sorry! Sign up "
                                                 "for our newsletter to get 10% off your next order."
                                      : why == 1 ? "The code " + code + " works on orders over $50. Add a little more to your "
                                                                           "cart and it will apply."
                                                 : "The code " + code + " can be used once per account, and it looks like it "
                                                                         "was already used."});
}

void topic_account(Builder& b) {
    if (b.r.chance(50)) {
        b.user({"I forgot my password.", "I can't log in to my account.", "How do I reset my password?"});
        b.assistant({"No problem! Click \"Forgot password\" on the sign-in page and we'll email you a reset link. It's valid "
                     "for 1 hour.",
                     "You can reset it from the sign-in page with \"Forgot password\". The email with the link arrives "
                     "within a few minutes."});
    } else {
        b.user({"How do I change the email on my account?", "Can I update my email address?"});
        b.assistant({"Go to Account, then Settings, and edit your email address. We'll send a confirmation link to the new "
                     "address."});
    }
}

void topic_greeting(Builder& b) {
    b.user({"Hi!", "Hello", "Hey there", "Good morning!", "Hi, is anyone there?"}, true);
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
    Builder b{r, d, o};
    if (r.chance(12)) topic_greeting(b);
    static const std::vector<void (*)(Builder&)> kTopics = {
        topic_order_status, topic_shipping, topic_delivery_problem, topic_returns, topic_refund,  topic_cancel,
        topic_address,      topic_product,  topic_payment,          topic_discount, topic_account, topic_greeting};
    const size_t t = r.next() % (kTopics.size() - 1);  // greeting only as an opener
    d.topic = dialogue_topics()[t];
    kTopics[t](b);
    bool has_order = false;
    for (const auto& turn : d.turns) has_order |= turn.content.find(o.id) != std::string::npos;
    if (has_order) d.order_id = o.id;
    if (r.chance(45)) {
        b.user({"Thanks!", "Thank you so much.", "Great, thanks for your help.", "ok thx", "Perfect, thank you!"});
        b.assistant({"You're welcome! Have a great day.", "Happy to help! Anything else I can do for you?",
                     "My pleasure. Enjoy your purchase!"});
    }
    if (d.turns.back().role == "assistant" && d.turns.back().content.find("Anything else") != std::string::npos &&
        r.chance(60)) {
        b.user({"No, that's all.", "Nope, that's it. Bye!", "That's everything, thanks."});
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
