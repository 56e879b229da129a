// Weight quantisers (llmforge quantize, convert, QAT): llama.cpp's algorithms for each GGUF type,
// one row of n elements at a time (n a multiple of the type's block size). `imatrix` is the
// importance of each of the row's n columns (an importance matrix's entry for this tensor) or
// null; with it the rounding error is weighted by it, as llama.cpp's quantize_<type> does.
// Scalar on purpose: quantisation is offline and split over rows by the caller.
// Thread-safe: pure on their arguments.
#pragma once

#include <cstdint>

namespace llmforge::kernels::ref {

// quants_legacy_ref.cpp
void quantize_weights_q8_0(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q4_0(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q4_1(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q5_0(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q5_1(const float* x, void* y, int64_t n, const float* imatrix);
// quants_kextra_ref.cpp
void quantize_weights_q2_k(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q3_k(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q4_k(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q5_k(const float* x, void* y, int64_t n, const float* imatrix);
void quantize_weights_q6_k(const float* x, void* y, int64_t n, const float* imatrix);

}  // namespace llmforge::kernels::ref
