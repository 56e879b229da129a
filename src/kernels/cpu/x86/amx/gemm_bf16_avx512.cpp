// bf16 GEMM on AVX512-BF16 (VDPBF16PS) over the same packed operands as the AMX kernel
// (gemm_bf16_x86.h), and the f32 -> bf16 packing of A that both use.
//
// Register blocking: 8 rows x 32 outputs = 16 zmm accumulators. One step of an input pair loads
// two B vectors (a row of each of two B tiles: 16 outputs x 1 pair, exactly VDPBF16PS's operand)
// and broadcasts each row's pair, 16 VDPBF16PS per 10 loads. Order of each output's sum: the start
// value, then pair by pair in ascending k, within a pair the odd product first (the instruction's
// definition).
// Everything here has internal linkage or is an entry point (see x86/x86_common.h: no std:: code).
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on its own _mm512_undefined_*() merge
// operands once inlined (GCC bug 105593, fixed in 13), as in avx512/table_avx512.cpp.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

// The emulated test build (tests/kernels/avx512_emu_bf16.cpp) compiles this file for AVX2 over
// SIMDe, under other names.
#if defined(LLMFORGE_AVX512_EMULATED)
#include "kernels/cpu/x86/avx512_emulation.h"
#define bf16_pack_a_avx512 bf16_pack_a_avx512_emulated
#define bf16_pack_at_avx512 bf16_pack_at_avx512_emulated
#define bf16_pack_b_avx512 bf16_pack_b_avx512_emulated
#define bf16_gemm_avx512 bf16_gemm_avx512_emulated
#define round_bf16_avx512 round_bf16_avx512_emulated
#endif
#include "kernels/cpu/x86/amx/gemm_bf16_x86.h"
#include "kernels/cpu/x86/transpose512.h"

namespace llmforge::kernels::x86 {
namespace {

constexpr int64_t kTileElems = 512;
// Blocking: a chunk of kQChunk column pairs x kKChunk input blocks of B (kQChunk * 2 * kKChunk KiB)
// meets every 8-row group of the call, so it is read from L1/L2 instead of further out; between
// input chunks the f32 accumulators go through C (exact: the order of the sum is unchanged).
// (Measured on Sapphire Rapids, where VDPBF16PS throughput bounds this kernel at ~105 GFLOP/s
// whatever the blocking: 2-16 pairs x 4-32 blocks all within 10%.)
constexpr int64_t kQChunk = 8;  // column pairs (256 outputs)
constexpr int64_t kKChunk = 8;  // input blocks (256 inputs): a 32 KiB chunk of B per pair group

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t clamp16(int64_t v) { return v < 0 ? 0 : v > 16 ? 16 : v; }
inline __mmask16 mask_n(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

inline __m512bh as_bh(__m512i v) {
    __m512bh r;
    std::memcpy(&r, &v, sizeof r);
    return r;
}

// fp32_to_bf16 (core/dtype.h) of 16 values, bit for bit, left in the high halves of the lanes:
// round to nearest even on the bits, NaNs quieted (no DAZ, unlike VCVTNE2PS2BF16).
inline __m512i bf16_high(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                       _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
    const __mmask16 is_nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i v = _mm512_mask_blend_epi32(is_nan, r, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
    return _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
}

// Lane l = bf16(even[l]) | bf16(odd[l]) << 16: a k pair of 16 columns, as the tiles store it.
inline __m512i bf16_pairs(__m512 even, __m512 odd) {
    return _mm512_or_si512(_mm512_srli_epi32(bf16_high(even), 16), bf16_high(odd));
}

// Rows k and k + 1 (k + 1 < K checked; k < K by the caller) of a row-major f32 matrix at columns
// [c0, c0 + 16) masked by m, as 16 bf16 pairs; rows at or past K are zeros.
inline __m512i row_pairs(const float* src, int64_t ld, int64_t k, int64_t K, int64_t c0, __mmask16 m) {
    const __m512 e = k < K ? _mm512_maskz_loadu_ps(m, src + k * ld + c0) : _mm512_setzero_ps();
    const __m512 o = k + 1 < K ? _mm512_maskz_loadu_ps(m, src + (k + 1) * ld + c0) : _mm512_setzero_ps();
    return bf16_pairs(e, o);
}

}  // namespace

void bf16_pack_a_avx512(const float* a, int64_t lda, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                        int64_t p0, int64_t p1) {
    // Tile row r = bf16 of inputs k0 .. k0 + 31 of row r in order: the pairs (2l, 2l + 1) of the
    // two 16-input halves, gathered into even and odd vectors and rounded as fp32_to_bf16.
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int64_t ib = 2 * p0; ib < 2 * p1; ++ib) {
        for (int64_t kb = 0; kb < kb_count; ++kb) {
            uint16_t* tile = ap + (ib * kb_count + kb) * kTileElems;
            const int64_t k0 = kb * 32;
            const int64_t nk = min64(32, K - k0);
            const __mmask16 m0 = mask_n(clamp16(nk)), m1 = mask_n(clamp16(nk - 16));
            for (int64_t r = 0; r < 16; ++r) {
                const int64_t row = ib * 16 + r;
                __m512i out = _mm512_setzero_si512();
                if (row < n_rows) {
                    const float* src = a + row * lda + k0;
                    const __m512 lo = _mm512_maskz_loadu_ps(m0, src);
                    const __m512 hi = _mm512_maskz_loadu_ps(m1, src + 16);
                    out = bf16_pairs(_mm512_permutex2var_ps(lo, ev, hi), _mm512_permutex2var_ps(lo, od, hi));
                }
                _mm512_storeu_si512(tile + r * 32, out);
            }
        }
    }
}

void bf16_pack_at_avx512(const float* g, int64_t ldg, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                         int64_t p0, int64_t p1) {
    // Pair vector kp holds (inputs 2kp, 2kp + 1) of the 16 rows; transposed, register r is tile row r.
    for (int64_t ib = 2 * p0; ib < 2 * p1; ++ib) {
        const int64_t c0 = ib * 16;
        const __mmask16 m = mask_n(clamp16(n_rows - c0));
        for (int64_t kb = 0; kb < kb_count; ++kb) {
            uint16_t* tile = ap + (ib * kb_count + kb) * kTileElems;
            __m512i v[16];
            for (int64_t kp = 0; kp < 16; ++kp) {
                const int64_t k = kb * 32 + 2 * kp;
                v[kp] = m != 0 && k < K ? row_pairs(g, ldg, k, K, c0, m) : _mm512_setzero_si512();
            }
            transpose16(v);
            for (int r = 0; r < 16; ++r) _mm512_storeu_si512(tile + r * 32, v[r]);
        }
    }
}

void bf16_pack_b_avx512(const float* w, int64_t ldw, bool for_forward, int64_t bM, int64_t bK, int64_t kb_count,
                        uint16_t* dst, int64_t jb0, int64_t jb1) {
    // Tile (jb, kb) row kp = the pairs (2kp, 2kp + 1) of outputs 16 jb .. 16 jb + 15.
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int64_t jb = jb0; jb < jb1; ++jb) {
        const int64_t j0 = jb * 16;
        const __mmask16 mj = mask_n(clamp16(bM - j0));
        for (int64_t kb = 0; kb < kb_count; ++kb) {
            uint16_t* tile = dst + (jb * kb_count + kb) * kTileElems;
            const int64_t k0 = kb * 32;
            if (!for_forward) {  // B[j][k] = W[k][j]: rows k, k + 1 of W, 16 contiguous outputs
                for (int64_t kp = 0; kp < 16; ++kp) {
                    const int64_t k = k0 + 2 * kp;
                    const __m512i v = mj != 0 && k < bK ? row_pairs(w, ldw, k, bK, j0, mj) : _mm512_setzero_si512();
                    _mm512_storeu_si512(tile + kp * 32, v);
                }
                continue;
            }
            // B[j][k] = W[j][k]: register j = row j's 16 input pairs; transposed, register kp is tile row kp.
            const int64_t nk = min64(32, bK - k0);
            const __mmask16 m0 = mask_n(clamp16(nk)), m1 = mask_n(clamp16(nk - 16));
            __m512i v[16];
            for (int64_t j = 0; j < 16; ++j) {
                v[j] = _mm512_setzero_si512();
                if (j0 + j < bM) {
                    const float* src = w + (j0 + j) * ldw + k0;
                    const __m512 lo = _mm512_maskz_loadu_ps(m0, src), hi = _mm512_maskz_loadu_ps(m1, src + 16);
                    v[j] = bf16_pairs(_mm512_permutex2var_ps(lo, ev, hi), _mm512_permutex2var_ps(lo, od, hi));
                }
            }
            transpose16(v);
            for (int kp = 0; kp < 16; ++kp) _mm512_storeu_si512(tile + kp * 32, v[kp]);
        }
    }
}

void bf16_gemm_avx512(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M,
                      float* c, int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1,
                      const float* bias) {
    for (int64_t qc = q0; qc < q1; qc += kQChunk) {
        const int64_t qc1 = min64(q1, qc + kQChunk);
        // kb_count == 0 still makes one pass, which writes the start values.
        for (int64_t k0 = 0; k0 < kb_count || k0 == 0; k0 += kKChunk) {
            const int64_t k1 = min64(kb_count, k0 + kKChunk);
            const bool load = accumulate || k0 > 0;
            for (int64_t p = p0; p < p1; ++p) {
                for (int64_t h = 0; h < 4; ++h) {  // 8-row groups of the row pair
                    const int64_t row0 = 32 * p + 8 * h;
                    const int64_t nr = min64(8, n_rows - row0);
                    if (nr <= 0) break;
                    const int64_t ib = 2 * p + (h >> 1);
                    const uint16_t* abase = ap + ib * kb_count * kTileElems + (h & 1) * 8 * 32;
                    for (int64_t q = qc; q < qc1; ++q) {
                        const int64_t col0 = 32 * q;
                        const __mmask16 m0 = mask_n(clamp16(M - col0)), m1 = mask_n(clamp16(M - col0 - 16));
                        __m512 acc[8][2];
                        for (int r = 0; r < 8; ++r) {
                            if (load && r < nr) {
                                const float* cr = c + (row0 + r) * ldc + col0;
                                acc[r][0] = _mm512_maskz_loadu_ps(m0, cr);
                                acc[r][1] = _mm512_maskz_loadu_ps(m1, cr + 16);
                            } else {
                                acc[r][0] = _mm512_setzero_ps();
                                acc[r][1] = _mm512_setzero_ps();
                            }
                        }
                        const uint16_t* b0 = bp + (2 * q) * kb_count * kTileElems;
                        const uint16_t* b1 = bp + (2 * q + 1) * kb_count * kTileElems;
                        for (int64_t kb = k0; kb < k1; ++kb) {
                            const uint16_t* at = abase + kb * kTileElems;
                            const uint16_t* bt0 = b0 + kb * kTileElems;
                            const uint16_t* bt1 = b1 + kb * kTileElems;
                            for (int kp = 0; kp < 16; ++kp) {
                                const __m512bh vb0 = as_bh(_mm512_loadu_si512(bt0 + kp * 32));
                                const __m512bh vb1 = as_bh(_mm512_loadu_si512(bt1 + kp * 32));
                                for (int r = 0; r < 8; ++r) {
                                    int32_t pair;
                                    std::memcpy(&pair, at + r * 32 + kp * 2, 4);
                                    const __m512bh va = as_bh(_mm512_set1_epi32(pair));
                                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], va, vb0);
                                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], va, vb1);
                                }
                            }
                        }
                        if (bias != nullptr && k1 == kb_count) {  // the finished sums
                            const __m512 bv0 = _mm512_maskz_loadu_ps(m0, bias + col0);
                            const __m512 bv1 = _mm512_maskz_loadu_ps(m1, bias + col0 + 16);
                            for (int r = 0; r < nr; ++r) {
                                acc[r][0] = _mm512_add_ps(acc[r][0], bv0);
                                acc[r][1] = _mm512_add_ps(acc[r][1], bv1);
                            }
                        }
                        for (int r = 0; r < nr; ++r) {
                            float* cr = c + (row0 + r) * ldc + col0;
                            _mm512_mask_storeu_ps(cr, m0, acc[r][0]);
                            _mm512_mask_storeu_ps(cr + 16, m1, acc[r][1]);
                        }
                    }
                }
            }
            if (kb_count == 0) break;
        }
    }
}

void round_bf16_avx512(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    auto one_block = [&](__mmask16 m) {
        _mm512_mask_storeu_epi32(y + i, m, bf16_high(_mm512_castsi512_ps(_mm512_maskz_loadu_epi32(m, x + i))));
    };
    for (; i + 16 <= n; i += 16) one_block(0xffff);
    if (i < n) one_block(static_cast<__mmask16>((1u << (n - i)) - 1));
}

}  // namespace llmforge::kernels::x86
