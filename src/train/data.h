// Token data for training: memory-mapped little-endian token files and the order batches read them.
//
// Sources: a raw token file `*.u16` / `*.u32`, or a folder written by `llmforge prepare`
// (meta.json + train-NNNNN.uXX / val-NNNNN.uXX shards; `split` picks train or val). Several shards
// read as one sequence. Every id is checked against the vocabulary size when the data is opened,
// so a bad id is one clear error before training starts, never a crash mid-run.
//
// Plain data. A row is T+1 consecutive tokens (inputs and targets shifted by one). Micro-batch k
// of a run (k counts every micro-batch of every step: k = step·grad_accum + a) has ranks·B rows;
// rank r takes rows r·B … r·B+B−1.
//  - no shuffle: row g of micro-batch k starts at token ((k·ranks·B + g) mod R)·T, R = ⌊(n−1)/T⌋;
//  - shuffle: row g starts at a position drawn from hash(seed, k, g) in [0, n−T−1].
// Both are pure functions of (seed, k, g): resuming at step s needs nothing but s.
//
// SFT data (`prepare --chat`; meta.json "sft": true). Beside each token shard a mask shard
// (`train-NNNNN.mask`, listed in meta.json "train_masks" / "val_masks", one byte per token of the
// shard of the same index): bit 0 = the token is counted by the loss (assistant content and its
// end-of-turn token), bit 1 = the token starts a dialogue; the other bits are 0. A row is a packing
// of whole dialogues: dialogues in file order are put greedily into rows of T+1 tokens (the next
// dialogue opens a new row when it does not fit), a dialogue longer than T+1 tokens is cut to T+1
// (counted once per T and said on stderr), and the rest of a row is padding (meta.json "eos_id").
// In a row: targets[t] = row[t+1] when token t+1 is counted and in t's dialogue, else -1 (prompt
// tokens, padding, dialogue boundaries); doc_start[t] = index in the row of the first token of t's
// dialogue (padding is one more "dialogue"), so attention(..., doc_start) keeps dialogues apart and
// a dialogue's positions are t − doc_start[t]. Row order over the R packed rows:
//  - no shuffle: row g of micro-batch k is packed row (k·ranks·B + g) mod R;
//  - shuffle: packed row hash(seed, k, g) mod R (the same hash as plain data).
// The packing depends only on the data and T (computed once per T, cached), so rows are again pure
// functions of (seed, k, g).
//
// Thread safety: immutable after open (the packing cache is internally locked); rows may be read
// from any thread.
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
    // one, or a token id >= n_vocab (with its offset). split "val" of a prepare folder with no
    // validation split (prepared with --val-fraction 0) reads the whole folder: it is then
    // validation data as a whole (train --val-data).
    static TokenData open(const std::string& path, const std::string& split, int64_t n_vocab);

    int64_t size() const { return n_; }
    const std::string& description() const { return desc_; }
    // tokens [start, start + n) as int32.
    void read(int64_t start, int64_t n, int32_t* out) const;

    // SFT data (a `prepare --chat` folder): rows are packed dialogues with loss masks.
    bool sft() const { return sft_; }
    // SFT only: dialogues, tokens the loss counts, the padding id.
    int64_t dialogues() const { return sft_ ? static_cast<int64_t>(dialogue_start_.size()) - 1 : 0; }
    int64_t counted_tokens() const { return counted_; }
    int32_t pad_id() const { return pad_id_; }
    // SFT only: mask bytes of tokens [start, start + n) (kMaskCounted | kMaskDialogueStart).
    void read_mask(int64_t start, int64_t n, uint8_t* out) const;
    static constexpr uint8_t kMaskCounted = 1, kMaskDialogueStart = 2;

    // SFT only: the packing of the dialogues into rows of T+1 tokens, computed on first use for
    // each T and cached (the first call also says on stderr how many dialogues were cut).
    struct Packing {
        int64_t seq = 0;                 // T
        std::vector<int64_t> row_first;  // (R+1): row r holds dialogues row_first[r] .. row_first[r+1]-1
        int64_t truncated = 0;           // dialogues longer than T+1 tokens, cut to T+1
        int64_t rows() const { return static_cast<int64_t>(row_first.size()) - 1; }
    };
    std::shared_ptr<const Packing> packing(int64_t T) const;
    // SFT only: the first token of dialogue i and its length.
    int64_t dialogue_start(int64_t i) const { return dialogue_start_[static_cast<size_t>(i)]; }
    int64_t dialogue_size(int64_t i) const {
        return dialogue_start_[static_cast<size_t>(i) + 1] - dialogue_start_[static_cast<size_t>(i)];
    }

private:
    struct Shard {
        std::shared_ptr<FileMap> file;
        std::shared_ptr<FileMap> mask;  // SFT: one byte per token
        int64_t first = 0, n = 0;  // global index of its first token, token count
        int width = 2;             // bytes per token
    };
    size_t shard_of(int64_t g) const;
    struct PackCache;
    std::vector<Shard> shards_;
    int64_t n_ = 0;
    std::string desc_;
    bool sft_ = false;
    std::vector<int64_t> dialogue_start_;  // SFT: (dialogues + 1) token indices, last = n_
    int64_t counted_ = 0;
    int32_t pad_id_ = 0;
    std::shared_ptr<PackCache> cache_;
};

struct BatchPlan {
    int64_t batch = 1;     // B: rows per rank
    int64_t seq = 256;     // T
    int ranks = 1, rank = 0;
    bool shuffle = true;
    uint64_t seed = 0;
};

// Fills inputs/targets (B, T) of micro-batch k for plan.rank, and doc_start (B, T) when non-null
// (plain data: all 0; SFT data: see above). Targets are -1 where the loss must not count (SFT
// only; cross_entropy ignores them). Throws Error when plain data holds fewer than T+1 tokens.
void fill_batch(const TokenData& d, const BatchPlan& plan, int64_t k, int32_t* inputs, int32_t* targets,
                int32_t* doc_start = nullptr);

}  // namespace llmforge::train
