// Internal to the kernels layer: how dispatch.cpp builds the per-ISA tables. Each ISA folder
// provides one fill function that starts from the table it is given (already holding the ref/
// entries, and for AVX-512 the AVX2 ones) and overrides the entries it implements.
// Not thread-safe by itself; dispatch.cpp calls these once, under a static-local initialiser.
#pragma once

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

void fill_ref_table(KernelTable& t);
void fill_avx2_table(KernelTable& t);
// Uses only what `f` reports: VNNI entries only when f.avx512_vnni.
void fill_avx512_table(KernelTable& t, const CpuFeatures& f);

}  // namespace llmforge::kernels
