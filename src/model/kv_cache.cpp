#include "model/kv_cache.h"

#include "core/tensor.h"

namespace llmforge {

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx)
    : n_ctx_(n_ctx), kv_dim_(cfg.n_head_kv * cfg.head_dim) {
    const size_t bytes = static_cast<size_t>(n_ctx_ * kv_dim_) * sizeof(float);
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
        auto kb = alloc_aligned(bytes);
        auto vb = alloc_aligned(bytes);
        k_.emplace_back(kb, reinterpret_cast<float*>(kb.get()));
        v_.emplace_back(vb, reinterpret_cast<float*>(vb.get()));
    }
}

}  // namespace llmforge
