// Q4_1, Q5_0, Q5_1 (weights) and Q8_1 (their activations): reference kernels, and the legacy
// types' weight quantisers (weights_ref.h).
//
// Everything here is llama.cpp's arithmetic operation for operation (ggml-quants.c, built there
// without -ffast-math and without FMA contraction, like this file): dequantisation so a file
// llama.cpp wrote decodes to the same floats, and the quantisers so `llmforge quantize` writes
// the same bytes as llama-quantize (tests/kernels/quants_legacy_test.cpp checks both against
// llama.cpp's own output in tests/data/quant/). Written from the algorithms, not copied.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/ref/quant_search.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/ref_gemm.h"
#include "kernels/cpu/ref/weights_ref.h"
#include "kernels/cpu/repack.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace ref {

namespace {

using namespace search;  // nearest_int, fit_symmetric, fit_scale_min, importance_weights

// The 5th bits of a Q5 block's 32 values (each 0..31) as the little-endian uint32 qh, and their
// low nibbles into qs (value j low, value j+16 high), the layout of Q5_0 and Q5_1.
inline void pack_q5(const uint8_t* L, uint8_t* qs, uint8_t* qh_out) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
        qs[j] = static_cast<uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        qh |= ((L[j] & 0x10u) >> 4) << j;
        qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(qh_out, &qh, 4);
}

inline uint32_t load_qh(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Value j (0..31) of a Q5 block, 0..31.
inline int q5_value(const uint8_t* qs, uint32_t qh, int j) {
    const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return lo | static_cast<int>(((qh >> j) & 1u) << 4);
}

// The block's minimum and maximum (ggml's q4_1 / q5_1 reference: start at +-FLT_MAX).
inline void min_max(const float* x, float* lo, float* hi) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
    }
    *lo = mn;
    *hi = mx;
}

// sigma2 of llama.cpp's importance weights (quant_search.h) for the legacy types: the whole row's
// mean square, computed once per row in element order.
float row_sigma2(const float* x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / n;
}

// Levels 0..15 of 32 values into a Q4_0 / Q4_1 block's nibbles: value j low, value j+16 high.
template <class Block>
void pack_nibbles(const uint8_t* L, Block& b) {
    for (int j = 0; j < kQK / 2; ++j) b.qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}

template <class Block>
void pack_q5_block(const uint8_t* L, Block& b) {
    pack_q5(L, b.qs, b.qh);
}

// The imatrix path of llama.cpp's legacy quantisers: per 32 values the importance weights, then
// the symmetric search (Q4_0 / Q5_0: make_qx_quants) or the scale+min search (Q4_1 / Q5_1:
// make_qkx3_quants, 36 steps), levels in [0, 2 * kNmax) resp. [0, kNmax].
template <class Block, bool kWithMin, int kNmax, void (*Pack)(const uint8_t*, Block&)>
void quantize_weighted(const float* x, void* vy, int64_t n, const float* imatrix) {
    auto* y = static_cast<Block*>(vy);
    const float sigma2 = row_sigma2(x, n);
    float w[kQK];
    uint8_t L[kQK], Laux[kQK];
    int8_t S[kQK];
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + kQK * b;
        importance_weights(kQK, xb, imatrix + kQK * b, sigma2, w);
        if constexpr (kWithMin) {
            float neg_min;
            const float d = fit_scale_min(kQK, kNmax, xb, w, L, &neg_min, Laux, -0.9f, 0.05f, 36, false);
            y[b].d = fp32_to_fp16(d);
            y[b].m = fp32_to_fp16(-neg_min);
        } else {
            y[b].d = fp32_to_fp16(fit_symmetric(kQK, kNmax, xb, S, w));
            for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(S[j]);
        }
        Pack(L, y[b]);
    }
}

}  // namespace

// ---------------------------------------------------------------- Q4_1

void quantize_row_q4_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ4_1*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float lo, hi;
        min_max(x, &lo, &hi);
        const float d = (hi - lo) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        y[b].m = fp32_to_fp16(lo);
        for (int j = 0; j < kQK / 2; ++j) {
            // Truncation after +0.5 (not rounding): ggml's reference, kept for identical bytes.
            const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - lo) * id + 0.5f)));
            const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - lo) * id + 0.5f)));
            y[b].qs[j] = static_cast<uint8_t>(static_cast<uint8_t>(q0) | (static_cast<uint8_t>(q1) << 4));
        }
    }
}

void dequantize_row_q4_1(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const float m = fp16_to_fp32(x[b].m);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = (x[b].qs[j] & 0x0F) * d + m;
            y[j + 16] = (x[b].qs[j] >> 4) * d + m;
        }
    }
}

// ---------------------------------------------------------------- Q5_0

void quantize_row_q5_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ5_0*>(vy);
    uint8_t L[kQK];
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float amax;
        const float d = signed_absmax(kQK, x, &amax) / -16;  // the signed extreme maps to -16
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK; ++j) {
            L[j] = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f))));
        }
        pack_q5(L, y[b].qs, y[b].qh);
    }
}

void dequantize_row_q5_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < kQK; ++j) y[j] = (q5_value(x[b].qs, qh, j) - 16) * d;
    }
}

// ---------------------------------------------------------------- Q5_1

void quantize_row_q5_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ5_1*>(vy);
    uint8_t L[kQK];
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float lo, hi;
        min_max(x, &lo, &hi);
        const float d = (hi - lo) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        y[b].m = fp32_to_fp16(lo);
        // No clamp to 31 here (ggml's reference has none); the high bits above 5 are dropped.
        for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>((x[j] - lo) * id + 0.5f);
        pack_q5(L, y[b].qs, y[b].qh);
    }
}

void dequantize_row_q5_1(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        const float m = fp16_to_fp32(x[b].m);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < kQK; ++j) y[j] = q5_value(x[b].qs, qh, j) * d + m;
    }
}

// ---------------------------------------------------------------- Q8_1 (activations)

// Q8_0's absmax rounding plus s = d * sum(q) (the term Q4_1 / Q5_1 minimums multiply).
void quantize_row_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        const float d = quantize_q8_block(x, y[b].qs);
        y[b].d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < kQK; ++j) sum += y[b].qs[j];
        y[b].s = fp32_to_fp16(sum * d);
    }
}

void dequantize_row_q8_1(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ8_1*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) *y++ = x[b].qs[j] * d;
    }
}

// ---------------------------------------------------------------- dot products

// sum_j (q_j d + m) a_j dx = d dx sum(q a) + m (dx sum a) = d dx sumi + m s.
float vec_dot_q4_1(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_1*>(vw);
    const auto* x = static_cast<const BlockQ8_1*>(vx);
    float s = 0;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            sumi += (w[b].qs[j] & 0x0F) * x[b].qs[j];
            sumi += (w[b].qs[j] >> 4) * x[b].qs[j + 16];
        }
        s += (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d)) * sumi + fp16_to_fp32(w[b].m) * fp16_to_fp32(x[b].s);
    }
    return s;
}

namespace {

// Q5_0 (values u - 16, against Q8_0) and Q5_1 (values u * d + m, against Q8_1, as Q4_1 above).
template <class Block, class Act, bool kMin>
float vec_dot_q5(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const Block*>(vw);
    const auto* x = static_cast<const Act*>(vx);
    float s = 0;
    for (int64_t b = 0; b < n / kQK; ++b) {
        const uint32_t qh = load_qh(w[b].qh);
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += (q5_value(w[b].qs, qh, j) - (kMin ? 0 : 16)) * x[b].qs[j];
        const float dd = fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d);
        if constexpr (kMin) {
            s += dd * sumi + fp16_to_fp32(w[b].m) * fp16_to_fp32(x[b].s);
        } else {
            s += sumi * dd;
        }
    }
    return s;
}

}  // namespace

float vec_dot_q5_0(int64_t n, const void* w, const void* x) { return vec_dot_q5<BlockQ5_0, BlockQ8_0, false>(n, w, x); }
float vec_dot_q5_1(int64_t n, const void* w, const void* x) { return vec_dot_q5<BlockQ5_1, BlockQ8_1, true>(n, w, x); }

// ---------------------------------------------------------------- weight quantisers

// Q8_0 has no importance-weighted variant in llama.cpp: the imatrix is ignored.
void quantize_weights_q8_0(const float* x, void* y, int64_t n, const float*) { quantize_row_q8_0(x, y, n); }

void quantize_weights_q4_0(const float* x, void* y, int64_t n, const float* imatrix) {
    if (!imatrix) return quantize_row_q4_0(x, y, n);
    quantize_weighted<BlockQ4_0, false, 8, pack_nibbles<BlockQ4_0>>(x, y, n, imatrix);
}

void quantize_weights_q4_1(const float* x, void* y, int64_t n, const float* imatrix) {
    if (!imatrix) return quantize_row_q4_1(x, y, n);
    quantize_weighted<BlockQ4_1, true, 15, pack_nibbles<BlockQ4_1>>(x, y, n, imatrix);
}

void quantize_weights_q5_0(const float* x, void* y, int64_t n, const float* imatrix) {
    if (!imatrix) return quantize_row_q5_0(x, y, n);
    quantize_weighted<BlockQ5_0, false, 16, pack_q5_block<BlockQ5_0>>(x, y, n, imatrix);
}

void quantize_weights_q5_1(const float* x, void* y, int64_t n, const float* imatrix) {
    if (!imatrix) return quantize_row_q5_1(x, y, n);
    quantize_weighted<BlockQ5_1, true, 31, pack_q5_block<BlockQ5_1>>(x, y, n, imatrix);
}

}  // namespace ref

namespace {

constexpr int idx(DType t) { return static_cast<int>(t); }

}  // namespace

void register_legacy_ref(KernelTable& t) {
    t.quantize_row[idx(DType::Q4_1)] = ref::quantize_row_q4_1;
    t.quantize_row[idx(DType::Q5_0)] = ref::quantize_row_q5_0;
    t.quantize_row[idx(DType::Q5_1)] = ref::quantize_row_q5_1;
    t.quantize_row[idx(DType::Q8_1)] = ref::quantize_row_q8_1;
    t.dequantize_row[idx(DType::Q4_1)] = ref::dequantize_row_q4_1;
    t.dequantize_row[idx(DType::Q5_0)] = ref::dequantize_row_q5_0;
    t.dequantize_row[idx(DType::Q5_1)] = ref::dequantize_row_q5_1;
    t.dequantize_row[idx(DType::Q8_1)] = ref::dequantize_row_q8_1;
    t.vec_dot[idx(DType::Q4_1)] = ref::vec_dot_q4_1;
    t.vec_dot[idx(DType::Q5_0)] = ref::vec_dot_q5_0;
    t.vec_dot[idx(DType::Q5_1)] = ref::vec_dot_q5_1;
    t.gemm[idx(DType::Q4_1)] = ref::gemm_by_vec_dot<ref::vec_dot_q4_1>;
    t.gemm[idx(DType::Q5_0)] = ref::gemm_by_vec_dot<ref::vec_dot_q5_0>;
    t.gemm[idx(DType::Q5_1)] = ref::gemm_by_vec_dot<ref::vec_dot_q5_1>;
    t.gemm_invariant[idx(DType::Q4_1)] = t.gemm[idx(DType::Q4_1)];
    t.gemm_invariant[idx(DType::Q5_0)] = t.gemm[idx(DType::Q5_0)];
    t.gemm_invariant[idx(DType::Q5_1)] = t.gemm[idx(DType::Q5_1)];
    t.gemm_x8[idx(DType::Q4_1)] = ref::gemm_x8_by_vec_dot<DType::Q4_1, ref::vec_dot_q4_1>;
    t.gemm_x8[idx(DType::Q5_0)] = ref::gemm_x8_by_vec_dot<DType::Q5_0, ref::vec_dot_q5_0>;
    t.gemm_x8[idx(DType::Q5_1)] = ref::gemm_x8_by_vec_dot<DType::Q5_1, ref::vec_dot_q5_1>;
}

}  // namespace llmforge::kernels
