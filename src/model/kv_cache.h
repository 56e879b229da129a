// Per-sequence key/value cache of a decoder: for each layer, K and V rows for positions
// [0, n_ctx). Stored in f32 so cached decode equals full recomputation to rounding error.
//
// Layout: k(layer) is (T, H_kv * D) row-major — position t, kv head g at k + t*kv_dim + g*D.
// Thread safety: none; a KvCache belongs to one Context.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"

namespace llmforge {

class KvCache {
public:
    KvCache(const ModelConfig& cfg, int64_t n_ctx);
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    int64_t n_ctx() const { return n_ctx_; }
    int64_t kv_dim() const { return kv_dim_; }
    float* k(int64_t layer) { return k_[layer].get(); }  // (T, kv_dim)
    float* v(int64_t layer) { return v_[layer].get(); }  // (T, kv_dim)
    const float* k(int64_t layer) const { return k_[layer].get(); }
    const float* v(int64_t layer) const { return v_[layer].get(); }
    size_t bytes() const { return 2 * static_cast<size_t>(k_.size() * n_ctx_ * kv_dim_) * sizeof(float); }

private:
    int64_t n_ctx_;
    int64_t kv_dim_;
    std::vector<std::shared_ptr<float>> k_, v_;
};

}  // namespace llmforge
