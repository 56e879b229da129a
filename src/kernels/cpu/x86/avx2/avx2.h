// Internal to x86/avx2/: each translation unit registers the AVX2 kernels it defines.
#pragma once

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels::avx2 {

void register_quant(KernelTable& t);  // quant_avx2.cpp: Q8_0/Q8_K/F16/BF16 (de)quantise, quantised dots
void register_float(KernelTable& t);  // float_avx2.cpp: F32/F16/BF16 dots and tiles
void register_ops(KernelTable& t);
void register_legacy(KernelTable& t);  // legacy_avx2.cpp: Q4_1 / Q5_0 / Q5_1 dots and tiles, Q8_1
void register_kextra(KernelTable& t);  // kextra_avx2.cpp: Q2_K / Q3_K / Q5_K dots and tiles    // ops_avx2.cpp: rmsnorm, softmax, swiglu, axpy, add, rope, attention

}  // namespace llmforge::kernels::avx2
