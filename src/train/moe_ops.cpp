#include "train/moe_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/random.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "model/moe.h"

namespace llmforge::train {

namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

// ---- column slices and concatenation ---------------------------------------------------------

Var columns(Tape& t, Var x, int64_t G, int64_t off, int64_t w) {
    const int64_t N = rows_of(x), W = x->shape.back() / G;
    LF_ASSERT(W * G == x->shape.back() && off >= 0 && w > 0 && off + w <= W);
    Var y = t.make({N, G * w}, needs_grad(t, {x}));
    t.pool().run_range(N, 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t g = 0; g < G; ++g)
                std::memcpy(y->data + (r * G + g) * w, x->data + r * G * W + g * W + off, w * sizeof(float));
    });
    if (y->requires_grad) {
        t.on_backward([&t, x, y, N, G, W, off, w] {
            if (y->grad == nullptr) return;
            float* dx = t.grad(x);
            t.pool().run_range(N, 64, [&](int64_t b, int64_t e) {
                for (int64_t r = b; r < e; ++r)
                    for (int64_t g = 0; g < G; ++g) {
                        const float* src = y->grad + (r * G + g) * w;
                        float* dst = dx + r * G * W + g * W + off;
                        for (int64_t i = 0; i < w; ++i) dst[i] += src[i];
                    }
            });
        });
    }
    return y;
}

Var concat_columns(Tape& t, Var a, Var b, int64_t G, bool b_shared) {
    const int64_t N = rows_of(a), wa = a->shape.back() / G, wb = b_shared ? b->shape.back() : b->shape.back() / G;
    LF_ASSERT(rows_of(b) == N && wa * G == a->shape.back() && (b_shared || wb * G == b->shape.back()));
    const int64_t W = wa + wb, bs = b_shared ? 0 : wb;  // b's group stride
    Var y = t.make({N, G * W}, needs_grad(t, {a, b}));
    t.pool().run_range(N, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t g = 0; g < G; ++g) {
                float* dst = y->data + r * G * W + g * W;
                std::memcpy(dst, a->data + r * G * wa + g * wa, wa * sizeof(float));
                std::memcpy(dst + wa, b->data + r * b->shape.back() + g * bs, wb * sizeof(float));
            }
    });
    if (y->requires_grad) {
        t.on_backward([&t, a, b, y, N, G, wa, wb, W, bs] {
            if (y->grad == nullptr) return;
            float* da = a->requires_grad ? t.grad(a) : nullptr;
            float* db = b->requires_grad ? t.grad(b) : nullptr;
            const int64_t bw = b->shape.back();
            t.pool().run_range(N, 64, [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r)
                    for (int64_t g = 0; g < G; ++g) {  // groups in order: a shared b's sum is fixed
                        const float* src = y->grad + r * G * W + g * W;
                        if (da)
                            for (int64_t i = 0; i < wa; ++i) da[r * G * wa + g * wa + i] += src[i];
                        if (db)
                            for (int64_t i = 0; i < wb; ++i) db[r * bw + g * bs + i] += src[wa + i];
                    }
            });
        });
    }
    return y;
}

// ---- routing ------------------------------------------------------------------------------------

MoeRoute moe_route(Tape& t, Var logits, const float* bias, const MoeSpec& m, int64_t batch, float aux_alpha) {
    const int64_t E = m.n_expert, K = m.n_used, N = rows_of(logits);
    LF_ASSERT(logits->shape.back() == E && batch > 0 && N % batch == 0);
    // The tape's buffers (reused step after step: no page faults) for the floats kept to backward.
    struct State {
        std::vector<int32_t> sel;
        float* scores = nullptr;  // (N, E) s
        float* aux_ds = nullptr;  // (N, E) d(aux)/d(s), with the α and 1/batch (null: no aux)
    };
    auto st = std::make_shared<State>();
    st->sel.resize(static_cast<size_t>(N * K));
    st->scores = t.buffer(N * E);
    MoeRoute out;
    out.weights = t.make({N, K}, needs_grad(t, {logits}));
    Var w = out.weights;
    t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
        std::vector<float> work(static_cast<size_t>(2 * E));
        for (int64_t i = b; i < e; ++i)
            route_experts(logits->data + i * E, bias, m, &st->sel[i * K], w->data + i * K, &st->scores[i * E],
                          work.data());
    });
    out.load.assign(static_cast<size_t>(E), 0);
    for (int32_t e : st->sel) ++out.load[e];
    if (aux_alpha > 0) {
        // Per sequence: f_i = E/(K·T)·count_i, P_i = mean_t s'_{t,i}, s' = s / Σ s; the loss α Σ f P
        // averaged over the sequences. d/ds'_{t,i} = α f_i / (T · batch), then through s' = s / Σ s.
        const int64_t T = N / batch;
        st->aux_ds = t.buffer(N * E);
        double total = 0;
        std::vector<double> f(static_cast<size_t>(E)), P(static_cast<size_t>(E));
        for (int64_t b = 0; b < batch; ++b) {
            std::fill(f.begin(), f.end(), 0.0);
            std::fill(P.begin(), P.end(), 0.0);
            for (int64_t i = b * T; i < (b + 1) * T; ++i) {
                for (int64_t k = 0; k < K; ++k) f[st->sel[i * K + k]] += 1.0;
                const float* s = &st->scores[i * E];
                double sum = 0;
                for (int64_t e = 0; e < E; ++e) sum += s[e];
                for (int64_t e = 0; e < E; ++e) P[e] += s[e] / sum;
            }
            double l = 0;
            for (int64_t e = 0; e < E; ++e) {
                f[e] *= static_cast<double>(E) / static_cast<double>(K * T);
                l += f[e] * P[e] / static_cast<double>(T);
            }
            total += aux_alpha * l;
            for (int64_t i = b * T; i < (b + 1) * T; ++i) {
                const float* s = &st->scores[i * E];
                double sum = 0, dot = 0;
                for (int64_t e = 0; e < E; ++e) sum += s[e];
                // ds'_e = α f_e / (T·batch); ds_j = (ds'_j - Σ_e ds'_e s'_e) / Σ s
                for (int64_t e = 0; e < E; ++e) dot += aux_alpha * f[e] / static_cast<double>(T * batch) * s[e] / sum;
                for (int64_t e = 0; e < E; ++e)
                    st->aux_ds[i * E + e] =
                        static_cast<float>((aux_alpha * f[e] / static_cast<double>(T * batch) - dot) / sum);
            }
        }
        out.aux = total / static_cast<double>(batch);
    }
    out.sel = std::shared_ptr<const std::vector<int32_t>>(st, &st->sel);
    if (w->requires_grad) {
        t.on_backward([&t, logits, w, st, m, N, E, K] {
            if (w->grad == nullptr && st->aux_ds == nullptr) return;
            if (!logits->requires_grad) return;
            float* dz = t.grad(logits);
            const float seed = t.loss_seed();
            t.pool().run_range(N, 16, [&](int64_t b, int64_t e) {
                std::vector<float> ds(static_cast<size_t>(E));
                for (int64_t i = b; i < e; ++i) {
                    const float* s = &st->scores[i * E];
                    const int32_t* sel = &st->sel[i * K];
                    std::fill(ds.begin(), ds.end(), 0.0f);
                    if (w->grad != nullptr) {
                        const float* dw = w->grad + i * K;
                        if (m.norm && K > 1) {
                            // w_k = scale · s_k / S, S = Σ_selected s: ds_j = scale/S · (dw_j - Σ_k dw_k s_k / S)
                            double S = 0, c = 0;
                            for (int64_t k = 0; k < K; ++k) S += s[sel[k]];
                            S += 1e-20;
                            for (int64_t k = 0; k < K; ++k) c += static_cast<double>(dw[k]) * s[sel[k]] / S;
                            for (int64_t k = 0; k < K; ++k)
                                ds[sel[k]] += static_cast<float>(m.scale / S * (dw[k] - c));
                        } else {
                            for (int64_t k = 0; k < K; ++k) ds[sel[k]] += m.scale * dw[k];
                        }
                    }
                    if (st->aux_ds != nullptr)
                        for (int64_t j = 0; j < E; ++j) ds[j] += seed * st->aux_ds[i * E + j];
                    float* d = dz + i * E;
                    if (m.gating == MoeGating::kSoftmax) {
                        double dot = 0;
                        for (int64_t j = 0; j < E; ++j) dot += static_cast<double>(s[j]) * ds[j];
                        for (int64_t j = 0; j < E; ++j) d[j] += s[j] * (ds[j] - static_cast<float>(dot));
                    } else {
                        for (int64_t j = 0; j < E; ++j) d[j] += ds[j] * s[j] * (1.0f - s[j]);
                    }
                }
            });
        });
    }
    return out;
}

// ---- routed experts -----------------------------------------------------------------------------

namespace {

// Expert e's (rows, cols) matrix as f32: the trainable values in place, or a frozen tensor's
// rows dequantised into buf.
const float* expert_values(const ExpertWeight& w, int64_t e, int64_t rows, int64_t cols, std::vector<float>& buf) {
    if (w.var != nullptr) return (w.values != nullptr ? w.values : w.var->data) + e * rows * cols;
    const Tensor& t = *w.frozen;
    if (t.dtype() == DType::F32) return t.ptr<float>() + e * rows * cols;
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    LF_ASSERT(deq != nullptr);
    buf.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) deq(t.row(e * rows + r), buf.data() + r * cols, cols);
    return buf.data();
}

// Expert e's LoRA term on its n gathered rows x (n, in) of tokens tok: forward adds
// scale · drop(x) · Aᵀ · Bᵀ to y (n, out); backward, from dy (n, out), accumulates A's and B's
// gradients and adds the input's into dx (n, in) when given. h = drop(x) · Aᵀ (n, r) is
// recomputed in backward (r is small), not kept.
class ExpertLoraTerm {
public:
    ExpertLoraTerm(const ExpertWeight& w, int64_t e, const int32_t* tok, int64_t n, int64_t in)
        : l_(w.lora.get()), tok_(tok), n_(n), in_(in) {
        if (l_ == nullptr || e >= static_cast<int64_t>(l_->a.size()) || l_->a[e] == nullptr) {
            l_ = nullptr;
            return;
        }
        a_ = l_->a[e];
        b_ = l_->b[e];
        r_ = a_->shape[0];
        LF_ASSERT(a_->shape.back() == in && b_->shape.back() == r_);
        seed_ = mix64(l_->seed ^ (kGoldenGamma * static_cast<uint64_t>(e + 1)));
    }
    bool active() const { return l_ != nullptr; }

    void forward(ThreadPool& pool, const float* x, float* y, int64_t out) {
        const float* xd = dropped(x);
        h_.resize(static_cast<size_t>(n_ * r_));
        kernels::sgemm(pool, false, true, n_, r_, in_, 1.0f, xd, in_, a_->data, in_, 0.0f, h_.data(), r_);
        kernels::sgemm(pool, false, true, n_, out, r_, l_->scale, h_.data(), r_, b_->data, r_, 1.0f, y, out);
    }

    void backward(Tape& t, const float* x, const float* dy, int64_t out, float* dx) {
        ThreadPool& pool = t.pool();
        const float* xd = dropped(x);
        h_.resize(static_cast<size_t>(n_ * r_));
        kernels::sgemm(pool, false, true, n_, r_, in_, 1.0f, xd, in_, a_->data, in_, 0.0f, h_.data(), r_);
        if (b_->requires_grad)  // dB += s · dyᵀ h
            kernels::sgemm(pool, true, false, out, r_, n_, l_->scale, dy, out, h_.data(), r_, 1.0f, t.grad(b_), r_);
        dh_.resize(static_cast<size_t>(n_ * r_));  // dh = s · dy · B
        kernels::sgemm(pool, false, false, n_, r_, out, l_->scale, dy, out, b_->data, r_, 0.0f, dh_.data(), r_);
        if (a_->requires_grad)  // dA += dhᵀ drop(x)
            kernels::sgemm(pool, true, false, r_, in_, n_, 1.0f, dh_.data(), r_, xd, in_, 1.0f, t.grad(a_), in_);
        if (dx == nullptr) return;
        dxd_.resize(static_cast<size_t>(n_ * in_));  // d drop(x) = dh · A, through the mask
        kernels::sgemm(pool, false, false, n_, in_, r_, 1.0f, dh_.data(), r_, a_->data, in_, 0.0f, dxd_.data(), in_);
        const float p = l_->dropout, keep = 1.0f / (1.0f - p);
        for (int64_t j = 0; j < n_; ++j)
            for (int64_t c = 0; c < in_; ++c)
                if (p <= 0.0f || !(uniform01(seed_, static_cast<uint64_t>(tok_[j]) * in_ + c) < p))
                    dx[j * in_ + c] += dxd_[j * in_ + c] * (p > 0.0f ? keep : 1.0f);
    }

private:
    // x with the expert's dropout mask applied (x itself when p = 0).
    const float* dropped(const float* x) {
        const float p = l_->dropout;
        if (p <= 0.0f) return x;
        const float keep = 1.0f / (1.0f - p);
        xd_.resize(static_cast<size_t>(n_ * in_));
        for (int64_t j = 0; j < n_; ++j)
            for (int64_t c = 0; c < in_; ++c)
                xd_[j * in_ + c] = uniform01(seed_, static_cast<uint64_t>(tok_[j]) * in_ + c) < p ? 0.0f
                                                                                                 : x[j * in_ + c] * keep;
        return xd_.data();
    }
    const ExpertLora* l_;
    const int32_t* tok_;
    int64_t n_, in_, r_ = 0;
    Var a_ = nullptr, b_ = nullptr;
    uint64_t seed_ = 0;
    std::vector<float> xd_, h_, dh_, dxd_;
};

bool lora_needs_grad(const ExpertWeight& w) {
    if (w.lora == nullptr) return false;
    for (Var v : w.lora->a)
        if (v != nullptr && v->requires_grad) return true;
    for (Var v : w.lora->b)
        if (v != nullptr && v->requires_grad) return true;
    return false;
}

const std::vector<int64_t>& shape_of(const ExpertWeight& w) {
    static const std::vector<int64_t> none;
    return w.var != nullptr ? w.var->shape : (w.frozen != nullptr ? w.frozen->shape() : none);
}

}  // namespace

Var moe_experts(Tape& t, Var x, Var w, std::shared_ptr<const std::vector<int32_t>> sel, int64_t E,
                const ExpertWeight& gate, const ExpertWeight& up, const ExpertWeight& down) {
    const int64_t N = rows_of(x), C = x->shape.back(), K = w->shape.back();
    const auto& gs = shape_of(gate);
    LF_ASSERT(gs.size() == 3 && gs[0] == E && gs[2] == C && shape_of(up) == gs && rows_of(w) == N);
    LF_ASSERT(shape_of(down) == (std::vector<int64_t>{E, C, gs[1]}) && static_cast<int64_t>(sel->size()) == N * K);
    const int64_t F = gs[1];
    struct State {
        ExpertGroups groups;
        float* g = nullptr;  // (N·K, F) gate products, in group order (tape buffers)
        float* u = nullptr;  // (N·K, F) up products
        float* y = nullptr;  // (N·K, C) unweighted expert outputs
    };
    auto st = std::make_shared<State>();
    st->groups.build(sel->data(), N, K, E);
    const ExpertGroups& gr = st->groups;
    st->g = t.buffer(N * K * F);
    st->u = t.buffer(N * K * F);
    st->y = t.buffer(N * K * C);
    ThreadPool& pool = t.pool();
    // Work areas kept between calls (their capacity stays: no fresh pages every step).
    thread_local std::vector<float> xs, hs, bg, bu, bd;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t b = gr.begin[e], n = gr.begin[e + 1] - b;
        if (n == 0) continue;
        xs.resize(static_cast<size_t>(n * C));
        for (int64_t j = 0; j < n; ++j)
            std::memcpy(xs.data() + j * C, x->data + static_cast<int64_t>(gr.token[b + j]) * C, C * sizeof(float));
        float* g = st->g + b * F;
        float* u = st->u + b * F;
        kernels::sgemm(pool, false, true, n, F, C, 1.0f, xs.data(), C, expert_values(gate, e, F, C, bg), C, 0.0f, g, F);
        kernels::sgemm(pool, false, true, n, F, C, 1.0f, xs.data(), C, expert_values(up, e, F, C, bu), C, 0.0f, u, F);
        const int32_t* tok = &gr.token[b];
        if (ExpertLoraTerm lg(gate, e, tok, n, C); lg.active()) lg.forward(pool, xs.data(), g, F);
        if (ExpertLoraTerm lu(up, e, tok, n, C); lu.active()) lu.forward(pool, xs.data(), u, F);
        hs.resize(static_cast<size_t>(n * F));
        for (int64_t i = 0; i < n * F; ++i) hs[i] = g[i] * sigmoid(g[i]) * u[i];
        kernels::sgemm(pool, false, true, n, C, F, 1.0f, hs.data(), F, expert_values(down, e, C, F, bd), F, 0.0f,
                       st->y + b * C, C);
        if (ExpertLoraTerm ld(down, e, tok, n, F); ld.active()) ld.forward(pool, hs.data(), st->y + b * C, C);
    }
    // Where each (token, slot) landed in group order.
    std::vector<int64_t> item(static_cast<size_t>(N * K));
    for (int64_t j = 0; j < N * K; ++j) item[static_cast<size_t>(gr.token[j]) * K + gr.slot[j]] = j;
    const bool lora_grad = t.grad_enabled && (lora_needs_grad(gate) || lora_needs_grad(up) || lora_needs_grad(down));
    Var out = t.make({N, C}, needs_grad(t, {x, w, gate.var, up.var, down.var}) || lora_grad);
    pool.run_range(N, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            float* o = out->data + i * C;
            std::fill(o, o + C, 0.0f);
            for (int64_t k = 0; k < K; ++k) {
                const float wk = w->data[i * K + k];
                const float* y = st->y + item[i * K + k] * C;
                for (int64_t c = 0; c < C; ++c) o[c] += wk * y[c];
            }
        }
    });
    if (out->requires_grad) {
        t.on_backward([&t, x, w, st, out, E, N, K, C, F, gate, up, down, item = std::move(item)] {
            if (out->grad == nullptr) return;
            ThreadPool& pool = t.pool();
            const ExpertGroups& gr = st->groups;
            const float* dout = out->grad;
            if (w->requires_grad) {  // dw[i, k] = dout_i · y_(i,k)
                float* dw = t.grad(w);
                pool.run_range(N, 16, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i)
                        for (int64_t k = 0; k < K; ++k) {
                            const float* y = st->y + item[i * K + k] * C;
                            double s = 0;
                            for (int64_t c = 0; c < C; ++c) s += static_cast<double>(dout[i * C + c]) * y[c];
                            dw[i * K + k] += static_cast<float>(s);
                        }
                });
            }
            float* dx = x->requires_grad ? t.grad(x) : nullptr;
            float* dgw = gate.var != nullptr && gate.var->requires_grad ? t.grad(gate.var) : nullptr;
            float* duw = up.var != nullptr && up.var->requires_grad ? t.grad(up.var) : nullptr;
            float* ddw = down.var != nullptr && down.var->requires_grad ? t.grad(down.var) : nullptr;
            thread_local std::vector<float> xs, dy, hs, dh, dgu, dxs, bg, bu, bd;
            for (int64_t e = 0; e < E; ++e) {
                const int64_t b = gr.begin[e], n = gr.begin[e + 1] - b;
                if (n == 0) continue;
                xs.resize(static_cast<size_t>(n * C));
                dy.resize(static_cast<size_t>(n * C));
                for (int64_t j = 0; j < n; ++j) {
                    const int64_t tok = gr.token[b + j];
                    const float wk = w->data[tok * K + gr.slot[b + j]];
                    std::memcpy(xs.data() + j * C, x->data + tok * C, C * sizeof(float));
                    for (int64_t c = 0; c < C; ++c) dy[j * C + c] = wk * dout[tok * C + c];
                }
                const float* g = st->g + b * F;
                const float* u = st->u + b * F;
                hs.resize(static_cast<size_t>(n * F));
                for (int64_t i = 0; i < n * F; ++i) hs[i] = g[i] * sigmoid(g[i]) * u[i];
                // down: y = h · Wd^T, Wd (C, F). dWd += dy^T h; dh = dy · Wd.
                if (ddw) kernels::sgemm(pool, true, false, C, F, n, 1.0f, dy.data(), C, hs.data(), F, 1.0f, ddw + e * C * F, F);
                dh.resize(static_cast<size_t>(n * F));
                kernels::sgemm(pool, false, false, n, F, C, 1.0f, dy.data(), C, expert_values(down, e, C, F, bd), F, 0.0f,
                               dh.data(), F);
                const int32_t* tok = &gr.token[b];
                if (ExpertLoraTerm ld(down, e, tok, n, F); ld.active()) ld.backward(t, hs.data(), dy.data(), C, dh.data());
                // h = silu(g) u: dg = dh · u · σ(g)(1 + g(1 - σ(g))), du = dh · silu(g).
                dgu.resize(static_cast<size_t>(2 * n * F));
                float* dg = dgu.data();
                float* du = dg + n * F;
                for (int64_t i = 0; i < n * F; ++i) {
                    const float sg = sigmoid(g[i]);
                    dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
                    du[i] = dh[i] * g[i] * sg;
                }
                // gate / up: g = x · Wg^T. dWg += dg^T x; dx += dg · Wg (+ du · Wu).
                if (dgw) kernels::sgemm(pool, true, false, F, C, n, 1.0f, dg, F, xs.data(), C, 1.0f, dgw + e * F * C, C);
                if (duw) kernels::sgemm(pool, true, false, F, C, n, 1.0f, du, F, xs.data(), C, 1.0f, duw + e * F * C, C);
                ExpertLoraTerm lg(gate, e, tok, n, C), lu(up, e, tok, n, C);
                if (dx) {
                    dxs.resize(static_cast<size_t>(n * C));
                    kernels::sgemm(pool, false, false, n, C, F, 1.0f, dg, F, expert_values(gate, e, F, C, bg), C, 0.0f,
                                   dxs.data(), C);
                    kernels::sgemm(pool, false, false, n, C, F, 1.0f, du, F, expert_values(up, e, F, C, bu), C, 1.0f,
                                   dxs.data(), C);
                    if (lg.active()) lg.backward(t, xs.data(), dg, F, dxs.data());
                    if (lu.active()) lu.backward(t, xs.data(), du, F, dxs.data());
                    for (int64_t j = 0; j < n; ++j) {
                        float* d = dx + static_cast<int64_t>(gr.token[b + j]) * C;
                        for (int64_t c = 0; c < C; ++c) d[c] += dxs[j * C + c];
                    }
                } else {
                    if (lg.active()) lg.backward(t, xs.data(), dg, F, nullptr);
                    if (lu.active()) lu.backward(t, xs.data(), du, F, nullptr);
                }
            }
        });
    }
    return out;
}

}  // namespace llmforge::train
