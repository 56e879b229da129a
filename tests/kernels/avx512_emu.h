// The AVX-512 kernels compiled against SIMDe's portable AVX-512 intrinsics
// (tests/kernels/avx512_emu_*.cpp, see x86/avx512_emulation.h), so kernels_test, matmul_test,
// gemm_f32_test and gemm_bf16_test check the AVX-512 code paths (16-lane float tiles, VNNI
// quantised dots, the f32 GEMM, the VDPBF16PS GEMM and the bf16 packers) against the scalar
// reference on machines without AVX-512. Built only when CMake found libsimde-dev (LLMFORGE_HAVE_AVX512_EMU).
#pragma once

#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

// The AVX2 table with the AVX-512 entries (all of them, VNNI included) filled in from the
// emulated build; nullptr on a CPU without AVX2 (the emulation runs on AVX2).
const KernelTable* avx512_emulated_table();

// True where the emulated kernels below can run (AVX2, FMA and F16C).
bool avx512_emulation_runs_here();

namespace x86 {
// The AVX-512 GEMM kernels compiled over SIMDe (tests/kernels/avx512_emu_sgemm.cpp,
// avx512_emu_bf16.cpp): the same contracts as x86/avx512/sgemm_x86.h and x86/amx/gemm_bf16_x86.h.
void sgemm_avx512_emulated(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                           const float* b, int64_t ldb, float beta, float* c, int64_t ldc, float* wa, float* wb);
void bf16_pack_a_avx512_emulated(const float* a, int64_t lda, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                                 int64_t p0, int64_t p1);
void bf16_pack_at_avx512_emulated(const float* g, int64_t ldg, int64_t n_rows, int64_t K, int64_t kb_count,
                                  uint16_t* ap, int64_t p0, int64_t p1);
void bf16_pack_b_avx512_emulated(const float* w, int64_t ldw, bool for_forward, int64_t bM, int64_t bK,
                                 int64_t kb_count, uint16_t* dst, int64_t jb0, int64_t jb1);
void bf16_gemm_avx512_emulated(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M,
                               float* c, int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1,
                               const float* bias);
void round_bf16_avx512_emulated(const float* x, float* y, int64_t n);
}  // namespace x86

}  // namespace llmforge::kernels
