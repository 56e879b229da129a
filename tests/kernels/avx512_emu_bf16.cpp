// Compiles src/kernels/cpu/x86/amx/gemm_bf16_avx512.cpp (the VDPBF16PS GEMM and the AVX-512
// bf16 packers) once more, for AVX2, with its AVX-512 / AVX512-BF16 intrinsics mapped onto SIMDe
// (LLMFORGE_AVX512_EMULATED, x86/avx512_emulation.h), under *_emulated names. Test-only.
#define LLMFORGE_AVX512_EMULATED 1
#include "kernels/cpu/x86/amx/gemm_bf16_avx512.cpp"
