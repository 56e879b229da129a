// Q2_K, Q3_K, Q5_K: reference kernels (dequantise, plain quantise, dot against Q8_K, tiles), and
// the weight quantisers of every K-quant (weights_ref.h), with and without an importance matrix.
//
// Bit-exactness with llama.cpp (c392e5094) is the contract here, both ways:
//  * dequantisation is ggml's formula operation for operation (dequantize_row_q2_K ...), so a file
//    written by llama.cpp decodes to the same floats;
//  * the weight quantisers reproduce llama.cpp's quantize_q2_K ... quantize_q6_K byte for byte:
//    without an importance matrix llama.cpp runs its plain `_ref` quantiser for all five types,
//    with one the `_impl` searches (make_qkx3 / make_qp / make_qx). They are written here from
//    the algorithms, not copied, but every float expression keeps ggml's evaluation order
//    (`w*x*l` is (w*x)*l, squared differences before weighting, sums in index order) and every
//    integer store keeps ggml's width (a scale index written to a uint8_t wraps as it does there),
//    because a single rounding difference flips a rounding decision somewhere in a large matrix.
//    This file is built for baseline x86-64 (no FMA), like ggml-base, so nothing is contracted.
// The dot products are exact integer sums within a super-block and float across them, as in
// dot_ref.cpp; SIMD versions are compared to them with a tolerance.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/ref/quant_search.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/ref/ref_gemm.h"
#include "kernels/cpu/ref/weights_ref.h"
#include "kernels/cpu/table_fill.h"

namespace llmforge::kernels {

namespace ref {

namespace {

using namespace search;  // nearest_int, fit_scale_min, fit_symmetric, k4_get/k4_put (quant_search.h)

inline float fmaxf_(float a, float b) { return a > b ? a : b; }

// ---------------------------------------------------------------- the searches (K-quant only)

// Fit of non-negative values (the sub-block scales or mins) to L * scale, L in [0, nmax], with
// importance qw (ggml's make_qp_quants): 9 candidate scales, then up to 5 passes of coordinate
// descent on L. L is a uint8_t array on purpose: a negative level wraps as it does in ggml.
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* qw) {
    float mx = 0;
    for (int i = 0; i < n; ++i) mx = fmaxf_(mx, x[i]);
    if (!mx) {
        std::memset(L, 0, static_cast<size_t>(n));
        return 0.f;
    }
    float iscale = nmax / mx;
    for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * L[i];
        best += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / mx;
        const float scale_is = 1 / iscale_is;
        float err = 0;
        for (int i = 0; i < n; ++i) {
            const int l = imin(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            err += qw[i] * diff * diff;
        }
        if (err < best) {
            best = err;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = imin(nmax, nearest_int(iscale * x[i]));
        L[i] = static_cast<uint8_t>(l);
        const float w = qw[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int new_l = imin(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<uint8_t>(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return sumlx / suml2;
}


// Q3_K's plain symmetric fit (ggml's make_q3_quants with do_rmse): the absmax scale, then up to
// 5 passes of coordinate descent on L under x^2 weights. L - nmax in [-nmax, nmax-1].
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
    float amax;
    const float mx = signed_absmax(n, x, &amax);
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, static_cast<size_t>(n));
        return 0.f;
    }
    const float iscale = -nmax / mx;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<int8_t>(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
    return sumlx / suml2;
}

// ---------------------------------------------------------------- packing helpers


// Q3_K: 16 six-bit scales (stored + 32) in 12 bytes: low nibbles of scales 0-7 in the low
// nibbles of bytes 0-7, of scales 8-15 in their high nibbles; the top 2 bits of scale j in bits
// 2*(j/4) of byte 8 + j%4.
inline int q3_scale(const uint8_t* s, int j) {
    const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    return (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

inline void q3_put_scale(uint8_t* s, int j, int l) {  // l in [0, 63]
    if (j < 8) {
        s[j] = static_cast<uint8_t>(l & 0xF);
    } else {
        s[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
    }
    s[j % 4 + 8] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
}

// Q2_K / Q3_K low 2 bits: per 128 values, byte l of 32 holds values l, l+32, l+64, l+96.
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < kQK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                 (L[j + l + 96] << 6));
        }
    }
}

// Q3_K: L in [0, 7] -> high bit of value j at bit j/32 of hmask[j%32], low 2 bits packed.
inline void pack_q3(int8_t* L, BlockQ3_K& b) {
    std::memset(b.hmask, 0, sizeof(b.hmask));
    for (int j = 0; j < kQK_K; ++j) {
        if (L[j] > 3) {
            b.hmask[j % 32] |= static_cast<uint8_t>(1 << (j / 32));
            L[j] = static_cast<int8_t>(L[j] - 4);
        }
    }
    pack_2bit(reinterpret_cast<const uint8_t*>(L), b.qs);
}

// Q5_K: per 64 values n, byte l of 32 holds the low nibbles of values n+l and n+32+l; their
// 5th bits go to bits 2*(n/64) and 2*(n/64)+1 of qh[l].
inline void pack_q5(const uint8_t* L, BlockQ5_K& b) {
    std::memset(b.qh, 0, sizeof(b.qh));
    for (int n = 0, g = 0; n < kQK_K; n += 64, ++g) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                b.qh[j] |= static_cast<uint8_t>(1 << (2 * g));
            }
            if (l2 > 15) {
                l2 -= 16;
                b.qh[j] |= static_cast<uint8_t>(2 << (2 * g));
            }
            b.qs[n / 2 + j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
    }
}

// Q4_K: per 64 values, byte l of 32 holds values l (low nibble) and l+32 (high nibble).
inline void pack_q4(const uint8_t* L, BlockQ4_K& b) {
    for (int j = 0; j < kQK_K; j += 64) {
        for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
}

// Q4_K / Q5_K: requantise every sub-block against its decoded (d * sc, dmin * m), L in [0, nmax].
inline void requant_k4(const float* x, const uint8_t* scales, uint16_t d16, uint16_t dmin16, int nmax, uint8_t* L) {
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_get(j, scales, &sc, &m);
        const float d = fp16_to_fp32(d16) * sc;
        if (!d) continue;
        const float dm = fp16_to_fp32(dmin16) * m;
        for (int ii = 0; ii < 32; ++ii) {
            L[32 * j + ii] = static_cast<uint8_t>(clampi(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
        }
    }
}

// Q4_K / Q5_K without an importance matrix (ggml's quantize_row_q{4,5}_K_ref): per 32 values a
// scale+min fit weighted by rms + |x|, the 8 pairs quantised to 6 bits against their maxima.
template <class Block>
void k4_plain(const float* x, Block& b, int nmax, float rmin, int nstep, uint8_t* L) {
    uint8_t Laux[32];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        // ggml stores nearest_int into a uint8_t before the MIN: keep the wrap.
        ls[j] = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
        lm[j] = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
        if (ls[j] > 63) ls[j] = 63;
        if (lm[j] > 63) lm[j] = 63;
    }
    k4_put(b.scales, ls, lm);
    b.d = fp32_to_fp16(max_scale / 63.f);
    b.dmin = fp32_to_fp16(max_min / 63.f);
    requant_k4(x, b.scales, b.d, b.dmin, nmax, L);
}

// Q4_K / Q5_K with an importance matrix (ggml's quantize_row_q{4,5}_K_impl): weights
// qw * sqrt(sigma2 + x^2), the 36-step scale+min search, and the 6-bit scales and mins fitted by
// importance (sum of the sub-block's weights) instead of against their maxima.
// clamp63: Q5_K clamps the fitted levels to 63, Q4_K does not (they only differ if a level
// wrapped, which ggml keeps, so we do too).
template <class Block>
void k4_weighted(const float* x, Block& b, int nmax, const float* qw, uint8_t* L, bool clamp63) {
    uint8_t Laux[32], Ls[8], Lm[8];
    float w[32], sw[8], mins[8], scales[8];
    float sum_x2 = 0;
    for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / kQK_K;
    for (int j = 0; j < 8; ++j) {
        importance_weights(32, x + 32 * j, qw + 32 * j, sigma2, w);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += w[l];
        sw[j] = sumw;
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float d_block = fit_positive(8, 63, scales, Ls, sw);
    const float m_block = fit_positive(8, 63, mins, Lm, sw);
    for (int j = 0; clamp63 && j < 8; ++j) {
        if (Ls[j] > 63) Ls[j] = 63;
        if (Lm[j] > 63) Lm[j] = 63;
    }
    k4_put(b.scales, Ls, Lm);
    b.d = fp32_to_fp16(d_block);
    b.dmin = fp32_to_fp16(m_block);
    requant_k4(x, b.scales, b.d, b.dmin, nmax, L);
}

// ---------------------------------------------------------------- quantisers, one super-block

void q2_k_plain(const float* x, BlockQ2_K& b) {
    uint8_t L[kQK_K], Laux[16];
    float w[16], mins[16], scales[16];
    constexpr float q4scale = 15.f;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
        scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
        b.d = fp32_to_fp16(max_scale / q4scale);
    } else {
        std::memset(b.scales, 0, sizeof(b.scales));
        b.d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < 16; ++j) b.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
        b.dmin = fp32_to_fp16(max_min / q4scale);
    } else {
        b.dmin = fp32_to_fp16(0.f);
    }
    const float dd = fp16_to_fp32(b.d), dm = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * (b.scales[j] & 0xF);
        if (!d) continue;
        const float m = dm * (b.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest_int((x[16 * j + ii] + m) / d), 0, 3));
        }
    }
    pack_2bit(L, b.qs);
}

void q2_k_weighted(const float* x, BlockQ2_K& b, const float* qw) {
    uint8_t L[kQK_K], Laux[16], Ls[16], Lm[16];
    float w[16], sw[16], mins[16], scales[16];
    float sumx2 = 0;
    for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / kQK_K;
    for (int j = 0; j < 16; ++j) {
        importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
        sw[j] = 0;
        for (int l = 0; l < 16; ++l) sw[j] += w[l];
        scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float dm0 = fit_positive(16, 15, scales, Ls, sw);
    const float mm0 = fit_positive(16, 15, mins, Lm, sw);
    b.d = fp32_to_fp16(dm0);
    b.dmin = fp32_to_fp16(mm0);
    const float dm = fp16_to_fp32(b.d), mm = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < 16; ++j) {
        const float d = dm * (b.scales[j] & 0xF);
        if (!d) continue;
        const float m = mm * (b.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest_int((x[16 * j + ii] + m) / d), 0, 3));
        }
    }
    pack_2bit(L, b.qs);
}

// Q3_K: requantise against the decoded 6-bit scales, L in [0, 7], then pack.
void q3_k_finish(const float* x, BlockQ3_K& b, int8_t* L) {
    const float dd = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
        const int sc = static_cast<int8_t>(q3_scale(b.scales, j));
        const float d = dd * sc;
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            L[16 * j + ii] = static_cast<int8_t>(clampi(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
    }
    pack_q3(L, b);
}

void q3_k_plain(const float* x, BlockQ3_K& b) {
    int8_t L[kQK_K];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
        scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
        const float a = std::fabs(scales[j]);
        if (a > amax) {
            amax = a;
            max_scale = scales[j];
        }
    }
    std::memset(b.scales, 0, sizeof(b.scales));
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
            // int8_t first, as in ggml.
            const int l = clampi(static_cast<int8_t>(nearest_int(iscale * scales[j])), -32, 31) + 32;
            q3_put_scale(b.scales, j, l);
        }
        b.d = fp32_to_fp16(1 / iscale);
    } else {
        b.d = fp32_to_fp16(0.f);
    }
    q3_k_finish(x, b, L);
}

void q3_k_weighted(const float* x, BlockQ3_K& b, const float* qw) {
    int8_t L[kQK_K], Ls[16];
    float w[16], sw[16], scales[16];
    float sumx2 = 0;
    for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / kQK_K;
    for (int j = 0; j < 16; ++j) {
        importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
        float sumw = 0;
        for (int l = 0; l < 16; ++l) sumw += w[l];
        sw[j] = sumw;
        scales[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j, w);
    }
    std::memset(b.scales, 0, sizeof(b.scales));
    const float d_block = fit_symmetric(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) q3_put_scale(b.scales, j, Ls[j]);
    b.d = fp32_to_fp16(d_block);
    q3_k_finish(x, b, L);
}

// Q6_K, both paths (ggml's quantize_row_q6_K_ref and _impl): per 16 values the symmetric fit
// (weights x^2, or the importance matrix as is), 8-bit scales against the largest one.
void q6_k_block(const float* x, BlockQ6_K& b, const float* qw) {
    int8_t L[kQK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
        scales[ib] = fit_symmetric(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
        const float a = std::fabs(scales[ib]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < kGroupMaxEps) {
        std::memset(&b, 0, sizeof(b));
        return;
    }
    const float iscale = -128.f / max_scale;
    b.d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) b.scales[ib] = static_cast<int8_t>(imin(127, nearest_int(iscale * scales[ib])));
    const float dd = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * b.scales[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            L[16 * j + ii] = static_cast<int8_t>(clampi(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
    }
    for (int h = 0; h < 2; ++h) {
        uint8_t* ql = b.ql + 64 * h;
        uint8_t* qh = b.qh + 32 * h;
        const int8_t* v = L + 128 * h;
        for (int l = 0; l < 32; ++l) {
            ql[l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
            ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
            qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                                         ((v[l + 96] >> 4) << 6));
        }
    }
}

// ---------------------------------------------------------------- unpacking for the dots

// One super-block as signed values and per-16 scales (and mins for the types with them):
// value(e) = d * sc[e/16] * q[e] - dmin * mn[e/16].
struct Unpacked {
    int8_t q[kQK_K];
    int sc[16];
    int mn[16];
};

void unpack_q2_k(const BlockQ2_K& b, Unpacked& u) {
    for (int e = 0; e < kQK_K; ++e) {
        const int half = e / 128, j = (e % 128) / 32, l = e % 32;
        u.q[e] = static_cast<int8_t>((b.qs[32 * half + l] >> (2 * j)) & 3);
    }
    for (int g = 0; g < 16; ++g) {
        u.sc[g] = b.scales[g] & 0xF;
        u.mn[g] = b.scales[g] >> 4;
    }
}

void unpack_q3_k(const BlockQ3_K& b, Unpacked& u) {
    for (int e = 0; e < kQK_K; ++e) {
        const int half = e / 128, j = (e % 128) / 32, l = e % 32;
        const int lo = (b.qs[32 * half + l] >> (2 * j)) & 3;
        const bool hi = (b.hmask[l] >> (e / 32)) & 1;
        u.q[e] = static_cast<int8_t>(lo - (hi ? 0 : 4));
    }
    for (int g = 0; g < 16; ++g) {
        u.sc[g] = q3_scale(b.scales, g);
        u.mn[g] = 0;
    }
}

void unpack_q5_k(const BlockQ5_K& b, Unpacked& u) {
    for (int e = 0; e < kQK_K; ++e) {
        const int c = e / 32, l = e % 32;  // 32-value chunk c: nibble c%2 of qs[32*(c/2) + l], bit c of qh[l]
        const int lo = (b.qs[32 * (c / 2) + l] >> (4 * (c % 2))) & 0xF;
        u.q[e] = static_cast<int8_t>(lo | (((b.qh[l] >> c) & 1) << 4));
    }
    for (int c = 0; c < 8; ++c) {
        int sc, m;
        k4_get(c, b.scales, &sc, &m);
        u.sc[2 * c] = u.sc[2 * c + 1] = sc;
        u.mn[2 * c] = u.mn[2 * c + 1] = m;
    }
}

// dot of one unpacked super-block with a Q8_K block: sum_g sc_g * <q, a>_g and sum_g mn_g * bsum_g.
inline void block_sums(const Unpacked& u, const BlockQ8_K& a, int* sumi, int* summ) {
    int s = 0, m = 0;
    for (int g = 0; g < 16; ++g) {
        int dot = 0;
        for (int l = 0; l < 16; ++l) dot += u.q[16 * g + l] * a.qs[16 * g + l];
        s += u.sc[g] * dot;
        m += u.mn[g] * a.bsums[g];
    }
    *sumi = s;
    *summ = m;
}

}  // namespace

// ---------------------------------------------------------------- weight quantisers

namespace {

// Per super-block: the imatrix search where there is an importance matrix, else the plain one.
template <class Block, void (*Plain)(const float*, Block&), void (*Weighted)(const float*, Block&, const float*)>
void quantize_superblocks(const float* x, void* vy, int64_t n, const float* imatrix) {
    auto* y = static_cast<Block*>(vy);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        if (imatrix) {
            Weighted(x + b * kQK_K, y[b], imatrix + b * kQK_K);
        } else {
            Plain(x + b * kQK_K, y[b]);
        }
    }
}

}  // namespace

void quantize_weights_q2_k(const float* x, void* y, int64_t n, const float* imatrix) {
    quantize_superblocks<BlockQ2_K, q2_k_plain, q2_k_weighted>(x, y, n, imatrix);
}

void quantize_weights_q3_k(const float* x, void* y, int64_t n, const float* imatrix) {
    quantize_superblocks<BlockQ3_K, q3_k_plain, q3_k_weighted>(x, y, n, imatrix);
}

void quantize_weights_q4_k(const float* x, void* vy, int64_t n, const float* imatrix) {
    auto* y = static_cast<BlockQ4_K*>(vy);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        if (imatrix) {
            k4_weighted(x + b * kQK_K, y[b], 15, imatrix + b * kQK_K, L, false);
        } else {
            k4_plain(x + b * kQK_K, y[b], 15, -1.f, 20, L);
        }
        pack_q4(L, y[b]);
    }
}

void quantize_weights_q5_k(const float* x, void* vy, int64_t n, const float* imatrix) {
    auto* y = static_cast<BlockQ5_K*>(vy);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        if (imatrix) {
            k4_weighted(x + b * kQK_K, y[b], 31, imatrix + b * kQK_K, L, true);
        } else {
            k4_plain(x + b * kQK_K, y[b], 31, -0.5f, 15, L);
        }
        pack_q5(L, y[b]);
    }
}

void quantize_weights_q6_k(const float* x, void* vy, int64_t n, const float* imatrix) {
    auto* y = static_cast<BlockQ6_K*>(vy);
    for (int64_t b = 0; b < n / kQK_K; ++b) q6_k_block(x + b * kQK_K, y[b], imatrix ? imatrix + b * kQK_K : nullptr);
}

// ---------------------------------------------------------------- plain quantise (table entries)

void quantize_row_q2_k(const float* x, void* y, int64_t n) { quantize_weights_q2_k(x, y, n, nullptr); }
void quantize_row_q3_k(const float* x, void* y, int64_t n) { quantize_weights_q3_k(x, y, n, nullptr); }
void quantize_row_q5_k(const float* x, void* y, int64_t n) { quantize_weights_q5_k(x, y, n, nullptr); }

// ---------------------------------------------------------------- dequantise (ggml's arithmetic)

void dequantize_row_q2_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ2_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float mn = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        int is = 0;
        for (int h = 0; h < 2; ++h, q += 32) {
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j;
                for (int part = 0; part < 2; ++part) {
                    const uint8_t sc = x[b].scales[is++];
                    const float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * part + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void dequantize_row_q3_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ3_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d_all = fp16_to_fp32(x[b].d);
        const uint8_t* q = x[b].qs;
        const uint8_t* hm = x[b].hmask;
        int is = 0;
        uint8_t m = 1;
        for (int h = 0; h < 2; ++h, q += 32) {
            for (int j = 0; j < 4; ++j, m = static_cast<uint8_t>(m << 1)) {
                const int shift = 2 * j;
                for (int part = 0; part < 2; ++part) {
                    const float dl = d_all * q3_scale(x[b].scales, is++);
                    for (int l = 0; l < 16; ++l) {
                        const int k = 16 * part + l;
                        *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                }
            }
        }
    }
}

void dequantize_row_q5_k(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const BlockQ5_K*>(vx);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float mn = fp16_to_fp32(x[b].dmin);
        const uint8_t* ql = x[b].qs;
        const uint8_t* qh = x[b].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 4; ++j, ql += 32) {
            int sc, m;
            k4_get(2 * j, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = mn * m;
            k4_get(2 * j + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = mn * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = static_cast<uint8_t>(u1 << 2);
            u2 = static_cast<uint8_t>(u2 << 2);
        }
    }
}

// ---------------------------------------------------------------- dots against Q8_K

namespace {

// sum over super-blocks of d_x * (d * sumi - dmin * summ); Q3_K has no mins (kHasMin false).
template <class Block, void (*Unpack)(const Block&, Unpacked&), bool kHasMin>
float vec_dot_unpacked(int64_t n, const void* vw, const void* vx) {
    const auto* w = static_cast<const Block*>(vw);
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    Unpacked u;
    float s = 0;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        Unpack(w[b], u);
        int sumi, summ;
        block_sums(u, x[b], &sumi, &summ);
        if constexpr (kHasMin) {
            s += x[b].d * fp16_to_fp32(w[b].d) * sumi - x[b].d * fp16_to_fp32(w[b].dmin) * summ;
        } else {
            s += x[b].d * fp16_to_fp32(w[b].d) * sumi;
        }
    }
    return s;
}

}  // namespace

float vec_dot_q2_k(int64_t n, const void* w, const void* x) {
    return vec_dot_unpacked<BlockQ2_K, unpack_q2_k, true>(n, w, x);
}
float vec_dot_q3_k(int64_t n, const void* w, const void* x) {
    return vec_dot_unpacked<BlockQ3_K, unpack_q3_k, false>(n, w, x);
}
float vec_dot_q5_k(int64_t n, const void* w, const void* x) {
    return vec_dot_unpacked<BlockQ5_K, unpack_q5_k, true>(n, w, x);
}

}  // namespace ref

void register_kextra_ref(KernelTable& t) {
    auto at = [](DType d) { return static_cast<int>(d); };
    t.quantize_row[at(DType::Q2_K)] = ref::quantize_row_q2_k;
    t.quantize_row[at(DType::Q3_K)] = ref::quantize_row_q3_k;
    t.quantize_row[at(DType::Q5_K)] = ref::quantize_row_q5_k;
    t.dequantize_row[at(DType::Q2_K)] = ref::dequantize_row_q2_k;
    t.dequantize_row[at(DType::Q3_K)] = ref::dequantize_row_q3_k;
    t.dequantize_row[at(DType::Q5_K)] = ref::dequantize_row_q5_k;
    t.vec_dot[at(DType::Q2_K)] = ref::vec_dot_q2_k;
    t.vec_dot[at(DType::Q3_K)] = ref::vec_dot_q3_k;
    t.vec_dot[at(DType::Q5_K)] = ref::vec_dot_q5_k;
    t.gemm[at(DType::Q2_K)] = ref::gemm_by_vec_dot<ref::vec_dot_q2_k>;
    t.gemm[at(DType::Q3_K)] = ref::gemm_by_vec_dot<ref::vec_dot_q3_k>;
    t.gemm[at(DType::Q5_K)] = ref::gemm_by_vec_dot<ref::vec_dot_q5_k>;
    // gemm_invariant: fill_ref_table copies gemm (every output is one vec_dot call).
}

}  // namespace llmforge::kernels
