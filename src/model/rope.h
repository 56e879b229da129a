// RoPE frequencies after a config's scaling (none, linear, Llama 3, YaRN), shared by the engine's
// forward and the trainer's tables.
#pragma once

#include <vector>

#include "model/config.h"

namespace llmforge {

// Per-pair inverse frequencies (head_dim / 2, in double; rounded to f32 only when cos/sin are
// formed). *mscale receives the factor cos/sin are multiplied by (YaRN's attention factor, else 1).
std::vector<double> rope_inv_freq(const ModelConfig& c, double* mscale);

// cos/sin of position pos for every pair, times mscale.
void rope_cos_sin(const std::vector<double>& inv_freq, double mscale, int64_t pos, float* cs, float* sn);

}  // namespace llmforge
