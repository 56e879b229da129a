#include "runtime/context.h"

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace llmforge {

namespace {
int64_t pick_ctx(const Model& m, const ContextParams& p) {
    if (p.n_ctx > 0) return p.n_ctx;
    const int64_t train = m.config().n_ctx_train > 0 ? m.config().n_ctx_train : 2048;
    return std::min<int64_t>(train, 4096);
}
int pick_threads(int n) {
    if (n > 0) return n;
    unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}
}  // namespace

Context::Context(const Model& model, const ContextParams& params)
    : model_(model),
      params_(params),
      pool_(pick_threads(params.n_threads)),
      cache_(model.new_memory(pick_ctx(model, params))),
      logits_(model.config().n_vocab) {
    if (params_.n_batch <= 0) params_.n_batch = 512;
}

void Context::run(const std::vector<int32_t>& tokens, float* out, bool all) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t V = model_.config().n_vocab;
    for (int64_t b = 0; b < n; b += params_.n_batch) {
        const int64_t m = std::min(params_.n_batch, n - b);
        model_.forward(tokens.data() + b, m, n_past_, *cache_, all ? out + b * V : out, all ? m : 1,
                       pool_, scratch_);
        n_past_ += m;
    }
}

const std::vector<float>& Context::decode(const std::vector<int32_t>& tokens) {
    run(tokens, logits_.data(), false);
    return logits_;
}

std::vector<float> Context::decode_all(const std::vector<int32_t>& tokens) {
    const int64_t V = model_.config().n_vocab;
    std::vector<float> out(tokens.size() * static_cast<size_t>(V));
    run(tokens, out.data(), true);
    if (!tokens.empty()) std::copy(out.end() - V, out.end(), logits_.begin());
    return out;
}

void Context::truncate(int64_t n) {
    if (n < 0 || n > n_past_) {
        fail("truncate: position %lld is outside the %lld processed positions", (long long)n,
             (long long)n_past_);
    }
    n_past_ = n;
}

}  // namespace llmforge
