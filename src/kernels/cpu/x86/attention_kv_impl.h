// One-position attention over a KV cache stored as f32 / f16 / q8_0 / q4_0 rows
// (KernelTable::attention_kv), written once over lane traits (8 lanes for AVX2, 16 for
// AVX-512) and instantiated per ISA. Internal linkage, see x86_common.h.
//
// Same shape as the f32 kernel (ops_avx2.cpp): flash-decoding per KV head group, chunks of
// kKvChunk positions, online (running max) softmax. What differs is how a row is read:
//  * scores: the query stays f32; a quantised key row is turned into floats a block (32 values)
//    at a time in registers (int8 -> int32 -> f32), multiplied with the query's block and scaled
//    by the block's d once per block: q.k = sum_b d_b * sum_j q_j k_bj. Like llama.cpp's CPU
//    flash attention we read K as stored, but unlike it we do not round the query to q8_0 (its
//    vec_dot_type): decode at long context is bound by reading the cache, not by these
//    conversions, so the exact f32 query costs nothing measurable and adds no second rounding;
//  * values: out_h += (p_t * d_b) * v_bj, the same conversion, accumulated in f32 registers
//    (llama.cpp dequantises V rows to f32 and accumulates in f32 too).
// Nothing is ever expanded to an f32 copy of the cache; a block is converted where it is used.
#pragma once

#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/x86/x86_common.h"

// The emulated AVX-512 test build maps the intrinsics used here onto SIMDe in
// x86/avx512_emulation.h (through x86_common.h). SIMDe 0.7.4 has no 512-bit cvtepi8_epi32 /
// cvtepi32_ps: the conversion is built from two 256-bit halves there.

namespace llmforge::kernels::x86 {
namespace {

constexpr int kKvMaxGroup = 8;  // query heads per pass (more: another pass over the rows)
constexpr int kKvChunk = 64;    // positions per online-softmax step

// ---- lane traits: T (L floats), arithmetic, and 16 int8 -> floats ----
struct KvLanes8 {
    using T = __m256;
    static constexpr int L = 8;
    static T zero() { return _mm256_setzero_ps(); }
    static T set1(float a) { return _mm256_set1_ps(a); }
    static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
    static T load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
    static T load_f16(const uint16_t* p) { return load_f16x8(p); }
    static float hsum(T v) { return x86::hsum(v); }
    // 16 int8 (elements in order) -> 16 / L vectors.
    static void from_i8x16(__m128i b, T* out) {
        out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
    }
};

#if LF_X86_AVX512F
struct KvLanes16 {
    using T = __m512;
    static constexpr int L = 16;
    static T zero() { return _mm512_setzero_ps(); }
    static T set1(float a) { return _mm512_set1_ps(a); }
    static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
    static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
    static T load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
    static T load_f16(const uint16_t* p) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static float hsum(T v) { return _mm512_reduce_add_ps(v); }
    static void from_i8x16(__m128i b, T* out) {
#if defined(LLMFORGE_AVX512_EMULATED)
        const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
        out[0] = simde_mm512_insertf32x8(simde_mm512_castps256_ps512(lo), hi, 1);
#else
        out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
#endif
    }
};
#endif

constexpr bool kv_float(DType t) { return t == DType::F32 || t == DType::F16; }

// Bytes of D values of a KV type (row_bytes() of dtype.h is an external-linkage inline: see
// x86_common.h on why ISA files do not call those).
inline size_t kv_head_bytes(DType t, int64_t D) {
    switch (t) {
        case DType::F32: return static_cast<size_t>(D) * 4;
        case DType::F16: return static_cast<size_t>(D) * 2;
        case DType::Q8_0: return static_cast<size_t>(D / 32) * sizeof(BlockQ8_0);
        default: return static_cast<size_t>(D / 32) * sizeof(BlockQ4_0);
    }
}

template <DType T>
constexpr size_t kv_block_bytes() {
    return T == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
}

// Elements [i, i + L) of a float-type row.
template <class V, DType T>
inline typename V::T kv_load(const uint8_t* row, int64_t i) {
    if constexpr (T == DType::F32) {
        return V::load(reinterpret_cast<const float*>(row) + i);
    } else {
        return V::load_f16(reinterpret_cast<const uint16_t*>(row) + i);
    }
}

// One q8_0 / q4_0 block -> 32 / L vectors of its integer values (element order); returns d.
template <class V, DType T>
inline float kv_block(const uint8_t* blk, typename V::T* out) {
    constexpr int H = 16 / V::L;  // vectors per 16 elements
    if constexpr (T == DType::Q8_0) {
        const auto* b = reinterpret_cast<const BlockQ8_0*>(blk);
        V::from_i8x16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)), out);
        V::from_i8x16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16)), out + H);
        return f16(b->d);
    } else {
        // Q4_0: element j is the low nibble of qs[j], element j + 16 the high one; value q - 8.
        const auto* b = reinterpret_cast<const BlockQ4_0*>(blk);
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
        const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
        V::from_i8x16(_mm_sub_epi8(_mm_and_si128(x, m4), eight), out);
        V::from_i8x16(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), m4), eight), out + H);
        return f16(b->d);
    }
}

// dots[p] = q . row p (D values) for P rows: P independent accumulator chains.
template <class V, DType KT, int P>
inline void kv_dots(const float* q, const uint8_t* const* rows, int64_t D, float* dots) {
    using T = typename V::T;
    constexpr int L = V::L;
    T acc[P];
    for (int p = 0; p < P; ++p) acc[p] = V::zero();
    if constexpr (kv_float(KT)) {
        for (int64_t i = 0; i < D; i += L) {
            const T qv = V::load(q + i);
            for (int p = 0; p < P; ++p) acc[p] = V::fmadd(qv, kv_load<V, KT>(rows[p], i), acc[p]);
        }
    } else {
        constexpr int NB = 32 / L;
        for (int64_t b = 0; b < D / 32; ++b) {
            T qv[NB];
            for (int j = 0; j < NB; ++j) qv[j] = V::load(q + 32 * b + j * L);
            for (int p = 0; p < P; ++p) {
                T x[NB];
                const float d = kv_block<V, KT>(rows[p] + static_cast<size_t>(b) * kv_block_bytes<KT>(), x);
                T part = V::mul(qv[0], x[0]);
                for (int j = 1; j < NB; ++j) part = V::fmadd(qv[j], x[j], part);
                acc[p] = V::fmadd(part, V::set1(d), acc[p]);
            }
        }
    }
    for (int p = 0; p < P; ++p) dots[p] = V::hsum(acc[p]);
}

// o[d0 .. d0 + NV*L) += sum_t w[t] * row_t[d0 ..], NV vectors held in registers over the chunk.
template <class V, DType VT, int NV>
inline void kv_accumulate_seg(float* o_ptr, const float* w, const uint8_t* v, size_t vs, int tc, int64_t d0) {
    using T = typename V::T;
    constexpr int L = V::L;
    T o[NV];
    for (int j = 0; j < NV; ++j) o[j] = V::load(o_ptr + j * L);
    if constexpr (kv_float(VT)) {
        for (int t = 0; t < tc; ++t) {
            const uint8_t* row = v + static_cast<size_t>(t) * vs;
            const T pw = V::set1(w[t]);
            for (int j = 0; j < NV; ++j) o[j] = V::fmadd(pw, kv_load<V, VT>(row, d0 + j * L), o[j]);
        }
    } else {
        constexpr int NB = 32 / L;
        if constexpr (NV % NB == 0) {
            const size_t off = static_cast<size_t>(d0 / 32) * kv_block_bytes<VT>();
            for (int t = 0; t < tc; ++t) {
                const uint8_t* row = v + static_cast<size_t>(t) * vs + off;
                for (int b = 0; b < NV / NB; ++b) {
                    T x[NB];
                    const float d = kv_block<V, VT>(row + static_cast<size_t>(b) * kv_block_bytes<VT>(), x);
                    const T pw = V::set1(w[t] * d);
                    for (int j = 0; j < NB; ++j) o[b * NB + j] = V::fmadd(pw, x[j], o[b * NB + j]);
                }
            }
        }
    }
    for (int j = 0; j < NV; ++j) V::store(o_ptr + j * L, o[j]);
}

template <class V, DType VT>
inline void kv_accumulate(float* oh, const float* w, const uint8_t* v, size_t vs, int tc, int64_t D) {
    constexpr int L = V::L;
    for (int64_t d0 = 0; d0 < D; d0 += 8 * L) {
        switch (static_cast<int>(min64(8, (D - d0) / L))) {
            case 8: kv_accumulate_seg<V, VT, 8>(oh + d0, w, v, vs, tc, d0); break;
            case 7: kv_accumulate_seg<V, VT, 7>(oh + d0, w, v, vs, tc, d0); break;
            case 6: kv_accumulate_seg<V, VT, 6>(oh + d0, w, v, vs, tc, d0); break;
            case 5: kv_accumulate_seg<V, VT, 5>(oh + d0, w, v, vs, tc, d0); break;
            case 4: kv_accumulate_seg<V, VT, 4>(oh + d0, w, v, vs, tc, d0); break;
            case 3: kv_accumulate_seg<V, VT, 3>(oh + d0, w, v, vs, tc, d0); break;
            case 2: kv_accumulate_seg<V, VT, 2>(oh + d0, w, v, vs, tc, d0); break;
            default: kv_accumulate_seg<V, VT, 1>(oh + d0, w, v, vs, tc, d0); break;
        }
    }
}

// ---- softmax pieces (8 lanes), shared with the f32 attention and softmax in avx2/ops_avx2.cpp ----
inline float max_of(const float* x, int64_t n) {
    float mx = -__builtin_inff();
    int64_t i = 0;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        mx = hmax(m);
    }
    for (; i < n; ++i) mx = maxf(mx, x[i]);
    return mx;
}

// x[i] = exp(x[i] - mx); returns the sum.
inline float exp_shift_sum(float* x, int64_t n, float mx) {
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum(s);
    for (; i < n; ++i) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

inline void scale_inplace(float* x, int64_t n, float a) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), va));
    for (; i < n; ++i) x[i] *= a;
}


// Asks for the K and V head slices of rows [r, r + 4) (those < n_kv) ahead of use. A slice is a
// few dozen bytes of a row that holds every head, so rows are far apart (k_stride); the hardware
// stream prefetchers stop at each 4 KiB page, and without this decode at long context waits on
// memory. Measured on the 110M shape's q8_0 rows (12 layers x 12 heads x 4096 positions, one
// thread): 12.5 ms without, 5.6 ms with; 3.8 ms when the rows are already in cache.
inline void kv_prefetch(const uint8_t* k, size_t ks, size_t kh, const uint8_t* v, size_t vs, size_t vh, int64_t r,
                        int64_t n_kv) {
    for (int64_t j = r; j < r + 4 && j < n_kv; ++j) {
        const char* kr = reinterpret_cast<const char*>(k + static_cast<size_t>(j) * ks);
        const char* vr = reinterpret_cast<const char*>(v + static_cast<size_t>(j) * vs);
        _mm_prefetch(kr, _MM_HINT_T0);
        _mm_prefetch(kr + kh - 1, _MM_HINT_T0);
        _mm_prefetch(vr, _MM_HINT_T0);
        _mm_prefetch(vr + vh - 1, _MM_HINT_T0);
    }
}

// G (<= kKvMaxGroup) query heads that read the same kv head: each chunk of rows is scored for
// every head, then its values are accumulated, while the rows are still in L1.
template <class V, DType KT, DType VT>
void kv_attention_group(const float* q, const uint8_t* k, size_t ks, const uint8_t* v, size_t vs, int64_t n_kv, int G,
                        int64_t D, float scale, float* out) {
    alignas(64) float s[kKvMaxGroup][kKvChunk];
    float m[kKvMaxGroup], l[kKvMaxGroup];
    const size_t kh = kv_head_bytes(KT, D), vh = kv_head_bytes(VT, D);
    for (int h = 0; h < G; ++h) {
        m[h] = -__builtin_inff();
        l[h] = 0;
        fill_f32(out + h * D, D, 0.0f);
    }
    for (int64_t t0 = 0; t0 < n_kv; t0 += kKvChunk) {
        const int tc = static_cast<int>(min64(kKvChunk, n_kv - t0));
        const uint8_t* kc = k + static_cast<size_t>(t0) * ks;
        for (int h = 0; h < G; ++h) {
            const float* qh = q + h * D;
            int t = 0;
            for (; t + 4 <= tc; t += 4) {
                if (h == 0) kv_prefetch(k, ks, kh, v, vs, vh, t0 + kKvChunk + t, n_kv);
                const uint8_t* rows[4] = {kc + static_cast<size_t>(t) * ks, kc + static_cast<size_t>(t + 1) * ks,
                                          kc + static_cast<size_t>(t + 2) * ks, kc + static_cast<size_t>(t + 3) * ks};
                float d4[4];
                kv_dots<V, KT, 4>(qh, rows, D, d4);
                for (int j = 0; j < 4; ++j) s[h][t + j] = d4[j] * scale;
            }
            for (; t < tc; ++t) {
                const uint8_t* row = kc + static_cast<size_t>(t) * ks;
                float d1;
                kv_dots<V, KT, 1>(qh, &row, D, &d1);
                s[h][t] = d1 * scale;
            }
        }
        for (int h = 0; h < G; ++h) {
            const float mnew = maxf(m[h], max_of(s[h], tc));
            if (mnew > m[h] && l[h] > 0) {
                const float corr = expf(m[h] - mnew);
                l[h] *= corr;
                scale_inplace(out + h * D, D, corr);
            }
            m[h] = mnew;
            l[h] += exp_shift_sum(s[h], tc, mnew);
        }
        const uint8_t* vc = v + static_cast<size_t>(t0) * vs;
        for (int h = 0; h < G; ++h) kv_accumulate<V, VT>(out + h * D, s[h], vc, vs, tc, D);
    }
    for (int h = 0; h < G; ++h) scale_inplace(out + h * D, D, 1.0f / l[h]);
}

using KvGroupFn = void (*)(const float*, const uint8_t*, size_t, const uint8_t*, size_t, int64_t, int, int64_t, float,
                           float*);

template <class V, DType KT>
KvGroupFn kv_pick_v(DType vt) {
    switch (vt) {
        case DType::F32: return kv_attention_group<V, KT, DType::F32>;
        case DType::F16: return kv_attention_group<V, KT, DType::F16>;
        case DType::Q8_0: return kv_attention_group<V, KT, DType::Q8_0>;
        case DType::Q4_0: return kv_attention_group<V, KT, DType::Q4_0>;
        default: return nullptr;
    }
}

template <class V>
KvGroupFn kv_pick(DType kt, DType vt) {
    switch (kt) {
        case DType::F32: return kv_pick_v<V, DType::F32>(vt);
        case DType::F16: return kv_pick_v<V, DType::F16>(vt);
        case DType::Q8_0: return kv_pick_v<V, DType::Q8_0>(vt);
        case DType::Q4_0: return kv_pick_v<V, DType::Q4_0>(vt);
        default: return nullptr;
    }
}

// KernelTable::attention_kv. Head sizes that are not a multiple of the lane count (float types
// only: quantised ones are multiples of 32) take the scalar reference.
template <class V>
void attention_kv(const float* q, const void* k, DType kt, size_t k_stride, const void* v, DType vt, size_t v_stride,
                  int64_t n_kv, int64_t H, int64_t H_kv, int64_t D, float scale, float* out, float* scratch) {
    if (n_kv <= 0) {
        fill_f32(out, H * D, 0.0f);
        return;
    }
    const KvGroupFn fn = kv_pick<V>(kt, vt);
    if (fn == nullptr || D % V::L != 0) {
        ref::attention_kv(q, k, kt, k_stride, v, vt, v_stride, n_kv, H, H_kv, D, scale, out, scratch);
        return;
    }
    const size_t kh = kv_head_bytes(kt, D), vh = kv_head_bytes(vt, D);
    const int64_t group = H / H_kv;
    for (int64_t g = 0; g < H_kv; ++g) {
        for (int64_t h0 = 0; h0 < group; h0 += kKvMaxGroup) {
            const int G = static_cast<int>(min64(kKvMaxGroup, group - h0));
            const int64_t h = g * group + h0;
            fn(q + h * D, static_cast<const uint8_t*>(k) + static_cast<size_t>(g) * kh, k_stride,
               static_cast<const uint8_t*>(v) + static_cast<size_t>(g) * vh, v_stride, n_kv, G, D, scale, out + h * D);
        }
    }
}

}  // namespace
}  // namespace llmforge::kernels::x86
