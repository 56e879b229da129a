// Dense f32 GEMM for training (forward and backward products of activations and weights):
//
//   C (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · C       row-major, op = transpose or not
//
// On CPUs with AVX-512 our own kernel does the work (x86/avx512/sgemm_avx512.cpp: at parity with
// OpenBLAS's SKYLAKEX kernels, ~70% of the FMA peak, on this project's Intel machines, and
// independent of OPENBLAS_CORETYPE, which pins OpenBLAS to AVX2 on others); elsewhere OpenBLAS
// sgemm where the build found it (a well-kept library that beats a hand-written AVX2 f32 GEMM,
// see matmul.cpp), otherwise a cache-blocked scalar loop the compiler vectorises.
// LLMFORGE_SGEMM=blas keeps the library on AVX-512 CPUs (comparisons). The pool version cuts C
// into column (or row) blocks, one single-threaded sgemm per block, so BLAS never starts threads
// of its own next to the pool's.
//
// Determinism: for a fixed pool size the split is fixed, so results are bit-reproducible run to
// run (resumed training relies on this); every element is summed over K by exactly one call.
// Thread safety: the pool version uses `pool` (not re-entrant); inputs are only read.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace llmforge::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void sgemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The AVX-512F kernel itself (x86/avx512/sgemm_avx512.cpp), single-threaded, whatever the size:
// for tests and benchmarks; call only when sgemm_uses_avx512() or the CPU has AVX-512F/BW/VL/DQ.
void sgemm_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// Whether sgemm sends large products to that kernel (AVX-512 CPU and kernel table, i.e.
// LLMFORGE_ISA not lower, and LLMFORGE_SGEMM not "blas").
bool sgemm_uses_avx512();

// The scalar reference (double accumulation), for tests.
void sgemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace llmforge::kernels
