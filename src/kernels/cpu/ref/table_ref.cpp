// Registers the scalar reference kernels: every entry of the table, for every supported dtype.
#include <vector>

#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/ref_gemm.h"
#include "kernels/cpu/repack.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace {

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

    t.gemm[idx(DType::F32)] = ref::gemm_by_vec_dot<ref::vec_dot_f32>;
    t.gemm[idx(DType::F16)] = ref::gemm_by_vec_dot<ref::vec_dot_f16>;
    t.gemm[idx(DType::BF16)] = ref::gemm_by_vec_dot<ref::vec_dot_bf16>;
    t.gemm[idx(DType::Q8_0)] = ref::gemm_by_vec_dot<ref::vec_dot_q8_0>;
    t.gemm[idx(DType::Q4_0)] = ref::gemm_by_vec_dot<ref::vec_dot_q4_0>;
    t.gemm[idx(DType::Q4_K)] = ref::gemm_by_vec_dot<ref::vec_dot_q4_k>;
    t.gemm[idx(DType::Q6_K)] = ref::gemm_by_vec_dot<ref::vec_dot_q6_k>;
    for (int i = 0; i < kMaxDType; ++i) t.gemm_invariant[i] = t.gemm[i];  // every output is one vec_dot call
    t.gemm_x8[idx(DType::Q8_0)] = ref::gemm_x8_by_vec_dot<DType::Q8_0, ref::vec_dot_q8_0>;
    t.gemm_x8[idx(DType::Q4_0)] = ref::gemm_x8_by_vec_dot<DType::Q4_0, ref::vec_dot_q4_0>;

    t.rmsnorm = ref::rmsnorm;
    t.softmax = ref::softmax;
    t.adamw = ref::adamw;
    t.sumsq = ref::sumsq;
    t.swiglu = ref::swiglu;
    t.act = ref::act;
    t.layernorm = ref::layernorm;
    t.axpy = ref::axpy;
    t.add = ref::add;
    t.rope = ref::rope;
    t.attention = ref::attention;
    t.attention_kv = ref::attention_kv;

    register_legacy_ref(t);
    register_kextra_ref(t);
    // Every output of the reference tiles is one vec_dot call.
    for (int i = 0; i < kMaxDType; ++i)
        if (t.gemm_invariant[i] == nullptr) t.gemm_invariant[i] = t.gemm[i];
}

}  // namespace llmforge::kernels
