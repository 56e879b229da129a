#include "kernels/cpu/quantize.h"

#include <cstring>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/weights_ref.h"

namespace llmforge::kernels {

namespace {

using RowFn = void (*)(const float* x, void* y, int64_t n, const float* imatrix);

RowFn row_quantiser(DType type) {
    switch (type) {
        case DType::Q8_0: return ref::quantize_weights_q8_0;
        case DType::Q4_0: return ref::quantize_weights_q4_0;
        case DType::Q4_1: return ref::quantize_weights_q4_1;
        case DType::Q5_0: return ref::quantize_weights_q5_0;
        case DType::Q5_1: return ref::quantize_weights_q5_1;
        case DType::Q2_K: return ref::quantize_weights_q2_k;
        case DType::Q3_K: return ref::quantize_weights_q3_k;
        case DType::Q4_K: return ref::quantize_weights_q4_k;
        case DType::Q5_K: return ref::quantize_weights_q5_k;
        case DType::Q6_K: return ref::quantize_weights_q6_k;
        default: return nullptr;
    }
}

}  // namespace

bool can_quantize_weights(DType type) {
    return type == DType::F32 || type == DType::F16 || type == DType::BF16 || row_quantiser(type) != nullptr;
}

size_t quantize_weights(DType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                        const float* imatrix) {
    LF_ASSERT(can_quantize_weights(type));
    LF_ASSERT(n_per_row % dtype_info(type).block_size == 0);
    const size_t rb = row_bytes(type, n_per_row);
    auto* out = static_cast<uint8_t*>(dst);
    // Types whose weight quantiser is the plain rounding (no search, no importance) take the
    // dispatch table's row quantiser: the SIMD versions are bit-identical to the references
    // (kernels_test, qat_test's ConvertQuantiserWritesTheSameBytes) and several times faster, which
    // is most of `quantize --type q8_0`'s time.
    const QuantizeRowFn simd = (type == DType::F16 || type == DType::BF16 || type == DType::Q8_0)
                                   ? kernels().quantize_row[static_cast<int>(type)]
                                   : nullptr;
    for (int64_t r = 0; r < nrows; ++r) {
        const float* x = src + r * n_per_row;
        void* y = out + static_cast<size_t>(r) * rb;
        if (type == DType::F32) {
            std::memcpy(y, x, rb);
        } else if (simd != nullptr) {
            simd(x, y, n_per_row);
        } else {
            row_quantiser(type)(x, y, n_per_row, imatrix);
        }
    }
    return rb * static_cast<size_t>(nrows);
}

}  // namespace llmforge::kernels
