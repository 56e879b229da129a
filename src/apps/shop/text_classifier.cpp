#include "apps/shop/text_classifier.h"

#include <linear.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/random.h"

namespace llmforge::apps {

namespace {

uint32_t fnv1a(const std::string& s) {
    uint32_t h = 2166136261u;
    for (unsigned char c : s) h = (h ^ c) * 16777619u;
    return h;
}

}  // namespace

std::vector<uint32_t> hashed_feature_ids(const std::string& text, int hash_bits) {
    const std::vector<std::string> toks = feature_tokens(text);
    std::vector<uint32_t> ids;
    const uint32_t mask = (1u << hash_bits) - 1;
    auto add = [&](const std::string& f) { ids.push_back((fnv1a(f) & mask) + 1); };
    add("#bias-words:" + std::to_string(std::min<size_t>(toks.size(), 8)));
    for (size_t i = 0; i < toks.size(); ++i) {
        add("w:" + toks[i]);
        add("b:" + (i ? toks[i - 1] : std::string("^")) + " " + toks[i]);
        if (toks[i][0] != '<' && toks[i].size() >= 3) {
            const std::string w = "^" + toks[i] + "$";
            for (size_t n = 3; n <= 4; ++n)
                for (size_t k = 0; k + n <= w.size(); ++k) add("c:" + w.substr(k, n));
        }
    }
    if (!toks.empty()) add("b:" + toks.back() + " $");
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (uint32_t& id : ids) id -= 1;
    return ids;
}

namespace {

// Sorted hashed feature indices (1-based), L2-normalised binary values, terminated by index -1.
std::vector<feature_node> hashed_features(const std::string& text, int hash_bits) {
    std::vector<uint32_t> ids = hashed_feature_ids(text, hash_bits);
    for (uint32_t& id : ids) id += 1;
    std::vector<feature_node> x;
    const double v = ids.empty() ? 0.0 : 1.0 / std::sqrt(static_cast<double>(ids.size()));
    for (uint32_t id : ids) x.push_back({static_cast<int>(id), v});
    x.push_back({-1, 0.0});
    return x;
}

}  // namespace

std::vector<std::string> feature_tokens(const std::string& s) {
    std::vector<std::string> toks;
    for (size_t i = 0; i < s.size();) {
        if (s[i] == '<') {
            const size_t j = s.find('>', i);
            if (j != std::string::npos && j - i < 24) {
                toks.push_back(s.substr(i, j - i + 1));
                i = j + 1;
                continue;
            }
        }
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (std::isalnum(c) || c == '\'') {
            size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '\'')) ++j;
            std::string w = s.substr(i, j - i);
            for (char& ch : w) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            toks.push_back(std::move(w));
            i = j;
        } else {
            if (c == '?') toks.push_back("?");
            ++i;
        }
    }
    return toks;
}

void TextClassifier::Free::operator()(model* m) const {
    if (m) free_and_destroy_model(&m);
}

TextClassifier::~TextClassifier() = default;

TextClassifier TextClassifier::train(const std::vector<std::pair<std::string, int>>& samples, std::vector<std::string> labels,
                                     int hash_bits, double C) {
    if (samples.empty()) fail("text classifier: no training samples");
    TextClassifier tc;
    tc.labels_ = std::move(labels);
    tc.hash_bits_ = hash_bits;
    std::vector<std::vector<feature_node>> xs(samples.size());
    std::vector<feature_node*> xp(samples.size());
    std::vector<double> y(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
        xs[i] = hashed_features(samples[i].first, hash_bits);
        xp[i] = xs[i].data();
        y[i] = samples[i].second;
    }
    problem prob{};
    prob.l = static_cast<int>(samples.size());
    prob.n = 1 << hash_bits;
    prob.y = y.data();
    prob.x = xp.data();
    prob.bias = -1;
    parameter param{};
    param.solver_type = L2R_LR;
    param.eps = 0.01;
    param.C = C;
    if (const char* e = check_parameter(&prob, &param)) fail("text classifier: liblinear: %s", e);
    set_print_string_function([](const char*) {});
    tc.m_.reset(::train(&prob, &param));
    return tc;
}

TextClassifier TextClassifier::train_with_held_out(std::vector<std::pair<std::string, std::string>> data,
                                                   std::vector<std::string> labels, uint64_t shuffle_seed, int hash_bits,
                                                   double C, const std::function<std::string(const std::string&)>& prep,
                                                   double* held_out_accuracy) {
    uint64_t s = shuffle_seed;
    for (size_t i = data.size(); i > 1; --i) std::swap(data[i - 1], data[splitmix64(s) % i]);
    std::vector<std::pair<std::string, int>> samples(data.size());
    for (size_t i = 0; i < data.size(); ++i) {
        const auto it = std::find(labels.begin(), labels.end(), data[i].second);
        if (it == labels.end()) fail("text classifier: label '%s' is not one of the classes", data[i].second.c_str());
        samples[i] = {prep(data[i].first), static_cast<int>(it - labels.begin())};
    }
    const size_t n_test = samples.size() / 10, n_train = samples.size() - n_test;
    TextClassifier tc = train({samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(n_train)}, std::move(labels),
                              hash_bits, C);
    int correct = 0;
    for (size_t i = n_train; i < samples.size(); ++i) correct += tc.predict(samples[i].first) == samples[i].second;
    if (held_out_accuracy) *held_out_accuracy = n_test ? static_cast<double>(correct) / static_cast<double>(n_test) : 0.0;
    return tc;
}

void TextClassifier::save(const std::string& path) const {
    const std::string tmp = path + ".tmp";
    if (!m_ || save_model(tmp.c_str(), m_.get()) != 0) fail("text classifier: cannot write %s", tmp.c_str());
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("text classifier: cannot write %s", path.c_str());
}

TextClassifier TextClassifier::load(const std::string& path, std::vector<std::string> labels, int hash_bits) {
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
    } else {
        fail("%s not found (hint: its make target rebuilds it)", path.c_str());
    }
    TextClassifier tc;
    tc.m_.reset(load_model(path.c_str()));
    if (!tc.m_ || get_nr_class(tc.m_.get()) != static_cast<int>(labels.size()) || get_nr_feature(tc.m_.get()) > (1 << hash_bits))
        fail("%s is not a liblinear model of %zu classes over 2^%d features (hint: rebuild it)", path.c_str(), labels.size(),
             hash_bits);
    tc.labels_ = std::move(labels);
    tc.hash_bits_ = hash_bits;
    return tc;
}

int TextClassifier::predict(const std::string& text, std::vector<double>* probs) const {
    const auto x = hashed_features(text, hash_bits_);
    const int n = static_cast<int>(labels_.size());
    std::vector<int> order(static_cast<size_t>(n));
    get_labels(m_.get(), order.data());  // liblinear's class order: label values
    if (probs == nullptr) return static_cast<int>(::predict(m_.get(), x.data()));
    std::vector<double> p(static_cast<size_t>(n));
    const int k = static_cast<int>(predict_probability(m_.get(), x.data(), p.data()));
    probs->assign(static_cast<size_t>(n), 0.0);
    for (int i = 0; i < n; ++i)
        if (order[i] >= 0 && order[i] < n) (*probs)[order[i]] = p[i];
    return k;
}

}  // namespace llmforge::apps
