// The encoder activations (KernelTable::act: GELU in its erf and tanh forms, quick_gelu, tanh),
// written once over lane traits (ActLanes8: AVX2, ActLanes16: AVX-512) and instantiated per ISA.
// One branch-free formula per kind, the same for every element (tails go through masked lanes),
// to ~1e-6 relative of encoder_math.h's act_value (tests/kernels/kernels_test.cpp). libm's
// scalar erff per element was 8-19% of a ViT-B encode (docs/PERFORMANCE.md "Vision encoder").
// Internal linkage, see x86_common.h.
#pragma once

#include "kernels/cpu/x86/x86_common.h"

// The emulated AVX-512 test build maps the intrinsics used here onto SIMDe in
// x86/avx512_emulation.h (through x86_common.h).

namespace llmforge::kernels::x86 {
namespace {

// erfc(z), z >= 0: Numerical Recipes' erfcc, t = 1 / (1 + z/2), erfc(z) = t·exp(−z² + P(t)), P of
// degree 9 (kErfcP, highest power first) with fractional error < 1.2e-7 for every z >= 0. In
// float the rounding of the exponent adds ~|z²|·6e-8 relative (1e-6 at z = 3, erfc = 2e-5).
constexpr float kErfcP[] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                            -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
// tanh(x) = x + x·z·Q(z), z = x², for |x| < 0.625 (Cephes tanhf; highest power first).
constexpr float kTanhQ[] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f,
                            -3.33332819422e-1f};

// V: T, kLanes, set1, add, sub, mul, fmadd(a, b, c) = a·b + c, fnmadd(a, b, c) = c − a·b,
// recip(d) (to ~1 ulp, 1 / inf = 0), exp (0 far below, inf far above), abs, with_sign(m, x) (|m| with x's
// sign), neg_select(x, a, b) (a where x < 0, else b), gt_select(x, c, a, b) (a where x > c),
// load_n / store_n (the first n lanes, n < kLanes).
template <class V>
inline typename V::T erfc_v(typename V::T z) {
    using T = typename V::T;
    const T t = V::mul(V::set1(2.0f), V::recip(V::add(z, V::set1(2.0f))));
    T p = V::set1(kErfcP[0]);
    for (int i = 1; i < 10; ++i) p = V::fmadd(p, t, V::set1(kErfcP[i]));
    return V::mul(t, V::exp(V::fnmadd(z, z, p)));
}

// x · σ(a) = x / (1 + exp(−a)): quick_gelu (a = 1.702x) and GELU's tanh form, 0.5·x·(1 + tanh(u))
// = x·σ(2u), which has no cancellation for u < 0. exp(−a) = inf for large −a gives x / inf = ±0.
template <class V>
inline typename V::T x_sigmoid_v(typename V::T x, typename V::T a) {
    const typename V::T e = V::exp(V::sub(V::set1(0.0f), a));
    return V::mul(x, V::recip(V::add(V::set1(1.0f), e)));
}

template <class V, int kKind>
inline typename V::T act_v(typename V::T x) {
    using T = typename V::T;
    if constexpr (kKind == 0) {
        // 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(|x|/√2) below 0, 0.5·x·(2 − erfc(|x|/√2)) above
        const T e = erfc_v<V>(V::mul(V::abs(x), V::set1(0.70710678118654752f)));
        return V::mul(V::mul(V::set1(0.5f), x), V::neg_select(x, e, V::sub(V::set1(2.0f), e)));
    } else if constexpr (kKind == 1) {  // u = √(2/π)·(x + 0.044715·x³)
        const T u = V::mul(V::set1(2 * 0.79788456080286536f),
                           V::fmadd(V::set1(0.044715f), V::mul(V::mul(x, x), x), x));  // 2u
        return x_sigmoid_v<V>(x, u);
    } else if constexpr (kKind == 2) {
        return x_sigmoid_v<V>(x, V::mul(V::set1(1.702f), x));
    } else {  // tanh: the polynomial below |x| = 0.625, else ±(1 − 2 / (exp(2|x|) + 1))
        const T a = V::abs(x), z = V::mul(x, x);
        T q = V::set1(kTanhQ[0]);
        for (int i = 1; i < 5; ++i) q = V::fmadd(q, z, V::set1(kTanhQ[i]));
        const T small = V::fmadd(V::mul(q, z), x, x);
        const T big = V::fnmadd(V::set1(2.0f), V::recip(V::add(V::exp(V::add(a, a)), V::set1(1.0f))), V::set1(1.0f));
        return V::gt_select(a, 0.625f, V::with_sign(big, x), small);
    }
}

template <class V, int kKind>
void act_kind(const float* x, float* y, int64_t n) {
    constexpr int L = V::kLanes;
    int64_t i = 0;
    for (; i + L <= n; i += L) V::storeu(y + i, act_v<V, kKind>(V::loadu(x + i)));
    if (i < n) V::store_n(y + i, act_v<V, kKind>(V::load_n(x + i, n - i)), n - i);
}

template <class V>
void act(int kind, const float* x, float* y, int64_t n) {
    switch (kind) {
        case 0: return act_kind<V, 0>(x, y, n);
        case 1: return act_kind<V, 1>(x, y, n);
        case 2: return act_kind<V, 2>(x, y, n);
        default: return act_kind<V, 3>(x, y, n);
    }
}

// 8 lanes (AVX2 + FMA): exp8 (x86_common.h), an exact division.
struct ActLanes8 {
    using T = __m256;
    static constexpr int kLanes = 8;
    static T set1(float v) { return _mm256_set1_ps(v); }
    static T add(T a, T b) { return _mm256_add_ps(a, b); }
    static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
    static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
    static T fnmadd(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
    static T recip(T d) { return _mm256_div_ps(_mm256_set1_ps(1.0f), d); }
    static T exp(T x) { return exp8(x); }
    static T abs(T x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
    static T with_sign(T m, T x) { return _mm256_or_ps(m, _mm256_and_ps(_mm256_set1_ps(-0.0f), x)); }
    static T neg_select(T x, T a, T b) { return _mm256_blendv_ps(b, a, x); }  // x's sign bit picks
    static T gt_select(T x, float c, T a, T b) {
        return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_set1_ps(c), _CMP_GT_OQ));
    }
    static T loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void storeu(float* p, T v) { _mm256_storeu_ps(p, v); }
    static __m256i mask(int64_t n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static T load_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, mask(n)); }
    static void store_n(float* p, T v, int64_t n) { _mm256_maskstore_ps(p, mask(n), v); }
};

#if LF_X86_AVX512F
// 16 lanes (AVX-512F): masks instead of blends, exp's 2^n by vscalefps (which also gives the 0 and
// inf ends), reciprocals by rcp14 and one Newton step (~1 ulp; a division is ~10 cycles a vector).
struct ActLanes16 {
    using T = __m512;
    static constexpr int kLanes = 16;
    static T set1(float v) { return _mm512_set1_ps(v); }
    static T add(T a, T b) { return _mm512_add_ps(a, b); }
    static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
    static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
    static T fnmadd(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
    static T recip(T d) {  // 1 / inf = 0 (the step alone would give 0 · (2 − inf · 0) = NaN)
        const T r = _mm512_rcp14_ps(d), one_step = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(d, _mm512_set1_ps(__builtin_inff()), _CMP_NEQ_UQ),
                                    _mm512_setzero_ps(), one_step);
    }
    // Cody-Waite x = n ln2 + r, |r| <= ln2/2, the degree-6 polynomial of exp8, then p · 2^n. x is
    // clamped to ±104 first (2^±150: past the float range either way; NaN stays NaN: min/max return
    // their second operand then).
    static T exp(T x) {
        const T xc = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(104.0f), x));
        const T n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        T r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        T p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
        return _mm512_scalef_ps(p, n);
    }
    static T abs(T x) { return _mm512_abs_ps(x); }
    static T with_sign(T m, T x) {
        return _mm512_or_ps(m, _mm512_and_ps(_mm512_set1_ps(-0.0f), x));
    }
    static T neg_select(T x, T a, T b) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(0.0f), _CMP_LT_OQ), b, a);
    }
    static T gt_select(T x, float c, T a, T b) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(c), _CMP_GT_OQ), b, a);
    }
    static T loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void storeu(float* p, T v) { _mm512_storeu_ps(p, v); }
    static __mmask16 mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
    static T load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
    static void store_n(float* p, T v, int64_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
};
#endif

}  // namespace
}  // namespace llmforge::kernels::x86
