// Weight quantisation of whole matrices (llmforge quantize, convert, init-model, QAT): llama.cpp's
// quantisers for every GGUF storage type, optionally weighted by an importance matrix.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace llmforge::kernels {

// Quantises nrows rows of n_per_row floats (row-major) into `type`, writing
// nrows * row_bytes(type, n_per_row) bytes to dst; returns that count. F32 copies, F16 / BF16
// round to nearest even. imatrix: one importance value per column (n_per_row floats) or null;
// types without an importance-weighted search ignore it. n_per_row must be a multiple of the
// type's block size (checked by the caller; asserted here). Thread-safe; callers split rows.
size_t quantize_weights(DType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                        const float* imatrix);

// True when quantize_weights() takes `type` (every storage type but the activation-only ones).
bool can_quantize_weights(DType type);

}  // namespace llmforge::kernels
