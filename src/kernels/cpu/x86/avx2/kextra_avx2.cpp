// AVX2 entries for Q2_K / Q3_K / Q5_K (x86/quant_kextra_impl.h).
#include "kernels/cpu/x86/avx2/avx2.h"
#include "kernels/cpu/x86/quant_kextra_impl.h"

namespace llmforge::kernels::avx2 {

void register_kextra(KernelTable& t) { x86::register_kextra_x86<x86::DotAvx2>(t); }

}  // namespace llmforge::kernels::avx2
