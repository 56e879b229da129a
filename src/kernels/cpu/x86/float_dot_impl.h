// Dot products and register-blocked tile products for F32 / F16 / BF16 weights against F32
// activations, written once over a vector-traits type `V` (8 lanes for AVX2, 16 for AVX-512).
// Internal linkage, see x86_common.h.
//
// V provides: type T, kLanes, kRW x kRC (tile shape sized to the register file), zero(),
// fmadd(a, b, c), loadx(const float*), load_w<WT>(const uint16_t/float*), hsum(T).
#pragma once


#include "kernels/cpu/x86/x86_common.h"

namespace llmforge::kernels::x86 {
namespace {

enum class FW { kF32, kF16, kBF16 };

template <FW WT>
inline float w_scalar(const void* w, int64_t i) {
    if constexpr (WT == FW::kF32) {
        return static_cast<const float*>(w)[i];
    } else if constexpr (WT == FW::kF16) {
        return f16(static_cast<const uint16_t*>(w)[i]);
    } else {
        return bf16(static_cast<const uint16_t*>(w)[i]);
    }
}

template <class V, FW WT>
float vec_dot_float(int64_t n, const void* w, const void* vx) {
    const auto* x = static_cast<const float*>(vx);
    constexpr int L = V::kLanes;
    typename V::T a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    int64_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        a0 = V::fmadd(V::template load_w<WT>(w, i), V::loadx(x + i), a0);
        a1 = V::fmadd(V::template load_w<WT>(w, i + L), V::loadx(x + i + L), a1);
        a2 = V::fmadd(V::template load_w<WT>(w, i + 2 * L), V::loadx(x + i + 2 * L), a2);
        a3 = V::fmadd(V::template load_w<WT>(w, i + 3 * L), V::loadx(x + i + 3 * L), a3);
    }
    for (; i + L <= n; i += L) a0 = V::fmadd(V::template load_w<WT>(w, i), V::loadx(x + i), a0);
    float s = V::hsum(V::add(V::add(a0, a1), V::add(a2, a3)));
    for (; i < n; ++i) s += w_scalar<WT>(w, i) * x[i];
    return s;
}

// RW weight rows x RC activation rows; every weight vector is converted once and used RC times.
template <class V, FW WT, int RW, int RC>
void tile_float(int64_t n, const void* const wr[], const float* const xc[], float* out, size_t ldo) {
    constexpr int L = V::kLanes;
    typename V::T acc[RW][RC];
    for (int r = 0; r < RW; ++r)
        for (int c = 0; c < RC; ++c) acc[r][c] = V::zero();
    int64_t i = 0;
    for (; i + L <= n; i += L) {
        typename V::T xv[RC];
        for (int c = 0; c < RC; ++c) xv[c] = V::loadx(xc[c] + i);
        for (int r = 0; r < RW; ++r) {
            const typename V::T wv = V::template load_w<WT>(wr[r], i);
            for (int c = 0; c < RC; ++c) acc[r][c] = V::fmadd(wv, xv[c], acc[r][c]);
        }
    }
    for (int c = 0; c < RC; ++c) {
        for (int r = 0; r < RW; ++r) {
            float s = V::hsum(acc[r][c]);
            for (int64_t j = i; j < n; ++j) s += w_scalar<WT>(wr[r], j) * xc[c][j];
            out[static_cast<size_t>(c) * ldo + r] = s;
        }
    }
}

template <class V, FW WT, int RW>
void tile_float_rc(int64_t n, const void* const wr[], const float* const xc[], int rc, float* out, size_t ldo) {
    static_assert(V::kRC <= 6);
    switch (rc) {
        case 1: tile_float<V, WT, RW, 1>(n, wr, xc, out, ldo); break;
        case 2: tile_float<V, WT, RW, 2>(n, wr, xc, out, ldo); break;
        case 3: if constexpr (V::kRC >= 3) tile_float<V, WT, RW, 3>(n, wr, xc, out, ldo); break;
        case 4: if constexpr (V::kRC >= 4) tile_float<V, WT, RW, 4>(n, wr, xc, out, ldo); break;
        case 5: if constexpr (V::kRC >= 5) tile_float<V, WT, RW, 5>(n, wr, xc, out, ldo); break;
        case 6: if constexpr (V::kRC >= 6) tile_float<V, WT, RW, 6>(n, wr, xc, out, ldo); break;
        default: break;
    }
}

// BF16 weights against one activation row (decode), 8-lane vectors. A 256-bit load holds 16
// weights; each 32-bit lane is the pair (w[2k], w[2k+1]), so a shift left by 16 gives the even
// elements and masking the low half gives the odd ones, both already f32 bit patterns. Against x
// split once per call into even and odd elements, that is 2 integer ops + 2 FMAs per 16 weights
// instead of 2 x (zero-extend + shift + FMA). x is split in segments of kSeg elements kept on
// the stack. The next 4 rows are prefetched at the same pace: a profile of the plain tile showed
// the time on load stalls (12.6 GB/s at one thread where f32 rows stream at 22). 110M bf16 tg128
// (interleaved with llama-bench): 1 thread 47 -> 51-55 t/s, 2 threads 75-82 -> 92-97 t/s.
inline void gemm_bf16_row(int64_t n, const void* w, size_t w_stride, int64_t nr, const float* x, float* out) {
    constexpr int64_t kSeg = 2048;
    alignas(32) float xs[2 * kSeg];  // per 16 elements: the 8 even ones, then the 8 odd ones
    const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    const int64_t n16 = n / 16 * 16;
    const auto* wb = static_cast<const uint8_t*>(w);
    for (int64_t s0 = 0; s0 < n16; s0 += kSeg) {
        const int64_t sn = min64(kSeg, n16 - s0);
        for (int64_t i = 0; i < sn; i += 16) {
            for (int j = 0; j < 8; ++j) {
                xs[2 * i + j] = x[s0 + i + 2 * j];
                xs[2 * i + 8 + j] = x[s0 + i + 2 * j + 1];
            }
        }
        for (int64_t r0 = 0; r0 < nr; r0 += 4) {
            const int rw = static_cast<int>(min64(4, nr - r0));
            const uint8_t* wr[4];
            for (int r = 0; r < 4; ++r) {
                wr[r] = wb + static_cast<size_t>(r0 + (r < rw ? r : 0)) * w_stride + static_cast<size_t>(s0) * 2;
            }
            __m256 ae[4], ao[4];
            for (int r = 0; r < 4; ++r) ae[r] = ao[r] = _mm256_setzero_ps();
            for (int64_t i = 0; i < sn; i += 16) {
                const __m256 xe = _mm256_load_ps(xs + 2 * i), xo = _mm256_load_ps(xs + 2 * i + 8);
                for (int r = 0; r < 4; ++r) {
                    _mm_prefetch(reinterpret_cast<const char*>(wr[r] + 4 * w_stride + 2 * i), _MM_HINT_T0);
                    const __m256i v = load256(wr[r] + 2 * i);
                    ae[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, ae[r]);
                    ao[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi_mask)), xo, ao[r]);
                }
            }
            for (int r = 0; r < rw; ++r) {
                const float part = hsum(_mm256_add_ps(ae[r], ao[r]));
                out[r0 + r] = s0 == 0 ? part : out[r0 + r] + part;
            }
        }
    }
    for (int64_t r = 0; r < nr; ++r) {
        const void* row = wb + static_cast<size_t>(r) * w_stride;
        float s = n16 > 0 ? out[r] : 0.0f;
        for (int64_t j = n16; j < n; ++j) s += w_scalar<FW::kBF16>(row, j) * x[j];
        out[r] = s;
    }
}

// F32 / F16 weights against one activation row (decode): 4 rows a pass, two vectors of each row
// per step, and the same offsets of the next 4 rows prefetched as they stream (decode reads every
// weight once, so the time is the memory's; the plain tile left load stalls, as gemm_bf16_row's
// profile showed). Each row's sum: 2 x 4 interleaved vector accumulators, then the tail in order.
template <class V, FW WT>
void gemm_float_row(int64_t n, const void* w, size_t w_stride, int64_t nr, const float* x, float* out) {
    constexpr int L = V::kLanes;
    constexpr size_t kElem = WT == FW::kF32 ? 4 : 2;
    const auto* wb = static_cast<const uint8_t*>(w);
    const int64_t n2 = n / (2 * L) * (2 * L);
    for (int64_t r0 = 0; r0 < nr; r0 += 4) {
        const int rw = static_cast<int>(min64(4, nr - r0));
        const uint8_t* wr[4];
        for (int r = 0; r < 4; ++r) wr[r] = wb + static_cast<size_t>(r0 + (r < rw ? r : 0)) * w_stride;
        typename V::T a[4][2];
        for (int r = 0; r < 4; ++r) a[r][0] = a[r][1] = V::zero();
        for (int64_t i = 0; i < n2; i += 2 * L) {
            const typename V::T x0 = V::loadx(x + i), x1 = V::loadx(x + i + L);
            for (int r = 0; r < 4; ++r) {
                _mm_prefetch(reinterpret_cast<const char*>(wr[r] + 4 * w_stride + static_cast<size_t>(i) * kElem),
                             _MM_HINT_T0);
                a[r][0] = V::fmadd(V::template load_w<WT>(wr[r], i), x0, a[r][0]);
                a[r][1] = V::fmadd(V::template load_w<WT>(wr[r], i + L), x1, a[r][1]);
            }
        }
        for (int r = 0; r < rw; ++r) {
            float s = V::hsum(V::add(a[r][0], a[r][1]));
            for (int64_t j = n2; j < n; ++j) s += w_scalar<WT>(wr[r], j) * x[j];
            out[r0 + r] = s;
        }
    }
}

template <class V, FW WT>
void gemm_float(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride,
                int64_t nc, float* out, size_t ldo) {
    constexpr int kRW = V::kRW, kRC = V::kRC;
    static_assert(kRW == 4);
    // One-row bf16 goes to the 256-bit row kernel on every table: the AVX-512 table used to send
    // it through the 16-lane tiles, which decoded 110M bf16 20% slower than the AVX2 table on a
    // Zen5 (68.7 vs 84.9 t/s, issue 21). Correctness on the AVX-512 table: matmul_test (emulated
    // under SIMDe where the CPU lacks AVX-512); on an Intel AVX-512 machine the AVX-512 table now
    // decodes 110M bf16 at 1.01-1.03x the AVX2 one (bench/isa_ab.sh); Zen5 not re-measured.
    if constexpr (WT == FW::kBF16) {
        if (nc == 1) return gemm_bf16_row(n, w, w_stride, nr, static_cast<const float*>(x), out);
    } else {
        if (nc == 1) return gemm_float_row<V, WT>(n, w, w_stride, nr, static_cast<const float*>(x), out);
    }
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* xb = static_cast<const uint8_t*>(x);
    for (int64_t c0 = 0; c0 < nc; c0 += kRC) {
        const int rc = static_cast<int>(min64(kRC, nc - c0));
        const float* xc[kRC];
        for (int c = 0; c < rc; ++c) xc[c] = reinterpret_cast<const float*>(xb + static_cast<size_t>(c0 + c) * x_stride);
        for (int64_t r0 = 0; r0 < nr; r0 += kRW) {
            const int rw = static_cast<int>(min64(kRW, nr - r0));
            const void* wr[kRW];
            for (int r = 0; r < rw; ++r) wr[r] = wb + static_cast<size_t>(r0 + r) * w_stride;
            float* o = out + static_cast<size_t>(c0) * ldo + static_cast<size_t>(r0);
            switch (rw) {
                case 1: tile_float_rc<V, WT, 1>(n, wr, xc, rc, o, ldo); break;
                case 2: tile_float_rc<V, WT, 2>(n, wr, xc, rc, o, ldo); break;
                case 3: tile_float_rc<V, WT, 3>(n, wr, xc, rc, o, ldo); break;
                default: tile_float_rc<V, WT, 4>(n, wr, xc, rc, o, ldo); break;
            }
        }
    }
}

// 8-lane traits (AVX2 + FMA + F16C).
struct V8 {
    using T = __m256;
    static constexpr int kLanes = 8, kRW = 4, kRC = 3;
    static T zero() { return _mm256_setzero_ps(); }
    static T add(T a, T b) { return _mm256_add_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
    static T loadx(const float* p) { return _mm256_loadu_ps(p); }
    template <FW WT>
    static T load_w(const void* w, int64_t i) {
        if constexpr (WT == FW::kF32) return _mm256_loadu_ps(static_cast<const float*>(w) + i);
        else if constexpr (WT == FW::kF16) return load_f16x8(static_cast<const uint16_t*>(w) + i);
        else return load_bf16x8(static_cast<const uint16_t*>(w) + i);
    }
    static float hsum(T v) { return x86::hsum(v); }
};

#if LF_X86_AVX512F
// 16-lane traits (AVX-512F); 32 registers allow a 4 x 6 tile (24 accumulators).
struct V16 {
    using T = __m512;
    static constexpr int kLanes = 16, kRW = 4, kRC = 6;
    static T zero() { return _mm512_setzero_ps(); }
    static T add(T a, T b) { return _mm512_add_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
    static T loadx(const float* p) { return _mm512_loadu_ps(p); }
    template <FW WT>
    static T load_w(const void* w, int64_t i) {
        if constexpr (WT == FW::kF32) {
            return _mm512_loadu_ps(static_cast<const float*>(w) + i);
        } else if constexpr (WT == FW::kF16) {
            return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
        } else {
            const __m512i v = _mm512_cvtepu16_epi32(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
            return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        }
    }
    static float hsum(T v) { return _mm512_reduce_add_ps(v); }
};

// F32 on the AVX-512 table: the one-row (decode) product with 256-bit vectors, as on the AVX2
// table, which decoded 110M f32 5-7% faster on this project's AVX-512 machine (bench/isa_ab.sh,
// docs/PERFORMANCE.md); more rows: the 16-lane tiles.
inline void gemm_f32_avx512(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride,
                            int64_t nc, float* out, size_t ldo) {
    if (nc == 1) return gemm_float_row<V8, FW::kF32>(n, w, w_stride, nr, static_cast<const float*>(x), out);
    gemm_float<V16, FW::kF32>(n, w, w_stride, nr, x, x_stride, nc, out, ldo);
}
#endif

}  // namespace
}  // namespace llmforge::kernels::x86
