// Q4_1, Q5_0, Q5_1 (weights) and Q8_1 (their activations): reference kernels, and the legacy
// types' weight quantisers (weights_ref.h).
#include "core/error.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/weights_ref.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace ref {

// Placeholders until the importance-weighted search lands: plain rounding.
void quantize_weights_q8_0(const float* x, void* y, int64_t n, const float*) { quantize_row_q8_0(x, y, n); }
void quantize_weights_q4_0(const float* x, void* y, int64_t n, const float*) { quantize_row_q4_0(x, y, n); }
void quantize_weights_q4_1(const float*, void*, int64_t, const float*) { fail("q4_1: not implemented yet"); }
void quantize_weights_q5_0(const float*, void*, int64_t, const float*) { fail("q5_0: not implemented yet"); }
void quantize_weights_q5_1(const float*, void*, int64_t, const float*) { fail("q5_1: not implemented yet"); }

}  // namespace ref

void register_legacy_ref(KernelTable& t) {}

}  // namespace llmforge::kernels
