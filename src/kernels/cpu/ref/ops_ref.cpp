// Reference element-wise and fused ops: the plain definitions, in float.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/ref/ref.h"

namespace llmforge::kernels::ref {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
    float ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        y[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void layernorm(const float* x, const float* g, const float* b, float* y, int64_t n, float eps, float* mean_out,
               float* rstd_out) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    const double mean = s / static_cast<double>(n);
    double v = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = x[i] - mean;
        v += d * d;
    }
    const float rstd = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(n) + eps));
    const float m = static_cast<float>(mean);
    if (b != nullptr) {
        for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rstd * g[i] + b[i];
    } else {
        for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rstd * g[i];
    }
    if (mean_out != nullptr) *mean_out = m;
    if (rstd_out != nullptr) *rstd_out = rstd;
}

void act(int kind, const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = act_value(kind, x[i]);
}

void axpy(int64_t n, float a, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void add(int64_t n, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] + y[i];
}

void adamw(float* w, const float* g, float* m, float* v, int64_t n, const AdamWStep& s) {
    for (int64_t j = 0; j < n; ++j) {
        if (s.wd) w[j] *= s.decay;
        m[j] = m[j] * s.b1 + s.one_b1 * g[j];
        v[j] = v[j] * s.b2 + s.one_b2 * g[j] * g[j];
        const float denom = std::sqrt(v[j]) / s.bc2_sqrt + s.eps;
        w[j] = w[j] + (-s.step_size) * (m[j] / denom);
    }
}

double sumsq(const float* x, int64_t n) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += static_cast<double>(x[j]) * x[j];
    return s;
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cs, const float* sn,
          bool interleaved) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
            const int64_t i0 = interleaved ? 2 * i : i;
            const int64_t i1 = interleaved ? 2 * i + 1 : i + half;
            const float a = v[i0], b = v[i1];
            v[i0] = a * cs[i] - b * sn[i];
            v[i1] = a * sn[i] + b * cs[i];
        }
    }
}

void attention(const float* q, const float* k, const float* v, int64_t n_kv, int64_t kv_stride,
               int64_t H, int64_t H_kv, int64_t D, float scale, float* out, float* scratch) {
    const int64_t group = H / H_kv;
    for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / group;
        const float* qh = q + h * D;
        for (int64_t t = 0; t < n_kv; ++t) {
            const float* kt = k + t * kv_stride + g * D;
            float s = 0;
            for (int64_t d = 0; d < D; ++d) s += qh[d] * kt[d];
            scratch[t] = s * scale;
        }
        softmax(scratch, n_kv);
        float* oh = out + h * D;
        std::fill(oh, oh + D, 0.0f);
        for (int64_t t = 0; t < n_kv; ++t) {
            const float* vt = v + t * kv_stride + g * D;
            for (int64_t d = 0; d < D; ++d) oh[d] += scratch[t] * vt[d];
        }
    }
}

namespace {

// One head's slice of a cached row, as f32.
void kv_row_f32(const void* row, DType t, int64_t D, float* y) {
    switch (t) {
        case DType::F32: dequantize_row_f32(row, y, D); break;
        case DType::F16: dequantize_row_f16(row, y, D); break;
        case DType::Q8_0: dequantize_row_q8_0(row, y, D); break;
        case DType::Q4_0: dequantize_row_q4_0(row, y, D); break;
        default: std::fill(y, y + D, 0.0f); break;  // not a KV type (the cache never stores one)
    }
}

}  // namespace

// The definition: every row dequantised to f32 (exactly the stored values), then attention as
// above: f32 scores, a full softmax, an f32 weighted sum.
void attention_kv(const float* q, const void* k, DType kt, size_t k_stride, const void* v, DType vt,
                  size_t v_stride, int64_t n_kv, int64_t H, int64_t H_kv, int64_t D, float scale, float* out,
                  float* scratch) {
    const int64_t group = H / H_kv;
    const size_t kh = row_bytes(kt, D), vh = row_bytes(vt, D);
    const auto* kb = static_cast<const uint8_t*>(k);
    const auto* vb = static_cast<const uint8_t*>(v);
    std::vector<float> row(static_cast<size_t>(D));
    for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / group;
        const float* qh = q + h * D;
        for (int64_t t = 0; t < n_kv; ++t) {
            kv_row_f32(kb + static_cast<size_t>(t) * k_stride + static_cast<size_t>(g) * kh, kt, D, row.data());
            float s = 0;
            for (int64_t d = 0; d < D; ++d) s += qh[d] * row[d];
            scratch[t] = s * scale;
        }
        softmax(scratch, n_kv);
        float* oh = out + h * D;
        std::fill(oh, oh + D, 0.0f);
        for (int64_t t = 0; t < n_kv; ++t) {
            kv_row_f32(vb + static_cast<size_t>(t) * v_stride + static_cast<size_t>(g) * vh, vt, D, row.data());
            for (int64_t d = 0; d < D; ++d) oh[d] += scratch[t] * row[d];
        }
    }
}

}  // namespace llmforge::kernels::ref
