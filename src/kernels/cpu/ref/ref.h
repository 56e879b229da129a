// Scalar reference kernels: the ground truth every SIMD kernel is tested against, and the
// fallback entries of every table. Plain C++, no intrinsics, built for baseline x86-64.
// Signatures follow kernels.h (KernelTable). Thread-safe: pure on their arguments.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::kernels::ref {

// ---- quantize (x f32 -> y blocks) / dequantize (x blocks -> y f32), n elements ----
void quantize_row_f16(const float* x, void* y, int64_t n);
void quantize_row_bf16(const float* x, void* y, int64_t n);
void quantize_row_q8_0(const float* x, void* y, int64_t n);
void quantize_row_q4_0(const float* x, void* y, int64_t n);
void quantize_row_q4_k(const float* x, void* y, int64_t n);
void quantize_row_q6_k(const float* x, void* y, int64_t n);
void quantize_row_q8_k(const float* x, void* y, int64_t n);

void dequantize_row_f32(const void* x, float* y, int64_t n);
void dequantize_row_f16(const void* x, float* y, int64_t n);
void dequantize_row_bf16(const void* x, float* y, int64_t n);
void dequantize_row_q8_0(const void* x, float* y, int64_t n);
void dequantize_row_q4_0(const void* x, float* y, int64_t n);
void dequantize_row_q4_k(const void* x, float* y, int64_t n);
void dequantize_row_q6_k(const void* x, float* y, int64_t n);
void dequantize_row_q8_k(const void* x, float* y, int64_t n);

// ---- dot products: w has the weight dtype, x its vec_dot_type ----
float vec_dot_f32(int64_t n, const void* w, const void* x);
float vec_dot_f16(int64_t n, const void* w, const void* x);
float vec_dot_bf16(int64_t n, const void* w, const void* x);
float vec_dot_q8_0(int64_t n, const void* w, const void* x);
float vec_dot_q4_0(int64_t n, const void* w, const void* x);
float vec_dot_q4_k(int64_t n, const void* w, const void* x);
float vec_dot_q6_k(int64_t n, const void* w, const void* x);

// ---- element-wise / fused ops (see KernelTable for the contracts) ----
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);
void softmax(float* x, int64_t n);
void adamw(float* w, const float* g, float* m, float* v, int64_t n, const AdamWStep& s);
double sumsq(const float* x, int64_t n);
void swiglu(const float* gate, const float* up, float* y, int64_t n);
void layernorm(const float* x, const float* g, const float* b, float* y, int64_t n, float eps, float* mean_out,
               float* rstd_out);
void act(int kind, const float* x, float* y, int64_t n);  // encoder_math.h's act_value per element
void axpy(int64_t n, float a, const float* x, float* y);
void add(int64_t n, const float* x, float* y);
void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cs, const float* sn,
          bool interleaved);
void attention(const float* q, const float* k, const float* v, int64_t n_kv, int64_t kv_stride,
               int64_t H, int64_t H_kv, int64_t D, float scale, float* out, float* scratch);
void attention_kv(const float* q, const void* k, DType kt, size_t k_stride, const void* v, DType vt,
                  size_t v_stride, int64_t n_kv, int64_t H, int64_t H_kv, int64_t D, float scale, float* out,
                  float* scratch);

}  // namespace llmforge::kernels::ref
