// Compiles src/kernels/cpu/x86/avx512/sgemm_avx512.cpp once more, for AVX2, with its AVX-512
// intrinsics mapped onto SIMDe (LLMFORGE_AVX512_EMULATED, x86/avx512_emulation.h), as
// x86::sgemm_avx512_emulated. Test-only: slow, but the same source and the same arithmetic.
#define LLMFORGE_AVX512_EMULATED 1
#include "kernels/cpu/x86/avx512/sgemm_avx512.cpp"
