// Row math of the encoder ops (LayerNorm, GELU family), one definition for both backends: the
// engine's EagerOps (model/model.cpp) and the trainer's ops (train/encoder_ops.cpp, which adds the
// derivatives below). Both go through the kernel table (KernelTable::layernorm, ::act: SIMD
// versions where libm's scalar erff per element was 8-19% of a ViT-B encode and the generic
// build's double sums another 2-6%, docs/PERFORMANCE.md "Vision encoder"); act_value is the
// activations' reference, ref/ops_ref.cpp LayerNorm's.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

// y = (x − mean) / sqrt(var + eps) · g + b (b may be null); mean and 1/sqrt(var + eps) are
// returned for backward. KernelTable::layernorm of the best table: sums in double (rows are short;
// the trainer's backward reads the same statistics), variance as the mean of squared deviations
// (PyTorch's biased variance).
inline void layernorm_row(const float* x, const float* g, const float* b, float* y, int64_t n, float eps,
                          float* mean_out = nullptr, float* rstd_out = nullptr) {
    kernels().layernorm(x, g, b, y, n, eps, mean_out, rstd_out);
}

// The activations of config.h's Activation, by kind (same numbering): 0 gelu (erf), 1 gelu_tanh,
// 2 quick_gelu (x·σ(1.702x)), 3 tanh. GELU's 1 + erf(x/√2) is erfc(−x/√2) for x < 0: no
// cancellation, so its tail keeps its relative accuracy (1 + erf(−6) is 0 in float).
inline float act_value(int kind, float x) {
    switch (kind) {
        case 0:
            return x < 0.0f ? 0.5f * x * std::erfc(-x * 0.70710678118654752f)
                            : 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
        case 1: {  // 0.5·x·(1 + tanh(u)) = x·σ(2u), likewise without the cancellation for u < 0
            const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
            return x / (1.0f + std::exp(-2.0f * u));
        }
        case 2: return x / (1.0f + std::exp(-1.702f * x));
        default: return std::tanh(x);
    }
}

// d act_value(kind, x) / dx.
inline float act_derivative(int kind, float x) {
    switch (kind) {
        case 0: {
            const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
            const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
            return cdf + x * pdf;
        }
        case 1: {
            const float k = 0.79788456080286536f;
            const float u = k * (x + 0.044715f * x * x * x);
            const float th = std::tanh(u);
            return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * x * x);
        }
        case 2: {
            const float s = 1.0f / (1.0f + std::exp(-1.702f * x));
            return s * (1.0f + 1.702f * x * (1.0f - s));
        }
        default: {
            const float th = std::tanh(x);
            return 1.0f - th * th;
        }
    }
}

// y[i] = act_value(kind, x[i]) to ~1e-6 relative, with the best kernel table (y may alias x).
inline void act_rows(int kind, const float* x, float* y, int64_t n) { kernels().act(kind, x, y, n); }

}  // namespace llmforge::kernels
