#include "train/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::train {

namespace {

// n values as a product sees them: rounded to the tape's bf16/fp16 into transient scratch `slot`,
// or the values themselves in fp32. The rounded copies are made again in backward, so mixed
// precision keeps no extra activations (rounding is one cheap pass; a product is K times more work).
const float* product_input(Tape& t, const float* data, int64_t n, int slot) {
    if (t.precision == Precision::kFP32) return data;
    float* r = t.scratch(slot, n);
    round_to_precision(t.precision, data, r, n, t.pool());
    return r;
}

// Σ f(i) for i < n in double, in four interleaved partial sums added in a fixed order (the same
// value on every run and thread split): one chain of dependent adds ran at a quarter of the speed.
template <class F>
double sum4(int64_t n, F f) {
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; ++j) s[j] += f(i + j);
    for (; i < n; ++i) s[0] += f(i);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

// y (N, M) += bias (M) on every row.
void add_bias(ThreadPool& pool, Var bias, float* y, int64_t N, int64_t M) {
    LF_ASSERT(bias->numel == M);
    pool.run_range(N, 16, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < M; ++j) y[r * M + j] += bias->data[j];
    });
}

}  // namespace

void bias_grad(ThreadPool& pool, const float* dy, float* db, int64_t N, int64_t M) {
    pool.run_range(M, 64, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
            double s = 0;
            for (int64_t r = 0; r < N; ++r) s += dy[r * M + j];
            db[j] += static_cast<float>(s);
        }
    });
}

// ---- embedding ------------------------------------------------------------------------------

Var embedding(Tape& t, Var table, const int32_t* ids, int64_t n) {
    const int64_t C = table->shape.back();
    Var y = t.make({n, C}, needs_grad(t, {table}));
    t.pool().run_range(n, 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            std::memcpy(y->data + r * C, table->data + static_cast<int64_t>(ids[r]) * C, C * sizeof(float));
    });
    if (y->requires_grad) {
        t.on_backward([&t, y, table, ids, n, C] {
            if (y->grad == nullptr) return;
            float* dt = t.grad(table);
            // Split by columns so two rows with the same id never race.
            t.pool().run_range(C, 16, [&](int64_t c0, int64_t c1) {
                for (int64_t r = 0; r < n; ++r) {
                    float* dst = dt + static_cast<int64_t>(ids[r]) * C;
                    const float* src = y->grad + r * C;
                    for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
                }
            });
        });
    }
    return y;
}

// ---- linear ---------------------------------------------------------------------------------

// bf16 precision on a CPU with AMX: a trainable weight's products on bf16 tiles
// (kernels/cpu/gemm_bf16.h), the weight packed from its current f32 master at each use (so the
// bf16 copy always follows the optimiser), inputs rounded inside the products: the same rounded
// operands as the sgemm path, summed in f32 in the tiles' order.
namespace {
bool trainable_tiles(const Tape& t) { return t.precision == Precision::kBF16 && kernels::bf16_gemm_available(); }
}  // namespace

Var linear(Tape& t, Var x, Var w, Var bias) {
    const int64_t K = x->shape.back(), N = rows_of(x), M = w->shape[0];
    LF_ASSERT(w->shape.size() == 2 && w->shape[1] == K);
    ThreadPool& pool = t.pool();
    Var y = t.make({N, M}, needs_grad(t, {x, w, bias}));
    const bool tiles = trainable_tiles(t);
    // In bf16/fp16 the products see rounded inputs (product_input).
    auto rounded = [&t](Var v, int slot) { return product_input(t, v->data, v->numel, slot); };
    if (tiles) {
        kernels::pack_bf16_into(t.pack_buffer(), w->data, K, M, K, true, &pool);
        kernels::gemm_bf16(x->data, K, N, t.pack_buffer(), y->data, M, false, &pool);
    } else {
        kernels::sgemm(pool, false, true, N, M, K, 1.0f, rounded(x, 0), K, rounded(w, 1), K, 0.0f, y->data, M);
    }
    if (bias != nullptr) add_bias(pool, bias, y->data, N, M);
    if (y->requires_grad) {
        t.on_backward([&t, x, w, bias, y, N, M, K, rounded, tiles] {
            if (y->grad == nullptr) return;
            ThreadPool& pool = t.pool();
            if (tiles) {
                if (x->requires_grad) {  // dx (N, K) += dy (N, M) · w (M, K)
                    kernels::pack_bf16_into(t.pack_buffer(), w->data, K, M, K, false, &pool);
                    kernels::gemm_bf16(y->grad, M, N, t.pack_buffer(), t.grad(x), K, true, &pool);
                }
                if (w->requires_grad)  // dw (M, K) += dy^T (M, N) · x (N, K)
                    kernels::gemm_bf16_tn(y->grad, M, x->data, K, N, M, K, t.grad(w), K, true, &pool);
            } else {
                const float* g = product_input(t, y->grad, y->numel, 2);
                if (x->requires_grad)  // dx (N, K) += dy (N, M) · w (M, K)
                    kernels::sgemm(pool, false, false, N, K, M, 1.0f, g, M, rounded(w, 1), K, 1.0f, t.grad(x), K);
                if (w->requires_grad)  // dw (M, K) += dy^T (M, N) · x (N, K)
                    kernels::sgemm(pool, true, false, M, K, N, 1.0f, g, M, rounded(x, 0), K, 1.0f, t.grad(w), K);
            }
            if (bias != nullptr && bias->requires_grad) bias_grad(pool, y->grad, t.grad(bias), N, M);
        });
    }
    return y;
}

// ---- rmsnorm --------------------------------------------------------------------------------

Var linear_into(Tape& t, Var y, Var x, Var w, float scale) {
    const int64_t K = x->shape.back(), N = rows_of(x), M = w->shape[0];
    LF_ASSERT(w->shape.size() == 2 && w->shape[1] == K && rows_of(y) == N && y->shape.back() == M);
    ThreadPool& pool = t.pool();
    auto rounded = [&t](Var v, int slot) { return product_input(t, v->data, v->numel, slot); };
    kernels::sgemm(pool, false, true, N, M, K, scale, rounded(x, 0), K, rounded(w, 1), K, 1.0f, y->data, M);
    if (needs_grad(t, {x, w})) {
        y->requires_grad = true;
        t.on_backward([&t, x, w, y, N, M, K, scale, rounded] {
            if (y->grad == nullptr) return;
            ThreadPool& pool = t.pool();
            const float* g = product_input(t, y->grad, y->numel, 2);
            if (x->requires_grad)  // dx (N, K) += scale · dy (N, M) · w (M, K)
                kernels::sgemm(pool, false, false, N, K, M, scale, g, M, rounded(w, 1), K, 1.0f, t.grad(x), K);
            if (w->requires_grad)  // dw (M, K) += scale · dy^T (M, N) · x (N, K)
                kernels::sgemm(pool, true, false, M, K, N, scale, g, M, rounded(x, 0), K, 1.0f, t.grad(w), K);
        });
    }
    return y;
}

// (B·(N+T), C): the N rows of p before each sequence's T rows of `rows`.
Var prepend_rows(Tape& t, Var p, Var rows, int64_t B) {
    const int64_t C = rows->shape.back(), N = p->numel / C, T = rows->numel / C / B;
    LF_ASSERT(p->shape.back() == C && B * T * C == rows->numel);
    Var y = t.make({B * (N + T), C}, needs_grad(t, {p, rows}));
    const size_t nb = static_cast<size_t>(C) * sizeof(float);
    for (int64_t b = 0; b < B; ++b) {
        std::memcpy(y->data + b * (N + T) * C, p->data, N * nb);
        std::memcpy(y->data + (b * (N + T) + N) * C, rows->data + b * T * C, T * nb);
    }
    if (y->requires_grad) {
        t.on_backward([&t, p, rows, y, B, N, T, C] {
            if (y->grad == nullptr) return;
            if (p->requires_grad) {
                float* d = t.grad(p);
                for (int64_t b = 0; b < B; ++b)  // batch order fixed: the same sum for any thread count
                    for (int64_t i = 0; i < N * C; ++i) d[i] += y->grad[b * (N + T) * C + i];
            }
            if (rows->requires_grad) {
                float* d = t.grad(rows);
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t i = 0; i < T * C; ++i) d[b * T * C + i] += y->grad[(b * (N + T) + N) * C + i];
            }
        });
    }
    return y;
}

Var insert_rows(Tape& t, Var rows, Var extra, int64_t B, const int32_t* at_in) {
    const int64_t C = rows->shape.back(), T = rows->numel / C / B, N = extra->numel / C / B;
    LF_ASSERT(extra->shape.back() == C && B * T * C == rows->numel && B * N * C == extra->numel);
    std::vector<int32_t> at(at_in, at_in + B);
    Var y = t.make({B * (N + T), C}, needs_grad(t, {rows, extra}));
    const size_t nb = static_cast<size_t>(C) * sizeof(float);
    // Sequence b's output rows: its rows [0, a), extra's N rows, its rows [a, T).
    for (int64_t b = 0; b < B; ++b) {
        const int64_t a = at[static_cast<size_t>(b)];
        LF_ASSERT(a >= 0 && a <= T);
        float* out = y->data + b * (N + T) * C;
        std::memcpy(out, rows->data + b * T * C, static_cast<size_t>(a) * nb);
        std::memcpy(out + a * C, extra->data + b * N * C, static_cast<size_t>(N) * nb);
        std::memcpy(out + (a + N) * C, rows->data + (b * T + a) * C, static_cast<size_t>(T - a) * nb);
    }
    if (y->requires_grad) {
        t.on_backward([&t, rows, extra, y, B, N, T, C, at] {
            if (y->grad == nullptr) return;
            for (int64_t b = 0; b < B; ++b) {
                const int64_t a = at[static_cast<size_t>(b)];
                const float* g = y->grad + b * (N + T) * C;
                auto add = [](float* d, const float* s, int64_t n) {
                    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
                };
                if (rows->requires_grad) {
                    float* d = t.grad(rows) + b * T * C;
                    add(d, g, a * C);
                    add(d + a * C, g + (a + N) * C, (T - a) * C);
                }
                if (extra->requires_grad) add(t.grad(extra) + b * N * C, g + a * C, N * C);
            }
        });
    }
    return y;
}

Var rmsnorm(Tape& t, Var x, Var g, float eps) {
    const int64_t C = x->shape.back(), N = rows_of(x);
    LF_ASSERT(g->numel == C);
    Var y = t.make(x->shape, needs_grad(t, {x, g}));
    float* rstd = t.buffer(N);  // (N)
    t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const float* xr = x->data + r * C;
            float* yr = y->data + r * C;
            const double ss = sum4(C, [xr](int64_t c) { return static_cast<double>(xr[c]) * xr[c]; });
            const float rs = static_cast<float>(1.0 / std::sqrt(ss / C + eps));
            rstd[r] = rs;
            for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * rs * g->data[c];
        }
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, g, y, rstd, N, C] {
            if (y->grad == nullptr) return;
            const float* dy = y->grad;
            if (x->requires_grad) {
                float* dx = t.grad(x);
                t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
                    for (int64_t r = b; r < e; ++r) {
                        const float* xr = x->data + r * C;
                        const float* dyr = dy + r * C;
                        const float rs = rstd[r];
                        const float* gd = g->data;  // Σ (dy·g)·x̂ = rs · Σ dy·g·x
                        const double dot = rs * sum4(C, [dyr, gd, xr](int64_t c) {
                            return static_cast<double>(dyr[c] * gd[c]) * xr[c];
                        });
                        const float m = static_cast<float>(dot / C);
                        float* dxr = dx + r * C;
                        for (int64_t c = 0; c < C; ++c) dxr[c] += rs * (dyr[c] * g->data[c] - xr[c] * rs * m);
                    }
                });
            }
            if (g->requires_grad) {
                float* dg = t.grad(g);
                t.pool().run_range(C, 16, [&](int64_t b, int64_t e) {
                    for (int64_t c = b; c < e; ++c) {
                        double s = 0;
                        for (int64_t r = 0; r < N; ++r) s += static_cast<double>(dy[r * C + c]) * x->data[r * C + c] * rstd[r];
                        dg[c] += static_cast<float>(s);
                    }
                });
            }
        });
    }
    return y;
}

// ---- rope -----------------------------------------------------------------------------------

namespace {

// Rotates every head of rows [b, e) of x into y by +angle (sign = 1) or -angle (sign = -1);
// accumulate: y += rot(x) instead of y = rot(x).
void rope_rows(const float* x, float* y, int64_t b, int64_t e, int64_t width, int64_t D, const int32_t* pos,
               const float* cos, const float* sin, bool interleaved, float sign, bool accumulate) {
    const int64_t half = D / 2;
    for (int64_t r = b; r < e; ++r) {
        const float* cs = cos + static_cast<int64_t>(pos[r]) * half;
        const float* sn = sin + static_cast<int64_t>(pos[r]) * half;
        for (int64_t h0 = 0; h0 < width; h0 += D) {
            const float* xh = x + r * width + h0;
            float* yh = y + r * width + h0;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
                const float c = cs[i], s = sign * sn[i];
                const float a0 = xh[i0] * c - xh[i1] * s;
                const float a1 = xh[i0] * s + xh[i1] * c;
                if (accumulate) {
                    yh[i0] += a0, yh[i1] += a1;
                } else {
                    yh[i0] = a0, yh[i1] = a1;
                }
            }
        }
    }
}

}  // namespace

Var rope(Tape& t, Var x, int64_t head_dim, const int32_t* pos, const float* cos, const float* sin,
         bool interleaved, bool in_place) {
    const int64_t W = x->shape.back(), N = rows_of(x);
    LF_ASSERT(W % head_dim == 0 && head_dim % 2 == 0);
    if (in_place) {
        // rope_rows reads both values of a pair before writing them, so src == dst is safe.
        t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
            rope_rows(x->data, x->data, b, e, W, head_dim, pos, cos, sin, interleaved, 1.0f, false);
        });
        if (needs_grad(t, {x})) {
            // x now stands for the rotated values: its gradient arrives as d(rotated) and leaves,
            // rotated back, as d(x) for the closures that ran before this one in forward.
            t.on_backward([&t, x, W, N, head_dim, pos, cos, sin, interleaved] {
                if (x->grad == nullptr) return;
                t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
                    rope_rows(x->grad, x->grad, b, e, W, head_dim, pos, cos, sin, interleaved, -1.0f, false);
                });
            });
        }
        return x;
    }
    Var y = t.make(x->shape, needs_grad(t, {x}));
    t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
        rope_rows(x->data, y->data, b, e, W, head_dim, pos, cos, sin, interleaved, 1.0f, false);
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, y, W, N, head_dim, pos, cos, sin, interleaved] {
            if (y->grad == nullptr) return;
            float* dx = t.grad(x);
            // The rotation is orthogonal: its transpose rotates by the opposite angle.
            t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
                rope_rows(y->grad, dx, b, e, W, head_dim, pos, cos, sin, interleaved, -1.0f, true);
            });
        });
    }
    return y;
}

// ---- attention ------------------------------------------------------------------------------

namespace {

// Causal attention works in blocks of kAttnBlock query rows: block r (rows i0..i1-1) only needs
// key columns 0..i1-1, so the masked upper triangle beyond the diagonal blocks is neither computed
// nor stored (about half the products and half the saved probabilities at T = 256). Why 64: at
// head sizes 64-128 smaller blocks skip a little more of the triangle but make the products too
// small for the sgemm to run near its peak.
constexpr int64_t kAttnBlock = 64;

// The saved probabilities of one (sequence, head) in block rows: block r is a (rows_r, i1_r) matrix
// with leading dimension i1_r, stored one after another. Only the last block can be short, so
// block r starts at kAttnBlock² · r(r+1)/2.
struct AttnBlocks {
    int64_t T, n;  // positions, number of blocks
    explicit AttnBlocks(int64_t T_) : T(T_), n((T_ + kAttnBlock - 1) / kAttnBlock) {}
    int64_t i0(int64_t r) const { return r * kAttnBlock; }
    int64_t i1(int64_t r) const { return std::min(T, (r + 1) * kAttnBlock); }
    int64_t offset(int64_t r) const { return kAttnBlock * kAttnBlock * r * (r + 1) / 2; }
    int64_t size() const { return offset(n - 1) + (i1(n - 1) - i0(n - 1)) * T; }  // floats
};

}  // namespace

Var attention(Tape& t, Var q, Var k, Var v, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t W,
              float scale, const int32_t* doc_start) {
    // Keys have head size D, values (and the output) Dv: VD = H_kv·Dv, OD = H·Dv.
    const int64_t HD = q->shape.back(), D = HD / H, KD = Hkv * D, VD = v->shape.back(), Dv = VD / Hkv, OD = H * Dv;
    LF_ASSERT(rows_of(q) == B * T && k->shape.back() == KD && VD % Hkv == 0 && H % Hkv == 0);
    const int64_t group = H / Hkv;
    if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(D));
    // Row i of sequence b reads columns lo(b, i)..i; the rest of its block row of probabilities
    // stays 0, so backward (which multiplies by them) needs no mask of its own.
    auto lo = [W, T, doc_start](int64_t b, int64_t i) {
        const int64_t w0 = W > 0 ? std::max<int64_t>(0, i - W + 1) : 0;
        if (doc_start == nullptr) return w0;
        const int64_t d0 = doc_start[b * T + i];
        LF_ASSERT(d0 >= 0 && d0 <= i);
        return std::max(w0, d0);
    };
    const AttnBlocks blk(T);
    const int64_t PT = blk.size();
    Var o = t.make({B * T, OD}, needs_grad(t, {q, k, v}));
    // Softmax probabilities, kept for backward: (B, H) block-row lower triangles (AttnBlocks), PT
    // floats each; row i holds columns 0..i1(block of i)-1, valid (non-zero) in lo..i. A node (no
    // gradient of its own), so Tape::store_bf16 can keep it in bf16 once the layer is done.
    Var probs = t.make({B * H * PT}, false);
    const kernels::KernelTable& kt = kernels::kernels();
    t.pool().run(B * H, [&](int64_t bh, int) {
        const int64_t b = bh / H, h = bh % H, g = h / group;
        const float* qh = q->data + b * T * HD + h * D;
        const float* kg = k->data + b * T * KD + g * D;
        const float* vg = v->data + b * T * VD + g * Dv;
        float* oh = o->data + b * T * OD + h * Dv;
        for (int64_t r = 0; r < blk.n; ++r) {
            const int64_t i0 = blk.i0(r), i1 = blk.i1(r);
            float* p = probs->data + bh * PT + blk.offset(r);  // (i1 - i0, i1)
            kernels::sgemm(false, true, i1 - i0, i1, D, scale, qh + i0 * HD, HD, kg, KD, 0.0f, p, i1);  // scores
            for (int64_t i = i0; i < i1; ++i) {
                float* row = p + (i - i0) * i1;
                const int64_t j0 = lo(b, i);
                kt.softmax(row + j0, i - j0 + 1);
                std::fill(row, row + j0, 0.0f);
                std::fill(row + i + 1, row + i1, 0.0f);
            }
            kernels::sgemm(false, false, i1 - i0, Dv, i1, 1.0f, p, i1, vg, VD, 0.0f, oh + i0 * OD, OD);
        }
    });
    if (o->requires_grad) {
        t.on_backward([&t, q, k, v, o, probs, blk, PT, B, T, H, Hkv, D, HD, KD, Dv, VD, OD, group, scale] {
            if (o->grad == nullptr) return;
            float* dq = t.grad(q);
            float* dk = t.grad(k);
            float* dv = t.grad(v);
            // One work item per (sequence, kv head): the heads of a group write the same dk/dv rows.
            t.pool().run(B * Hkv, [&](int64_t bg, int) {
                const int64_t b = bg / Hkv, g = bg % Hkv;
                thread_local std::vector<float> dp;  // (rows, i1) dP of one block row, then dS in place
                dp.resize(static_cast<size_t>(kAttnBlock * T));
                const float* kg = k->data + b * T * KD + g * D;
                const float* vg = v->data + b * T * VD + g * Dv;
                float* dkg = dk + b * T * KD + g * D;
                float* dvg = dv + b * T * VD + g * Dv;
                for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                    const float* doh = o->grad + b * T * OD + h * Dv;
                    const float* qh = q->data + b * T * HD + h * D;
                    float* dqh = dq + b * T * HD + h * D;
                    for (int64_t r = 0; r < blk.n; ++r) {
                        const int64_t i0 = blk.i0(r), i1 = blk.i1(r), rows = i1 - i0;
                        const float* p = probs->data + (b * H + h) * PT + blk.offset(r);  // (rows, i1)
                        // dV[0:i1] += P^T dO[i0:i1] ; dP = dO[i0:i1] V[0:i1]^T
                        kernels::sgemm(true, false, i1, Dv, rows, 1.0f, p, i1, doh + i0 * OD, OD, 1.0f, dvg, VD);
                        kernels::sgemm(false, true, rows, i1, Dv, 1.0f, doh + i0 * OD, OD, vg, VD, 0.0f, dp.data(), i1);
                        for (int64_t i = i0; i < i1; ++i) {  // dS = P ⊙ (dP − Σ_j P dP)
                            float* dr = dp.data() + (i - i0) * i1;
                            const float* pr = p + (i - i0) * i1;
                            const float sf = static_cast<float>(
                                sum4(i + 1, [pr, dr](int64_t j) { return static_cast<double>(pr[j]) * dr[j]; }));
                            for (int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - sf);
                            for (int64_t j = i + 1; j < i1; ++j) dr[j] = 0.0f;
                        }
                        // dQ[i0:i1] += scale · dS K[0:i1] ; dK[0:i1] += scale · dS^T Q[i0:i1]
                        kernels::sgemm(false, false, rows, D, i1, scale, dp.data(), i1, kg, KD, 1.0f, dqh + i0 * HD, HD);
                        kernels::sgemm(true, false, i1, D, rows, scale, dp.data(), i1, qh + i0 * HD, HD, 1.0f, dkg, KD);
                    }
                }
            });
        });
    }
    return o;
}

// ---- swiglu ---------------------------------------------------------------------------------

Var swiglu(Tape& t, Var gate, Var up) {
    LF_ASSERT(gate->numel == up->numel);
    Var y = t.make(gate->shape, needs_grad(t, {gate, up}));
    const int64_t n = gate->numel;
    // The table's swiglu (vectorised exp): the scalar exp loop cost more than the products next to it.
    const kernels::KernelTable& kt = kernels::kernels();
    t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) { kt.swiglu(gate->data + b, up->data + b, y->data + b, e - b); });
    if (y->requires_grad) {
        t.on_backward([&t, gate, up, y, n] {
            if (y->grad == nullptr) return;
            float* dg = gate->requires_grad ? t.grad(gate) : nullptr;
            float* du = up->requires_grad ? t.grad(up) : nullptr;
            // silu(g) from the table (vectorised exp), then sigmoid(g) = silu(g) / g (0.5 at g = 0):
            // the loops below have no exp left and vectorise.
            const kernels::KernelTable& kt = kernels::kernels();
            t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) {
                thread_local std::vector<float> ones, silu;
                if (ones.size() < static_cast<size_t>(e - b)) ones.assign(static_cast<size_t>(e - b), 1.0f);
                silu.resize(static_cast<size_t>(e - b));
                const float* gd = gate->data + b;
                const float* ud = up->data + b;
                const float* dy = y->grad + b;
                float* sl = silu.data();
                kt.swiglu(gd, ones.data(), sl, e - b);
                if (dg) {
                    float* d = dg + b;
                    for (int64_t i = 0; i < e - b; ++i) {
                        const float gv = gd[i], zero = gv == 0.0f ? 1.0f : 0.0f;
                        const float s = sl[i] / (gv + zero) + 0.5f * zero;  // g = 0: 0 / 1 + 0.5
                        d[i] += dy[i] * ud[i] * s * (1.0f + gv * (1.0f - s));
                    }
                }
                if (du) {
                    float* d = du + b;
                    for (int64_t i = 0; i < e - b; ++i) d[i] += dy[i] * sl[i];
                }
            });
        });
    }
    return y;
}

// ---- add ------------------------------------------------------------------------------------

Var add(Tape& t, Var a, Var b) {
    LF_ASSERT(a->numel == b->numel);
    Var y = t.make(a->shape, needs_grad(t, {a, b}));
    const int64_t n = a->numel;
    t.pool().run_range(n, 1 << 14, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) y->data[i] = a->data[i] + b->data[i];
    });
    if (y->requires_grad) {
        t.on_backward([&t, a, b, y, n] {
            if (y->grad == nullptr) return;
            for (Var in : {a, b}) {
                if (!in->requires_grad) continue;
                float* d = t.grad(in);
                t.pool().run_range(n, 1 << 14, [&](int64_t s, int64_t e) {
                    for (int64_t i = s; i < e; ++i) d[i] += y->grad[i];
                });
            }
        });
    }
    return y;
}

Var add_scaled(Tape& t, Var a, Var b, float s) {
    LF_ASSERT(a->numel == b->numel);
    Var y = t.make(a->shape, needs_grad(t, {a, b}));
    const int64_t n = a->numel;
    for (int64_t i = 0; i < n; ++i) y->data[i] = a->data[i] + s * b->data[i];
    if (y->requires_grad) {
        t.on_backward([&t, a, b, y, n, s] {
            if (y->grad == nullptr) return;
            if (a->requires_grad) {
                float* d = t.grad(a);
                for (int64_t i = 0; i < n; ++i) d[i] += y->grad[i];
            }
            if (b->requires_grad) {
                float* d = t.grad(b);
                for (int64_t i = 0; i < n; ++i) d[i] += s * y->grad[i];
            }
        });
    }
    return y;
}

// ---- checkpoint ------------------------------------------------------------------------------

Var checkpoint(Tape& t, Var x, const std::function<Var(Tape&, Var)>& fn) {
    Tape& sub = t.sub();
    sub.precision = t.precision;
    sub.grad_enabled = false;
    Var xin = sub.make(x->shape, false);
    std::memcpy(xin->data, x->data, static_cast<size_t>(x->numel) * sizeof(float));
    Var out = fn(sub, xin);
    Var y = t.make(out->shape, needs_grad(t, {x}) || t.grad_enabled);
    std::memcpy(y->data, out->data, static_cast<size_t>(out->numel) * sizeof(float));
    sub.reset();
    if (y->requires_grad) {
        t.on_backward([&t, x, y, fn] {
            if (y->grad == nullptr) return;
            Tape& sub = t.sub();
            sub.precision = t.precision;
            sub.grad_enabled = true;
            sub.free_in_backward = t.free_in_backward;
            Var xin = sub.make(x->shape, true);
            xin->keep = true;  // its gradient is read after the sub-tape's backward
            std::memcpy(xin->data, x->data, static_cast<size_t>(x->numel) * sizeof(float));
            Var out = fn(sub, xin);
            std::memcpy(sub.grad(out), y->grad, static_cast<size_t>(y->numel) * sizeof(float));
            sub.backward(sub.make({1}, false), t.loss_seed());  // (the seed only for loss_seed())
            if (x->requires_grad) {
                float* dx = t.grad(x);
                const float* g = sub.grad(xin);
                for (int64_t i = 0; i < x->numel; ++i) dx[i] += g[i];
            }
            sub.reset();
        });
    }
    return y;
}

// ---- dropout --------------------------------------------------------------------------------

Var dropout(Tape& t, Var x, float p, uint64_t seed) {
    if (p <= 0.0f) return x;
    Var y = t.make(x->shape, needs_grad(t, {x}));
    const int64_t n = x->numel;
    const float keep = 1.0f / (1.0f - p);
    t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y->data[i] = uniform01(seed, i) < p ? 0.0f : x->data[i] * keep;
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, y, n, p, keep, seed] {
            if (y->grad == nullptr) return;
            float* dx = t.grad(x);
            t.pool().run_range(n, 1 << 14, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i)
                    if (!(uniform01(seed, i) < p)) dx[i] += y->grad[i] * keep;
            });
        });
    }
    return y;
}

// ---- cross-entropy --------------------------------------------------------------------------

Var cross_entropy(Tape& t, Var logits, const int32_t* targets, int64_t n) {
    const int64_t V = logits->shape.back();
    LF_ASSERT(rows_of(logits) == n);
    Var loss = t.make({1}, needs_grad(t, {logits}));
    const kernels::KernelTable& kt = kernels::kernels();
    std::vector<double> part(static_cast<size_t>(n));
    // -log softmax(row)[target]: the table's softmax (vectorised exp) on a copy of the row. A
    // target probability below 1e-30 loses precision in f32; that row is redone in double.
    t.pool().run_range(n, 4, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> tmp;
        tmp.resize(static_cast<size_t>(V));
        for (int64_t r = b; r < e; ++r) {
            if (targets[r] < 0) {  // not counted
                part[r] = 0.0;
                continue;
            }
            const float* row = logits->data + r * V;
            std::memcpy(tmp.data(), row, static_cast<size_t>(V) * sizeof(float));
            kt.softmax(tmp.data(), V);
            const float pt = tmp[targets[r]];
            if (pt > 1e-30f) {
                part[r] = -std::log(static_cast<double>(pt));
            } else {
                float mx = row[0];
                for (int64_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
                double s = 0;
                for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
                part[r] = mx + std::log(s) - row[targets[r]];
            }
        }
    });
    int64_t counted = 0;
    for (int64_t r = 0; r < n; ++r) counted += targets[r] >= 0;
    double total = 0;
    for (double v : part) total += v;  // fixed order: the same sum for any thread count
    loss->data[0] = counted > 0 ? static_cast<float>(total / static_cast<double>(counted)) : 0.0f;
    if (loss->requires_grad && counted > 0) {
        t.on_backward([&t, logits, loss, targets, n, V, counted] {
            if (loss->grad == nullptr) return;
            const kernels::KernelTable& kt = kernels::kernels();
            const float scale = loss->grad[0] / static_cast<float>(counted);
            if (t.free_in_backward && logits->grad == nullptr && !logits->keep && logits->param == nullptr) {
                // The logits are read by no closure after this one (the output product's backward
                // reads only their gradient): the gradient takes their buffer, so backward's peak
                // holds one (N, V) array instead of two.
                float* d = logits->data;
                t.pool().run_range(n, 4, [&](int64_t b, int64_t e) {
                    for (int64_t r = b; r < e; ++r) {
                        float* row = d + r * V;
                        if (targets[r] < 0) {  // ignored: zero gradient
                            std::memset(row, 0, static_cast<size_t>(V) * sizeof(float));
                            continue;
                        }
                        kt.softmax(row, V);
                        for (int64_t j = 0; j < V; ++j) row[j] *= scale;
                        row[targets[r]] -= scale;
                    }
                });
                logits->grad = d;
                logits->data = nullptr;
                return;
            }
            float* dl = t.grad(logits);
            // d logits = (softmax − onehot(target)) · dloss / (counted rows)
            t.pool().run_range(n, 4, [&](int64_t b, int64_t e) {
                thread_local std::vector<float> tmp;
                tmp.resize(static_cast<size_t>(V));
                for (int64_t r = b; r < e; ++r) {
                    if (targets[r] < 0) continue;  // ignored: zero gradient
                    std::memcpy(tmp.data(), logits->data + r * V, static_cast<size_t>(V) * sizeof(float));
                    kt.softmax(tmp.data(), V);
                    float* d = dl + r * V;
                    kt.axpy(V, scale, tmp.data(), d);
                    d[targets[r]] -= scale;
                }
            });
        });
    }
    return loss;
}

// ---- reshape --------------------------------------------------------------------------------

Var reshape(Tape& t, Var x, std::vector<int64_t> shape) {
    Var y = t.make(std::move(shape), needs_grad(t, {x}));
    LF_ASSERT(y->numel == x->numel);
    std::memcpy(y->data, x->data, static_cast<size_t>(x->numel) * sizeof(float));
    if (y->requires_grad) pass_gradient_through(t, x, y);
    return y;
}

void pass_gradient_through(Tape& t, Var x, Var y) {
    LF_ASSERT(x->numel == y->numel);
    t.on_backward([&t, x, y] {
        if (y->grad == nullptr) return;
        float* dx = t.grad(x);
        for (int64_t i = 0; i < x->numel; ++i) dx[i] += y->grad[i];
    });
}

// ---- frozen weights -------------------------------------------------------------------------

Var embedding_frozen(Tape& t, const Tensor& table, const int32_t* ids, int64_t n) {
    const int64_t C = table.shape().back();
    Var y = t.make({n, C}, false);
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(table.dtype())];
    LF_ASSERT(deq != nullptr);
    t.pool().run_range(n, 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) deq(table.row(ids[r]), y->data + r * C, C);
    });
    return y;
}

namespace {

// A frozen matrix the products can read where it lies: plain row-major f32 (no repacked rows), in
// fp32 precision (bf16/fp16 products need rounded copies).
bool frozen_direct(const Tape& t, const Tensor& w) {
    return t.precision == Precision::kFP32 && w.dtype() == DType::F32 && w.row_group() == 1 &&
           w.row_stride() == static_cast<size_t>(w.shape()[1]) * sizeof(float);
}

// Rows per block of a frozen matrix that has to be dequantised (or rounded): blocks of about
// kFrozenBlockFloats floats (4 MiB of scratch), in multiples of 64 rows and at least 256. Why this
// size: every block is one sgemm, and each re-reads the activations (forward: x is packed again per
// call; backward: dx (N, K) is read and written again per call), so fewer, larger blocks waste less;
// 4 MiB is still nothing next to the activations, and the block is dequantised once per use.
constexpr int64_t kFrozenBlockFloats = int64_t{1} << 20;
int64_t frozen_block_rows(int64_t K) {
    return std::max<int64_t>(256, (kFrozenBlockFloats / std::max<int64_t>(K, 1)) / 64 * 64);
}

// Calls fn(m0, rows, w_block) for blocks of frozen_block_rows(K) rows of w dequantised (and rounded
// to the tape's precision) into a transient f32 buffer: a frozen matrix never exists whole in f32.
// A bf16 (fp16) matrix in bf16 (fp16) precision needs no rounding: its values are already exact.
template <class Fn>
void frozen_blocks(Tape& t, const Tensor& w, int slot, Fn fn) {
    const int64_t M = w.shape()[0], K = w.shape()[1];
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(w.dtype())];
    LF_ASSERT(deq != nullptr && w.row_group() == 1);
    // Equal blocks (multiples of 64 rows) of at most about frozen_block_rows(K) rows.
    const int64_t max_rows = frozen_block_rows(K), n_blocks = (M + max_rows - 1) / max_rows;
    const int64_t block = std::min(M, ((M + n_blocks - 1) / n_blocks + 63) / 64 * 64);
    const bool exact = (t.precision == Precision::kBF16 && w.dtype() == DType::BF16) ||
                       (t.precision == Precision::kFP16 && w.dtype() == DType::F16);
    float* buf = t.scratch(slot, block * K);
    for (int64_t m0 = 0; m0 < M; m0 += block) {
        const int64_t rows = std::min(block, M - m0);
        t.pool().run_range(rows, 8, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) deq(w.row(m0 + r), buf + r * K, K);
        });
        if (t.precision != Precision::kFP32 && !exact) round_to_precision(t.precision, buf, buf, rows * K, t.pool());
        fn(m0, rows, static_cast<const float*>(buf));
    }
}

}  // namespace

namespace {

// bf16 precision with AMX: the frozen products on bf16 tiles.
bool frozen_tiles(const Tape& t, const Tensor& w) {
    return t.precision == Precision::kBF16 && w.row_group() == 1 && kernels::bf16_gemm_available();
}

// f32 and bf16 matrices are packed once (the packs are no bigger than the file's bytes per
// orientation); others (quantised, f16) per block and call.
bool frozen_packs_kept(const Tensor& w) {
    return (w.dtype() == DType::F32 || w.dtype() == DType::BF16) &&
           w.row_stride() == static_cast<size_t>(w.shape()[1]) * (w.dtype() == DType::F32 ? 4u : 2u);
}

// The packs kept in `cache`, made on first use.
std::shared_ptr<FrozenPacks> frozen_packs(const Tensor& w, std::shared_ptr<FrozenPacks>& cache) {
    if (!cache) {
        auto p = std::make_shared<FrozenPacks>();
        const int64_t M = w.shape()[0], K = w.shape()[1];
        for (bool fwd : {true, false}) {
            (fwd ? p->fwd : p->bwd) = w.dtype() == DType::F32 ? kernels::pack_bf16(w.ptr<float>(), K, M, K, fwd)
                                                               : kernels::pack_bf16(w.ptr<uint16_t>(), K, M, K, fwd);
        }
        cache = std::move(p);
    }
    return cache;
}

// The products of linear_frozen on the path it chose for w: forward, out (N, M) = in (N, K) · Wᵀ;
// backward, out (N, K) += in (N, M) · W. bf16 tiles (pk: the packs kept with the weight, else
// packed per block), or sgemm on the f32 matrix in place, or on dequantised (rounded) blocks.
void frozen_product(Tape& t, const Tensor& w, const FrozenPacks* pk, bool forward, const float* in, float* out,
                    int64_t N) {
    const int64_t M = w.shape()[0], K = w.shape()[1];
    ThreadPool& pool = t.pool();
    if (frozen_tiles(t, w)) {  // in is rounded inside the products
        if (pk != nullptr) {
            if (forward) kernels::gemm_bf16(in, K, N, pk->fwd, out, M, false, &pool);
            else kernels::gemm_bf16(in, M, N, pk->bwd, out, K, true, &pool);
            return;
        }
        frozen_blocks(t, w, 1, [&](int64_t m0, int64_t rows, const float* wb) {
            const kernels::PackedBf16 b = kernels::pack_bf16(wb, K, rows, K, forward);
            if (forward) kernels::gemm_bf16(in, K, N, b, out + m0, M, false, &pool);
            else kernels::gemm_bf16(in + m0, M, N, b, out, K, true, &pool);
        });
        return;
    }
    const float* r = product_input(t, in, N * (forward ? K : M), forward ? 0 : 2);
    if (frozen_direct(t, w)) {  // W read in place: one product each way (backward: k = M)
        if (forward) kernels::sgemm(pool, false, true, N, M, K, 1.0f, r, K, w.ptr<float>(), K, 0.0f, out, M);
        else kernels::sgemm(pool, false, false, N, K, M, 1.0f, r, M, w.ptr<float>(), K, 1.0f, out, K);
        return;
    }
    // out[:, m0:m0+rows] = in · W[m0:m0+rows]ᵀ; out += in[:, m0:m0+rows] · W[m0:m0+rows]
    frozen_blocks(t, w, 1, [&](int64_t m0, int64_t rows, const float* wb) {
        if (forward) kernels::sgemm(pool, false, true, N, rows, K, 1.0f, r, K, wb, K, 0.0f, out + m0, M);
        else kernels::sgemm(pool, false, false, N, K, rows, 1.0f, r + m0, M, wb, K, 1.0f, out, K);
    });
}

}  // namespace

Var linear_frozen(Tape& t, Var x, const Tensor& w, Var bias, std::shared_ptr<FrozenPacks>* packs) {
    const int64_t K = x->shape.back(), N = rows_of(x), M = w.shape()[0];
    LF_ASSERT(w.ndim() == 2 && w.shape()[1] == K);
    std::shared_ptr<FrozenPacks> pk;
    if (packs != nullptr && frozen_tiles(t, w) && frozen_packs_kept(w)) pk = frozen_packs(w, *packs);
    Var y = t.make({N, M}, needs_grad(t, {x, bias}));
    frozen_product(t, w, pk.get(), true, x->data, y->data, N);
    if (bias != nullptr) add_bias(t.pool(), bias, y->data, N, M);
    if (y->requires_grad) {
        const Tensor wt = w;  // keeps the mapping alive until backward
        t.on_backward([&t, x, wt, pk, bias, y, N, M] {
            if (y->grad == nullptr) return;
            if (x->requires_grad) frozen_product(t, wt, pk.get(), false, y->grad, t.grad(x), N);
            if (bias != nullptr && bias->requires_grad) bias_grad(t.pool(), y->grad, t.grad(bias), N, M);
        });
    }
    return y;
}

}  // namespace llmforge::train
