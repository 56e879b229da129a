#include "kernels/cpu/gemm_f32.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/x86/avx512/sgemm_x86.h"

#if defined(LLMFORGE_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace llmforge::kernels {

namespace {

#if !defined(LLMFORGE_HAVE_OPENBLAS)
// Fallback without BLAS: C += alpha·op(A)·op(B) in k-blocks; the inner loop over j is contiguous
// in B (after packing a transposed B) and in C, so it vectorises.
void sgemm_fallback(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* c, int64_t ldc) {
    constexpr int64_t kBk = 256;
    std::vector<float> bp;  // (kb, n) block of op(B), row-major
    for (int64_t p0 = 0; p0 < k; p0 += kBk) {
        const int64_t kb = std::min(kBk, k - p0);
        bp.resize(static_cast<size_t>(kb * n));
        for (int64_t p = 0; p < kb; ++p)
            for (int64_t j = 0; j < n; ++j) bp[p * n + j] = tb ? b[j * ldb + p0 + p] : b[(p0 + p) * ldb + j];
        for (int64_t i = 0; i < m; ++i) {
            float* ci = c + i * ldc;
            for (int64_t p = 0; p < kb; ++p) {
                const float av = alpha * (ta ? a[(p0 + p) * lda + i] : a[i * lda + p0 + p]);
                const float* bpp = bp.data() + p * n;
                for (int64_t j = 0; j < n; ++j) ci[j] += av * bpp[j];
            }
        }
    }
}
#endif

// The AVX-512 kernel (x86/avx512/sgemm_avx512.cpp) where the CPU has AVX-512F, unless
// LLMFORGE_SGEMM=blas asks for the library (comparisons); products too small to amortise the
// packing stay with the library / fallback.
bool use_avx512_sgemm() {
#if defined(__x86_64__)
    static const bool on = [] {
        // The CPU's AVX-512, unless LLMFORGE_ISA chose a lower kernel table (no AVX-512 code at all then).
        const CpuFeatures& f = cpu_features();
        const bool have = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && kernels().isa == Isa::kAvx512;
        const char* env = std::getenv("LLMFORGE_SGEMM");
        const bool blas = env != nullptr && std::strcmp(env, "blas") == 0;
        if (env != nullptr && *env != '\0' && !blas && std::strcmp(env, "avx512") != 0)
            std::fprintf(stderr, "llmforge: LLMFORGE_SGEMM=%s is unknown (expected avx512 or blas); using %s\n", env,
                         have ? "avx512" : "blas");
        return have && !blas;
    }();
    return on;
#else
    return false;
#endif
}

struct SgemmWorkspace {
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float, Free> a, b;
    SgemmWorkspace()
        : a(static_cast<float*>(std::aligned_alloc(64, x86::kSgemmAFloats * sizeof(float)))),
          b(static_cast<float*>(std::aligned_alloc(64, x86::kSgemmBFloats * sizeof(float)))) {
        if (!a || !b) throw std::bad_alloc();
    }
};

}  // namespace

bool sgemm_uses_avx512() { return use_avx512_sgemm(); }

void sgemm_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0 || k <= 0) {
        sgemm_ref(trans_a, trans_b, std::max<int64_t>(m, 0), std::max<int64_t>(n, 0), 0, alpha, a, lda, b, ldb, beta, c,
                  ldc);
        return;
    }
    thread_local SgemmWorkspace ws;  // per calling thread (the pool's workers each get one)
    x86::sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ws.a.get(), ws.b.get());
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k > 0 && m * n * k >= (int64_t{1} << 15) && use_avx512_sgemm())
        return sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#if defined(LLMFORGE_HAVE_OPENBLAS)
    static const bool once = [] {
        openblas_set_num_threads(1);
        return true;
    }();
    (void)once;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
#else
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    sgemm_fallback(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
#endif
}

void sgemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    const int64_t parts = pool.size();
    // Below this much work one call is cheaper than a hand-off.
    if (parts == 1 || m * n * k < (int64_t{1} << 18)) {
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (n >= m) {  // column blocks of C (multiples of 16 columns)
        int64_t chunk = (n + parts - 1) / parts;
        chunk = (chunk + 15) & ~int64_t{15};
        const int64_t n_chunks = (n + chunk - 1) / chunk;
        pool.run(n_chunks, [&](int64_t i, int) {
            const int64_t j0 = i * chunk, nj = std::min(chunk, n - j0);
            const float* bj = trans_b ? b + j0 * ldb : b + j0;
            sgemm(trans_a, trans_b, m, nj, k, alpha, a, lda, bj, ldb, beta, c + j0, ldc);
        });
    } else {  // row blocks of C
        int64_t chunk = (m + parts - 1) / parts;
        chunk = (chunk + 7) & ~int64_t{7};
        const int64_t n_chunks = (m + chunk - 1) / chunk;
        pool.run(n_chunks, [&](int64_t i, int) {
            const int64_t i0 = i * chunk, mi = std::min(chunk, m - i0);
            const float* ai = trans_a ? a + i0 : a + i0 * lda;
            sgemm(trans_a, trans_b, mi, n, k, alpha, ai, lda, b, ldb, beta, c + i0 * ldc, ldc);
        });
    }
}

void sgemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < k; ++p) {
                const double av = trans_a ? a[p * lda + i] : a[i * lda + p];
                const double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            const double prev = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c[i * ldc + j];
            c[i * ldc + j] = static_cast<float>(alpha * s + prev);
        }
}

}  // namespace llmforge::kernels
