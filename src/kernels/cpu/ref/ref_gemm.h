// The reference tile products, shared by every reference registration (table_ref.cpp and the
// per-family ref files): one vec_dot per output, so the gemm is row-invariant by construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/repack.h"

namespace llmforge::kernels::ref {

// The reference tile product: one vec_dot per output, no blocking.
template <VecDotFn Dot>
void gemm_by_vec_dot(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x,
                     size_t x_stride, int64_t nc, float* out, size_t ldo) {
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* xb = static_cast<const uint8_t*>(x);
    for (int64_t c = 0; c < nc; ++c) {
        for (int64_t r = 0; r < nr; ++r) {
            out[static_cast<size_t>(c) * ldo + static_cast<size_t>(r)] =
                Dot(n, wb + static_cast<size_t>(r) * w_stride, xb + static_cast<size_t>(c) * x_stride);
        }
    }
}

// The reference over the interleaved 8-row layout: each row is put back into plain blocks, then
// the same vec_dot as the plain reference (so both layouts give identical results).
template <DType T, VecDotFn Dot>
void gemm_x8_by_vec_dot(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x,
                        size_t x_stride, int64_t nc, float* out, size_t ldo) {
    thread_local std::vector<uint8_t> row;
    row.resize(w_stride);
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* xb = static_cast<const uint8_t*>(x);
    for (int64_t r = 0; r < nr; ++r) {
        x8_unpack_row(T, wb + static_cast<size_t>(r - r % 8) * w_stride, static_cast<int>(r % 8), n, row.data());
        for (int64_t c = 0; c < nc; ++c) {
            out[static_cast<size_t>(c) * ldo + static_cast<size_t>(r)] =
                Dot(n, row.data(), xb + static_cast<size_t>(c) * x_stride);
        }
    }
}

}  // namespace llmforge::kernels::ref
