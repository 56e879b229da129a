// Registers the scalar reference kernels: every entry of the table, for every supported dtype.
#include <vector>

#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/repack.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace {

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

constexpr int idx(DType t) { return static_cast<int>(t); }

}  // namespace

void fill_ref_table(KernelTable& t) {
    t.isa = Isa::kScalar;
    t.quantize_row[idx(DType::F16)] = ref::quantize_row_f16;
    t.quantize_row[idx(DType::BF16)] = ref::quantize_row_bf16;
    t.quantize_row[idx(DType::Q8_0)] = ref::quantize_row_q8_0;
    t.quantize_row[idx(DType::Q4_0)] = ref::quantize_row_q4_0;
    t.quantize_row[idx(DType::Q4_K)] = ref::quantize_row_q4_k;
    t.quantize_row[idx(DType::Q6_K)] = ref::quantize_row_q6_k;
    t.quantize_row[idx(DType::Q8_K)] = ref::quantize_row_q8_k;

    t.dequantize_row[idx(DType::F32)] = ref::dequantize_row_f32;
    t.dequantize_row[idx(DType::F16)] = ref::dequantize_row_f16;
    t.dequantize_row[idx(DType::BF16)] = ref::dequantize_row_bf16;
    t.dequantize_row[idx(DType::Q8_0)] = ref::dequantize_row_q8_0;
    t.dequantize_row[idx(DType::Q4_0)] = ref::dequantize_row_q4_0;
    t.dequantize_row[idx(DType::Q4_K)] = ref::dequantize_row_q4_k;
    t.dequantize_row[idx(DType::Q6_K)] = ref::dequantize_row_q6_k;
    t.dequantize_row[idx(DType::Q8_K)] = ref::dequantize_row_q8_k;

    t.vec_dot[idx(DType::F32)] = ref::vec_dot_f32;
    t.vec_dot[idx(DType::F16)] = ref::vec_dot_f16;
    t.vec_dot[idx(DType::BF16)] = ref::vec_dot_bf16;
    t.vec_dot[idx(DType::Q8_0)] = ref::vec_dot_q8_0;
    t.vec_dot[idx(DType::Q4_0)] = ref::vec_dot_q4_0;
    t.vec_dot[idx(DType::Q4_K)] = ref::vec_dot_q4_k;
    t.vec_dot[idx(DType::Q6_K)] = ref::vec_dot_q6_k;

    t.gemm[idx(DType::F32)] = gemm_by_vec_dot<ref::vec_dot_f32>;
    t.gemm[idx(DType::F16)] = gemm_by_vec_dot<ref::vec_dot_f16>;
    t.gemm[idx(DType::BF16)] = gemm_by_vec_dot<ref::vec_dot_bf16>;
    t.gemm[idx(DType::Q8_0)] = gemm_by_vec_dot<ref::vec_dot_q8_0>;
    t.gemm[idx(DType::Q4_0)] = gemm_by_vec_dot<ref::vec_dot_q4_0>;
    t.gemm[idx(DType::Q4_K)] = gemm_by_vec_dot<ref::vec_dot_q4_k>;
    t.gemm[idx(DType::Q6_K)] = gemm_by_vec_dot<ref::vec_dot_q6_k>;
    for (int i = 0; i < kMaxDType; ++i) t.gemm_invariant[i] = t.gemm[i];  // every output is one vec_dot call
    t.gemm_x8[idx(DType::Q8_0)] = gemm_x8_by_vec_dot<DType::Q8_0, ref::vec_dot_q8_0>;
    t.gemm_x8[idx(DType::Q4_0)] = gemm_x8_by_vec_dot<DType::Q4_0, ref::vec_dot_q4_0>;

    t.rmsnorm = ref::rmsnorm;
    t.softmax = ref::softmax;
    t.swiglu = ref::swiglu;
    t.axpy = ref::axpy;
    t.add = ref::add;
    t.rope = ref::rope;
    t.attention = ref::attention;

    register_legacy_ref(t);
    register_kextra_ref(t);
    // Every output of the reference tiles is one vec_dot call.
    for (int i = 0; i < kMaxDType; ++i)
        if (t.gemm_invariant[i] == nullptr) t.gemm_invariant[i] = t.gemm[i];
}

}  // namespace llmforge::kernels
