// The searches and packings shared by the reference quantisers (quants_ref.cpp,
// quants_legacy_ref.cpp, quants_kextra_ref.cpp): llama.cpp's nearest_int, make_qkx2/3_quants,
// make_qx_quants, the imatrix weight formula and the 6-bit (scale, min) packing of Q4_K / Q5_K.
// One copy, so that every type that must match llama.cpp byte for byte runs the same arithmetic.
//
// Internal to the reference kernels: include it only from files built like them (baseline
// x86-64, no FMA contraction), because the results depend on the exact float evaluation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace llmforge::kernels::ref::search {

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a group below it is all zero

// Round to nearest, ties to even, via the 1.5 * 2^23 magic number, exactly as ggml's
// nearest_int (including what it returns for out-of-range input, which ggml does not check in
// release builds either).
inline int nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }
inline int clampi(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

// The element of largest magnitude, sign kept (the first one on ties), and that magnitude.
inline float signed_absmax(int n, const float* x, float* amax_out) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            vmax = x[i];
        }
    }
    *amax_out = amax;
    return vmax;
}

// Q8_0 / Q8_1's absmax rounding of one 32-value block (roundf, as ggml's reference). Returns d
// unrounded (Q8_1's s multiplies by it before the fp16 rounding).
inline float quantize_q8_block(const float* x, int8_t* qs) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < kQK; ++j) qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    return d;
}

// Asymmetric fit x ~= scale * L - the_min, L in [0, nmax], minimising the weighted error
// (squared, or absolute with use_mad) over nstep+1 candidate inverse scales
// (rmin + rdelta*is + nmax) / (max - min), each refitted by weighted least squares. weights null:
// x^2 (ggml's make_qkx3_quants); with weights it is also make_qkx2_quants (identical for finite
// input: qkx2 tests max == min, qkx3 max <= min, after min was clamped to <= 0).
inline float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                    uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    auto wt = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
    float mn = x[0], mx = x[0];
    float sum_w = wt(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        const float w = wt(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx <= mn) {
        std::memset(L, 0, static_cast<size_t>(n));
        *the_min = -mn;
        return 0.f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax));
        float diff = scale * L[i] + mn - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best += wt(i) * diff;
    }
    if (nstep < 1) {
        *the_min = -mn;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = static_cast<uint8_t>(l);
            const float w = wt(i);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                err += wt(i) * diff;
            }
            if (err < best) {
                std::memcpy(L, Laux, static_cast<size_t>(n));
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *the_min = -mn;
    return scale;
}

// Symmetric fit x ~= scale * (L - nmax), L - nmax in [-nmax, nmax-1] (ggml's make_qx_quants with
// rmse_type 1): the weighted least-squares scale over 19 candidate inverse scales. Weights qw, or
// x^2 when null.
inline float fit_symmetric(int n, int nmax, const float* x, int8_t* L, const float* qw) {
    float amax;
    const float mx = signed_absmax(n, x, &amax);
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, static_cast<size_t>(n));
        return 0.f;
    }
    auto wt = [&](int i) { return qw ? qw[i] : x[i] * x[i]; };
    float iscale = -nmax / mx;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = wt(i);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / mx;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = wt(i);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                L[i] = static_cast<int8_t>(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// llama.cpp's per-element importance for the imatrix searches: the imatrix entry times
// sqrt(sigma2 + x^2), sigma2 a mean square of the row or super-block the caller chose.
inline void importance_weights(int n, const float* x, const float* qw, float sigma2, float* w) {
    for (int j = 0; j < n; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// Q4_K / Q5_K: 8 (scale, min) pairs of 6 bits in 12 bytes: pairs 0-3 in the low 6 bits of
// bytes 0-3 (scale) and 4-7 (min); pairs 4-7 keep their low 4 bits in bytes 8-11 and their high
// 2 bits in the top bits of bytes 0-3 (scale) and 4-7 (min).
inline void k4_get(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

inline void k4_put(uint8_t* s, const uint8_t* ls, const uint8_t* lm) {
    std::memset(s, 0, 12);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
            s[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
        }
    }
}

}  // namespace llmforge::kernels::ref::search
