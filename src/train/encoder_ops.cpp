#include "train/encoder_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "train/ops.h"

namespace llmforge::train {


// ---- layernorm ------------------------------------------------------------------------------

Var layernorm(Tape& t, Var x, Var g, Var b, float eps) {
    const int64_t C = x->shape.back(), N = rows_of(x);
    LF_ASSERT(g->numel == C && (b == nullptr || b->numel == C));
    Var y = t.make(x->shape, needs_grad(t, {x, g, b}));
    float* mean = t.buffer(N);
    float* rstd = t.buffer(N);
    t.pool().run_range(N, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r)
            kernels::layernorm_row(x->data + r * C, g->data, b != nullptr ? b->data : nullptr, y->data + r * C, C, eps,
                                   &mean[r], &rstd[r]);
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, g, b, y, mean, rstd, N, C] {
            if (y->grad == nullptr) return;
            const float* dy = y->grad;
            if (x->requires_grad) {
                float* dx = t.grad(x);
                // x̂ = (x − μ)·r, dx̂ = dy·g:  dx = r · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)).
                t.pool().run_range(N, 16, [&](int64_t lo, int64_t hi) {
                    for (int64_t r = lo; r < hi; ++r) {
                        const float* xr = x->data + r * C;
                        const float* dyr = dy + r * C;
                        const float m = mean[r], rs = rstd[r];
                        double s1 = 0, s2 = 0;
                        for (int64_t c = 0; c < C; ++c) {
                            const double dh = static_cast<double>(dyr[c]) * g->data[c];
                            s1 += dh;
                            s2 += dh * (xr[c] - m) * rs;
                        }
                        const float a1 = static_cast<float>(s1 / C), a2 = static_cast<float>(s2 / C);
                        float* dxr = dx + r * C;
                        for (int64_t c = 0; c < C; ++c) {
                            const float xh = (xr[c] - m) * rs;
                            dxr[c] += rs * (dyr[c] * g->data[c] - a1 - xh * a2);
                        }
                    }
                });
            }
            if (g->requires_grad) {
                float* dg = t.grad(g);
                t.pool().run_range(C, 16, [&](int64_t lo, int64_t hi) {
                    for (int64_t c = lo; c < hi; ++c) {
                        double s = 0;
                        for (int64_t r = 0; r < N; ++r)
                            s += static_cast<double>(dy[r * C + c]) * ((x->data[r * C + c] - mean[r]) * rstd[r]);
                        dg[c] += static_cast<float>(s);
                    }
                });
            }
            if (b != nullptr && b->requires_grad) bias_grad(t.pool(), dy, t.grad(b), N, C);
        });
    }
    return y;
}

// ---- activation -----------------------------------------------------------------------------

Var activation(Tape& t, Var x, int kind) {
    Var y = t.make(x->shape, needs_grad(t, {x}));
    const int64_t n = x->numel;
    t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) { kernels::act_rows(kind, x->data + b, y->data + b, e - b); });
    if (y->requires_grad) {
        t.on_backward([&t, x, y, n, kind] {
            if (y->grad == nullptr || !x->requires_grad) return;
            float* dx = t.grad(x);
            t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) dx[i] += y->grad[i] * kernels::act_derivative(kind, x->data[i]);
            });
        });
    }
    return y;
}

// ---- bidirectional attention ------------------------------------------------------------------

Var attention_bidir(Tape& t, Var q, Var k, Var v, int64_t B, int64_t T, int64_t H, int64_t Hkv, float scale,
                    const int32_t* lengths, Var bias, const float* mask, int64_t n_mask, int64_t Tk) {
    if (Tk == 0) Tk = T;
    const int64_t HD = q->shape.back(), D = HD / H, KD = Hkv * D, VD = v->shape.back(), Dv = VD / Hkv, OD = H * Dv;
    LF_ASSERT(rows_of(q) == B * T && rows_of(k) == B * Tk && k->shape.back() == KD && VD % Hkv == 0 && H % Hkv == 0);
    const int64_t group = H / Hkv;
    if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(D));
    auto len = [lengths, Tk](int64_t b) {
        const int64_t n = lengths != nullptr ? lengths[b] : Tk;
        LF_ASSERT(n >= 1 && n <= Tk);
        return n;
    };
    LF_ASSERT(bias == nullptr || (bias->numel == H * T * T && Tk == T));
    LF_ASSERT(mask == nullptr || (n_mask > 0 && Tk == T));
    Var o = t.make({B * T, OD}, needs_grad(t, {q, k, v, bias}));
    // Softmax probabilities (B, H, T, Tk), kept for backward; key columns at and after the
    // sequence's length stay 0, so backward (which multiplies by them) needs no mask of its own.
    Var probs = t.make({B * H * T * Tk}, false);
    const kernels::KernelTable& kt = kernels::kernels();
    t.pool().run(B * H, [&](int64_t bh, int) {
        const int64_t b = bh / H, h = bh % H, g = h / group, L = len(b);
        float* p = probs->data + bh * T * Tk;
        kernels::sgemm(false, true, T, L, D, scale, q->data + b * T * HD + h * D, HD, k->data + b * Tk * KD + g * D, KD,
                       0.0f, p, Tk);
        const float* bh_bias = bias != nullptr ? bias->data + h * T * T : nullptr;
        const float* b_mask = mask != nullptr ? mask + (b % n_mask) * T * T : nullptr;
        for (int64_t i = 0; i < T; ++i) {
            float* row = p + i * Tk;
            if (bh_bias != nullptr)
                for (int64_t j = 0; j < L; ++j) row[j] += bh_bias[i * T + j];
            if (b_mask != nullptr)
                for (int64_t j = 0; j < L; ++j) row[j] += b_mask[i * T + j];
            kt.softmax(row, L);
            std::fill(row + L, row + Tk, 0.0f);
        }
        kernels::sgemm(false, false, T, Dv, L, 1.0f, p, Tk, v->data + b * Tk * VD + g * Dv, VD, 0.0f,
                       o->data + b * T * OD + h * Dv, OD);
    });
    if (o->requires_grad) {
        t.on_backward([&t, q, k, v, o, probs, bias, B, T, Tk, H, Hkv, D, HD, KD, Dv, VD, OD, group, scale, len] {
            if (o->grad == nullptr) return;
            float* dq = t.grad(q);
            float* dk = t.grad(k);
            float* dv = t.grad(v);
            // The bias's gradient is Σ over sequences of dS: each item keeps its dS, summed after in
            // sequence order (the same sum for any thread count).
            float* ds_all = bias != nullptr && bias->requires_grad ? t.buffer(B * H * T * T) : nullptr;
            // One work item per (sequence, kv head): the heads of a group write the same dk/dv rows.
            t.pool().run(B * Hkv, [&](int64_t bg, int) {
                const int64_t b = bg / Hkv, g = bg % Hkv, L = len(b);
                thread_local std::vector<float> dp;  // (T, L) dP, then dS in place
                dp.resize(static_cast<size_t>(T * Tk));
                const float* kg = k->data + b * Tk * KD + g * D;
                const float* vg = v->data + b * Tk * VD + g * Dv;
                float* dkg = dk + b * Tk * KD + g * D;
                float* dvg = dv + b * Tk * VD + g * Dv;
                for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                    const float* doh = o->grad + b * T * OD + h * Dv;
                    const float* qh = q->data + b * T * HD + h * D;
                    float* dqh = dq + b * T * HD + h * D;
                    const float* p = probs->data + (b * H + h) * T * Tk;  // (T, Tk), columns < L valid
                    // dV[0:L] += Pᵀ dO ; dP = dO V[0:L]ᵀ
                    kernels::sgemm(true, false, L, Dv, T, 1.0f, p, Tk, doh, OD, 1.0f, dvg, VD);
                    kernels::sgemm(false, true, T, L, Dv, 1.0f, doh, OD, vg, VD, 0.0f, dp.data(), Tk);
                    for (int64_t i = 0; i < T; ++i) {  // dS = P ⊙ (dP − Σ_j P dP)
                        float* dr = dp.data() + i * Tk;
                        const float* pr = p + i * Tk;
                        double sf = 0;
                        for (int64_t j = 0; j < L; ++j) sf += static_cast<double>(pr[j]) * dr[j];
                        for (int64_t j = 0; j < L; ++j) dr[j] = pr[j] * (dr[j] - static_cast<float>(sf));
                        if (ds_all != nullptr) {
                            float* keep = ds_all + ((b * H + h) * T + i) * T;
                            std::copy(dr, dr + L, keep);
                            std::fill(keep + L, keep + T, 0.0f);
                        }
                    }
                    // dQ += scale · dS K[0:L] ; dK[0:L] += scale · dSᵀ Q
                    kernels::sgemm(false, false, T, D, L, scale, dp.data(), Tk, kg, KD, 1.0f, dqh, HD);
                    kernels::sgemm(true, false, L, D, T, scale, dp.data(), Tk, qh, HD, 1.0f, dkg, KD);
                }
            });
            if (ds_all != nullptr) {
                float* db = t.grad(bias);
                t.pool().run_range(H * T * T, 256, [&](int64_t lo, int64_t hi) {
                    for (int64_t e = lo; e < hi; ++e) {  // e = (h, i, j)
                        const int64_t h = e / (T * T), ij = e % (T * T);
                        double s = 0;
                        for (int64_t b = 0; b < B; ++b) s += ds_all[(b * H + h) * T * T + ij];
                        db[e] += static_cast<float>(s);
                    }
                });
            }
        });
    }
    return o;
}

// ---- softmax rows, weighted sum ---------------------------------------------------------------

Var softmax_rows(Tape& t, Var x) {
    const int64_t C = x->shape.back(), N = rows_of(x);
    Var y = t.make(x->shape, needs_grad(t, {x}));
    std::memcpy(y->data, x->data, static_cast<size_t>(x->numel) * sizeof(float));
    const kernels::KernelTable& kt = kernels::kernels();
    for (int64_t r = 0; r < N; ++r) kt.softmax(y->data + r * C, C);
    if (y->requires_grad) {
        t.on_backward([&t, x, y, N, C] {
            if (y->grad == nullptr || !x->requires_grad) return;
            float* dx = t.grad(x);
            for (int64_t r = 0; r < N; ++r) {  // dx = y ⊙ (dy − Σ y·dy)
                const float* yr = y->data + r * C;
                const float* dyr = y->grad + r * C;
                double s = 0;
                for (int64_t c = 0; c < C; ++c) s += static_cast<double>(yr[c]) * dyr[c];
                for (int64_t c = 0; c < C; ++c) dx[r * C + c] += yr[c] * (dyr[c] - static_cast<float>(s));
            }
        });
    }
    return y;
}

Var weighted_sum(Tape& t, Var w, Var a, Var b) {
    const int64_t C = a->shape.back(), N = rows_of(a);
    LF_ASSERT(w->numel == 2 * N && b->numel == a->numel);
    Var y = t.make(a->shape, needs_grad(t, {w, a, b}));
    for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < C; ++c)
            y->data[r * C + c] = w->data[2 * r] * a->data[r * C + c] + w->data[2 * r + 1] * b->data[r * C + c];
    if (y->requires_grad) {
        t.on_backward([&t, w, a, b, y, N, C] {
            if (y->grad == nullptr) return;
            float* dw = w->requires_grad ? t.grad(w) : nullptr;
            float* da = a->requires_grad ? t.grad(a) : nullptr;
            float* db = b->requires_grad ? t.grad(b) : nullptr;
            for (int64_t r = 0; r < N; ++r) {
                const float* dy = y->grad + r * C;
                double s0 = 0, s1 = 0;
                for (int64_t c = 0; c < C; ++c) {
                    s0 += static_cast<double>(dy[c]) * a->data[r * C + c];
                    s1 += static_cast<double>(dy[c]) * b->data[r * C + c];
                    if (da != nullptr) da[r * C + c] += w->data[2 * r] * dy[c];
                    if (db != nullptr) db[r * C + c] += w->data[2 * r + 1] * dy[c];
                }
                if (dw != nullptr) dw[2 * r] += static_cast<float>(s0), dw[2 * r + 1] += static_cast<float>(s1);
            }
        });
    }
    return y;
}

// ---- class token, positions, first rows --------------------------------------------------------

Var class_row(Tape& t, Var x, Var w, int64_t B) {
    const int64_t C = x->shape.back(), T = rows_of(x) / B;
    LF_ASSERT(w->numel == C && B * T * C == x->numel);
    Var y = t.make(x->shape, needs_grad(t, {x, w}));
    std::memcpy(y->data, x->data, static_cast<size_t>(x->numel) * sizeof(float));
    for (int64_t b = 0; b < B; ++b) std::memcpy(y->data + b * T * C, w->data, static_cast<size_t>(C) * sizeof(float));
    if (y->requires_grad) {
        t.on_backward([&t, x, w, y, B, T, C] {
            if (y->grad == nullptr) return;
            if (x->requires_grad) {
                float* dx = t.grad(x);
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t i = (b * T + 1) * C; i < (b + 1) * T * C; ++i) dx[i] += y->grad[i];
            }
            if (w->requires_grad) {
                float* dw = t.grad(w);
                for (int64_t b = 0; b < B; ++b)  // batch order fixed
                    for (int64_t c = 0; c < C; ++c) dw[c] += y->grad[b * T * C + c];
            }
        });
    }
    return y;
}

Var add_positions(Tape& t, Var x, Var table, int64_t B, int64_t offset) {
    const int64_t C = x->shape.back(), T = rows_of(x) / B, P = table->numel / C;
    LF_ASSERT(table->shape.back() == C && B * T * C == x->numel && offset >= 0 && T + offset <= P);
    Var y = t.make(x->shape, needs_grad(t, {x, table}));
    const float* pos = table->data + offset * C;
    t.pool().run_range(B * T, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
            const float* pr = pos + (r % T) * C;
            for (int64_t c = 0; c < C; ++c) y->data[r * C + c] = x->data[r * C + c] + pr[c];
        }
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, table, y, B, T, C, offset] {
            if (y->grad == nullptr) return;
            if (x->requires_grad) {
                float* dx = t.grad(x);
                for (int64_t i = 0; i < x->numel; ++i) dx[i] += y->grad[i];
            }
            if (table->requires_grad) {
                float* dt = t.grad(table) + offset * C;
                t.pool().run_range(T, 4, [&](int64_t lo, int64_t hi) {
                    for (int64_t i = lo; i < hi; ++i)
                        for (int64_t b = 0; b < B; ++b)  // batch order fixed
                            for (int64_t c = 0; c < C; ++c) dt[i * C + c] += y->grad[(b * T + i) * C + c];
                });
            }
        });
    }
    return y;
}

Var add_row(Tape& t, Var x, Var table, int64_t row) {
    const int64_t C = x->shape.back(), N = rows_of(x);
    LF_ASSERT(table->shape.back() == C && row >= 0 && (row + 1) * C <= table->numel);
    Var y = t.make(x->shape, needs_grad(t, {x, table}));
    const float* v = table->data + row * C;
    for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < C; ++c) y->data[r * C + c] = x->data[r * C + c] + v[c];
    if (y->requires_grad) {
        t.on_backward([&t, x, table, y, row, N, C] {
            if (y->grad == nullptr) return;
            if (x->requires_grad) {
                float* dx = t.grad(x);
                for (int64_t i = 0; i < x->numel; ++i) dx[i] += y->grad[i];
            }
            if (table->requires_grad) bias_grad(t.pool(), y->grad, t.grad(table) + row * C, N, C);
        });
    }
    return y;
}

Var first_rows(Tape& t, Var x, int64_t B) {
    const int64_t C = x->shape.back(), T = rows_of(x) / B;
    LF_ASSERT(B * T * C == x->numel);
    Var y = t.make({B, C}, needs_grad(t, {x}));
    for (int64_t b = 0; b < B; ++b) std::memcpy(y->data + b * C, x->data + b * T * C, static_cast<size_t>(C) * sizeof(float));
    if (y->requires_grad) {
        t.on_backward([&t, x, y, B, T, C] {
            if (y->grad == nullptr || !x->requires_grad) return;
            float* dx = t.grad(x);
            for (int64_t b = 0; b < B; ++b)
                for (int64_t c = 0; c < C; ++c) dx[b * T * C + c] += y->grad[b * C + c];
        });
    }
    return y;
}

Var mean_rows(Tape& t, Var x, int64_t B) {
    const int64_t C = x->shape.back(), T = rows_of(x) / B;
    LF_ASSERT(B * T * C == x->numel && T > 0);
    Var y = t.make({B, C}, needs_grad(t, {x}));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            double s = 0;
            for (int64_t i = 0; i < T; ++i) s += x->data[(b * T + i) * C + c];
            y->data[b * C + c] = static_cast<float>(s / static_cast<double>(T));
        }
    if (y->requires_grad) {
        t.on_backward([&t, x, y, B, T, C] {
            if (y->grad == nullptr || !x->requires_grad) return;
            float* dx = t.grad(x);
            const float inv = 1.0f / static_cast<float>(T);
            for (int64_t b = 0; b < B; ++b)
                for (int64_t i = 0; i < T; ++i)
                    for (int64_t c = 0; c < C; ++c) dx[(b * T + i) * C + c] += y->grad[b * C + c] * inv;
        });
    }
    return y;
}

Var gather_rows(Tape& t, Var x, int64_t B, const int32_t* index, int64_t n_out) {
    const int64_t C = x->shape.back(), T = rows_of(x) / B;
    LF_ASSERT(B * T * C == x->numel);
    auto idx = std::make_shared<std::vector<int32_t>>(index, index + n_out);
    for (int32_t i : *idx) LF_ASSERT(i < T);
    Var y = t.make({B * n_out, C}, needs_grad(t, {x}));
    t.pool().run_range(B * n_out, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
            const int32_t src = (*idx)[r % n_out];
            float* yr = y->data + r * C;
            if (src < 0) {
                std::fill(yr, yr + C, 0.0f);
            } else {
                std::memcpy(yr, x->data + ((r / n_out) * T + src) * C, static_cast<size_t>(C) * sizeof(float));
            }
        }
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, y, B, T, C, n_out, idx] {
            if (y->grad == nullptr || !x->requires_grad) return;
            float* dx = t.grad(x);
            // Sequences in parallel; within one, rows in order (an index may repeat).
            t.pool().run(B, [&](int64_t b, int) {
                for (int64_t i = 0; i < n_out; ++i) {
                    const int32_t src = (*idx)[i];
                    if (src < 0) continue;
                    const float* g = y->grad + (b * n_out + i) * C;
                    float* d = dx + (b * T + src) * C;
                    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
                }
            });
        });
    }
    return y;
}

Var table_bias(Tape& t, Var table, const int32_t* index, int64_t G, int64_t H) {
    const int64_t P = table->numel / H;
    LF_ASSERT(table->shape.back() == H);
    auto idx = std::make_shared<std::vector<int32_t>>(index, index + G * G);
    for (int32_t i : *idx) LF_ASSERT(i >= 0 && i < P);
    Var y = t.make({H, G, G}, needs_grad(t, {table}));
    for (int64_t h = 0; h < H; ++h)
        for (int64_t e = 0; e < G * G; ++e) y->data[h * G * G + e] = table->data[(*idx)[e] * H + h];
    if (y->requires_grad) {
        t.on_backward([&t, table, y, G, H, idx] {
            if (y->grad == nullptr || !table->requires_grad) return;
            float* d = t.grad(table);
            for (int64_t h = 0; h < H; ++h)
                for (int64_t e = 0; e < G * G; ++e) d[(*idx)[e] * H + h] += y->grad[h * G * G + e];
        });
    }
    return y;
}

}  // namespace llmforge::train
