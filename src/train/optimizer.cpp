#include "train/optimizer.h"

#include <cmath>
#include <cstdio>
#include <numbers>

#include "core/error.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::train {

AdamW::AdamW(std::vector<Param*> params, AdamWConfig cfg) : params_(std::move(params)), cfg_(cfg) {
    for (Param* p : params_) {
        m_.emplace_back(p->numel());
        v_.emplace_back(p->numel());
    }
}

void AdamW::step(float lr, ThreadPool& pool) {
    ++t_;
    // Scalars in double as PyTorch computes them in Python, then used as f32 in the element loop.
    const double bc1 = 1.0 - std::pow(static_cast<double>(cfg_.beta1), static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(static_cast<double>(cfg_.beta2), static_cast<double>(t_));
    const float step_size = static_cast<float>(static_cast<double>(lr) / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    kernels::AdamWStep st{};
    st.b1 = cfg_.beta1;
    st.b2 = cfg_.beta2;
    st.eps = cfg_.eps;
    st.one_b1 = static_cast<float>(1.0 - static_cast<double>(cfg_.beta1));
    st.one_b2 = static_cast<float>(1.0 - static_cast<double>(cfg_.beta2));
    st.step_size = step_size;
    st.bc2_sqrt = bc2_sqrt;
    st.decay = static_cast<float>(1.0 - static_cast<double>(lr) * cfg_.weight_decay);
    const auto update = kernels::kernels().adamw;  // vectorised, the reference's bits on every table
    for (size_t i = 0; i < params_.size(); ++i) {
        Param& p = *params_[i];
        kernels::AdamWStep s = st;
        s.wd = cfg_.weight_decay != 0.0f && (cfg_.decay_all || p.shape.size() >= 2);
        float* w = p.value.data();
        const float* g = p.grad.data();
        float* m = m_[i].data();
        float* v = v_[i].data();
        pool.run_range(p.numel(), 1 << 14, [&](int64_t b, int64_t e) { update(w + b, g + b, m + b, v + b, e - b, s); });
    }
}

double grad_global_norm(const std::vector<Param*>& params, ThreadPool& pool) {
    double total = 0;
    for (Param* p : params) {
        const int64_t n = p->numel();
        constexpr int64_t kChunk = 1 << 15;
        const int64_t n_chunks = (n + kChunk - 1) / kChunk;
        std::vector<double> part(static_cast<size_t>(n_chunks));
        const float* g = p->grad.data();
        const auto sumsq = kernels::kernels().sumsq;
        pool.run(n_chunks, [&](int64_t c, int) {
            const int64_t b = c * kChunk;
            part[c] = sumsq(g + b, std::min(n, b + kChunk) - b);
        });
        for (double s : part) total += s;
    }
    return std::sqrt(total);
}

void scale_grads(const std::vector<Param*>& params, float s, ThreadPool& pool) {
    for (Param* p : params) {
        float* g = p->grad.data();
        pool.run_range(p->numel(), 1 << 15, [&](int64_t b, int64_t e) {
            for (int64_t j = b; j < e; ++j) g[j] *= s;
        });
    }
}

double clip_grad_norm(const std::vector<Param*>& params, double max_norm, ThreadPool& pool) {
    const double norm = grad_global_norm(params, pool);
    if (max_norm > 0 && norm > max_norm) scale_grads(params, static_cast<float>(max_norm / (norm + 1e-6)), pool);
    return norm;
}

bool grads_non_finite(const std::vector<Param*>& params, ThreadPool& pool) {
    return !std::isfinite(grad_global_norm(params, pool));
}

void zero_grads(const std::vector<Param*>& params) {
    for (Param* p : params) p->grad.zero();
}

Schedule schedule_from_name(const std::string& s) {
    if (s == "cosine") return Schedule::kCosine;
    if (s == "constant") return Schedule::kConstant;
    if (s == "linear") return Schedule::kLinear;
    throw Error("--schedule: '" + s + "' is not a schedule, expected cosine, constant or linear");
}

const char* schedule_name(Schedule s) {
    switch (s) {
        case Schedule::kCosine: return "cosine";
        case Schedule::kConstant: return "constant";
        case Schedule::kLinear: return "linear";
    }
    return "?";
}

double learning_rate(Schedule sch, int64_t s, int64_t steps, int64_t warmup, double lr, double min_lr) {
    if (s < warmup) return lr * static_cast<double>(s + 1) / static_cast<double>(warmup);
    if (sch == Schedule::kConstant) return lr;
    const int64_t span = steps - warmup;
    if (span <= 0) return lr;
    const double frac = std::min(1.0, static_cast<double>(s - warmup) / static_cast<double>(span));
    if (sch == Schedule::kLinear) return lr + (min_lr - lr) * frac;
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * frac));
}

double cosine_step(AdamW& opt, const std::vector<Param*>& params, int64_t s, int64_t steps, int64_t warmup, double lr,
                   double min_lr, double clip, ThreadPool& pool) {
    clip_grad_norm(params, clip, pool);
    const double rate = learning_rate(Schedule::kCosine, s, steps, warmup, lr, min_lr);
    opt.step(static_cast<float>(rate), pool);
    zero_grads(params);
    return rate;
}

std::string step_progress(const std::string& what, int64_t s, int64_t n, double loss, double lr, int64_t items,
                          const char* unit, double elapsed) {
    const double eta = s > 0 ? elapsed / static_cast<double>(s) * static_cast<double>(n - s) : 0;
    char e[32], b[256];
    if (eta < 120) std::snprintf(e, sizeof e, "%.0f s", eta);
    else std::snprintf(e, sizeof e, "%.0f min", eta / 60);
    std::snprintf(b, sizeof b, "%s: step %lld/%lld  loss %.4f  lr %.2e  %.1f %s/s  ETA %s", what.c_str(), (long long)s,
                  (long long)n, loss, lr, elapsed > 0 ? static_cast<double>(s * items) / elapsed : 0.0, unit, e);
    return b;
}

}  // namespace llmforge::train
