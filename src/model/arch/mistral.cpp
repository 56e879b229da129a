// Mistral (7B v0.1 style): the Llama block with sliding-window attention — position i attends to
// the W positions (i - W, i] (Hugging Face masking_utils: kv_idx > q_idx - sliding_window), in
// every layer; "sliding_window": null means full causal attention. Rotate-half RoPE in every
// format. GGUF files written here use general.architecture "mistral" with the window under
// mistral.attention.sliding_window (llama.cpp's converter maps Mistral to "llama" and drops the
// window, which changes the function past W tokens).
#include "core/error.h"
#include "model/arch/llama.h"

namespace llmforge {

namespace {

void mistral_configure(ModelConfig& c, const ConfigSource& src) {
    if (!src.is_gguf()) c.qkv_bias = false;
    const auto w = src.integer("sliding_window", "attention.sliding_window");
    if (w && (*w < 1 || *w > (int64_t{1} << 31))) {
        fail("%s: sliding window is %lld, expected a positive number of positions (or null for none)",
             src.where().c_str(), (long long)*w);
    }
    c.sliding_window = w.value_or(0);
}
void mistral_write_keys(const ModelConfig& c, ConfigSink& sink) {
    sink.integer("sliding_window", "attention.sliding_window",
                 c.sliding_window > 0 ? std::optional<int64_t>(c.sliding_window) : std::nullopt);
}

}  // namespace

extern const Arch kMistralArch = {
    "mistral", {"mistral"}, "MistralForCausalLM", false, false, llama_family::tensor_table(false), llama_family::kNumSlots,
    mistral_configure, mistral_write_keys, llama_family::validate,
    llama_family::embed, llama_family::layer, llama_family::head,
};

}  // namespace llmforge
