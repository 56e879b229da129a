#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace llmforge {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The highest logit, ties to the lowest id (the greedy pick's rule).
int32_t argmax(const float* x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return static_cast<int32_t>(best);
}

// Sets the flags of a verification forward for its duration (restored on every exit).
class ScratchFlags {
public:
    ScratchFlags(ForwardScratch& s, bool invariant, bool keep_hidden)
        : s_(s), invariant_(s.batch_invariant), keep_(s.keep_hidden) {
        s.batch_invariant = invariant;
        s.keep_hidden = keep_hidden;
    }
    ~ScratchFlags() {
        s_.batch_invariant = invariant_;
        s_.keep_hidden = keep_;
    }
    ScratchFlags(const ScratchFlags&) = delete;
    ScratchFlags& operator=(const ScratchFlags&) = delete;

private:
    ForwardScratch& s_;
    bool invariant_, keep_;
};

// Prompt chunk (Context's default n_batch): when the draft reads the prompt's hidden rows the main
// model sees the same chunks as ctx.decode(prompt); a draft model's prompt goes in these too.
constexpr int64_t kPrefillChunk = 512;

}  // namespace

void check_draft_vocab(const Model& main, const Model& draft, const std::string& draft_path) {
    const int64_t vm = main.config().n_vocab, vd = draft.config().n_vocab;
    if (vm != vd) {
        fail("--draft-model %s: its vocabulary has %lld tokens but the main model's has %lld (expected a draft "
             "sharing the main model's tokenizer; hint: pick a smaller model of the same family)",
             draft_path.c_str(), (long long)vd, (long long)vm);
    }
    const Vocab& a = main.vocab();
    const Vocab& b = draft.vocab();
    if (b.empty()) {
        fail("--draft-model %s: the draft has no vocabulary to compare with the main model's (expected a GGUF or "
             "Hugging Face folder with its tokenizer; hint: a llama2.c draft takes generate's --tokenizer)",
             draft_path.c_str());
    }
    if (a.empty()) return;  // nothing to compare with: the sizes agree
    if (a.bos_id != b.bos_id || a.eos_id != b.eos_id) {
        fail("--draft-model %s: special tokens differ from the main model's (draft BOS %d / EOS %d, main BOS %d / "
             "EOS %d; expected the same tokenizer)",
             draft_path.c_str(), b.bos_id, b.eos_id, a.bos_id, a.eos_id);
    }
    const size_t n = std::min(a.tokens.size(), b.tokens.size());
    if (a.tokens.size() != b.tokens.size()) {
        fail("--draft-model %s: its tokenizer has %zu tokens but the main model's has %zu (expected the same "
             "tokenizer)",
             draft_path.c_str(), b.tokens.size(), a.tokens.size());
    }
    for (size_t i = 0; i < n; ++i) {
        if (a.tokens[i] != b.tokens[i]) {
            fail("--draft-model %s: token %zu is '%s' in the draft but '%s' in the main model (expected the same "
                 "tokenizer; hint: a draft must share the main model's vocabulary)",
                 draft_path.c_str(), i, b.tokens[i].c_str(), a.tokens[i].c_str());
        }
    }
}

ModelDraft::ModelDraft(const Model& draft, Context& main, const std::string& draft_path, KvTypes kv)
    : path_(draft_path),
      model_((check_draft_vocab(main.model(), draft, draft_path), draft)),
      pool_(main.pool()),
      mem_(draft.new_memory(main.n_ctx(), kv)),
      logits_(static_cast<size_t>(draft.config().n_vocab)) {}

void ModelDraft::feed(const int32_t* tokens, int64_t n) {
    for (int64_t b = 0; b < n; b += kPrefillChunk) {
        const int64_t m = std::min(kPrefillChunk, n - b);
        const bool last = b + m == n;
        model_.forward(tokens + b, m, static_cast<int64_t>(fed_.size()), *mem_, last ? logits_.data() : nullptr,
                       last ? 1 : 0, pool_, s_);
        fed_.insert(fed_.end(), tokens + b, tokens + b + m);
    }
}

bool ModelDraft::sync(const std::vector<int32_t>& seq) {
    if (seq.empty() || static_cast<int64_t>(seq.size()) > mem_->n_ctx()) return false;
    size_t common = 0;
    while (common < fed_.size() && common < seq.size() && fed_[common] == seq[common]) ++common;
    if (common == seq.size()) --common;  // seq.back()'s logits are needed: feed it again
    fed_.resize(common);                 // later rows are overwritten
    feed(seq.data() + common, static_cast<int64_t>(seq.size() - common));
    return true;
}

void ModelDraft::start(const std::vector<int32_t>& prompt, const float*) {
    fed_.clear();
    if (!prompt.empty()) sync(prompt);
}

std::vector<int32_t> ModelDraft::propose(const std::vector<int32_t>& seq, int64_t n) {
    std::vector<int32_t> out;
    // seq fills positions 0..S-1; drafts 1..n-1 are fed after it (the last one only proposed).
    n = std::min<int64_t>(n, mem_->n_ctx() - static_cast<int64_t>(seq.size()) + 1);
    if (n <= 0 || !sync(seq)) return out;
    const int64_t V = static_cast<int64_t>(logits_.size());
    out.push_back(argmax(logits_.data(), V));
    while (static_cast<int64_t>(out.size()) < n) {
        feed(&out.back(), 1);
        out.push_back(argmax(logits_.data(), V));
    }
    return out;
}

namespace {

void require_mtp(const Model& main, const std::string& model_path) {
    if (!main.has_mtp()) {
        fail("--speculative mtp: %s has no multi-token-prediction (MTP) weights (architecture %s, expected a "
             "DeepSeek-V3-style model with nextn_predict_layers >= 1; hint: use --draft-model M instead)",
             model_path.c_str(), main.config().arch.c_str());
    }
}

}  // namespace

MtpDraft::MtpDraft(Context& ctx, const std::string& model_path) : ctx_(ctx) {
    require_mtp(ctx.model(), model_path);
    if (ctx.n_virtual() > 0) {
        fail("--speculative mtp: a prompt adapter's %lld virtual tokens cannot be drafted for (the MTP module needs "
             "the model's hidden state of every position; hint: use --draft-model M)",
             (long long)ctx.n_virtual());
    }
    logits_.resize(static_cast<size_t>(ctx.model().config().n_vocab));
}

void MtpDraft::start(const std::vector<int32_t>& prompt, const float* hidden) {
    const int64_t C = ctx_.model().config().n_embd;
    pend_pos_ = 0;
    pend_.clear();
    if (hidden != nullptr) pend_.assign(hidden, hidden + static_cast<int64_t>(prompt.size()) * C);
}

std::vector<int32_t> MtpDraft::propose(const std::vector<int32_t>& seq, int64_t n) {
    const Model& m = ctx_.model();
    const int64_t C = m.config().n_embd, V = m.config().n_vocab;
    const int64_t rows = static_cast<int64_t>(pend_.size()) / C;
    // The pending rows are positions pend_pos_ .. S-2 (S = seq.size()): each one's next token is known.
    const int64_t S = static_cast<int64_t>(seq.size());
    if (n < 1 || rows == 0 || pend_pos_ + rows != S - 1) return {};
    next_.assign(seq.begin() + pend_pos_ + 1, seq.end());
    m.forward_mtp(pend_.data(), next_.data(), rows, pend_pos_, ctx_.memory(), logits_.data(), 1, ctx_.pool(), s_);
    pend_pos_ += rows;
    pend_.clear();
    if (on_propose) on_propose(S, logits_.data());
    return {argmax(logits_.data(), V)};
}

void MtpDraft::verified(int64_t pos0, int64_t n_accepted, const float* hidden) {
    const int64_t C = ctx_.model().config().n_embd;
    if (hidden == nullptr) return;
    // Rows pos0..pos0+n_accepted follow the pending ones (none, after a proposal).
    LF_ASSERT(pend_pos_ + static_cast<int64_t>(pend_.size()) / C == pos0);
    pend_.insert(pend_.end(), hidden, hidden + (n_accepted + 1) * C);
}

std::unique_ptr<DraftSource> make_mtp_draft(const Model& main, Context& ctx, const std::string& model_path) {
    require_mtp(main, model_path);
    return std::make_unique<MtpDraft>(ctx, model_path);
}

GenerateResult generate_speculative(Context& ctx, DraftSource& draft, const Tokenizer& tok, Sampler& sampler,
                                    const std::vector<int32_t>& prompt, const GenerateParams& params,
                                    const SpeculativeParams& sp, SpeculativeStats* stats,
                                    const TextCallback& on_text) {
    if (sp.n_draft < 1 || sp.n_draft > 64)
        fail("--draft-n %lld is out of range (expected 1..64)", (long long)sp.n_draft);
    SpeculativeStats st;
    GenerateResult res;
    res.n_prompt = static_cast<int64_t>(prompt.size());
    const bool hidden = draft.needs_hidden();
    const int64_t C = ctx.model().config().n_embd;

    // The prompt, as generate() runs it; with the hidden rows collected chunk by chunk when the
    // draft reads them.
    auto t0 = Clock::now();
    for (int32_t t : prompt) sampler.accept(t);
    std::vector<float> prompt_hidden;
    if (!prompt.empty() && hidden) {
        ScratchFlags flags(ctx.scratch(), ctx.scratch().batch_invariant, true);
        prompt_hidden.reserve(prompt.size() * static_cast<size_t>(C));
        for (size_t b = 0; b < prompt.size(); b += kPrefillChunk) {
            const size_t e = std::min(prompt.size(), b + kPrefillChunk);
            ctx.decode(std::vector<int32_t>(prompt.begin() + static_cast<std::ptrdiff_t>(b),
                                            prompt.begin() + static_cast<std::ptrdiff_t>(e)));
            const std::vector<float>& h = ctx.scratch().hidden;
            LF_ASSERT(h.size() >= (e - b) * static_cast<size_t>(C));
            prompt_hidden.insert(prompt_hidden.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>((e - b) * C));
        }
    } else if (!prompt.empty() || ctx.n_past() < ctx.n_virtual()) {
        ctx.decode(prompt);
    }
    res.prefill_seconds = seconds_since(t0);
    res.finish_reason = "length";
    if (ctx.n_past() == 0) {
        if (stats) *stats = st;
        return res;
    }

    DecodeOptions opt;
    opt.stop = params.stop;
    opt.max_tokens = params.max_tokens;
    opt.stop_on_bos = params.stop_on_bos;
    SeqDecoder dec(tok, sampler, opt, prompt.empty() ? -1 : prompt.back());
    const int64_t V = ctx.model().config().n_vocab;
    const int64_t p0 = ctx.n_past();  // positions before the first generated token
    auto t1 = Clock::now();
    bool cancelled = false, stopped = false;
    std::vector<int32_t> seq = prompt;

    // One decode step on a row of logits, exactly as generate()'s loop body: false ends the text.
    auto emit = [&](const float* logits, int32_t* picked) {
        const StepResult r = dec.step(logits, V, ctx.n_ctx() - (p0 + dec.n_generated()));
        *picked = r.kept ? r.token : -1;
        if (!r.kept) {
            stopped = true;
            return false;
        }
        res.tokens.push_back(r.token);
        seq.push_back(r.token);
        if (!r.text.empty() && on_text && !on_text(r.text)) cancelled = true;
        if (r.end == StepEnd::kStop) {
            stopped = true;
            return false;
        }
        return !(cancelled || r.end == StepEnd::kLength);
    };

    draft.start(prompt, prompt_hidden.empty() ? nullptr : prompt_hidden.data());
    int32_t picked = -1;
    bool go = params.max_tokens > 0 && emit(ctx.logits().data(), &picked);
    std::vector<int32_t> rows;
    while (go) {
        // The newest token (not yet run by the main model) sits at position pos.
        const int64_t pos = ctx.n_past();
        const int64_t left = params.max_tokens - dec.n_generated();  // >= 1: the last step went on
        const int64_t k = std::min({sp.n_draft, left - 1, ctx.n_ctx() - 1 - pos});
        rows.assign(1, seq.back());
        if (k > 0) {
            auto td = Clock::now();
            std::vector<int32_t> d = draft.propose(seq, k);
            st.draft_seconds += seconds_since(td);
            for (size_t i = 0; i < d.size() && static_cast<int64_t>(i) < k && d[i] >= 0 && d[i] < V; ++i)
                rows.push_back(d[i]);
        }
        const int64_t n_prop = static_cast<int64_t>(rows.size()) - 1;
        auto tv = Clock::now();
        std::vector<float> logits;
        {
            ScratchFlags flags(ctx.scratch(), true, hidden);
            logits = ctx.decode_all(rows);
        }
        st.verify_seconds += seconds_since(tv);
        st.rounds++;
        st.proposed += n_prop;
        int64_t a = 0;  // proposed tokens accepted
        for (int64_t i = 0; i <= n_prop; ++i) {
            go = emit(logits.data() + i * V, &picked);
            if (picked >= 0) st.round_tokens++;
            const bool match = i < n_prop && picked >= 0 && picked == rows[static_cast<size_t>(i) + 1];
            if (match) a++;
            if (!go || !match) break;
        }
        st.accepted += a;
        ctx.truncate(pos + a + 1);
        draft.verified(pos, a, hidden ? ctx.scratch().hidden.data() : nullptr);
    }
    if (stopped) {
        res.finish_reason = "stop";
    } else if (cancelled) {
        res.finish_reason = "cancelled";
    }
    if (!cancelled) {
        const std::string rest = dec.finish();  // empty after a stop string
        if (on_text && !rest.empty()) on_text(rest);
    }
    res.text = dec.text();
    res.decode_seconds = seconds_since(t1);
    if (stats) *stats = st;
    return res;
}

}  // namespace llmforge
