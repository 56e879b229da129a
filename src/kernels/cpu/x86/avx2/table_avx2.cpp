#include "kernels/cpu/table_fill.h"
#include "kernels/cpu/x86/avx2/avx2.h"

namespace llmforge::kernels {

void fill_avx2_table(KernelTable& t) {
    t.isa = Isa::kAvx2;
    // Copied from the scalar table, whose gemm is row-invariant everywhere; ours only where
    // register_quant says so.
    for (GemmFn& g : t.gemm_invariant) g = nullptr;
    avx2::register_quant(t);
    avx2::register_float(t);
    avx2::register_ops(t);
    avx2::register_legacy(t);
    avx2::register_kextra(t);
}

}  // namespace llmforge::kernels
