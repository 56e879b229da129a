// Tile products over Q4_0 / Q8_0 weights in the interleaved 8-row layout (kernels/cpu/repack.h)
// against Q8_0 activations: KernelTable::gemm_x8. Internal linkage, see x86_common.h.
//
// One group block holds block b of 8 weight rows: 8 fp16 scales, then 4-byte chunks of each row's
// quants. A chunk is one 256-bit register with 4 values of each of the 8 rows (lane r = row r);
// the matching 4 activation bytes are broadcast to every lane, so maddubs + madd give each row's
// partial dot in its own lane and the group's 8 results end in one vector, scaled by the 8 row
// scales (one cvtph) times the activation block's scale.
//
// Integer sums are exact. D is the dot policy of quant_dot_impl.h: with VNNI every step is one
// non-saturating vpdpbusd into int32; without it (AVX2):
//  * Q4_0 (values q in 0..15, meaning q - 8): the 8 maddubs results of a block are summed in int16
//    (each |pair| <= 2 * 15 * 128, eight of them <= 30720 < 2^15), then widened once; the -8
//    offset is taken off as 8 * (sum of the activation block), prepared once per activation row.
//  * Q8_0: |w| as unsigned times sign-adjusted activations (|pair| <= 2 * 128 * 127 < 2^15),
//    widened per chunk.
// Every output gets acc = fma(float(block sum), d_w * d_x, acc) in block order whatever the number
// of activation rows, so one-row decode and multi-row tiles give bit-identical results (the layout
// is row-invariant, which batched serving relies on).
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"  // the dot policies DotAvx2 / DotVnni
#include "kernels/cpu/x86/x86_common.h"

namespace llmforge::kernels::x86 {
namespace {

constexpr int kX8Rows = 8;
constexpr int kX8Cols = 4;             // activation rows per register tile
constexpr int64_t kX8SegBlocks = 256;  // blocks whose activation scales / sums are prepared at once

// Decode (one activation row) streams the weights once: every block touches the cache lines of
// the block kStreamAhead bytes ahead (x86_common.h; a line may be touched twice: blocks are not
// line-aligned). With one touch per group (the hardware prefetchers doing the rest) 110M q8_0
// decoded at ~113 / ~195 t/s on 1 / 2 threads (Sapphire Rapids) and q4_0 at ~130 / ~330; per
// block, ~130 / ~285 and ~225 / ~455, and the DRAM-bound 1.1B q8_0 / q4_0 +10% / +25%
// (docs/PERFORMANCE.md). 2048-4096 bytes measured within a few percent of each other; 3072 was
// best or near it on every file. (The group's end is not known here: a touch may land past it.)
inline void x8_prefetch_block(const uint8_t* gb, size_t gb_bytes) {
    prefetch_ahead(gb, gb_bytes + 63, gb + kStreamAhead + gb_bytes + 63);
}

inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// One group (8 weight rows) x RC activation rows over `nb` blocks starting at the segment's first.
// xq[c]: activation row c's blocks; dx[c][b]: their scales; corr[c][b]: 8 * their sums (Q4_0).
// Each weight chunk is loaded (and unpacked) once for all RC activation rows.
template <class D, bool kQ4, int RC>
inline void x8_tile(const uint8_t* g, size_t gb_bytes, int64_t nb, const BlockQ8_0* const xq[RC],
                    const float (*dx)[kX8SegBlocks], const int32_t (*corr)[kX8SegBlocks], __m256 acc[RC]) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* gb = g + static_cast<size_t>(b) * gb_bytes;
        const uint8_t* q = gb + 2 * kX8Rows;
        if constexpr (RC == 1) x8_prefetch_block(gb, gb_bytes);
        // One activation row (decode): two int32 chains where the steps are vpdpbusd (VNNI); one
        // chain of 8 dependent vpdpbusd per block was latency-bound. The integer sum is the same.
        // With more rows the RC chains are independent already.
        constexpr bool kTwo = RC == 1 && D::kVnni;
        __m256i sum[RC], sum2[RC];
        for (int c = 0; c < RC; ++c) sum[c] = sum2[c] = _mm256_setzero_si256();
        if constexpr (kQ4) {
            for (int s = 0; s < 4; ++s) {
                const __m256i v = load256(q + 32 * s);
                const __m256i lo = _mm256_and_si256(v, m4);                         // elements 4s..4s+3
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);  // elements 16+4s..
                for (int c = 0; c < RC; ++c) {
                    const int8_t* a = xq[c][b].qs;
                    if constexpr (D::kVnni) {
                        sum[c] = D::dpbusd(sum[c], lo, bcast4(a + 4 * s));
                        __m256i& t = kTwo ? sum2[c] : sum[c];
                        t = D::dpbusd(t, hi, bcast4(a + 16 + 4 * s));
                    } else {
                        sum[c] = _mm256_add_epi16(sum[c], _mm256_maddubs_epi16(lo, bcast4(a + 4 * s)));
                        sum[c] = _mm256_add_epi16(sum[c], _mm256_maddubs_epi16(hi, bcast4(a + 16 + 4 * s)));
                    }
                }
            }
            for (int c = 0; c < RC; ++c) {
                if constexpr (!D::kVnni) sum[c] = _mm256_madd_epi16(sum[c], ones16);
                if constexpr (kTwo) sum[c] = _mm256_add_epi32(sum[c], sum2[c]);
                sum[c] = _mm256_sub_epi32(sum[c], _mm256_set1_epi32(corr[c][b]));
            }
        } else {
            for (int s = 0; s < 8; ++s) {
                const __m256i w = load256(q + 32 * s);
                const __m256i aw = _mm256_sign_epi8(w, w);  // |w| as unsigned, sign moved to a
                for (int c = 0; c < RC; ++c) {
                    __m256i& t = kTwo && s % 2 == 1 ? sum2[c] : sum[c];
                    t = D::dpbusd(t, aw, _mm256_sign_epi8(bcast4(xq[c][b].qs + 4 * s), w));
                }
            }
            if constexpr (kTwo) sum[0] = _mm256_add_epi32(sum[0], sum2[0]);
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb)));
        for (int c = 0; c < RC; ++c) {
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[c]), _mm256_mul_ps(dw, _mm256_set1_ps(dx[c][b])), acc[c]);
        }
    }
}

#if LF_X86_AVX512VNNI
// The Q8_0 tile with 512-bit VNNI (the AVX-512 table): one zmm holds two chunks of the 8 rows
// (lanes 0-7 chunk 2p, lanes 8-15 chunk 2p + 1), and each lane's 4 activation bytes come from one
// vpermd of the activation block (no broadcast per chunk). AVX-512 has no vpsignb, so the
// activations go unsigned (x + 128 = x ^ 0x80) against the signed weights, and the 128 · Σw this
// adds is taken off per block (Σw from a vpdpbusd of ones against the same weight vector, shared
// by all RC activation rows). The two halves are added at the end of a block, so every block sum
// is the same integer as the 256-bit tile's and the f32 accumulation is identical: bit-identical
// results to x8_tile (matmul_test checks). Per 64 weight bytes: 1 load, 1 + RC vpdpbusd, RC vpermd
// (256-bit: 2 loads, 2 + 6 RC ops). Measured on 110M q8_0 (Sapphire Rapids): prefill +15-19%,
// decode +3-12%. The same scheme for Q4_0 (nibbles unsigned against signed activations) made
// prefill 8-10% slower (the vpermd per activation chunk competes with the dot products on the
// shuffle port where the 256-bit tile broadcasts from memory), decode equal: Q4_0 keeps x8_tile.
inline __m512i x8_dword_pair(int lo, int hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(lo)), _mm256_set1_epi32(hi), 1);
}

template <int RC>
inline void x8_tile512_q8(const uint8_t* g, size_t gb_bytes, int64_t nb, const BlockQ8_0* const xq[RC],
                          const float (*dx)[kX8SegBlocks], __m256 acc[RC]) {
    const __m512i ones = _mm512_set1_epi8(1), flip = _mm512_set1_epi8(-128);
    const __m512i idx[4] = {x8_dword_pair(0, 1), x8_dword_pair(2, 3), x8_dword_pair(4, 5), x8_dword_pair(6, 7)};
    // One activation row (decode): two integer chains (the steps are dependent vpdpbusd).
    constexpr bool kTwo = RC == 1;
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* gb = g + static_cast<size_t>(b) * gb_bytes;
        const uint8_t* q = gb + 2 * kX8Rows;
        if constexpr (RC == 1) x8_prefetch_block(gb, gb_bytes);
        __m512i xa[RC], sum[RC], sum2[RC];
        for (int c = 0; c < RC; ++c) {
            xa[c] = _mm512_xor_si512(_mm512_castsi256_si512(load256(xq[c][b].qs)), flip);
            sum[c] = sum2[c] = _mm512_setzero_si512();
        }
        __m512i wsum = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
            const __m512i w = _mm512_loadu_si512(q + 64 * p);
            wsum = _mm512_dpbusd_epi32(wsum, ones, w);
            for (int c = 0; c < RC; ++c) {
                __m512i& t = kTwo && p % 2 == 1 ? sum2[c] : sum[c];
                t = _mm512_dpbusd_epi32(t, _mm512_permutexvar_epi32(idx[p], xa[c]), w);
            }
        }
        const __m512i off = _mm512_slli_epi32(wsum, 7);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb)));
        for (int c = 0; c < RC; ++c) {
            if constexpr (kTwo) sum[c] = _mm512_add_epi32(sum[c], sum2[c]);
            const __m512i s = _mm512_sub_epi32(sum[c], off);
            const __m256i r = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r), _mm256_mul_ps(dw, _mm256_set1_ps(dx[c][b])), acc[c]);
        }
    }
}
#endif

// One call of the tile for RC activation rows: the 512-bit one for Q8_0 when kZmm (AVX-512 table).
template <class D, bool kQ4, bool kZmm, int RC>
inline void x8_tile_rc(const uint8_t* g, size_t gb_bytes, int64_t nb, const BlockQ8_0* const xq[kX8Cols],
                       const float (*dx)[kX8SegBlocks], const int32_t (*corr)[kX8SegBlocks], __m256 acc[kX8Cols]) {
#if LF_X86_AVX512VNNI
    static_assert(!(kZmm && kQ4), "512-bit x8 tiles are Q8_0 only (see x8_tile512_q8)");
    if constexpr (kZmm) return x8_tile512_q8<RC>(g, gb_bytes, nb, xq, dx, acc);
#endif
    x8_tile<D, kQ4, RC>(g, gb_bytes, nb, xq, dx, corr, acc);
}

// KernelTable::gemm_x8 for Q4_0 (kQ4) or Q8_0 weights; kZmm: Q8_0 on 512-bit tiles (AVX512-VNNI).
template <class D, bool kQ4, bool kZmm = false>
void gemm_x8(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride, int64_t nc,
             float* out, size_t ldo) {
    const int64_t nb = n / kQK;
    const size_t gb_bytes = kX8Rows * (kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0));
    const size_t group_stride = kX8Rows * w_stride;
    const int64_t ng = nr / kX8Rows;
    alignas(32) float dx[kX8Cols][kX8SegBlocks];
    alignas(32) int32_t corr[kX8Cols][kX8SegBlocks];
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t s0 = 0; s0 < nb; s0 += kX8SegBlocks) {
        const int64_t sb = min64(kX8SegBlocks, nb - s0);
        for (int64_t c0 = 0; c0 < nc; c0 += kX8Cols) {
            const int rc = static_cast<int>(min64(kX8Cols, nc - c0));
            const BlockQ8_0* xq[kX8Cols];
            for (int c = 0; c < kX8Cols; ++c) {
                const int64_t cc = c0 + (c < rc ? c : 0);
                xq[c] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(x) +
                                                           static_cast<size_t>(cc) * x_stride) + s0;
            }
            for (int c = 0; c < rc; ++c) {
                for (int64_t b = 0; b < sb; ++b) {
                    dx[c][b] = f16(xq[c][b].d);
                    if constexpr (kQ4) {
                        const __m256i s16 = _mm256_maddubs_epi16(ones8, load256(xq[c][b].qs));
                        corr[c][b] = 8 * hsum_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
                    } else {
                        corr[c][b] = 0;
                    }
                }
            }
            for (int64_t g = 0; g < ng; ++g) {
                const uint8_t* gw = static_cast<const uint8_t*>(w) + static_cast<size_t>(g) * group_stride +
                                    static_cast<size_t>(s0) * gb_bytes;
                __m256 acc[kX8Cols];
                for (int c = 0; c < rc; ++c) {
                    float* o = out + static_cast<size_t>(c0 + c) * ldo + static_cast<size_t>(g) * kX8Rows;
                    // Continuing a previous segment: the stored partial sums are exact floats.
                    acc[c] = s0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o);
                }
                switch (rc) {
                    case 1: x8_tile_rc<D, kQ4, kZmm, 1>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    case 2: x8_tile_rc<D, kQ4, kZmm, 2>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    case 3: x8_tile_rc<D, kQ4, kZmm, 3>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    default: x8_tile_rc<D, kQ4, kZmm, 4>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                }
                for (int c = 0; c < rc; ++c) {
                    _mm256_storeu_ps(out + static_cast<size_t>(c0 + c) * ldo + static_cast<size_t>(g) * kX8Rows,
                                     acc[c]);
                }
            }
        }
    }
}

}  // namespace
}  // namespace llmforge::kernels::x86
