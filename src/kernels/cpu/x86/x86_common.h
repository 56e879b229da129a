// Helpers shared by the x86 ISA folders (avx2/, avx512/). Include ONLY from files compiled with at
// least -mavx2 -mfma -mf16c (those folders), never from generic code.
//
// Everything here has internal linkage (an unnamed namespace): each ISA's translation units get
// their own copy compiled with their own -m flags. With external linkage (plain `inline` or a
// template) the linker would keep one arbitrary copy for the whole program and AVX-512 code could
// end up running on an AVX2-only CPU. For the same reason ISA files call no std:: function
// templates or inline library functions (std::min, std::fill, std::exp, ...): an out-of-line copy
// of those is a weak symbol shared with generic code. Use the helpers below and C functions
// (expf, sqrtf). Check: `nm -C <isa object> | grep ' [WV] '` prints nothing.
#pragma once

#include <immintrin.h>
#include <math.h>

// LF_X86_AVX512F / LF_X86_AVX512VNNI: whether this translation unit may use AVX-512F and
// AVX512_VNNI(+VL) intrinsics. Normally the compiler's target flags decide. With
// LLMFORGE_AVX512_EMULATED (a test build only, tests/kernels/avx512_emu_table.cpp) the same
// source is compiled for AVX2 and the few AVX-512 intrinsics it uses are mapped onto SIMDe's
// portable implementations (Debian's libsimde-dev), so the AVX-512 table's code runs, and is
// checked against the scalar reference, on machines without AVX-512.
#if defined(LLMFORGE_AVX512_EMULATED)
#include "kernels/cpu/x86/avx512_emulation.h"
#define LF_X86_AVX512F 1
#define LF_X86_AVX512VNNI 1
#else
#if defined(__AVX512F__)
#define LF_X86_AVX512F 1
#else
#define LF_X86_AVX512F 0
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define LF_X86_AVX512VNNI 1
#else
#define LF_X86_AVX512VNNI 0
#endif
#endif

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace llmforge::kernels::x86 {
namespace {

// ---- scalar helpers (instead of std::min / std::max / std::fill) ----
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline float maxf(float a, float b) { return a > b ? a : b; }
inline void fill_f32(float* p, int64_t n, float v) {
    for (int64_t i = 0; i < n; ++i) p[i] = v;
}

// ---- scalar conversions (F16C) ----
inline float f16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
// Same as dtype.h's bf16_to_fp32 / fp32_to_bf16 (which are external-linkage inlines; see above).
inline float bf16(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

// ---- horizontal reductions ----
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
// (v0 + v1) + (v2 + v3)
inline double hsum_pd(__m256d v) {
    alignas(32) double part[4];
    _mm256_store_pd(part, v);
    return (part[0] + part[1]) + (part[2] + part[3]);
}
inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

// ---- 8-wide loads of half-precision weights ----
inline __m256 load_f16x8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load_bf16x8(const uint16_t* p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

// ---- exp(x), 8 lanes: Cody-Waite reduction x = n ln2 + r, degree-6 polynomial on |r| <= ln2/2.
// Max relative error ~2 ulp over the normal range; returns 0 below -87.33 and +inf above 88.72.
inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.7228391f), lo = _mm256_set1_ps(-87.3365479f);
    const __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n for n in [-126, 128): n = 128 (x near the top) is split as 2^127 * 2 to avoid overflow
    // of the exponent field.
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i big = _mm256_cmpgt_epi32(ni, _mm256_set1_epi32(127));
    const __m256i e = _mm256_sub_epi32(ni, _mm256_and_si256(big, _mm256_set1_epi32(1)));
    const __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(p, pow2);
    p = _mm256_blendv_ps(p, _mm256_add_ps(p, p), _mm256_castsi256_ps(big));
    // Outside the clamp: 0 below, inf above (x > hi), NaN stays NaN via the unordered compare.
    p = _mm256_blendv_ps(p, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    p = _mm256_blendv_ps(p, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    return _mm256_blendv_ps(p, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// ---- Q4_K scales: 12 packed bytes -> 8 six-bit scales (bytes 0-7) and 8 mins (bytes 8-15) ----
// With w0..w2 the three little-endian words: scales 0-3 = w0 & 0x3f.., mins 0-3 = w1 & 0x3f..,
// scales 4-7 = (w2 & 0x0f..) | ((w0 >> 6) & 0x03..) << 4, mins 4-7 = ((w2 >> 4) & 0x0f..) | ((w1 >> 6) & 0x03..) << 4.
// Done in registers: building the vector through memory would stall on store forwarding.
// Reads 16 bytes from s: the caller's block continues past the 12 scale bytes.
inline __m128i q4k_scales_mins(const uint8_t* s) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));  // [w0 w1 w2 -]
    const __m128i lo = _mm_and_si128(v, _mm_set1_epi32(0x3f3f3f3f));        // [sc0-3 m0-3 - -]
    const __m128i w22 = _mm_shuffle_epi32(v, 0xAA);                          // [w2 w2 w2 w2]
    const __m128i nib = _mm_and_si128(_mm_srlv_epi32(w22, _mm_setr_epi32(0, 4, 0, 0)), _mm_set1_epi32(0x0f0f0f0f));
    const __m128i top = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(v, 6), _mm_set1_epi32(0x03030303)), 4);
    const __m128i hi = _mm_or_si128(nib, top);                               // [sc4-7 m4-7 - -]
    return _mm_unpacklo_epi32(lo, hi);                                       // [sc0-3 sc4-7 m0-3 m4-7]
}

// Byte-shuffle masks that broadcast one int16 lane k (of 8, in the low 128 bits) to a full xmm.
inline __m128i bcast16_mask(int k) {
    return _mm_set1_epi16(static_cast<short>((2 * k) | ((2 * k + 1) << 8)));
}

// Q6_K: 16 int8 scales -> for 32-element chunk k, int8 [sc[2k] x 8, sc[2k+1] x 8].
inline __m128i q6k_chunk_scales(__m128i scales, int k) {
    const __m128i m = _mm_set_epi64x(0x0101010101010101LL * (2 * k + 1), 0x0101010101010101LL * (2 * k));
    return _mm_shuffle_epi8(scales, m);
}

// Q6_K unpack of one 128-value half: v[32*i + l] for chunk i in 0..3, unsigned 0..63.
inline void q6k_unpack_half(const uint8_t* ql, const uint8_t* qh, __m256i out[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    out[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
    out[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
    out[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m30));
    out[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
}

// Q4_0: 16 packed bytes -> 32 unsigned nibbles in element order (low nibbles, then high ones).
inline __m256i q4_0_unpack(const uint8_t* qs) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(b, m4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
    return _mm256_set_m128i(hi, lo);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Decode streams every weight once. A kernel about to read [p, p + bytes) touches the cache lines
// of [p + kStreamAhead, p + kStreamAhead + bytes), not past `end` (the matrix's last row: an expert
// slice's neighbours are other experts). The hardware prefetchers alone left the one-row products
// well short of the machine's bandwidth (issue 21, docs/PERFORMANCE.md: 110M q4_k_m decode ~115 ->
// ~185 t/s, 1.1B q4_0 +25% on Sapphire Rapids); 2-4 KiB ahead measured within a few percent.
constexpr size_t kStreamAhead = 3072;
inline void prefetch_ahead(const uint8_t* p, size_t bytes, const uint8_t* end) {
    for (const uint8_t* q = p + kStreamAhead; q < p + kStreamAhead + bytes && q < end; q += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(q), _MM_HINT_T0);
    }
}

#if defined(LLMFORGE_AVX512_EMULATED)
inline simde__m512 emu_mm512_cvtph_ps(__m256i h) {
    const __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    const __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    return simde_mm512_insertf32x8(simde_mm512_castps256_ps512(lo), hi, 1);
}
inline simde__m512i emu_mm512_cvtepu16_epi32(__m256i h) {
    const __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h));
    const __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1));
    return simde_mm512_inserti64x4(simde_mm512_castsi256_si512(lo), hi, 1);
}
inline simde__m512 emu_mm512_cvtepi32_ps(simde__m512i v) {
    const __m256 lo = _mm256_cvtepi32_ps(simde_mm512_castsi512_si256(v));
    const __m256 hi = _mm256_cvtepi32_ps(simde_mm512_extracti64x4_epi64(v, 1));
    return simde_mm512_insertf32x8(simde_mm512_castps256_ps512(lo), hi, 1);
}
inline float emu_mm512_reduce_add_ps(simde__m512 v) {
    const __m256 lo = simde_mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castsi256_ps(simde_mm512_extracti64x4_epi64(simde_mm512_castps_si512(v), 1));
    return hsum(_mm256_add_ps(lo, hi));
}
#endif

}  // namespace
}  // namespace llmforge::kernels::x86
