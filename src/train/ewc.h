// Elastic weight consolidation (Kirkpatrick et al., 2017) for continual learning: learning task B
// while a quadratic penalty λ/2·Σ_i F_i·(θ_i − θ*_i)² holds the parameters task A relies on near
// their task-A values θ*, weighted by the diagonal of the Fisher information F on task A's data.
//
// Fisher file (safetensors, written by compute_fisher / `llmforge fisher`): for every parameter
// (GGUF names, the trainer's), "fisher.<name>" F and "theta.<name>" θ*, f32, the parameter's
// shape; metadata format = "llmforge-fisher-v1", samples, data, model. F is the empirical Fisher:
// the mean over `samples` rows of task A of the squared gradient of that row's mean token
// cross-entropy, computed one row at a time (a per-sample estimate, not a batch gradient squared).
//
// Thread safety: one training thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "train/tape.h"

namespace llmforge::train {

struct FisherOptions {
    std::string model;  // weights (HF folder, GGUF, llama2.c), every tensor as the trainer holds it
    std::string data;   // task A's tokens (a .u16/.u32 file or a prepare folder)
    std::string out;    // the Fisher file
    int64_t samples = 64, seq_len = 128;
    uint64_t seed = 1;
    int threads = 0;
};

struct FisherResult {
    int64_t samples = 0, params = 0;
    double mean_fisher = 0, seconds = 0;
};

// progress(samples done, total). Throws Error (one line) on bad input; writes out atomically.
FisherResult compute_fisher(const FisherOptions& o, const std::function<void(int64_t, int64_t)>& progress = nullptr);

class EwcPenalty {
public:
    // Reads the Fisher file for these parameters: each must have both tensors with its shape
    // (else Error naming the parameter, e.g. a file made for another model).
    EwcPenalty(const std::string& path, const std::vector<Param*>& params);
    // grad_i += λ·F_i·(θ_i − θ*_i) for every parameter; returns the penalty λ/2·Σ F·(θ − θ*)².
    double add_gradient(float lambda, ThreadPool& pool);

private:
    struct Entry {
        Param* p;
        std::vector<float> fisher, theta;
    };
    std::vector<Entry> entries_;
};

}  // namespace llmforge::train
