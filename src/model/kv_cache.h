// KV memory: what a decoder remembers of the positions it has seen, one per sequence.
//
// KvMemory is the seam: the forward pass writes each new position's keys/values through it and
// attention reads them back; the scheduler's prefix cache saves and restores whole position
// ranges through it without knowing the layout. KvCache is the engine's implementation: rows of
// keys and values stored in a chosen element type each (KvTypes: f32 exact, the default; f16;
// q8_0 / q4_0 in blocks of 32 along each head, so a head's slice of a row is whole blocks). Rows
// are quantised once, when the forward writes them, and read by the attention kernels in their
// stored form (KernelTable::attention_kv); MLA latents would be a further implementation of
// the same interface, chosen by the architecture (Model::new_memory). With LSH attention a
// KvCache also keeps each position's key buckets and the per-bucket key lists (enable_lsh).
//
// KvCache layout: K of layer l is T rows of row_bytes(k_type, k_dim(l)) bytes — position t, kv
// head g at k_row(l, t) + g * row_bytes(k_type, Dk); V likewise with v_type and v_dim. Layers may
// differ in width. Thread safety: none; a memory belongs to one sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/lsh.h"

namespace llmforge {

class KvCache;

// The element types of a KV memory's keys and values (--cache-type-k / --cache-type-v).
struct KvTypes {
    DType k = DType::F32, v = DType::F32;
    bool operator==(const KvTypes& o) const { return k == o.k && v == o.v; }
    bool is_f32() const { return k == DType::F32 && v == DType::F32; }
};
// The types a KV cache can hold: f32, f16, q8_0, q4_0.
bool kv_type_supported(DType t);
// Parses a --cache-type-k / --cache-type-v value (case-insensitive); throws one line naming
// `flag` and the accepted values.
DType parse_kv_type(const std::string& s, const char* flag);
// "k=q8_0 v=f16"
std::string kv_types_name(const KvTypes& t);
// Throws one line (naming `flag`) unless t is a cache type whose blocks tile a `side` head of
// `head` values.
void kv_check_head(DType t, int64_t head, const char* side, const char* flag);

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
    // The row view when this memory is a KvCache (the eager attention reads it directly).
    virtual KvCache* rows() { return nullptr; }
    // The same when its rows are f32 keys and values.
    KvCache* f32_rows();
};

class KvCache final : public KvMemory {
public:
    // Every layer n_head_kv x head_dim wide for K and n_head_kv x v_dim() for V. A quantised type
    // needs the head size (head_dim for K, head_dim_v for V) to be a multiple of its block (32):
    // throws Error (one line, with a hint) otherwise; so does a type a cache cannot hold.
    KvCache(const ModelConfig& cfg, int64_t n_ctx, KvTypes types = {});
    // Per-layer widths: k_dims[l], v_dims[l] elements per position (multiples of the types' blocks).
    KvCache(std::vector<int64_t> k_dims, std::vector<int64_t> v_dims, int64_t n_ctx, KvTypes types = {});
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    int64_t n_ctx() const override { return n_ctx_; }
    int64_t n_layer() const { return static_cast<int64_t>(k_.size()); }
    int64_t k_dim(int64_t layer) const { return k_dims_[layer]; }
    int64_t v_dim(int64_t layer) const { return v_dims_[layer]; }
    const KvTypes& types() const { return types_; }
    // Bytes of one position's K (V) row in a layer.
    size_t k_row_bytes(int64_t layer) const { return k_row_[layer]; }
    size_t v_row_bytes(int64_t layer) const { return v_row_[layer]; }
    uint8_t* k_row(int64_t layer, int64_t pos) { return k_[layer].get() + static_cast<size_t>(pos) * k_row_[layer]; }
    uint8_t* v_row(int64_t layer, int64_t pos) { return v_[layer].get() + static_cast<size_t>(pos) * v_row_[layer]; }
    const uint8_t* k_row(int64_t layer, int64_t pos) const {
        return k_[layer].get() + static_cast<size_t>(pos) * k_row_[layer];
    }
    const uint8_t* v_row(int64_t layer, int64_t pos) const {
        return v_[layer].get() + static_cast<size_t>(pos) * v_row_[layer];
    }
    // f32 views (only when that side's type is f32): (T, k_dim(layer)) / (T, v_dim(layer)).
    float* k(int64_t layer);
    float* v(int64_t layer);
    const float* k(int64_t layer) const;
    const float* v(int64_t layer) const;
    size_t bytes() const override { return bytes_per_position() * static_cast<size_t>(n_ctx_); }
    std::string layout() const override;
    size_t bytes_per_position() const override;
    void save_positions(int64_t p0, int64_t n, void* dst) const override;
    void load_positions(int64_t p0, int64_t n, const void* src) override;
    KvCache* rows() override { return this; }

    // LSH attention (model/lsh.h): with it, each position also keeps its keys' buckets (per kv
    // head and hash round), saved and loaded with its rows, and each (layer, kv head) an
    // LshIndex over them (the per-bucket key lists decode reads). enable_lsh is called once, on
    // an empty cache, by Model::new_memory for a model with LSH attention.
    void enable_lsh(const LshSpec& spec, int64_t n_head_kv);
    bool has_lsh() const { return lsh_rounds_ > 0; }
    // Position pos's key buckets in a layer: (n_head_kv, n_hashes) int32.
    int32_t* lsh_buckets(int64_t layer, int64_t pos) {
        return lsh_b_[layer].data() + static_cast<size_t>(pos * lsh_heads_ * lsh_rounds_);
    }
    // The index of (layer, kv head) over positions [0, upto] after the forward wrote positions
    // >= from (what it held there before is dropped). Different (layer, kv head) pairs may be
    // brought up to date from different threads at once.
    const LshIndex& lsh_index(int64_t layer, int64_t kv_head, int64_t from, int64_t upto);
    // The same as it stands (after the forward brought it up to date).
    const LshIndex& lsh_index(int64_t layer, int64_t kv_head) const {
        return lsh_idx_[static_cast<size_t>(layer * lsh_heads_ + kv_head)];
    }

private:
    size_t lsh_row_bytes() const { return static_cast<size_t>(lsh_heads_ * lsh_rounds_) * sizeof(int32_t); }
    static std::vector<int64_t> checked_k_dims(const ModelConfig& cfg, const KvTypes& types);

    int64_t n_ctx_;
    KvTypes types_;
    std::vector<int64_t> k_dims_, v_dims_;
    std::vector<size_t> k_row_, v_row_;
    std::vector<std::shared_ptr<uint8_t>> k_, v_;
    int64_t lsh_heads_ = 0, lsh_rounds_ = 0, lsh_n_buckets_ = 0;
    uint64_t lsh_seed_ = 0;
    std::vector<std::vector<int32_t>> lsh_b_;  // per layer (n_ctx, heads, rounds)
    std::vector<LshIndex> lsh_idx_;            // (layer, kv head)
};

}  // namespace llmforge
