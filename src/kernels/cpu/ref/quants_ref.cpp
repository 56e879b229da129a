// Reference quantisers and dequantisers for the GGUF block formats.
//
// Dequantisation is ggml's formula operation for operation, so a GGUF file written by llama.cpp
// decodes to the same floats here. The quantisers follow ggml's reference algorithms (absmax for
// Q8_0 / Q4_0 / Q8_K; Q4_K and Q6_K are the weight quantisers of quants_kextra_ref.cpp without an
// importance matrix, bit-exact with llama.cpp) so the error of files we write is comparable to
// llama.cpp's; they are written from the published algorithm descriptions, not copied.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/ref/quant_search.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/weights_ref.h"

namespace llmforge::kernels::ref {

using search::k4_get;
using search::nearest_int;

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
        y[b].d = fp32_to_fp16(search::quantize_q8_block(x, y[b].qs));
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
        float amax;
        const float vmax = search::signed_absmax(kQK, x, &amax);
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

// One source of truth with the weight quantiser (quants_kextra_ref.cpp): llama.cpp's
// quantize_row_q4_K_ref, which is also what it runs for Q4_K without an importance matrix.
void quantize_row_q4_k(const float* x, void* y, int64_t n) { quantize_weights_q4_k(x, y, n, nullptr); }

void dequantize_row_q4_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ4_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        for (int j = 0; j < 4; ++j, q += 32) {
            int sc, m;
            k4_get(2 * j, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            k4_get(2 * j + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

// ---------------------------------------------------------------- Q6_K

// As Q4_K: the weight quantiser without an importance matrix (llama.cpp's quantize_row_q6_K_ref).
void quantize_row_q6_k(const float* x, void* y, int64_t n) { quantize_weights_q6_k(x, y, n, nullptr); }

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
        float amax;
        const float vmax = search::signed_absmax(kQK_K, x, &amax);
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
