// What the encoder architectures (vit.cpp: ViT, CLIP vision; swin.cpp: Swin) share: reading their
// common Hugging Face keys.
#pragma once

#include "model/arch/arch.h"

namespace llmforge::encoder_family {

// An encoder architecture: the Arch fields every encoder sets (the caller adds its own: hf_rename,
// text_input).
Arch make_arch(const char* name, std::vector<std::string> hf_types, const char* hf_class, std::vector<TensorSpec> table,
               int n_slots, void (*configure)(ModelConfig&, const ConfigSource&),
               void (*write_keys)(const ModelConfig&, ConfigSink&), void (*validate)(const ModelConfig&, const std::string&),
               Act (*embed)(Ops&, const ModelConfig&), Act (*layer)(Ops&, const ModelConfig&, int64_t, Act),
               Act (*head)(Ops&, const ModelConfig&, Act), Act (*pool)(Ops&, const ModelConfig&, Act));

// The feed-forward branch of an encoder block: down(f(up(x) + up_b)) + down_b.
Act mlp(Ops& o, Act x, Weight up, Weight up_b, Weight down, Weight down_b, Activation f);
// The same added to the residual stream h as branch 1 of `layer` (Ops::linear_residual).
Act mlp_residual(Ops& o, int64_t layer, Act h, Act x, Weight up, Weight up_b, Weight down, Weight down_b, Activation f);

// Bidirectional multi-head self-attention with biased q/k/v/out projections (heads of C / n_head).
Act self_attention(Ops& o, int64_t layer, Act x, int64_t n_head, const Weight qkv[3], const Weight qkv_b[3], Weight out,
                   Weight out_b);
// The same added to the residual stream h as branch 0 of `layer` (Ops::linear_residual).
Act self_attention_residual(Ops& o, int64_t layer, Act h, Act x, int64_t n_head, const Weight qkv[3],
                            const Weight qkv_b[3], Weight out, Weight out_b);

// A required positive integer key (one-line Error naming the file otherwise).
int64_t need(const ConfigSource& src, const char* key);
// image_size, patch_size, num_channels, hidden_act, layer_norm_eps of a vision config.
void configure_vision(ModelConfig& c, const ConfigSource& src, const char* default_act, double default_eps);

}  // namespace llmforge::encoder_family
