// Hyper-parameters of a decoder, read from GGUF metadata, a Hugging Face config.json or a llama2.c
// header. Common fields plus the few an architecture adds (model/arch/<name>.cpp reads them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/lsh.h"

namespace llmforge {

enum class RopeScaling { kNone, kLinear, kLlama3, kYarn };

// How a mixture-of-experts layer turns router logits into expert scores.
enum class MoeGating { kSoftmax = 1, kSigmoid = 2 };  // values: GGUF expert_gating_func

// DeepSeek-V2/V3 hyper-parameters (multi-head latent attention, DeepSeekMoE, multi-token
// prediction); all zero for other architectures. Names follow the Hugging Face config.
struct DeepSeekConfig {
    int64_t q_lora_rank = 0;       // 0: queries straight from the hidden state (V2-Lite)
    int64_t kv_lora_rank = 0;      // width of the cached latent
    int64_t qk_rope_head_dim = 0;  // rotary part of each query/key head (shared by all heads for keys)
    int64_t qk_nope_head_dim = 0;  // non-rotary part (head_dim = nope + rope)
    int64_t n_routed_experts = 0;
    int64_t n_experts_used = 0;    // num_experts_per_tok
    int64_t n_shared_experts = 0;
    int64_t moe_ff = 0;            // moe_intermediate_size (each routed and shared expert)
    int64_t first_k_dense = 0;     // leading layers with a dense FFN (first_k_dense_replace)
    int64_t n_group = 1, topk_group = 1;  // group-limited routing (V2 full / V3)
    float routed_scaling = 1.0f;   // expert_weights_scale
    bool norm_topk_prob = false;   // expert_weights_norm
    MoeGating gating = MoeGating::kSoftmax;
    // YaRN's attention scaling (HF rope_scaling mscale_all_dim; GGUF stores 0.1 * it as
    // rope.scaling.yarn_log_multiplier): softmax scale *= (1 + log_mul * ln(factor))^2.
    float yarn_log_mul = 0.0f;
    int64_t n_mtp = 0;             // multi-token-prediction modules after the main layers (V3: 1)

    bool moe_layer(int64_t l) const { return n_routed_experts > 0 && l >= first_k_dense; }
};

// The feed-forward activation of encoder architectures (the decoders' is SwiGLU's silu):
// gelu = x·Φ(x) (erf form), gelu_tanh = the tanh approximation, quick_gelu = x·σ(1.702·x) (CLIP).
enum class Activation { kGelu, kGeluTanh, kQuickGelu, kTanh };
// Hugging Face's hidden_act names ("gelu", "gelu_new"/"gelu_pytorch_tanh", "quick_gelu"); false if unknown.
bool activation_from_name(const std::string& name, Activation* out);
const char* activation_name(Activation a);

// A vision tower's projector into a language model's embedding space (LLaVA): none, one linear, or
// LLaVA-1.5's mlp2x_gelu (linear, GELU, linear). GGUF mm.0 / mm.2, HF multi_modal_projector.linear_1 / _2.
enum class Projector { kNone, kLinear, kMlp };

// Encoder architectures (vision towers, bidirectional text encoders; model/arch/vit.cpp): the
// hyper-parameters a decoder does not have. All zero for decoders.
struct EncoderConfig {
    int64_t image_size = 0;   // vision: square input side in pixels
    int64_t patch_size = 0;   // vision: square patch side (a stride-P convolution = a linear over patch rows)
    int64_t n_channels = 0;   // vision: input channels (3)
    float norm_eps = 0.0f;    // LayerNorm epsilon
    Activation act = Activation::kGelu;
    int64_t projection_dim = 0;  // CLIP's visual_projection (0: none)
    // ViT / CLIP: each input's rows start with the class token's placeholder row.
    bool class_token = false;
    // Swin: blocks and heads per stage (stage s is n_embd · 2^s wide), window side, MLP width ratio.
    std::vector<int64_t> depths, stage_heads;
    int64_t window = 0;
    float mlp_ratio = 0.0f;
    // The input's patch grid for one call (Swin takes any image size); 0: image_size / patch_size.
    int64_t grid_h = 0, grid_w = 0;
    // Text encoders (RoBERTa): the row of position 0 in the position table (pad_token_id + 1:
    // RoBERTa numbers real tokens from there), and the token type every token gets (row 0).
    int64_t position_offset = 0;
    int64_t pad_token = -1;
    // Vision towers feeding a decoder (LLaVA): the projector, its output width (the decoder's
    // n_embd), the hidden state it reads (HF vision_feature_layer: an index into hidden_states,
    // where 0 is the embeddings (after CLIP's pre-LayerNorm) and i the output of layer i; negative
    // counts from the end: -1 the last layer's output, -2 the penultimate; later layers are not
    // run, and no final / post LayerNorm is applied) and whether the first row is kept ("full") or
    // dropped ("default": HF drops row 0 whether or not it is a class row). projector_act is HF's
    // projector_hidden_act (mlp). proj_post_norm: llama.cpp's clip.cpp applies the tower's
    // post-LayerNorm (v.post_ln) to every row before the projector when an mmproj has one
    // (model/mmproj.h); set only by that loader.
    Projector projector = Projector::kNone;
    int64_t proj_out = 0;
    int64_t feature_layer = -1;
    bool feature_select_full = false;
    Activation projector_act = Activation::kGelu;
    bool proj_post_norm = false;
    // SigLIP: the multihead attention pooling head (HF vision_use_head) gives the pooled output.
    bool map_head = false;

    int64_t n_patches() const { return patch_size > 0 ? (image_size / patch_size) * (image_size / patch_size) : 0; }
    int64_t patch_cols() const { return n_channels * patch_size * patch_size; }  // one patch row's width
    // Rows a projector makes per image: the tower's rows (class row + patches), less the first
    // unless "full".
    int64_t n_image_tokens() const { return n_patches() + (class_token ? 1 : 0) - (feature_select_full ? 0 : 1); }
    // Layers run before the projector: hidden_states[feature_layer] is the output of this many
    // layers of n_layer (valid when 0 <= it <= n_layer).
    int64_t feature_depth(int64_t n_layer) const { return feature_layer >= 0 ? feature_layer : n_layer + 1 + feature_layer; }
    int64_t stage_of(int64_t layer) const {
        int64_t s = 0;
        for (int64_t first = 0; s + 1 < static_cast<int64_t>(depths.size()) && layer >= first + depths[s]; ++s) first += depths[s];
        return s;
    }
};

// A fusion model (model/arch/fusion.cpp): how a text encoder's and an image encoder's outputs
// become answer logits.
enum class FusionKind { kGated, kConcat, kCross, kText, kImage };
struct FusionConfig {
    FusionKind kind = FusionKind::kGated;
    int64_t text_width = 0, vision_width = 0;  // the encoders' hidden sizes
    int64_t gate_hidden = 0;                   // gated: W1's width
    int64_t cls_hidden = 0;                    // the classifier's hidden width
    int64_t n_answers = 0;
};
bool fusion_kind_from_name(const std::string& name, FusionKind* out);
const char* fusion_kind_name(FusionKind k);

struct ModelConfig {
    std::string arch = "llama";  // a registered architecture (model/arch/registry.cpp)
    std::string name;            // general.name or folder name, informational
    int64_t n_vocab = 0;
    int64_t n_embd = 0;          // C
    int64_t n_layer = 0;
    int64_t n_head = 0;          // H
    int64_t n_head_kv = 0;       // H_kv
    int64_t head_dim = 0;        // D of queries and keys (usually n_embd / n_head)
    int64_t head_dim_v = 0;      // D of values (and of the attention output); 0: head_dim
    int64_t n_ff = 0;            // FFN hidden size
    int64_t n_ctx_train = 2048;
    float rms_eps = 1e-5f;
    float rope_theta = 10000.0f;
    // true: rotate adjacent pairs (2i, 2i+1) — Meta / llama2.c / GGUF llama (Q/K rows permuted by
    // the converter). false: rotate-half (i, i+D/2) — Hugging Face checkpoints, GGUF qwen2.
    bool rope_interleaved = true;
    RopeScaling rope_scaling = RopeScaling::kNone;
    float rope_factor = 1.0f;            // linear / llama3 / yarn factor
    float rope_low_freq_factor = 1.0f;   // llama3
    float rope_high_freq_factor = 4.0f;  // llama3
    int64_t rope_orig_ctx = 0;           // llama3 / yarn: original_max_position_embeddings
    float yarn_beta_fast = 32.0f, yarn_beta_slow = 1.0f;
    float yarn_attn_factor = 1.0f;       // yarn: mscale multiplier (1 = computed from factor)
    bool tied_embeddings = false;        // output.weight absent: reuse token_embd.weight
    bool qkv_bias = false;               // qwen2: attn_q/k/v have biases
    // Sliding-window attention (Mistral): position i attends to positions (i - W, i]; 0 = full
    // causal. layer_window, when not empty, gives each layer its own W (0 = full).
    int64_t sliding_window = 0;
    std::vector<int64_t> layer_window;
    // LSH-bucketed sparse attention (model/lsh.h) instead of dense causal attention; saved with
    // the model (lsh_configure / lsh_write_keys).
    bool attention_lsh = false;
    LshSpec lsh;
    // Per-layer FFN width; empty: n_ff in every layer.
    std::vector<int64_t> layer_n_ff;
    // Rotary dimensions of a head when only part of it rotates (DeepSeek's qk_rope_head_dim);
    // 0: the whole head_dim.
    int64_t n_rot = 0;
    DeepSeekConfig ds;
    EncoderConfig enc;
    FusionConfig fusion;

    int64_t v_dim() const { return head_dim_v > 0 ? head_dim_v : head_dim; }
    int64_t window_at(int64_t l) const { return layer_window.empty() ? sliding_window : layer_window[l]; }
    int64_t ff_at(int64_t l) const { return layer_n_ff.empty() ? n_ff : layer_n_ff[l]; }
    int64_t rot_dim() const { return n_rot > 0 ? n_rot : head_dim; }
    // Blocks with weights: the main layers plus DeepSeek's multi-token-prediction modules (stored as
    // layers n_layer .. n_layer + n_mtp - 1, as in DeepSeek-V3's checkpoints).
    int64_t n_block() const { return n_layer + ds.n_mtp; }
};

}  // namespace llmforge
