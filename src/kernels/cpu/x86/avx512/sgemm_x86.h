// The AVX-512F f32 GEMM (avx512/sgemm_avx512.cpp), called only by kernels/cpu/gemm_f32.cpp after
// its CPUID check; declarations only, so generic code may include this header.
#pragma once

#include <cstdint>

namespace llmforge::kernels::x86 {

// Workspace (floats, 64-byte aligned) that one call needs: the packed A block and B block.
constexpr int64_t kSgemmAFloats = 14 * 12 * 256;  // MC x KC
constexpr int64_t kSgemmBFloats = 256 * 1024;     // KC x NC

// C (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · C, row-major (op = transpose when ta /
// tb), on the calling thread. m, n, k > 0. beta == 0 never reads C. wa, wb: workspaces above.
void sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, float* wa, float* wb);

}  // namespace llmforge::kernels::x86
