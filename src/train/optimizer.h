// AdamW (decoupled weight decay, PyTorch 1.13 `torch.optim.AdamW` arithmetic), global-norm gradient
// clipping and the learning-rate schedules of `llmforge train`.
//
// AdamW step t (1-based) for a parameter p with gradient g, in f32 like PyTorch:
//   p ← p·(1 − lr·wd)              (only tensors with decay, see below)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
// Weight decay applies to tensors of 2 or more dimensions (matrices, embeddings), not to norm gains
// or biases, unless decay_all (the PyTorch golden test decays everything).
//
// Thread safety: one training thread; step() uses the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "train/tape.h"

namespace llmforge::train {

struct AdamWConfig {
    float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
    bool decay_all = false;
};

class AdamW {
public:
    AdamW(std::vector<Param*> params, AdamWConfig cfg);
    // One update with learning rate lr from each parameter's grad (grads are left as they are).
    void step(float lr, ThreadPool& pool);
    int64_t step_count() const { return t_; }
    void set_step_count(int64_t t) { t_ = t; }
    const AdamWConfig& config() const { return cfg_; }
    // Optimiser state per parameter (same order as the constructor's params): m and v.
    FloatBuffer& m(size_t i) { return m_[i]; }
    FloatBuffer& v(size_t i) { return v_[i]; }
    size_t size() const { return params_.size(); }
    Param& param(size_t i) { return *params_[i]; }

private:
    std::vector<Param*> params_;
    std::vector<FloatBuffer> m_, v_;
    AdamWConfig cfg_;
    int64_t t_ = 0;
};

// sqrt(Σ g²) over every parameter's gradient (double accumulation, fixed order).
double grad_global_norm(const std::vector<Param*>& params, ThreadPool& pool);
// Multiplies every gradient by s.
void scale_grads(const std::vector<Param*>& params, float s, ThreadPool& pool);
// Global-norm clipping: when norm > max_norm, scales by max_norm / (norm + 1e-6). Returns the norm
// before clipping. max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<Param*>& params, double max_norm, ThreadPool& pool);
// true when some gradient element is inf or NaN (fp16 loss-scale overflow).
bool grads_non_finite(const std::vector<Param*>& params, ThreadPool& pool);
void zero_grads(const std::vector<Param*>& params);

enum class Schedule { kCosine, kConstant, kLinear };
Schedule schedule_from_name(const std::string& s);  // throws Error naming the flag
const char* schedule_name(Schedule s);

// Learning rate at step s (0-based) of `steps`: linear warmup lr·(s+1)/W for s < W, then cosine
// min_lr + ½(lr − min_lr)(1 + cos(π·(s − W)/(S − W))), constant lr, or linear lr → min_lr.
double learning_rate(Schedule sch, int64_t s, int64_t steps, int64_t warmup, double lr, double min_lr);

// The step of the applications' own training loops (train-vqa, train-vlm), after backward: clip the
// global gradient norm to `clip`, an AdamW step at the cosine schedule's rate for step s, gradients
// zeroed. Returns the rate used.
double cosine_step(AdamW& opt, const std::vector<Param*>& params, int64_t s, int64_t steps, int64_t warmup, double lr,
                   double min_lr, double clip, ThreadPool& pool);
// Their progress line: "WHAT: step S/N  loss L  lr X  R UNIT/s  ETA T" (s steps done of n, `items`
// items per step, `elapsed` seconds so far).
std::string step_progress(const std::string& what, int64_t s, int64_t n, double loss, double lr, int64_t items,
                          const char* unit, double elapsed);

}  // namespace llmforge::train
