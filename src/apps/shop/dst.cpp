#include "apps/shop/dst.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>

#include "apps/shop/shop_db.h"
#include "apps/shop/text_classifier.h"
#include "core/error.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

const std::vector<std::string> kDstIntents = {"order_status", "return",  "refund",   "cancel",  "change_address",
                                              "shipping",     "payment", "discount", "product", "account",
                                              "greeting",     "thanks",  "other"};

namespace {

constexpr int kFormat = 1;
constexpr int kHashBits = 16;  // 65536 feature buckets (the model file: ~7 MB of text)

const std::set<std::string> kOrderIntents = {"order_status", "return", "refund", "cancel", "change_address"};

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Words of a text: runs of letters, digits, apostrophes and inner hyphens, lower case.
struct Word {
    std::string w;
    size_t begin, end;  // byte span in the text
};
std::vector<Word> words(const std::string& s) {
    std::vector<Word> out;
    size_t i = 0;
    auto in_word = [&](size_t k) {
        const unsigned char c = static_cast<unsigned char>(s[k]);
        return std::isalnum(c) || ((c == '\'' || c == '-') && k > 0 && k + 1 < s.size() &&
                                   std::isalnum(static_cast<unsigned char>(s[k - 1])) &&
                                   std::isalnum(static_cast<unsigned char>(s[k + 1])));
    };
    while (i < s.size()) {
        if (!in_word(i)) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < s.size() && in_word(j)) ++j;
        out.push_back({lower(s.substr(i, j - i)), i, j});
        i = j;
    }
    return out;
}

// Damerau distance <= 1.
bool within_one_edit(const std::string& a, const std::string& b) {
    if (a == b) return true;
    const size_t n = a.size(), m = b.size();
    if (n + 1 < m || m + 1 < n) return false;
    size_t i = 0;
    while (i < n && i < m && a[i] == b[i]) ++i;
    if (n == m) {
        if (a.compare(i + 1, std::string::npos, b, i + 1, std::string::npos) == 0) return true;  // replace
        return i + 1 < n && a[i] == b[i + 1] && a[i + 1] == b[i] && a.compare(i + 2, std::string::npos, b, i + 2) == 0;
    }
    return n > m ? a.compare(i + 1, std::string::npos, b, i, std::string::npos) == 0   // delete from a
                 : b.compare(i + 1, std::string::npos, a, i, std::string::npos) == 0;  // insert into a
}

// A text word matches a product word when equal, equal up to a plural/possessive 's', or — for
// product words of 5+ letters and a text word that is not itself an English word (`real_words`:
// "charged" is not a misspelt "charger") — one edit away.
bool word_matches(const std::string& text_word, const std::string& lex_word, const std::set<std::string>& real_words) {
    if (text_word == lex_word) return true;
    auto stem = [](const std::string& w) {
        if (w.size() > 3 && w.back() == 's' && w[w.size() - 2] != 's') return w.substr(0, w.size() - 1);
        if (w.size() > 2 && w.compare(w.size() - 2, 2, "'s") == 0) return w.substr(0, w.size() - 2);
        return w;
    };
    if (stem(text_word) == stem(lex_word)) return true;
    return lex_word.size() >= 5 && text_word.size() >= 4 && !real_words.count(text_word) && within_one_edit(text_word, lex_word);
}

// The dictionary the typo rule consults at training time (Debian's wamerican).
const char* kDictionary = "/usr/share/dict/american-english";


struct Span {
    size_t begin, end;
    std::string tag;
};

}  // namespace

nlohmann::ordered_json DstState::to_json() const {
    auto v = [](const std::optional<std::string>& s) { return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr); };
    return {{"intent", intent}, {"order_id", v(order_id)}, {"product", v(product)}, {"new_address", v(new_address)},
            {"discount_code", v(discount_code)}};
}

DstState DstState::from_json(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("intent") || !j["intent"].is_string())
        fail("dst state: expected an object with a string \"intent\", found %s", j.dump().substr(0, 80).c_str());
    DstState s;
    s.intent = j["intent"].get<std::string>();
    auto slot = [&](const char* k, std::optional<std::string>& out) {
        if (!j.contains(k) || j[k].is_null()) return;
        if (!j[k].is_string()) fail("dst state: \"%s\" must be a string or null, found %s", k, j[k].dump().c_str());
        out = j[k].get<std::string>();
    };
    slot("order_id", s.order_id);
    slot("product", s.product);
    slot("new_address", s.new_address);
    slot("discount_code", s.discount_code);
    return s;
}

struct DialogueStateTracker::Impl {
    TextClassifier clf;
    std::vector<ProductName> products;
    std::vector<std::pair<std::vector<std::string>, size_t>> phrases;  // (words, product index)
    std::set<std::string> codes;                                     // the shop's codes, upper case
    std::set<std::string> real_words;  // English words one edit from a product word (never typos)

    // The slots a turn names, with the spans they cover (for masking).
    TurnSlots find(const std::string& t, std::vector<Span>* spans) const {
        TurnSlots s;
        const std::string id = normalize_order_id(t);
        if (!id.empty()) s.order_id = id;
        // Addresses: a house number, 1-3 words and a street type, optionally ", City".
        static const std::regex kAddr(
            R"(\b([0-9]{1,5})\s+((?:[A-Za-z]+\s+){1,3}?(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|way|court|ct|boulevard|blvd|place|pl|terrace|close|crescent)\b\.?)(?:\s*,\s*([A-Za-z]+(?:\s[A-Z][a-z]+)?))?)",
            std::regex::icase);
        std::smatch m;
        if (std::regex_search(t, m, kAddr)) {
            auto title = [](std::string w) {
                bool start = true;
                for (char& c : w) {
                    c = static_cast<char>(start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
                    start = c == ' ';
                }
                return w;
            };
            std::string a = m[1].str() + " " + title(m[2].str());
            if (m[3].matched) {  // a second word of the city only when written with a capital ("New York", not "please")
                std::string city = m[3].str();
                const size_t sp = city.find(' ');
                if (sp != std::string::npos && !std::isupper(static_cast<unsigned char>(city[sp + 1]))) city.resize(sp);
                a += ", " + title(city);
            }
            s.new_address = a;
            if (spans) spans->push_back({static_cast<size_t>(m.position(0)), static_cast<size_t>(m.position(0) + m.length(0)), "<address>"});
        }
        const std::vector<Word> ws = words(t);
        // Discount codes: one of the shop's, or letters then digits ("SAVE10").
        static const std::regex kCode(R"([A-Za-z]{3,}[0-9]{1,3})");
        for (const Word& w : ws) {
            std::string u = w.w;
            for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (codes.count(u) || std::regex_match(w.w, kCode)) {
                s.discount_code = u;
                if (spans) spans->push_back({w.begin, w.end, "<code>"});
                break;
            }
        }
        // Products: the earliest phrase that matches, the longest at that place, outside the
        // address and the code.
        auto taken = [&](const Word& w) {
            if (!spans) return false;
            for (const Span& sp : *spans)
                if (w.begin < sp.end && sp.begin < w.end) return true;
            return false;
        };
        size_t best_at = SIZE_MAX, best_len = 0, best_p = 0;
        for (const auto& [ph, pi] : phrases)
            for (size_t i = 0; i + ph.size() <= ws.size(); ++i) {
                if (i > best_at) break;
                bool ok = true;
                for (size_t k = 0; k < ph.size() && ok; ++k) ok = !taken(ws[i + k]) && word_matches(ws[i + k].w, ph[k], real_words);
                if (ok && (i < best_at || (i == best_at && ph.size() > best_len))) best_at = i, best_len = ph.size(), best_p = pi;
            }
        if (best_at != SIZE_MAX) {
            s.product = products[best_p].name;
            if (spans) spans->push_back({ws[best_at].begin, ws[best_at + best_len - 1].end, "<product>"});
        }
        return s;
    }

    // The classifier's input: the turn with its slot values (and order ids) replaced by tags.
    std::string masked(const std::string& turn) const {
        std::vector<Span> spans;
        find(turn, &spans);
        // Order ids masked too (normalize_order_id's forms).
        static const std::regex kId(R"((?:^|[^A-Za-z0-9])(#?\s?[A-Za-z]\s?-?\s?[0-9]{5}|[0-9]{5})(?![0-9]))");
        for (std::sregex_iterator it(turn.begin(), turn.end(), kId), end; it != end; ++it)
            spans.push_back({static_cast<size_t>(it->position(1)), static_cast<size_t>(it->position(1) + it->length(1)), "<id>"});
        std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
        std::string out;
        size_t at = 0;
        for (const Span& sp : spans) {
            if (sp.begin < at) continue;  // overlapping: the first wins
            out += turn.substr(at, sp.begin - at) + " " + sp.tag + " ";
            at = sp.end;
        }
        return out + turn.substr(std::min(at, turn.size()));
    }

    void set_products(std::vector<ProductName> ps) {
        products = std::move(ps);
        phrases.clear();
        for (size_t i = 0; i < products.size(); ++i) {
            std::vector<std::string> forms = products[i].aliases;
            forms.push_back(lower(products[i].name));
            for (const std::string& f : forms) {
                std::vector<std::string> ph;
                for (const Word& w : words(f)) ph.push_back(w.w);
                if (!ph.empty()) phrases.emplace_back(std::move(ph), i);
            }
        }
    }
};

DialogueStateTracker::DialogueStateTracker(const std::string& dir) : impl_(std::make_unique<Impl>()) {
    const std::string cfg_path = dir + "/dst.json", model_path = dir + "/intent.liblinear";
    std::ifstream in(cfg_path);
    if (!in) fail("dst: %s not found (hint: -m DIR names a folder made by `llmforge dst-train`, e.g. models/dst)", cfg_path.c_str());
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kFormat || !j.contains("labels") ||
        !j["labels"].is_array() || !j.contains("products") || !j["products"].is_array())
        fail("dst: %s is not a DST model of format %d (hint: rebuild it with make dst-model)", cfg_path.c_str(), kFormat);
    std::vector<std::string> labels;
    for (const auto& l : j["labels"]) labels.push_back(l.get<std::string>());
    const int hash_bits = j.value("hash_bits", kHashBits);
    if (hash_bits < 8 || hash_bits > 24) fail("dst: %s: hash_bits %d, expected 8..24", cfg_path.c_str(), hash_bits);
    std::vector<ProductName> ps;
    for (const auto& p : j["products"]) ps.push_back({p.at("name").get<std::string>(), p.at("aliases").get<std::vector<std::string>>()});
    impl_->set_products(std::move(ps));
    for (const auto& c : j.value("codes", nlohmann::json::array())) impl_->codes.insert(c.get<std::string>());
    for (const auto& w : j.value("real_words", nlohmann::json::array())) impl_->real_words.insert(w.get<std::string>());
    impl_->clf = TextClassifier::load(model_path, std::move(labels), hash_bits);
}

DialogueStateTracker::~DialogueStateTracker() = default;

std::string DialogueStateTracker::classify(const std::string& turn) const {
    const int k = impl_->clf.predict(impl_->masked(turn));
    const auto& labels = impl_->clf.labels();
    return k >= 0 && k < static_cast<int>(labels.size()) ? labels[k] : "other";
}

TurnSlots DialogueStateTracker::slots(const std::string& turn) const {
    std::vector<Span> spans;
    return impl_->find(turn, &spans);
}

DstState DialogueStateTracker::update(const DstState& prev, const std::string& turn) const {
    const std::string label = classify(turn);
    const TurnSlots s = slots(turn);
    DstState next = prev;
    if (label != "inform" && label != "thanks") {
        next = DstState{};
        next.intent = label;
        if (kOrderIntents.count(label) && kOrderIntents.count(prev.intent)) {
            next.order_id = prev.order_id;
            next.product = prev.product;
        }
        if (label == prev.intent) next = prev;  // the same subject goes on
    } else if (label == "thanks") {
        next.intent = "thanks";
    }
    if (s.order_id) next.order_id = s.order_id;
    if (s.product) next.product = s.product;
    if (s.new_address) next.new_address = s.new_address;
    if (s.discount_code) next.discount_code = s.discount_code;
    return next;
}

std::vector<DstState> DialogueStateTracker::track(const std::vector<std::string>& turns) const {
    std::vector<DstState> out;
    DstState s;
    bool first = true;
    for (const std::string& t : turns) {
        s = update(first ? DstState{} : s, t);
        first = false;
        out.push_back(s);
    }
    return out;
}

double train_dst(const std::string& dir, uint64_t seed, int64_t per_label, double C) {
    std::vector<std::string> labels = kDstIntents;
    labels.push_back("inform");
    DialogueStateTracker::Impl im;
    std::vector<ProductName> ps;
    for (const auto& p : train::shop_catalogue()) ps.push_back({p.name, product_aliases(p.name)});
    im.set_products(ps);
    for (const auto& c : train::shop_discount_codes()) im.codes.insert(c);
    // English words one edit from a product word: kept whole, never read as that product misspelt.
    {
        std::ifstream dict(kDictionary);
        if (!dict) fail("dst-train: %s not found (hint: apt-get install wamerican; scripts/setup.sh installs it)", kDictionary);
        std::set<std::string> lex;
        for (const auto& [ph, pi] : im.phrases)
            for (const auto& w : ph)
                if (w.size() >= 5) lex.insert(w);
        for (std::string w; std::getline(dict, w);) {
            if (w.size() < 4 || !std::all_of(w.begin(), w.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
                continue;
            w = lower(w);
            for (const auto& l : lex)
                if (w != l && word_matches(w, l, {}) && !word_matches(w, l, {w})) {
                    im.real_words.insert(w);
                    break;
                }
        }
    }
    const auto data = dst_training_utterances(seed, per_label);
    const size_t n_train = data.size() - data.size() / 10;
    double acc = 0;
    im.clf = TextClassifier::train_with_held_out(data, labels, seed ^ 0xabcdef, kHashBits, C,
                                                 [&im](const std::string& t) { return im.masked(t); }, &acc);
    mkdir(dir.c_str(), 0755);
    im.clf.save(dir + "/intent.liblinear");
    nlohmann::ordered_json j;
    j["format"] = kFormat;
    j["labels"] = labels;
    j["hash_bits"] = kHashBits;
    j["trained"] = {{"seed", seed}, {"per_label", per_label}, {"C", C}, {"utterances", n_train},
                    {"held_out_accuracy", acc}};
    nlohmann::ordered_json prods = nlohmann::ordered_json::array();
    for (const auto& p : ps) prods.push_back({{"name", p.name}, {"aliases", p.aliases}});
    j["products"] = prods;
    j["codes"] = train::shop_discount_codes();
    j["real_words"] = im.real_words;
    write_file_atomic(dir + "/dst.json", j.dump(1) + "\n");
    return acc;
}

nlohmann::ordered_json DstScore::to_json() const {
    auto r = [this](int64_t k) { return turns ? static_cast<double>(k) / turns : 0.0; };
    return {{"turns", turns},           {"joint_goal_accuracy", r(joint)}, {"intent", r(intent)},
            {"order_id", r(order_id)},  {"product", r(product)},          {"new_address", r(new_address)},
            {"discount_code", r(discount_code)}};
}

DstScore score_dst(const std::vector<std::vector<DstState>>& predicted, const std::vector<std::vector<DstState>>& gold) {
    DstScore s;
    for (size_t d = 0; d < gold.size() && d < predicted.size(); ++d)
        for (size_t t = 0; t < gold[d].size() && t < predicted[d].size(); ++t) {
            const DstState &p = predicted[d][t], &g = gold[d][t];
            ++s.turns;
            s.joint += p == g;
            s.intent += p.intent == g.intent;
            s.order_id += p.order_id == g.order_id;
            s.product += p.product == g.product;
            s.new_address += p.new_address == g.new_address;
            s.discount_code += p.discount_code == g.discount_code;
        }
    return s;
}

}  // namespace llmforge::apps
