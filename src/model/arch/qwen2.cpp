// Qwen2 / Qwen2.5 / DeepSeek-R1-Distill-Qwen: the Llama block with q/k/v biases, rotate-half RoPE
// in every format, optionally tied embeddings.
#include "core/error.h"
#include "model/arch/llama.h"

namespace llmforge {

namespace {

void qwen2_configure(ModelConfig& c, const ConfigSource& src) {
    if (src.is_gguf()) return;  // GGUF: biases are there or not (common reader)
    c.qkv_bias = true;
    if (src.boolean("use_sliding_window", nullptr).value_or(false)) {
        fail("%s: \"use_sliding_window\" is true; Qwen2's per-layer windows (max_window_layers) are "
             "not supported (expected false)",
             src.where().c_str());
    }
}

}  // namespace

extern const Arch kQwen2Arch = {
    "qwen2", {"qwen2"}, "Qwen2ForCausalLM", false, true, llama_family::tensor_table(false), llama_family::kNumSlots,
    qwen2_configure, nullptr, llama_family::validate,
    llama_family::embed, llama_family::layer, llama_family::head,
};

}  // namespace llmforge
