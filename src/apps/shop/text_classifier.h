// A linear text classifier: multinomial logistic regression (Debian's liblinear) over hashed
// features of a short text — word unigrams and bigrams, character 3/4-grams of each word (a
// misspelt word keeps most of its n-grams), "<tag>" placeholders kept whole — L2-normalised.
// Small, fast (microseconds a message) and trained in seconds on generated data: the shop's
// dialogue-state intents (dst.h) and its safety categories (safety.h).
//
// Thread safety: a trained or loaded classifier is immutable; predict may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct model;
struct feature_node;

namespace llmforge::apps {

class TextClassifier {
public:
    TextClassifier() = default;
    TextClassifier(TextClassifier&&) noexcept = default;
    TextClassifier& operator=(TextClassifier&&) noexcept = default;
    ~TextClassifier();

    // Trains on (text, label index) pairs; labels.size() classes (each should occur).
    static TextClassifier train(const std::vector<std::pair<std::string, int>>& samples, std::vector<std::string> labels,
                                int hash_bits, double C);
    // The generators' recipe: (text, label name) pairs shuffled with shuffle_seed, a tenth held
    // out, the rest trained on after `prep` (e.g. masking slot values); *held_out_accuracy gets
    // the held-out tenth's accuracy.
    static TextClassifier train_with_held_out(std::vector<std::pair<std::string, std::string>> data,
                                              std::vector<std::string> labels, uint64_t shuffle_seed, int hash_bits, double C,
                                              const std::function<std::string(const std::string&)>& prep,
                                              double* held_out_accuracy);
    // liblinear's text model format; labels and hash_bits are the caller's to keep (a JSON beside it).
    void save(const std::string& path) const;
    static TextClassifier load(const std::string& path, std::vector<std::string> labels, int hash_bits);

    // The most probable label's index; probs (when given) gets every label's probability.
    int predict(const std::string& text, std::vector<double>* probs = nullptr) const;
    const std::vector<std::string>& labels() const { return labels_; }
    int hash_bits() const { return hash_bits_; }

private:
    struct Free {
        void operator()(model* m) const;
    };
    std::unique_ptr<model, Free> m_;
    std::vector<std::string> labels_;
    int hash_bits_ = 16;
};

// The hashed features of a text (0-based bucket ids in [0, 2^hash_bits), sorted, distinct): the
// classifier's input, also the retriever's (retriever.h). Each has the value 1/sqrt(count).
std::vector<uint32_t> hashed_feature_ids(const std::string& text, int hash_bits);

// The words of a text as the features see them: letters, digits and apostrophes, lower case;
// "<tag>" placeholders whole; '?' kept.
std::vector<std::string> feature_tokens(const std::string& text);

}  // namespace llmforge::apps
