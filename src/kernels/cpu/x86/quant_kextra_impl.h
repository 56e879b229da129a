// Q2_K / Q3_K / Q5_K dot products and tiles for x86, written once per dot policy D
// (quant_dot_impl.h) and registered by the AVX2 table (avx2/kextra_avx2.cpp) and the AVX-512 VNNI
// table (avx512/table_avx512.cpp). Internal linkage, see x86_common.h.
//
// Each type only adds a "kprep" (quant_dot_impl.h, KPrep): one super-block unpacked into eight
// 32-value chunks of small unsigned values, an int16 scale per 16 values and 16 coefficients for
// the activation bsums. The tiles are gemm_kquant's; the one-row dot runs the very same
// kquant_step on one row and one activation row, so a row's result is bit-identical whether it is
// computed alone or inside a tile: the tiles double as the row-invariant gemm
// (KernelTable::gemm_invariant), and so do Q4_K's and Q6_K's through the same one-row dot.
//
// Value ranges (maddubs pair sums must stay below 2^15 on AVX2): Q2_K 0..3, Q3_K 0..7 (stored
// value + 4), Q5_K 0..31, against |q8| <= 127.
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"

namespace llmforge::kernels::x86 {
namespace {

// Q2_K: values (qs >> 2j) & 3 of each 32-byte half, scales the low nibbles of the 16 scale
// bytes, mins (applied to the bsums) the high nibbles: d * sc * q - dmin * m.
inline void kprep_q2_k(const BlockQ2_K& blk, KPrep& p) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i q0 = load256(blk.qs), q1 = load256(blk.qs + 32);
    for (int j = 0; j < 4; ++j) {
        p.q[j] = _mm256_and_si256(_mm256_srli_epi16(q0, 2 * j), m3);
        p.q[4 + j] = _mm256_and_si256(_mm256_srli_epi16(q1, 2 * j), m3);
    }
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i sc = _mm_and_si128(s, m4);
    for (int k = 0; k < 8; ++k) p.sc[k] = _mm256_cvtepi8_epi16(q6k_chunk_scales(sc, k));
    p.bias = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
    p.dA = f16(blk.d);
    p.dB = -f16(blk.dmin);
}

// Moves bit `from` of every byte to bit `to` (from, to < 8; other bits are garbage, the caller
// masks): one 16-bit shift by |to - from| takes bit `from` to `to` in the low byte and 8 + from to
// 8 + to in the high byte, both inside the 16-bit lane. (Shifting the other way first, e.g.
// << to then >> from, would push the high byte's top bits out of the lane.)
inline __m256i bit_to(__m256i v, int from, int to) {
    return from >= to ? _mm256_srli_epi16(v, from - to) : _mm256_slli_epi16(v, to - from);
}

// Q3_K's 16 six-bit scales, unpacked from 12 bytes (layout in ref/quants_kextra_ref.cpp) and
// shifted to signed int8 (-32..31).
inline __m128i q3k_scales(const uint8_t* s) {
    uint32_t a[3];
    std::memcpy(a, s, 12);
    const uint32_t m2 = 0x03030303u, m4 = 0x0f0f0f0fu;
    const uint32_t r0 = (a[0] & m4) | (((a[2] >> 0) & m2) << 4);
    const uint32_t r1 = (a[1] & m4) | (((a[2] >> 2) & m2) << 4);
    const uint32_t r2 = ((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4);
    const uint32_t r3 = ((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4);
    const __m128i v = _mm_setr_epi32(static_cast<int>(r0), static_cast<int>(r1), static_cast<int>(r2),
                                     static_cast<int>(r3));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

// Q3_K: stored value = low 2 bits + 4 * hmask bit (0..7), true value = stored - 4, so the
// bsums coefficient is -4 * scale and both parts share d.
inline void kprep_q3_k(const BlockQ3_K& blk, KPrep& p) {
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i q0 = load256(blk.qs), q1 = load256(blk.qs + 32);
    const __m256i hm = load256(blk.hmask);
    for (int k = 0; k < 8; ++k) {
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(k < 4 ? q0 : q1, 2 * (k % 4)), m3);
        p.q[k] = _mm256_or_si256(lo, _mm256_and_si256(bit_to(hm, k, 2), four));
    }
    const __m128i sc = q3k_scales(blk.scales);
    for (int k = 0; k < 8; ++k) p.sc[k] = _mm256_cvtepi8_epi16(q6k_chunk_scales(sc, k));
    p.bias = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 2));
    p.dA = p.dB = f16(blk.d);
}

// Q5_K: Q4_K's nibbles and scales plus a 5th bit, bit k of qh[l] for chunk k.
inline void kprep_q5_k(const BlockQ5_K& blk, KPrep& p) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    const __m256i qh = load256(blk.qh);
    for (int j = 0; j < 4; ++j) {
        const __m256i qb = load256(blk.qs + 32 * j);
        const __m256i h0 = _mm256_and_si256(bit_to(qh, 2 * j, 4), b4);
        const __m256i h1 = _mm256_and_si256(bit_to(qh, 2 * j + 1, 4), b4);
        p.q[2 * j] = _mm256_or_si256(_mm256_and_si256(qb, m4), h0);
        p.q[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), h1);
    }
    kprep_k4_scales(blk.scales, blk.d, blk.dmin, p);
}

// One row against one activation row through kquant_step: the same operations, in the same
// order, as each output of gemm_kquant's tiles.
template <class D, class Wt, bool kFoldBias, void (*Prep)(const Wt&, KPrep&)>
float vec_dot_kprep(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const Wt*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const int64_t nb = n / kQK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        KPrep p;
        Prep(w[b], p);
        const BlockQ8_K* xb[1] = {x + b};
        kquant_step<D, 1, 1, kFoldBias>(&p, xb, &acc, 1);
    }
    return hsum(acc);
}

template <class D, class Wt, bool kFoldBias, void (*Prep)(const Wt&, KPrep&)>
void register_kprep_type(KernelTable& t, DType type, bool dot_and_gemm) {
    constexpr auto dot = vec_dot_kprep<D, Wt, kFoldBias, Prep>;
    constexpr auto gemm = gemm_kquant<D, Wt, kFoldBias, Prep, dot>;
    if (dot_and_gemm) {
        t.vec_dot[static_cast<int>(type)] = dot;
        t.gemm[static_cast<int>(type)] = gemm;
    }
    t.gemm_invariant[static_cast<int>(type)] = gemm;
}

template <class D>
void register_kextra_x86(KernelTable& t) {
    register_kprep_type<D, BlockQ2_K, false, kprep_q2_k>(t, DType::Q2_K, true);
    register_kprep_type<D, BlockQ3_K, true, kprep_q3_k>(t, DType::Q3_K, true);
    register_kprep_type<D, BlockQ5_K, false, kprep_q5_k>(t, DType::Q5_K, true);
    // Q4_K / Q6_K keep their own faster one-row dots and tiles (quant_avx2.cpp, table_avx512.cpp);
    // only their row-invariant gemm comes from here.
    register_kprep_type<D, BlockQ4_K, false, kprep_q4_k>(t, DType::Q4_K, false);
    register_kprep_type<D, BlockQ6_K, true, kprep_q6_k>(t, DType::Q6_K, false);
}

}  // namespace
}  // namespace llmforge::kernels::x86
