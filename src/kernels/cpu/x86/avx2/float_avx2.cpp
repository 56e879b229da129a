// AVX2 F32 / F16 / BF16 dot products and tiles (8 lanes; 4 x 3 register tile).
#include "kernels/cpu/x86/avx2/avx2.h"
#include "kernels/cpu/x86/float_dot_impl.h"

namespace llmforge::kernels::avx2 {

using namespace x86;

void register_float(KernelTable& t) {
    t.vec_dot[static_cast<int>(DType::F32)] = vec_dot_float<V8, FW::kF32>;
    t.vec_dot[static_cast<int>(DType::F16)] = vec_dot_float<V8, FW::kF16>;
    t.vec_dot[static_cast<int>(DType::BF16)] = vec_dot_float<V8, FW::kBF16>;
    t.gemm[static_cast<int>(DType::F32)] = gemm_float<V8, FW::kF32>;
    t.gemm[static_cast<int>(DType::F16)] = gemm_float<V8, FW::kF16>;
    t.gemm[static_cast<int>(DType::BF16)] = gemm_float<V8, FW::kBF16>;
}

}  // namespace llmforge::kernels::avx2
