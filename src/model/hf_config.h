// Hugging Face config.json -> ModelConfig, for the architectures llmforge runs (model_type looked
// up in model/arch/registry.cpp: llama, qwen2, qwen3, mistral).
//
// Keys: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size,
// rms_norm_eps, max_position_embeddings (required); num_key_value_heads (default: heads),
// head_dim (default hidden_size / heads), rope_theta (default 10000), tie_word_embeddings
// (default false), rope_scaling {rope_type | type: linear | llama3 | yarn | default}; then the
// architecture's own keys (Arch::configure: attention_bias, sliding_window, ...). A JSON null
// counts as absent.
// HF checkpoints use the rotate-half RoPE convention, so rope_interleaved = false.
//
// Rejected with an Error naming the file and key: a missing required key, a wrong JSON type, a
// non-positive size, heads not dividing, an unknown model_type (the message lists the supported
// ones), an unsupported rope_scaling type, hidden_act other than silu, mlp_bias, and what an
// architecture rejects (qwen2/qwen3 use_sliding_window = true: per-layer windows).
//
// Note: llama's attention_bias = true also puts a bias on o_proj, which ModelConfig cannot
// express; it is mapped to qkv_bias = true as for qwen2.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "core/file.h"
#include "model/config.h"

namespace llmforge {

// Parses config.json text; `source` names it in errors (e.g. its path). name = "_name_or_path"
// when present.
ModelConfig hf_config_parse(std::string_view json_text, const std::string& source);

// Reads a config.json file, or <folder>/config.json when `path` is a folder. name = the
// "_name_or_path" key, else the folder's name.
ModelConfig hf_config_read(const std::string& path);
// Same from an already opened config.json (core/file.h).
ModelConfig hf_config_read(const RegularFile& file);

// The config.json text (Hugging Face keys, the arch's model_type and its own keys) of a config, such that
// hf_config_parse gives it back. Trained models are saved with it.
std::string hf_config_write(const ModelConfig& c);

}  // namespace llmforge
