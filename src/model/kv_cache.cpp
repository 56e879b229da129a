#include "model/kv_cache.h"

#include <cctype>
#include <cstring>

#include "core/error.h"
#include "core/tensor.h"

namespace llmforge {

bool kv_type_supported(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::Q8_0 || t == DType::Q4_0;
}

DType parse_kv_type(const std::string& s, const char* flag) {
    std::string l;
    for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0}) {
        if (l == dtype_name(t)) return t;
    }
    fail("%s '%s': not a KV cache type (expected f32, f16, q8_0 or q4_0)", flag, s.c_str());
}

std::string kv_types_name(const KvTypes& t) {
    return std::string("k=") + dtype_name(t.k) + " v=" + dtype_name(t.v);
}

KvCache* KvMemory::f32_rows() {
    KvCache* c = rows();
    return c != nullptr && c->types().is_f32() ? c : nullptr;
}

// A quantised type stores each head's slice of a row as whole blocks, so attention can read one
// head without touching its neighbours' blocks.
void kv_check_head(DType t, int64_t head, const char* side, const char* flag) {
    if (!kv_type_supported(t)) {
        fail("%s %s: not a KV cache type (expected f32, f16, q8_0 or q4_0)", flag, dtype_name(t));
    }
    const int block = dtype_info(t).block_size;
    if (head % block != 0) {
        fail("%s %s: the model's %s heads are %lld wide, expected a multiple of the %s block (%d) (hint: %s f16 or "
             "f32)", flag, dtype_name(t), side, (long long)head, dtype_name(t), block, flag);
    }
}

// Keys are checked first, so a cache with both types wrong names --cache-type-k.
std::vector<int64_t> KvCache::checked_k_dims(const ModelConfig& cfg, const KvTypes& types) {
    kv_check_head(types.k, cfg.head_dim, "key", "--cache-type-k");
    kv_check_head(types.v, cfg.v_dim(), "value", "--cache-type-v");
    return std::vector<int64_t>(cfg.n_layer, cfg.n_head_kv * cfg.head_dim);
}

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx, KvTypes types)
    : KvCache(checked_k_dims(cfg, types), std::vector<int64_t>(cfg.n_layer, cfg.n_head_kv * cfg.v_dim()), n_ctx,
              types) {}

KvCache::KvCache(std::vector<int64_t> k_dims, std::vector<int64_t> v_dims, int64_t n_ctx, KvTypes types)
    : n_ctx_(n_ctx), types_(types), k_dims_(std::move(k_dims)), v_dims_(std::move(v_dims)) {
    LF_ASSERT(k_dims_.size() == v_dims_.size() && n_ctx_ >= 0);
    LF_ASSERT(kv_type_supported(types_.k) && kv_type_supported(types_.v));
    const int kb = dtype_info(types_.k).block_size, vb = dtype_info(types_.v).block_size;
    for (size_t l = 0; l < k_dims_.size(); ++l) {
        LF_ASSERT(k_dims_[l] % kb == 0 && v_dims_[l] % vb == 0);
        k_row_.push_back(row_bytes(types_.k, k_dims_[l]));
        v_row_.push_back(row_bytes(types_.v, v_dims_[l]));
        k_.push_back(alloc_aligned(static_cast<size_t>(n_ctx_) * k_row_[l]));
        v_.push_back(alloc_aligned(static_cast<size_t>(n_ctx_) * v_row_[l]));
    }
}

float* KvCache::k(int64_t layer) {
    LF_ASSERT(types_.k == DType::F32);
    return reinterpret_cast<float*>(k_[layer].get());
}
float* KvCache::v(int64_t layer) {
    LF_ASSERT(types_.v == DType::F32);
    return reinterpret_cast<float*>(v_[layer].get());
}
const float* KvCache::k(int64_t layer) const {
    LF_ASSERT(types_.k == DType::F32);
    return reinterpret_cast<const float*>(k_[layer].get());
}
const float* KvCache::v(int64_t layer) const {
    LF_ASSERT(types_.v == DType::F32);
    return reinterpret_cast<const float*>(v_[layer].get());
}

void KvCache::enable_lsh(const LshSpec& spec, int64_t n_head_kv) {
    LF_ASSERT(n_head_kv > 0 && spec.n_hashes > 0 && lsh_rounds_ == 0);
    lsh_heads_ = n_head_kv;
    lsh_rounds_ = spec.n_hashes;
    lsh_n_buckets_ = spec.n_buckets;
    lsh_seed_ = spec.seed;
    lsh_b_.assign(k_.size(), std::vector<int32_t>(static_cast<size_t>(n_ctx_ * n_head_kv * spec.n_hashes), 0));
    lsh_idx_.assign(k_.size() * static_cast<size_t>(n_head_kv), LshIndex(spec.n_hashes, spec.n_buckets));
}

const LshIndex& KvCache::lsh_index(int64_t layer, int64_t g, int64_t from, int64_t upto) {
    LF_ASSERT(has_lsh() && g < lsh_heads_ && from >= 0 && upto < n_ctx_);
    LshIndex& idx = lsh_idx_[static_cast<size_t>(layer * lsh_heads_ + g)];
    idx.truncate(from);
    const int32_t* b = lsh_b_[layer].data();
    for (int64_t p = idx.positions(); p <= upto; ++p) idx.add(p, b + (p * lsh_heads_ + g) * lsh_rounds_);
    return idx;
}

std::string KvCache::layout() const {
    // f32 keeps its historic name; other types say theirs (the prefix cache must never hand
    // q8_0 bytes to an f16 memory).
    std::string s = "f32-rows";
    if (!types_.is_f32()) {
        s = "rows-";
        s += dtype_name(types_.k);
        s += '-';
        s += dtype_name(types_.v);
    }
    for (size_t l = 0; l < k_dims_.size(); ++l) {
        s += ':';
        s += std::to_string(k_dims_[l]);
        s += '/';
        s += std::to_string(v_dims_[l]);
    }
    // Stored buckets depend on the hash family only (window and dense_below are read-time rules).
    if (has_lsh())
        s += ":lsh" + std::to_string(lsh_n_buckets_) + "x" + std::to_string(lsh_rounds_) + "@" + std::to_string(lsh_seed_);
    return s;
}

size_t KvCache::bytes_per_position() const {
    size_t n = 0;
    for (size_t l = 0; l < k_dims_.size(); ++l) n += k_row_[l] + v_row_[l] + lsh_row_bytes();
    return n;
}

// Block layout: per layer, the n K rows then the n V rows, in their stored bytes, then (LSH) the
// n positions' key buckets.
void KvCache::save_positions(int64_t p0, int64_t n, void* dst) const {
    LF_ASSERT(p0 >= 0 && n >= 0 && p0 + n <= n_ctx_);
    auto* out = static_cast<uint8_t*>(dst);
    for (size_t l = 0; l < k_.size(); ++l) {
        const size_t kb = static_cast<size_t>(n) * k_row_[l], vb = static_cast<size_t>(n) * v_row_[l];
        std::memcpy(out, k_row(static_cast<int64_t>(l), p0), kb);
        out += kb;
        std::memcpy(out, v_row(static_cast<int64_t>(l), p0), vb);
        out += vb;
        const size_t bb = static_cast<size_t>(n) * lsh_row_bytes();
        if (bb > 0) std::memcpy(out, lsh_b_[l].data() + p0 * lsh_heads_ * lsh_rounds_, bb);
        out += bb;
    }
}

void KvCache::load_positions(int64_t p0, int64_t n, const void* src) {
    LF_ASSERT(p0 >= 0 && n >= 0 && p0 + n <= n_ctx_);
    const auto* in = static_cast<const uint8_t*>(src);
    for (size_t l = 0; l < k_.size(); ++l) {
        const size_t kb = static_cast<size_t>(n) * k_row_[l], vb = static_cast<size_t>(n) * v_row_[l];
        std::memcpy(k_row(static_cast<int64_t>(l), p0), in, kb);
        in += kb;
        std::memcpy(v_row(static_cast<int64_t>(l), p0), in, vb);
        in += vb;
        const size_t bb = static_cast<size_t>(n) * lsh_row_bytes();
        if (bb > 0) std::memcpy(lsh_b_[l].data() + p0 * lsh_heads_ * lsh_rounds_, in, bb);
        in += bb;
    }
    // The indices are rebuilt from the stored buckets from p0 on when next read.
    for (int64_t l = 0; l < n_layer() && has_lsh(); ++l)
        for (int64_t g = 0; g < lsh_heads_; ++g) lsh_idx_[static_cast<size_t>(l * lsh_heads_ + g)].truncate(p0);
}

}  // namespace llmforge
