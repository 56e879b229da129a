// Q4_1 / Q5_0 / Q5_1 dot products and tiles for x86 (and the Q8_1 activation quantiser), written
// once per dot policy D (quant_dot_impl.h) and registered by the AVX2 table (avx2/legacy_avx2.cpp)
// and the AVX-512 VNNI table (avx512/table_avx512.cpp). Internal linkage, see x86_common.h.
//
// Every weight block is first unpacked to 32 unsigned bytes u (element j in byte j):
//   Q4_1: the nibbles (0..15)               value u * d + m     activations Q8_1 (d_x, s_x = d_x * sum a)
//   Q5_0: nibble | 5th bit << 4 (0..31)     value (u - 16) * d  activations Q8_0
//   Q5_1: as Q5_0                           value u * d + m     activations Q8_1
// so a block's dot is d d_x * sum(u a) (+ m s_x), or d d_x * (sum(u a) - 16 sum(a)) for Q5_0.
// u a products go through D::dpbusd (u unsigned, a signed); on AVX2 maddubs pairs stay below
// 2 * 31 * 128 < 2^15, so nothing saturates, and for Q5_0 (u - 16) a pairs are within 2^12.
//
// Tiles (gemm) follow gemm_q_0: 4 weight rows x up to 4 activation rows, the 4 rows' int32 sums
// folded by two hadds into [r0 r1 r2 r3 | r0 r1 r2 r3] (first 16 | last 16 elements of the
// block), then per block acc = fma(sums, d_w * d_x, acc) and, with a minimum,
// acc = fma([m0 m1 m2 m3 | 0 0 0 0], s_x, acc); out = lo + hi. The invariant one-row dot
// (vec_dot_legacy_invariant) does exactly these float operations in this order, so
// gemm_invariant's results do not depend on the batch.
#pragma once

#include <cmath>

#include "kernels/cpu/x86/quant_dot_impl.h"
#include "kernels/cpu/x86/quant_x8_impl.h"  // kX8Rows / kX8Cols / kX8SegBlocks, bcast4

namespace llmforge::kernels::x86 {
namespace {

enum class Legacy { kQ4_1, kQ5_0, kQ5_1 };

template <Legacy K>
struct LegacyTraits;
template <>
struct LegacyTraits<Legacy::kQ4_1> {
    using Block = BlockQ4_1;
    using Act = BlockQ8_1;
    static constexpr bool kMin = true;
};
template <>
struct LegacyTraits<Legacy::kQ5_0> {
    using Block = BlockQ5_0;
    using Act = BlockQ8_0;
    static constexpr bool kMin = false;
};
template <>
struct LegacyTraits<Legacy::kQ5_1> {
    using Block = BlockQ5_1;
    using Act = BlockQ8_1;
    static constexpr bool kMin = true;
};

// The 32 5th bits of a Q5 block (little-endian uint32) as 0x10 in byte j where bit j is set.
inline __m256i legacy_q5_high(const uint8_t* qh) {
    uint32_t v;
    std::memcpy(&v, qh, 4);
    // Byte j takes byte j / 8 of v, then keeps bit j % 8.
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    const __m256i bytes = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(v)), shuf), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(bytes, bit), _mm256_set1_epi8(0x10));
}

template <Legacy K>
inline __m256i legacy_unpack(const typename LegacyTraits<K>::Block& b) {
    if constexpr (K == Legacy::kQ4_1) {
        return q4_0_unpack(b.qs);
    } else {
        return _mm256_or_si256(q4_0_unpack(b.qs), legacy_q5_high(b.qh));
    }
}

// Per-lane int32 sums of u * a for one block (8 lanes of 4 products; lanes 0-3: elements 0-15).
// For Q5_0 the -16 offset is included: u * a - 16 * a.
template <class D, Legacy K>
inline __m256i legacy_block_sums(__m256i u, __m256i a) {
    if constexpr (K == Legacy::kQ5_0) {
        const __m256i sixteen = _mm256_set1_epi8(16);
        if constexpr (D::kVnni) {
            return _mm256_sub_epi32(D::dpbusd(_mm256_setzero_si256(), u, a), D::dpbusd(_mm256_setzero_si256(), sixteen, a));
        } else {
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, a), _mm256_maddubs_epi16(sixteen, a));
            return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        }
    } else {
        return D::dpbusd(_mm256_setzero_si256(), u, a);
    }
}

// =============================================================== Q8_1 quantiser

// Bit-identical to ref::quantize_row_q8_1: Q8_0's levels and d (quantize_q8_levels), and
// s = fp16(sum(q) * d).
void quantize_row_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        __m256i q[4];
        const float d = quantize_q8_levels(x, q);
        y[b].d = to_f16(d);
        const int sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        y[b].s = to_f16(static_cast<float>(sum) * d);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_i32x32(q[0], q[1], q[2], q[3]));
    }
}

// =============================================================== vec_dot

// The fast one-row dot (decode): two vector accumulators, the minimum terms in a third.
template <class D, Legacy K>
float vec_dot_legacy(int64_t n, const void* vw, const void* vx) {
    using T = LegacyTraits<K>;
    const auto* w = static_cast<const typename T::Block*>(vw);
    const auto* x = static_cast<const typename T::Act*>(vx);
    const int64_t nb = n / kQK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float acc_m = 0;
    auto block = [&](int64_t i) {
        const __m256i v = legacy_block_sums<D, K>(legacy_unpack<K>(w[i]), load256(x[i].qs));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(f16(w[i].d) * f16(x[i].d)));
    };
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        acc0 = _mm256_add_ps(acc0, block(b));
        acc1 = _mm256_add_ps(acc1, block(b + 1));
        if constexpr (T::kMin) acc_m += f16(w[b].m) * f16(x[b].s) + f16(w[b + 1].m) * f16(x[b + 1].s);
    }
    if (b < nb) {
        acc0 = _mm256_add_ps(acc0, block(b));
        if constexpr (T::kMin) acc_m += f16(w[b].m) * f16(x[b].s);
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + acc_m;
}

// The one-row dot in the tiles' exact float order (see the top of the file).
template <class D, Legacy K>
float vec_dot_legacy_invariant(int64_t n, const void* vw, const void* vx) {
    using T = LegacyTraits<K>;
    const auto* w = static_cast<const typename T::Block*>(vw);
    const auto* x = static_cast<const typename T::Act*>(vx);
    const int64_t nb = n / kQK;
    float acc_lo = 0, acc_hi = 0;
    alignas(32) float h[8];
    auto step = [&](int64_t i, float lo, float hi) {
        const float d = f16(w[i].d) * f16(x[i].d);
        acc_lo = std::fma(lo, d, acc_lo);
        acc_hi = std::fma(hi, d, acc_hi);
        if constexpr (T::kMin) acc_lo = std::fma(f16(w[i].m), f16(x[i].s), acc_lo);
    };
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        __m256i v[4];
        for (int i = 0; i < 4; ++i) v[i] = legacy_block_sums<D, K>(legacy_unpack<K>(w[b + i]), load256(x[b + i].qs));
        // [b0 lo, b1 lo, b2 lo, b3 lo | b0 hi, b1 hi, b2 hi, b3 hi]
        _mm256_store_ps(h, _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]))));
        for (int i = 0; i < 4; ++i) step(b + i, h[i], h[i + 4]);
    }
    for (; b < nb; ++b) {
        const __m256i v = legacy_block_sums<D, K>(legacy_unpack<K>(w[b]), load256(x[b].qs));
        const __m256i z = _mm256_setzero_si256();
        _mm256_store_ps(h, _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(v, z), z)));
        step(b, h[0], h[4]);
    }
    return acc_lo + acc_hi;
}

// =============================================================== tiles

// Blocks whose scales are converted to f32 at once (K = 8192 elements).
constexpr int64_t kLegacyChunk = 256;
constexpr int kLegacyCols = 8;  // activation rows whose scales are converted together
constexpr int kLegacyRC = 4;    // activation rows per register tile

// 4 weight rows x RC activation rows over nb blocks, accumulating into acc[0..RC).
// dws[b] / mws[b]: the 4 rows' d / m of block b ([m0 m1 m2 m3] as the low half, 0 above);
// xs[c][b] / xss[c][b]: activation row c's d / s.
template <class D, Legacy K, int RC>
void tile_legacy(int64_t nb, const uint8_t* const wr[4], const uint8_t* const xc[RC], const __m128* dws,
                 const __m128* mws, const float* const xs[RC], const float* const xss[RC], __m256* acc) {
    using T = LegacyTraits<K>;
    for (int64_t b = 0; b < nb; ++b) {
        __m256i u[4];
        for (int i = 0; i < 4; ++i) u[i] = legacy_unpack<K>(reinterpret_cast<const typename T::Block*>(wr[i])[b]);
        const __m256 dw = _mm256_broadcast_ps(dws + b);
        __m256 mw;
        if constexpr (T::kMin) mw = _mm256_castps128_ps256(mws[b]), mw = _mm256_insertf128_ps(mw, _mm_setzero_ps(), 1);
        for (int c = 0; c < RC; ++c) {
            const __m256i a = load256(reinterpret_cast<const typename T::Act*>(xc[c])[b].qs);
            __m256i v[4];
            if constexpr (K == Legacy::kQ5_0) {
                if constexpr (D::kVnni) {
                    const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(),
                                                         D::dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(16), a));
                    for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(neg, u[i], a);
                } else {
                    const __m256i m16 = _mm256_maddubs_epi16(_mm256_set1_epi8(16), a);
                    for (int i = 0; i < 4; ++i) {
                        v[i] = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u[i], a), m16), _mm256_set1_epi16(1));
                    }
                }
            } else {
                for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(_mm256_setzero_si256(), u[i], a);
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(dw, _mm256_broadcast_ss(xs[c] + b)), acc[c]);
            if constexpr (T::kMin) acc[c] = _mm256_fmadd_ps(mw, _mm256_broadcast_ss(xss[c] + b), acc[c]);
        }
    }
}

inline __m128 legacy_four_f16(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
    return _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, static_cast<short>(d), static_cast<short>(c), static_cast<short>(b),
                                      static_cast<short>(a)));
}

template <class D, Legacy K, float (*Dot)(int64_t, const void*, const void*)>
void gemm_legacy(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride, int64_t nc,
                 float* out, size_t ldo) {
    using T = LegacyTraits<K>;
    using Blk = typename T::Block;
    using Act = typename T::Act;
    if (nc == 1) {  // decode: the one-row dot (see gemm_q_0)
        for (int64_t r = 0; r < nr; ++r) out[r] = Dot(n, byte_ptr(w) + static_cast<size_t>(r) * w_stride, x);
        return;
    }
    const int64_t nb = n / kQK;
    const bool one_chunk = nb <= kLegacyChunk;
    alignas(32) float xs[kLegacyCols][kLegacyChunk], xss[kLegacyCols][kLegacyChunk];
    alignas(16) __m128 dws[kLegacyChunk], mws[kLegacyChunk];
    auto act_scales = [&](int64_t g0, int64_t gc, int64_t kc0, int64_t kb) {
        for (int64_t c = 0; c < gc; ++c) {
            const auto* xb = reinterpret_cast<const Act*>(byte_ptr(x) + static_cast<size_t>(g0 + c) * x_stride) + kc0;
            for (int64_t b = 0; b < kb; ++b) {
                xs[c][b] = f16(xb[b].d);
                if constexpr (T::kMin) xss[c][b] = f16(xb[b].s);
            }
        }
    };
    for (int64_t g0 = 0; g0 < nc; g0 += kLegacyCols) {
        const int64_t gc = min64(kLegacyCols, nc - g0);
        if (one_chunk) act_scales(g0, gc, 0, nb);
        for (int64_t r0 = 0; r0 < nr; r0 += 4) {
            const int64_t rw = min64(4, nr - r0);
            const uint8_t* wr[4];
            row_ptrs(w, w_stride, r0, rw, wr);
            __m256 acc[kLegacyCols];
            for (int c = 0; c < kLegacyCols; ++c) acc[c] = _mm256_setzero_ps();
            for (int64_t kc0 = 0; kc0 < nb; kc0 += kLegacyChunk) {
                const int64_t kb = min64(kLegacyChunk, nb - kc0);
                if (!one_chunk) act_scales(g0, gc, kc0, kb);
                const Blk* wb[4];
                for (int i = 0; i < 4; ++i) wb[i] = reinterpret_cast<const Blk*>(wr[i]) + kc0;
                for (int64_t b = 0; b < kb; ++b) {
                    dws[b] = legacy_four_f16(wb[0][b].d, wb[1][b].d, wb[2][b].d, wb[3][b].d);
                    if constexpr (T::kMin) mws[b] = legacy_four_f16(wb[0][b].m, wb[1][b].m, wb[2][b].m, wb[3][b].m);
                }
                const uint8_t* wrk[4];
                for (int i = 0; i < 4; ++i) wrk[i] = reinterpret_cast<const uint8_t*>(wb[i]);
                for (int64_t c0 = 0; c0 < gc; c0 += kLegacyRC) {
                    const int64_t rc = min64(kLegacyRC, gc - c0);
                    const uint8_t* xc[kLegacyRC];
                    const float* xsc[kLegacyRC];
                    const float* xssc[kLegacyRC];
                    for (int c = 0; c < kLegacyRC; ++c) {
                        const int64_t cc = c0 + (c < rc ? c : 0);
                        xc[c] = byte_ptr(x) + static_cast<size_t>(g0 + cc) * x_stride + static_cast<size_t>(kc0) * sizeof(Act);
                        xsc[c] = xs[cc];
                        xssc[c] = xss[cc];
                    }
                    switch (rc) {
                        case 1: tile_legacy<D, K, 1>(kb, wrk, xc, dws, mws, xsc, xssc, acc + c0); break;
                        case 2: tile_legacy<D, K, 2>(kb, wrk, xc, dws, mws, xsc, xssc, acc + c0); break;
                        case 3: tile_legacy<D, K, 3>(kb, wrk, xc, dws, mws, xsc, xssc, acc + c0); break;
                        default: tile_legacy<D, K, 4>(kb, wrk, xc, dws, mws, xsc, xssc, acc + c0); break;
                    }
                }
            }
            for (int64_t c = 0; c < gc; ++c) {
                alignas(32) float t[8];
                _mm256_store_ps(t, acc[c]);
                for (int64_t i = 0; i < rw; ++i) out[static_cast<size_t>(g0 + c) * ldo + static_cast<size_t>(r0 + i)] = t[i] + t[i + 4];
            }
        }
    }
}

// =============================================================== interleaved 8-row layout (x8)

// Group block (kernels/cpu/repack.h): the 8 rows' fp16 d (16 bytes), then the 8 fp16 m (Q4_1 /
// Q5_1), then the 8 uint32 of 5th bits (Q5_0 / Q5_1), then 4 chunks of 32 bytes (chunk s: quant
// bytes [4s, 4s+4) of row 0..7, i.e. elements 4s..4s+3 in the low nibbles, 16+4s.. in the high).
template <Legacy K>
struct X8Layout {
    static constexpr size_t kM = 16;  // only read where LegacyTraits<K>::kMin
    static constexpr size_t kQh = K == Legacy::kQ5_1 ? 32 : 16;
    static constexpr size_t kQuants = K == Legacy::kQ4_1 ? 32 : K == Legacy::kQ5_0 ? 48 : 64;
    static constexpr size_t kBytes = kX8Rows * sizeof(typename LegacyTraits<K>::Block);
};

// The 5th bits of chunk s's low (elements 4s+k) or high (16+4s+k) values as 0x10 in byte k of
// every row's lane; qh holds row r's uint32 of 5th bits in lane r.
template <int S, bool kHigh>
inline __m256i x8_q5_bits(__m256i qh) {
    constexpr char j = (kHigh ? 2 : 0) + S / 2;  // the qh byte holding these 4 bits
    const __m256i pick = _mm256_setr_epi8(j, j, j, j, j + 4, j + 4, j + 4, j + 4, j + 8, j + 8, j + 8, j + 8, j + 12,
                                          j + 12, j + 12, j + 12, j, j, j, j, j + 4, j + 4, j + 4, j + 4, j + 8, j + 8,
                                          j + 8, j + 8, j + 12, j + 12, j + 12, j + 12);
    constexpr int sh = 4 * (S % 2);
    const __m256i bit = _mm256_set1_epi32((1 << sh) | (2 << (sh + 8)) | (4 << (sh + 16)) | (8 << (sh + 24)));
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(qh, pick), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

template <class D, Legacy K, int RC, int S>
inline void x8_legacy_chunk(const uint8_t* q, __m256i qh, const int8_t* const a[RC], __m256i sum[RC]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i v = load256(q + 32 * S);
    __m256i lo = _mm256_and_si256(v, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (K != Legacy::kQ4_1) {
        lo = _mm256_or_si256(lo, x8_q5_bits<S, false>(qh));
        hi = _mm256_or_si256(hi, x8_q5_bits<S, true>(qh));
    }
    for (int c = 0; c < RC; ++c) {
        if constexpr (D::kVnni) {
            sum[c] = D::dpbusd(sum[c], lo, bcast4(a[c] + 4 * S));
            sum[c] = D::dpbusd(sum[c], hi, bcast4(a[c] + 16 + 4 * S));
        } else if constexpr (K == Legacy::kQ4_1) {
            // int16: 8 maddubs results per block, each |pair| <= 2 * 15 * 128: <= 30720 < 2^15.
            sum[c] = _mm256_add_epi16(sum[c], _mm256_maddubs_epi16(lo, bcast4(a[c] + 4 * S)));
            sum[c] = _mm256_add_epi16(sum[c], _mm256_maddubs_epi16(hi, bcast4(a[c] + 16 + 4 * S)));
        } else {
            // 5-bit values: two maddubs (<= 4 * 31 * 128 < 2^15) per widening.
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(a[c] + 4 * S)),
                                               _mm256_maddubs_epi16(hi, bcast4(a[c] + 16 + 4 * S)));
            sum[c] = _mm256_add_epi32(sum[c], _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        }
    }
}

// One group (8 weight rows) x RC activation rows over nb blocks. dx[c][b]: activation scales;
// ex[c][b]: s (Q4_1 / Q5_1) or 16 * sum(a) as an exact float (Q5_0). Every output gets
// acc = fma(sum, d_w d_x, acc) [then fma(m_w, s_x, acc)] per block, whatever RC: row-invariant.
template <class D, Legacy K, int RC>
inline void x8_tile_legacy(const uint8_t* g, int64_t nb, const int8_t* const* xq, size_t x_block,
                           const float (*dx)[kX8SegBlocks], const float (*ex)[kX8SegBlocks], __m256 acc[RC]) {
    using L = X8Layout<K>;
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* gb = g + static_cast<size_t>(b) * L::kBytes;
        const uint8_t* q = gb + L::kQuants;
        const __m256i qh = K == Legacy::kQ4_1 ? _mm256_setzero_si256() : load256(gb + L::kQh);
        const int8_t* a[RC];
        for (int c = 0; c < RC; ++c) a[c] = xq[c] + static_cast<size_t>(b) * x_block;
        __m256i sum[RC];
        for (int c = 0; c < RC; ++c) sum[c] = _mm256_setzero_si256();
        x8_legacy_chunk<D, K, RC, 0>(q, qh, a, sum);
        x8_legacy_chunk<D, K, RC, 1>(q, qh, a, sum);
        x8_legacy_chunk<D, K, RC, 2>(q, qh, a, sum);
        x8_legacy_chunk<D, K, RC, 3>(q, qh, a, sum);
        if constexpr (!D::kVnni && K == Legacy::kQ4_1) {
            for (int c = 0; c < RC; ++c) sum[c] = _mm256_madd_epi16(sum[c], _mm256_set1_epi16(1));
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb)));
        __m256 fs[RC];
        for (int c = 0; c < RC; ++c) fs[c] = _mm256_cvtepi32_ps(sum[c]);
        if constexpr (K == Legacy::kQ5_0) {
            for (int c = 0; c < RC; ++c) fs[c] = _mm256_sub_ps(fs[c], _mm256_set1_ps(ex[c][b]));  // exact integers
        }
        for (int c = 0; c < RC; ++c) acc[c] = _mm256_fmadd_ps(fs[c], _mm256_mul_ps(dw, _mm256_set1_ps(dx[c][b])), acc[c]);
        if constexpr (LegacyTraits<K>::kMin) {
            const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + L::kM)));
            for (int c = 0; c < RC; ++c) acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(ex[c][b]), acc[c]);
        }
    }
}

// KernelTable::gemm_x8 for Q4_1 / Q5_0 / Q5_1 (same driver as gemm_x8 in quant_x8_impl.h).
template <class D, Legacy K>
void gemm_x8_legacy(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride, int64_t nc,
                    float* out, size_t ldo) {
    using Act = typename LegacyTraits<K>::Act;
    const int64_t nb = n / kQK;
    const size_t group_stride = kX8Rows * w_stride;
    const int64_t ng = nr / kX8Rows;
    alignas(32) float dx[kX8Cols][kX8SegBlocks];
    alignas(32) float ex[kX8Cols][kX8SegBlocks];
    for (int64_t s0 = 0; s0 < nb; s0 += kX8SegBlocks) {
        const int64_t sb = min64(kX8SegBlocks, nb - s0);
        for (int64_t c0 = 0; c0 < nc; c0 += kX8Cols) {
            const int rc = static_cast<int>(min64(kX8Cols, nc - c0));
            const Act* xa[kX8Cols];
            const int8_t* xq[kX8Cols];
            for (int c = 0; c < kX8Cols; ++c) {
                const int64_t cc = c0 + (c < rc ? c : 0);
                xa[c] = reinterpret_cast<const Act*>(static_cast<const uint8_t*>(x) + static_cast<size_t>(cc) * x_stride) + s0;
                xq[c] = xa[c]->qs;
            }
            for (int c = 0; c < rc; ++c) {
                for (int64_t b = 0; b < sb; ++b) {
                    dx[c][b] = f16(xa[c][b].d);
                    if constexpr (K == Legacy::kQ5_0) {
                        const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), load256(xa[c][b].qs));
                        ex[c][b] = static_cast<float>(16 * hsum_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1))));
                    } else {
                        ex[c][b] = f16(xa[c][b].s);
                    }
                }
            }
            for (int64_t g = 0; g < ng; ++g) {
                const uint8_t* gw = static_cast<const uint8_t*>(w) + static_cast<size_t>(g) * group_stride +
                                    static_cast<size_t>(s0) * X8Layout<K>::kBytes;
                __m256 acc[kX8Cols];
                for (int c = 0; c < rc; ++c) {
                    float* o = out + static_cast<size_t>(c0 + c) * ldo + static_cast<size_t>(g) * kX8Rows;
                    acc[c] = s0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o);  // exact partial sums
                }
                switch (rc) {
                    case 1: x8_tile_legacy<D, K, 1>(gw, sb, xq, sizeof(Act), dx, ex, acc); break;
                    case 2: x8_tile_legacy<D, K, 2>(gw, sb, xq, sizeof(Act), dx, ex, acc); break;
                    case 3: x8_tile_legacy<D, K, 3>(gw, sb, xq, sizeof(Act), dx, ex, acc); break;
                    default: x8_tile_legacy<D, K, 4>(gw, sb, xq, sizeof(Act), dx, ex, acc); break;
                }
                for (int c = 0; c < rc; ++c) {
                    _mm256_storeu_ps(out + static_cast<size_t>(c0 + c) * ldo + static_cast<size_t>(g) * kX8Rows, acc[c]);
                }
            }
        }
    }
}

template <class D>
void register_legacy_x86(KernelTable& t) {
    auto at = [](DType d) { return static_cast<int>(d); };
    t.quantize_row[at(DType::Q8_1)] = quantize_row_q8_1;
    t.vec_dot[at(DType::Q4_1)] = vec_dot_legacy<D, Legacy::kQ4_1>;
    t.vec_dot[at(DType::Q5_0)] = vec_dot_legacy<D, Legacy::kQ5_0>;
    t.vec_dot[at(DType::Q5_1)] = vec_dot_legacy<D, Legacy::kQ5_1>;
    t.gemm[at(DType::Q4_1)] = gemm_legacy<D, Legacy::kQ4_1, vec_dot_legacy<D, Legacy::kQ4_1>>;
    t.gemm[at(DType::Q5_0)] = gemm_legacy<D, Legacy::kQ5_0, vec_dot_legacy<D, Legacy::kQ5_0>>;
    t.gemm[at(DType::Q5_1)] = gemm_legacy<D, Legacy::kQ5_1, vec_dot_legacy<D, Legacy::kQ5_1>>;
    t.gemm_invariant[at(DType::Q4_1)] = gemm_legacy<D, Legacy::kQ4_1, vec_dot_legacy_invariant<D, Legacy::kQ4_1>>;
    t.gemm_invariant[at(DType::Q5_0)] = gemm_legacy<D, Legacy::kQ5_0, vec_dot_legacy_invariant<D, Legacy::kQ5_0>>;
    t.gemm_invariant[at(DType::Q5_1)] = gemm_legacy<D, Legacy::kQ5_1, vec_dot_legacy_invariant<D, Legacy::kQ5_1>>;
    t.gemm_x8[at(DType::Q4_1)] = gemm_x8_legacy<D, Legacy::kQ4_1>;
    t.gemm_x8[at(DType::Q5_0)] = gemm_x8_legacy<D, Legacy::kQ5_0>;
    t.gemm_x8[at(DType::Q5_1)] = gemm_x8_legacy<D, Legacy::kQ5_1>;
}

}  // namespace
}  // namespace llmforge::kernels::x86
