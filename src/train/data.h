// Token data for training: memory-mapped little-endian token files and the order batches read them.
//
// Sources: a raw token file `*.u16` / `*.u32`, or a folder written by `llmforge prepare`
// (meta.json + train-NNNNN.uXX / val-NNNNN.uXX shards; `split` picks train or val). Several shards
// read as one sequence. Every id is checked against the vocabulary size when the data is opened,
// so a bad id is one clear error before training starts, never a crash mid-run.
//
// Batch order. A row is T+1 consecutive tokens (inputs and targets shifted by one). Micro-batch k
// of a run (k counts every micro-batch of every step: k = step·grad_accum + a) has ranks·B rows;
// rank r takes rows r·B … r·B+B−1.
//  - no shuffle: row g of micro-batch k starts at token ((k·ranks·B + g) mod R)·T, R = ⌊(n−1)/T⌋;
//  - shuffle: row g starts at a position drawn from hash(seed, k, g) in [0, n−T−1].
// Both are pure functions of (seed, k, g): resuming at step s needs nothing but s.
//
// Thread safety: immutable after open; rows may be read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"

namespace llmforge::train {

class TokenData {
public:
    // Throws Error (naming the file) for a missing/unknown source, an odd-sized file, an empty
    // one, or a token id >= n_vocab (with its offset).
    static TokenData open(const std::string& path, const std::string& split, int64_t n_vocab);

    int64_t size() const { return n_; }
    const std::string& description() const { return desc_; }
    // tokens [start, start + n) as int32.
    void read(int64_t start, int64_t n, int32_t* out) const;

private:
    struct Shard {
        std::shared_ptr<FileMap> file;
        int64_t first = 0, n = 0;  // global index of its first token, token count
        int width = 2;             // bytes per token
    };
    std::vector<Shard> shards_;
    int64_t n_ = 0;
    std::string desc_;
};

struct BatchPlan {
    int64_t batch = 1;     // B: rows per rank
    int64_t seq = 256;     // T
    int ranks = 1, rank = 0;
    bool shuffle = true;
    uint64_t seed = 0;
};

// Fills inputs/targets (B, T) of micro-batch k for plan.rank. Throws Error when the data holds
// fewer than T+1 tokens.
void fill_batch(const TokenData& d, const BatchPlan& plan, int64_t k, int32_t* inputs, int32_t* targets);

}  // namespace llmforge::train
