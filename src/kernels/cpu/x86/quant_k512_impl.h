// 512-bit K-quant dots for the AVX-512 table (VNNI): q4_K · q8_K with 64 quant bytes per step.
//
// The 256-bit vec_dot_q4_k (quant_dot_impl.h) walks a super-block in four 32-byte chunks; here
// one zmm holds two chunks (four 32-value sub-blocks: low nibbles are sub-blocks 4h and 4h+2,
// high nibbles 4h+1 and 4h+3), so a super-block is two steps. Sums per sub-block are the same
// integers (maddubs pairs, then vpdpwssd by the sub-block's scale), accumulated per super-block
// in f32 as before: only the f32 summation order of the final reduction differs. Measured on
// MoE decode, where experts have few super-blocks per row (docs/PERFORMANCE.md, issue 17).
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"

#if LF_X86_AVX512VNNI
namespace llmforge::kernels::x86 {

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// [lo 32 bytes at p, hi 32 bytes at q]
inline __m512i load2x256(const void* p, const void* q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(p)), load256(q), 1);
}

inline float vec_dot_q4_k_512(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const int64_t nb = n / kQK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    alignas(16) int16_t s[8];
    for (int64_t b = 0; b < nb; ++b) {
        const float d = x[b].d * f16(w[b].d);
        const __m256i sm16 = q4k_block_mins(w[b], x[b], acc_m);
        _mm_store_si128(reinterpret_cast<__m128i*>(s), _mm256_castsi256_si128(sm16));
        const uint8_t* q = w[b].qs;
        const int8_t* a = x[b].qs;
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i qb = load512(q + 64 * h);
            const __m512i lo = _mm512_and_si512(qb, m4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qb, 4), m4);
            const __m512i a_lo = load2x256(a + 128 * h, a + 128 * h + 64);
            const __m512i a_hi = load2x256(a + 128 * h + 32, a + 128 * h + 96);
            const __m512i s_lo = _mm512_inserti64x4(_mm512_set1_epi16(s[4 * h]), _mm256_set1_epi16(s[4 * h + 2]), 1);
            const __m512i s_hi =
                _mm512_inserti64x4(_mm512_set1_epi16(s[4 * h + 1]), _mm256_set1_epi16(s[4 * h + 3]), 1);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, a_lo), s_lo);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, a_hi), s_hi);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(acc_m);
}

// q6_K · q8_K: per 128-value half, the four 32-value chunks as two zmm ([0|1] and [2|3]: their
// activations are 64 consecutive bytes), two vpdpwssd instead of four; the same integers as
// vec_dot_q6_k, the +32 offset removed from the per-block sum as there.
inline float vec_dot_q6_k_512(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ6_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const int64_t nb = n / kQK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const float d = x[b].d * f16(w[b].d);
        const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales));
        const int8_t* a = x[b].qs;
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i l = load512(w[b].ql + 64 * h);  // [l0 | l1]
            const __m256i qh = load256(w[b].qh + 32 * h);
            const __m512i h01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(qh, 4)),
                                                   _mm256_slli_epi16(qh, 2), 1);
            const __m512i h23 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(h01, m30));
            const __m512i q23 =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(h23, m30));
            const int k = 4 * h;
            const __m512i s01 = _mm512_cvtepi8_epi16(_mm256_set_m128i(q6k_chunk_scales(scales, k + 1),
                                                                      q6k_chunk_scales(scales, k)));
            const __m512i s23 = _mm512_cvtepi8_epi16(_mm256_set_m128i(q6k_chunk_scales(scales, k + 3),
                                                                      q6k_chunk_scales(scales, k + 2)));
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q01, load512(a + 32 * k)), s01);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q23, load512(a + 32 * k + 64)), s23);
        }
        __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load256(x[b].bsums));
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(off, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum(acc);
}

}  // namespace llmforge::kernels::x86
#endif
