// KV memory: what a decoder remembers of the positions it has seen, one per sequence.
//
// KvMemory is the seam: the forward pass writes each new position's keys/values through it and
// attention reads them back; the scheduler's prefix cache saves and restores whole position
// ranges through it without knowing the layout. Today's one implementation is KvCache (f32 rows,
// exact); quantised rows, MLA latents or LSH buckets are further implementations of the same
// interface, chosen by the architecture (Model::new_memory).
//
// KvCache layout: k(layer) is (T, k_dim(layer)) row-major — position t, kv head g at
// k + t*k_dim + g*Dk; v(layer) likewise with v_dim. Layers may differ in width.
// Thread safety: none; a memory belongs to one sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace llmforge {

class KvCache;

class KvMemory {
public:
    virtual ~KvMemory() = default;
    virtual int64_t n_ctx() const = 0;
    virtual size_t bytes() const = 0;
    // A description of the layout; positions saved from one memory load only into a memory with
    // the same layout (the prefix cache keys its blocks by it).
    virtual std::string layout() const = 0;
    // Bytes that save_positions writes per position (all layers).
    virtual size_t bytes_per_position() const = 0;
    // Copies positions [p0, p0 + n) of every layer to dst (n * bytes_per_position() bytes) and
    // back. The positions must lie inside [0, n_ctx()).
    virtual void save_positions(int64_t p0, int64_t n, void* dst) const = 0;
    virtual void load_positions(int64_t p0, int64_t n, const void* src) = 0;
    // The f32-row view when this memory is one (the eager attention kernels read it directly).
    virtual KvCache* f32_rows() { return nullptr; }
};

class KvCache final : public KvMemory {
public:
    // Every layer n_head_kv x head_dim wide for K and n_head_kv x v_dim() for V.
    KvCache(const ModelConfig& cfg, int64_t n_ctx);
    // Per-layer widths: k_dims[l], v_dims[l] floats per position.
    KvCache(std::vector<int64_t> k_dims, std::vector<int64_t> v_dims, int64_t n_ctx);
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    int64_t n_ctx() const override { return n_ctx_; }
    int64_t n_layer() const { return static_cast<int64_t>(k_.size()); }
    int64_t k_dim(int64_t layer) const { return k_dims_[layer]; }
    int64_t v_dim(int64_t layer) const { return v_dims_[layer]; }
    float* k(int64_t layer) { return k_[layer].get(); }  // (T, k_dim(layer))
    float* v(int64_t layer) { return v_[layer].get(); }  // (T, v_dim(layer))
    const float* k(int64_t layer) const { return k_[layer].get(); }
    const float* v(int64_t layer) const { return v_[layer].get(); }
    size_t bytes() const override { return bytes_per_position() * static_cast<size_t>(n_ctx_); }
    std::string layout() const override;
    size_t bytes_per_position() const override;
    void save_positions(int64_t p0, int64_t n, void* dst) const override;
    void load_positions(int64_t p0, int64_t n, const void* src) override;
    KvCache* f32_rows() override { return this; }

private:
    int64_t n_ctx_;
    std::vector<int64_t> k_dims_, v_dims_;
    std::vector<std::shared_ptr<float>> k_, v_;
};

}  // namespace llmforge
