// Qwen3 (dense): the Llama block with an explicit head_dim (H·D need not equal the width), no
// biases unless attention_bias, and an RMSNorm over each head of q and k (one head_dim gain
// each, shared by the heads) after the projection and before RoPE. Rotate-half RoPE everywhere.
// Reference: Hugging Face transformers models/qwen3/modeling_qwen3.py (Qwen3Attention).
#include "core/error.h"
#include "model/arch/llama.h"

namespace llmforge {

namespace {

void qwen3_configure(ModelConfig& c, const ConfigSource& src) {
    if (src.is_gguf()) return;
    c.qkv_bias = src.boolean("attention_bias", nullptr).value_or(false);
    if (src.boolean("use_sliding_window", nullptr).value_or(false)) {
        fail("%s: \"use_sliding_window\" is true; Qwen3's per-layer windows are not supported "
             "(expected false)",
             src.where().c_str());
    }
}
void qwen3_write_keys(const ModelConfig& c, ConfigSink& sink) {
    sink.boolean("attention_bias", nullptr, c.qkv_bias);
    sink.boolean("use_sliding_window", nullptr, false);
}

}  // namespace

extern const Arch kQwen3Arch = {
    "qwen3", {"qwen3"}, "Qwen3ForCausalLM", false, false, llama_family::tensor_table(true), llama_family::kNumSlots,
    qwen3_configure, qwen3_write_keys, llama_family::validate,
    llama_family::embed, llama_family::layer, llama_family::head,
};

}  // namespace llmforge
