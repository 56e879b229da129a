// The shop's customer-service chat system, between a customer and the language model: sessions
// kept in the shop database, dialogue-state tracking, lookups in the database, knowledge passages
// and memory, and the context the model answers from. `llmforge chat --app shop` and
// `llmforge serve --app shop` run it; the model is theirs (the assistant never generates).
//
// One turn: plan() reads the session's history from SQLite, tracks the state after the new user
// turn (dst.h, carried over from the last persisted state), and looks up what the state names —
// the order (only among the session's customer's orders: any other id, found or not, gets the same
// fixed answer without the model, so a customer can neither read nor probe another's orders), or
// else the product, and for policy questions the knowledge passages the retriever finds, within a
// token budget, and the tracked intent. These become the tool-result turn the default model is
// trained to answer from (train/dialogue_corpus.h's order_fact_line &c.). The model's messages are
// the system prompt, the short-term window (the last `window` user and assistant messages, with
// their tool turns; empty when the turn starts a new question — another intent or another order;
// the state still carries the order over — since the model was trained on one question per
// conversation), the new user turn and its tool turn. Long-term memory: the session's earlier user turns (outside the
// window) are embedded by the retriever's passage encoder and searched with the new turn; the
// ones found are shown with the turn (plan().info()), and when an order question names no order,
// the order id of the best-matching earlier turn is used ("it" after a long detour). commit()
// appends the user turn (with its state), the tool turn and the reply in one transaction.
//
// Thread safety: one mutex guards the database connection; plan() and commit() may be called from
// any thread. Sessions of different customers never share anything but the models.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/shop/dst.h"
#include "apps/shop/shop_db.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

class DualEncoder;
class PassageIndex;

struct AssistantOptions {
    std::string db_path;
    std::string dst_dir = "models/dst";
    std::string retriever_dir;  // "": no passages and no long-term memory
    int window = 5;             // earlier user and assistant messages kept verbatim
    size_t passages_top = 2;    // knowledge passages considered per policy question
    double passage_min_score = 0.25;
    // A passage after the first is kept only when it scores at least this share of the first's: a
    // clearly weaker second passage is more often a near miss (international shipping for a
    // question about shipping prices) than a second answer.
    double passage_relative_min = 0.85;
    size_t passage_budget_tokens = 160;  // the passages' share of the context
    size_t memory_top = 2;
    double memory_min_score = 0.35;
    size_t context_budget_tokens = 384;  // the whole prompt; older window messages are dropped to fit
    // Tokens of a text (the model's tokenizer); default: bytes / 4.
    std::function<size_t(const std::string&)> count_tokens;
    std::string system_prompt =
        "You are the customer-service assistant of Northwind Goods, an online shop. Answer politely and briefly.";
};

struct Recalled {
    std::string id, text;  // passage id ("policy:shipping") or "turn:N" (index in the session)
    double score = 0;
};

// What one user turn leads to, before the model answers.
struct TurnPlan {
    std::string session_id, customer_id, user_text;
    DstState state;                          // after this turn
    std::string tool;                        // the tool turn ("": none)
    std::optional<std::string> fixed_reply;  // answered without the model (another customer's order)
    std::optional<std::string> recalled_order;  // order id taken from long-term memory
    std::vector<Recalled> passages, memories;
    nlohmann::ordered_json messages;  // the model's chat: system, window, user, tool
    // The values of the reply's slot references (train::lexicalize): the looked-up order's or
    // product's facts, the code and address the state holds.
    train::SlotValues slots;
    // {"session_id", "state", "tool", "passages": [{id, title, score}], "memories": [...], ...}
    nlohmann::ordered_json info() const;
};

// Per-turn limits that override the options' (the server's: its model's tokenizer, and its
// context minus the reply's tokens).
struct PlanLimits {
    std::function<size_t(const std::string&)> count_tokens;
    size_t context_budget_tokens = 0;
};

class ShopAssistant {
public:
    explicit ShopAssistant(AssistantOptions o);  // throws Error (database, DST or retriever folder)
    ~ShopAssistant();

    // A new session for an existing customer; throws Error (kNotFound) for an unknown one.
    std::string create_session(const std::string& customer_id);
    // A customer's sessions, oldest first; throws Error (kNotFound) for an unknown customer.
    std::vector<SessionRecord> sessions(const std::string& customer_id) const;
    // {"id", "customer_id", "created", "turns": [{"role", "content", "state"?, "app"?}]} (user
    // turns: the state after them and the turn's info(), as the chat response gave it); throws
    // Error (kNotFound) for an unknown session.
    nlohmann::ordered_json session_json(const std::string& id) const;

    // Throws Error (kNotFound) for an unknown session, (kBadInput) for an empty turn.
    TurnPlan plan(const std::string& session_id, const std::string& user_text, const PlanLimits* limits = nullptr) const;
    // Persists the turn and the reply: `shown` as the customer read it, `generated` as the model
    // wrote it (its slot references; the window gives the model its own words back). An answer
    // given without the model: both the same.
    void commit(const TurnPlan& p, const std::string& shown, const std::string& generated);

    const AssistantOptions& options() const { return o_; }

private:
    size_t tokens(const std::string& s, const PlanLimits* limits) const;

    AssistantOptions o_;
    mutable std::mutex mu_;  // db_
    std::unique_ptr<ShopDb> db_;
    std::unique_ptr<DialogueStateTracker> dst_;
    std::unique_ptr<DualEncoder> enc_;
    std::unique_ptr<PassageIndex> kb_;
};

// The answer to a question about an order that is not the session's customer's (or does not
// exist): the same words either way.
std::string order_not_found_reply(const std::string& order_id);

}  // namespace llmforge::apps
