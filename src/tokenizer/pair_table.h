// Open-addressing hash table (left token id, right token id) -> Value, for the merge loops of
// both BPE tokenizers: they look up every adjacent pair of symbols, and std::unordered_map's
// division and node chains cost cache misses there. Linear probing, Fibonacci hashing, size a
// power of two kept at most half full; the first insertion of a pair wins.
//
// Thread safety: build once, then find() may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace llmforge {

template <typename Value>
class PairTable {
  public:
    // Empties the table and sizes it for up to `n` pairs.
    void reset(size_t n) {
        size_t cap = 16;
        while (cap < 2 * n) cap *= 2;
        slots_.assign(cap, Slot{kNoKey, Value{}});
        shift_ = 64;
        for (size_t c = cap; c > 1; c /= 2) --shift_;
    }

    // Stores `v` for (a, b) unless the pair is there already; a, b >= 0. At most the `n` given
    // to reset() pairs may be inserted.
    void insert(int32_t a, int32_t b, const Value& v) {
        const uint64_t key = pair_key(a, b);
        size_t i = slot(key);
        while (slots_[i].key != kNoKey && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
        if (slots_[i].key == kNoKey) slots_[i] = {key, v};
    }

    // The value of (a, b) (both >= 0), or nullptr.
    const Value* find(int32_t a, int32_t b) const {
        const uint64_t key = pair_key(a, b);
        for (size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
            const Slot& s = slots_[i];
            if (s.key == key) return &s.value;
            if (s.key == kNoKey) return nullptr;
        }
    }

  private:
    static constexpr uint64_t kNoKey = ~uint64_t{0};
    struct Slot {
        uint64_t key;  // pair_key(left, right), kNoKey for an empty slot
        Value value;
    };
    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    size_t slot(uint64_t key) const {
        return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
    }

    std::vector<Slot> slots_ = std::vector<Slot>(16, Slot{kNoKey, Value{}});
    int shift_ = 60;  // 64 - log2(slots_.size())
};

}  // namespace llmforge
