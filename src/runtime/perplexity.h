// Perplexity of a model on a token sequence, in the manner of llama.cpp's `perplexity`.
//
// Rule: the tokens are cut into consecutive windows of n_ctx tokens (the last may be shorter; a
// last window of one token scores nothing and is dropped). Each window is evaluated from an empty
// KV cache and every token of a window after its first is scored:
// NLL_i = -log softmax(logits_{i-1})[t_i], in double. N tokens in W windows score N - W tokens.
// ppl = exp(mean NLL); ppl_stderr = ppl * SE(mean NLL) (delta method).
//
// With an adapter (runtime/context.h SeqAdapter): its LoRA delta applies to every row, and a prompt
// adapter's N virtual rows come before each window (the window's tokens at positions N..); they are
// never scored. The KV cache then holds N + n_ctx positions, its rows stored as kv_types.
//
// Thread safety: uses its own Context; the Model is only read.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "runtime/context.h"

namespace llmforge {

struct PerplexityResult {
    double nll_sum = 0;     // sum of the scored tokens' NLL (nats)
    int64_t n_scored = 0;   // tokens scored
    int64_t n_windows = 0;  // windows evaluated
    double ppl = 0;         // exp(nll_sum / n_scored)
    double ppl_stderr = 0;  // standard error of ppl (delta method)
};

// progress(window_done, n_windows, running_ppl) after each window. Errors: fewer than 2 tokens,
// n_ctx < 2, token ids outside the vocabulary. lsh_stats: LSH attention's score counts and probe
// (model/lsh.h) are added to it.
PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int64_t n_ctx, int threads,
                            const std::function<void(int64_t, int64_t, double)>& progress = nullptr,
                            const SeqAdapter& adapter = {}, const KvTypes& kv_types = {}, LshStats* lsh_stats = nullptr);

}  // namespace llmforge
