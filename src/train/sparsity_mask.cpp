#include "train/sparsity_mask.h"

#include <algorithm>
#include <bit>
#include <unordered_map>
#include <utility>

#include "core/error.h"

namespace llmforge::train {

SparsityMask::SparsityMask(const std::vector<Param*>& params, const std::vector<Param*>& initial,
                           const std::string& source) {
    std::unordered_map<std::string, const Param*> by_name;
    for (const Param* p : initial)
        if (p->trainable) by_name[p->name] = p;
    for (Param* p : params) {
        if (!p->trainable || p->shape.size() < 2) continue;  // norm gains and biases are never pruned
        const auto it = by_name.find(p->name);
        if (it == by_name.end() || it->second->shape != p->shape)
            fail("train: --keep-sparsity: %s in %s %s, expected the shape of the run's tensor (hint: the model file "
                 "changed since the run started; resume with the file it started from)", p->name.c_str(), source.c_str(),
                 it == by_name.end() ? "is missing" : "has another shape");
        const int64_t n = p->numel();
        const float* w = it->second->value.data();
        Entry e{p, std::vector<uint64_t>(static_cast<size_t>((n + 63) / 64), 0)};
        int64_t zeros = 0;
        for (int64_t i = 0; i < n; ++i)
            if (w[i] == 0.0f) {  // -0.0 too
                e.bits[static_cast<size_t>(i >> 6)] |= uint64_t{1} << (i & 63);
                ++zeros;
            }
        n_values_ += n;
        if (zeros == 0) continue;
        n_masked_ += zeros;
        entries_.push_back(std::move(e));
    }
}

void SparsityMask::apply(ThreadPool& pool, bool grads) const {
    // One task per (tensor, 64K-value chunk): disjoint writes, so the split does not change results.
    constexpr int64_t kWordsPerChunk = 1024;
    std::vector<std::pair<size_t, int64_t>> tasks;
    for (size_t t = 0; t < entries_.size(); ++t)
        for (int64_t w0 = 0; w0 < static_cast<int64_t>(entries_[t].bits.size()); w0 += kWordsPerChunk)
            tasks.emplace_back(t, w0);
    pool.run(static_cast<int64_t>(tasks.size()), [&](int64_t k, int) {
        const Entry& e = entries_[tasks[static_cast<size_t>(k)].first];
        float* x = grads ? e.p->grad.data() : e.p->value.data();
        if (x == nullptr) return;  // no gradient buffer (yet)
        const int64_t w0 = tasks[static_cast<size_t>(k)].second;
        const int64_t w1 = std::min<int64_t>(w0 + kWordsPerChunk, static_cast<int64_t>(e.bits.size()));
        for (int64_t w = w0; w < w1; ++w)
            for (uint64_t b = e.bits[static_cast<size_t>(w)]; b != 0; b &= b - 1)
                x[w * 64 + std::countr_zero(b)] = 0.0f;
    });
}

void SparsityMask::mask_grads(ThreadPool& pool) const { apply(pool, true); }
void SparsityMask::mask_weights(ThreadPool& pool) const { apply(pool, false); }

void SparsityMask::check_resumed(const std::string& ckpt) const {
    for (const Entry& e : entries_) {
        const float* x = e.p->value.data();
        for (size_t w = 0; w < e.bits.size(); ++w)
            for (uint64_t b = e.bits[w]; b != 0; b &= b - 1) {
                const int64_t i = static_cast<int64_t>(w) * 64 + std::countr_zero(b);
                if (x[i] != 0.0f)
                    fail("train: --keep-sparsity: %s[%lld] is %g in checkpoint %s, expected 0 (the zeros of the run's "
                         "initial --model; hint: the model file changed since the run started, resume with the file it "
                         "started from)", e.p->name.c_str(), (long long)i, x[i], ckpt.c_str());
            }
    }
}

}  // namespace llmforge::train
