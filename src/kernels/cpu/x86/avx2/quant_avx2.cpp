// AVX2 quantisers for the hot activation formats (Q8_0, Q8_K), F16/BF16 conversions, and the
// quantised dot products / tiles (maddubs + madd).
#include "kernels/cpu/x86/avx2/avx2.h"
#include "kernels/cpu/x86/quant_dot_impl.h"
#include "kernels/cpu/x86/quant_x8_impl.h"

namespace llmforge::kernels::avx2 {

using namespace x86;

namespace {

// Bit-identical to ref::quantize_row_q8_0 (same d, same 1/d, same rounding).
void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        __m256i q[4];
        y[b].d = to_f16(quantize_q8_levels(x, q));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_i32x32(q[0], q[1], q[2], q[3]));
    }
}

// Matches ref::quantize_row_q8_k bit for bit, except when +a and -a are both the block's
// extreme (the reference takes the first; we take +a): then the block is negated, same values.
void quantize_row_q8_k(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_K*>(vy);
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        __m256 mx = _mm256_loadu_ps(x), mn = mx;
        for (int i = 8; i < kQK_K; i += 8) {
            const __m256 v = _mm256_loadu_ps(x + i);
            mx = _mm256_max_ps(mx, v);
            mn = _mm256_min_ps(mn, v);
        }
        const float hi = hmax(mx), lo = -hmax(_mm256_sub_ps(_mm256_setzero_ps(), mn));
        const float vmax = hi >= -lo ? hi : lo;
        BlockQ8_K& blk = y[b];
        if (vmax == 0) {
            std::memset(&blk, 0, sizeof(blk));
            continue;
        }
        const float iscale = -127.f / vmax;
        const __m256 vs = _mm256_set1_ps(iscale);
        __m256i g[16];  // per 16-value group: 8 lanes whose sum is the group's bsum
        for (int k = 0; k < 8; ++k) {
            __m256i q[4];
            for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * k + 8 * i), vs));
            for (int i = 0; i < 4; ++i) q[i] = _mm256_min_epi32(q[i], _mm256_set1_epi32(127));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + 32 * k), pack_i32x32(q[0], q[1], q[2], q[3]));
            g[2 * k] = _mm256_add_epi32(q[0], q[1]);
            g[2 * k + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        __m128i sums[4];
        for (int j = 0; j < 4; ++j) {
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(g[4 * j], g[4 * j + 1]),
                                                _mm256_hadd_epi32(g[4 * j + 2], g[4 * j + 3]));
            sums[j] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(blk.bsums), _mm_packs_epi32(sums[0], sums[1]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(blk.bsums + 8), _mm_packs_epi32(sums[2], sums[3]));
        blk.d = 1 / iscale;
    }
}

void quantize_row_f16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) y[i] = to_f16(x[i]);
}

void dequantize_row_f16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const uint16_t*>(vx);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; ++i) y[i] = f16(x[i]);
}

// Same rounding as fp32_to_bf16: round to nearest even, NaN -> quiet NaN.
void quantize_row_bf16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    int64_t i = 0;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
        const __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
        r = _mm256_blendv_epi8(r, qn, nan);
        // 8 x u32 (values < 2^16) -> 8 x u16
        const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), p);
    }
    for (; i < n; ++i) y[i] = to_bf16(x[i]);
}

void dequantize_row_bf16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const uint16_t*>(vx);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_bf16x8(x + i));
    for (; i < n; ++i) y[i] = bf16(x[i]);
}

}  // namespace

void register_quant(KernelTable& t) {
    auto at = [](DType d) { return static_cast<int>(d); };
    t.quantize_row[at(DType::Q8_0)] = quantize_row_q8_0;
    t.quantize_row[at(DType::Q8_K)] = quantize_row_q8_k;
    t.quantize_row[at(DType::F16)] = quantize_row_f16;
    t.quantize_row[at(DType::BF16)] = quantize_row_bf16;
    t.dequantize_row[at(DType::F16)] = dequantize_row_f16;
    t.dequantize_row[at(DType::BF16)] = dequantize_row_bf16;

    t.vec_dot[at(DType::Q8_0)] = vec_dot_q8_0<DotAvx2>;
    t.vec_dot[at(DType::Q4_0)] = vec_dot_q4_0<DotAvx2>;
    t.vec_dot[at(DType::Q4_K)] = vec_dot_q4_k<DotAvx2>;
    t.vec_dot[at(DType::Q6_K)] = vec_dot_q6_k<DotAvx2>;
    t.gemm[at(DType::Q8_0)] = gemm_q_0<DotAvx2, BlockQ8_0, vec_dot_q8_0<DotAvx2>>;
    t.gemm[at(DType::Q4_0)] = gemm_q_0<DotAvx2, BlockQ4_0, vec_dot_q4_0<DotAvx2>>;
    t.gemm_invariant[at(DType::Q8_0)] = gemm_q_0<DotAvx2, BlockQ8_0, vec_dot_q_0_invariant<DotAvx2, BlockQ8_0>>;
    t.gemm_invariant[at(DType::Q4_0)] = gemm_q_0<DotAvx2, BlockQ4_0, vec_dot_q_0_invariant<DotAvx2, BlockQ4_0>>;
    t.gemm_x8[at(DType::Q8_0)] = gemm_x8<DotAvx2, false>;
    t.gemm_x8[at(DType::Q4_0)] = gemm_x8<DotAvx2, true>;
    t.gemm[at(DType::Q4_K)] = gemm_kquant<DotAvx2, BlockQ4_K, false, kprep_q4_k, vec_dot_q4_k<DotAvx2>>;
    t.gemm[at(DType::Q6_K)] = gemm_kquant<DotAvx2, BlockQ6_K, true, kprep_q6_k, vec_dot_q6_k<DotAvx2>>;
}

}  // namespace llmforge::kernels::avx2
