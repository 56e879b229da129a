// The CPU kernel dispatch table. Every kernel has a scalar reference in ref/ (always built, the
// tests' ground truth) and optional AVX2 / AVX-512 versions under x86/<isa>/ (each folder compiled
// with its own -m flags). One table is chosen once, at first use, from CPUID; the environment
// variable LLMFORGE_ISA=scalar|avx2|avx512 forces a lower one (for tests and comparisons).
//
// Conventions:
//  * "row" functions take n elements; n must be a multiple of the dtype's block size.
//  * A weight of dtype W is multiplied against activations quantised to vec_dot_type(W):
//      F32, F16, BF16 -> F32;  Q8_0, Q4_0, Q5_0 -> Q8_0;  Q4_1, Q5_1 -> Q8_1 (ggml's pairing);
//      Q2_K, Q3_K, Q4_K, Q5_K, Q6_K -> Q8_K.
//  * Tables are immutable after selection; every function is thread-safe (pure on its arguments).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace llmforge::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* isa_name(Isa isa);

constexpr int kMaxDType = 32;

DType vec_dot_type(DType weight);

using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
// Returns dot(w[0..n), x[0..n)) where w has the weight dtype and x has vec_dot_type(weight).
using VecDotFn = float (*)(int64_t n, const void* w, const void* x);
// Tile product: out[c * ldo + r] = dot(w row r, x row c) for r < nr, c < nc.
// w rows are w_stride bytes apart, x rows x_stride bytes apart. nr, nc may be any size >= 1;
// the kernel register-blocks internally. This is the work unit of matmul().
using GemmFn = void (*)(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x,
                        size_t x_stride, int64_t nc, float* out, size_t ldo);

// The per-step scalars of one AdamW update (train/optimizer.cpp computes them as PyTorch does).
struct AdamWStep {
    float b1, b2, one_b1, one_b2;  // beta1, beta2, 1 - beta1, 1 - beta2
    float step_size, bc2_sqrt, eps;  // lr / (1 - beta1^t), sqrt(1 - beta2^t), epsilon
    float decay;                     // 1 - lr * weight_decay, applied when wd
    bool wd;
};

struct KernelTable {
    Isa isa = Isa::kScalar;

    // Indexed by static_cast<int>(DType). Null where the type has no such operation.
    QuantizeRowFn quantize_row[kMaxDType] = {};     // F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q8_K
    DequantizeRowFn dequantize_row[kMaxDType] = {}; // F32 (copy), F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q8_K
    VecDotFn vec_dot[kMaxDType] = {};               // F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K
    GemmFn gemm[kMaxDType] = {};                    // same types as vec_dot
    // A gemm that computes every output the same way whatever nc (its one-row path sums in the
    // tiles' order), so a row's result does not depend on the other rows of its batch; null
    // where the table has none. matmul() uses it when MatmulScratch::row_invariant is set.
    GemmFn gemm_invariant[kMaxDType] = {};
    // The tile product over weights in the interleaved 8-row layout (repack.h; Q4_0, Q8_0):
    // w points at a group's first row, w_stride is still one plain row's bytes, nr is a multiple
    // of 8. Every output is computed the same way whatever nc, so it is row-invariant too.
    // Null where the table has none (then weights stay in the plain layout).
    GemmFn gemm_x8[kMaxDType] = {};

    // y = x / sqrt(mean(x^2) + eps) * w   (y may alias x)
    void (*rmsnorm)(const float* x, const float* w, float* y, int64_t n, float eps) = nullptr;
    // In-place softmax over n values (max-subtracted; exp in f32).
    void (*softmax)(float* x, int64_t n) = nullptr;
    // y = silu(gate) * up   (y may alias gate)
    void (*swiglu)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
    // y += a * x
    void (*axpy)(int64_t n, float a, const float* x, float* y) = nullptr;
    // y = x + y  (residual add)
    void (*add)(int64_t n, const float* x, float* y) = nullptr;
    // LayerNorm of one row (encoders): y = (x − mean) · rstd · g + b (b may be null; y may alias
    // x), mean and rstd = 1 / sqrt(var + eps) from sums in double (var: the mean of squared
    // deviations, PyTorch's biased variance); each returned where its pointer is not null. The
    // SIMD versions sum in another order (the same values to double rounding).
    void (*layernorm)(const float* x, const float* g, const float* b, float* y, int64_t n, float eps, float* mean_out,
                      float* rstd_out) = nullptr;
    // y = act(x) element-wise (y may alias x), kind as config.h's Activation: 0 gelu (erf form),
    // 1 gelu_tanh, 2 quick_gelu (x·σ(1.702x)), 3 tanh. The reference is encoder_math.h's
    // act_value; the SIMD versions agree with it to ~1e-6 relative (tests/kernels/kernels_test.cpp).
    void (*act)(int kind, const float* x, float* y, int64_t n) = nullptr;
    // One AdamW update of n values, element by element in PyTorch's order, every operation rounded
    // to f32 on its own (no fused multiply-add), so every table gives the reference's bits:
    //   w *= decay (wd);  m = m·b1 + one_b1·g;  v = v·b2 + (one_b2·g)·g;
    //   w = w + (-step_size)·(m / (sqrt(v) / bc2_sqrt + eps))
    void (*adamw)(float* w, const float* g, float* m, float* v, int64_t n, const AdamWStep& s) = nullptr;
    // Σ x[i]² summed in double (gradient norms); the order of the sum is the table's own.
    double (*sumsq)(const float* x, int64_t n) = nullptr;
    // Rotates n_heads heads of head_dim values in place at one position.
    // cs[i] = cos(angle_i), sn[i] = sin(angle_i) for pair i in [0, head_dim/2).
    // interleaved: pairs (2i, 2i+1) (Meta / llama2.c / GGUF llama);
    // otherwise rotate-half: pairs (i, i + head_dim/2) (Hugging Face / GGUF qwen2 "neox").
    void (*rope)(float* x, int64_t n_heads, int64_t head_dim, const float* cs, const float* sn,
                 bool interleaved) = nullptr;
    // Causal attention of one query position over n_kv cached positions, grouped-query:
    //   q:   (H, D) for this position, out: (H, D)
    //   k,v: cache rows; position t, kv head g starts at k + t * kv_stride + g * D  (floats)
    //   query head h reads kv head h / (H / H_kv). scale = 1/sqrt(D) usually.
    //   scratch: at least n_kv floats.
    void (*attention)(const float* q, const float* k, const float* v, int64_t n_kv,
                      int64_t kv_stride, int64_t H, int64_t H_kv, int64_t D, float scale,
                      float* out, float* scratch) = nullptr;
    // The same over a KV cache whose rows are stored as kt / vt (F32, F16, Q8_0, Q4_0; a
    // quantised type needs D to be a multiple of its block, 32): rows are given in bytes —
    // position t, kv head g starts at k + t * k_stride + g * row_bytes(kt, D) (V likewise with
    // v_stride and vt). Quantised rows are read as stored, dequantised a block at a time in
    // registers (never as an f32 copy of the cache); the query stays f32 and the scores and the
    // weighted sum of values are f32. scratch: at least n_kv floats.
    void (*attention_kv)(const float* q, const void* k, DType kt, size_t k_stride, const void* v, DType vt,
                         size_t v_stride, int64_t n_kv, int64_t H, int64_t H_kv, int64_t D, float scale,
                         float* out, float* scratch) = nullptr;
};

// The best table for this CPU (honouring LLMFORGE_ISA). Chosen once; thread-safe.
const KernelTable& kernels();
// The table for one ISA, or nullptr if it was not compiled in or this CPU lacks it.
const KernelTable* kernels_for(Isa isa);
// What CPUID says this machine supports (independent of LLMFORGE_ISA).
struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false;
};
const CpuFeatures& cpu_features();

}  // namespace llmforge::kernels
