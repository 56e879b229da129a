// Architectures as data + one definition of their forward pass.
//
// An Arch is everything that differs between decoder families, in one file per architecture
// (src/model/arch/<name>.cpp) plus a line in registry.cpp:
//   * its names: GGUF general.architecture, Hugging Face model_type(s) and class;
//   * its tensor table (TensorSpec): GGUF name, HF name, shape rule, how the engine binds it,
//     when it is present, its random-init rule and whether its rows follow the RoPE pair order.
//     Loading (every format), validation, random init (train, init-model), saving (HF folders,
//     GGUF) and convert all read this one table;
//   * its extra hyper-parameters (configure / write_keys over a ConfigSource / ConfigSink that
//     hide whether the keys come from GGUF metadata or a config.json);
//   * its forward pass, written once against the op interface `Ops`. The engine's EagerOps
//     (model.cpp) runs it on the fused CPU kernels with a KV memory; the trainer's TapeOps
//     (train/tape_ops.cpp) records forward and backward on the autograd tape. A new capability
//     (LoRA deltas, virtual-token embeddings, a new attention) is one more op or one more
//     argument of an op, implemented by both backends: never a second copy of a block.
//
// Thread safety: Arch objects are immutable statics.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace llmforge {

// How the engine binds a tensor: a matrix for matmuls (repacked when possible), rows looked up
// (the token embedding), or a small 1-D parameter converted to f32.
enum class TensorUse { kMatrix, kRows, kVector };

// The project's one random-init rule (TrainModel::init_random and `llmforge init-model`):
// N(0, 0.02²) for matrices and embeddings, N(0, (0.02 / sqrt(2·layers))²) for the matrices that
// write into the residual stream (GPT-2 / llm.c scaling), ones for norm gains, zeros for biases.
enum class Init { kNormal, kResidualOut, kOnes, kZeros };

struct TensorSpec {
    int slot;            // index into the arch's weight slots (global and per-layer share numbering)
    // GGUF name; per-layer tensors are "blk.<l>." + gguf, or the name itself with "{l}" standing
    // for the layer when it holds one ("v.blk.{l}.attn_q.weight", llama.cpp's vision towers).
    const char* gguf;
    // Hugging Face name ("" if none); per-layer: "model.layers.<l>." + hf, or with "{l}" as above
    // ("vision_model.encoder.layers.{l}.self_attn.q_proj.weight").
    const char* hf;
    bool per_layer;
    TensorUse use;
    Init init;
    // Shape (row-major, (out, in) for matrices) for a config and layer.
    std::vector<int64_t> (*shape)(const ModelConfig& c, int64_t layer);
    // nullptr: always present. Otherwise present exactly when it returns true (per layer: a
    // mixture-of-experts block in some layers only, dense FFN tensors in the others).
    bool (*present)(const ModelConfig& c, int64_t layer) = nullptr;
    // May be missing from a file even when present() (then the forward goes without it).
    bool optional = false;
    // Rows follow the RoPE pair order (Q/K weights and biases): permuted when converting between
    // interleaved-pair (GGUF llama, llama2.c) and rotate-half (Hugging Face) conventions.
    bool rope_rows = false;

    std::string gguf_name(int64_t layer) const;  // layer ignored for global tensors
    std::string hf_name(int64_t layer) const;    // "" when the tensor has no HF name
};

// Where an arch's extra hyper-parameters come from: GGUF metadata ("<arch>.<gguf key>") or a
// config.json ("<hf key>"). Accessors return nullopt when the key is absent.
class ConfigSource {
public:
    virtual ~ConfigSource() = default;
    virtual bool is_gguf() const = 0;
    virtual std::optional<int64_t> integer(const char* hf_key, const char* gguf_key) const = 0;
    virtual std::optional<bool> boolean(const char* hf_key, const char* gguf_key) const = 0;
    // A number (int or float) and a string. An HF key "a.b" reads b inside the object a
    // ("rope_scaling.mscale_all_dim"); a JSON null is absent.
    virtual std::optional<double> number(const char* hf_key, const char* gguf_key) const = 0;
    virtual std::optional<std::string> string(const char* hf_key, const char* gguf_key) const = 0;
    // A list of integers (Swin's "depths"); nullopt when absent. Sources without lists have none.
    virtual std::optional<std::vector<int64_t>> integers(const char* /*hf_key*/, const char* /*gguf_key*/) const {
        return std::nullopt;
    }
    virtual bool has_tensor(const std::string& gguf_name) const = 0;  // GGUF files only
    virtual const std::string& where() const = 0;                     // the file, for errors
};

class ConfigSink {
public:
    virtual ~ConfigSink() = default;
    virtual void integer(const char* hf_key, const char* gguf_key, std::optional<int64_t> v) = 0;
    virtual void boolean(const char* hf_key, const char* gguf_key, bool v) = 0;
    virtual void number(const char* hf_key, const char* gguf_key, double v) = 0;
    virtual void string(const char* hf_key, const char* gguf_key, const std::string& v) = 0;
    virtual void integers(const char* /*hf_key*/, const char* /*gguf_key*/, const std::vector<int64_t>& /*v*/) {}
};

// An activation handed between ops: (rows, cols) floats. `node` is the backend's own handle
// (the tape's node); eager backends use data directly.
struct Act {
    float* data = nullptr;
    int64_t rows = 0, cols = 0;
    void* node = nullptr;
};

// A weight by (layer, slot); layer -1 for global tensors.
struct Weight {
    int64_t layer = -1;
    int slot = -1;
};

// Per-row low-rank deltas after a linear (LoRA adapters): y_row += delta_w(x_row) for the weights
// an adapter covers. The engine applies a sequence's delta (SeqBatch::delta) to that sequence's
// rows only, so requests with different adapters share one batch.
class LinearDelta {
public:
    virtual ~LinearDelta() = default;
    virtual bool covers(Weight w) const = 0;
    // y (rows, out) += delta_w(x (rows, in)).
    virtual void apply(Weight w, const float* x, int64_t rows, int64_t in, float* y, int64_t out) const = 0;
    // Routed experts (DeepSeekMoE): w is an (E, out, in) stack and each expert's matrix has its
    // own delta. covers_experts: some expert of w has one; the engine then runs the stack's
    // products unfused and adds each gathered row's delta for its expert.
    virtual bool covers_experts(Weight) const { return false; }
    virtual bool covers_expert(Weight, int64_t /*expert*/) const { return false; }
    virtual void apply_expert(Weight, int64_t /*expert*/, const float* /*x*/, int64_t /*rows*/, int64_t /*in*/,
                              float* /*y*/, int64_t /*out*/) const {}
    // Row blocks of w's delta ΔW (out, in), for a backend that folds w into other products (MLA's
    // kv_b, absorbed into the query and output side): one vector each,
    //   apply_rows_t: y (in) += x (n) · ΔW[o0 : o0 + n, :]    apply_rows: y (n) += ΔW[o0 : o0 + n, :] · x (in)
    // A backend that calls these for some weight must not call apply() for it (and vice versa).
    virtual void apply_rows_t(Weight, int64_t /*o0*/, int64_t /*n*/, const float* /*x*/, float* /*y*/) const {}
    virtual void apply_rows(Weight, int64_t /*o0*/, int64_t /*n*/, const float* /*x*/, float* /*y*/) const {}
};

struct AttentionSpec {
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;  // head_dim: of queries and keys
    int64_t head_dim_v = 0;                           // of values and the output
    int64_t window = 0;  // 0: full causal; W > 0: position i attends to positions (i - W, i]
    float scale = 0;     // applied to q·k
    const LshSpec* lsh = nullptr;  // LSH-bucketed attention (model/lsh.h) instead of dense; null: dense
    // false: bidirectional (encoders) — every row attends to every row of its own sequence (or
    // group), with no KV memory; window and lsh must be unset. Bidirectional queries and keys may
    // come from different inputs (cross-attention: a text's rows attending to its image's), with
    // their own rows per sequence.
    bool causal = true;
    // Bidirectional only: rows attend within consecutive groups of `group` rows (Swin's windows;
    // 0: the whole sequence); `bias` (data null: none) is an (H, G, G) act added to every group's
    // scaled scores (Ops::table_bias: Swin's relative position bias); `mask` (n_mask, G, G)
    // constants added to group g's scores as mask g % n_mask (shifted windows' −100 across regions).
    int64_t group = 0;
    Act bias{};
    const float* mask = nullptr;
    int64_t n_mask = 0;
};

// DeepSeek's multi-head latent attention (MLA) of one layer. The keys and values of every head
// are up-projections of one shared latent c = RMSNorm(kv_a[:, :kv_rank]) plus one rotary key part
// k_pe = RoPE(kv_a[:, kv_rank:]) shared by all heads:
//   k_h = [c · W_UK_h^T, k_pe],  v_h = c · W_UV_h^T,  q_h = [q_nope_h, RoPE(q_pe_h)]
// where kv_b = (H·(nope + v), kv_rank) stacks [W_UK_h; W_UV_h] per head. A backend may cache only
// (c, k_pe) and fold W_UK into the query and W_UV into the output (the engine does); the math is
// the same.
struct MlaSpec {
    int64_t n_head = 0, nope = 0, rope = 0, v_dim = 0, kv_rank = 0;
    float scale = 0;  // on q·k (1/sqrt(nope + rope), times YaRN's mscale²)
    float eps = 0;    // the latent's RMSNorm
    Weight kv_norm;   // (kv_rank) gain of the latent's RMSNorm
    Weight kv_b;      // (H·(nope + v), kv_rank)
};

// A DeepSeekMoE routed-expert layer (the shared experts are an ordinary SwiGLU beside it).
// Routing of one token (route_experts, model/moe.h, is the one definition both backends use):
//   s = softmax(x · router^T) or sigmoid(x · router^T)                      (E scores)
//   selection score = s + bias (bias only chooses, V3's aux-loss-free balancing)
//   group-limited: keep the topk_group best of n_group expert groups (a group's score is its
//   best member (softmax) or its two best members' sum (sigmoid)), then the top n_used experts;
//   weights w = s[selected] (/ their sum if norm) * scale
//   out = sum_k w_k · down_e(silu(gate_e x) ⊙ up_e x)
struct MoeSpec {
    int64_t n_expert = 0, n_used = 0, n_group = 1, topk_group = 1;
    MoeGating gating = MoeGating::kSoftmax;
    bool norm = false;
    float scale = 1.0f;
    Weight router;  // (E, C) ffn_gate_inp
    Weight bias;    // (E) exp_probs_b, optional (slot -1 or unbound: none)
    Weight gate, up, down;  // (E, ff, C), (E, ff, C), (E, C, ff)
    // Shared experts (slot -1: none): one SwiGLU over every token, added to the routed output.
    Weight shared_gate, shared_up, shared_down;
};

// The op interface an architecture's forward is written against. Rows are the batch's tokens
// (every sequence's, in order); each backend knows their positions and sequences.
class Ops {
public:
    virtual ~Ops() = default;
    virtual bool has(Weight w) const = 0;  // an optional tensor is bound
    // The input rows: token embeddings (or rows given directly as embeddings).
    virtual Act embed(Weight table) = 0;
    virtual Act rmsnorm(Act x, Weight gain, float eps) = 0;
    // RMSNorm of each head_dim-wide group of x's columns, with one (head_dim) gain (Qwen3 q/k).
    virtual Act head_rmsnorm(Act x, Weight gain, int64_t head_dim, float eps) = 0;
    // out[i] = x · w[i]^T (+ bias[i] when bias[i].slot >= 0 and bound), for n projections of the
    // same input (one dispatch in decode).
    virtual void linear(Act x, const Weight* w, const Weight* bias, int n, Act* out) = 0;
    Act linear(Act x, Weight w) { return linear(x, w, Weight{}); }
    // x · w^T + bias (bias slot −1 or unbound: none).
    Act linear(Act x, Weight w, Weight bias) {
        Act y;
        linear(x, &w, &bias, 1, &y);
        return y;
    }
    // Rotary embedding of each head of x at its row's position. Backends may rotate x in place
    // (the eager one always does, the tape's does for a product's output): an architecture never
    // reads x again after passing it here.
    virtual Act rope(Act x, int64_t head_dim) = 0;
    // Causal attention of layer `layer` (its KV memory in the eager backend): q (N, H·D),
    // k (N, H_kv·D), v (N, H_kv·Dv) -> (N, H·Dv).
    virtual Act attention(int64_t layer, Act q, Act k, Act v, const AttentionSpec& a) = 0;
    // silu(x · gate^T) ⊙ (x · up^T).
    virtual Act swiglu(Act x, Weight gate, Weight up) = 0;
    // MLA of layer `layer`: q (N, H·(nope + rope)) unrotated, kv_a (N, kv_rank + rope) unrotated
    // and unnormalised -> (N, H·v_dim). See MlaSpec.
    virtual Act mla_attention(int64_t layer, Act q, Act kv_a, const MlaSpec& m) = 0;
    // The routed experts of a MoE layer: x (N, C) -> (N, C). See MoeSpec.
    virtual Act moe(int64_t layer, Act x, const MoeSpec& m) = 0;
    // [a, b] side by side: (N, ca) and (N, cb) -> (N, ca + cb).
    virtual Act concat(Act a, Act b) = 0;
    // h + y: the residual stream after a block's branch `branch` of layer `layer` (training may
    // apply dropout to y first; the eager backend adds in place).
    virtual Act residual(int64_t layer, int branch, Act h, Act y) = 0;
    // The rows whose logits are wanted (eager: each sequence's last n_out; training: all).
    virtual Act output_rows(Act h) = 0;
    // Final vocabulary projection; the backend decides where the logits go.
    virtual Act logits(Act h, Weight w) = 0;
    // Observers of named activations ("embed", "layers.<l>.out", "final_norm"); observing()
    // says whether anyone listens, so names are not built per layer for nobody.
    virtual bool observing() const { return false; }
    virtual void observe(const std::string& name, Act x) {}
    // ---- Encoder ops (vision towers, bidirectional text encoders: model/arch/vit.cpp) ----
    // Input rows given as data, `cols` wide: input 0 is a vision tower's patch rows; a fusion
    // model (model/arch/fusion.cpp) reads the text encoder's rows as 0 and the image's as 1. Every
    // input has the same number of sequences, each its own rows per sequence.
    virtual Act input(int64_t cols, int which) = 0;
    // LayerNorm of each row: (x − mean) / sqrt(var + eps) · gain + bias (bias slot −1: none).
    virtual Act layernorm(Act x, Weight gain, Weight bias, float eps) = 0;
    // f(x), elementwise.
    virtual Act activation(Act x, Activation f) = 0;
    // f(x · wᵀ + bias): a product and its activation, which a backend may do in one pass (the
    // eager one's bf16 encodes apply f to each output tile while it is in cache).
    virtual Act linear_act(Act x, Weight w, Weight bias, Activation f) { return activation(linear(x, w, bias), f); }
    // residual(layer, branch, h, x · wᵀ + bias): a branch's output projection and the residual add,
    // which a backend may do in one pass (the eager one's bf16 encodes accumulate the product into h).
    virtual Act linear_residual(int64_t layer, int branch, Act h, Act x, Weight w, Weight bias) {
        return residual(layer, branch, h, linear(x, w, bias));
    }
    // An encoder block's feed-forward branch added to the stream h (branch 1 of `layer`):
    // h + down(f(up(x) + up_b)) + down_b. The eager backend's bf16 encodes keep the hidden rows in
    // bf16, in the layout the down-projection reads, instead of an f32 copy.
    virtual Act mlp_residual(int64_t layer, Act h, Act x, Weight up, Weight up_b, Weight down, Weight down_b,
                             Activation f) {
        return linear_residual(layer, 1, h, linear_act(x, up, up_b, f), down, down_b);
    }
    // x with each sequence's first row replaced by the vector w (C): a class token in front of the
    // patches (its input row is a placeholder).
    virtual Act class_row(Act x, Weight w) = 0;
    // x + table[p + offset] for the row at position p of its sequence: learned absolute positions.
    virtual Act add_positions(Act x, Weight table, int64_t offset) = 0;
    // Softmax of each row (a fusion gate's weights).
    virtual Act softmax_rows(Act x) = 0;
    // w[:, 0]·a + w[:, 1]·b per row: w (N, 2), a and b (N, C) (the gated fusion's mix).
    virtual Act weighted_sum(Act w, Act a, Act b) = 0;
    // x + table[row] on every row (RoBERTa's one token type).
    virtual Act add_row(Act x, Weight table, int64_t row) = 0;
    // The first row of each sequence: (sequences, C) (a class token's output, a pooler's input).
    virtual Act first_rows(Act x) = 0;
    // The mean of each sequence's rows: (sequences, C) (average pooling).
    virtual Act mean_rows(Act x) = 0;
    // Rows rearranged within every sequence: its row i of the result is its row index[i] of x, or
    // zeros where index[i] < 0; n_out rows per sequence (Swin's window partition, cyclic shift and
    // padding, patch merging's 2×2 grouping). The backend copies index.
    virtual Act gather_rows(Act x, const int32_t* index, int64_t n_out) = 0;
    // Every k consecutive rows as one row: (N, C) → (N / k, k·C), the same values.
    virtual Act merge_rows(Act x, int64_t k) = 0;
    // Columns [first, first + n) of every row: (N, C) → (N, n) (a packed in-projection's q / k / v
    // parts: SigLIP's attention-pooling head).
    virtual Act columns(Act x, int64_t first, int64_t n) = 0;
    // (H, G, G): value [h][i][j] = table (P, H) [index[i·G + j]][h] — Swin's relative position bias
    // from its learned table, for AttentionSpec::bias. The backend copies index.
    virtual Act table_bias(Weight table, const int32_t* index, int64_t G, int64_t H) = 0;
    // Runs layer l's body on h. A backend may wrap it: the tape recomputes it in backward
    // (activation checkpointing) and marks the layer's gradients ready for reduction.
    virtual Act run_layer(int64_t layer, Act h, const std::function<Act(Ops&, Act)>& body) { return body(*this, h); }
};

struct Arch {
    std::string name;                   // GGUF general.architecture
    std::vector<std::string> hf_types;  // Hugging Face model_type values
    std::string hf_class;               // "architectures" entry written to config.json
    bool gguf_rope_interleaved = false; // GGUF files of this arch store permuted Q/K rows
    bool qkv_bias = false;              // new models of this arch (random init) have q/k/v biases
    std::vector<TensorSpec> tensors;
    int n_slots = 0;
    // Reads the arch's own keys after the common ones (may fail with a one-line Error).
    void (*configure)(ModelConfig& c, const ConfigSource& src) = nullptr;
    void (*write_keys)(const ModelConfig& c, ConfigSink& sink) = nullptr;
    // Checks the arch's own constraints on a config (after the common checks).
    void (*validate)(const ModelConfig& c, const std::string& where) = nullptr;
    // The decoder in three parts, driven by run_decoder(): input rows, one layer, final norm +
    // vocabulary projection (returns the logits act).
    Act (*embed)(Ops& o, const ModelConfig& c) = nullptr;
    Act (*layer)(Ops& o, const ModelConfig& c, int64_t l, Act h) = nullptr;
    Act (*head)(Ops& o, const ModelConfig& c, Act h) = nullptr;
    // Multi-token prediction (DeepSeek-V3), optional: module `depth` (1-based) from the previous
    // depth's hidden rows h (depth 1: the main model's last layer output, before the final norm)
    // and the rows' input embeddings (of the tokens one further ahead: the backend's embed()),
    // returns (logits act, its hidden rows for the next depth). The block runs as layer
    // n_layer + depth - 1.
    struct MtpOut {
        Act logits, hidden;
    };
    MtpOut (*mtp)(Ops& o, const ModelConfig& c, int64_t depth, Act h) = nullptr;
    // Encoders (vision towers, text encoders): no KV memory, bidirectional attention; embed reads
    // Ops::input (vision) or the token embedding (text: text_input), head returns the last hidden
    // state of every row, and pool (optional) the pooled output per sequence from it (run_encoder).
    bool encoder = false;
    bool text_input = false;  // an encoder of token ids (Model::encode_tokens), not of input rows
    Act (*pool)(Ops& o, const ModelConfig& c, Act last) = nullptr;
    // Vision towers with a projector into a decoder (EncoderConfig::projector, LLaVA): the
    // projected rows from the hidden state h the projector reads (its feature layer's output, all
    // rows). Null: the arch has no projector (a config asking for one fails validation).
    Act (*project)(Ops& o, const ModelConfig& c, Act h) = nullptr;
    // Hugging Face names that need the config to map (Swin's "encoder.layers.<stage>.blocks.<block>."
    // ↔ the table's flat "encoder.blocks.{l}."): to_hf false turns a file's name into the table's
    // form, true the table's into the file's. Null: the table's names are the file's.
    std::string (*hf_rename)(const ModelConfig& c, const std::string& name, bool to_hf) = nullptr;

    const TensorSpec* find_slot(int slot) const;
    bool present(const TensorSpec& t, const ModelConfig& c, int64_t layer) const {
        return t.present == nullptr || t.present(c, layer);
    }
};

// The forward pass of any architecture on any backend: embed, every layer (through
// Ops::run_layer, observed as "layers.<l>.out"), head. Returns the logits act; *last_hidden
// (optional) receives the last layer's output rows (all of them, before the head: MTP's input).
Act run_decoder(Ops& o, const Arch& a, const ModelConfig& c, Act* last_hidden = nullptr);

// The forward pass of an encoder: embed, every layer (observed as the decoder's), head (the last
// hidden state, all rows); *pooled (optional) receives the arch's pool of it (a null act when the
// arch has none). With a projector (EncoderConfig::projector): embed, the first
// feature_depth(n_layer) layers, then Arch::project — returns the projected rows and *pooled is a
// null act (no head, no pool).
Act run_encoder(Ops& o, const Arch& a, const ModelConfig& c, Act* pooled = nullptr);

// The registry (registry.cpp): by GGUF architecture name or HF model_type.
const Arch* find_arch(const std::string& name);
const Arch* find_arch_hf(const std::string& model_type);
// Throws Error naming `where`, the unknown name and the supported ones.
const Arch& arch_of(const std::string& name, const std::string& where);
std::string supported_archs();  // "llama, qwen2, qwen3, mistral"

// Every GGUF-named tensor of a config, in table order (layer tensors layer by layer).
struct NamedSpec {
    std::string name;
    std::vector<int64_t> shape;
    const TensorSpec* spec;
    int64_t layer;  // -1 for global tensors
};
std::vector<NamedSpec> tensor_list(const Arch& a, const ModelConfig& c, bool include_optional);

// GGUF name <-> Hugging Face name through the table ("" when there is none). Routed experts are
// one (E, rows, cols) GGUF tensor but E HF matrices: their HF name in the table holds '*' for the
// expert index. hf_to_gguf_name puts a per-expert name's index in *expert (-1 otherwise; without
// `expert` such names map to ""); gguf_to_hf_name returns the pattern, hf_expert_name fills it in.
// An arch with hf_rename needs the config `c` (null: names are taken as the table's).
std::string hf_to_gguf_name(const Arch& a, const std::string& hf_name, int64_t* expert = nullptr,
                            const ModelConfig* c = nullptr);
std::string gguf_to_hf_name(const Arch& a, const std::string& gguf_name, const ModelConfig* c = nullptr);
std::string hf_expert_name(const std::string& pattern, int64_t expert);

// The one Q/K row permutation between RoPE conventions, for `rows` rows of `cols` values in heads
// of head_dim rows: to_interleaved maps rotate-half row h·D + j·D/2 + i to interleaved row
// h·D + 2i + j (llama.cpp's converter permutation); false maps back.
void permute_rope_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t head_dim,
                       bool to_interleaved);
// The same permutation one row at a time: the source row of destination row `row`.
int64_t rope_row_source(int64_t row, int64_t head_dim, bool to_interleaved);

// Fills `out` (numel floats, row-major `shape`) with the init rule of `spec` for tensor `name`.
// Each row draws from its own splitmix64 stream seeded by (seed, name, row), so any row can be
// produced alone, in any order or thread.
void init_tensor(const TensorSpec& spec, const ModelConfig& c, const std::string& name,
                 const std::vector<int64_t>& shape, uint64_t seed, int64_t row, float* out);

}  // namespace llmforge
