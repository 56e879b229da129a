#include "model/kv_cache.h"

#include <cstring>

#include "core/error.h"
#include "core/tensor.h"

namespace llmforge {

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx)
    : KvCache(std::vector<int64_t>(cfg.n_layer, cfg.n_head_kv * cfg.head_dim),
              std::vector<int64_t>(cfg.n_layer, cfg.n_head_kv * cfg.v_dim()), n_ctx) {}

KvCache::KvCache(std::vector<int64_t> k_dims, std::vector<int64_t> v_dims, int64_t n_ctx)
    : n_ctx_(n_ctx), k_dims_(std::move(k_dims)), v_dims_(std::move(v_dims)) {
    LF_ASSERT(k_dims_.size() == v_dims_.size() && n_ctx_ >= 0);
    for (size_t l = 0; l < k_dims_.size(); ++l) {
        auto kb = alloc_aligned(static_cast<size_t>(n_ctx_ * k_dims_[l]) * sizeof(float));
        auto vb = alloc_aligned(static_cast<size_t>(n_ctx_ * v_dims_[l]) * sizeof(float));
        k_.emplace_back(kb, reinterpret_cast<float*>(kb.get()));
        v_.emplace_back(vb, reinterpret_cast<float*>(vb.get()));
    }
}

std::string KvCache::layout() const {
    std::string s = "f32-rows";
    for (size_t l = 0; l < k_dims_.size(); ++l) s += ":" + std::to_string(k_dims_[l]) + "/" + std::to_string(v_dims_[l]);
    return s;
}

size_t KvCache::bytes_per_position() const {
    size_t n = 0;
    for (size_t l = 0; l < k_dims_.size(); ++l) n += static_cast<size_t>(k_dims_[l] + v_dims_[l]) * sizeof(float);
    return n;
}

// Block layout: per layer, the n K rows then the n V rows.
void KvCache::save_positions(int64_t p0, int64_t n, void* dst) const {
    LF_ASSERT(p0 >= 0 && n >= 0 && p0 + n <= n_ctx_);
    auto* out = static_cast<float*>(dst);
    for (size_t l = 0; l < k_.size(); ++l) {
        std::memcpy(out, k_[l].get() + p0 * k_dims_[l], static_cast<size_t>(n * k_dims_[l]) * sizeof(float));
        out += n * k_dims_[l];
        std::memcpy(out, v_[l].get() + p0 * v_dims_[l], static_cast<size_t>(n * v_dims_[l]) * sizeof(float));
        out += n * v_dims_[l];
    }
}

void KvCache::load_positions(int64_t p0, int64_t n, const void* src) {
    LF_ASSERT(p0 >= 0 && n >= 0 && p0 + n <= n_ctx_);
    const auto* in = static_cast<const float*>(src);
    for (size_t l = 0; l < k_.size(); ++l) {
        std::memcpy(k_[l].get() + p0 * k_dims_[l], in, static_cast<size_t>(n * k_dims_[l]) * sizeof(float));
        in += n * k_dims_[l];
        std::memcpy(v_[l].get() + p0 * v_dims_[l], in, static_cast<size_t>(n * v_dims_[l]) * sizeof(float));
        in += n * v_dims_[l];
    }
}

}  // namespace llmforge
