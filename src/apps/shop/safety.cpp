#include "apps/shop/safety.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/random.h"
#include "io/atomic_file.h"

namespace llmforge::apps {

const std::vector<std::string> kSafetyCategories = {"abuse",    "personal_data", "payment_secrets",
                                                    "fraud",    "prompt_injection", "self_harm",
                                                    "violence", "sexual",        "illegal_goods"};

namespace {

constexpr int kFormat = 1;
constexpr int kHashBits = 16;

std::string escape_regex(const std::string& w) {
    std::string out;
    for (char c : w) {
        if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

struct SafetyFilter::Rules {
    struct Category {
        std::string name;
        std::vector<std::regex> patterns;
        bool card_numbers = false;
    };
    std::vector<Category> categories;

    static std::shared_ptr<const Rules> read(const std::string& path) {
        std::ifstream in(path);
        if (!in) fail("safety: %s not found (hint: -m DIR names a folder with rules.json, e.g. models/safety)", path.c_str());
        const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
        if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kFormat || !j.contains("categories") ||
            !j["categories"].is_object())
            fail("safety: %s is not a rules file of format %d (expected {\"format\": 1, \"categories\": {…}})", path.c_str(), kFormat);
        auto r = std::make_shared<Rules>();
        for (const auto& [name, c] : j["categories"].items()) {
            if (std::find(kSafetyCategories.begin(), kSafetyCategories.end(), name) == kSafetyCategories.end())
                fail("safety: %s: unknown category '%s' (expected one of abuse, personal_data, payment_secrets, fraud, "
                     "prompt_injection, self_harm, violence, sexual, illegal_goods)",
                     path.c_str(), name.c_str());
            Category cat;
            cat.name = name;
            cat.card_numbers = c.value("card_numbers", false);
            for (const auto& p : c.value("patterns", nlohmann::json::array())) {
                try {
                    cat.patterns.emplace_back(p.get<std::string>(), std::regex::icase | std::regex::ECMAScript);
                } catch (const std::exception& e) {
                    fail("safety: %s: category %s: bad pattern '%s' (%s)", path.c_str(), name.c_str(),
                         p.get<std::string>().c_str(), e.what());
                }
            }
            std::string words;
            for (const auto& w : c.value("words", nlohmann::json::array()))
                words += (words.empty() ? "" : "|") + escape_regex(w.get<std::string>());
            if (!words.empty())  // whole words: no letter or digit on either side
                cat.patterns.emplace_back("(^|[^A-Za-z0-9])(" + words + ")($|[^A-Za-z0-9])", std::regex::icase | std::regex::ECMAScript);
            r->categories.push_back(std::move(cat));
        }
        return r;
    }
};

nlohmann::ordered_json SafetyVerdict::to_json() const {
    return {{"blocked", blocked}, {"category", category ? nlohmann::ordered_json(*category) : nlohmann::ordered_json(nullptr)}};
}

bool contains_card_number(const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i) {
        if (!std::isdigit(static_cast<unsigned char>(s[i])) || (i > 0 && std::isdigit(static_cast<unsigned char>(s[i - 1])))) continue;
        std::string digits;
        size_t j = i;
        while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || ((s[j] == ' ' || s[j] == '-') && j + 1 < s.size() &&
                                                                                 std::isdigit(static_cast<unsigned char>(s[j + 1]))))) {
            if (std::isdigit(static_cast<unsigned char>(s[j]))) digits += s[j];
            ++j;
        }
        if (digits.size() >= 13 && digits.size() <= 19) {  // the whole run: a window of a longer number is not a card
            int sum = 0;
            for (size_t k = 0; k < digits.size(); ++k) {
                int v = digits[digits.size() - 1 - k] - '0';
                if (k % 2 == 1) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
                sum += v;
            }
            if (sum % 10 == 0) return true;
        }
        i = j;
    }
    return false;
}

SafetyFilter::SafetyFilter(const std::string& dir) : dir_(dir) {
    rules_ = Rules::read(dir + "/rules.json");
    const std::string cfg = dir + "/safety.json";
    std::ifstream in(cfg);
    if (!in) fail("safety: %s not found (hint: make safety-model)", cfg.c_str());
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kFormat || !j.contains("labels") || !j["labels"].is_array())
        fail("safety: %s is not a safety model of format %d (hint: make safety-model)", cfg.c_str(), kFormat);
    threshold = j.value("threshold", 0.5);
    clf_ = TextClassifier::load(dir + "/classifier.liblinear", j["labels"].get<std::vector<std::string>>(), j.value("hash_bits", kHashBits));
}

SafetyFilter::~SafetyFilter() = default;

void SafetyFilter::reload_rules() {
    auto fresh = Rules::read(dir_ + "/rules.json");  // throws before anything changes
    std::lock_guard<std::mutex> lk(mu_);
    rules_ = std::move(fresh);
}

SafetyVerdict SafetyFilter::check(const std::string& text) const {
    std::shared_ptr<const Rules> rules;
    {
        std::lock_guard<std::mutex> lk(mu_);
        rules = rules_;
    }
    SafetyVerdict v;
    for (const auto& c : rules->categories) {
        bool hit = c.card_numbers && contains_card_number(text);
        for (const auto& p : c.patterns)
            if (!hit && std::regex_search(text, p)) hit = true;
        if (hit) {
            v.blocked = true, v.category = c.name, v.by = "rule", v.score = 1;
            return v;
        }
    }
    std::vector<double> probs;
    clf_.predict(text, &probs);
    const auto& labels = clf_.labels();
    size_t best = labels.size();
    for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] != "safe" && (best == labels.size() || probs[i] > probs[best])) best = i;
    if (best < labels.size() && probs[best] >= threshold) v.blocked = true, v.category = labels[best], v.by = "classifier";
    if (best < labels.size()) v.score = probs[best];
    return v;
}

double train_safety(const std::string& dir, uint64_t seed, int64_t per_category, double C) {
    std::vector<std::string> labels = kSafetyCategories;
    labels.push_back("safe");
    auto data = safety_training_messages(seed, per_category);
    const size_t n_train = data.size() - data.size() / 10;  // train_with_held_out holds out a tenth
    double acc = 0;
    const TextClassifier clf = TextClassifier::train_with_held_out(
        std::move(data), labels, seed ^ 0x5afe, kHashBits, C, [](const std::string& t) { return t; }, &acc);
    mkdir(dir.c_str(), 0755);
    clf.save(dir + "/classifier.liblinear");
    nlohmann::ordered_json j = {{"format", kFormat},
                                {"labels", labels},
                                {"hash_bits", kHashBits},
                                {"threshold", 0.5},
                                {"trained", {{"seed", seed}, {"per_category", per_category}, {"C", C}, {"messages", n_train},
                                             {"held_out_accuracy", acc}}}};
    write_file_atomic(dir + "/safety.json", j.dump(1) + "\n");
    return acc;
}

nlohmann::ordered_json SafetyScore::to_json() const {
    return {{"violations", violations},
            {"blocked", blocked},
            {"block_rate", violations ? static_cast<double>(blocked) / violations : 0.0},
            {"category_right", violations ? static_cast<double>(right_category) / violations : 0.0},
            {"ordinary", ordinary},
            {"false_positives", false_positives},
            {"false_positive_rate", ordinary ? static_cast<double>(false_positives) / ordinary : 0.0}};
}

}  // namespace llmforge::apps
