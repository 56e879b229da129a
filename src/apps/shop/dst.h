// Dialogue-state tracking for the shop assistant: after each user turn, the state
//   {"intent": …, "order_id": …, "product": …, "new_address": …, "discount_code": …}
// with intent one of kDstIntents and absent slots null.
//
// How: a mix of a trained classifier and rules, each where it is strongest.
// - The intent of a turn is a multinomial logistic regression (liblinear) over hashed word
//   uni/bigrams and character 3/4-grams (spelling mistakes still share most of them) of the turn
//   with its slot values masked (<id>, <product>, <code>, <address>), trained here on utterances
//   from a paraphrase generator (dst_training_utterances) into a 14th class, "inform": a turn
//   that only gives a value ("it's C48213") keeps the previous intent.
// - Slots are read by rules: order ids (normalize_order_id: "#c-48213" -> "C48213"), products
//   against the shop's names and search words with one typo allowed in words of 5+ letters,
//   street addresses, discount codes (the shop's codes, or letters then digits).
// - Carry-over: a turn with a new intent starts a new subject — slots it does not name are reset,
//   except that moving between order intents (order_status, return, refund, cancel,
//   change_address) keeps the order and its product, and "thanks" changes nothing else. A turn
//   without an intent updates only the slots it names.
// Delivery problems (late, missing, damaged parcels) count as order_status.
//
// Thread safety: a loaded tracker is immutable; update() may be called concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmforge::apps {

extern const std::vector<std::string> kDstIntents;  // order_status … other (13)

struct DstState {
    std::string intent = "other";
    std::optional<std::string> order_id, product, new_address, discount_code;
    nlohmann::ordered_json to_json() const;
    static DstState from_json(const nlohmann::json& j);  // throws Error on a malformed state
    bool operator==(const DstState& o) const = default;
};

// The slots one turn names (rules only).
struct TurnSlots {
    std::optional<std::string> order_id, product, new_address, discount_code;
};

struct ProductName {
    std::string name;                  // the catalogue's
    std::vector<std::string> aliases;  // what customers call it (lower case)
};

class DialogueStateTracker {
public:
    // Loads dir/dst.json (labels, hashing, products, codes) and dir/intent.liblinear; throws Error.
    explicit DialogueStateTracker(const std::string& dir);
    ~DialogueStateTracker();

    DstState update(const DstState& prev, const std::string& user_turn) const;
    std::vector<DstState> track(const std::vector<std::string>& user_turns) const;
    // The classifier's label for one turn: an intent or "inform".
    std::string classify(const std::string& user_turn) const;
    TurnSlots slots(const std::string& user_turn) const;

private:
    friend double train_dst(const std::string& dir, uint64_t seed, int64_t per_label, double C);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Training data: (utterance, label) pairs from the paraphrase generator, deterministic in seed.
std::vector<std::pair<std::string, std::string>> dst_training_utterances(uint64_t seed, int64_t per_label);

// Trains the intent classifier and writes dir/dst.json + dir/intent.liblinear. Returns the
// accuracy on a held-out tenth of the generated utterances.
double train_dst(const std::string& dir, uint64_t seed, int64_t per_label, double C);

// Joint goal accuracy and per-slot accuracy of predicted against gold states (turn by turn).
struct DstScore {
    int64_t turns = 0, joint = 0;
    int64_t intent = 0, order_id = 0, product = 0, new_address = 0, discount_code = 0;
    nlohmann::ordered_json to_json() const;
};
DstScore score_dst(const std::vector<std::vector<DstState>>& predicted, const std::vector<std::vector<DstState>>& gold);

}  // namespace llmforge::apps
