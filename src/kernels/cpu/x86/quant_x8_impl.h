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
constexpr size_t kX8Prefetch = 3072;   // bytes ahead of a group's weights, touched before it

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

// KernelTable::gemm_x8 for Q4_0 (kQ4) or Q8_0 weights.
template <class D, bool kQ4>
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
                // Weights streamed once (one column block): one touch a few KiB ahead per group
                // (see kK512Prefetch in quant_k512_impl.h).
                if (nc <= kX8Cols) _mm_prefetch(reinterpret_cast<const char*>(gw) + kX8Prefetch, _MM_HINT_T0);
                __m256 acc[kX8Cols];
                for (int c = 0; c < rc; ++c) {
                    float* o = out + static_cast<size_t>(c0 + c) * ldo + static_cast<size_t>(g) * kX8Rows;
                    // Continuing a previous segment: the stored partial sums are exact floats.
                    acc[c] = s0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o);
                }
                switch (rc) {
                    case 1: x8_tile<D, kQ4, 1>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    case 2: x8_tile<D, kQ4, 2>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    case 3: x8_tile<D, kQ4, 3>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
                    default: x8_tile<D, kQ4, 4>(gw, gb_bytes, sb, xq, dx, corr, acc); break;
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
