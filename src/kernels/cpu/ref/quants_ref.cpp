// Reference quantisers and dequantisers for the GGUF block formats.
//
// Dequantisation is ggml's formula operation for operation, so a GGUF file written by llama.cpp
// decodes to the same floats here. The quantisers follow ggml's reference algorithms (absmax for
// Q8_0 / Q4_0 / Q8_K; the weighted scale+min search for Q4_K; the iterated scale search for Q6_K)
// so the error of files we write is comparable to llama.cpp's; they are written from the published
// algorithm descriptions, not copied.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/ref/ref.h"

namespace llmforge::kernels::ref {

namespace {

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |v| < 2^22 (the magic-number trick ggml uses; matching it
// keeps our Q4_K / Q6_K / Q8_K choices identical to ggml's on the same input).
inline int nearest_int(float v) {
    float t = v + 12582912.f;  // 1.5 * 2^23
    int32_t i;
    std::memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Asymmetric quantisation of n values to [0, nmax] with a scale and a (non-positive) offset:
// x ~= scale * L - min_out. Tries nstep+1 candidate scales around the min/max one and keeps the
// one with the least weighted squared error after a least-squares refit of (scale, min).
float quantize_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L,
                         float* min_out, float rmin, float rdelta, int nstep) {
    float lo = x[0], hi = x[0];
    float sum_w = 0, sum_x = 0;
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        std::fill(L, L + n, uint8_t{0});
        *min_out = -lo;
        return 0.f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; ++i) {
        int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
        L[i] = static_cast<uint8_t>(l);
        float diff = scale * l + lo - x[i];
        best_err += w[i] * diff * diff;
    }
    uint8_t cand[kQK_K];
    for (int step = 0; step <= nstep; ++step) {
        iscale = (rmin + rdelta * step + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
            cand[i] = static_cast<uint8_t>(l);
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det <= 0) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) {
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; ++i) {
            float diff = s * cand[i] + m - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best_err) {
            std::memcpy(L, cand, static_cast<size_t>(n));
            best_err = err;
            scale = s;
            lo = m;
        }
    }
    *min_out = -lo;
    return scale;
}

// Symmetric quantisation of n values to [-nmax, nmax-1] (stored in L offset by +nmax), weighting
// the squared error by x^2; searches 18 scales around nmax/absmax. Returns the scale.
float quantize_symmetric(int n, int nmax, const float* x, int8_t* L) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::fill(L, L + n, int8_t{0});
        return 0.f;
    }
    auto fit = [&](float iscale, float* sumlx, float* suml2) {
        *sumlx = 0;
        *suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            *sumlx += w * x[i] * l;
            *suml2 += w * l * l;
        }
    };
    auto store = [&](float iscale) {
        for (int i = 0; i < n; ++i) {
            L[i] = static_cast<int8_t>(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
        }
    };
    float iscale = -nmax / vmax;
    float sumlx, suml2;
    fit(iscale, &sumlx, &suml2);
    store(iscale);
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / vmax;
        fit(iscale, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            store(iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q4_K packs 8 (scale, min) pairs of 6 bits into 12 bytes: pairs 0-3 in the low 6 bits of
// bytes 0-3 (scale) and 4-7 (min); pairs 4-7 keep their low 4 bits in bytes 8-11 and their high
// 2 bits in the top bits of bytes 0-3 (scale) and 4-7 (min).
inline void q4k_scale_min(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

}  // namespace

// ---------------------------------------------------------------- F16 / BF16 / F32

void quantize_row_f16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void quantize_row_bf16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

void dequantize_row_f32(const void* x, float* y, int64_t n) {
    std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_row_f16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const uint16_t*>(vx);
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void dequantize_row_bf16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const uint16_t*>(vx);
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

// ---------------------------------------------------------------- Q8_0

void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    }
}

void dequantize_row_q8_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) *y++ = x[b].qs[j] * d;
    }
}

// ---------------------------------------------------------------- Q4_0

void quantize_row_q4_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ4_0*>(vy);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < kQK; ++j) {
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                vmax = x[j];
            }
        }
        // The signed extreme maps to -8 exactly, using the asymmetric side of [-8, 7].
        const float d = vmax / -8;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
            const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
            y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_row_q4_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

// ---------------------------------------------------------------- Q4_K

void quantize_row_q4_k(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ4_K*>(vy);
    uint8_t L[kQK_K];
    float w[32], scales[8], mins[8];
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; ++j) {
            const float* xs = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
            const float av_x = std::sqrt(sum_x2 / 32);
            for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
            scales[j] = quantize_scale_min(32, 15, xs, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        BlockQ4_K& blk = y[b];
        std::memset(blk.scales, 0, sizeof(blk.scales));
        for (int j = 0; j < 8; ++j) {
            const int ls = std::min(63, nearest_int(inv_scale * scales[j]));
            const int lm = std::min(63, nearest_int(inv_min * mins[j]));
            if (j < 4) {
                blk.scales[j] = static_cast<uint8_t>(ls);
                blk.scales[j + 4] = static_cast<uint8_t>(lm);
            } else {
                blk.scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
                blk.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
                blk.scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
            }
        }
        blk.d = fp32_to_fp16(max_scale / 63.f);
        blk.dmin = fp32_to_fp16(max_min / 63.f);
        // Requantise against the scales as they will be decoded.
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            q4k_scale_min(j, blk.scales, &sc, &m);
            const float d = fp16_to_fp32(blk.d) * sc;
            if (d == 0) continue;
            const float dm = fp16_to_fp32(blk.dmin) * m;
            for (int l = 0; l < 32; ++l) {
                L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, 15));
            }
        }
        // 64 values per 32 bytes: elements [0,32) in the low nibbles, [32,64) in the high ones.
        for (int j = 0; j < 4; ++j) {
            for (int l = 0; l < 32; ++l) {
                blk.qs[32 * j + l] = static_cast<uint8_t>(L[64 * j + l] | (L[64 * j + 32 + l] << 4));
            }
        }
    }
}

void dequantize_row_q4_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ4_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        for (int j = 0; j < 4; ++j, q += 32) {
            int sc, m;
            q4k_scale_min(2 * j, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            q4k_scale_min(2 * j + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

// ---------------------------------------------------------------- Q6_K

void quantize_row_q6_k(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ6_K*>(vy);
    int8_t L[kQK_K];
    float scales[16];
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < 16; ++g) {
            scales[g] = quantize_symmetric(16, 32, x + 16 * g, L + 16 * g);
            if (std::fabs(scales[g]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[g]);
                max_scale = scales[g];
            }
        }
        BlockQ6_K& blk = y[b];
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&blk, 0, sizeof(blk));
            continue;
        }
        const float iscale = -128.f / max_scale;
        blk.d = fp32_to_fp16(1 / iscale);
        for (int g = 0; g < 16; ++g) {
            blk.scales[g] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[g])));
        }
        for (int g = 0; g < 16; ++g) {
            const float d = fp16_to_fp32(blk.d) * blk.scales[g];
            if (d == 0) continue;
            for (int l = 0; l < 16; ++l) {
                L[16 * g + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * g + l] / d), -32, 31) + 32);
            }
        }
        // Per 128 values: ql[0..32) = v[0..32) | v[64..96) << 4, ql[32..64) = v[32..64) | v[96..128) << 4,
        // qh[l] = high 2 bits of v[l], v[l+32], v[l+64], v[l+96] at bits 0, 2, 4, 6.
        for (int h = 0; h < 2; ++h) {
            uint8_t* ql = blk.ql + 64 * h;
            uint8_t* qh = blk.qh + 32 * h;
            const int8_t* v = L + 128 * h;
            for (int l = 0; l < 32; ++l) {
                ql[l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
                ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
                qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                                             ((v[l + 96] >> 4) << 6));
            }
        }
    }
}

void dequantize_row_q6_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ6_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        for (int h = 0; h < 2; ++h, y += 128) {
            const uint8_t* ql = x[b].ql + 64 * h;
            const uint8_t* qh = x[b].qh + 32 * h;
            const int8_t* sc = x[b].scales + 8 * h;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

// ---------------------------------------------------------------- Q8_K

void quantize_row_q8_k(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_K*>(vy);
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < kQK_K; ++j) {
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                vmax = x[j];
            }
        }
        BlockQ8_K& blk = y[b];
        if (amax == 0) {
            std::memset(&blk, 0, sizeof(blk));
            continue;
        }
        const float iscale = -127.f / vmax;
        for (int j = 0; j < kQK_K; ++j) blk.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += blk.qs[16 * g + l];
            blk.bsums[g] = static_cast<int16_t>(s);
        }
        blk.d = 1 / iscale;
    }
}

void dequantize_row_q8_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        for (int j = 0; j < kQK_K; ++j) *y++ = x[b].d * x[b].qs[j];
    }
}

}  // namespace llmforge::kernels::ref
