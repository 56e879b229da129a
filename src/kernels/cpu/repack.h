// The interleaved 8-row ("x8") layout of Q4_0 / Q8_0 / Q4_1 / Q5_0 / Q5_1 weight matrices, made
// once at load.
//
// A plain matrix stores each row's blocks in turn. The x8 layout stores rows in groups of 8, and
// within a group, block b of all 8 rows together as one "group block":
//   * the 8 rows' fp16 scales (16 bytes), then
//   * the quant bytes in 4-byte chunks: chunk s holds bytes [4s, 4s+4) of each row's block quants,
//     row 0 to row 7 (32 bytes per chunk; Q4_0 has 4 chunks, Q8_0 has 8).
// A Q4_0 group block is 16 + 128 = 144 bytes = 8 x 18, a Q8_0 one 16 + 256 = 272 = 8 x 34: a group
// takes exactly the bytes of its 8 plain rows, so row r0 (r0 % 8 == 0) still starts at
// r0 * row_stride() and the tensor keeps its dtype, shape and size (Tensor::row_group() == 8).
//
// Why: one broadcast activation chunk (4 int8) then meets 8 rows in one 256-bit register, the 8
// scales convert in one instruction and the 8 results land in one vector with no horizontal
// sums: about half the instructions per weight byte of the row-at-a-time dot, for decode and
// prefill alike (KernelTable::gemm_x8, docs/PERFORMANCE.md).
//
// Thread safety: pure functions; repack_x8(in_place = true) writes w's bytes (see there).
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace llmforge::kernels {

// Q4_0, Q8_0, Q4_1, Q5_0, Q5_1. Block header fields other than the scale (Q4_1 / Q5_1's fp16
// minimum, Q5's 32 fifth bits) are grouped the same way, each field of the 8 rows together, in the
// block's field order, before the quant chunks (repack.cpp: Layout).
bool x8_supported(DType t);
// A 2-D matrix of a supported dtype with a multiple of 8 rows, in the plain layout.
bool x8_can_repack(const Tensor& w);

// The x8 copy of w (x8_can_repack(w) must hold), written to dst (w.nbytes() bytes, which `owner`
// keeps alive). dst == w.data() repacks in place: w's bytes must then be writable and not read by
// anyone else meanwhile.
Tensor repack_x8(const Tensor& w, uint8_t* dst, std::shared_ptr<const void> owner);
// The same into w's own bytes (in_place) or into a new huge-page buffer of its own.
Tensor repack_x8(const Tensor& w, bool in_place);

// Row i (0..7) of the x8 group starting at `group` (a K-element matrix of dtype t), written to
// `out` in the plain layout (row_bytes(t, k) bytes).
void x8_unpack_row(DType t, const uint8_t* group, int i, int64_t k, uint8_t* out);

}  // namespace llmforge::kernels
