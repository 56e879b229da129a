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
      cache_(model.new_memory(pick_ctx(model, params), params.kv_types)),
      logits_(model.config().n_vocab) {
    if (params_.n_batch <= 0) params_.n_batch = 512;
    const SeqAdapter& a = params_.adapter;
    LF_ASSERT(a.n_virtual >= 0 && (a.n_virtual == 0 || a.virtual_rows != nullptr));
    if (a.n_virtual >= cache_->n_ctx())
        fail_kind(ErrorKind::kResource,
                  "the prompt adapter's %lld virtual tokens fill the whole context of %lld positions (hint: raise "
                  "--ctx-size)", (long long)a.n_virtual, (long long)cache_->n_ctx());
}

void Context::run_virtual(bool want_logits) {
    const SeqAdapter& a = params_.adapter;
    if (n_past_ < a.n_virtual)
        run_rows(a.virtual_rows + n_past_ * model_.config().n_embd, a.n_virtual - n_past_, want_logits);
}

void Context::run_rows(const float* rows, int64_t n, bool want_logits) {
    const int64_t C = model_.config().n_embd;
    for (int64_t b = 0; b < n; b += params_.n_batch) {
        const int64_t m = std::min(params_.n_batch, n - b);
        const bool last = b + m == n;
        SeqBatch sq;
        sq.cache = cache_.get();
        sq.n = m;
        sq.pos0 = n_past_;
        sq.embd = rows + b * C;
        sq.delta = params_.adapter.delta;
        sq.logits = want_logits && last ? logits_.data() : nullptr;
        sq.n_out = want_logits && last ? 1 : 0;
        model_.forward_batch(&sq, 1, pool_, scratch_);
        n_past_ += m;
    }
}

const std::vector<float>& Context::decode_rows(const float* rows, int64_t n) {
    run_virtual(false);
    if (n_past_ + n > cache_->n_ctx())
        fail_kind(ErrorKind::kResource,
                  "%lld input rows (an image) at position %lld do not fit the context of %lld positions (hint: raise "
                  "--ctx-size)", (long long)n, (long long)n_past_, (long long)cache_->n_ctx());
    run_rows(rows, n, true);
    return logits_;
}

void Context::run(const std::vector<int32_t>& tokens, float* out, bool all) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t V = model_.config().n_vocab;
    run_virtual(n == 0);
    for (int64_t b = 0; b < n; b += params_.n_batch) {
        const int64_t m = std::min(params_.n_batch, n - b);
        SeqBatch sq;
        sq.cache = cache_.get();
        sq.tokens = tokens.data() + b;
        sq.n = m;
        sq.pos0 = n_past_;
        sq.logits = all ? out + b * V : out;
        sq.n_out = all ? m : 1;
        sq.delta = params_.adapter.delta;
        model_.forward_batch(&sq, 1, pool_, scratch_);
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
