// AVX2 entries for Q4_1 / Q5_0 / Q5_1 / Q8_1 (x86/quant_legacy_impl.h).
#include "kernels/cpu/x86/avx2/avx2.h"
#include "kernels/cpu/x86/quant_legacy_impl.h"

namespace llmforge::kernels::avx2 {

void register_legacy(KernelTable& t) { x86::register_legacy_x86<x86::DotAvx2>(t); }

}  // namespace llmforge::kernels::avx2
