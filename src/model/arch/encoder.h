// What the encoder architectures (vit.cpp: ViT, CLIP vision; swin.cpp: Swin) share: reading their
// common Hugging Face keys.
#pragma once

#include "model/arch/arch.h"

namespace llmforge::encoder_family {

// A required positive integer key (one-line Error naming the file otherwise).
int64_t need(const ConfigSource& src, const char* key);
// image_size, patch_size, num_channels, hidden_act, layer_norm_eps of a vision config.
void configure_vision(ModelConfig& c, const ConfigSource& src, const char* default_act, double default_eps);

}  // namespace llmforge::encoder_family
