// AVX2 element-wise ops and single-position attention.
#include "kernels/cpu/ref/ref.h"
#include "kernels/cpu/x86/act_impl.h"
#include "kernels/cpu/x86/avx2/avx2.h"
#include "kernels/cpu/x86/attention_kv_impl.h"
#include "kernels/cpu/x86/x86_common.h"

namespace llmforge::kernels::avx2 {

using namespace x86;

namespace {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        s0 = _mm256_fmadd_ps(a, a, s0);
    }
    float ss = hsum(_mm256_add_ps(s0, s1));
    for (; i < n; ++i) ss += x[i] * x[i];
    const float r = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
    const __m256 vr = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vr), _mm256_loadu_ps(w + i)));
    }
    for (; i < n; ++i) y[i] = x[i] * r * w[i];
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    const float mx = max_of(x, n);
    const float sum = exp_shift_sum(x, n, mx);
    scale_inplace(x, n, 1.0f / sum);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// The reference's LayerNorm (ref/ops_ref.cpp) with its double sums 4 lanes wide (two accumulators
// each): the generic build's scalar double loops were 2-6% of a ViT-B encode. The output is the
// reference's float expression, ((x − m) · rstd) · g + b, each operation rounded on its own (no
// contraction into FMAs, as for adamw below).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
void layernorm(const float* x, const float* g, const float* b, float* y, int64_t n, float eps, float* mean_out,
               float* rstd_out) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double s = hsum_pd(_mm256_add_pd(s0, s1));
    for (int64_t j = i; j < n; ++j) s += x[j];
    const double mean = s / static_cast<double>(n);
    const __m256d md = _mm256_set1_pd(mean);
    s0 = s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), md);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), md);
        s0 = _mm256_fmadd_pd(d0, d0, s0);
        s1 = _mm256_fmadd_pd(d1, d1, s1);
    }
    double var = hsum_pd(_mm256_add_pd(s0, s1));
    for (int64_t j = i; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
    const float rstd = static_cast<float>(1.0 / sqrt(var / static_cast<double>(n) + eps));
    const float m = static_cast<float>(mean);
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rstd);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 o = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr), _mm256_loadu_ps(g + i));
        if (b != nullptr) o = _mm256_add_ps(o, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, o);
    }
    for (; i < n; ++i) y[i] = b != nullptr ? (x[i] - m) * rstd * g[i] + b[i] : (x[i] - m) * rstd * g[i];
    if (mean_out != nullptr) *mean_out = m;
    if (rstd_out != nullptr) *rstd_out = rstd;
}
#pragma GCC pop_options

void axpy(int64_t n, float a, const float* x, float* y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] += a * x[i];
}

void add(int64_t n, const float* x, float* y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] = x[i] + y[i];
}

// Separate multiplies and adds on purpose: contracting them into FMAs would change the reference's
// bits (GCC contracts vector-typed a * b + c under its default -ffp-contract=fast).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
void adamw(float* w, const float* g, float* m, float* v, int64_t n, const AdamWStep& s) {
    const __m256 b1 = _mm256_set1_ps(s.b1), b2 = _mm256_set1_ps(s.b2), ob1 = _mm256_set1_ps(s.one_b1),
                 ob2 = _mm256_set1_ps(s.one_b2), bc2 = _mm256_set1_ps(s.bc2_sqrt), eps = _mm256_set1_ps(s.eps),
                 nstep = _mm256_set1_ps(-s.step_size), decay = _mm256_set1_ps(s.decay);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 wv = _mm256_loadu_ps(w + j);
        const __m256 gv = _mm256_loadu_ps(g + j);
        if (s.wd) wv = _mm256_mul_ps(wv, decay);
        const __m256 mv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + j), b1), _mm256_mul_ps(ob1, gv));
        const __m256 vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + j), b2), _mm256_mul_ps(_mm256_mul_ps(ob2, gv), gv));
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
        _mm256_storeu_ps(m + j, mv);
        _mm256_storeu_ps(v + j, vv);
        _mm256_storeu_ps(w + j, _mm256_add_ps(wv, _mm256_mul_ps(nstep, _mm256_div_ps(mv, denom))));
    }
    if (j < n) ref::adamw(w + j, g + j, m + j, v + j, n - j, s);
}
#pragma GCC pop_options

double sumsq(const float* x, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + 8);
        const __m256d a0 = _mm256_cvtps_pd(_mm256_castps256_ps128(a)), a1 = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
        const __m256d b0 = _mm256_cvtps_pd(_mm256_castps256_ps128(b)), b1 = _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1));
        s0 = _mm256_fmadd_pd(a0, a0, s0);
        s1 = _mm256_fmadd_pd(a1, a1, s1);
        s2 = _mm256_fmadd_pd(b0, b0, s2);
        s3 = _mm256_fmadd_pd(b1, b1, s3);
    }
    return hsum_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3))) + ref::sumsq(x + j, n - j);
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cs, const float* sn, bool interleaved) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        int64_t i = 0;
        if (interleaved) {
            // 4 pairs per vector: [a0 b0 a1 b1 ...] -> a' = a c - b s, b' = a s + b c.
            const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
            const __m256 alt = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
            for (; i + 4 <= half; i += 4) {
                const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cs + i)), dup);
                const __m256 s = _mm256_mul_ps(
                    _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sn + i)), dup), alt);
                const __m256 xv = _mm256_loadu_ps(v + 2 * i);
                const __m256 sw = _mm256_permute_ps(xv, 0xB1);  // [b0 a0 b1 a1 ...]
                _mm256_storeu_ps(v + 2 * i, _mm256_fmadd_ps(xv, c, _mm256_mul_ps(sw, s)));
            }
            for (; i < half; ++i) {
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cs[i] - b * sn[i];
                v[2 * i + 1] = a * sn[i] + b * cs[i];
            }
        } else {
            for (; i + 8 <= half; i += 8) {
                const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
                const __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + half);
                _mm256_storeu_ps(v + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
                _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
            }
            for (; i < half; ++i) {
                const float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = a * sn[i] + b * cs[i];
            }
        }
    }
}

// Attention for one query position, flash-decoding style: the query heads that share a KV head
// are processed together (each K/V row is read once for the whole group, which is what makes GQA
// cheap on memory), over chunks of kChunk positions with an online (running max) softmax.
constexpr int kMaxGroup = 8;
constexpr int kChunk = 64;

void attention_group(const float* q, const float* k, const float* v, int64_t n_kv, int64_t kv_stride,
                     int G, int64_t D, float scale, float* out) {
    alignas(32) float s[kMaxGroup][kChunk];
    float m[kMaxGroup], l[kMaxGroup];
    for (int h = 0; h < G; ++h) {
        m[h] = -__builtin_inff();
        l[h] = 0;
        fill_f32(out + h * D, D, 0.0f);
    }
    const int64_t D8 = D & ~int64_t{7};
    for (int64_t t0 = 0; t0 < n_kv; t0 += kChunk) {
        const int tc = static_cast<int>(min64(kChunk, n_kv - t0));
        // Scores, four positions at a time per head: four independent FMA chains (one chain per
        // position would be bound by FMA latency, not throughput, at head_dim 64). Heads go in
        // pairs where they can: each K row chunk loaded once for both (a multi-query group of 8
        // heads, as DeepSeek's MLA over its latent rows, otherwise streams the chunk's K rows from
        // L2 once per head). Per (head, position) the sums are the same, in the same order.
        auto finish4 = [&](int h, const float* qh, const float* const kk[4], __m256 a0, __m256 a1, __m256 a2, __m256 a3,
                           int t) {
            // [a0 a1 a2 a3] -> 4 sums in one xmm.
            const __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
            const __m256 hs = _mm256_hadd_ps(h01, h23);
            const __m128 r = _mm_add_ps(_mm256_castps256_ps128(hs), _mm256_extractf128_ps(hs, 1));
            alignas(16) float sc[4];
            _mm_store_ps(sc, r);
            for (int j = 0; j < 4; ++j) {
                float v4 = sc[j];
                for (int64_t d = D8; d < D; ++d) v4 += qh[d] * kk[j][d];
                s[h][t + j] = v4 * scale;
            }
        };
        auto score1 = [&](int h, const float* qh, int t) {
            const float* kt = k + (t0 + t) * kv_stride;
            __m256 acc = _mm256_setzero_ps();
            for (int64_t d = 0; d < D8; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + d), _mm256_loadu_ps(kt + d), acc);
            float sc = hsum(acc);
            for (int64_t d = D8; d < D; ++d) sc += qh[d] * kt[d];
            s[h][t] = sc * scale;
        };
        int h = 0;
        for (; h + 2 <= G; h += 2) {
            const float* qa = q + h * D;
            const float* qb = qa + D;
            int t = 0;
            for (; t + 4 <= tc; t += 4) {
                const float* k0 = k + (t0 + t) * kv_stride;
                const float* const kk[4] = {k0, k0 + kv_stride, k0 + 2 * kv_stride, k0 + 3 * kv_stride};
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int64_t d = 0; d < D8; d += 8) {
                    const __m256 qva = _mm256_loadu_ps(qa + d), qvb = _mm256_loadu_ps(qb + d);
                    __m256 kv = _mm256_loadu_ps(kk[0] + d);
                    a0 = _mm256_fmadd_ps(qva, kv, a0);
                    b0 = _mm256_fmadd_ps(qvb, kv, b0);
                    kv = _mm256_loadu_ps(kk[1] + d);
                    a1 = _mm256_fmadd_ps(qva, kv, a1);
                    b1 = _mm256_fmadd_ps(qvb, kv, b1);
                    kv = _mm256_loadu_ps(kk[2] + d);
                    a2 = _mm256_fmadd_ps(qva, kv, a2);
                    b2 = _mm256_fmadd_ps(qvb, kv, b2);
                    kv = _mm256_loadu_ps(kk[3] + d);
                    a3 = _mm256_fmadd_ps(qva, kv, a3);
                    b3 = _mm256_fmadd_ps(qvb, kv, b3);
                }
                finish4(h, qa, kk, a0, a1, a2, a3, t);
                finish4(h + 1, qb, kk, b0, b1, b2, b3, t);
            }
            for (; t < tc; ++t) {
                score1(h, qa, t);
                score1(h + 1, qb, t);
            }
        }
        for (; h < G; ++h) {
            const float* qh = q + h * D;
            int t = 0;
            for (; t + 4 <= tc; t += 4) {
                const float* k0 = k + (t0 + t) * kv_stride;
                const float* const kk[4] = {k0, k0 + kv_stride, k0 + 2 * kv_stride, k0 + 3 * kv_stride};
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t d = 0; d < D8; d += 8) {
                    const __m256 qv = _mm256_loadu_ps(qh + d);
                    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kk[0] + d), a0);
                    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kk[1] + d), a1);
                    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kk[2] + d), a2);
                    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kk[3] + d), a3);
                }
                finish4(h, qh, kk, a0, a1, a2, a3, t);
            }
            for (; t < tc; ++t) score1(h, qh, t);
        }
        // Online softmax update.
        for (int h = 0; h < G; ++h) {
            const float mc = max_of(s[h], tc);
            const float mnew = maxf(m[h], mc);
            if (mnew > m[h] && l[h] > 0) {
                const float corr = expf(m[h] - mnew);
                l[h] *= corr;
                scale_inplace(out + h * D, D, corr);
            }
            m[h] = mnew;
            l[h] += exp_shift_sum(s[h], tc, mnew);
        }
        // Weighted values: per head, up to 8 output vectors held in registers over the chunk's
        // positions (independent chains; V rows stay in L1 across the group's heads). Where a
        // head's output is done in 64-wide blocks, heads go in pairs, 32 values at a time: each
        // V chunk loaded once for both, the same sums in the same order per output value.
        const int64_t D64 = D8 / 64 * 64;
        int hp = 0;
        for (; hp + 2 <= G; hp += 2) {
            float* oa = out + hp * D;
            float* ob = oa + D;
            for (int64_t d = 0; d < D64; d += 32) {
                __m256 x[4], y[4];
                for (int j = 0; j < 4; ++j) {
                    x[j] = _mm256_loadu_ps(oa + d + 8 * j);
                    y[j] = _mm256_loadu_ps(ob + d + 8 * j);
                }
                for (int t = 0; t < tc; ++t) {
                    const float* vt = v + (t0 + t) * kv_stride + d;
                    const __m256 pa = _mm256_broadcast_ss(&s[hp][t]), pb = _mm256_broadcast_ss(&s[hp + 1][t]);
                    for (int j = 0; j < 4; ++j) {
                        const __m256 vv = _mm256_loadu_ps(vt + 8 * j);
                        x[j] = _mm256_fmadd_ps(pa, vv, x[j]);
                        y[j] = _mm256_fmadd_ps(pb, vv, y[j]);
                    }
                }
                for (int j = 0; j < 4; ++j) {
                    _mm256_storeu_ps(oa + d + 8 * j, x[j]);
                    _mm256_storeu_ps(ob + d + 8 * j, y[j]);
                }
            }
        }
        for (int h = 0; h < G; ++h) {
            float* oh = out + h * D;
            int64_t d = h < hp ? D64 : 0;  // paired heads: the 64-wide blocks are done
            for (; d + 64 <= D8; d += 64) {
                __m256 o[8];
                for (int j = 0; j < 8; ++j) o[j] = _mm256_loadu_ps(oh + d + 8 * j);
                for (int t = 0; t < tc; ++t) {
                    const float* vt = v + (t0 + t) * kv_stride + d;
                    const __m256 p = _mm256_broadcast_ss(&s[h][t]);
                    for (int j = 0; j < 8; ++j) o[j] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 8 * j), o[j]);
                }
                for (int j = 0; j < 8; ++j) _mm256_storeu_ps(oh + d + 8 * j, o[j]);
            }
            for (; d < D8; d += 8) {
                __m256 o0 = _mm256_loadu_ps(oh + d), o1 = _mm256_setzero_ps();
                int t = 0;
                for (; t + 2 <= tc; t += 2) {
                    o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&s[h][t]), _mm256_loadu_ps(v + (t0 + t) * kv_stride + d), o0);
                    o1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&s[h][t + 1]),
                                         _mm256_loadu_ps(v + (t0 + t + 1) * kv_stride + d), o1);
                }
                if (t < tc) o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&s[h][t]), _mm256_loadu_ps(v + (t0 + t) * kv_stride + d), o0);
                _mm256_storeu_ps(oh + d, _mm256_add_ps(o0, o1));
            }
            for (; d < D; ++d) {
                float a = oh[d];
                for (int t = 0; t < tc; ++t) a += s[h][t] * v[(t0 + t) * kv_stride + d];
                oh[d] = a;
            }
        }
    }
    for (int h = 0; h < G; ++h) scale_inplace(out + h * D, D, 1.0f / l[h]);
}

void attention(const float* q, const float* k, const float* v, int64_t n_kv, int64_t kv_stride, int64_t H,
               int64_t H_kv, int64_t D, float scale, float* out, float* /*scratch*/) {
    if (n_kv <= 0) {
        fill_f32(out, H * D, 0.0f);
        return;
    }
    const int64_t group = H / H_kv;
    for (int64_t g = 0; g < H_kv; ++g) {
        for (int64_t h0 = 0; h0 < group; h0 += kMaxGroup) {
            const int G = static_cast<int>(min64(kMaxGroup, group - h0));
            const int64_t h = g * group + h0;
            attention_group(q + h * D, k + g * D, v + g * D, n_kv, kv_stride, G, D, scale, out + h * D);
        }
    }
}

}  // namespace

void register_ops(KernelTable& t) {
    t.rmsnorm = rmsnorm;
    t.softmax = softmax;
    t.swiglu = swiglu;
    t.act = x86::act<ActLanes8>;
    t.layernorm = layernorm;
    t.axpy = axpy;
    t.add = add;
    t.adamw = adamw;
    t.sumsq = sumsq;
    t.rope = rope;
    t.attention = attention;
    t.attention_kv = x86::attention_kv<KvLanes8>;
}

}  // namespace llmforge::kernels::avx2
