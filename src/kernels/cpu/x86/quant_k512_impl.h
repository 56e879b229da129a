// 512-bit K-quant dots for the AVX-512 table (VNNI): q4_K and q6_K against q8_K, 64 quant bytes
// per step, and their one-activation-row (decode) gemm, gemm_k512.
//
// The 256-bit vec_dot_q4_k (quant_dot_impl.h) walks a super-block in four 32-byte chunks; here
// one zmm holds two chunks (four 32-value sub-blocks: low nibbles are sub-blocks 4h and 4h+2,
// high nibbles 4h+1 and 4h+3), so a super-block is two steps. Sums per sub-block are the same
// integers (maddubs pairs, then vpdpwssd by the sub-block's scale); only the f32 summation order
// differs from the 256-bit dots. Measured on MoE decode (docs/PERFORMANCE.md, issue 17), where
// expert rows have 2-3 super-blocks, so the work around the integer products decides the speed:
//  * rows go four per pass (kK512Rows) and their f32 partial sums are reduced together
//    (hsum_rows: one hadd tree for four rows instead of a serial shuffle chain per row);
//  * per row the super-blocks are walked in memory order (interleaving the four rows' blocks was
//    slower: the weight stream stops being sequential);
//  * q4_K activations are reordered once per call into the zmm order (q4k_acts_512), so the
//    inner loop loads them whole;
//  * per-sub-block scales come from one 128-bit broadcast and a vpshufb each (no scalar
//    extraction); q4_K's mins part stays in an 8-lane f32 vector added before the reduction;
//  * two independent integer accumulators per row and super-block;
//  * every pass touches the lines of the pass a few KiB ahead (prefetch_ahead, x86_common.h).
// A row's arithmetic does not depend on the rows beside it, so vec_dot (one row) and the gemm
// give bit-identical results for a row. More than one activation row: zmm tiles (kstep512 below).
#pragma once

#include "kernels/cpu/x86/quant_dot_impl.h"

#if LF_X86_AVX512VNNI
namespace llmforge::kernels::x86 {
namespace {  // internal linkage: see x86_common.h (the emulated test table includes this file too)

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// [lo 32 bytes at p, hi 32 bytes at q]
inline __m512i load2x256(const void* p, const void* q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(p)), load256(q), 1);
}
inline __m256 hi256_ps(__m512 v) { return _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(v), 1)); }
// 64 bytes of pshufb control from 8 little-endian words (one per 64-bit lane).
inline __m512i k512_mask(uint64_t q0, uint64_t q1, uint64_t q2, uint64_t q3, uint64_t q4, uint64_t q5, uint64_t q6,
                         uint64_t q7) {
    return _mm512_set_epi64(static_cast<long long>(q7), static_cast<long long>(q6), static_cast<long long>(q5),
                            static_cast<long long>(q4), static_cast<long long>(q3), static_cast<long long>(q2),
                            static_cast<long long>(q1), static_cast<long long>(q0));
}
// pshufb control that fills a 128-bit lane with the 16-bit word made of bytes (lo, hi) of that lane
// (0x80: a zero byte).
constexpr uint64_t word_bcast(unsigned lo, unsigned hi) {
    const uint64_t w = lo | (hi << 8);
    return w | (w << 16) | (w << 32) | (w << 48);
}

// Horizontal sums of RW rows' accumulators (ymm each, already folded from 512 bits): lane r of the
// result is row r's sum. Always the same tree per lane: ((y0+y1)+(y2+y3)) + ((y4+y5)+(y6+y7)).
template <int RW>
inline __m128 hsum_rows(const __m256* y) {
    const __m256 y1 = y[RW > 1 ? 1 : 0], y2 = y[RW > 2 ? 2 : 0], y3 = y[RW > 3 ? 3 : 0];
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(y[0], y1), _mm256_hadd_ps(y2, y3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

template <int RW>
inline void store_rows(__m128 s, float* out) {
    if constexpr (RW == 4) {
        _mm_storeu_ps(out, s);
    } else {
        alignas(16) float t[4];
        _mm_store_ps(t, s);
        for (int r = 0; r < RW; ++r) out[r] = t[r];
    }
}

// q4_K's activation order: per super-block the 64-byte vectors a0..a3 of q4k_rows_512, i.e. the
// q8_K values 0-31 64-95 | 32-63 96-127 | 128-159 192-223 | 160-191 224-255 (256 bytes).
inline void q4k_acts_512(int64_t nb, const BlockQ8_K* x, int8_t* out) {
    for (int64_t b = 0; b < nb; ++b) {
        const int8_t* a = x[b].qs;
        int8_t* o = out + 256 * b;
        for (int i = 0; i < 4; ++i) {
            const int s = 128 * (i / 2) + 32 * (i % 2);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * i), load256(a + s));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * i + 32), load256(a + s + 64));
        }
    }
}

// Constants of q4k_row_512, made once per call of the rows function.
struct Q4kConsts {
    __m512i m4, ms0, ms1, ms2, ms3;
    __m256i mmins;
};
inline Q4kConsts q4k_consts() {
    // Scale words (zero-extended bytes of q4k_scales_mins' [sc0-7 m0-7]), 256-bit halves:
    // ms0 = [sc0 | sc2], ms1 = [sc1 | sc3], ms2 = [sc4 | sc6], ms3 = [sc5 | sc7].
    constexpr unsigned z = 0x80;
    auto halves = [](unsigned a, unsigned b) {
        return k512_mask(word_bcast(a, z), word_bcast(a, z), word_bcast(a, z), word_bcast(a, z), word_bcast(b, z),
                         word_bcast(b, z), word_bcast(b, z), word_bcast(b, z));
    };
    Q4kConsts c;
    c.m4 = _mm512_set1_epi8(0x0F);
    c.ms0 = halves(0, 2);
    c.ms1 = halves(1, 3);
    c.ms2 = halves(4, 6);
    c.ms3 = halves(5, 7);
    // Mins as 16 words [m0 m0 m1 m1 ... m7 m7] (each min twice: it covers two 16-value bsums).
    c.mmins = _mm256_setr_epi8(8, z, 8, z, 9, z, 9, z, 10, z, 10, z, 11, z, 11, z,  //
                               12, z, 12, z, 13, z, 13, z, 14, z, 14, z, 15, z, 15, z);
    return c;
}

// One q4_K row (nb super-blocks) · one q8_K row, as 8 partial sums. xp: the q8_K values in
// q4k_acts_512's order, or null (then they are gathered here, per super-block).
inline __m256 q4k_row_512(int64_t nb, const BlockQ4_K* w, const BlockQ8_K* x, const int8_t* xp, const Q4kConsts& c) {
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ8_K& xb = x[b];
        __m512i a0, a1, a2, a3;
        if (xp != nullptr) {
            a0 = load512(xp + 256 * b), a1 = load512(xp + 256 * b + 64);
            a2 = load512(xp + 256 * b + 128), a3 = load512(xp + 256 * b + 192);
        } else {
            a0 = load2x256(xb.qs, xb.qs + 64), a1 = load2x256(xb.qs + 32, xb.qs + 96);
            a2 = load2x256(xb.qs + 128, xb.qs + 192), a3 = load2x256(xb.qs + 160, xb.qs + 224);
        }
        uint32_t ddm;
        std::memcpy(&ddm, &w[b].d, 4);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(ddm))), _mm_set1_ps(xb.d));  // [d, dmin]
        const __m512i sv = _mm512_broadcast_i32x4(q4k_scales_mins(w[b].scales));
        const __m256i mins = _mm256_shuffle_epi8(_mm512_castsi512_si256(sv), c.mmins);
        accm = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)),
                                _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, load256(xb.bsums))), accm);
        const __m512i q0 = load512(w[b].qs), q1 = load512(w[b].qs + 64);
        __m512i s0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(_mm512_and_si512(q0, c.m4), a0),
                                         _mm512_shuffle_epi8(sv, c.ms0));
        __m512i s1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                         _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q0, 4), c.m4), a1),
                                         _mm512_shuffle_epi8(sv, c.ms1));
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(_mm512_and_si512(q1, c.m4), a2), _mm512_shuffle_epi8(sv, c.ms2));
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q1, 4), c.m4), a3),
                                 _mm512_shuffle_epi8(sv, c.ms3));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(_mm_cvtss_f32(dd)), _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc);
    }
    return _mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(acc), hi256_ps(acc)), accm);
}

// RW q4_K rows (wr[r], nb super-blocks each) · one q8_K row -> out[0..RW).
template <int RW>
inline void q4k_rows_512(int64_t nb, const uint8_t* const* wr, const BlockQ8_K* x, const int8_t* xp, float* out) {
    const Q4kConsts c = q4k_consts();
    __m256 y[RW];
    for (int r = 0; r < RW; ++r) y[r] = q4k_row_512(nb, reinterpret_cast<const BlockQ4_K*>(wr[r]), x, xp, c);
    store_rows<RW>(hsum_rows<RW>(y), out);
}

struct Q6kConsts {
    __m512i m4, m30, c01, c23, sh_h01, sh_h23;
};
inline Q6kConsts q6k_consts() {
    Q6kConsts c;
    c.m4 = _mm512_set1_epi8(0x0F);
    c.m30 = _mm512_set1_epi8(0x30);
    // Word j of a 128-bit lane into 128-bit lane i: c01 takes words 0-3, c23 words 4-7.
    c.c01 = k512_mask(word_bcast(0, 1), word_bcast(0, 1), word_bcast(2, 3), word_bcast(2, 3), word_bcast(4, 5),
                      word_bcast(4, 5), word_bcast(6, 7), word_bcast(6, 7));
    c.c23 = k512_mask(word_bcast(8, 9), word_bcast(8, 9), word_bcast(10, 11), word_bcast(10, 11), word_bcast(12, 13),
                      word_bcast(12, 13), word_bcast(14, 15), word_bcast(14, 15));
    c.sh_h01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    c.sh_h23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    return c;
}

// One q6_K row · one q8_K row, as 8 partial sums. Per 128-value half, the four 32-value chunks as
// two zmm ([0|1] and [2|3]: their activations are 64 consecutive bytes); the +32 offset of the
// stored values is removed from the per-block sum with the bsums.
inline __m256 q6k_row_512(int64_t nb, const BlockQ6_K* w, const BlockQ8_K* x, const Q6kConsts& c) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ8_K& xb = x[b];
        const float d = xb.d * f16(w[b].d);
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
        __m512i sum[2];
        for (int h = 0; h < 2; ++h) {
            const __m512i l = load512(w[b].ql + 64 * h);  // [l0 | l1]
            const __m512i qh = _mm512_broadcast_i64x4(load256(w[b].qh + 32 * h));
            const __m512i h01 = _mm512_sllv_epi16(qh, c.sh_h01);  // [qh << 4 | qh << 2]
            const __m512i h23 = _mm512_srlv_epi16(qh, c.sh_h23);  // [qh | qh >> 2]
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, c.m4), _mm512_and_si512(h01, c.m30));
            const __m512i q23 =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), c.m4), _mm512_and_si512(h23, c.m30));
            const __m512i sc = _mm512_broadcast_i32x4(h == 0 ? _mm256_castsi256_si128(s16) : _mm256_extracti128_si256(s16, 1));
            const __m512i p01 = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                                    _mm512_maddubs_epi16(q01, load512(xb.qs + 128 * h)),
                                                    _mm512_shuffle_epi8(sc, c.c01));
            sum[h] = _mm512_dpwssd_epi32(p01, _mm512_maddubs_epi16(q23, load512(xb.qs + 128 * h + 64)),
                                         _mm512_shuffle_epi8(sc, c.c23));
        }
        const __m512i si = _mm512_add_epi32(sum[0], sum[1]);
        __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(si), _mm512_extracti64x4_epi64(si, 1));
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_madd_epi16(s16, load256(xb.bsums)), 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc);
    }
    return acc;
}

template <int RW>
inline void q6k_rows_512(int64_t nb, const uint8_t* const* wr, const BlockQ8_K* x, const int8_t*, float* out) {
    const Q6kConsts c = q6k_consts();
    __m256 y[RW];
    for (int r = 0; r < RW; ++r) y[r] = q6k_row_512(nb, reinterpret_cast<const BlockQ6_K*>(wr[r]), x, c);
    store_rows<RW>(hsum_rows<RW>(y), out);
}

inline float vec_dot_q4_k_512(int64_t n, const void* vw, const void* vx) {
    const uint8_t* wr[1] = {byte_ptr(vw)};
    float out;
    q4k_rows_512<1>(n / kQK_K, wr, static_cast<const BlockQ8_K*>(vx), nullptr, &out);
    return out;
}

inline float vec_dot_q6_k_512(int64_t n, const void* vw, const void* vx) {
    const uint8_t* wr[1] = {byte_ptr(vw)};
    float out;
    q6k_rows_512<1>(n / kQK_K, wr, static_cast<const BlockQ8_K*>(vx), nullptr, &out);
    return out;
}

// Rows per pass of the one-activation-row gemm.
constexpr int kK512Rows = 4;
// Every pass touches the cache lines of the pass kStreamAhead bytes ahead (x86_common.h), never
// past the matrix's rows. Measured with one touch per pass first (weights usually mmapped 4 KiB
// pages, where the hardware prefetchers stop at page boundaries: random expert slices of a
// mmapped q4_k_m file q4_K 17 -> 22 GB/s, flat between 2 and 8 KiB); every line of the pass ahead
// then took 110M q4_k_m decode from ~115 / ~300 to ~185 / ~380 t/s (1 / 2 threads) and an
// 8-layer DeepSeek-V2-shaped q4_k_m MoE from ~100 / ~187 to ~137 / ~254 (Sapphire Rapids, issue 21).
// Longest row whose reordered activations (ActsFn) live on the stack: 64 super-blocks, 16 KiB.
constexpr int64_t kK512MaxActBlocks = 64;

using K512RowsFn = void (*)(int64_t, const uint8_t* const*, const BlockQ8_K*, const int8_t*, float*);
using K512ActsFn = void (*)(int64_t, const BlockQ8_K*, int8_t*);

// ---- q4_K / q6_K prefill tiles (more than one activation row) on zmm ----
// The 256-bit tiles (kquant_rows in quant_dot_impl.h) with two 32-value chunks per register: the
// nibbles of chunk pair j (chunks 2j, 2j + 1 = the low and high nibbles of quant bytes 32j ..
// 32j + 31) against activation bytes 64j .. 64j + 63, maddubs then vpdpwssd by the chunks' scales
// (16-bit lanes 0-15 chunk 2j's, 16-31 chunk 2j + 1's). The two halves are added as int32 at the
// end of the super-block, so a super-block's per-lane sums group the chunks differently from the
// 256-bit tile and the f32 results differ from it by rounding only (tiles are not row-invariant;
// matmul_test bounds every table against the reference).
struct KPrep512 {
    __m512i q[4];
    __m512i sc[4];
    __m256i bias;
    float dA, dB;
};

inline __m512i join256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

inline void kprep_q4_k_512(const BlockQ4_K& blk, KPrep512& p) {
    KPrep h;  // the 256-bit preparation's scales, bias and d (quant_dot_impl.h)
    kprep_k4_scales(blk.scales, blk.d, blk.dmin, h);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i shift = join256(_mm256_setzero_si256(), _mm256_set1_epi16(4));
    for (int j = 0; j < 4; ++j) {
        const __m512i qb = _mm512_broadcast_i64x4(load256(blk.qs + 32 * j));
        p.q[j] = _mm512_and_si512(_mm512_srlv_epi16(qb, shift), m4);
        p.sc[j] = join256(h.sc[2 * j], h.sc[2 * j + 1]);
    }
    p.bias = h.bias;
    p.dA = h.dA;
    p.dB = h.dB;
}

inline void kprep_q6_k_512(const BlockQ6_K& blk, KPrep512& p) {
    KPrep h;  // the 256-bit preparation (quant_dot_impl.h), chunks joined in pairs
    kprep_q6_k(blk, h);
    for (int j = 0; j < 4; ++j) {
        p.q[j] = join256(h.q[2 * j], h.q[2 * j + 1]);
        p.sc[j] = join256(h.sc[2 * j], h.sc[2 * j + 1]);
    }
    p.bias = h.bias;
    p.dA = h.dA;
    p.dB = h.dB;
}

// RW prepared rows x RC activation super-blocks, accumulated into acc[r * ld + c]; the bias term
// folded into the integer sum (q6_K) or in its own term (q4_K), as kquant_step.
template <int RW, int RC, bool kFoldBias>
inline void kstep512(const KPrep512* p, const BlockQ8_K* const xb[RC], __m256* acc, int ld) {
    __m512i sumi[RW][RC];
    for (int r = 0; r < RW; ++r)
        for (int c = 0; c < RC; ++c) sumi[r][c] = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
        __m512i a[RC];
        for (int c = 0; c < RC; ++c) a[c] = _mm512_loadu_si512(xb[c]->qs + 64 * j);
        for (int r = 0; r < RW; ++r)
            for (int c = 0; c < RC; ++c)
                sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(p[r].q[j], a[c]), p[r].sc[j]);
    }
    for (int c = 0; c < RC; ++c) {
        const __m256i bs = load256(xb[c]->bsums);
        const float da = xb[c]->d;
        for (int r = 0; r < RW; ++r) {
            const __m256i si = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r][c]), _mm512_extracti64x4_epi64(sumi[r][c], 1));
            kquant_add<kFoldBias>(si, p[r].bias, bs, p[r].dA * da, p[r].dB * da, acc[r * ld + c]);
        }
    }
}

// The multi-row q4_K / q6_K gemms on zmm: 4 weight rows a pass, then single rows.
template <class Wt, void (*PrepFn)(const Wt&, KPrep512&), bool kFoldBias, int RW>
constexpr KTileRowsFn kRows512 = kquant_tile_rows<KPrep512, Wt, RW, PrepFn, kstep512<RW, 2, kFoldBias>,
                                                  kstep512<RW, 1, kFoldBias>>;
constexpr auto gemm_q4k_tiles512 = kquant_tiles<kRows512<BlockQ4_K, kprep_q4_k_512, false, 4>,
                                                kRows512<BlockQ4_K, kprep_q4_k_512, false, 1>>;
constexpr auto gemm_q6k_tiles512 = kquant_tiles<kRows512<BlockQ6_K, kprep_q6_k_512, true, 4>,
                                                kRows512<BlockQ6_K, kprep_q6_k_512, true, 1>>;

using KGemmFn = void (*)(int64_t, const void*, size_t, int64_t, const void*, size_t, int64_t, float*, size_t);

// K-quant gemm for the AVX-512 table: one activation row (decode) through Rows<kK512Rows> with
// the activations reordered once per call by Acts (if any); more activation rows through Multi
// (nullptr: the 256-bit tiles, gemm_kquant).
template <K512RowsFn Rows1, K512RowsFn Rows2, K512RowsFn Rows3, K512RowsFn Rows4, K512ActsFn Acts, class Wt,
          bool kFoldBias, void (*Prep)(const Wt&, KPrep&), float (*Dot)(int64_t, const void*, const void*),
          KGemmFn Multi = nullptr>
void gemm_k512(int64_t n, const void* w, size_t w_stride, int64_t nr, const void* x, size_t x_stride, int64_t nc,
               float* out, size_t ldo) {
    if (nc != 1) {
        if constexpr (Multi != nullptr) {
            Multi(n, w, w_stride, nr, x, x_stride, nc, out, ldo);
        } else {
            gemm_kquant<DotVnni, Wt, kFoldBias, Prep, Dot>(n, w, w_stride, nr, x, x_stride, nc, out, ldo);
        }
        return;
    }
    const int64_t nb = n / kQK_K;
    const auto* xb = static_cast<const BlockQ8_K*>(x);
    alignas(64) int8_t acts[Acts != nullptr ? kK512MaxActBlocks * kQK_K : 64];
    const int8_t* xp = nullptr;
    if (Acts != nullptr && nb <= kK512MaxActBlocks && nr >= kK512Rows) {
        Acts(nb, xb, acts);
        xp = acts;
    }
    const uint8_t* wr[kK512Rows];
    const uint8_t* const end = byte_ptr(w) + static_cast<size_t>(nr) * w_stride;
    int64_t r0 = 0;
    for (; r0 + kK512Rows <= nr; r0 += kK512Rows) {
        for (int i = 0; i < kK512Rows; ++i) wr[i] = byte_ptr(w) + static_cast<size_t>(r0 + i) * w_stride;
        prefetch_ahead(wr[0], static_cast<size_t>(kK512Rows) * w_stride, end);
        Rows4(nb, wr, xb, xp, out + r0);
    }
    const int64_t rest = nr - r0;
    for (int i = 0; i < rest; ++i) wr[i] = byte_ptr(w) + static_cast<size_t>(r0 + i) * w_stride;
    if (rest == 3) Rows3(nb, wr, xb, xp, out + r0);
    if (rest == 2) Rows2(nb, wr, xb, xp, out + r0);
    if (rest == 1) Rows1(nb, wr, xb, xp, out + r0);
}

}  // namespace
}  // namespace llmforge::kernels::x86
#endif
