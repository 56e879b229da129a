#include "runtime/prefix_cache.h"

#include <algorithm>

namespace llmforge {

namespace {

constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t mix_bytes(uint64_t h, const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * kFnvPrime;
    return h;
}

uint64_t chain(uint64_t h, const int32_t* t, int64_t n) {
    for (int64_t i = 0; i < n; ++i) h = (h ^ static_cast<uint32_t>(t[i])) * kFnvPrime;
    return h;
}

}  // namespace

uint64_t PrefixCache::seed(uint64_t model, const std::string& adapter, const std::string& layout) {
    uint64_t h = mix_bytes(0xcbf29ce484222325ull, &model, sizeof model);
    h = mix_bytes(h, adapter.data(), adapter.size());
    h = mix_bytes(h ^ 0xff, layout.data(), layout.size());  // 0xff: "ab"+"c" and "a"+"bc" differ
    return h;
}

const PrefixCache::Block* PrefixCache::find(uint64_t h, uint64_t model, const std::string& adapter,
                                            const std::string& layout, const int32_t* tokens) {
    auto it = blocks_.find(h);
    if (it == blocks_.end()) return nullptr;
    const Block& b = it->second;
    if (b.model != model || b.adapter != adapter || b.layout != layout ||
        !std::equal(b.tokens.begin(), b.tokens.end(), tokens)) {
        return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, b.lru);
    return &b;
}

void PrefixCache::drop(std::unordered_map<uint64_t, Block>::iterator it) {
    bytes_ -= it->second.kv.size();
    lru_.erase(it->second.lru);
    blocks_.erase(it);
}

int64_t PrefixCache::restore(uint64_t model, const std::string& adapter, const std::vector<int32_t>& prompt,
                             int64_t limit, int64_t from, KvMemory& cache) {
    const std::string layout = cache.layout();
    uint64_t h = seed(model, adapter, layout);
    int64_t n = 0;
    while (n + kBlock <= limit) {
        h = chain(h, prompt.data() + n, kBlock);
        const Block* b = find(h, model, adapter, layout, prompt.data() + n);
        if (b == nullptr) break;
        if (n + kBlock > from) cache.load_positions(n, kBlock, b->kv.data());
        n += kBlock;
    }
    return std::max(n, from);
}

void PrefixCache::save(uint64_t model, const std::string& adapter, const std::vector<int32_t>& tokens, int64_t n_valid,
                       const KvMemory& cache) {
    const size_t block_bytes = kBlock * cache.bytes_per_position();
    if (block_bytes > budget_) return;
    const std::string layout = cache.layout();
    uint64_t h = seed(model, adapter, layout);
    for (int64_t n = 0; n + kBlock <= n_valid; n += kBlock) {
        h = chain(h, tokens.data() + n, kBlock);
        if (blocks_.count(h) != 0) {  // stored already (or, very rarely, another key's hash: keep that one)
            find(h, model, adapter, layout, tokens.data() + n);
            continue;
        }
        while (bytes_ + block_bytes > budget_ && !lru_.empty()) drop(blocks_.find(lru_.back()));
        Block b;
        b.model = model;
        b.adapter = adapter;
        b.layout = layout;
        b.tokens.assign(tokens.begin() + n, tokens.begin() + n + kBlock);
        b.kv.resize(block_bytes);
        cache.save_positions(n, kBlock, b.kv.data());
        lru_.push_front(h);
        b.lru = lru_.begin();
        blocks_.emplace(h, std::move(b));
        bytes_ += block_bytes;
    }
}

void PrefixCache::forget_models_except(const std::vector<uint64_t>& keep) {
    for (auto it = blocks_.begin(); it != blocks_.end();) {
        auto next = std::next(it);
        if (std::find(keep.begin(), keep.end(), it->second.model) == keep.end()) drop(it);
        it = next;
    }
}

}  // namespace llmforge
