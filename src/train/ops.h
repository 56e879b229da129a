// The differentiable ops of the Llama family, each one unit: shape rule, forward and backward side
// by side (ops.cpp). Every op reads its inputs' data, writes a new node and, when the tape records
// gradients and an input requires one, registers the backward that accumulates (+=) into the
// inputs' gradients. Shapes use N = B·T rows, C model width, H / H_kv heads, D head size, V vocab,
// F feed-forward width.
//
// Shape or size mismatches between ops are programming errors (LF_ASSERT): the model validates
// user-facing shapes before it builds the graph.
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"
#include "kernels/cpu/gemm_bf16.h"
#include "train/tape.h"

namespace llmforge::train {

// A frozen matrix packed for the bf16 tile products, forward (W) and backward (Wᵀ).
struct FrozenPacks {
    kernels::PackedBf16 fwd, bwd;
};

// y (N, C) = table (V, C) [ids]. ids must be < V (checked by the caller).
Var embedding(Tape& t, Var table, const int32_t* ids, int64_t n);

// db (M) += the column sums of dy (N, M), each in double over the rows in order (the same sum for
// any thread count): a bias's gradient, or any vector broadcast onto every row.
void bias_grad(ThreadPool& pool, const float* dy, float* db, int64_t N, int64_t M);

// y (N, M) = x (N, K) · w (M, K)^T (+ bias (M)). In bf16/fp16 precision the products' inputs (x, w
// and, in backward, dy) are rounded to that format; sums stay f32.
Var linear(Tape& t, Var x, Var w, Var bias = nullptr);

// y (N, C) = x / sqrt(mean(x², over C) + eps) · g (C).
Var rmsnorm(Tape& t, Var x, Var g, float eps);

// Rotary position embedding of x (N, H·D) in heads of size D; row r is at position pos[r].
// cos/sin: (P, D/2) tables for positions 0..P-1 (pair i of position p: angle p·inv_freq[i]).
// interleaved: rotate pairs (2i, 2i+1) (Meta / llama2.c / GGUF); else rotate-half (i, i+D/2) (HF).
Var rope(Tape& t, Var x, int64_t head_dim, const int32_t* pos, const float* cos, const float* sin,
         bool interleaved, bool in_place = false);
// (in_place: x's values are rotated where they lie and x itself is returned — no new node — for
// an x that nothing reads afterwards but this op, in forward or backward, such as a product's
// output on its way to attention; its gradient is rotated back in place in backward.)

// Causal self-attention with grouped-query heads over B sequences of T positions:
// q (B·T, H·D), k (B·T, H_kv·D) and v (B·T, H_kv·Dv) → (B·T, H·Dv); query head h reads kv head
// h / (H / H_kv);
// scores scaled by `scale` (0: 1/sqrt(D)), position t attends to 0..t, or with a sliding window
// W > 0 to t-W+1..t.
// Packed rows (several documents in one sequence): doc_start (B·T), when given, holds for each row
// the index within its sequence (0..T-1, <= t) of the first position of that row's document, and
// row t then attends to max(doc_start[t], t-W+1 when W > 0)..t only, so no attention crosses a
// document boundary. nullptr: every row's document starts at 0 (the plain causal mask). Positions
// for RoPE are the caller's (t - doc_start[t] for a packed row). The buffer must stay valid until
// backward, as targets must for cross_entropy. Computed in blocks of query rows that skip the
// masked upper triangle; it keeps about (T² + 64·T) / 2 probabilities per sequence and head.
Var attention(Tape& t, Var q, Var k, Var v, int64_t batch, int64_t seq, int64_t n_head, int64_t n_head_kv,
              int64_t window = 0, float scale = 0.0f, const int32_t* doc_start = nullptr);

// The same values in another shape (same numel); a copy, so the two nodes' gradients stay apart.
Var reshape(Tape& t, Var x, std::vector<int64_t> shape);
// Identity backward from y to x (same numel): x's gradient += y's. For ops whose derivative is
// taken as 1 (a reshape; the straight-through estimator of a rounding). Call only when
// y->requires_grad.
void pass_gradient_through(Tape& t, Var x, Var y);

// Frozen weights (Param::trainable == false) stay in their file's dtype: rows and matrices are
// dequantised block by block as they are used (a plain f32 matrix in fp32 precision is read in
// place, one product each way), so they need no f32 copy, gradient or optimiser state; gradients
// still flow through them to the activations.
// y (N, C) = table rows [ids], no gradient to the table.
Var embedding_frozen(Tape& t, const Tensor& table, const int32_t* ids, int64_t n);
// y (N, M) = x (N, K) · w (M, K)^T (+ bias); dx flows, w gets no gradient.
// In bf16 precision on a CPU with AMX the products run on bf16 tiles (kernels/cpu/gemm_bf16.h):
// an f32 or bf16 matrix is packed once into `packs` (both orientations, 2 bytes per weight each;
// the caller keeps them with the weight: Param::packs) and reused every step; other dtypes
// (quantised, f16) are packed block by block at each call, so a quantised base stays small.
Var linear_frozen(Tape& t, Var x, const Tensor& w, Var bias = nullptr, std::shared_ptr<FrozenPacks>* packs = nullptr);

// y (N, M) += scale · x (N, K) · w (M, K)^T, in place; returns y (the same node, which from then
// on carries this op's gradient too: requires_grad is set when x or w need one). For a low-rank
// term added to a product whose backward does not read its output (LoRA's B product onto a
// frozen linear's output): no new (N, M) node. Precision as linear.
Var linear_into(Tape& t, Var y, Var x, Var w, float scale);

// y (B·(N+T), C): prefix (N, C) placed before each of B sequences of rows (B·T, C) (virtual-token
// or image rows in front of a sequence's tokens); the prefix's gradient sums over the sequences.
Var prepend_rows(Tape& t, Var prefix, Var rows, int64_t batch);
// y (B·(N+T), C): sequence b's own N rows of `extra` (B·N, C) inserted before row at[b] (0..T) of
// its T rows (B·T, C) — an image's rows at its place in a prompt. `at` is copied.
Var insert_rows(Tape& t, Var rows, Var extra, int64_t batch, const int32_t* at);

// y = silu(gate) · up, elementwise, both (N, F).
Var swiglu(Tape& t, Var gate, Var up);

// y = a + b, same shape.
Var add(Tape& t, Var a, Var b);

// Activation checkpointing: y = fn(x), keeping none of fn's intermediate values; backward runs
// fn(x) again on a scratch tape and propagates y's gradient through it. fn must compute the same
// values when run again (dropout masks are seeded, so they are) and read parameters via the tape
// it is given.
Var checkpoint(Tape& t, Var x, const std::function<Var(Tape&, Var)>& fn);

// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p). The
// mask is a pure function of (seed, element index), so backward (and a resumed run) rebuild it
// instead of storing it. p = 0 returns x itself (evaluation passes 0).
Var dropout(Tape& t, Var x, float p, uint64_t seed);

// Mean cross-entropy (natural log) of logits (N, V) against targets (N): a (1) node. Targets must
// be < V (checked by the caller). A negative target marks a row that is not counted (PyTorch's
// ignore_index; SFT masks, padding, dialogue boundaries): the loss is the mean over the counted
// rows only and ignored rows get zero gradient; with no counted row the loss is 0 with zero
// gradient. Sums in double, in row order.
Var cross_entropy(Tape& t, Var logits, const int32_t* targets, int64_t n);

// a + s·b for same-shaped nodes (a loss plus a weighted one: MTP's λ).
Var add_scaled(Tape& t, Var a, Var b, float s);

}  // namespace llmforge::train
