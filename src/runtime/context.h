// Context: one sequence's inference state over a shared Model — its KV cache, scratch buffers
// and the number of positions already processed (n_past).
//
// decode() appends tokens: a prompt is processed as one batch (prefill, in chunks of
// n_batch), a generated token as a batch of one. Thread safety: a Context is used by one thread at
// a time; several Contexts may share one Model.
//
// Adapters (ContextParams::adapter, runtime/adapters.h makes one): a LoRA delta applies to every
// row; a prompt adapter's N virtual rows hold positions 0..N-1 and are run (as embeddings) before
// the first token, so token t of the sequence is at position N + t. n_past() counts positions,
// virtual rows included; n_tokens() counts tokens. clear() keeps the virtual rows; truncate(n)
// below N drops them too, and the next decode runs them again.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace llmforge {

// What one sequence runs with besides the base weights (non-owning: the owner, e.g. an
// AdapterSet, outlives the Context).
struct SeqAdapter {
    const LinearDelta* delta = nullptr;   // LoRA terms after the linears they cover; null: none
    const float* virtual_rows = nullptr;  // (n_virtual, n_embd): a prompt adapter's embeddings
    int64_t n_virtual = 0;
};

struct ContextParams {
    int64_t n_ctx = 0;       // 0: the model's training context (capped at 4096); virtual rows included
    int64_t n_batch = 512;   // prefill chunk
    int n_threads = 0;       // 0: hardware concurrency
    SeqAdapter adapter;      // none by default
    KvTypes kv_types;        // how K and V rows are stored (--cache-type-k / -v); f32 by default
};

class Context {
public:
    Context(const Model& model, const ContextParams& params);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // Processes tokens at positions n_past.. (the virtual rows first, when they are not in the
    // cache) and returns the logits (V) of the last one (of the last virtual row when tokens is
    // empty). Throws Error for ids >= vocab or when the context is full.
    const std::vector<float>& decode(const std::vector<int32_t>& tokens);
    // Appends n rows given as embeddings (n, n_embd) — an image's rows from runtime/multimodal.h —
    // at positions n_past.. (after the virtual rows) and returns the logits of the last one.
    // Throws Error (kResource) when they do not fit the context.
    const std::vector<float>& decode_rows(const float* rows, int64_t n);
    // Like decode but returns logits for every token: (n, V) row-major (no virtual rows' logits).
    std::vector<float> decode_all(const std::vector<int32_t>& tokens);

    const std::vector<float>& logits() const { return logits_; }
    int64_t n_past() const { return n_past_; }
    int64_t n_ctx() const { return cache_->n_ctx(); }
    int64_t n_virtual() const { return params_.adapter.n_virtual; }
    // Tokens in the cache (positions after the virtual rows).
    int64_t n_tokens() const { return std::max<int64_t>(0, n_past_ - n_virtual()); }
    // Forget positions >= n (n <= n_past): the next decode continues from n.
    void truncate(int64_t n);
    // Forget every token; the virtual rows (if run) stay.
    void clear() { truncate(std::min(n_past_, n_virtual())); }
    const Model& model() const { return model_; }
    ThreadPool& pool() { return pool_; }
    ForwardScratch& scratch() { return scratch_; }
    // The KV memory (a draft reading the model's own extra layers, e.g. DeepSeek's MTP module).
    KvMemory& memory() { return *cache_; }

private:
    // Feeds tokens in n_batch chunks; `all`: logits of every token into out (n, V), else the
    // last token's into out (V).
    void run(const std::vector<int32_t>& tokens, float* out, bool all);
    // Runs the virtual rows not yet in the cache; `want_logits`: the last one's into logits_.
    void run_virtual(bool want_logits);
    // Runs n embedding rows at n_past in n_batch chunks; `want_logits`: the last one's into logits_.
    void run_rows(const float* rows, int64_t n, bool want_logits);

    const Model& model_;
    ContextParams params_;
    ThreadPool pool_;
    std::unique_ptr<KvMemory> cache_;
    ForwardScratch scratch_;
    std::vector<float> logits_;  // (V)
    int64_t n_past_ = 0;
};

}  // namespace llmforge
