// Reference dot products: weight row (its dtype) · activation row (vec_dot_type of the weight).
// Quantised blocks are multiplied in exact integer arithmetic within a block and accumulated in
// float across blocks, the natural order; SIMD versions are compared to these with a tolerance.
#include "core/dtype.h"
#include "kernels/cpu/ref/ref.h"

namespace llmforge::kernels::ref {

float vec_dot_f32(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const float*>(vw);
    const auto* x = static_cast<const float*>(vx);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += w[i] * x[i];
    return s;
}

float vec_dot_f16(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const uint16_t*>(vw);
    const auto* x = static_cast<const float*>(vx);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
    return s;
}

float vec_dot_bf16(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const uint16_t*>(vw);
    const auto* x = static_cast<const float*>(vx);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
    return s;
}

float vec_dot_q8_0(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ8_0*>(vw);
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    float s = 0;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += w[b].qs[j] * x[b].qs[j];
        s += sumi * (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d));
    }
    return s;
}

float vec_dot_q4_0(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_0*>(vw);
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    float s = 0;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            sumi += ((w[b].qs[j] & 0xF) - 8) * x[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        }
        s += sumi * (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d));
    }
    return s;
}

float vec_dot_q4_k(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ4_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    float s = 0;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const uint8_t* sc = w[b].scales;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; ++j) {
            int scale, mn;
            if (j < 4) {
                scale = sc[j] & 63;
                mn = sc[j + 4] & 63;
            } else {
                scale = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
                mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
            }
            const uint8_t* q = w[b].qs + 32 * (j / 2);
            const int shift = (j % 2) * 4;
            const int8_t* a = x[b].qs + 32 * j;
            int dot = 0, asum = 0;
            for (int l = 0; l < 32; ++l) {
                dot += ((q[l] >> shift) & 0xF) * a[l];
                asum += a[l];
            }
            sumi += scale * dot;
            summ += mn * asum;
        }
        s += x[b].d * fp16_to_fp32(w[b].d) * sumi - x[b].d * fp16_to_fp32(w[b].dmin) * summ;
    }
    return s;
}

float vec_dot_q6_k(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const BlockQ6_K*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    float s = 0;
    int8_t v[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const uint8_t* qh = w[b].qh + 32 * h;
            int8_t* o = v + 128 * h;
            for (int l = 0; l < 32; ++l) {
                o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int sumi = 0;
        for (int g = 0; g < 16; ++g) {
            int dot = 0;
            for (int l = 0; l < 16; ++l) dot += v[16 * g + l] * x[b].qs[16 * g + l];
            sumi += w[b].scales[g] * dot;
        }
        s += x[b].d * fp16_to_fp32(w[b].d) * sumi;
    }
    return s;
}

}  // namespace llmforge::kernels::ref
