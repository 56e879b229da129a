// bf16 GEMM on AMX tiles: C (+)= A · Bᵀ with A and B packed in 1 KiB tiles (gemm_bf16_x86.h).
//
// Register plan (8 tiles of 16 rows x 64 bytes): tmm0..3 accumulate a 32 x 32 block of C (2 x 2
// tiles of 16 x 16 f32), tmm4/5 hold two A tiles (rows 0-15 / 16-31, 32 inputs), tmm6/7 two B
// tiles (outputs 0-15 / 16-31, 32 inputs in VNNI pairs). Each 32-input step is 4 loads and 4
// TDPBF16PS (16 x 16 x 32 MACs each).
//
// Blocking: the inputs are cut into chunks of kKChunk blocks and the outputs into chunks of
// kQChunk column pairs; inside, every row pair of this call meets every column pair of the chunk,
// so a chunk of B (512 outputs x 1024 inputs, 1 MiB) stays in L2 while A's row pair (up to 64 KiB)
// is reused from L1/L2 across the chunk's 16 column pairs, and C is written in 2 KiB row pieces. Between input chunks the f32 accumulators go through C:
// storing and reloading f32 is exact, so the sum's order (k ascending) does not depend on the
// blocking.
//
// Edge tiles (rows past n_rows, outputs past M) go through a 16 x 16 buffer on the stack.
// Everything here has internal linkage or is an entry point (see x86/x86_common.h: no std:: code).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/x86/act_impl.h"
#include "kernels/cpu/x86/amx/gemm_bf16_x86.h"

namespace llmforge::kernels::x86 {
namespace {

constexpr int64_t kTileElems = 512;  // bf16 per 1 KiB tile
// Tuned on the 110M-Llama shapes (bench/bench_bf16_gemm.cpp): 16 pairs beat 2, 4 and 8 by 10-20%
// and 24-64 by a little; input chunks of 8-24 blocks were no better than 32.
constexpr int64_t kKChunk = kAmxKChunk;  // input blocks (of 32) per pass: 1024 inputs
constexpr int64_t kQChunk = 16;  // column pairs (of 32 outputs) per chunk: 512 outputs


struct alignas(64) TileConfig {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

void configure_tiles() {
    TileConfig cfg;
    std::memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    // Not GCC 12's _tile_loadconfig: its asm names only the first 8 bytes of the config as read,
    // so the compiler may drop the stores of the rest as dead (seen: a #UD at the next tile
    // instruction once the config was built inline). The whole struct as the operand keeps them.
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

// Where one 16 x 16 accumulator tile of C lives during a pass: in C itself, or (at an edge) in a
// stack buffer whose valid nr x nc corner mirrors C.
struct CTile {
    float* ptr;
    int64_t stride;  // bytes
    float* dst;      // C position of the tile's corner (edge tiles: copied back there)
    int64_t nr, nc;  // valid rows / columns (edge tiles), <= 0 when wholly outside
    bool edge;
};

inline void c_tile_setup(CTile& t, float* buf, float* c, int64_t ldc, int64_t r, int64_t col, int64_t n_rows,
                         int64_t M, bool load) {
    t.nr = min64(16, n_rows - r);
    t.nc = min64(16, M - col);
    if (t.nr <= 0 || t.nc <= 0) t.nr = t.nc = 0;
    t.dst = t.nr > 0 ? c + r * ldc + col : c;
    t.edge = t.nr < 16 || t.nc < 16;
    if (!t.edge) {
        t.ptr = t.dst;
        t.stride = ldc * 4;
        return;
    }
    t.ptr = buf;
    t.stride = 64;
    if (!load) return;
    for (int64_t i = 0; i < 16; ++i)
        for (int64_t j = 0; j < 16; ++j) buf[i * 16 + j] = (i < t.nr && j < t.nc) ? t.dst[i * ldc + j] : 0.0f;
}

inline void c_tile_finish(const CTile& t, const float* buf, int64_t ldc) {
    if (!t.edge) return;
    for (int64_t i = 0; i < t.nr; ++i)
        for (int64_t j = 0; j < t.nc; ++j) t.dst[i * ldc + j] = buf[i * 16 + j];
}

// A finished 32 x 32 block's epilogue (bias added, then the activation kAct >= 0, as act_rows
// would), done in C a few 16-wide row pieces at a time between the next block's input steps:
// the AVX-512 work then runs beside the AMX unit's products instead of stalling them (done all
// at once after the block, a GELU epilogue doubled the up-projection's time).
//
// Packed output (pack != null): the block's four tiles are in a 4 KiB buffer (tile i at 256 i,
// rows of 16), and each of its 32 rows becomes, after the bias and the activation, one 64-byte
// row of bf16 in the packed-A layout of a next product (rows past nr zeros): the pieces are rows.
template <int kAct>
struct Epilogue {
    float* dst = nullptr;  // the block's corner in C, or its tile buffer (packed output)
    const float* bias = nullptr;
    uint16_t* pack = nullptr;  // packed output: the block's row pair's first row in its tile column
    int64_t pack_kb = 0;       // packed output: the next product's input blocks (its row-block stride)
    int64_t ldc = 0, nr = 0, nc = 0, next = 0, units = 0;  // units: nr rows x 2 halves, or 32 rows

    bool pending() const { return next < units; }
    void start(float* d, const float* b, int64_t ld, int64_t rows, int64_t cols, uint16_t* pk = nullptr) {
        dst = d, bias = b, ldc = ld, nr = rows, nc = cols, next = 0, pack = pk;
        units = pk != nullptr ? 32 : rows > 0 && cols > 0 ? 2 * rows : 0;
    }
    __m512 piece(const float* x, int64_t c0, __mmask16 m) const {
        __m512 v = _mm512_maskz_loadu_ps(m, x);
        if (bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + c0));
        if constexpr (kAct >= 0) v = act_v<ActLanes16, kAct>(v);
        return v;
    }
    // Up to n more pieces.
    void advance(int64_t n) {
        if (pack != nullptr) {
            for (const int64_t end = min64(units, next + n); next < end; ++next) {
                const int64_t r = next;
                uint16_t* out = pack + (r / 16) * pack_kb * kTileElems + (r % 16) * 32;
                if (r >= nr) {
                    _mm512_storeu_si512(out, _mm512_setzero_si512());
                    continue;
                }
                const float* x = dst + (r / 16) * 512 + (r % 16) * 16;  // tiles 2 (r / 16) and 2 (r / 16) + 1
                const __m512 lo = piece(x, 0, ActLanes16::mask(min64(16, nc)));
                const __m512 hi = piece(x + 256, 16, ActLanes16::mask(nc > 16 ? nc - 16 : 0));
                _mm512_storeu_si512(out, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
            }
            return;
        }
        for (const int64_t end = min64(units, next + n); next < end; ++next) {
            const int64_t r = next >> 1, c0 = 16 * (next & 1), w = min64(16, nc - c0);
            if (w <= 0) continue;
            const __mmask16 m = ActLanes16::mask(w);
            float* x = dst + r * ldc + c0;
            _mm512_mask_storeu_ps(x, m, piece(x, c0, m));
        }
    }
    void finish() { advance(units); }
};

template <int kAct>
void gemm_amx(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M, float* c,
              int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias,
              uint16_t* pack, int64_t pack_kb) {
    configure_tiles();
    alignas(64) float buf[4][256];
    alignas(64) float blocks[2][4][256];  // packed output: this block's tiles and the pending one's
    int slot = 0;
    const bool epilogue = bias != nullptr || kAct >= 0 || pack != nullptr;
    Epilogue<kAct> ep;
    ep.pack_kb = pack_kb;
    for (int64_t qc = q0; qc < q1; qc += kQChunk) {
        const int64_t qc1 = min64(q1, qc + kQChunk);
        // kb_count == 0 still makes one pass, which writes the start values.
        for (int64_t k0 = 0; k0 < kb_count || k0 == 0; k0 += kKChunk) {
            const int64_t k1 = min64(kb_count, k0 + kKChunk);
            const bool load = accumulate || k0 > 0;
            // Pieces of the previous block's epilogue per input step (64 pieces over the steps).
            const int64_t steps = k1 - k0 > 0 ? k1 - k0 : 1, per_step = (64 + steps - 1) / steps;
            for (int64_t p = p0; p < p1; ++p) {
                const uint16_t* a0 = ap + ((2 * p) * kb_count + k0) * kTileElems;
                const uint16_t* a1 = ap + ((2 * p + 1) * kb_count + k0) * kTileElems;
                for (int64_t q = qc; q < qc1; ++q) {
                    CTile t[4];
                    if (pack != nullptr) {  // whole tiles into this block's buffer; no C (one pass over K)
                        for (int i = 0; i < 4; ++i) t[i] = {blocks[slot][i], 64, blocks[slot][i], 0, 0, false};
                    } else {
                        for (int i = 0; i < 4; ++i)
                            c_tile_setup(t[i], buf[i], c, ldc, 32 * p + (i >> 1) * 16, 32 * q + (i & 1) * 16, n_rows,
                                         M, load);
                    }
                    // A block at the bottom or right edge with no valid rows in its lower half or
                    // columns in its right half (197 rows: the last of 7 row pairs holds 5) skips
                    // those tiles' products: they would only fill the stack buffer.
                    const bool lower = 32 * p + 16 < n_rows, right = 32 * q + 16 < M;
                    if (load) {
                        _tile_loadd(0, t[0].ptr, t[0].stride);
                        if (right) _tile_loadd(1, t[1].ptr, t[1].stride);
                        if (lower) _tile_loadd(2, t[2].ptr, t[2].stride);
                        if (lower && right) _tile_loadd(3, t[3].ptr, t[3].stride);
                    } else {
                        _tile_zero(0);
                        _tile_zero(1);
                        _tile_zero(2);
                        _tile_zero(3);
                    }
                    const uint16_t* b0 = bp + ((2 * q) * kb_count + k0) * kTileElems;
                    const uint16_t* b1 = bp + ((2 * q + 1) * kb_count + k0) * kTileElems;
                    if (lower && right) {
                        for (int64_t kb = 0; kb < k1 - k0; ++kb) {
                            const int64_t o = kb * kTileElems;
                            _tile_loadd(4, a0 + o, 64);
                            _tile_loadd(6, b0 + o, 64);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_loadd(7, b1 + o, 64);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_loadd(5, a1 + o, 64);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                            if (epilogue && ep.pending()) ep.advance(per_step);
                        }
                    } else {
                        for (int64_t kb = 0; kb < k1 - k0; ++kb) {
                            const int64_t o = kb * kTileElems;
                            _tile_loadd(4, a0 + o, 64);
                            _tile_loadd(6, b0 + o, 64);
                            _tile_dpbf16ps(0, 4, 6);
                            if (right) {
                                _tile_loadd(7, b1 + o, 64);
                                _tile_dpbf16ps(1, 4, 7);
                            }
                            if (lower) {
                                _tile_loadd(5, a1 + o, 64);
                                _tile_dpbf16ps(2, 5, 6);
                            }
                            if (epilogue && ep.pending()) ep.advance(per_step);
                        }
                    }
                    _tile_stored(0, t[0].ptr, t[0].stride);
                    if (right) _tile_stored(1, t[1].ptr, t[1].stride);
                    if (lower) _tile_stored(2, t[2].ptr, t[2].stride);
                    if (lower && right) _tile_stored(3, t[3].ptr, t[3].stride);
                    if (pack != nullptr) {
                        ep.finish();
                        ep.start(blocks[slot][0], bias != nullptr ? bias + 32 * q : nullptr, 0, min64(32, n_rows - 32 * p),
                                 min64(32, M - 32 * q), pack + (2 * p * pack_kb + q) * kTileElems);
                        slot ^= 1;
                        continue;
                    }
                    for (int i = 0; i < 4; ++i) c_tile_finish(t[i], buf[i], ldc);
                    if (epilogue && k1 == kb_count) {  // the finished sums
                        ep.finish();
                        ep.start(t[0].dst, bias != nullptr ? bias + 32 * q : nullptr, ldc, min64(32, n_rows - 32 * p),
                                 min64(32, M - 32 * q));
                    }
                }
            }
            if (kb_count == 0) break;
        }
    }
    ep.finish();
    _tile_release();
}

}  // namespace

void bf16_gemm_amx(const uint16_t* ap, const uint16_t* bp, int64_t kb_count, int64_t n_rows, int64_t M, float* c,
                   int64_t ldc, bool accumulate, int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* bias,
                   int act, uint16_t* pack, int64_t pack_kb) {
    switch (act) {
        case 0: return gemm_amx<0>(ap, bp, kb_count, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias, pack, pack_kb);
        case 1: return gemm_amx<1>(ap, bp, kb_count, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias, pack, pack_kb);
        case 2: return gemm_amx<2>(ap, bp, kb_count, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias, pack, pack_kb);
        case 3: return gemm_amx<3>(ap, bp, kb_count, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias, pack, pack_kb);
        default:
            return gemm_amx<-1>(ap, bp, kb_count, n_rows, M, c, ldc, accumulate, p0, p1, q0, q1, bias, pack, pack_kb);
    }
}

void bf16_softmax_pack_avx512(float* s, int64_t lds, int64_t rows, int64_t L, int64_t kb_count, float scale,
                              const float* add0, const float* add1, int64_t ld_add, uint16_t* pa, float* inv_z) {
    using V = ActLanes16;
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t r = 0; r < 32; ++r) {
        uint16_t* prow = pa + (r / 16) * kb_count * kTileElems + (r % 16) * 32;
        if (r >= rows) {
            for (int64_t kb = 0; kb < kb_count; ++kb) _mm512_storeu_si512(prow + kb * kTileElems, _mm512_setzero_si512());
            inv_z[r] = 0.0f;
            continue;
        }
        float* x = s + r * lds;
        const float* a0 = add0 != nullptr ? add0 + r * ld_add : nullptr;
        const float* a1 = add1 != nullptr ? add1 + r * ld_add : nullptr;
        // x = scale · s + adds (stored back), and its maximum; zeros past L
        __m512 mx = _mm512_set1_ps(-__builtin_inff());
        for (int64_t t = 0; t < 32 * kb_count; t += 16) {
            const __mmask16 m = V::mask(min64(16, L - t > 0 ? L - t : 0));
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + t), sc);
            if (a0 != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a0 + t));
            if (a1 != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a1 + t));
            _mm512_storeu_ps(x + t, v);
            mx = _mm512_mask_max_ps(mx, m, mx, v);
        }
        const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        // e = exp(x − max), 32 keys per block rounded to bf16 (nearest even) into the tile row
        __m512 sum = _mm512_setzero_ps();
        for (int64_t kb = 0; kb < kb_count; ++kb) {
            const int64_t t = 32 * kb;
            const __mmask16 m0 = V::mask(min64(16, L - t > 0 ? L - t : 0));
            const __mmask16 m1 = V::mask(min64(16, L - t - 16 > 0 ? L - t - 16 : 0));
            const __m512 lo = _mm512_maskz_mov_ps(m0, V::exp(_mm512_sub_ps(_mm512_loadu_ps(x + t), vmax)));
            const __m512 hi = _mm512_maskz_mov_ps(m1, V::exp(_mm512_sub_ps(_mm512_loadu_ps(x + t + 16), vmax)));
            sum = _mm512_add_ps(sum, _mm512_add_ps(lo, hi));
            _mm512_storeu_si512(prow + kb * kTileElems, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
        }
        inv_z[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

void scale_rows_avx512(float* o, int64_t ldo, int64_t rows, int64_t n, const float* scale) {
    for (int64_t r = 0; r < rows; ++r) {
        const __m512 f = _mm512_set1_ps(scale[r]);
        float* x = o + r * ldo;
        for (int64_t d = 0; d < n; d += 16) {
            const __mmask16 m = ActLanes16::mask(min64(16, n - d));
            _mm512_mask_storeu_ps(x + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + d), f));
        }
    }
}

}  // namespace llmforge::kernels::x86
