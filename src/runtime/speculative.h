// Speculative decoding: a cheap draft proposes the next few tokens, the main model checks them all
// in one forward pass, and every token the main model would have picked itself is kept.
//
// One round, with the main model's KV memory holding the sequence up to (not including) the
// newest accepted token t:
//   1. the draft proposes d1..dk to follow the accepted tokens (k <= n_draft, fewer near the end);
//   2. the main model runs [t, d1..dk] at the next positions in ONE forward with k+1 logit rows;
//   3. row i goes through the sequence's one decode step (SeqDecoder: its sampler chain, EOG,
//      stop strings, max tokens, UTF-8 streaming), exactly as plain decoding would have after
//      t, d1..di; while the picked token equals d(i+1) the next row is valid and is used too; the
//      first pick that differs (the main model's correction), or the pick after dk (a bonus
//      token), ends the round and becomes the next t. So a round emits 1..k+1 tokens.
//   4. the main memory is cut back to the accepted positions (Context::truncate: rows written for
//      rejected drafts are simply overwritten by the next round), and the draft is told how many
//      of its tokens were accepted so it can roll its own state back.
//
// Identity with plain decoding: the picks come from the same sampler chain fed the same tokens in
// the same order, so the output is the plain decoder's token for token — greedy, and also seeded
// sampling (temperature > 0): the seeded draw takes one number per step in both, so a draft token
// is accepted exactly when it equals the main model's own draw at that position (the output
// equals plain decoding with the same seed; acceptance is p_main(d) rather than rejection
// sampling's min(1, p_main/p_draft), the price of that identity). Grammar, penalties and logit
// bias stages see every accepted token as they would in plain decoding.
// The verification forward runs in batch-invariant mode (ForwardScratch::batch_invariant), so
// each of its rows has bit for bit the logits a one-token decode step has in that mode. Plain
// decoding's one-token steps are bit-identical to that whenever the model's matrices have a
// row-invariant gemm (Model::rows_batch_invariant(): repacked q8_0 / q4_0 …) — then speculative
// output equals `generate` exactly; for other weight types (f32, f16, k-quants) a lone row is
// summed in another order than several, so the two can differ where two logits tie to rounding
// error (speculative output always equals plain decoding in batch-invariant mode, the server's).
//
// Drafts plug in through DraftSource: ModelDraft (a small model sharing the vocabulary, with its
// own KV memory) and MtpDraft (DeepSeek-V3's multi-token-prediction module, which reads the main
// model's hidden states of the verified rows: needs_hidden()).
//
// Cost: a verification forward of k+1 rows reads the weights once, but on CPUs the multi-row
// matmul tiles cost more than the one-row decode kernels (measured: 2-8 rows of a 110M q8_0
// model ≈ 2.3-2.9 one-token steps), so a round pays off when it emits more tokens than that
// (plus the draft's own cost): acceptance and a cheap draft decide (bench/speculative_bench.sh).
//
// Thread safety: one sequence, one thread, like Context.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

// What proposes tokens. The speculative loop calls start() once after the main model has run the
// prompt, then per round propose() and verified().
class DraftSource {
public:
    virtual ~DraftSource() = default;
    // For messages: "draft model M", "mtp".
    virtual std::string name() const = 0;
    // true: the main model's hidden states (every row's last-layer output before the final norm,
    // ForwardScratch::keep_hidden) are handed to start() and verified().
    virtual bool needs_hidden() const { return false; }
    // The main model has run the prompt `prompt` (the sequence's tokens so far, possibly empty).
    // hidden: (prompt.size(), n_embd) rows when needs_hidden() and the prompt is not empty, else
    // null.
    virtual void start(const std::vector<int32_t>& prompt, const float* hidden) = 0;
    // Up to n (>= 1) tokens likely to follow `seq`: every accepted token, prompt included;
    // seq.back() is the newest, not yet run by the main model. Fewer, or none, is fine; ids
    // outside the vocabulary end the proposal.
    virtual std::vector<int32_t> propose(const std::vector<int32_t>& seq, int64_t n) = 0;
    // The main model ran seq.back() + the last proposal (rows 0..k) at positions pos0..pos0+k and
    // accepted n_accepted of the proposal: rows 0..n_accepted are now part of the sequence, and
    // the token after them (the main model's correction, or a bonus after a fully accepted
    // proposal) will be the next seq.back(). hidden: those n_accepted + 1 rows (n_embd each)
    // when needs_hidden(), else null. Also called with n_accepted = 0 when nothing was proposed.
    virtual void verified(int64_t pos0, int64_t n_accepted, const float* hidden) = 0;
};

// Throws one line unless `draft` can draft for `main`: the same vocabulary size (logit rows),
// the same BOS/EOS ids and the same text for every token. `draft_path` names the draft.
void check_draft_vocab(const Model& main, const Model& draft, const std::string& draft_path);

// A small model sharing the main model's vocabulary, proposing its own greedy continuation. It
// keeps its own KV memory (positions = tokens, no adapters) and rolls it back to the longest
// prefix it shares with the accepted sequence. It runs on the main context's thread pool (two
// pools on the same cores would fight over them between the draft's and the model's forwards).
// Near the end of the context it proposes fewer tokens, then none.
class ModelDraft final : public DraftSource {
public:
    // Checks the vocabulary (check_draft_vocab). main: the main model's context (its pool and
    // n_ctx, the draft memory's size); kv: how the draft stores its K/V rows.
    ModelDraft(const Model& draft, Context& main, const std::string& draft_path, KvTypes kv = {});
    std::string name() const override { return "draft model " + path_; }
    void start(const std::vector<int32_t>& prompt, const float* hidden) override;
    std::vector<int32_t> propose(const std::vector<int32_t>& seq, int64_t n) override;
    void verified(int64_t, int64_t, const float*) override {}

private:
    // Cuts the memory back to the longest prefix shared with seq and feeds the rest (at least
    // seq.back(), whose logits are wanted); false when seq does not fit the memory.
    bool sync(const std::vector<int32_t>& seq);
    void feed(const int32_t* tokens, int64_t n);

    std::string path_;
    const Model& model_;
    ThreadPool& pool_;
    std::unique_ptr<KvMemory> mem_;
    ForwardScratch s_;
    std::vector<float> logits_;  // of the last token fed
    std::vector<int32_t> fed_;   // tokens in mem_, in order
};

// DeepSeek-V3's multi-token-prediction module (depth 1) as the draft: its row at position i reads
// the main model's hidden state h_i and the embedding of token i+1 and guesses token i+2. The
// module's KV rows are the main memory's layer n_layer (Model::forward_mtp); a row is written
// only once h_i and token i+1 are both final (accepted), so it never needs rolling back: each
// round runs the rows that became final since the last one (the prompt's at the first round; then
// the verified rows, whose next tokens are now known) in one forward_mtp call and proposes the
// argmax of the last row's logits — one token per round (depth 1; chaining the module on its own
// hidden output for more would need forward_mtp to return it). `on_propose` (tests): the position
// guessed and the logits.
class MtpDraft final : public DraftSource {
public:
    // ctx: the main model's context (its memory, pool); throws one line when the model has no MTP
    // weights or ctx runs a prompt adapter's virtual rows (their hidden states are not kept).
    MtpDraft(Context& ctx, const std::string& model_path);
    std::string name() const override { return "mtp"; }
    bool needs_hidden() const override { return true; }
    void start(const std::vector<int32_t>& prompt, const float* hidden) override;
    std::vector<int32_t> propose(const std::vector<int32_t>& seq, int64_t n) override;
    void verified(int64_t pos0, int64_t n_accepted, const float* hidden) override;
    std::function<void(int64_t pos, const float* logits)> on_propose;

private:
    Context& ctx_;
    ForwardScratch s_;
    std::vector<float> pend_;  // hidden rows of positions pend_pos_.. not yet run by the module
    int64_t pend_pos_ = 0;
    std::vector<float> logits_;
    std::vector<int32_t> next_;
};

// The draft of --speculative mtp (an MtpDraft). Throws one line when the model has no MTP weights.
std::unique_ptr<DraftSource> make_mtp_draft(const Model& main, Context& ctx, const std::string& model_path);

struct SpeculativeParams {
    // Tokens proposed per round at most (--draft-n). 4: a verification forward of 5 rows costs ~2.2
    // one-token steps here (110M q8_0), 9 rows ~3.3; with a draft at ~10% of the model and
    // acceptance 0.8 per token, k = 4 emits the most tokens per second (k = 8: ~20% fewer).
    int64_t n_draft = 4;
};

struct SpeculativeStats {
    int64_t proposed = 0;        // draft tokens checked by the main model
    int64_t accepted = 0;        // of those, kept
    int64_t rounds = 0;          // verification forwards of the main model
    int64_t round_tokens = 0;    // tokens emitted from verification rows (all but the prefill's)
    double draft_seconds = 0;    // in propose()
    double verify_seconds = 0;   // in the main model's verification forwards
    double acceptance() const { return proposed > 0 ? static_cast<double>(accepted) / proposed : 0.0; }
    // Plain decoding: 1.
    double tokens_per_forward() const { return rounds > 0 ? static_cast<double>(round_tokens) / rounds : 0.0; }
};

// generate() (runtime/generator.h) with a draft: the same prompt handling, output, finish reasons
// and callbacks; `stats` (optional) receives the counts above.
GenerateResult generate_speculative(Context& ctx, DraftSource& draft, const Tokenizer& tok, Sampler& sampler,
                                    const std::vector<int32_t>& prompt, const GenerateParams& params,
                                    const SpeculativeParams& sp, SpeculativeStats* stats = nullptr,
                                    const TextCallback& on_text = nullptr);

}  // namespace llmforge
