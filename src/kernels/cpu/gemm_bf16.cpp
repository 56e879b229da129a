// bf16 GEMM: path selection (CPUID + the Linux AMX permission), packing, the scalar path and
// reference, and the split over the pool. The SIMD kernels are in x86/amx/ (own -m flags).
#include "kernels/cpu/gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/x86/amx/gemm_bf16_x86.h"

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define LF_BF16_X86 1
#endif

namespace llmforge::kernels {

namespace {

constexpr int64_t kTileElems = 512;

#if defined(LF_BF16_X86)
uint64_t xcr0() {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool detect_amx() {
    const CpuFeatures& f = cpu_features();  // AVX-512 flags already include the OS's ZMM state
    if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16)) return false;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(7, 0, a, b, c, d);
    const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    if (!amx_bf16 || !amx_tile) return false;
    const uint64_t tile_state = (uint64_t{1} << 17) | (uint64_t{1} << 18);  // XTILECFG, XTILEDATA
    if ((xcr0() & tile_state) != tile_state) return false;
#if defined(__linux__)
    // Linux (5.16+) keeps the 8 KiB tile state off until a process asks for it; the permission
    // then holds for all of its threads.
    constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
    unsigned long perm = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &perm) != 0) return false;
    return (perm >> kXfeatureXtiledata) & 1;
#else
    return false;
#endif
}
#endif

struct Support {
    bool avx512bf16 = false, amx = false;
};

const Support& support() {
    static const Support s = [] {
        Support r;
#if defined(LF_BF16_X86)
        const CpuFeatures& f = cpu_features();
        r.avx512bf16 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16;
        r.amx = r.avx512bf16 && detect_amx();
#endif
        return r;
    }();
    return s;
}

// Aligned, growable scratch for the packed A of one calling thread.
struct Scratch {
    uint16_t* p = nullptr;
    size_t cap = 0;  // elements
    ~Scratch() { std::free(p); }
    uint16_t* get(size_t n) {
        if (n > cap) {
            std::free(p);
            cap = std::max(n, cap + cap / 2);
            p = static_cast<uint16_t*>(std::aligned_alloc(64, (cap * 2 + 63) / 64 * 64));
            if (p == nullptr) throw std::bad_alloc();
        }
        return p;
    }
};

// Rows [32 p0, 32 p1) of A (n_rows x K) into the packed-A layout, A read from a (row stride lda)
// as is or, kTransposed, as aᵀ (A[row][k] = a[k][row]: the weight gradient's Gᵀ).
template <bool kTransposed>
void pack_a_scalar_impl(const float* a, int64_t lda, int64_t n_rows, int64_t K, int64_t kb_count, uint16_t* ap,
                        int64_t p0, int64_t p1) {
    for (int64_t ib = 2 * p0; ib < 2 * p1; ++ib)
        for (int64_t kb = 0; kb < kb_count; ++kb) {
            uint16_t* tile = ap + (ib * kb_count + kb) * kTileElems;
            for (int64_t r = 0; r < 16; ++r) {
                const int64_t row = ib * 16 + r;
                for (int64_t kk = 0; kk < 32; ++kk) {
                    const int64_t k = kb * 32 + kk;
                    const bool in = row < n_rows && k < K;
                    tile[r * 32 + kk] = in ? fp32_to_bf16(kTransposed ? a[k * lda + row] : a[row * lda + k]) : 0;
                }
            }
        }
}

// The portable path: k ascending per output (the reference order), vectorisable across outputs.
void gemm_scalar(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M, float* c,
                 int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias) {
    float bf[32][32];  // one k block of a column pair as f32: bf[k][j]
    for (int64_t q = q0; q < q1; ++q) {
        const int64_t nc = std::min<int64_t>(32, M - 32 * q);
        for (int64_t i = 32 * p0; i < std::min(32 * p1, n_rows); ++i) {
            float acc[32];
            float* ci = c + i * ldc + 32 * q;
            for (int64_t j = 0; j < 32; ++j) acc[j] = (accumulate && j < nc) ? ci[j] : 0.0f;
            const uint16_t* arow = ap + ((i / 16) * kb_count) * kTileElems + (i % 16) * 32;
            for (int64_t kb = 0; kb < kb_count; ++kb) {
                for (int64_t h = 0; h < 2; ++h) {
                    const uint16_t* bt = bp + ((2 * q + h) * kb_count + kb) * kTileElems;
                    for (int64_t kp = 0; kp < 16; ++kp)
                        for (int64_t j = 0; j < 16; ++j)
                            for (int64_t e = 0; e < 2; ++e) bf[2 * kp + e][16 * h + j] = bf16_to_fp32(bt[kp * 32 + 2 * j + e]);
                }
                const uint16_t* at = arow + kb * kTileElems;
                for (int64_t kk = 0; kk < 32; ++kk) {
                    const float av = bf16_to_fp32(at[kk]);
                    for (int64_t j = 0; j < 32; ++j) acc[j] += av * bf[kk][j];
                }
            }
            for (int64_t j = 0; j < nc; ++j) ci[j] = bias != nullptr ? acc[j] + bias[32 * q + j] : acc[j];
        }
    }
}

// Packing: the sizes (B (p.M, p.K) of W (M, K)) and storage, then fill(dst, jb0, jb1) writes
// column blocks [jb0, jb1), split over the pool when one is given.
template <class Fill>
void pack_impl(PackedBf16& p, int64_t ldw, int64_t M, int64_t K, bool for_forward, ThreadPool* pool, Fill fill) {
    if (M < 0 || K < 0 || ldw < K)
        throw std::invalid_argument("pack_bf16: weight is " + std::to_string(M) + "x" + std::to_string(K) +
                                    " with row stride " + std::to_string(ldw) +
                                    ", expected sizes >= 0 and a row stride >= " + std::to_string(K));
    p.M = for_forward ? M : K;  // B (p.M, p.K): B[j][k] = W[j][k] or W[k][j]
    p.K = for_forward ? K : M;
    p.kb_count = (p.K + 31) / 32;
    p.jb_count = 2 * ((p.M + 31) / 32);
    const size_t bytes = std::max<size_t>(p.bytes(), 64);
    if (p.data == nullptr || p.capacity < bytes) {
        p.data.reset();
        p.data.reset(static_cast<uint16_t*>(std::aligned_alloc(64, bytes)));
        if (!p.data) throw std::bad_alloc();
        p.capacity = bytes;
    }
    uint16_t* d = p.data.get();
    if (pool != nullptr && pool->size() > 1 && M * K >= (int64_t{1} << 16)) {
        pool->run_range(p.jb_count, 2, [&](int64_t b, int64_t e) { fill(p, d, b, e); });
    } else {
        fill(p, d, 0, p.jb_count);
    }
}

template <class Fill>
PackedBf16 pack_impl(int64_t ldw, int64_t M, int64_t K, bool for_forward, ThreadPool* pool, Fill fill) {
    PackedBf16 p;
    pack_impl(p, ldw, M, K, for_forward, pool, fill);
    return p;
}

// The portable fill: element by element through get(index into W).
template <class Get>
void pack_scalar(const PackedBf16& p, int64_t ldw, bool for_forward, uint16_t* d, int64_t jb0, int64_t jb1, Get get) {
    for (int64_t jb = jb0; jb < jb1; ++jb)
        for (int64_t kb = 0; kb < p.kb_count; ++kb) {
            uint16_t* tile = d + (jb * p.kb_count + kb) * kTileElems;
            for (int64_t j = 0; j < 16; ++j) {
                const int64_t jj = jb * 16 + j;
                for (int64_t kk = 0; kk < 32; ++kk) {
                    const int64_t k = kb * 32 + kk;
                    uint16_t v = 0;
                    if (jj < p.M && k < p.K) v = for_forward ? get(jj * ldw + k) : get(k * ldw + jj);
                    tile[(kk / 2) * 32 + 2 * j + (kk & 1)] = v;
                }
            }
        }
}

Bf16GemmPath env_path(Bf16GemmPath best) {
    const char* env = std::getenv("LLMFORGE_BF16_GEMM");
    if (env == nullptr || *env == '\0') return best;
    for (Bf16GemmPath p : {Bf16GemmPath::kScalar, Bf16GemmPath::kAvx512Bf16, Bf16GemmPath::kAmx}) {
        if (std::strcmp(env, bf16_gemm_path_name(p)) != 0) continue;
        if (bf16_gemm_path_supported(p)) return p;
        std::fprintf(stderr, "llmforge: LLMFORGE_BF16_GEMM=%s is not supported by this CPU; using %s\n", env,
                     bf16_gemm_path_name(best));
        return best;
    }
    std::fprintf(stderr, "llmforge: LLMFORGE_BF16_GEMM=%s is unknown (expected scalar, avx512bf16 or amx); using %s\n",
                 env, bf16_gemm_path_name(best));
    return best;
}

// One kernel call: C's row pairs [p0, p1) x column pairs [q0, q1) (gemm_bf16_x86.h), then the
// bias and the activation (act >= 0) on each finished output.
// pack (AMX only): the outputs go to a packed-A buffer instead (bf16_gemm_amx).
using KernelFn = void (*)(const uint16_t*, const uint16_t*, int64_t, int64_t, int64_t, float*, int64_t, bool, int64_t,
                          int64_t, int64_t, int64_t, const float*, int, uint16_t*, int64_t);

// The activation on the block a kernel call just wrote (the kernels without an epilogue for it).
void act_block(int act, float* c, int64_t ldc, int64_t n_rows, int64_t M, int64_t p0, int64_t p1, int64_t q0,
               int64_t q1) {
    if (act < 0) return;
    const int64_t c0 = 32 * q0, c1 = std::min(M, 32 * q1);
    for (int64_t i = 32 * p0; i < std::min(n_rows, 32 * p1); ++i) act_rows(act, c + i * ldc + c0, c + i * ldc + c0, c1 - c0);
}

KernelFn kernel_for(Bf16GemmPath path) {
#if defined(LF_BF16_X86)
    if (path == Bf16GemmPath::kAmx) return x86::bf16_gemm_amx;  // its own epilogue, tile by tile
    if (path == Bf16GemmPath::kAvx512Bf16)
        return [](const uint16_t* ap, const uint16_t* bp, int64_t kb, int64_t n_rows, int64_t M, float* c, int64_t ldc,
                  bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias, int act, uint16_t*,
                  int64_t) {
            x86::bf16_gemm_avx512(ap, bp, kb, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias);
            act_block(act, c, ldc, n_rows, M, p0, p1, q0, q1);
        };
#endif
    return [](const uint16_t* ap, const uint16_t* bp, int64_t kb, int64_t n_rows, int64_t M, float* c, int64_t ldc,
              bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias, int act, uint16_t*,
              int64_t) {
        gemm_scalar(ap, bp, kb, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias);
        act_block(act, c, ldc, n_rows, M, p0, p1, q0, q1);
    };
}

// Row pairs [p0, p1) of A (f32, row stride lda, `rows` valid rows, K columns) into the packed-A
// layout for `path` (the same bytes on every path).
void pack_a(Bf16GemmPath path, const float* a, int64_t lda, int64_t rows, int64_t K, int64_t kb_count, uint16_t* ap,
            int64_t p0, int64_t p1) {
#if defined(LF_BF16_X86)
    if (path != Bf16GemmPath::kScalar) return x86::bf16_pack_a_avx512(a, lda, rows, K, kb_count, ap, p0, p1);
#endif
    pack_a_scalar_impl<false>(a, lda, rows, K, kb_count, ap, p0, p1);
}

// attention_bf16's middle step, portable (x86::bf16_softmax_pack_avx512 is the AMX path's, the
// same contract): row r < rows of s gives x = scale · s + adds over its first L entries,
// e = exp(x − max x) rounded to bf16 into row r of the packed-A row pair pa, inv_z[r] = 1 / Σ e;
// keys >= L and rows >= rows are zeros.
void softmax_pack_scalar(const float* s, int64_t lds, int64_t rows, int64_t L, int64_t kb_count, float scale,
                         const float* add0, const float* add1, int64_t ld_add, uint16_t* pa, float* inv_z) {
    std::vector<float> e(static_cast<size_t>(32 * kb_count));
    for (int64_t r = 0; r < 32; ++r) {
        uint16_t* prow = pa + (r / 16) * kb_count * kTileElems + (r % 16) * 32;
        std::fill(e.begin(), e.end(), 0.0f);
        float m = -std::numeric_limits<float>::infinity(), z = 0.0f;
        for (int64_t t = 0; t < (r < rows ? L : 0); ++t) {
            e[t] = scale * s[r * lds + t] + (add0 != nullptr ? add0[r * ld_add + t] : 0.0f) +
                   (add1 != nullptr ? add1[r * ld_add + t] : 0.0f);
            m = std::max(m, e[t]);
        }
        for (int64_t t = 0; t < (r < rows ? L : 0); ++t) z += (e[t] = std::exp(e[t] - m));
        for (int64_t t = 0; t < 32 * kb_count; ++t) prow[(t / 32) * kTileElems + t % 32] = fp32_to_bf16(e[t]);
        inv_z[r] = r < rows ? 1.0f / z : 0.0f;
    }
}

// The most packed A one call keeps (bytes): larger A is multiplied in blocks of rows, so the
// scratch stays bounded (the output gradient of a 32000-word head at 4096 rows would be a 262 MB
// copy, kept by the thread between calls) while B is streamed only a few times.
std::atomic<int64_t> max_packed_a_bytes{int64_t{64} << 20};

// One product over a packed A: C (n_rows, b.M) = [C +] A · Bᵀ [+ bias], then act.
struct Product {
    const PackedBf16* b;
    float* c;
    int64_t ldc;
    bool accumulate;
    const float* bias;
    int act;
    uint16_t* pack = nullptr;  // AMX: outputs into this packed-A buffer instead of c (gemm_bf16_to_rows)
};

// The packer run_packed takes for a row-major f32 A (row stride lda, K columns, kb_count blocks).
auto pack_rows(Bf16GemmPath path, const float* a, int64_t lda, int64_t K, int64_t kb_count) {
    return [=](uint16_t* ap, int64_t r0, int64_t rows, int64_t p0, int64_t p1) {
        pack_a(path, a + r0 * lda, lda, rows, K, kb_count, ap, p0, p1);
    };
}

// The products `out` (all of one inner size) with A packed by pack(ap, r0, rows, p0, p1): row pairs
// [p0, p1) of the block of A rows [r0, r0 + rows), numbered from the block's start, into the calling
// thread's scratch ap in the packed-A layout, once for all of them. A is taken in row blocks of at
// most max_packed_a_bytes; per block, the kernel of `path` with row or column blocks split over the
// pool (each output computed by one kernel call in a fixed order, so neither split can change a
// result).
template <class Pack>
void run_packed(Bf16GemmPath path, int64_t n_rows, const Product* out, int n_out, ThreadPool* pool, Pack pack,
                const uint16_t* given_a = nullptr) {
    const int64_t kb = out[0].b->kb_count;
    const int64_t pair_elems = 2 * std::max<int64_t>(1, kb) * kTileElems;
    const int64_t block_pairs = std::max<int64_t>(1, max_packed_a_bytes.load() / (2 * pair_elems));
    const int64_t n_p_all = (n_rows + 31) / 32;  // row pairs (32 rows)
    thread_local Scratch scratch;
    uint16_t* scratch_a = given_a != nullptr ? nullptr : scratch.get(static_cast<size_t>(std::min(n_p_all, block_pairs) * pair_elems));

    const KernelFn kernel = kernel_for(path);
    const int parts = pool != nullptr ? pool->size() : 1;
    for (int64_t P0 = 0; P0 < n_p_all; P0 += block_pairs) {
        const int64_t n_p = std::min(block_pairs, n_p_all - P0), r0 = 32 * P0;
        const int64_t rows = std::min(n_rows - r0, 32 * n_p);
        const uint16_t* ap = given_a != nullptr ? given_a + P0 * pair_elems : scratch_a;
        bool packed = given_a != nullptr;
        for (int o = 0; o < n_out; ++o) {
            const Product& x = out[o];
            const PackedBf16& b = *x.b;
            const int64_t n_q = b.jb_count / 2;  // column pairs (32 outputs)
            const bool threaded = parts > 1 && n_rows * b.M * std::max<int64_t>(b.K, 1) >= (int64_t{1} << 20);
            float* cb = x.pack != nullptr ? nullptr : x.c + r0 * x.ldc;
            const int64_t out_kb = (b.M + 31) / 32;  // a packed output's input blocks
            uint16_t* pb = x.pack != nullptr ? x.pack + P0 * 2 * out_kb * kTileElems : nullptr;
            if (!packed) {
                if (threaded) {
                    pool->run(n_p, [&](int64_t p, int) { pack(scratch_a, r0, rows, p, p + 1); });
                } else {
                    pack(scratch_a, r0, rows, 0, n_p);
                }
                packed = true;
            }
            if (!threaded) {
                kernel(ap, b.data.get(), kb, rows, b.M, cb, x.ldc, x.accumulate, 0, n_p, 0, n_q, x.bias, x.act, pb, out_kb);
                continue;
            }
            const bool by_cols = n_q >= n_p;
            const int64_t n = by_cols ? n_q : n_p;
            const int64_t chunk = (n + parts - 1) / parts;
            pool->run((n + chunk - 1) / chunk, [&](int64_t i, int) {
                const int64_t s = i * chunk, e = std::min(n, s + chunk);
                if (by_cols) {
                    kernel(ap, b.data.get(), kb, rows, b.M, cb, x.ldc, x.accumulate, 0, n_p, s, e, x.bias, x.act, pb,
                           out_kb);
                } else {
                    kernel(ap, b.data.get(), kb, rows, b.M, cb, x.ldc, x.accumulate, s, e, 0, n_q, x.bias, x.act, pb,
                           out_kb);
                }
            });
        }
    }
}

void check_path(const char* what, Bf16GemmPath path) {
    if (!bf16_gemm_path_supported(path))
        throw std::invalid_argument(std::string(what) + ": path '" + bf16_gemm_path_name(path) +
                                    "' is not supported by this CPU (check bf16_gemm_path_supported first)");
}

void check_product(const char* what, int64_t n_rows, int64_t lda, int64_t K, const Product& x) {
    const PackedBf16& b = *x.b;
    if (n_rows < 0 || lda < b.K || b.K != K || x.ldc < b.M || (b.M > 0 && b.empty()))
        throw std::invalid_argument(std::string(what) + ": A is " + std::to_string(n_rows) + "x" + std::to_string(K) +
                                    " with row stride " + std::to_string(lda) + ", C has row stride " +
                                    std::to_string(x.ldc) + " for " + std::to_string(b.M) + " outputs of " +
                                    std::to_string(b.K) + " inputs: expected n_rows >= 0, lda >= K, B's inputs = "
                                    "K, ldc >= M and a packed B");
    if (x.act < -1 || x.act > 3)
        throw std::invalid_argument(std::string(what) + ": activation kind " + std::to_string(x.act) +
                                    ", expected -1 (none) or 0-3 (KernelTable::act's kinds)");
}

}  // namespace

int64_t gemm_bf16_set_max_packed_a(int64_t bytes) { return max_packed_a_bytes.exchange(std::max<int64_t>(bytes, 1)); }

const char* bf16_gemm_path_name(Bf16GemmPath p) {
    switch (p) {
        case Bf16GemmPath::kScalar: return "scalar";
        case Bf16GemmPath::kAvx512Bf16: return "avx512bf16";
        case Bf16GemmPath::kAmx: return "amx";
    }
    return "unknown";
}

bool bf16_gemm_path_supported(Bf16GemmPath p) {
    switch (p) {
        case Bf16GemmPath::kScalar: return true;
        case Bf16GemmPath::kAvx512Bf16: return support().avx512bf16;
        case Bf16GemmPath::kAmx: return support().amx;
    }
    return false;
}

Bf16GemmPath bf16_gemm_best_path() {
    static const Bf16GemmPath best = env_path(support().amx          ? Bf16GemmPath::kAmx
                                              : support().avx512bf16 ? Bf16GemmPath::kAvx512Bf16
                                                                     : Bf16GemmPath::kScalar);
    return best;
}

bool bf16_gemm_available() { return bf16_gemm_best_path() == Bf16GemmPath::kAmx; }

void pack_bf16_into(PackedBf16& into, const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward,
                    ThreadPool* pool) {
    pack_impl(into, ldw, M, K, for_forward, pool, [&](const PackedBf16& p, uint16_t* d, int64_t jb0, int64_t jb1) {
#if defined(LF_BF16_X86)
        if (support().avx512bf16) return x86::bf16_pack_b_avx512(w, ldw, for_forward, p.M, p.K, p.kb_count, d, jb0, jb1);
#endif
        pack_scalar(p, ldw, for_forward, d, jb0, jb1, [w](int64_t i) { return fp32_to_bf16(w[i]); });
    });
}

PackedBf16 pack_bf16(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward, ThreadPool* pool) {
    PackedBf16 p;
    pack_bf16_into(p, w, ldw, M, K, for_forward, pool);
    return p;
}

PackedBf16 pack_bf16(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward) {
    return pack_bf16(w, ldw, M, K, for_forward, nullptr);
}

PackedBf16 pack_bf16_scalar(const float* w, int64_t ldw, int64_t M, int64_t K, bool for_forward) {
    return pack_impl(ldw, M, K, for_forward, nullptr, [&](const PackedBf16& p, uint16_t* d, int64_t jb0, int64_t jb1) {
        pack_scalar(p, ldw, for_forward, d, jb0, jb1, [w](int64_t i) { return fp32_to_bf16(w[i]); });
    });
}

PackedBf16 pack_bf16(const uint16_t* w, int64_t ldw, int64_t M, int64_t K, bool for_forward) {
    return pack_impl(ldw, M, K, for_forward, nullptr, [&](const PackedBf16& p, uint16_t* d, int64_t jb0, int64_t jb1) {
        pack_scalar(p, ldw, for_forward, d, jb0, jb1, [w](int64_t i) { return w[i]; });
    });
}

void gemm_bf16(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, float* c, int64_t ldc,
               bool accumulate, ThreadPool* pool, const float* bias, int act) {
    gemm_bf16(a, lda, n_rows, b, c, ldc, accumulate, pool, bf16_gemm_best_path(), bias, act);
}

void gemm_bf16(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, float* c, int64_t ldc,
               bool accumulate, ThreadPool* pool, Bf16GemmPath path, const float* bias, int act) {
    check_path("gemm_bf16", path);
    const Product x{&b, c, ldc, accumulate, bias, act};
    check_product("gemm_bf16", n_rows, lda, b.K, x);
    if (n_rows == 0 || b.M == 0) return;
    run_packed(path, n_rows, &x, 1, pool, pack_rows(path, a, lda, b.K, b.kb_count));
}

void gemm_bf16_multi(const float* a, int64_t lda, int64_t n_rows, int n, const PackedBf16* const* bs, float* const* cs,
                     const float* const* biases, ThreadPool* pool) {
    const Bf16GemmPath path = bf16_gemm_best_path();
    if (n < 1 || n > 8) throw std::invalid_argument("gemm_bf16_multi: " + std::to_string(n) + " products, expected 1-8");
    Product x[8];
    for (int i = 0; i < n; ++i) {
        x[i] = {bs[i], cs[i], bs[i]->M, false, biases != nullptr ? biases[i] : nullptr, -1};
        check_product("gemm_bf16_multi", n_rows, lda, bs[0]->K, x[i]);
    }
    if (n_rows == 0) return;
    run_packed(path, n_rows, x, n, pool, pack_rows(path, a, lda, bs[0]->K, bs[0]->kb_count));
}

void gemm_bf16_to_rows(const float* a, int64_t lda, int64_t n_rows, const PackedBf16& b, PackedRowsBf16& out,
                       ThreadPool* pool, const float* bias, int act) {
    const Bf16GemmPath path = bf16_gemm_best_path();
    Product x{&b, nullptr, b.M, false, bias, act};
    check_product("gemm_bf16_to_rows", n_rows, lda, b.K, x);
    out.n_rows = n_rows, out.K = b.M, out.kb_count = (b.M + 31) / 32;
    const size_t elems = static_cast<size_t>(2 * ((n_rows + 31) / 32) * std::max<int64_t>(1, out.kb_count)) * kTileElems;
    if (out.capacity < elems) {
        out.data.reset(static_cast<uint16_t*>(std::aligned_alloc(64, elems * 2)));
        if (!out.data) throw std::bad_alloc();
        out.capacity = elems;
    }
    if (n_rows == 0 || b.M == 0) return;
    const auto pack = pack_rows(path, a, lda, b.K, b.kb_count);
    if (path == Bf16GemmPath::kAmx && b.kb_count <= x86::kAmxKChunk) {  // one pass over K: the kernel's packed output
        x.pack = out.data.get();
        run_packed(path, n_rows, &x, 1, pool, pack);
        return;
    }
    // Elsewhere: the f32 product, then packed (the same values).
    thread_local std::vector<float> tmp;
    tmp.resize(static_cast<size_t>(n_rows * b.M));
    x.c = tmp.data();
    run_packed(path, n_rows, &x, 1, pool, pack);
    pack_a(path, tmp.data(), b.M, n_rows, b.M, out.kb_count, out.data.get(), 0, (n_rows + 31) / 32);
}

void gemm_bf16(const PackedRowsBf16& a, const PackedBf16& b, float* c, int64_t ldc, bool accumulate, ThreadPool* pool,
               const float* bias) {
    const Bf16GemmPath path = bf16_gemm_best_path();
    const Product x{&b, c, ldc, accumulate, bias, -1};
    check_product("gemm_bf16 (packed rows)", a.n_rows, a.K, a.K, x);
    if (a.n_rows == 0 || b.M == 0) return;
    run_packed(path, a.n_rows, &x, 1, pool, [](uint16_t*, int64_t, int64_t, int64_t, int64_t) {}, a.data.get());
}

void attention_bf16(const AttentionBf16& x) { attention_bf16(x, bf16_gemm_best_path()); }

void attention_bf16(const AttentionBf16& x, Bf16GemmPath path) {
    check_path("attention_bf16", path);
    if (x.T <= 0 || x.Tk <= 0 || x.L <= 0 || x.L > x.Tk || x.D <= 0 || x.Dv <= 0 || x.ldq < x.D || x.ldk < x.D ||
        x.ldv < x.Dv || x.ldo < x.Dv)
        throw std::invalid_argument("attention_bf16: T " + std::to_string(x.T) + ", Tk " + std::to_string(x.Tk) +
                                    ", L " + std::to_string(x.L) + ", D " + std::to_string(x.D) + ", Dv " +
                                    std::to_string(x.Dv) + ": expected sizes > 0, 0 < L <= Tk and row strides >= "
                                    "the widths");
    const int64_t kb_d = (x.D + 31) / 32, kb_t = (x.Tk + 31) / 32, tkp = 32 * kb_t;
    // Per calling thread, reused: K as B (scores = Q·Kᵀ), Vᵀ as B (O = P·V), one row pair of Q and
    // of P in the packed-A layout, one row pair of scores.
    thread_local PackedBf16 kp, vp;
    thread_local Scratch qa, pa;
    thread_local std::vector<float> sc;
    pack_bf16_into(kp, x.k, x.ldk, x.Tk, x.D, true, nullptr);
    pack_bf16_into(vp, x.v, x.ldv, x.Tk, x.Dv, false, nullptr);  // B = Vᵀ: (Dv, Tk)
    uint16_t* qp = qa.get(static_cast<size_t>(2 * kb_d * kTileElems));
    uint16_t* pp = pa.get(static_cast<size_t>(2 * kb_t * kTileElems));
    if (sc.size() < static_cast<size_t>(32 * tkp)) sc.resize(static_cast<size_t>(32 * tkp));
    const KernelFn kernel = kernel_for(path);
    float inv_z[32];
    for (int64_t p = 0; 32 * p < x.T; ++p) {
        const int64_t r0 = 32 * p, rows = std::min<int64_t>(32, x.T - r0);
        pack_a(path, x.q + r0 * x.ldq, x.ldq, rows, x.D, kb_d, qp, 0, 1);
        // All 32 x tkp scores (pad rows and keys are products with zeros): no edge tiles.
        kernel(qp, kp.data.get(), kb_d, 32, tkp, sc.data(), tkp, false, 0, 1, 0, kb_t, nullptr, -1, nullptr, 0);
        const float* add0 = x.add[0] != nullptr ? x.add[0] + r0 * x.Tk : nullptr;
        const float* add1 = x.add[1] != nullptr ? x.add[1] + r0 * x.Tk : nullptr;
#if defined(LF_BF16_X86)
        if (path == Bf16GemmPath::kAmx) {
            x86::bf16_softmax_pack_avx512(sc.data(), tkp, rows, x.L, kb_t, x.scale, add0, add1, x.Tk, pp, inv_z);
        } else
#endif
        {
            softmax_pack_scalar(sc.data(), tkp, rows, x.L, kb_t, x.scale, add0, add1, x.Tk, pp, inv_z);
        }
        kernel(pp, vp.data.get(), kb_t, rows, x.Dv, x.o + r0 * x.ldo, x.ldo, false, 0, 1, 0, (x.Dv + 31) / 32, nullptr,
               -1, nullptr, 0);
        // the softmax's normalisation, on the product
#if defined(LF_BF16_X86)
        if (path != Bf16GemmPath::kScalar) {
            x86::scale_rows_avx512(x.o + r0 * x.ldo, x.ldo, rows, x.Dv, inv_z);
            continue;
        }
#endif
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t d = 0; d < x.Dv; ++d) x.o[(r0 + r) * x.ldo + d] *= inv_z[r];
    }
}

void gemm_bf16_tn(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K, float* c,
                  int64_t ldc, bool accumulate, ThreadPool* pool) {
    gemm_bf16_tn(g, ldg, x, ldx, N, M, K, c, ldc, accumulate, pool, bf16_gemm_best_path());
}

void gemm_bf16_tn(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K, float* c,
                  int64_t ldc, bool accumulate, ThreadPool* pool, Bf16GemmPath path) {
    check_path("gemm_bf16_tn", path);
    if (N < 0 || M < 0 || K < 0 || ldg < M || ldx < K || ldc < K)
        throw std::invalid_argument("gemm_bf16_tn: G is " + std::to_string(N) + "x" + std::to_string(M) +
                                    " (row stride " + std::to_string(ldg) + "), X " + std::to_string(N) + "x" +
                                    std::to_string(K) + " (row stride " + std::to_string(ldx) + "), C row stride " +
                                    std::to_string(ldc) + ": expected sizes >= 0, ldg >= M, ldx >= K, ldc >= K");
    if (M == 0 || K == 0) return;
    // B = Xᵀ (K, N) packed; A = Gᵀ (M, N) packed per row pair inside run_packed.
    // Kept between calls (a step's products reuse its pages). Named through a reference: a
    // thread_local named inside the pool's lambdas would be each worker's own, empty one.
    thread_local PackedBf16 kept;
    PackedBf16& b = kept;
    pack_bf16_into(b, x, ldx, N, K, false, pool);  // the same bytes on every path
    const int64_t kb_count = b.kb_count;
    const Product prod{&b, c, ldc, accumulate, nullptr, -1};
    run_packed(path, M, &prod, 1, pool, [&](uint16_t* ap, int64_t r0, int64_t rows, int64_t p0, int64_t p1) {
        const float* gb = g + r0;  // A = Gᵀ: its rows are G's columns
#if defined(LF_BF16_X86)
        if (path != Bf16GemmPath::kScalar) return x86::bf16_pack_at_avx512(gb, ldg, rows, N, kb_count, ap, p0, p1);
#endif
        pack_a_scalar_impl<true>(gb, ldg, rows, N, kb_count, ap, p0, p1);
    });
}

void gemm_bf16_ref(const float* a, int64_t lda, int64_t n_rows, const float* w, int64_t ldw, int64_t M, int64_t K,
                   bool for_forward, float* c, int64_t ldc, bool accumulate) {
    const int64_t bm = for_forward ? M : K, bk = for_forward ? K : M;
    for (int64_t i = 0; i < n_rows; ++i)
        for (int64_t j = 0; j < bm; ++j) {
            float s = accumulate ? c[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < bk; ++k) {
                const float bv = for_forward ? w[j * ldw + k] : w[k * ldw + j];
                s += bf16_to_fp32(fp32_to_bf16(a[i * lda + k])) * bf16_to_fp32(fp32_to_bf16(bv));
            }
            c[i * ldc + j] = s;
        }
}

void gemm_bf16_tn_ref(const float* g, int64_t ldg, const float* x, int64_t ldx, int64_t N, int64_t M, int64_t K,
                      float* c, int64_t ldc, bool accumulate) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < K; ++j) {
            float s = accumulate ? c[i * ldc + j] : 0.0f;
            for (int64_t n = 0; n < N; ++n)
                s += bf16_to_fp32(fp32_to_bf16(g[n * ldg + i])) * bf16_to_fp32(fp32_to_bf16(x[n * ldx + j]));
            c[i * ldc + j] = s;
        }
}

void round_bf16(const float* x, float* y, int64_t n) {
#if defined(LF_BF16_X86)
    static const bool avx512 = cpu_features().avx512f;
    if (avx512) return x86::round_bf16_avx512(x, y, n);
#endif
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
}

}  // namespace llmforge::kernels
