// Entry points of the bf16 GEMM kernels compiled with AMX / AVX512-BF16 flags (this folder).
// Called only by kernels/cpu/gemm_bf16.cpp after its CPUID (and, for AMX, arch_prctl) checks;
// declarations only, so generic code may include this header.
//
// Layouts (see gemm_bf16.h for B):
//   A packed: row block ib (16 rows) x k block kb (32 inputs) is one 1 KiB tile of 16 rows x 32
//   bf16: ap[((ib * kb_count + kb) * 16 + r) * 32 + kk] = bf16(A[16 ib + r][32 kb + kk]), zero
//   beyond n_rows or K; the row-block count is even (rows padded to a multiple of 32).
//   Work unit: a row pair p (rows 32p .. 32p+31) x a column pair q (outputs 32q .. 32q+31);
//   a call computes the row pairs [p0, p1) x column pairs [q0, q1) of C (only its valid entries
//   are read or written).
#pragma once

#include <cstdint>

namespace llmforge::kernels::x86 {

// Input blocks (of 32) per pass of the AMX kernel over K: C's accumulators go through memory
// between passes, so a packed output (below) needs kb_count <= this.
constexpr int64_t kAmxKChunk = 32;

// Rounds rows [32 p0, 32 p1) of A (f32, row stride lda, n_rows valid rows, K columns) into the
// packed A layout (all kb_count blocks of those row blocks); pad rows and columns are zeros.
// Rounds as fp32_to_bf16 (core/dtype.h) bit for bit, as the scalar packer does.
void bf16_pack_a_avx512(const float* a, int64_t lda, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                        int64_t p0, int64_t p1);

// The same layout for A = Gᵀ: rows of A are columns of G (f32, row stride ldg), so
// ap[((ib * kb_count + kb) * 16 + r) * 32 + kk] = bf16(G[32 kb + kk][16 ib + r]); n_rows = G's
// columns, K = G's rows. Rounds as fp32_to_bf16 (core/dtype.h) bit for bit (integer arithmetic).
void bf16_pack_at_avx512(const float* g, int64_t ldg, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                         int64_t p0, int64_t p1);

// Column blocks [jb0, jb1) of a PackedBf16 (gemm_bf16.h's layout) from a row-major f32 W (M, K),
// row stride ldw: B = W (for_forward) or Wᵀ; bM, bK = B's sizes, kb_count = ceil(bK / 32). Rounds
// as fp32_to_bf16 bit for bit, so the bytes equal the scalar pack_bf16's.
void bf16_pack_b_avx512(const float* w, int64_t ldw, bool for_forward, int64_t bM, int64_t bK, int64_t kb_count,
                        uint16_t* dst, int64_t jb0, int64_t jb1);

// y[i] = bf16_to_fp32(fp32_to_bf16(x[i])) (core/dtype.h) bit for bit, denormals and NaNs
// included (integer arithmetic on the bits, no DAZ/FTZ); x may equal y. AVX-512F.
void round_bf16_avx512(const float* x, float* y, int64_t n);

// Attention's middle step for one row pair (kernels::attention_bf16): row r < rows of the scores
// s (32 rows, row stride lds; overwritten) gives x = scale · s + add0[r] + add1[r] (adds: row stride ld_add, or
// null) over its first L entries, e = exp(x − max x) written as bf16 into row r of the packed-A
// row pair pa (kb_count blocks of 32 keys) and inv_z[r] = 1 / Σ e (the f32 e's); keys >= L and
// rows >= rows are zeros (inv_z 0). AVX-512F + AVX512-BF16 (compiled in the AMX file; called on
// the AMX path only).
void bf16_softmax_pack_avx512(float* s, int64_t lds, int64_t rows, int64_t L, int64_t kb_count, float scale,
                              const float* add0, const float* add1, int64_t ld_add, uint16_t* pa, float* inv_z);
// o[r][0 .. n) *= scale[r] for r < rows (row stride ldo): the softmax's normalisation on the output.
void scale_rows_avx512(float* o, int64_t ldo, int64_t rows, int64_t n, const float* scale);

// C[rows of p][cols of q] = (accumulate ? C : 0) + A · Bᵀ (+ bias[col], when bias is not null,
// added to the finished f32 sum as a separate rounding) over the packed operands. The AMX kernel
// also applies an activation (act >= 0: KernelTable::act's kind, its AVX-512 form) to each
// finished tile while it is in L1; the caller does that for the other kernels. With pack not null
// (AMX only; accumulate false, K in one pass: kb_count <= kAmxKChunk) the finished outputs are not written
// to C but rounded to bf16 (nearest even) into the packed-A layout of a next product at pack
// (row pair 0 of this call's rows, pack_kb = ceil(M / 32) input blocks per row block), the padding
// rows and columns zeros.
void bf16_gemm_amx(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M, float* c,
                   int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias,
                   int act, uint16_t* pack = nullptr, int64_t pack_kb = 0);
void bf16_gemm_avx512(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M,
                      float* c, int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1,
                      const float* bias);

}  // namespace llmforge::kernels::x86
