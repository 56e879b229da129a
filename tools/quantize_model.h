// Quantising a whole model to a GGUF file: the core of `llmforge quantize`, shared with
// `compress-report` (and the QAT / pruning experiments). Type choice per tensor follows
// llama.cpp's llama_tensor_get_type for the mixes (q4_k_m, q3_k_s, ...).
#pragma once

#include <string>

#include "core/dtype.h"
#include "runtime/imatrix.h"

namespace llmforge::cli {

struct QuantizeOptions {
    std::string type;               // "q4_k_m", "q8_0", "f16", ... (a storage type or a mix)
    const Imatrix* imatrix = nullptr;
    bool keep_output_f16 = false;   // output.weight (and a tied embedding used as it) stays f16
    bool allow_fallback = false;    // rows the type cannot take fall back instead of failing
    int n_threads = 0;              // 0: all cores
    bool progress = true;
};

struct QuantizeResult {
    size_t bytes_in = 0, bytes_out = 0;  // tensor data
    int64_t n_params = 0;
    double bits_per_weight = 0;          // of the written tensors, bytes_out * 8 / n_params
    double seconds = 0;
};

// Reads any model the engine loads (`in`: GGUF of any type, HF folder, llama2.c), writes `out`.
QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& opt);

}  // namespace llmforge::cli
