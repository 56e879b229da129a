// Internal to the kernels layer: how dispatch.cpp builds the per-ISA tables. Each ISA folder
// provides one fill function that starts from the table it is given (already holding the ref/
// entries, and for AVX-512 the AVX2 ones) and overrides the entries it implements.
// Not thread-safe by itself; dispatch.cpp calls these once, under a static-local initialiser.
#pragma once

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

void fill_ref_table(KernelTable& t);
// Called by fill_ref_table: the reference entries of Q4_1 / Q5_0 / Q5_1 / Q8_1
// (ref/quants_legacy_ref.cpp) and of Q2_K / Q3_K / Q5_K (ref/quants_kextra_ref.cpp).
void register_legacy_ref(KernelTable& t);
void register_kextra_ref(KernelTable& t);
void fill_avx2_table(KernelTable& t);
// Uses only what `f` reports: VNNI entries only when f.avx512_vnni.
void fill_avx512_table(KernelTable& t, const CpuFeatures& f);

}  // namespace llmforge::kernels
