// f32 GEMM on AVX-512F: the training products (kernels/cpu/gemm_f32.h) on machines where OpenBLAS
// does not reach the FMA peak. Measured on this project's AVX-512 machines (Intel, 2 vCPUs,
// `build/bin/bench_sgemm_peak`): a register-only FMA loop peaks at ~212 GFLOP/s per core;
// OpenBLAS 0.3.21 sgemm (SKYLAKEX kernels) reaches ~150 and oneDNN 2.6 ~160-170, and on the
// Zen5 machines, where the environment pins OPENBLAS_CORETYPE=Haswell, OpenBLAS runs its AVX2
// kernels at 39% of peak (issue 21). Written here (not taken from a library) because neither
// packaged library reaches the peak on both kinds of machine. This kernel itself measured at
// parity with OpenBLAS on the Intel machines (147 vs 148 GFLOP/s on 2048³, 137-155 on a 110M
// training step's products) and 2-6% ahead on whole training steps; on Zen5 it is unmeasured.
//
// Structure (the usual one of BLIS / GotoBLAS): C is computed in column blocks of NC, k blocks of
// KC and row blocks of MC; per (NC, KC) block op(B) is packed into 32-column panels (k-major), per
// MC block op(A) into 14-row panels (k-major); the micro-kernel keeps a 14 x 32 block of C in 28
// zmm accumulators, one broadcast of A and two loads of B per k (28 FMAs). Transposed operands
// are packed with in-register 16 x 16 transposes, so every layout costs about the same.
//
// Numerics: every element of C is alpha · (its k-block sums, each summed in k order with FMAs)
// added to beta · C; the result depends only on the shapes, not on where C is cut between calls
// (the blocking is relative to the call's own C), so the pool split in gemm_f32.cpp is bitwise
// repeatable for a fixed pool size.
// Internal linkage / no std:: code: see x86/x86_common.h.
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on its own _mm512_undefined_*() merge
// operands once inlined (GCC bug 105593, fixed in 13), as in avx512/table_avx512.cpp.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

// The emulated test build (tests/kernels/avx512_emu_sgemm.cpp) compiles this file for AVX2 over
// SIMDe, under another name.
#if defined(LLMFORGE_AVX512_EMULATED)
#include "kernels/cpu/x86/avx512_emulation.h"
#define sgemm_avx512 sgemm_avx512_emulated
#endif
#include "kernels/cpu/x86/avx512/sgemm_x86.h"
#include "kernels/cpu/x86/transpose512.h"

namespace llmforge::kernels::x86 {
namespace {

constexpr int64_t kMR = 14, kNR = 32, kKC = 256, kMC = 14 * 12, kNC = 1024;
static_assert(kMC * kKC == kSgemmAFloats && kKC * kNC == kSgemmBFloats);

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline __mmask16 mask_n(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u); }

// 16 values of a strided source transposed into place: rows[i] = 16 floats at src + i * ld
// (masked to `cols`, rows >= n_rows zero); after the transpose register j holds element j of
// every row.
inline void load_transpose(const float* src, int64_t ld, int64_t n_rows, int64_t cols, __m512i v[16]) {
    const __mmask16 m = mask_n(cols);
    for (int64_t i = 0; i < 16; ++i)
        v[i] = i < n_rows ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + i * ld)) : _mm512_setzero_si512();
    transpose16(v);
}

// op(A) rows [i0, i0 + mc) x k [p0, p0 + kc) into 14-row panels: ap[(panel * kc + k) * 14 + r].
// Rows past mc are zeros. op(A)[i][p] = ta ? a[p * lda + i] : a[i * lda + p].
void pack_a(bool ta, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* ap) {
    const __mmask16 m14 = mask_n(kMR);
    for (int64_t ip = 0; ip * kMR < mc; ++ip) {
        const int64_t r0 = i0 + ip * kMR, nr = min64(kMR, mc - ip * kMR);
        float* panel = ap + ip * kc * kMR;
        if (ta) {  // k row of A's source: the panel's rows are contiguous
            const __mmask16 m = mask_n(nr);
            for (int64_t k = 0; k < kc; ++k)
                _mm512_mask_storeu_ps(panel + k * kMR, m14, _mm512_maskz_loadu_ps(m, a + (p0 + k) * lda + r0));
            continue;
        }
        for (int64_t k = 0; k < kc; k += 16) {  // rows contiguous in k: 16 x 16 transposes
            __m512i v[16];
            load_transpose(a + r0 * lda + p0 + k, lda, nr, kc - k, v);
            for (int64_t j = 0; j < min64(16, kc - k); ++j)
                _mm512_mask_storeu_ps(panel + (k + j) * kMR, m14, _mm512_castsi512_ps(v[j]));
        }
    }
}

// op(B) k [p0, p0 + kc) x columns [j0, j0 + nc) into 32-column panels: bp[(panel * kc + k) * 32 + j].
// Columns past nc are zeros. op(B)[p][j] = tb ? b[j * ldb + p] : b[p * ldb + j].
void pack_b(bool tb, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
    for (int64_t jp = 0; jp * kNR < nc; ++jp) {
        const int64_t c0 = j0 + jp * kNR, ncols = min64(kNR, nc - jp * kNR);
        float* panel = bp + jp * kc * kNR;
        if (!tb) {
            const __mmask16 m0 = mask_n(ncols), m1 = mask_n(ncols - 16);
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = b + (p0 + k) * ldb + c0;
                _mm512_store_ps(panel + k * kNR, _mm512_maskz_loadu_ps(m0, src));
                _mm512_store_ps(panel + k * kNR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
            continue;
        }
        for (int64_t h = 0; h < 2; ++h) {  // 16 columns = 16 rows of b, contiguous in k
            for (int64_t k = 0; k < kc; k += 16) {
                __m512i v[16];
                load_transpose(b + (c0 + 16 * h) * ldb + p0 + k, ldb, ncols - 16 * h, kc - k, v);
                for (int64_t j = 0; j < min64(16, kc - k); ++j)
                    _mm512_store_ps(panel + (k + j) * kNR + 16 * h, _mm512_castsi512_ps(v[j]));
            }
        }
    }
}

// C rows [0, mr) x columns [0, nc) (nc <= 32) = alpha · (ap-panel · bp-panel) + (mode 0: nothing,
// 1: beta · C, 2: C).
void micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t mr, int64_t nc, float alpha,
           float beta, int mode) {
    __m512 c0[kMR], c1[kMR];
    for (int r = 0; r < kMR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int r = 0; r < kMR; ++r) {  // C's rows (a row stride apart) arrive during the k loop
        if (r >= mr) break;
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(bp + k * kNR), b1 = _mm512_load_ps(bp + k * kNR + 16);
        const float* ak = ap + k * kMR;
        for (int r = 0; r < kMR; ++r) {
            const __m512 av = _mm512_set1_ps(ak[r]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    const __mmask16 m0 = mask_n(nc), m1 = mask_n(nc - 16);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < kMR; ++r) {
        if (r >= mr) break;
        float* cr = c + r * ldc;
        __m512 y0 = _mm512_mul_ps(va, c0[r]), y1 = _mm512_mul_ps(va, c1[r]);
        if (mode == 1) {
            y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), y0);
            y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), y1);
        } else if (mode == 2) {
            y0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), y0);
            y1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), y1);
        }
        _mm512_mask_storeu_ps(cr, m0, y0);
        _mm512_mask_storeu_ps(cr + 16, m1, y1);
    }
}

}  // namespace

void sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, float* wa, float* wb) {
    for (int64_t j0 = 0; j0 < n; j0 += kNC) {
        const int64_t nc = min64(kNC, n - j0);
        for (int64_t p0 = 0; p0 < k; p0 += kKC) {
            const int64_t kc = min64(kKC, k - p0);
            const int mode = p0 > 0 || beta == 1.0f ? 2 : beta == 0.0f ? 0 : 1;
            pack_b(tb, b, ldb, p0, kc, j0, nc, wb);
            for (int64_t i0 = 0; i0 < m; i0 += kMC) {
                const int64_t mc = min64(kMC, m - i0);
                pack_a(ta, a, lda, i0, mc, p0, kc, wa);
                for (int64_t ir = 0; ir < mc; ir += kMR)  // an A panel stays in L1 across B's panels
                    for (int64_t jr = 0; jr < nc; jr += kNR)
                        micro(kc, wa + (ir / kMR) * kc * kMR, wb + (jr / kNR) * kc * kNR, c + (i0 + ir) * ldc + j0 + jr,
                              ldc, min64(kMR, mc - ir), min64(kNR, nc - jr), alpha, beta, mode);
            }
        }
    }
}

}  // namespace llmforge::kernels::x86
