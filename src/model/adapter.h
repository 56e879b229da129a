// PEFT adapters in Hugging Face PEFT's own files, for every registered architecture: LoRA (a
// low-rank update of chosen linear modules) and prompt tuning (learned virtual-token embeddings).
//
// Folder (what PEFT's save_pretrained writes and PeftModel.from_pretrained reads):
//   DIR/adapter_config.json
//     LORA:          peft_type, task_type "CAUSAL_LM", base_model_name_or_path, r, lora_alpha,
//                    lora_dropout, target_modules (list), use_rslora, bias "none",
//                    fan_in_fan_out false, use_dora false, init_lora_weights true, ...
//     PROMPT_TUNING: peft_type, task_type, base_model_name_or_path, num_virtual_tokens, token_dim,
//                    num_transformer_submodules 1, num_attention_heads, num_layers,
//                    prompt_tuning_init "RANDOM" | "TEXT", prompt_tuning_init_text, ...
//   DIR/adapter_model.safetensors
//     LORA:          base_model.model.<module>.lora_A.weight (r, in) and .lora_B.weight (out, r),
//                    <module> the HF module path ("model.layers.3.self_attn.q_proj")
//     PROMPT_TUNING: prompt_embeddings (num_virtual_tokens, token_dim)
//
// Semantics (PEFT's): a LoRA module computes y = x·Wᵀ + s·dropout(x)·Aᵀ·Bᵀ with s = alpha / r, or
// alpha / sqrt(r) with use_rslora. Prompt tuning places the N virtual embeddings before the real
// tokens at positions 0..N-1; real token t is at position N + t; attention is causal over all.
//
// Conventions: adapters are stored as PEFT stores them (rotate-half RoPE row order, the Hugging
// Face one). For a base held in the interleaved order (GGUF llama files), add_lora() and
// merge_lora() permute the B rows of Q/K modules (TensorSpec::rope_rows) on the way in.
//
// Errors: one line (what, where, expected vs found, hint): an adapter made for another base names
// the tensor and both shapes; unknown target modules list the known ones; unsupported PEFT
// features (DoRA, bias training, fan_in_fan_out, rank/alpha patterns, modules_to_save) are named.
//
// Thread safety: free functions and plain values; a LowRankDelta made from an adapter is
// immutable and may be shared by every request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/arch/arch.h"
#include "model/config.h"
#include "model/low_rank.h"

namespace llmforge {

enum class PeftType { kLora, kPromptTuning };

struct AdapterConfig {
    PeftType type = PeftType::kLora;
    std::string base_model;  // base_model_name_or_path (informational)
    // LoRA
    int64_t r = 8;
    double alpha = 8;
    double dropout = 0;
    std::vector<std::string> target_modules;  // as given: short names ("q_proj") or "all-linear"
    bool use_rslora = false;
    // Prompt tuning
    int64_t num_virtual_tokens = 0, token_dim = 0;
    int64_t num_attention_heads = 0, num_layers = 0;  // written for PEFT; not used here
    std::string init_text;                            // prompt_tuning_init_text ("" = RANDOM)
    std::string tokenizer;                            // tokenizer_name_or_path

    // alpha / r, or alpha / sqrt(r) with use_rslora.
    double lora_scale() const;
    nlohmann::json to_json() const;
    // Throws Error naming `where` for a missing or unsupported key.
    static AdapterConfig from_json(const nlohmann::json& j, const std::string& where);
};

// A linear module a LoRA may cover: its weight slot and HF module path.
struct LoraSite {
    Weight w;
    std::string module;  // "model.layers.3.self_attn.q_proj"
    std::string short_name;  // "q_proj"
    int64_t in = 0, out = 0;
    bool rope_rows = false;  // Q/K: B's rows follow the RoPE pair order
    // A routed expert's matrix: w is the layer's (E, out, in) stack and this is expert `expert`
    // (HF module "model.layers.3.mlp.experts.5.gate_proj", one PEFT pair per expert); -1: w itself.
    int64_t expert = -1;
};

// Every per-layer linear module of a model (PEFT's "all-linear": the output layer excluded), each
// routed expert of a stacked expert tensor a module of its own, as in the HF model.
std::vector<LoraSite> linear_modules(const Arch& a, const ModelConfig& c);
// The modules a target list selects, PEFT's matching: a module matches a target when its path
// equals it or ends with "." + target; "all-linear" selects every linear module. Throws Error
// (`where` first) for an empty list or a target that matches nothing, listing the known names.
std::vector<LoraSite> lora_sites(const Arch& a, const ModelConfig& c, const std::vector<std::string>& targets,
                                 const std::string& where);
// "q_proj, v_proj" -> {"q_proj", "v_proj"} (empty entries dropped).
std::vector<std::string> split_targets(const std::string& list);

// One covered module's matrices, f32, in the file's (Hugging Face) row order.
struct LoraPair {
    LoraSite site;
    int64_t r = 0;
    std::vector<float> a;  // (r, in)
    std::vector<float> b;  // (out, r)
};

struct Adapter {
    std::string path;  // the folder it was read from ("" when made in memory)
    AdapterConfig cfg;
    std::vector<LoraPair> lora;  // LoRA: in table order
    std::vector<float> prompt;   // prompt tuning: (num_virtual_tokens, token_dim)
};

// PEFT's tensor names.
std::string lora_a_name(const LoraSite& s);  // "base_model.model.<module>.lora_A.weight"
std::string lora_b_name(const LoraSite& s);
constexpr const char* kPromptEmbeddings = "prompt_embeddings";

// Reads DIR (adapter_config.json + adapter_model.safetensors) and checks it against a base of
// architecture `a` and config `c`: every tensor must name a module the base has, with the
// shapes the base implies. Throws Error (one line) otherwise.
Adapter read_adapter(const std::string& dir, const Arch& a, const ModelConfig& c);
// Writes the adapter as PEFT does (both files replaced atomically; DIR created when missing).
void write_adapter(const std::string& dir, const Adapter& ad);
// True when DIR holds an adapter_config.json.
bool is_adapter_folder(const std::string& dir);

// Adds LoRA adapters to one delta (several stack: their products add), each with its scale
// multiplier (`llmforge generate --adapter DIR:0.5`). For a base in the interleaved RoPE order,
// Q/K B rows are permuted to it. Prompt adapters are not deltas: callers feed their rows.
void add_lora(LowRankDelta& d, const Adapter& ad, double user_scale, const ModelConfig& base);
// W (out, in, f32, the base's row order) += scale·B·A of one pair (for an expert's pair, W is
// that expert's matrix: the stack's values from expert · out · in on).
void merge_lora(const LoraPair& p, double scale, bool base_rope_interleaved, int64_t head_dim, float* w);

}  // namespace llmforge
