// Quantisation-aware training (`llmforge train --qat q8_0|q4_0|q4_k [--qat-act int8]`): the
// forward reads each quantised matrix as the file will hold it, q(w) = dequant(quant(w)), while
// the optimiser updates the f32 master w with the gradient of q(w) (straight-through estimator:
// dL/dw := dL/dq(w)), so the weights learn to sit well on the quantisation grid and quantising
// the trained masters afterwards (`llmforge quantize --type T`) gives exactly what training saw.
//
// Exact rounding: q(w) is made by kernels::quantize_weights (no importance matrix: the rounding
// `quantize` applies without --imatrix) and the kernel table's dequantize_row, so the values the
// forward used are the values of the quantised file, bit for bit.
//
// Which tensors (qat_tensor_type): the types llama.cpp's `llama-quantize` (and `llmforge quantize`)
// give a model for the requested type:
//  * every per-layer matrix (the attention and feed-forward linears of every block) → T;
//  * token_embd.weight → T (its rows are looked up dequantised; the lookup reads q(w) too);
//  * output.weight → q6_k for q4_0 / q4_k (q8_0 when its rows are not a multiple of 256, as the
//    quantisers fall back), q8_0 for q8_0; a tied embedding is the output too and takes the
//    output's type (llama.cpp quantises a tied token_embd as the output);
//  * vectors (norm gains, biases) stay f32.
// A per-layer or embedding matrix whose rows are not a multiple of T's block is an error (no
// silent fallback: the file would not hold what training saw).
//
// Refresh: the fake-quantised copies are rebuilt from the masters once per optimiser step (after
// the update; `refresh()`), not per micro-batch: every micro-batch of a step sees the same weights,
// and a resumed run rebuilds them from the checkpoint's masters, so resume stays bit-identical.
//
// Activations (--qat-act int8): every linear's input rows are fake-quantised to int8 with one
// absmax scale per row (token), y = round(x·127/amax)·amax/127, straight-through in backward
// (dL/dx := dL/dy). This simulates an int8 per-token activation path; llama.cpp's own q8_0 / q8_K
// activation quantisation (per 32 / 256 values) is finer than this.
//
// Thread safety: one training thread; refresh() splits rows over the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "train/tape.h"

namespace llmforge::train {

class TrainModel;

struct QatConfig {
    DType weights = DType::F32;  // F32: no weight fake quantisation; else Q8_0, Q4_0 or Q4_K
    bool act_int8 = false;       // per-token int8 activations at every linear's input
    bool enabled() const { return weights != DType::F32 || act_int8; }
};

// From the flags: --qat none|q8_0|q4_0|q4_k, --qat-act none|int8. Throws Error (one line) otherwise.
QatConfig qat_config(const std::string& qat, const std::string& qat_act);
// "none", "q8_0", "q4_0", "q4_k".
std::string qat_name(DType weights);

// The type the tensor `name` (GGUF name, shape (rows, cols)) is fake-quantised to under
// --qat `requested` (see above); F32: not quantised. per_layer: a block tensor. tied: the
// model's output reuses token_embd.weight. Throws Error when a block / embedding matrix's rows
// cannot take the type.
DType qat_tensor_type(const std::string& name, const std::vector<int64_t>& shape, bool per_layer, bool tied,
                      DType requested);

// out (rows, cols) = dequant(quant(w)) with `type`'s quantiser (kernels::quantize_weights, no
// importance matrix) and the kernel table's dequantiser; rows split over the pool when given.
void fake_quantize(DType type, const float* w, float* out, int64_t rows, int64_t cols, ThreadPool* pool = nullptr);

// y (rows, cols) = per-row absmax int8 fake quantisation of x (y may alias x): scale = amax/127,
// y = round(x/scale)·scale (round half away from zero, as q8_0); an all-zero row stays zero.
void fake_quantize_rows_int8(const float* x, float* y, int64_t rows, int64_t cols);

// The tape op: a new node y = fake_quantize_rows_int8(x); backward passes dL/dy to x unchanged.
Var fake_quant_act_int8(Tape& t, Var x);

// QAT state over a TrainModel's trainable parameters: one fake-quantised copy per quantised
// matrix, plugged into the model's weight_values / linear_input seams (train_model.h) while it
// lives (the destructor unplugs them).
class Qat {
public:
    // Checks every tensor can take its type (throws Error otherwise); refresh() must run before
    // the first forward. Frozen parameters (PEFT) cannot be quantisation-aware-trained: error.
    Qat(TrainModel& m, QatConfig c);
    ~Qat();
    Qat(const Qat&) = delete;
    Qat& operator=(const Qat&) = delete;

    // Rebuilds every fake-quantised copy from the current masters (after each optimiser step).
    void refresh(ThreadPool& pool);
    // The values the forward reads for p (its fake-quantised copy), or null when p is not
    // quantised. Writable for tests (finite differences in the quantised values).
    float* values(const Param& p);
    // The type p is fake-quantised to (F32: none).
    DType type_of(const Param& p) const;
    const QatConfig& config() const { return cfg_; }
    // Quantised matrices and their values (for the start-up line).
    int n_tensors() const { return static_cast<int>(q_.size()); }
    int64_t n_values() const;

private:
    struct Entry {
        DType type;
        FloatBuffer values;
    };
    TrainModel& m_;
    QatConfig cfg_;
    std::unordered_map<const Param*, Entry> q_;
};

}  // namespace llmforge::train
