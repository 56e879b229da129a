// The paraphrase generator the DST intent classifier is trained on: for each intent (and "inform",
// a turn that only gives a value), templates written for this purpose — not the chat corpus's,
// whose user turns are too few and too regular — filled with the shop's orders, products, codes
// and addresses, then varied: greetings and politeness around them, lower case, dropped
// punctuation, spelling mistakes (a letter dropped, doubled, swapped or replaced), and a thanks
// in front of a new request. Deterministic in the seed (splitmix64 draws).
#include <cctype>
#include <map>

#include "apps/shop/dst.h"
#include "apps/shop/shop_db.h"
#include "core/random.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

namespace {

using Lines = std::vector<std::string>;

const std::map<std::string, Lines>& templates() {
    static const std::map<std::string, Lines> k = {
        {"order_status",
         {"where is my order {id}", "what's the status of {id}", "has {id} shipped", "when will {id} be delivered",
          "any news on my order {id}?", "i'm still waiting for {id}", "my package hasn't arrived yet",
          "when is my parcel coming", "can you track order {id} for me", "is my order on its way?",
          "the {product} I ordered still hasn't come", "my order is late", "it's been two weeks and nothing arrived",
          "tracking says delivered but i don't have it", "my {product} arrived broken", "the box was damaged and the {product} is cracked",
          "did my order {id} ship yet", "what's the eta on {id}", "where's my stuff", "when does {id} arrive",
          "order {id} hasn't moved in days", "can you check whether {id} was dispatched", "my delivery is missing",
          "the courier never showed up with {id}", "is {id} still processing?", "what's the tracking number for {id}",
          "I'd like an update on my delivery", "did you send my {product} yet", "has my order left the warehouse"}},
        {"return",
         {"i want to return the {product}", "how do i send back {id}", "can i return something i bought",
          "what's your return policy", "the {product} doesn't fit, can I return it", "i'd like to return order {id}",
          "how long do i have to send items back", "can i exchange the {product} for a different size",
          "i need a return label for {id}", "i want to swap the {product} for another colour", "is the return free",
          "the {product} isn't what I expected, I want to send it back", "return the {product} from {id} please",
          "can i get an exchange", "how do exchanges work", "i changed my mind about the {product}", "start a return for {id}"}},
        {"refund",
         {"where is my refund", "when will i get my money back for {id}", "i returned the {product} but got no refund",
          "has my refund for {id} been processed", "i want a refund", "please refund order {id}", "refund me please",
          "how long do refunds take", "i'd like my money back", "can you refund the {product}", "still no refund for {id}",
          "i was promised a refund weeks ago", "can i get reimbursed for {id}", "just give me a refund instead",
          "did you refund my card yet"}},
        {"cancel",
         {"cancel my order {id}", "i want to cancel {id}", "can i still cancel my order", "please cancel the order",
          "how do i cancel an order", "i ordered by mistake, cancel it please", "stop my order {id} from shipping",
          "cancel the {product} order", "is it possible to cancel {id}", "i don't want order {id} anymore",
          "please don't send {id}, i want to cancel", "cancel it", "i need to cancel my purchase"}},
        {"change_address",
         {"i need to change the shipping address for {id}", "can you update my delivery address", "i moved, please change my address",
          "send order {id} to a different address", "wrong address on my order", "can i change where {id} is delivered",
          "please ship {id} to {addr}", "change the address on {id} to {addr}", "my address is wrong, it should be {addr}",
          "can the parcel go to my work address instead", "update the address for my order please",
          "deliver {id} to my new place"}},
        {"shipping",
         {"how much is shipping", "do you offer free shipping", "how long does delivery take", "do you ship to canada",
          "can you deliver to the uk", "what are your shipping options", "is there express delivery",
          "how much is express shipping", "do you ship internationally", "what does standard shipping cost",
          "when would an order placed today arrive", "do you deliver on weekends", "is shipping free over $50",
          "which carriers do you use", "how fast is your delivery"}},
        {"payment",
         {"my card was declined", "payment failed at checkout", "what payment methods do you accept", "can i pay with paypal",
          "do you take american express", "can i use a gift card", "why was my payment rejected", "i was charged twice",
          "can i pay in installments", "my bank blocked the payment", "the checkout won't accept my card",
          "do you accept mastercard", "i see two charges on my statement for {id}", "can i change the card on {id}"}},
        {"discount",
         {"my discount code {code} doesn't work", "the code {code} is not valid", "can i still use {code}",
          "do you have any discount codes", "is there a coupon for first orders", "why won't my promo code apply",
          "i forgot to add my code {code} to {id}", "are there any sales on right now", "how do i use a voucher",
          "does {code} work on sale items", "the coupon says expired", "got any promo codes", "my code gives an error"}},
        {"product",
         {"what is the {product} made of", "does the {product} come in {size}", "is the {product} in stock",
          "is the {product} machine washable", "what sizes does the {product} come in", "do you have the {product} in {colour}",
          "how much is the {product}", "what colours are available for the {product}", "is the {product} any good for travel",
          "when will the {product} be back in stock", "can i put the {product} in the dryer", "tell me about the {product}",
          "what material is the {product}", "is the {product} waterproof", "does the {product} run small",
          "what's the price of the {product}", "how big is the {product}", "do you sell {product}s"}},
        {"account",
         {"i forgot my password", "i can't log in", "how do i reset my password", "my account is locked",
          "how do i change my email", "i want to delete my account", "the password reset email never came",
          "can i change my username", "how do i update my account details", "i can't sign in to my account",
          "how do i unsubscribe from your emails", "my login doesn't work"}},
        {"greeting", {"hi", "hello", "hey", "good morning", "good afternoon", "hi there", "hey there", "hello?",
                      "is anyone there", "yo", "greetings"}},
        {"thanks",
         {"thanks", "thank you", "thanks a lot", "thank you so much", "great, thanks", "perfect, thank you", "cheers",
          "ok thanks", "that's all, thanks", "no, that's everything", "bye", "awesome thank you", "thx", "ty",
          "that helps, thanks", "ok great", "appreciate it", "that's it for now, bye"}},
        {"other",
         {"can i talk to a human", "are you a robot", "i want to speak to a manager", "what's the weather like",
          "tell me a joke", "where are you located", "do you have a physical store", "what are your opening hours",
          "i want to file a complaint", "can i work for you", "what's your phone number", "do you have an app",
          "who are you", "how old are you", "what is the meaning of life", "can you help me with my homework"}},
        {"inform",
         {"{id}", "it's {id}", "the order number is {id}", "order {id}", "sure, {id}", "it is {id}", "#{digits}",
          "{addr}", "the new address is {addr}", "it's {addr}", "size {size}", "{size} please", "in {colour}",
          "the {colour} one", "yes", "no", "yes please", "ok", "sure", "the one from last week", "i think it was {id}",
          "oh sorry it's {id}", "my order number: {id}", "the code is {code}", "{code}", "it was the {product}",
          "i ordered it on monday", "i paid with paypal"}},
    };
    return k;
}

const Lines kPrefixes = {"", "", "", "", "hi, ", "hello, ", "hey ", "hi there, ", "excuse me, ", "quick question: ",
                         "sorry to bother you, ", "good morning, "};
const Lines kSuffixes = {"", "", "", "", " please", " thanks", " pls", " asap", "?", "!", " thank you", " :("};
const Lines kThanksFirst = {"thanks! ", "thank you. ", "great, thanks. also ", "ok thx, ", "cheers. one more thing: "};

std::string order_id_form(Draws& d) {
    const std::string letter(1, static_cast<char>('A' + d.range(0, 7)));
    const std::string digits = std::to_string(d.range(10000, 99999));
    switch (d.range(0, 5)) {
        case 0: return "#" + letter + digits;
        case 1: return letter + digits;
        case 2: return std::string(1, static_cast<char>(std::tolower(letter[0]))) + "-" + digits;
        case 3: return "order " + digits;
        case 4: return "#" + letter + "-" + digits;
        default: return letter + " " + digits;
    }
}

// One spelling mistake in a word of 4+ letters.
std::string typo(Draws& d, std::string s) {
    std::vector<size_t> starts;
    for (size_t i = 0; i < s.size(); ++i)
        if (std::isalpha(static_cast<unsigned char>(s[i])) && (i == 0 || !std::isalpha(static_cast<unsigned char>(s[i - 1])))) {
            size_t j = i;
            while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
            if (j - i >= 4) starts.push_back(i);
        }
    if (starts.empty()) return s;
    const size_t w = starts[d.next() % starts.size()];
    size_t e = w;
    while (e < s.size() && std::isalpha(static_cast<unsigned char>(s[e]))) ++e;
    const size_t p = w + 1 + d.next() % (e - w - 1);
    switch (d.range(0, 3)) {
        case 0: s.erase(p, 1); break;
        case 1: s.insert(p, 1, s[p]); break;
        case 2: std::swap(s[p], s[p - 1]); break;
        default: s[p] = static_cast<char>('a' + d.range(0, 25)); break;
    }
    return s;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> dst_training_utterances(uint64_t seed, int64_t per_label) {
    std::vector<std::pair<std::string, std::string>> out;
    const auto& cat = train::shop_catalogue();
    Draws d(seed * 0x9e3779b97f4a7c15ull + 17);
    for (const auto& [label, lines] : templates()) {
        for (int64_t i = 0; i < per_label; ++i) {
            std::string t = d.pick(lines);
            const train::ShopProduct& p = cat[d.next() % cat.size()];
            const Lines al = product_aliases(p.name);
            std::string product = al.empty() || d.chance(40) ? p.name : d.pick(al);
            if (d.chance(60))
                for (char& c : product) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string code = d.pick(train::shop_discount_codes());
            if (d.chance(40))
                for (char& c : code) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const std::string addr = std::to_string(d.range(1, 999)) + " " + d.pick(train::shop_streets()) + ", " +
                                     d.pick(train::shop_cities());
            auto rep = [&t](const std::string& key, const std::string& v) {
                for (size_t q; (q = t.find(key)) != std::string::npos;) t.replace(q, key.size(), v);
            };
            rep("{id}", order_id_form(d));
            rep("{digits}", std::to_string(d.range(10000, 99999)));
            rep("{product}", product);
            rep("{code}", code);
            rep("{addr}", addr);
            rep("{size}", d.pick(p.sizes));
            rep("{colour}", d.pick(p.colours));
            if (label != "inform" && label != "greeting") {
                t = d.pick(kPrefixes) + t + d.pick(kSuffixes);
                if (label != "thanks" && d.chance(8)) t = d.pick(kThanksFirst) + t;
            }
            if (d.chance(25)) t = typo(d, t);
            if (d.chance(8)) t = typo(d, t);
            if (d.chance(30)) t[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
            out.emplace_back(std::move(t), label);
        }
    }
    return out;
}

}  // namespace llmforge::apps
