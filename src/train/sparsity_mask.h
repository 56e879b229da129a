// `llmforge train --keep-sparsity`: recovery fine-tuning of a pruned model (llmforge prune) that
// keeps its zeros. The mask of each trainable matrix (parameters of 2+ dimensions) is where its
// initial weights are exactly 0; every step those entries' gradients are zeroed before clipping
// and the update (so the global norm and AdamW's moments see only the live weights, and m = v = 0
// there for ever), and the weights are set back to exactly 0 after the update (so nothing — weight
// decay, a future optimiser, rounding — can ever make them nonzero).
//
// Resume: the mask is rebuilt from the run's initial --model file (saved in the run's args), not
// from the resumed masters, so that a weight that reached exactly 0.0 by training does not join
// the mask; check_resumed() verifies that the masters are 0 wherever the mask says (else the model
// file changed since the run started).
//
// Thread safety: one training thread; the calls use the pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "train/tape.h"

namespace llmforge::train {

class SparsityMask {
public:
    // The zeros of `initial`'s matrices, for the parameters `params` (matched by name and shape:
    // `initial` may be `params` itself, or the same model opened again from its file).
    SparsityMask(const std::vector<Param*>& params, const std::vector<Param*>& initial, const std::string& source);

    // Gradients of masked entries set to 0.
    void mask_grads(ThreadPool& pool) const;
    // Masked weights set to exactly 0.
    void mask_weights(ThreadPool& pool) const;
    // Throws Error when a masked entry of the (resumed) masters is not 0.
    void check_resumed(const std::string& ckpt) const;

    int n_tensors() const { return static_cast<int>(entries_.size()); }
    int64_t n_masked() const { return n_masked_; }  // zeros kept
    int64_t n_values() const { return n_values_; }  // values of the masked matrices

private:
    struct Entry {
        Param* p;
        std::vector<uint64_t> bits;  // bit i of word w: entry 64w + i is masked
    };
    void apply(ThreadPool& pool, bool grads) const;
    std::vector<Entry> entries_;
    int64_t n_masked_ = 0, n_values_ = 0;
};

}  // namespace llmforge::train
