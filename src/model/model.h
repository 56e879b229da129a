// A loaded decoder: config, vocabulary and weights (views into memory-mapped files, or owned
// tensors when a format had to be converted), plus the eager forward pass.
//
// The architecture (model/arch/: llama, qwen2, qwen3, mistral) supplies the tensor table the
// weights are bound and validated by, and the forward pass, which runs here on EagerOps: the
// fused CPU kernels, repacked q8_0/q4_0 layouts and the KV memory. Weights use GGUF tensor
// names; other formats are mapped at load.
//
// Thread safety: a Model is immutable after load and may be shared by many Contexts; forward()
// writes only to the KvCache and scratch passed in.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "tokenizer/vocab.h"

namespace llmforge {

namespace kernels {
struct PackedBf16;      // kernels/cpu/gemm_bf16.h
struct PackedRowsBf16;  // kernels/cpu/gemm_bf16.h
}

// What a loader hands over: config, vocabulary and the weights under GGUF names.
struct ModelFiles {
    std::string path;
    std::string format;  // "gguf", "safetensors", "llama2c"
    ModelConfig config;
    Vocab vocab;
    std::map<std::string, Tensor> tensors;
};

// Opens a GGUF file, a Hugging Face folder (config.json + safetensors) or a llama2.c checkpoint
// (chosen by content, not by name). tokenizer_path (optional) overrides/supplies the vocabulary:
// a llama2.c tok*.bin, or a GGUF whose tokenizer.* keys are used.
ModelFiles open_model_files(const std::string& path, const std::string& tokenizer_path = "");

// Moves every tensor out of the file mapping into one anonymous buffer that asks for transparent
// huge pages (madvise). Decode streams all weights once per token; with 4 KiB file pages that
// costs a TLB miss per page, and huge pages measured 15-20% faster generation here
// (docs/PERFORMANCE.md). Costs a read of the whole file at load, in slices whose file pages are
// released as they are copied, so the peak is one copy of the weights (1.02x a 1.1B q8_0 file).
void load_into_memory(ModelFiles& files);

// Scratch buffers of one forward pass, reused between calls (grown on demand).
struct ForwardScratch {
    std::vector<float> x;                  // (T, C) the residual stream
    std::vector<std::vector<float>> bufs;  // per-layer temporaries, reused layer after layer
    std::vector<float> rope_cs, rope_sn, att_scores, out_logits;
    std::vector<int64_t> row_seq, row_pos;  // batched forward: each row's sequence and position
    std::vector<int32_t> row_tok;
    std::vector<std::pair<int64_t, int64_t>> att_blocks;  // prompt blocks: (first row, rows)
    std::vector<int64_t> att_rows;                        // rows attended one position at a time
    std::vector<float> att_block;                         // per thread: a block's scores
    std::vector<float> att_kv;  // per thread: a non-f32 cache's K/V rows of one head, as f32, for a block
    // Batch-invariant mode (the server's default): a row's logits are bit-identical whatever
    // else is in the batch. For q8_0 / q4_0 weights the kernels have a one-row path that sums in
    // the tiles' order (KernelTable::gemm_invariant, ~8% slower decode); for other types a lone
    // row is computed as two identical rows and BLAS is not used (about half the decode speed).
    bool batch_invariant = false;
    kernels::MatmulScratch mm;
    std::shared_ptr<kernels::PackedRowsBf16> mlp_rows;  // bf16 encodes: an MLP's hidden rows (EagerOps)
    // Optional observer of activations (tests, debugging): called with "embed",
    // "layers.<l>.out" (residual stream after block l) and "final_norm", each (T, C).
    std::function<void(const std::string& name, const float* data, int64_t count)> hook;
    // Optional observer of every weight product's input (importance matrices, Wanda pruning):
    // called before the product with the weight's GGUF tensor name and the (rows, cols)
    // activations it multiplies (the batch's real rows only; fused products report each weight).
    std::function<void(const std::string& weight, const float* x, int64_t rows, int64_t cols)> matmul_hook;
    // Optional observer of mixture-of-experts routing: layer, each real row's n_used chosen
    // experts and weights (row-major (rows, n_used)).
    std::function<void(int64_t layer, const int32_t* sel, const float* weight, int64_t rows, int64_t n_used)> moe_hook;
    // keep_hidden: forward_batch copies every real row's last hidden state (the last layer's
    // output, before the final norm) into `hidden` (rows, n_embd): the MTP draft's input.
    bool keep_hidden = false;
    std::vector<float> hidden, mtp_in;
    // MoE and MLA temporaries.
    std::vector<int32_t> moe_sel;
    std::vector<float> moe_w, moe_scores, moe_x, moe_h, moe_y;
    // LSH attention's score counts and error probe (model/lsh.h LshStats): added to when set.
    LshStats* lsh_stats = nullptr;
};

// One sequence's share of a batched forward pass (continuous batching: several sequences, each
// with its own KV cache, go through the weights together as the rows of one matrix).
struct SeqBatch {
    KvMemory* cache = nullptr;
    const int32_t* tokens = nullptr;
    int64_t n = 0;       // tokens at positions pos0 .. pos0+n-1
    int64_t pos0 = 0;    // the cache must already hold rows [0, pos0)
    float* logits = nullptr;  // (n_out, V) for the last n_out tokens
    int64_t n_out = 0;        // 0: no logits (a prefill chunk that is not the prompt's last)
    // Input rows given as embeddings instead of token ids (virtual tokens, image patches):
    // (n, n_embd) floats; tokens is then not read (may be null).
    const float* embd = nullptr;
    // This sequence's low-rank deltas after the linears they cover (a LoRA adapter; null: none).
    const LinearDelta* delta = nullptr;
};

// What an encoder returns (Model::encode): the last hidden state of every row and the pooled
// output per sequence (none when the architecture has no pool).
struct EncodeOutput {
    std::vector<float> last;    // (sequences · rows, cols)
    std::vector<float> pooled;  // (sequences, pooled_cols)
    int64_t rows = 0, cols = 0, pooled_cols = 0;
};

// The input rows of a vision tower for one image's pixel values (channels, height, width),
// channel-major as image processors return them: a zero placeholder row (the class token's, for
// models with one: EncoderConfig::class_token), then each patch × patch square, the patch grid row
// by row, flattened in (channel, y, x) order — the order of a stride-`patch` convolution's (out,
// channels, patch, patch) weight, so the convolution is one linear. `out` holds
// (placeholder + patches) · channels · patch² floats.
void image_patch_rows(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t patch, float* out,
                      bool class_placeholder = true);

class EagerOps;  // model.cpp: the engine's backend of Ops

class Model {
public:
    // Loads and validates (every tensor present with the expected shape and a supported dtype).
    // use_mmap = false: load_into_memory() before binding.
    static std::unique_ptr<Model> load(const std::string& path, const std::string& tokenizer_path = "",
                                       bool use_mmap = true);
    // repack = false keeps every matrix in the file's layout (no copies: the trainer's twin).
    static std::unique_ptr<Model> from_files(ModelFiles files, bool repack = true);
    // Checks `files` exactly as from_files() does (throws Error) without building a runnable
    // model (nothing is repacked); returns the config as a loaded model would report it.
    static ModelConfig validate(const ModelFiles& files);
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return cfg_; }
    const Vocab& vocab() const { return files_.vocab; }
    const ModelFiles& files() const { return files_; }
    int64_t n_params() const;
    size_t weight_bytes() const;

    // Runs n tokens at positions pos[0..n) through the model, writing K/V into cache rows pos[i]
    // and reading rows [0, pos[i]] for attention (causal). Positions must be consecutive
    // (pos[i] = pos[0] + i) and < cache.n_ctx(); the cache must already hold rows [0, pos[0]).
    // logits: (n_out, V) for the last n_out tokens (n_out = 1 for decode, n for scoring).
    // Token ids must be < V (checked: throws Error).
    void forward(const int32_t* tokens, int64_t n, int64_t pos0, KvMemory& cache, float* logits,
                 int64_t n_out, ThreadPool& pool, ForwardScratch& s) const;
    // The same for several sequences at once: the rows of all seqs go through every matmul
    // together; RoPE, the cache writes and attention use each row's own position and cache.
    // Every seq is validated first (positions, ids) and nothing runs if one is bad. With
    // s.batch_invariant each row's result is bit-identical whatever the other rows are;
    // otherwise it agrees to rounding.
    void forward_batch(const SeqBatch* seqs, int64_t n_seqs, ThreadPool& pool, ForwardScratch& s) const;

    // Encoder architectures (Arch::encoder: vision towers): n_seqs inputs of `rows` input rows
    // each, (n_seqs · rows, input width) floats (image_patch_rows per image); bidirectional
    // attention within each input, no KV memory. Throws Error for a decoder. ForwardScratch::hook
    // observes "embed" and "layers.<l>.out" (every layer's hidden states, e.g. a LLaVA projector's
    // input layer).
    // grid_h × grid_w: the inputs' patch grid for architectures that take any image size (Swin;
    // 0: the config's image_size / patch_size).
    // A vision tower with a projector (EncoderConfig::projector, LLaVA; an mmproj: model/mmproj.h)
    // runs the layers up to its feature layer only and returns the projected rows: out.last
    // (n_seqs · n_image_tokens(), proj_out), out.rows = n_image_tokens(), out.cols = proj_out, no
    // pooled output; `rows` must then be the tower's rows per image (class row + patches).
    void encode(const float* input, int64_t n_seqs, int64_t rows, EncodeOutput& out, ThreadPool& pool,
                ForwardScratch& s, int64_t grid_h = 0, int64_t grid_w = 0) const;
    // Text encoders (Arch::text_input: RoBERTa): n_seqs sequences of token ids right-padded to T,
    // (n_seqs · T) ids, lengths[j] real tokens in sequence j (the rest masked as keys; their rows'
    // outputs mean nothing). Throws Error for ids out of range or another architecture.
    void encode_tokens(const int32_t* ids, const int32_t* lengths, int64_t n_seqs, int64_t T, EncodeOutput& out,
                       ThreadPool& pool, ForwardScratch& s) const;
    // A fusion model (arch "fusion": model/arch/fusion.cpp): n_seqs questions' text-encoder rows
    // (n_seqs · text_rows, text width) and their images' vision-tower rows (n_seqs · image_rows,
    // vision width) → out.pooled = the answer logits (n_seqs, answers). ForwardScratch::hook
    // observes "gate" (n_seqs, 2) for gated fusion.
    void fuse(const float* text, int64_t text_rows, const float* image, int64_t image_rows, int64_t n_seqs,
              EncodeOutput& out, ThreadPool& pool, ForwardScratch& s) const;
    bool is_encoder() const { return arch_->encoder; }
    // The precision of encoder weight products (encode, encode_tokens, fuse): F32 (the default:
    // exact against float references) or BF16 (weights and product inputs rounded to bf16, sums
    // in f32, on AMX tiles where the CPU has them: docs/PERFORMANCE.md "Vision encoder" has the
    // speed and the accuracy against f32). Norms, activations and softmax stay f32. Each weight
    // is packed in bf16 on first use and kept (half the bytes of an f32 copy). Call before
    // encoding (not concurrently with it). Throws Error (one line) for another type, or for
    // bf16 on a model whose weights may change under it (from_files with repack = false: the
    // trainer's twin), which packs nothing.
    void set_encode_type(DType t);
    DType encode_type() const { return encode_type_; }

    // Multi-token prediction (DeepSeek-V3's MTP module, depth 1): n rows at positions pos0.. of
    // the main model's hidden states (ForwardScratch::keep_hidden) with the tokens one position
    // further (next_tokens[i] = the token at pos0 + i + 1); writes the module's KV rows at those
    // positions (layer n_layer of `cache`) and the logits of the last n_out rows (a guess of the
    // token at each position + 2). The module's KV rows must hold positions [0, pos0). Throws
    // Error when the model has no MTP weights.
    bool has_mtp() const { return cfg_.ds.n_mtp > 0 && arch_->mtp != nullptr; }
    void forward_mtp(const float* hidden, const int32_t* next_tokens, int64_t n, int64_t pos0, KvMemory& cache,
                     float* logits, int64_t n_out, ThreadPool& pool, ForwardScratch& s) const;

    // A new, empty KV memory for one sequence of up to n_ctx positions, in the layout this
    // model's attention reads, with keys and values stored as `types` (f32, f16, q8_0, q4_0;
    // throws Error, one line, when the head size does not fit a quantised type's blocks).
    std::unique_ptr<KvMemory> new_memory(int64_t n_ctx, KvTypes types = {}) const;

    // Attention at run time: dense, or LSH-bucketed (model/lsh.h) with `spec` — also for a model
    // trained dense (`--attention lsh`, to measure what LSH costs it). Call before any memory is
    // made (memories keep buckets for the settings they were made with). Throws Error (one line,
    // naming `where`) for invalid settings or an architecture whose attention cannot run it.
    void set_attention(bool lsh, const LshSpec& spec, const std::string& where);
    // The same from a run-time choice: kind "lsh" (or LSH settings on an LSH model) runs LSH with
    // the choice's settings over the model's own; "dense" runs dense; throws Error (one line)
    // for an unknown kind or LSH settings without LSH.
    void set_attention(const AttentionChoice& choice);
    // The rotations of (layer, kv head) when the model runs LSH attention.
    const LshHash& lsh_hash(int64_t layer, int64_t kv_head) const {
        return lsh_hash_[static_cast<size_t>(layer * cfg_.n_head_kv + kv_head)];
    }

    // Every weight matrix has a row-invariant gemm: batch-invariant mode costs nothing.
    bool rows_batch_invariant() const { return rows_invariant_; }
    const Arch& arch() const { return *arch_; }
    // A bound weight; nullptr when the (optional) tensor is absent.
    const Tensor* weight(Weight w) const;
    // The GGUF tensor name of a weight slot ("blk.3.attn_q.weight").
    std::string weight_name(Weight w) const;
    const Tensor& tok_embd() const { return files_.tensors.at("token_embd.weight"); }
    // RoPE after the config's scaling: per-pair inverse frequencies (D/2) and the factor cos/sin
    // are multiplied by (YaRN's attention factor, else 1). The trainer builds its tables from these.
    const std::vector<double>& rope_inv_freq() const { return inv_freq_; }
    double rope_mscale() const { return rope_mscale_; }
    // Expert e of a routed-expert tensor (E, rows, cols) as a (rows, cols) view.
    const Tensor& expert(Weight w, int64_t e) const;
    // MLA up-projections of layer l split per head from attn_kv_b, f32: W_UK_h^T as (H, kv_rank,
    // nope) (queries are folded into the latent space with it) and W_UV_h as (H, v, kv_rank).
    struct MlaAbsorbed {
        std::vector<Tensor> uk_t, uv;  // per head
    };
    const MlaAbsorbed& mla(int64_t layer) const { return mla_[layer]; }
    // Recomputes the absorbed forms from attn_kv_b after its values changed in place (the trainer's
    // twin over its master weights: TrainModel::inference()). No-op without MLA.
    void refresh_mla() {
        if (cfg_.ds.kv_lora_rank > 0) bind_mla();
    }

private:
    explicit Model(ModelFiles files);
    // weights_private: the tensors' bytes are this model's own writable buffer (load_into_memory),
    // so q8_0/q4_0 matrices are repacked in place; otherwise into new buffers.
    void bind_weights(bool weights_private, bool repack = true);
    void check_tensor(const NamedSpec& ns, const Tensor& t, bool matmul) const;
    void bind_rope();
    void bind_mla();
    void run_rows(const SeqBatch* seqs, int64_t n_seqs, ThreadPool& pool, ForwardScratch& s,
                  const std::function<void(Ops&)>& body) const;
    void run_encoder_rows(const ModelConfig& c, int64_t n_seqs, int64_t rows, const int32_t* tokens,
                          const std::function<void(EagerOps&)>& inputs, bool keep_last, EncodeOutput& out,
                          ThreadPool& pool, ForwardScratch& s) const;
    void rope_tables(int64_t pos, float* cs, float* sn) const;
    // An encoder weight (f32 or bf16) packed for bf16 products (kernels/cpu/gemm_bf16.h), made on
    // the first call for w and kept; thread-safe. nullptr without a pack cache or for other dtypes.
    struct EncodePacks;
    const kernels::PackedBf16* encode_pack(const Tensor& w, ThreadPool& pool) const;
    friend class EagerOps;

    ModelFiles files_;
    ModelConfig cfg_;
    const Arch* arch_ = nullptr;
    std::vector<Tensor> weights_;    // (n_block() + 1) x arch slots: globals first, then each layer (MTP blocks last)
    std::vector<bool> bound_;        // the same index: the tensor is present
    std::vector<double> inv_freq_;  // (D/2) after rope scaling
    bool rows_invariant_ = false;   // every matrix's gemm is row-invariant (batch_invariant is free)
    double rope_mscale_ = 1.0;      // yarn attention factor applied to cos/sin
    std::map<size_t, std::vector<Tensor>> experts_;  // weights_ index -> per-expert views
    std::vector<MlaAbsorbed> mla_;                   // per layer (MLA architectures)
    std::vector<LshHash> lsh_hash_;                  // (layer, kv head) with LSH attention
    DType encode_type_ = DType::F32;                 // set_encode_type
    std::shared_ptr<EncodePacks> packs_;             // encode_pack's cache; null: the weights may change
};

}  // namespace llmforge
