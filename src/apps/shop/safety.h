// The shop assistant's safety filter, on customers' messages and on the model's replies: a rule
// engine (regular expressions, word lists and card numbers from a data file that can be reloaded
// while running) plus a classifier trained here (text_classifier.h: logistic regression over
// hashed n-grams, on violations from a template generator and ordinary shop messages from the
// corpus and the DST generator). A rule hit blocks; otherwise the classifier blocks when some
// violation category is more probable than `threshold` (default from the model's safety.json).
//
// Categories: abuse, personal_data (other customers' data), payment_secrets (card numbers,
// passwords), fraud (refund scams), prompt_injection, self_harm, violence, sexual, illegal_goods.
//
// Thread safety: check() may run concurrently with other checks; reload_rules() swaps the rules
// atomically (a check sees the old or the new set, never a mix).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/shop/text_classifier.h"

namespace llmforge::apps {

extern const std::vector<std::string> kSafetyCategories;  // the 9 above

struct SafetyVerdict {
    bool blocked = false;
    std::optional<std::string> category;
    std::string by;     // "rule", "classifier" or "" (not blocked)
    double score = 0;   // the classifier's probability of the category (rules: 1)
    nlohmann::ordered_json to_json() const;  // {"blocked": …, "category": …}
};

class SafetyFilter {
public:
    // dir/rules.json, dir/safety.json and dir/classifier.liblinear; throws Error.
    explicit SafetyFilter(const std::string& dir);
    ~SafetyFilter();
    SafetyVerdict check(const std::string& text) const;
    // Re-reads dir/rules.json; on error keeps the rules in force and throws.
    void reload_rules();
    double threshold = 0.5;

private:
    struct Rules;
    std::string dir_;
    mutable std::mutex mu_;
    std::shared_ptr<const Rules> rules_;
    TextClassifier clf_;
};

// True for 13-19 digits (spaces and dashes between them allowed) that pass the Luhn check.
bool contains_card_number(const std::string& text);

// (text, category or "safe") pairs from the generator, deterministic in seed.
std::vector<std::pair<std::string, std::string>> safety_training_messages(uint64_t seed, int64_t per_category);
// Trains the classifier into dir (safety.json + classifier.liblinear; rules.json is data, kept);
// returns held-out accuracy on generated messages.
double train_safety(const std::string& dir, uint64_t seed, int64_t per_category, double C);

struct SafetyScore {
    int64_t violations = 0, blocked = 0, right_category = 0, ordinary = 0, false_positives = 0;
    nlohmann::ordered_json to_json() const;
};

}  // namespace llmforge::apps
