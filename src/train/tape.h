// Reverse-mode automatic differentiation over f32 buffers: a Tape records, for every op run in
// the forward pass, a closure that propagates its output gradient to its inputs; backward() runs
// them in reverse. Ops are coarse (a linear layer, RMSNorm, RoPE, a whole attention), each defined
// with its forward and backward side by side in ops.h, so a step is a few hundred closures, not
// millions of scalar nodes.
//
// Values live in buffers the tape hands out from its own free lists: a training step asks for the
// same sizes every time, so after the first step nothing is allocated (no page faults from fresh
// mmaps of multi-MB activations). reset() forgets the nodes and returns every buffer.
//
// Parameters are not owned by the tape: a Param keeps its value and gradient across steps, and
// gradients accumulate into Param::grad until the optimiser clears them (gradient accumulation).
//
// Precision (mixed precision is a property of the products, not of the storage): in kBF16 / kFP16
// the inputs of every weight product are rounded to bf16 / fp16 before the product, which sums
// in f32; gradients, master weights, optimiser state and every reduction stay f32. Storage is a
// separate choice: store_bf16 keeps the values a finished layer leaves for backward in bf16
// (half their bytes) and widens them back when backward reaches that layer (see there).
//
// Thread safety: a Tape belongs to one training thread; ops use its pool (not re-entrant).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <unordered_map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_bf16.h"

namespace llmforge::train {

enum class Precision { kFP32, kBF16, kFP16 };
Precision precision_from_name(const std::string& s);  // "fp32" | "bf16" | "fp16"; throws Error
const char* precision_name(Precision p);

// A 64-byte-aligned float array that owns its memory.
class FloatBuffer {
public:
    FloatBuffer() = default;
    explicit FloatBuffer(int64_t n, bool zero = true);
    float* data() { return p_.get(); }
    const float* data() const { return p_.get(); }
    int64_t size() const { return n_; }
    float& operator[](int64_t i) { return p_.get()[i]; }
    float operator[](int64_t i) const { return p_.get()[i]; }
    void zero();

private:
    struct Free {
        void operator()(float* p) const;
    };
    std::unique_ptr<float, Free> p_;
    int64_t n_ = 0;
};

// A model tensor under its GGUF name. Trainable: an f32 master value and its gradient (same
// shape), and the optimiser keeps state for it. Frozen (trainable = false): no master copy, no
// gradient, no optimiser state — the weight stays as its file stores it (`frozen`: any dtype,
// possibly a view of the memory-mapped file; 1-D parameters as f32), and gradients only flow
// through it to the activations.
struct Param {
    std::string name;
    std::vector<int64_t> shape;
    FloatBuffer value, grad;  // trainable only
    bool trainable = true;
    Tensor frozen;            // frozen only
    // Frozen only: the matrix packed for bf16 tile products, made by linear_frozen on first use.
    std::shared_ptr<struct FrozenPacks> packs;
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

// A value in the graph. Owned by the tape; valid until reset().
struct Node {
    std::vector<int64_t> shape;
    int64_t numel = 0;
    float* data = nullptr;
    float* grad = nullptr;  // allocated (zeroed) when first needed in backward
    bool requires_grad = false;
    Param* param = nullptr;  // leaf bound to a parameter (data/grad are the parameter's)
    // Kept whole through backward (its data and gradient are read after it): see Tape::backward.
    bool keep = false;
    size_t born = 0;  // closures recorded before it was made (Tape::backward frees by it)
    // Stored in bf16 by Tape::store_bf16 (data is null meanwhile): numel bf16 values.
    uint16_t* half = nullptr;
};
using Var = Node*;

class Tape {
public:
    explicit Tape(ThreadPool& pool) : pool_(pool) {}
    ~Tape();
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    ThreadPool& pool() { return pool_; }
    Precision precision = Precision::kFP32;
    // false: ops record no backward closures and keep nothing for them (evaluation).
    bool grad_enabled = true;
    // backward() frees nodes and buffers as soon as no closure left can read them (see there):
    // the training loop's setting. Off, everything lives until reset() (tests reading inputs'
    // gradients after backward).
    bool free_in_backward = false;

    // A leaf for a parameter: reads its value, accumulates into its grad. A frozen parameter's
    // leaf reads its f32 tensor and needs no gradient (frozen matrices in other dtypes go through
    // linear_frozen / embedding_frozen instead).
    Var param(Param& p);
    // A new node with uninitialised data; requires_grad when any input needs a gradient.
    Var make(std::vector<int64_t> shape, bool requires_grad);
    // Scratch floats that live until reset() (saved tensors of an op's backward).
    float* buffer(int64_t n);
    // A transient work area (slot 0..3) of at least n floats, reused by every op: valid only until
    // the next call with the same slot (ops use it inside one forward or one backward closure).
    float* scratch(int slot, int64_t n);
    // A bf16 pack of a weight for one product (train/ops.cpp, bf16 precision on AMX), its storage
    // reused by every product of every step.
    kernels::PackedBf16& pack_buffer() { return pack_; }
    // The node's gradient buffer, zeroed on first use.
    float* grad(Var v);
    // Records an op's backward (only call when grad_enabled and some input requires grad).
    void on_backward(std::function<void()> fn) { backward_.push_back(std::move(fn)); }

    // Saved activations in bf16. mark() names the nodes made from now on; store_bf16(mark, also,
    // live) then converts each of them, and `also`, to bf16 storage (rounded to nearest even) and
    // returns its f32 buffer at once, except `live`, parameters and kept nodes. It records a
    // closure that widens them back to f32 (exactly the stored values) when backward reaches it,
    // i.e. before any op recorded earlier, the only ones that can read them, runs its backward;
    // from there they are freed as any node. Forward must not read them after the call (their
    // data is null until backward widens them). For a finished layer: its input and everything it
    // made but its output (TrainModel::store_activations_bf16). Nothing happens without
    // grad_enabled. A node's values in forward are unchanged; backward reads them rounded.
    size_t mark() const { return nodes_.size(); }
    void store_bf16(size_t mark, Var also, Var live);
    // Bytes of activations currently stored as bf16 (tests, memory reports).
    size_t bf16_bytes() const { return bf16_bytes_; }
    // Every node made since reset(), in creation order (tests, memory reports).
    const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }

    // Seeds d(loss)/d(loss) = seed (a loss scale for fp16) and runs the recorded closures in reverse.
    // With free_in_backward it frees as it goes: a node (or buffer()) made while k closures were
    // recorded can be read only by closures k, k+1, … (it did not exist for the earlier ones), so
    // once closure k has run its data and gradient go back to the free list (the gradients of
    // upper layers are reused for the lower ones; activations shrink as backward descends). The
    // loss and nodes marked `keep` survive until reset().
    void backward(Var loss, float seed = 1.0f);
    // The seed of the running (or last) backward: ops whose backward adds the gradient of a term
    // of the loss that is not a node (the MoE balance loss, train/moe_ops.h) scale it by this.
    float loss_seed() const { return loss_seed_; }
    // Forgets every node and closure; buffers go back to the free lists for the next step.
    void reset();
    // Bytes held in buffers (in use + free), for memory reports.
    size_t bytes_held() const { return bytes_held_ + (sub_ ? sub_->bytes_held() : 0); }
    // A scratch tape on the same pool for activation checkpointing (kept for its buffers).
    Tape& sub();

private:
    float* take(int64_t n);
    void give_back(float* p);

    ThreadPool& pool_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::vector<std::function<void()>> backward_;
    std::vector<std::pair<size_t, float*>> buffers_;  // buffer() results with the closures before them
    std::unordered_map<float*, int64_t> in_use_;      // buffers handed out, with their sizes
    std::multimap<int64_t, float*> free_;
    size_t bytes_held_ = 0;
    size_t bf16_bytes_ = 0;
    std::unique_ptr<Tape> sub_;
    FloatBuffer scratch_[4];
    kernels::PackedBf16 pack_;
    float loss_seed_ = 1.0f;
};

// Whether an op's output needs a gradient: the tape records and some input requires one.
inline bool needs_grad(Tape& t, std::initializer_list<Var> in) {
    if (!t.grad_enabled) return false;
    for (Var v : in)
        if (v != nullptr && v->requires_grad) return true;
    return false;
}

// Rows of a (…, C) node (a vector is one row).
inline int64_t rows_of(Var v) { return v->shape.size() == 1 ? 1 : v->numel / v->shape.back(); }

// Rounds x to the nearest bf16 / fp16 value (round-to-nearest-even), kept in f32 storage.
void round_to_precision(Precision p, const float* x, float* y, int64_t n, ThreadPool& pool);

}  // namespace llmforge::train
