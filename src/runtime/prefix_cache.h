// Prefix cache: the K/V of whole 64-token prompt blocks, kept after their sequence ended, so a
// later prompt that starts with the same tokens copies them instead of recomputing them.
//
// A block is keyed by everything its K/V depend on: the model (ModelHandle::serial, never reused
// within a process), the adapter id, the KV memory's layout(), and every token from the start of
// the prompt to the block's end (hashed as a chain, so a block is only reused after the same
// prefix; the block's own tokens and the rest of the key are compared on lookup). Blocks of every
// model share one byte budget; the least recently used block goes first. The layout of a block is
// the KV memory's business: it is saved and restored through KvMemory::save_positions /
// load_positions.
//
// Thread safety: none; the scheduler's loop thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/kv_cache.h"

namespace llmforge {

class PrefixCache {
public:
    static constexpr int64_t kBlock = 64;

    explicit PrefixCache(size_t budget_bytes) : budget_(budget_bytes) {}
    PrefixCache(const PrefixCache&) = delete;
    PrefixCache& operator=(const PrefixCache&) = delete;

    // Copies the longest run of stored blocks that starts `prompt` (at most `limit` tokens) into
    // `cache` positions from `from` on (blocks before `from` are only checked: the cache holds
    // them already); returns the tokens now valid in the cache (>= from).
    int64_t restore(uint64_t model, const std::string& adapter, const std::vector<int32_t>& prompt, int64_t limit,
                    int64_t from, KvMemory& cache);
    // Stores the whole blocks among the first n_valid tokens (their K/V are in `cache`).
    void save(uint64_t model, const std::string& adapter, const std::vector<int32_t>& tokens, int64_t n_valid,
              const KvMemory& cache);
    // Drops the blocks of every model not in `keep` (the scheduler passes the models that still
    // exist: a freed model's blocks can never be asked for again).
    void forget_models_except(const std::vector<uint64_t>& keep);

    size_t bytes() const { return bytes_; }
    size_t blocks() const { return blocks_.size(); }

private:
    struct Block {
        uint64_t model;
        std::string adapter, layout;
        std::vector<int32_t> tokens;  // this block's kBlock tokens
        std::vector<uint8_t> kv;      // KvMemory::save_positions of its kBlock positions
        std::list<uint64_t>::iterator lru;
    };
    static uint64_t seed(uint64_t model, const std::string& adapter, const std::string& layout);
    const Block* find(uint64_t h, uint64_t model, const std::string& adapter, const std::string& layout,
                      const int32_t* tokens);
    void drop(std::unordered_map<uint64_t, Block>::iterator it);

    size_t budget_;
    size_t bytes_ = 0;
    std::unordered_map<uint64_t, Block> blocks_;
    std::list<uint64_t> lru_;  // front: most recent
};

}  // namespace llmforge
