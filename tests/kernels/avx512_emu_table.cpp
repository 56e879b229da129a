// Compiles src/kernels/cpu/x86/avx512/table_avx512.cpp once more, for AVX2, with its AVX-512
// intrinsics mapped onto SIMDe (LLMFORGE_AVX512_EMULATED, x86_common.h). Test-only: slow, but the
// same source and the same arithmetic as the real AVX-512 table.
#define LLMFORGE_AVX512_EMULATED 1
#include "kernels/cpu/x86/avx512/table_avx512.cpp"

#include "kernels/avx512_emu.h"

namespace llmforge::kernels {

bool avx512_emulation_runs_here() {
    const CpuFeatures& f = cpu_features();
    return f.avx2 && f.fma && f.f16c;
}

const KernelTable* avx512_emulated_table() {
    static KernelTable table;
    static const bool ok = [] {
        const KernelTable* avx2 = kernels_for(Isa::kAvx2);
        if (avx2 == nullptr) return false;
        table = *avx2;  // as dispatch.cpp does: AVX-512 starts from the AVX2 table
        CpuFeatures f;
        f.avx2 = f.fma = f.f16c = true;
        f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_vnni = true;
        fill_avx512_table_emulated(table, f);
        return true;
    }();
    return ok ? &table : nullptr;
}

}  // namespace llmforge::kernels
