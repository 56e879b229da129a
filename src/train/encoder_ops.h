// The differentiable ops of encoder architectures (vision towers, bidirectional text encoders:
// model/arch/vit.cpp), each with its forward and backward side by side (encoder_ops.cpp), as the
// decoder's in ops.h. Forward row math (LayerNorm, the GELU family) is kernels/cpu/encoder_math.h,
// shared with the engine's EagerOps, so both backends compute the same values.
//
// Shapes: N = B·T rows, B sequences (images, texts) of T rows each, C width.
#pragma once

#include <cstdint>

#include "train/tape.h"

namespace llmforge::train {

// y (N, C) = (x − mean) / sqrt(var + eps) · g (C) + b (C) per row; b may be null.
Var layernorm(Tape& t, Var x, Var g, Var b, float eps);

// y = f(x) elementwise; kind is config.h's Activation (0 gelu, 1 gelu_tanh, 2 quick_gelu, 3 tanh).
Var activation(Tape& t, Var x, int kind);

// Bidirectional attention: every row of a sequence attends to its sequence's rows (B sequences of
// T rows): q (N, H·D), k (N, H_kv·D), v (N, H_kv·Dv) → (N, H·Dv); query head h reads kv head
// h / (H / H_kv); scores scaled by `scale` (0: 1/sqrt(D)). lengths (B, optional): sequence b's
// keys are its first lengths[b] rows only (padding after them; its padded rows still get outputs,
// which a loss should not count). Keeps the (B, H, T, T) probabilities for backward.
// Groups (Swin's windows) are sequences here: B = rows / G, T = G. bias (H, T, T), optional, is
// added to every sequence's scaled scores and gets their summed gradient; mask (n_mask, T, T),
// optional constants (read in forward only), is added to sequence b's scores as mask b % n_mask.
// Tk > 0: keys and values have Tk rows per sequence (cross-attention: q from one input, k and v
// from another), else T.
Var attention_bidir(Tape& t, Var q, Var k, Var v, int64_t B, int64_t T, int64_t n_head, int64_t n_head_kv,
                    float scale = 0.0f, const int32_t* lengths = nullptr, Var bias = nullptr,
                    const float* mask = nullptr, int64_t n_mask = 0, int64_t Tk = 0);

// Softmax of each row of x (N, C).
Var softmax_rows(Tape& t, Var x);

// y = w[:, 0]·a + w[:, 1]·b per row: w (N, 2), a and b (N, C).
Var weighted_sum(Tape& t, Var w, Var a, Var b);

// x (B·T, C) with each sequence's first row replaced by w (C) (a class token); w's gradient is the
// sum of those rows' gradients, x's first rows get none.
Var class_row(Tape& t, Var x, Var w, int64_t B);

// x (B·T, C) + table[i + offset] for row i of each sequence (learned absolute positions);
// table (P, C) (any leading shape with C last), P >= T + offset.
Var add_positions(Tape& t, Var x, Var table, int64_t B, int64_t offset);

// x (N, C) + table[row] (the table (R, C)) on every row; the table row's gradient is the column sum.
Var add_row(Tape& t, Var x, Var table, int64_t row);

// The first row of each of B sequences: (B, C).
Var first_rows(Tape& t, Var x, int64_t B);

// The mean of each of B sequences' rows: (B, C).
Var mean_rows(Tape& t, Var x, int64_t B);

// Row i of each of B sequences of the result = that sequence's row index[i] of x (zeros where
// index[i] < 0); n_out rows per sequence. index is copied.
Var gather_rows(Tape& t, Var x, int64_t B, const int32_t* index, int64_t n_out);

// (H, G, G): [h][i][j] = table (P, H) [index[i·G + j]][h]; the table's gradient is scattered back.
// index is copied.
Var table_bias(Tape& t, Var table, const int32_t* index, int64_t G, int64_t H);

}  // namespace llmforge::train
