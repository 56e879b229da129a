// bf16 GEMM against a frozen, pre-packed weight: the training products of `--precision bf16`
// (inputs rounded to bf16, products summed in f32) at bf16 speed instead of fp32 BLAS speed.
//
//   forward   Y (N, M)  (+)=  bf16(X) (N, K)  · bf16(W)ᵀ      W (M, K) row-major, M = outputs
//   backward  dX (N, K) (+)=  bf16(dY) (N, M) · bf16(W)        the same W, packed the other way
//
// Both are "C (n_rows, b.M) (+)= bf16(A) (n_rows, b.K) · Bᵀ" over a PackedBf16 B; pack_bf16 makes
// the forward B (b.M = M, b.K = K) or the backward B (Wᵀ: b.M = K, b.K = M) once per frozen weight
// (2 bytes per weight per orientation), and every step reuses it. A stays f32 in the caller's
// layout and is rounded to bf16 inside the call (round to nearest even, as fp32_to_bf16 in
// core/dtype.h and train's round_to_precision).
//
// Paths, chosen once from CPUID (kernels/cpu/x86/amx/, compiled with their own -m flags):
//   kAmx        AMX tiles (TDPBF16PS), 32x32 output blocks; needs AMX-TILE + AMX-BF16 + AVX512-BF16
//               and Linux's permission for the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), asked
//               once; if the kernel refuses, AMX counts as unavailable.
//   kAvx512Bf16 VDPBF16PS, 8x32 register blocks; needs AVX512-BF16 (+F/BW/VL).
//   kScalar     portable code (the tests' reference order); machines with neither.
// LLMFORGE_BF16_GEMM=scalar|avx512bf16|amx forces a lower path (for comparisons).
//
// Numerics: every product bf16(a)·bf16(b) is exact in f32, so an output is its start value (0, or
// C's old value when accumulate) and the K products combined by f32 additions (round to nearest
// even); only the order and grouping of those additions differs between paths:
//   kScalar      C, then k = 0, 1, ..., K-1 (gemm_bf16_ref, bit for bit).
//   kAvx512Bf16  C, then pairs in order, within a pair the odd product first (VDPBF16PS).
//   kAmx         per block of 32 inputs, as TDPBF16PS does it in hardware (implementation-specific;
//                measured on Sapphire Rapids: the 16 even-k products summed in order, the 16 odd-k
//                ones likewise, the two sums added, then that added to C), blocks in order.
// The SIMD paths agree with the exact (double) sum of the products to within f32 rounding of the
// running magnitudes, as any summation order does (tests/kernels/gemm_bf16_test.cpp).
// The order depends on nothing else (not on n_rows, the other rows or columns, the thread count or
// the split), so every path is deterministic and batch-invariant. The SIMD paths flush denormal
// inputs and results to zero (the instructions' DAZ/FTZ), the scalar path does not: this matters
// only for magnitudes below 1.2e-38.
//
// Thread safety: a PackedBf16 is immutable after pack_bf16 and may be shared by any number of
// concurrent calls. gemm_bf16 uses `pool` (not re-entrant; see core/thread_pool.h) and a scratch
// buffer per calling thread (the bf16 copy of A, n_rows x K x 2 bytes, kept between calls).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/thread_pool.h"

namespace llmforge::kernels {

enum class Bf16GemmPath { kScalar = 0, kAvx512Bf16 = 1, kAmx = 2 };
const char* bf16_gemm_path_name(Bf16GemmPath p);
// Whether this CPU (and OS) can run path p. kScalar always can.
bool bf16_gemm_path_supported(Bf16GemmPath p);
// The path gemm_bf16 uses by default: the best supported one, lowered by LLMFORGE_BF16_GEMM.
Bf16GemmPath bf16_gemm_best_path();
// True when the best path is AMX: the only one measured faster than OpenBLAS sgemm on rounded f32
// values (Sapphire Rapids, N = 1024: AMX 800-1100 GFLOP/s on one core, sgemm 105-160, VDPBF16PS
// ~105, bounded by that instruction's throughput there). Elsewhere callers should keep sgemm; the
// AVX512-BF16 path (which may pay off where VDPBF16PS is faster, e.g. AMD Zen 4) stays reachable
// through an explicit path or LLMFORGE_BF16_GEMM=avx512bf16.
bool bf16_gemm_available();

// A frozen matrix B (M, K) in bf16, laid out for the kernels:
//   column block jb (16 outputs) x k block kb (32 inputs) is one 1 KiB tile, 16 rows of k pairs:
//   data[((jb * kb_count + kb) * 16 + kp) * 32 + 2 * j + e] = B[16 jb + j][32 kb + 2 kp + e],
//   zero beyond M or K. jb_count is even (M padded to a multiple of 32).
// Move-only; owns 64-byte-aligned storage.
struct PackedBf16 {
    int64_t M = 0;         // outputs (columns of C)
    int64_t K = 0;         // inputs (columns of A)
    int64_t kb_count = 0;  // ceil(K / 32)
    int64_t jb_count = 0;  // 2 * ceil(M / 32)
    size_t capacity = 0;   // bytes allocated (>= bytes()); pack_bf16_into reuses them
    struct Free {
        void operator()(uint16_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint16_t, Free> data;

    bool empty() const { return data == nullptr; }
    size_t bytes() const { return static_cast<size_t>(jb_count * kb_count) * 1024; }
};

// Packs a row-major weight w (M, K) (row stride ldw >= K elements), rounding to bf16.
//   for_forward = true:  B = W   (b.M = M, b.K = K): Y = X · Wᵀ
//   for_forward = false: B = Wᵀ  (b.M = K, b.K = M): dX = dY · W
// Throws std::invalid_argument on negative sizes or ldw < K.
PackedBf16 pack_bf16(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward);
// The same with the column blocks split over `pool` (null: the calling thread), AVX-512 where the
// CPU has AVX512-BF16: a weight that changes every step (training) is packed in a fraction of its
// products' time. The bytes equal pack_bf16_scalar's (rounding as fp32_to_bf16, bit for bit).
PackedBf16 pack_bf16(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward, ThreadPool* pool);
// The same into `into`, reusing its storage when large enough (a product packed every step
// allocates, and page-faults, once).
void pack_bf16_into(PackedBf16& into, const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward,
                    ThreadPool* pool);
// The portable packer, element by element (the tests' reference for the bytes).
PackedBf16 pack_bf16_scalar(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward);
// The same from a bf16 weight (raw bf16 bits, e.g. a frozen tensor in its file dtype): exact.
PackedBf16 pack_bf16(const uint16_t* w, int64_t ldw, int64_t M, int64_t K, bool for_forward);

// C (n_rows, b.M) = [C +] bf16(A) (n_rows, b.K) · Bᵀ [+ bias], C row-major with row stride ldc >= b.M,
// A row-major f32 with row stride lda >= b.K. Row or column blocks are split over `pool` (null: the
// calling thread only); the result does not depend on the pool's size. `path` picks a kernel (tests, benchmarks);
// an unsupported one throws std::invalid_argument. n_rows == 0 or b.M == 0 does nothing; b.K == 0
// gives C = [C +] 0. bias (b.M values, or null): added to each finished f32 sum while its tile is in
// cache (the bits of adding it in a pass afterwards, without that pass over C: the encoders'
// linear biases, model.cpp). act (-1: none; 0-3: KernelTable::act's kinds, GELU erf / tanh,
// quick_gelu, tanh) then maps every output as act_rows would, on AMX while each 16 x 16 tile is
// still in L1 (an encoder MLP's up-projection and GELU in one pass over its output).
void gemm_bf16(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, float* c, int64_t ldc,
               bool accumulate, ThreadPool* pool, const float* bias = nullptr, int act = -1);
void gemm_bf16(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, float* c, int64_t ldc,
               bool accumulate, ThreadPool* pool, Bf16GemmPath path, const float* bias = nullptr, int act = -1);

// n (1-8) products of the same rows, A rounded and packed once (an encoder layer's q, k and v
// projections): cs[i] (n_rows, bs[i]->M) = bf16(A) · bs[i]ᵀ [+ biases[i]] (biases or its entries
// null: none), row stride bs[i]->M; every bs[i] has A's K inputs. The bits of n gemm_bf16 calls.
void gemm_bf16_multi(const float* a, int64_t lda, int64_t n_rows, int n, const PackedBf16* const* bs, float* const* cs,
                     const float* const* biases, ThreadPool* pool);

// Rows already rounded to bf16 and laid out as a product's packed A (16 x 32 tiles, row blocks of
// kb_count tiles; zeros past n_rows and K): the hidden rows of an encoder MLP, written by the
// up-projection's epilogue and read by the down-projection as they are, with no f32 copy between
// (gemm_bf16_to_rows, then gemm_bf16 on them). Move-only, reused by later calls when large enough.
struct PackedRowsBf16 {
    int64_t n_rows = 0, K = 0, kb_count = 0;
    size_t capacity = 0;  // elements allocated
    std::unique_ptr<uint16_t, PackedBf16::Free> data;
};
// out = bf16(act(A · Bᵀ + bias)) as packed rows (n_rows, b.M): the values gemm_bf16 would write to C,
// rounded to bf16 (nearest even; on AMX inputs below 2^-126 round to zero) — on AMX straight from
// the kernel's epilogue when b.K <= 1024, elsewhere through an f32 buffer. act as gemm_bf16's.
void gemm_bf16_to_rows(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, PackedRowsBf16& out,
                       ThreadPool* pool, const float* bias = nullptr, int act = -1);
// C (a.n_rows, b.M) = [C +] a · Bᵀ [+ bias] over packed rows (b.K must be a.K): gemm_bf16 with A
// already rounded and packed.
void gemm_bf16(const PackedRowsBf16& a, const PackedBf16& b, float* c, int64_t ldc, bool accumulate, ThreadPool* pool,
               const float* bias = nullptr);

// One (sequence, head) of bidirectional attention with bf16 products (an encoder's bf16 encode,
// model.cpp): with S = bf16(Q) · bf16(K)ᵀ summed in f32, per query row i over keys t < L,
//   x[t] = scale · S[i][t] + add[0][i][t] + add[1][i][t],   e[t] = exp(x[t] − max x)  (f32)
//   O[i] = (Σ_t bf16(e[t]) · bf16(V[t])) / Σ_t e[t]        (products summed in f32)
// i.e. softmax(x) · V with the weights rounded to bf16 before the normalisation (which is applied
// to the f32 output row); keys t >= L get no weight. The scale multiplies the f32 scores.
// Q (T, D), K (Tk, D), V (Tk, Dv), O (T, Dv) row-major with the given row strides; add[i]: null or
// (T, Tk) row-major, row stride Tk (Swin's relative-position bias and shifted-window mask).
// Done 32 query rows at a time, the scores and weights staying in the calling thread's cache (on
// AMX: both products as tiles, the weights written by the softmax straight into the packed
// layout); runs on the calling thread (callers split (sequence, head) items over their pool),
// scratch per thread. Throws std::invalid_argument on sizes <= 0, L outside (0, Tk] or strides
// below the widths.
struct AttentionBf16 {
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    int64_t ldq = 0, ldk = 0, ldv = 0;
    int64_t T = 0, Tk = 0, L = 0, D = 0, Dv = 0;
    float scale = 1.0f;
    const float* add[2] = {nullptr, nullptr};
    float* o = nullptr;
    int64_t ldo = 0;
};
void attention_bf16(const AttentionBf16& x);
void attention_bf16(const AttentionBf16& x, Bf16GemmPath path);

// The weight gradient of a product, C (M, K) = [C +] bf16(G)ᵀ · bf16(X): G (N, M) row-major with
// row stride ldg >= M (the output gradient dY), X (N, K) with row stride ldx >= K (the input),
// C row stride ldc >= K; every element sums its N products in f32. Xᵀ is packed as B and Gᵀ as A
// (both rounded on the way), then the same kernels and split as gemm_bf16 (same numerics: the
// order of a path, independent of the pool's size). N == 0 gives C = [C +] 0.
void gemm_bf16_tn(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K, float* c,
                  int64_t ldc, bool accumulate, ThreadPool* pool);
void gemm_bf16_tn(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K, float* c,
                  int64_t ldc, bool accumulate, ThreadPool* pool, Bf16GemmPath path);
// Its scalar reference: n ascending, bit-identical to the kScalar path.
void gemm_bf16_tn_ref(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K,
                      float* c, int64_t ldc, bool accumulate);

// A (the rounded bf16 copy of the left operand, one per calling thread) is packed in row blocks
// of at most 64 MiB, each multiplied before the next is packed: the result does not depend on
// the block size. Tests set a smaller budget to cross blocks on small shapes; returns the old one.
int64_t gemm_bf16_set_max_packed_a(int64_t bytes);

// y[i] = x[i] rounded to bf16 (round to nearest even, NaN quieted; exactly fp32_to_bf16 then
// bf16_to_fp32 of core/dtype.h), kept in f32; x may equal y. AVX-512 where the CPU has it.
void round_bf16(const float* x, float* y, int64_t n);

// The unpacked scalar reference, for tests: C (N, M) = [C +] Σ_k bf16(a[i][k]) · bf16(B[j][k]) in
// f32, k ascending, where B = W (forward) or Wᵀ (backward) of the row-major w (M, K) given to
// pack_bf16. Bit-identical to the kScalar path.
void gemm_bf16_ref(const float* a, int64_t lda, int64_t n_rows, const float* w, int64_t ldw, int64_t M,
                   int64_t K, bool for_forward, float* c, int64_t ldc, bool accumulate);

}  // namespace llmforge::kernels
