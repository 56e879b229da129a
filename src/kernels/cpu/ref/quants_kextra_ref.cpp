// Q2_K, Q3_K, Q5_K: reference kernels, and the K-quants' weight quantisers (weights_ref.h).
#include "core/error.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/weights_ref.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace ref {

// Placeholders until the importance-weighted search lands: plain rounding.
void quantize_weights_q2_k(const float*, void*, int64_t, const float*) { fail("q2_k: not implemented yet"); }
void quantize_weights_q3_k(const float*, void*, int64_t, const float*) { fail("q3_k: not implemented yet"); }
void quantize_weights_q4_k(const float* x, void* y, int64_t n, const float*) { quantize_row_q4_k(x, y, n); }
void quantize_weights_q5_k(const float*, void*, int64_t, const float*) { fail("q5_k: not implemented yet"); }
void quantize_weights_q6_k(const float* x, void* y, int64_t n, const float*) { quantize_row_q6_k(x, y, n); }

}  // namespace ref

void register_kextra_ref(KernelTable& t) {}

}  // namespace llmforge::kernels
