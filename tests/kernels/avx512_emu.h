// The AVX-512 kernel table compiled against SIMDe's portable AVX-512 intrinsics
// (tests/kernels/avx512_emu_table.cpp, see x86_common.h), so kernels_test and matmul_test check
// the AVX-512 code paths (16-lane float tiles, VNNI quantised dots) against the scalar reference
// on machines without AVX-512. Built only when CMake found libsimde-dev (LLMFORGE_HAVE_AVX512_EMU).
#pragma once

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

// The AVX2 table with the AVX-512 entries (all of them, VNNI included) filled in from the
// emulated build; nullptr on a CPU without AVX2 (the emulation runs on AVX2).
const KernelTable* avx512_emulated_table();

}  // namespace llmforge::kernels
