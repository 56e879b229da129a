// Quantised dot products and register-blocked tile products for x86, written once and
// instantiated per ISA with a dot policy `D`:
//   D::dpbusd(acc, u, s): acc + sum of 4 adjacent u8*s8 products per int32 lane
//   D::dpwssd(acc, a, b): acc + sum of 2 adjacent i16*i16 products per int32 lane
// AVX2 builds them from maddubs/madd (exact here: every maddubs pair sum stays below 2^15 because
// weights are at most 6-bit unsigned or |q8| <= 127 against |q8| <= 127); AVX-512 VNNI uses
// vpdpbusd / vpdpwssd directly. Internal linkage, see x86_common.h.
//
// Activation layouts: Q8_0 (for Q8_0 / Q4_0 weights) and Q8_K (for Q4_K / Q6_K), as produced by
// quantize_row; Q8_K's bsums must be consistent with its qs.
#pragma once

#include <cmath>
#include <type_traits>

#include "kernels/cpu/x86/x86_common.h"

namespace llmforge::kernels::x86 {
namespace {

// No namespace-scope vector constants in ISA files: their initialisers would run at start-up on
// every CPU, including ones without AVX2.
inline __m256 sign_mask() { return _mm256_set1_ps(-0.0f); }
inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(sign_mask(), v); }

// roundf (half away from zero), exact for any float: trunc, then step away if |frac| >= 0.5.
inline __m256 round_half_away(__m256 t) {
    const __m256 tr = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs8(_mm256_sub_ps(t, tr));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(t, sign_mask()), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(tr, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

// 4 x 8 int32 (each within int8 range) -> 32 int8 in order.
inline __m256i pack_i32x32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The absmax step of Q8_0 and Q8_1, bit-identical to ref::quantize_row_q8_0 (same d, same 1/d,
// same roundf): the 32 levels of x as int32 in q[0..4), and d = amax / 127 unrounded (Q8_1's s
// multiplies by it before the fp16 rounding).
inline float quantize_q8_levels(const float* x, __m256i q[4]) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(abs8(v[0]), abs8(v[1])), _mm256_max_ps(abs8(v[2]), abs8(v[3])));
    const float amax = hmax(m);
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[i], vid)));
    return d;
}

struct DotAvx2 {
    static constexpr bool kVnni = false;
    static __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
    }
    static __m256i dpwssd(__m256i acc, __m256i a, __m256i b) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
    }
};

#if LF_X86_AVX512VNNI
struct DotVnni {
    static constexpr bool kVnni = true;
    static __m256i dpbusd(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
    static __m256i dpwssd(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_epi32(acc, a, b); }
};
#endif

inline const uint8_t* byte_ptr(const void* p) { return static_cast<const uint8_t*>(p); }

// =============================================================== vec_dot

template <class D>
float vec_dot_q8_0(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ8_0*>(vw);
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const int64_t nb = n / kQK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    auto block = [&](int64_t i) {
        const __m256i wq = load256(w[i].qs);
        const __m256i a = load256(x[i].qs);
        const __m256i v = D::dpbusd(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq), _mm256_sign_epi8(a, wq));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(f16(w[i].d) * f16(x[i].d)));
    };
    for (; b + 1 < nb; b += 2) {
        acc0 = _mm256_add_ps(acc0, block(b));
        acc1 = _mm256_add_ps(acc1, block(b + 1));
    }
    if (b < nb) acc0 = _mm256_add_ps(acc0, block(b));
    return hsum(_mm256_add_ps(acc0, acc1));
}

template <class D>
float vec_dot_q4_0(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_0*>(vw);
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const int64_t nb = n / kQK;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    auto block = [&](int64_t i) {
        const __m256i u = q4_0_unpack(w[i].qs);  // q + 8, unsigned
        const __m256i a = load256(x[i].qs);
        __m256i v;
        if constexpr (D::kVnni) {
            v = _mm256_sub_epi32(D::dpbusd(_mm256_setzero_si256(), u, a),
                                 D::dpbusd(_mm256_setzero_si256(), eight, a));
        } else {
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, a), _mm256_maddubs_epi16(eight, a));
            v = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        }
        return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(f16(w[i].d) * f16(x[i].d)));
    };
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        acc0 = _mm256_add_ps(acc0, block(b));
        acc1 = _mm256_add_ps(acc1, block(b + 1));
    }
    if (b < nb) acc0 = _mm256_add_ps(acc0, block(b));
    return hsum(_mm256_add_ps(acc0, acc1));
}

// Row-invariant Q8_0 / Q4_0 dots: they accumulate exactly as the tiles below do for each output:
// per block, the int32 sums of its low and high 16 products, then acc_lo/acc_hi =
// fma(sum, dw * dx, acc) in block order, and acc_lo + acc_hi at the end. A row's result is then
// the same whether it went through the one-row path or a tile, which makes batched decode
// batch-invariant (KernelTable::gemm_invariant). The serial fma chains cost ~8-10% of decode
// speed against vec_dot_q8_0 / vec_dot_q4_0 (measured, 110M model), so plain decode keeps those.
template <class D, class Block>
inline __m256i q_0_block_sums(const Block& wb, const BlockQ8_0& xb) {
    const __m256i a = load256(xb.qs);
    if constexpr (std::is_same_v<Block, BlockQ4_0>) {
        const __m256i u = q4_0_unpack(wb.qs);  // q + 8, unsigned
        const __m256i eight = _mm256_set1_epi8(8);
        if constexpr (D::kVnni) {
            return _mm256_sub_epi32(D::dpbusd(_mm256_setzero_si256(), u, a), D::dpbusd(_mm256_setzero_si256(), eight, a));
        } else {
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, a), _mm256_maddubs_epi16(eight, a));
            return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        }
    } else {
        const __m256i wq = load256(wb.qs);
        return D::dpbusd(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq), _mm256_sign_epi8(a, wq));
    }
}

template <class D, class Block>
float vec_dot_q_0_invariant(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const Block*>(vw);
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const int64_t nb = n / kQK;
    float acc_lo = 0, acc_hi = 0;
    alignas(32) float h[8];
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const __m256i v0 = q_0_block_sums<D>(w[b], x[b]), v1 = q_0_block_sums<D>(w[b + 1], x[b + 1]);
        const __m256i v2 = q_0_block_sums<D>(w[b + 2], x[b + 2]), v3 = q_0_block_sums<D>(w[b + 3], x[b + 3]);
        // [b0 lo, b1 lo, b2 lo, b3 lo | b0 hi, b1 hi, b2 hi, b3 hi]
        _mm256_store_ps(h, _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3))));
        for (int i = 0; i < 4; ++i) {
            const float d = f16(w[b + i].d) * f16(x[b + i].d);
            acc_lo = std::fma(h[i], d, acc_lo);
            acc_hi = std::fma(h[i + 4], d, acc_hi);
        }
    }
    for (; b < nb; ++b) {
        const __m256i v = q_0_block_sums<D>(w[b], x[b]);
        const __m256i z = _mm256_setzero_si256();
        _mm256_store_ps(h, _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(v, z), z)));
        const float d = f16(w[b].d) * f16(x[b].d);
        acc_lo = std::fma(h[0], d, acc_lo);
        acc_hi = std::fma(h[4], d, acc_hi);
    }
    return acc_lo + acc_hi;
}

// One q4_K super-block's scales and mins (8 + 8 as 16-bit lanes); adds the mins' part,
// -dmin * sum_j m_j * (sum of the 32 activations of sub-block j, from the bsums), to acc_m.
inline __m256i q4k_block_mins(const BlockQ4_K& w, const BlockQ8_K& x, __m128& acc_m) {
    const float dmin = -x.d * f16(w.dmin);
    const __m256i sm16 = _mm256_cvtepu8_epi16(q4k_scales_mins(w.scales));  // 8 scales, 8 mins
    const __m256i bs = load256(x.bsums);
    const __m128i bs8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i pm = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), bs8);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(pm), acc_m);
    return sm16;
}

template <class D>
float vec_dot_q4_k(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const int64_t nb = n / kQK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const float d = x[b].d * f16(w[b].d);
        const __m256i sm16 = q4k_block_mins(w[b], x[b], acc_m);
        const __m128i sc128 = _mm256_castsi256_si128(sm16);
        const __m256i sc = _mm256_set_m128i(sc128, sc128);
        const uint8_t* q = w[b].qs;
        const int8_t* a = x[b].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m128i ml = bcast16_mask(2 * j), mh = bcast16_mask(2 * j + 1);
            const __m256i sl = _mm256_shuffle_epi8(sc, _mm256_set_m128i(ml, ml));
            const __m256i sh = _mm256_shuffle_epi8(sc, _mm256_set_m128i(mh, mh));
            const __m256i qb = load256(q + 32 * j);
            const __m256i lo = _mm256_and_si256(qb, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            sumi = D::dpwssd(sumi, _mm256_maddubs_epi16(lo, load256(a + 64 * j)), sl);
            sumi = D::dpwssd(sumi, _mm256_maddubs_epi16(hi, load256(a + 64 * j + 32)), sh);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum(acc) + _mm_cvtss_f32(acc_m);
}

template <class D>
float vec_dot_q6_k(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ6_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const int64_t nb = n / kQK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const float d = x[b].d * f16(w[b].d);
        const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales));
        const int8_t* a = x[b].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            __m256i q[4];
            q6k_unpack_half(w[b].ql + 64 * h, w[b].qh + 32 * h, q);
            for (int i = 0; i < 4; ++i) {
                const int k = 4 * h + i;
                const __m256i sc = _mm256_cvtepi8_epi16(q6k_chunk_scales(scales, k));
                sumi = D::dpwssd(sumi, _mm256_maddubs_epi16(q[i], load256(a + 32 * k)), sc);
            }
        }
        // The stored values are q + 32: subtract 32 * sum_g scale_g * bsum_g.
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load256(x[b].bsums));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum(acc);
}

// =============================================================== tile products (gemm)

// Rows of the tile that do not exist point at row 0 (results discarded), so every tile has 4 rows.
inline void row_ptrs(const void* w, size_t w_stride, int64_t r0, int64_t rw, const uint8_t* out[4]) {
    for (int i = 0; i < 4; ++i) out[i] = byte_ptr(w) + static_cast<size_t>(r0 + (i < rw ? i : 0)) * w_stride;
}

// Four fp16 block scales from four rows, as [d0 d1 d2 d3 d0 d1 d2 d3].
inline __m256 four_scales(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3) {
    const __m128 d = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, static_cast<short>(d3), static_cast<short>(d2),
                                                static_cast<short>(d1), static_cast<short>(d0)));
    return _mm256_set_m128(d, d);
}

// 4 weight rows x RC activation rows over Q8_0-activation blocks. Wt = BlockQ4_0 or BlockQ8_0.
// The 4 rows' int32 block sums are folded with two hadds into one vector per activation row
// ([r0 r1 r2 r3 | r0 r1 r2 r3] partial sums), so the float work per block is one cvt + fma per
// activation row instead of one per (row, activation row) pair.
template <class D, class Wt, int RC>
void tile_q_0(int64_t nb, const uint8_t* const wr[4], const uint8_t* const xc[RC], int64_t rw,
              float* out, size_t ldo) {
    __m256 acc[RC];
    for (int c = 0; c < RC; ++c) acc[c] = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        const Wt* wb[4];
        for (int i = 0; i < 4; ++i) wb[i] = reinterpret_cast<const Wt*>(wr[i]) + b;
        const __m256 dw = four_scales(wb[0]->d, wb[1]->d, wb[2]->d, wb[3]->d);
        __m256i wq[4], aux[4];
        for (int i = 0; i < 4; ++i) {
            if constexpr (std::is_same_v<Wt, BlockQ4_0>) {
                wq[i] = q4_0_unpack(wb[i]->qs);
            } else {
                wq[i] = load256(wb[i]->qs);
                if constexpr (D::kVnni) {  // -128 * sum(w): corrects for feeding a + 128 as unsigned
                    aux[i] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                              D::dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(-128), wq[i]));
                } else {
                    aux[i] = _mm256_sign_epi8(wq[i], wq[i]);  // |w|
                }
            }
        }
        for (int c = 0; c < RC; ++c) {
            const auto* xb = reinterpret_cast<const BlockQ8_0*>(xc[c]) + b;
            const __m256i a = load256(xb->qs);
            __m256i v[4];
            if constexpr (std::is_same_v<Wt, BlockQ4_0>) {
                if constexpr (D::kVnni) {
                    const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(),
                                                         D::dpbusd(_mm256_setzero_si256(), eight, a));
                    for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(neg, wq[i], a);
                } else {
                    const __m256i m8 = _mm256_maddubs_epi16(eight, a);
                    for (int i = 0; i < 4; ++i) {
                        v[i] = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(wq[i], a), m8), ones16);
                    }
                }
            } else {
                if constexpr (D::kVnni) {
                    const __m256i ua = _mm256_xor_si256(a, _mm256_set1_epi8(-128));  // a + 128
                    for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(aux[i], ua, wq[i]);
                } else {
                    for (int i = 0; i < 4; ++i) {
                        v[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(aux[i], _mm256_sign_epi8(a, wq[i])), ones16);
                    }
                }
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(dw, _mm256_set1_ps(f16(xb->d))), acc[c]);
        }
    }
    for (int c = 0; c < RC; ++c) {
        alignas(32) float t[8];
        _mm256_store_ps(t, acc[c]);
        for (int i = 0; i < rw; ++i) out[static_cast<size_t>(c) * ldo + i] = t[i] + t[i + 4];
    }
}

// tile_q_0 with the block scales already in f32: dws[b] holds the 4 rows' scales of block b,
// xs[c][b] activation row c's. Converting fp16 scales inside the block loop (pinsrw + cvtph per
// activation row per block, repeated for every row tile) was the hottest part of the prefill
// gemm; gemm_q_0 converts each scale once per call instead.
template <class D, class Wt, int RC>
void tile_q_0s(int64_t nb, const uint8_t* const wr[4], const uint8_t* const xc[RC], const __m128* dws,
               const float* const xs[RC], int64_t rw, float* out, size_t ldo) {
    __m256 acc[RC];
    for (int c = 0; c < RC; ++c) acc[c] = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        __m256i wq[4], aux[4];
        for (int i = 0; i < 4; ++i) {
            const Wt* wb = reinterpret_cast<const Wt*>(wr[i]) + b;
            if constexpr (std::is_same_v<Wt, BlockQ4_0>) {
                wq[i] = q4_0_unpack(wb->qs);
            } else {
                wq[i] = load256(wb->qs);
                if constexpr (D::kVnni) {
                    aux[i] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                              D::dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(-128), wq[i]));
                } else {
                    aux[i] = _mm256_sign_epi8(wq[i], wq[i]);
                }
            }
        }
        const __m256 dw = _mm256_broadcast_ps(dws + b);
        for (int c = 0; c < RC; ++c) {
            const __m256i a = load256(reinterpret_cast<const BlockQ8_0*>(xc[c])[b].qs);
            __m256i v[4];
            if constexpr (std::is_same_v<Wt, BlockQ4_0>) {
                if constexpr (D::kVnni) {
                    const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(),
                                                         D::dpbusd(_mm256_setzero_si256(), eight, a));
                    for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(neg, wq[i], a);
                } else {
                    const __m256i m8 = _mm256_maddubs_epi16(eight, a);
                    for (int i = 0; i < 4; ++i) {
                        v[i] = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(wq[i], a), m8), ones16);
                    }
                }
            } else {
                if constexpr (D::kVnni) {
                    const __m256i ua = _mm256_xor_si256(a, _mm256_set1_epi8(-128));
                    for (int i = 0; i < 4; ++i) v[i] = D::dpbusd(aux[i], ua, wq[i]);
                } else {
                    for (int i = 0; i < 4; ++i) {
                        v[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(aux[i], _mm256_sign_epi8(a, wq[i])), ones16);
                    }
                }
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(dw, _mm256_broadcast_ss(xs[c] + b)), acc[c]);
        }
    }
    for (int c = 0; c < RC; ++c) {
        alignas(32) float t[8];
        _mm256_store_ps(t, acc[c]);
        for (int i = 0; i < rw; ++i) out[static_cast<size_t>(c) * ldo + i] = t[i] + t[i + 4];
    }
}

// Decode (one activation row): out[r] = Dot(row r, x), each row's lines prefetched ahead of it
// (prefetch_ahead, x86_common.h). The nc == 1 path of gemm_q_0 and gemm_kquant.
template <float (*Dot)(int64_t, const void*, const void*)>
void dot_rows(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, float* out) {
    const uint8_t* const end = byte_ptr(w) + static_cast<size_t>(nr) * w_stride;
    for (int64_t r = 0; r < nr; ++r) {
        const uint8_t* row = byte_ptr(w) + static_cast<size_t>(r) * w_stride;
        prefetch_ahead(row, w_stride, end);
        out[r] = Dot(n, row, x);
    }
}

// Largest block count (K / 32) whose scales gemm_q_0 converts into stack buffers (K <= 16384);
// longer rows use tile_q_0, which converts scales as it goes.
constexpr int64_t kQ0MaxScaleBlocks = 512;
// Activation rows whose scales are converted together.
constexpr int64_t kQ0ScaleCols = 8;

template <class D, class Wt, float (*Dot)(int64_t, const void*, const void*)>
void gemm_q_0(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride,
              int64_t nc, float* out, size_t ldo) {
    // nc == 1 (decode): one row at a time. Measured: the 4-row tile below (hadd folding) is
    // 1.3-1.6x slower than the single-row dot at M = 1 (bench_kernels Matmul_M1, AVX2).
    if (nc == 1) return dot_rows<Dot>(n, w, w_stride, nr, x, out);
    const int64_t nb = n / kQK;
    constexpr int kRC = 4;
    if (nb <= kQ0MaxScaleBlocks) {
        alignas(32) float xs[kQ0ScaleCols][kQ0MaxScaleBlocks];
        alignas(16) __m128 dws[kQ0MaxScaleBlocks];
        for (int64_t g0 = 0; g0 < nc; g0 += kQ0ScaleCols) {
            const int64_t gc = min64(kQ0ScaleCols, nc - g0);
            for (int64_t c = 0; c < gc; ++c) {
                const auto* xb = reinterpret_cast<const BlockQ8_0*>(byte_ptr(x) + static_cast<size_t>(g0 + c) * x_stride);
                for (int64_t b = 0; b < nb; ++b) xs[c][b] = f16(xb[b].d);
            }
            for (int64_t r0 = 0; r0 < nr; r0 += 4) {
                const int64_t rw = min64(4, nr - r0);
                const uint8_t* wr[4];
                row_ptrs(w, w_stride, r0, rw, wr);
                for (int64_t b = 0; b < nb; ++b) {
                    dws[b] = _mm256_castps256_ps128(four_scales(reinterpret_cast<const Wt*>(wr[0])[b].d,
                                                                reinterpret_cast<const Wt*>(wr[1])[b].d,
                                                                reinterpret_cast<const Wt*>(wr[2])[b].d,
                                                                reinterpret_cast<const Wt*>(wr[3])[b].d));
                }
                for (int64_t c0 = 0; c0 < gc; c0 += kRC) {
                    const int64_t rc = min64(kRC, gc - c0);
                    const uint8_t* xc[kRC];
                    const float* xsc[kRC];
                    for (int c = 0; c < kRC; ++c) {
                        const int64_t cc = c0 + (c < rc ? c : 0);
                        xc[c] = byte_ptr(x) + static_cast<size_t>(g0 + cc) * x_stride;
                        xsc[c] = xs[cc];
                    }
                    float* o = out + static_cast<size_t>(g0 + c0) * ldo + static_cast<size_t>(r0);
                    switch (rc) {
                        case 1: tile_q_0s<D, Wt, 1>(nb, wr, xc, dws, xsc, rw, o, ldo); break;
                        case 2: tile_q_0s<D, Wt, 2>(nb, wr, xc, dws, xsc, rw, o, ldo); break;
                        case 3: tile_q_0s<D, Wt, 3>(nb, wr, xc, dws, xsc, rw, o, ldo); break;
                        default: tile_q_0s<D, Wt, 4>(nb, wr, xc, dws, xsc, rw, o, ldo); break;
                    }
                }
            }
        }
        return;
    }
    for (int64_t r0 = 0; r0 < nr; r0 += 4) {
        const int64_t rw = min64(4, nr - r0);
        const uint8_t* wr[4];
        row_ptrs(w, w_stride, r0, rw, wr);
        for (int64_t c0 = 0; c0 < nc; c0 += kRC) {
            const int64_t rc = min64(kRC, nc - c0);
            const uint8_t* xc[kRC];
            for (int c = 0; c < kRC; ++c) xc[c] = byte_ptr(x) + static_cast<size_t>(c0 + (c < rc ? c : 0)) * x_stride;
            float* o = out + static_cast<size_t>(c0) * ldo + static_cast<size_t>(r0);
            switch (rc) {
                case 1: tile_q_0<D, Wt, 1>(nb, wr, xc, rw, o, ldo); break;
                case 2: tile_q_0<D, Wt, 2>(nb, wr, xc, rw, o, ldo); break;
                case 3: tile_q_0<D, Wt, 3>(nb, wr, xc, rw, o, ldo); break;
                default: tile_q_0<D, Wt, 4>(nb, wr, xc, rw, o, ldo); break;
            }
        }
    }
}

// ---- K-quants: one super-block of one weight row unpacked into a uniform, L1-resident form,
// then multiplied against many activation rows. For every 32-value chunk k: unsigned values q[k]
// and an int16 scale vector sc[k] (lanes 0-7 scale the chunk's first 16 values, 8-15 the rest).
// bias: 16 int16 per-16-value-group coefficients applied to the activation bsums.
//   row · act = act.d * (dA * sum_k <q[k]·a[k], sc[k]> + dB * <bias, bsums>)
struct KPrep {
    __m256i q[8];
    __m256i sc[8];
    __m256i bias;
    float dA, dB;
};

// Q4_K / Q5_K's 12-byte (scale, min) pairs (q4k_scales_mins): the 8 scales as 16-bit lanes for
// the 8 chunks of 32 values, the mins as the bias, and the block's d and -dmin.
inline void kprep_k4_scales(const uint8_t* scales, uint16_t d, uint16_t dmin, KPrep& p) {
    const __m256i sm16 = _mm256_cvtepu8_epi16(q4k_scales_mins(scales));
    const __m128i sc128 = _mm256_castsi256_si128(sm16);
    const __m256i sc = _mm256_set_m128i(sc128, sc128);
    for (int k = 0; k < 8; ++k) {
        const __m128i m = bcast16_mask(k);
        p.sc[k] = _mm256_shuffle_epi8(sc, _mm256_set_m128i(m, m));
    }
    const __m128i mins = _mm256_extracti128_si256(sm16, 1);
    p.bias = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
    p.dA = f16(d);
    p.dB = -f16(dmin);
}

inline void kprep_q4_k(const BlockQ4_K& blk, KPrep& p) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; ++j) {
        const __m256i qb = load256(blk.qs + 32 * j);
        p.q[2 * j] = _mm256_and_si256(qb, m4);
        p.q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
    }
    kprep_k4_scales(blk.scales, blk.d, blk.dmin, p);
}

inline void kprep_q6_k(const BlockQ6_K& blk, KPrep& p) {
    q6k_unpack_half(blk.ql, blk.qh, p.q);
    q6k_unpack_half(blk.ql + 64, blk.qh + 32, p.q + 4);
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales));
    for (int k = 0; k < 8; ++k) p.sc[k] = _mm256_cvtepi8_epi16(q6k_chunk_scales(scales, k));
    p.bias = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(_mm256_cvtepi8_epi16(scales), 5));
    p.dA = p.dB = f16(blk.d);
}

// One row's super-block into its accumulator: s += dA·da · sumi + dB·da · (bias · bsums), the
// bias term folded into the integer sum (q6_K: dA == dB) or kept apart (q4_K's mins).
template <bool kFoldBias>
inline void kquant_add(__m256i sumi, __m256i bias16, __m256i bsums, float dAda, float dBda, __m256& s) {
    const __m256i bias = _mm256_madd_epi16(bias16, bsums);
    if constexpr (kFoldBias) {
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sumi, bias)), _mm256_set1_ps(dAda), s);
    } else {
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(dAda), s);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bias), _mm256_set1_ps(dBda), s);
    }
}

// RW prepared rows x RC activation super-blocks, accumulated into acc[r * ld + c].
template <class D, int RW, int RC, bool kFoldBias>
inline void kquant_step(const KPrep* p, const BlockQ8_K* const xb[RC], __m256* acc, int ld) {
    __m256i sumi[RW][RC];
    for (int r = 0; r < RW; ++r)
        for (int c = 0; c < RC; ++c) sumi[r][c] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
        __m256i a[RC];
        for (int c = 0; c < RC; ++c) a[c] = load256(xb[c]->qs + 32 * k);
        for (int r = 0; r < RW; ++r) {
            for (int c = 0; c < RC; ++c) {
                sumi[r][c] = D::dpwssd(sumi[r][c], _mm256_maddubs_epi16(p[r].q[k], a[c]), p[r].sc[k]);
            }
        }
    }
    for (int c = 0; c < RC; ++c) {
        const __m256i bs = load256(xb[c]->bsums);
        const float da = xb[c]->d;
        for (int r = 0; r < RW; ++r) {
            kquant_add<kFoldBias>(sumi[r][c], p[r].bias, bs, p[r].dA * da, p[r].dB * da, acc[r * ld + c]);
        }
    }
}

// Activation rows per pass over a row block; their 8-lane accumulators live in a stack array.
constexpr int kKCols = 16;

// The column loop of the K-quant tiles: RW weight rows, prepared once per super-block by PrepFn,
// against the activation rows in passes of kKCols, two activation rows a step (Step2, Step1 for
// an odd last one). Shared by the 256-bit tiles below and the AVX-512 table's q4_K / q6_K ones.
template <class P, class Wt, int RW, void (*PrepFn)(const Wt&, P&),
          void (*Step2)(const P*, const BlockQ8_K* const*, __m256*, int),
          void (*Step1)(const P*, const BlockQ8_K* const*, __m256*, int)>
void kquant_tile_rows(int64_t nb, const uint8_t* const wr[RW], const uint8_t* x, size_t x_stride, int64_t nc,
                      float* out, size_t ldo) {
    alignas(64) P p[RW];
    __m256 acc[RW * kKCols];
    for (int64_t c0 = 0; c0 < nc; c0 += kKCols) {
        const int cb = static_cast<int>(min64(kKCols, nc - c0));
        for (int i = 0; i < RW * kKCols; ++i) acc[i] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; ++b) {
            for (int r = 0; r < RW; ++r) PrepFn(reinterpret_cast<const Wt*>(wr[r])[b], p[r]);
            int c = 0;
            for (; c + 1 < cb; c += 2) {
                const BlockQ8_K* xb[2];
                for (int i = 0; i < 2; ++i) {
                    xb[i] = reinterpret_cast<const BlockQ8_K*>(x + static_cast<size_t>(c0 + c + i) * x_stride) + b;
                }
                Step2(p, xb, acc + c, kKCols);
            }
            if (c < cb) {
                const BlockQ8_K* xb[1] = {reinterpret_cast<const BlockQ8_K*>(x + static_cast<size_t>(c0 + c) * x_stride) + b};
                Step1(p, xb, acc + c, kKCols);
            }
        }
        for (int c = 0; c < cb; ++c) {
            for (int r = 0; r < RW; ++r) out[static_cast<size_t>(c0 + c) * ldo + r] = hsum(acc[r * kKCols + c]);
        }
    }
}

using KTileRowsFn = void (*)(int64_t, const uint8_t* const*, const uint8_t*, size_t, int64_t, float*, size_t);

// The multi-row K-quant gemm: 4 weight rows a pass (Rows4), then single rows (Rows1).
template <KTileRowsFn Rows4, KTileRowsFn Rows1>
void kquant_tiles(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride, int64_t nc,
                  float* out, size_t ldo) {
    const int64_t nb = n / kQK_K;
    const uint8_t* xp = byte_ptr(x);
    int64_t r0 = 0;
    for (; r0 + 4 <= nr; r0 += 4) {
        const uint8_t* wr[4];
        row_ptrs(w, w_stride, r0, 4, wr);
        Rows4(nb, wr, xp, x_stride, nc, out + r0, ldo);
    }
    for (; r0 < nr; ++r0) {
        const uint8_t* wr[1] = {byte_ptr(w) + static_cast<size_t>(r0) * w_stride};
        Rows1(nb, wr, xp, x_stride, nc, out + r0, ldo);
    }
}

template <class D, class Wt, int RW, bool kFoldBias, void (*Prep)(const Wt&, KPrep&)>
constexpr KTileRowsFn kquant_rows =
    kquant_tile_rows<KPrep, Wt, RW, Prep, kquant_step<D, RW, 2, kFoldBias>, kquant_step<D, RW, 1, kFoldBias>>;

template <class D, class Wt, bool kFoldBias, void (*Prep)(const Wt&, KPrep&),
          float (*Dot)(int64_t, const void*, const void*)>
void gemm_kquant(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride,
                 int64_t nc, float* out, size_t ldo) {
    if (nc == 1) return dot_rows<Dot>(n, w, w_stride, nr, x, out);
    kquant_tiles<kquant_rows<D, Wt, 4, kFoldBias, Prep>, kquant_rows<D, Wt, 1, kFoldBias, Prep>>(
        n, w, w_stride, nr, x, x_stride, nc, out, ldo);
}

}  // namespace
}  // namespace llmforge::kernels::x86
