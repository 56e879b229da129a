// AVX-512 table entries. Starts from the AVX2 table (dispatch.cpp copies it in) and overrides:
//  * F32 / F16 / BF16 dots and tiles with 16-lane vectors and a 4 x 6 register tile (32 zmm);
//  * the encoder activations (act_impl.h) with 16 lanes, masks and vscalefps;
//  * with AVX512_VNNI: the quantised dots and tiles, plain and interleaved 8-row (x8), with
//    vpdpbusd / vpdpwssd (256-bit, EVEX).
// Quantised kernels without VNNI stay AVX2 (same instruction count per byte at 256 bits).
//
// Not used on purpose: AVX512_BF16 (vdpbf16ps). It multiplies bf16 by bf16, so the f32
// activations would have to be rounded to bf16 first (the contract keeps them f32), and its
// conversion instruction flushes subnormals, unlike fp32_to_bf16. A bf16-activation path would be
// a separate vec_dot_type decision, not a drop-in kernel.
//
// Nothing here runs unless dispatch.cpp saw AVX-512F/BW/VL/DQ in CPUID and XCR0; the VNNI entries
// additionally need CpuFeatures::avx512_vnni. This file is compiled with VNNI and BF16 enabled,
// so it contains no scalar integer loops the compiler could auto-vectorise into VNNI code.
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on its own _mm512_undefined_*() merge
// operands once inlined (GCC bug 105593, fixed in 13); the warning is about the header, not us.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The emulated test build (x86_common.h) defines its own copy under another name.
#if defined(LLMFORGE_AVX512_EMULATED)
#define fill_avx512_table fill_avx512_table_emulated
#endif
#include "kernels/cpu/table_fill.h"
#include "kernels/cpu/x86/act_impl.h"
#include "kernels/cpu/x86/float_dot_impl.h"
#include "kernels/cpu/x86/quant_dot_impl.h"
#include "kernels/cpu/x86/quant_k512_impl.h"
#include "kernels/cpu/x86/quant_x8_impl.h"
#include "kernels/cpu/x86/quant_legacy_impl.h"
#include "kernels/cpu/x86/quant_kextra_impl.h"
#include "kernels/cpu/x86/attention_kv_impl.h"

namespace llmforge::kernels {

using namespace x86;

void fill_avx512_table(KernelTable& t, const CpuFeatures& f) {
    auto at = [](DType d) { return static_cast<int>(d); };
    t.isa = Isa::kAvx512;
    t.vec_dot[at(DType::F32)] = vec_dot_float<V16, FW::kF32>;
    t.vec_dot[at(DType::F16)] = vec_dot_float<V16, FW::kF16>;
    t.vec_dot[at(DType::BF16)] = vec_dot_float<V16, FW::kBF16>;
    t.gemm[at(DType::F32)] = gemm_f32_avx512;  // one row: 256-bit (float_dot_impl.h)
    t.gemm[at(DType::F16)] = gemm_float<V16, FW::kF16>;
    t.gemm[at(DType::BF16)] = gemm_float<V16, FW::kBF16>;
    t.attention_kv = attention_kv<KvLanes16>;  // KV cache rows in f32 / f16 / q8_0 / q4_0
    t.act = act<ActLanes16>;                    // GELU family (act_impl.h)

    if (f.avx512_vnni) {
        t.vec_dot[at(DType::Q8_0)] = vec_dot_q8_0<DotVnni>;
        t.vec_dot[at(DType::Q4_0)] = vec_dot_q4_0<DotVnni>;
        t.vec_dot[at(DType::Q4_K)] = vec_dot_q4_k_512;  // 64 quant bytes a step (quant_k512_impl.h)
        t.vec_dot[at(DType::Q6_K)] = vec_dot_q6_k_512;  // (quant_k512_impl.h)
        t.gemm[at(DType::Q8_0)] = gemm_q_0<DotVnni, BlockQ8_0, vec_dot_q8_0<DotVnni>>;
        t.gemm[at(DType::Q4_0)] = gemm_q_0<DotVnni, BlockQ4_0, vec_dot_q4_0<DotVnni>>;
        t.gemm_invariant[at(DType::Q8_0)] = gemm_q_0<DotVnni, BlockQ8_0, vec_dot_q_0_invariant<DotVnni, BlockQ8_0>>;
        t.gemm_invariant[at(DType::Q4_0)] = gemm_q_0<DotVnni, BlockQ4_0, vec_dot_q_0_invariant<DotVnni, BlockQ4_0>>;
        // Q8_0: 512-bit tiles (quant_x8_impl.h x8_tile512: +15-19% prefill, +3-12% decode on 110M,
        // Sapphire Rapids); Q4_0 stays on the 256-bit ones (the zmm tile's vpermd per activation
        // chunk made prefill 8-10% slower, decode equal).
        t.gemm_x8[at(DType::Q8_0)] = gemm_x8<DotVnni, false, true>;
        t.gemm_x8[at(DType::Q4_0)] = gemm_x8<DotVnni, true>;
        // One activation row: four weight rows a pass (quant_k512_impl.h); more: zmm tiles
        // (gemm_q4k_tiles512, gemm_q6k_tiles512).
        t.gemm[at(DType::Q4_K)] = gemm_k512<q4k_rows_512<1>, q4k_rows_512<2>, q4k_rows_512<3>, q4k_rows_512<4>,
                                            q4k_acts_512, BlockQ4_K, false, kprep_q4_k, vec_dot_q4_k_512,
                                            gemm_q4k_tiles512>;
        t.gemm[at(DType::Q6_K)] = gemm_k512<q6k_rows_512<1>, q6k_rows_512<2>, q6k_rows_512<3>, q6k_rows_512<4>,
                                            nullptr, BlockQ6_K, true, kprep_q6_k, vec_dot_q6_k_512,
                                            gemm_q6k_tiles512>;
        register_legacy_x86<DotVnni>(t);
        register_kextra_x86<DotVnni>(t);
    }
}

}  // namespace llmforge::kernels
