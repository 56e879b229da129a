#include "apps/shop/assistant.h"

#include <algorithm>
#include <cstdio>

#include "apps/shop/retriever.h"
#include "core/error.h"
#include "train/dialogue_corpus.h"

namespace llmforge::apps {

namespace {

train::ShopDate shop_date(const std::string& iso) { return shop_date_of_iso(iso).value_or(train::ShopDate{1, 1}); }

train::OrderFacts order_facts(const OrderRecord& r) {
    train::OrderFacts f;
    f.id = r.id;
    f.shipped = r.status == "shipped";
    for (size_t i = 0; i < r.items.size(); ++i) {
        const OrderItem& it = r.items[i];
        f.product += (i ? " and " : "") + it.product;
        if (i == 0) f.size = it.size, f.colour = it.colour;
        f.qty = i == 0 ? static_cast<int>(it.qty) : f.qty + static_cast<int>(it.qty);
    }
    f.payment = r.payment;
    f.carrier = r.carrier;
    f.tracking = r.tracking;
    f.total_cents = static_cast<int>(r.total_cents);
    f.ordered = shop_date(r.ordered);
    f.ship_date = shop_date(r.shipped);
    f.eta = shop_date(r.eta);
    return f;
}

train::ProductFacts product_facts(const ProductRecord& p) {
    return train::ProductFacts{p.name, p.material, static_cast<int>(p.price_cents), p.sizes, p.colours, p.washable};
}

bool order_intent(const std::string& intent) {
    return intent == "order_status" || intent == "return" || intent == "refund" || intent == "cancel" ||
           intent == "change_address";
}

// Whether `next` goes on with the exchange of `prev`: the same question about the same order
// (giving the order number, the new address, the size of an exchange), or thanks and greetings
// around it. Anything else starts the model's window afresh — every training dialogue is one
// question — while the state still carries the order over (the tool turn names it again).
bool same_subject(const DstState& prev, const DstState& next) {
    if (next.intent == "thanks" || next.intent == "greeting" || prev.intent == "greeting") return true;
    return next.intent == prev.intent && (!prev.order_id || next.order_id == prev.order_id);
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
}

}  // namespace

std::string order_not_found_reply(const std::string& order_id) {
    return "I couldn't find order #" + order_id +
           " on your account. Please check the number in your order confirmation email; I can only look up orders "
           "placed with the account you are signed in with.";
}

nlohmann::ordered_json TurnPlan::info() const {
    auto hits = [](const std::vector<Recalled>& v) {
        nlohmann::ordered_json a = nlohmann::ordered_json::array();
        for (const auto& h : v) a.push_back({{"id", h.id}, {"text", h.text}, {"score", h.score}});
        return a;
    };
    nlohmann::ordered_json j = {{"session_id", session_id}, {"customer_id", customer_id}, {"state", state.to_json()},
                                {"tool", tool},             {"passages", hits(passages)}, {"memories", hits(memories)}};
    if (recalled_order) j["recalled_order"] = *recalled_order;
    if (fixed_reply) j["answered_by"] = "lookup";
    return j;
}

ShopAssistant::ShopAssistant(AssistantOptions o) : o_(std::move(o)) {
    db_ = std::make_unique<ShopDb>(o_.db_path);
    dst_ = std::make_unique<DialogueStateTracker>(o_.dst_dir);
    if (!o_.retriever_dir.empty()) {
        enc_ = std::make_unique<DualEncoder>(o_.retriever_dir);
        kb_ = std::make_unique<PassageIndex>(*enc_, knowledge_texts());
    }
}

ShopAssistant::~ShopAssistant() = default;

// Without the model's tokenizer: bytes / 3, more than this shop's texts take (3.4 bytes a token).
size_t ShopAssistant::tokens(const std::string& s, const PlanLimits* limits) const {
    if (limits && limits->count_tokens) return limits->count_tokens(s);
    return o_.count_tokens ? o_.count_tokens(s) : s.size() / 3 + 1;
}

namespace {

// Messages clients see: no server paths in them.
[[noreturn]] void unknown_customer(const std::string& id) {
    fail_kind(ErrorKind::kNotFound, "shop: unknown customer '%s' (hint: customer ids look like U00001)", id.c_str());
}

[[noreturn]] void unknown_session(const std::string& id) {
    fail_kind(ErrorKind::kNotFound,
              "shop session '%s': no such session (hint: start one with POST /v1/app/sessions "
              "{\"customer_id\": ...} or llmforge chat --app shop --customer ID)",
              id.c_str());
}

}  // namespace

std::string ShopAssistant::create_session(const std::string& customer_id) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!db_->customer(customer_id)) unknown_customer(customer_id);
    return db_->create_session(customer_id);
}

std::vector<SessionRecord> ShopAssistant::sessions(const std::string& customer_id) const {
    std::lock_guard<std::mutex> lk(mu_);
    if (!db_->customer(customer_id)) unknown_customer(customer_id);
    return db_->sessions_of(customer_id);
}

nlohmann::ordered_json ShopAssistant::session_json(const std::string& id) const {
    std::lock_guard<std::mutex> lk(mu_);
    const auto s = db_->session(id);
    if (!s) unknown_session(id);
    nlohmann::ordered_json turns = nlohmann::ordered_json::array();
    for (const auto& t : db_->session_turns(id)) {
        nlohmann::ordered_json j = {{"role", t.role}, {"content", t.content}};
        if (!t.state.empty()) j["state"] = nlohmann::ordered_json::parse(t.state, nullptr, false);
        if (!t.info.empty()) j["app"] = nlohmann::ordered_json::parse(t.info, nullptr, false);
        turns.push_back(std::move(j));
    }
    return {{"id", s->id}, {"customer_id", s->customer_id}, {"created", s->created}, {"turns", turns}};
}

TurnPlan ShopAssistant::plan(const std::string& session_id, const std::string& user_text, const PlanLimits* limits) const {
    auto tokens = [&](const std::string& s) { return this->tokens(s, limits); };
    const size_t budget = limits && limits->context_budget_tokens ? limits->context_budget_tokens : o_.context_budget_tokens;
    TurnPlan p;
    p.session_id = session_id;
    p.user_text = user_text;
    if (user_text.find_first_not_of(" \t\r\n") == std::string::npos)
        fail("shop session %s: the user turn is empty (expected the customer's message)", session_id.c_str());
    std::unique_lock<std::mutex> lk(mu_);
    const auto s = db_->session(session_id);
    if (!s) unknown_session(session_id);
    p.customer_id = s->customer_id;
    const std::vector<SessionTurn> turns = db_->session_turns(session_id);

    // The state: carried over from the last user turn's.
    DstState prev;
    for (auto it = turns.rbegin(); it != turns.rend(); ++it)
        if (it->role == "user" && !it->state.empty()) {
            prev = DstState::from_json(nlohmann::json::parse(it->state));
            break;
        }
    p.state = dst_->update(prev, user_text);

    // The short-term window: the last o_.window user/assistant messages, with their tool turns.
    size_t start = turns.size();
    for (int kept = 0; start > 0 && kept < o_.window;) {
        --start;
        kept += turns[start].role != "tool";
    }
    while (start < turns.size() && turns[start].role == "tool") ++start;  // its user turn fell out
    const size_t window_start = start;  // long-term memory covers what is before it
    bool has_history = false;
    for (const auto& t : turns) has_history |= t.role == "user";
    if (has_history && !same_subject(prev, p.state)) start = turns.size();

    // Long-term memory: the earlier user turns most like this one.
    if (enc_) {
        const std::vector<float> q = enc_->encode(user_text, true);
        for (size_t i = 0; i < window_start; ++i) {
            if (turns[i].role != "user") continue;
            const double score = dot(q, enc_->encode(turns[i].content, false));
            if (score >= o_.memory_min_score) p.memories.push_back({"turn:" + std::to_string(i), turns[i].content, score});
        }
        std::stable_sort(p.memories.begin(), p.memories.end(), [](const Recalled& a, const Recalled& b) { return a.score > b.score; });
        if (p.memories.size() > o_.memory_top) p.memories.resize(o_.memory_top);
        if (!p.state.order_id && order_intent(p.state.intent))
            for (const auto& m : p.memories)
                if (auto id = dst_->slots(m.text).order_id) {
                    p.state.order_id = p.recalled_order = *id;
                    break;
                }
    }

    // Lookups: the tool turn.
    std::vector<std::string> lines;
    if (train::lookup_wanted(p.state.intent)) {
        if (p.state.order_id) {
            std::optional<OrderRecord> o = db_->order(*p.state.order_id);
            if (!o || o->customer_id != p.customer_id) {
                // "order 48213" normalises to C48213; the customer's own D48213 is meant.
                const std::string digits = p.state.order_id->substr(1);
                for (const auto& id : db_->orders_with_digits(digits)) {
                    auto other = db_->order(id);
                    if (other && other->customer_id == p.customer_id) {
                        o = other;
                        p.state.order_id = id;
                        break;
                    }
                }
            }
            if (!o || o->customer_id != p.customer_id) {
                p.fixed_reply = order_not_found_reply(*p.state.order_id);
            } else {
                const train::OrderFacts facts = order_facts(*o);
                lines.push_back(train::order_fact_line(facts));
                p.slots = train::order_slot_values(facts);
            }
        } else if (p.state.product) {
            if (auto pr = db_->product(*p.state.product)) {
                const train::ProductFacts facts = product_facts(*pr);
                lines.push_back(train::product_fact_line(facts));
                p.slots = train::product_slot_values(facts);
            }
        }
        if (p.state.discount_code) p.slots["code"] = *p.state.discount_code;
        if (p.state.new_address) p.slots["new_address"] = *p.state.new_address;
        // Passages only for a policy question about nothing looked up (the corpus never mixes them).
        if (kb_ && lines.empty() && !p.fixed_reply && train::intent_wants_passages(p.state.intent)) {
            size_t passage_budget = o_.passage_budget_tokens;
            const auto hits = kb_->search(user_text, o_.passages_top);
            for (const RetrievalHit& h : hits) {
                if (h.score < o_.passage_min_score || h.score < o_.passage_relative_min * hits[0].score) break;
                const auto& kp = shop_knowledge()[h.index];
                const std::string line = train::passage_fact_line(kp);
                const size_t n = tokens(line);
                if (n > passage_budget) break;
                passage_budget -= n;
                p.passages.push_back({kp.id, kp.title, h.score});
                lines.push_back(line);
            }
        }
    }
    if (train::lookup_wanted(p.state.intent) && !p.fixed_reply) {
        // The intent line agrees with what was looked up, as in every training dialogue: a turn
        // that names one of the customer's orders asks about the order (the tracker's classifier
        // may say "shipping" for "when should I expect delivery of C48213?"), one that names only
        // a product asks about the product. The state shown keeps the tracker's own intent.
        std::string intent = p.state.intent;
        if (!p.slots.empty() && p.slots.count("tracking") && !order_intent(intent)) intent = "order_status";
        else if (!p.slots.empty() && p.slots.count("material") && intent != "product") intent = "product";
        lines.push_back(train::intent_fact_line(intent));
    }
    for (const auto& l : lines) p.tool += (p.tool.empty() ? "" : "\n") + l;

    // The model's messages, the window shortened from its oldest end to fit the budget.
    auto msg = [](const std::string& role, const std::string& text) {
        return nlohmann::ordered_json{{"role", role}, {"content", text}};
    };
    size_t total = tokens(o_.system_prompt) + tokens(user_text) + tokens(p.tool) + 12;
    for (size_t i = start; i < turns.size(); ++i) total += tokens(turns[i].content) + 4;
    while (start < turns.size() && total > budget) {
        total -= tokens(turns[start].content) + 4;
        ++start;
        while (start < turns.size() && turns[start].role == "tool") total -= tokens(turns[start].content) + 4, ++start;
    }
    p.messages = nlohmann::ordered_json::array();
    p.messages.push_back(msg("system", o_.system_prompt));
    for (size_t i = start; i < turns.size(); ++i)  // the model's own words for its turns
        p.messages.push_back(msg(turns[i].role, turns[i].generated.empty() ? turns[i].content : turns[i].generated));
    p.messages.push_back(msg("user", user_text));
    if (!p.tool.empty()) p.messages.push_back(msg("tool", p.tool));
    return p;
}

void ShopAssistant::commit(const TurnPlan& p, const std::string& shown, const std::string& generated) {
    std::vector<SessionTurn> add = {{"user", p.user_text, p.state.to_json().dump(), "", p.info().dump()}};
    if (!p.tool.empty()) add.push_back({"tool", p.tool, "", "", ""});
    add.push_back({"assistant", shown, "", generated, ""});
    std::lock_guard<std::mutex> lk(mu_);
    if (!db_->session(p.session_id)) unknown_session(p.session_id);
    db_->append_turns(p.session_id, add);
}

}  // namespace llmforge::apps
