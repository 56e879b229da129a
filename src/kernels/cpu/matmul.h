// Matrix product of f32 activations with a weight matrix of any supported dtype, multi-threaded:
//
//   Y (M, N) = X (M, K) · W (N, K)^T        (W rows are output features, as GGUF stores them)
//
// matmul() quantises X to vec_dot_type(W) once (into a caller-owned MatmulScratch, so steady-state
// decode allocates nothing), then splits Y into tiles over the pool and runs the table's gemm on
// each. M == 1 (decode) splits the N weight rows into a few chunks per thread; M > 1 (prefill) uses
// 2-D tiles sized so a tile's weights and activations stay in L2.
//
// Thread safety: matmul() uses `pool` (see ThreadPool::run: not re-entrant) and mutates `scratch`;
// give each concurrent caller its own pool and scratch. W and X are only read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::kernels {

// A reusable 64-byte-aligned buffer; grows on demand, never shrinks. Not thread-safe.
class MatmulScratch {
public:
    // At least `bytes` bytes, 64-byte aligned; contents unspecified; valid until the next call.
    void* get(size_t bytes);
    size_t capacity() const { return cap_; }
    // false: never hand float products to BLAS, so every M > 1 uses the built-in tiles, whose
    // per-row arithmetic does not depend on M (batch-invariant results, see Model::forward_batch).
    bool allow_blas = true;
    // true: use KernelTable::gemm_invariant where the table has one (see there).
    bool row_invariant = false;

private:
    std::shared_ptr<uint8_t> buf_;
    size_t cap_ = 0;
};

// Y (m, N) = X (m, K) · W (N, K)^T with the best kernel table (kernels()).
// w: 2-D (N, K), K a multiple of w's block size. x: (m, K) f32 row-major contiguous.
// y: (m, N) f32 row-major contiguous. Shapes are checked with LF_ASSERT (internal invariant: the
// model layer validates user-facing shapes before calling).
void matmul(const Tensor& w, const float* x, int64_t m, float* y, ThreadPool& pool, MatmulScratch& scratch);
// The same with an explicit table (tests, benchmarks).
void matmul(const KernelTable& table, const Tensor& w, const float* x, int64_t m, float* y, ThreadPool& pool,
            MatmulScratch& scratch);

// Several products of the same X in one pool dispatch: ys[j] (m, N_j) = X (m, K) · ws[j]^T.
// Every ws[j] is (N_j, K). For decode (m == 1) this is what keeps the pool hand-offs per token
// low: Q/K/V become one dispatch, and X is quantised once when the weights share a
// vec_dot_type. Weights of different partner types, or m > 1, fall back to one matmul() each.
void matmul_multi(const KernelTable& table, const Tensor* const ws[], float* const ys[], int n_w, const float* x,
                  int64_t m, ThreadPool& pool, MatmulScratch& scratch);
void matmul_multi(const Tensor* const ws[], float* const ys[], int n_w, const float* x, int64_t m,
                  ThreadPool& pool, MatmulScratch& scratch);

// The SwiGLU feed-forward input: gate (m, F) = silu(X · Wg^T) * (X · Wu^T), Wg and Wu (F, K).
// `up` (m, F) is scratch (its contents on return are unspecified). For m == 1 each work item
// computes the same rows of both products and applies swiglu to them: one dispatch, no barrier
// between the products and the activation.
void matmul_swiglu(const KernelTable& table, const Tensor& w_gate, const Tensor& w_up, const float* x, int64_t m,
                   float* gate, float* up, ThreadPool& pool, MatmulScratch& scratch);
void matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, const float* x, int64_t m, float* gate, float* up,
                   ThreadPool& pool, MatmulScratch& scratch);

// Many independent products in ONE pool dispatch (mixture-of-experts layers: each expert's
// gathered rows; MLA: each head's rows through its own matrix). For product p:
//   y (m, N) = x (m, K) · w^T, or with w_up: y = silu(x · w^T) ⊙ (x · w_up^T) (y_up: scratch),
// x rows ldx floats apart (0: K), y rows ldy apart (0: N). Every product's activations are
// quantised first (one pass, in the pool), then the tiles of all products are the work items:
// weight-row chunks when m == 1 (decode), 2-D tiles otherwise. Each output is what matmul() gives
// without BLAS (a row's result does not depend on the others with the row-invariant kernels:
// scratch.row_invariant). No BLAS; m may be 0 (skipped).
struct GroupedProduct {
    const Tensor* w = nullptr;
    const Tensor* w_up = nullptr;  // SwiGLU pair (same shape and dtype as w), or null
    const float* x = nullptr;
    int64_t m = 0, ldx = 0;
    float* y = nullptr;
    float* y_up = nullptr;
    int64_t ldy = 0;
};
void matmul_grouped(const KernelTable& table, const GroupedProduct* ps, int64_t n_products, ThreadPool& pool,
                    MatmulScratch& scratch);
void matmul_grouped(const GroupedProduct* ps, int64_t n_products, ThreadPool& pool, MatmulScratch& scratch);

// Reference for tests: scalar, single-threaded. Quantises X to vec_dot_type(W) with the scalar
// quantiser and dequantises it again (so it sees the same activation rounding as matmul), then
// accumulates dequantised weights × activations in double. Differences from matmul() are
// therefore only summation order and float rounding inside the kernels.
void matmul_ref(const Tensor& w, const float* x, int64_t m, float* y);

}  // namespace llmforge::kernels
