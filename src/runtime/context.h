// Context: one sequence's inference state over a shared Model — its KV cache, scratch buffers
// and the number of positions already processed (n_past).
//
// decode() appends tokens: a prompt is processed as one batch (prefill, in chunks of
// n_batch), a generated token as a batch of one. Thread safety: a Context is used by one thread at
// a time; several Contexts may share one Model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace llmforge {

struct ContextParams {
    int64_t n_ctx = 0;       // 0: the model's training context (capped at 4096)
    int64_t n_batch = 512;   // prefill chunk
    int n_threads = 0;       // 0: hardware concurrency
};

class Context {
public:
    Context(const Model& model, const ContextParams& params);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // Processes tokens at positions n_past.. and returns the logits (V) of the last one.
    // Throws Error for ids >= vocab or when the context is full.
    const std::vector<float>& decode(const std::vector<int32_t>& tokens);
    // Like decode but returns logits for every token: (n, V) row-major.
    std::vector<float> decode_all(const std::vector<int32_t>& tokens);

    const std::vector<float>& logits() const { return logits_; }
    int64_t n_past() const { return n_past_; }
    int64_t n_ctx() const { return cache_->n_ctx(); }
    // Forget positions >= n (n <= n_past): the next decode continues from n.
    void truncate(int64_t n);
    void clear() { truncate(0); }
    const Model& model() const { return model_; }
    ThreadPool& pool() { return pool_; }
    ForwardScratch& scratch() { return scratch_; }

private:
    // Feeds tokens in n_batch chunks; `all`: logits of every token into out (n, V), else the
    // last token's into out (V).
    void run(const std::vector<int32_t>& tokens, float* out, bool all);

    const Model& model_;
    ContextParams params_;
    ThreadPool pool_;
    std::unique_ptr<KvMemory> cache_;
    ForwardScratch scratch_;
    std::vector<float> logits_;  // (V)
    int64_t n_past_ = 0;
};

}  // namespace llmforge
