// The SIMDe mapping of the AVX-512 intrinsics that the AVX-512 kernels use, for the emulated test
// build only (LLMFORGE_AVX512_EMULATED, tests/kernels/avx512_emu_*.cpp): the same kernel sources
// compiled for AVX2 with every _mm512_* name below replaced by SIMDe's portable implementation
// (Debian's libsimde-dev), so tests check the AVX-512 code on machines without AVX-512.
// Intrinsics SIMDe 0.7.4 lacks are written here, lane by lane (the masked loads and stores touch
// only their enabled lanes, as the instructions do) or from two 256-bit halves (x86_common.h).
// A kernel file includes this (through x86_common.h or directly) before any intrinsic it uses.
#pragma once

#if !defined(LLMFORGE_AVX512_EMULATED)
#error "avx512_emulation.h is for the emulated test build only"
#endif

#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

#define __mmask16 simde__mmask16
#define __m512bh simde__m512bh
#define __m512 simde__m512
#define __m512i simde__m512i
#define _mm512_setzero_ps simde_mm512_setzero_ps
#define _mm512_add_ps simde_mm512_add_ps
#define _mm512_fmadd_ps simde_mm512_fmadd_ps
#define _mm512_loadu_ps simde_mm512_loadu_ps
#define _mm512_castsi512_ps simde_mm512_castsi512_ps
#define _mm512_slli_epi32 simde_mm512_slli_epi32
#undef _mm256_dpbusd_epi32  // GCC's headers define these two as macros (AVX-VNNI)
#undef _mm256_dpwssd_epi32
#define _mm256_dpbusd_epi32 simde_mm256_dpbusd_epi32
#define _mm256_dpwssd_epi32 simde_mm256_dpwssd_epi32
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#define _mm512_and_si512 simde_mm512_and_si512
#define _mm512_srli_epi16 simde_mm512_srli_epi16
#define _mm512_set1_epi8 simde_mm512_set1_epi8
#define _mm512_set1_epi16 simde_mm512_set1_epi16
#define _mm512_set1_ps simde_mm512_set1_ps
#define _mm512_inserti64x4 simde_mm512_inserti64x4
#define _mm512_castsi256_si512 simde_mm512_castsi256_si512
#define _mm512_maddubs_epi16 simde_mm512_maddubs_epi16
#define _mm512_dpwssd_epi32 simde_mm512_dpwssd_epi32
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#define _mm512_or_si512 simde_mm512_or_si512
#define _mm512_cvtepi8_epi16 simde_mm512_cvtepi8_epi16
#define _mm512_castsi512_si256 simde_mm512_castsi512_si256
#define _mm512_extracti64x4_epi64 simde_mm512_extracti64x4_epi64
#define _mm512_castps_si512 simde_mm512_castps_si512
#define _mm512_castps512_ps256 simde_mm512_castps512_ps256
#define _mm512_set_epi64 simde_mm512_set_epi64
#define _mm512_broadcast_i32x4 simde_mm512_broadcast_i32x4
#define _mm512_broadcast_i64x4 simde_mm512_broadcast_i64x4
#define _mm512_shuffle_epi8 simde_mm512_shuffle_epi8
#define _mm512_add_epi32 simde_mm512_add_epi32
#define _mm512_sllv_epi16 simde_mm512_sllv_epi16
#define _mm512_srlv_epi16 simde_mm512_srlv_epi16
// Not in SIMDe 0.7.4: built from two 256-bit halves below.
#define _mm512_cvtph_ps emu_mm512_cvtph_ps
#define _mm512_cvtepu16_epi32 emu_mm512_cvtepu16_epi32
#define _mm512_reduce_add_ps emu_mm512_reduce_add_ps
#define _mm512_cvtepi32_ps emu_mm512_cvtepi32_ps
#define _mm512_xor_si512 simde_mm512_xor_si512
#define _mm512_dpbusd_epi32 simde_mm512_dpbusd_epi32
#define _mm512_permutexvar_epi32 simde_mm512_permutexvar_epi32
#define _mm512_sub_epi32 simde_mm512_sub_epi32
#define _mm512_load_ps simde_mm512_load_ps
#define _mm512_store_ps simde_mm512_store_ps
#define _mm512_mul_ps simde_mm512_mul_ps
#define _mm512_shuffle_i32x4 simde_mm512_shuffle_i32x4
#define _mm512_unpacklo_epi32 simde_mm512_unpacklo_epi32
#define _mm512_unpackhi_epi32 simde_mm512_unpackhi_epi32
#define _mm512_unpacklo_epi64 simde_mm512_unpacklo_epi64
#define _mm512_unpackhi_epi64 simde_mm512_unpackhi_epi64
#define _mm512_srli_epi32 simde_mm512_srli_epi32
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#undef _mm512_setr_epi32  // a macro in GCC's avx512fintrin.h
#define _mm512_setr_epi32 simde_mm512_setr_epi32
#define _mm512_mask_blend_epi32 simde_mm512_mask_blend_epi32
#define _mm512_permutex2var_ps simde_mm512_permutex2var_ps
#define _mm512_dpbf16_ps simde_mm512_dpbf16_ps
#define _mm512_storeu_si512 simde_mm512_storeu_si512
#define _mm512_storeu_ps simde_mm512_storeu_ps
// The activations and softmax (x86/act_impl.h); some are macros in GCC's headers without
// optimisation: undefined first. SIMDe 0.7.4 has no rcp14: an exact reciprocal here, which the
// Newton step in act_impl.h leaves within an ulp of the hardware's result.
#undef _mm512_roundscale_ps
#undef _mm512_cmp_ps_mask
#undef _mm512_scalef_ps
#define _mm512_sub_ps simde_mm512_sub_ps
#define _mm512_fnmadd_ps simde_mm512_fnmadd_ps
#define _mm512_min_ps simde_mm512_min_ps
#define _mm512_max_ps simde_mm512_max_ps
#define _mm512_roundscale_ps simde_mm512_roundscale_ps
#define _mm512_scalef_ps simde_mm512_scalef_ps
#define _mm512_cmp_ps_mask simde_mm512_cmp_ps_mask
#define _mm512_mask_blend_ps simde_mm512_mask_blend_ps
#define _mm512_abs_ps simde_mm512_abs_ps
#define _mm512_and_ps simde_mm512_and_ps
#define _mm512_or_ps simde_mm512_or_ps
#define _mm512_rcp14_ps(x) simde_mm512_div_ps(simde_mm512_set1_ps(1.0f), (x))
// Not in SIMDe 0.7.4: lane by lane below.
#define _mm512_maskz_loadu_ps lf_emu_mm512_maskz_loadu_ps
#define _mm512_mask_storeu_ps lf_emu_mm512_mask_storeu_ps
#define _mm512_maskz_loadu_epi32 lf_emu_mm512_maskz_loadu_epi32
#define _mm512_mask_storeu_epi32 lf_emu_mm512_mask_storeu_epi32
#define _mm512_cmpgt_epu32_mask lf_emu_mm512_cmpgt_epu32_mask

static inline simde__m512 lf_emu_mm512_maskz_loadu_ps(simde__mmask16 m, const void* p) {
    float v[16] = {};
    for (int i = 0; i < 16; ++i)
        if ((m >> i) & 1) std::memcpy(&v[i], static_cast<const char*>(p) + 4 * i, 4);
    return simde_mm512_loadu_ps(v);
}
static inline simde__m512i lf_emu_mm512_maskz_loadu_epi32(simde__mmask16 m, const void* p) {
    return simde_mm512_castps_si512(lf_emu_mm512_maskz_loadu_ps(m, p));
}
static inline void lf_emu_mm512_mask_storeu_ps(void* p, simde__mmask16 m, simde__m512 x) {
    float v[16];
    simde_mm512_storeu_ps(v, x);
    for (int i = 0; i < 16; ++i)
        if ((m >> i) & 1) std::memcpy(static_cast<char*>(p) + 4 * i, &v[i], 4);
}
static inline void lf_emu_mm512_mask_storeu_epi32(void* p, simde__mmask16 m, simde__m512i x) {
    lf_emu_mm512_mask_storeu_ps(p, m, simde_mm512_castsi512_ps(x));
}
static inline simde__mmask16 lf_emu_mm512_cmpgt_epu32_mask(simde__m512i a, simde__m512i b) {
    uint32_t x[16], y[16];
    simde_mm512_storeu_si512(x, a);
    simde_mm512_storeu_si512(y, b);
    simde__mmask16 m = 0;
    for (int i = 0; i < 16; ++i)
        if (x[i] > y[i]) m = static_cast<simde__mmask16>(m | (1u << i));
    return m;
}
