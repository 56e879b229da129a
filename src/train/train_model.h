// TrainModel: a decoder of any registered architecture (model/arch/) for training: the same
// ModelConfig, tensor table and forward definition as inference, run on the autograd tape.
//
// One definition with inference: the tensors, their shapes and the random-init rule come from
// the arch's table; the forward is the arch's own (model/arch/<name>.cpp, run_decoder) on TapeOps,
// the tape backend of the op interface (train_model.cpp); the RoPE frequencies come from the
// inference twin, and inference() is an ordinary Model whose tensors are views of these weights,
// so generate, perplexity and the server run the trained weights with no copy. Tests check that
// both backends give the same logits for every architecture.
//
// Trainable and frozen: every tensor is a Param; trainable ones have an f32 master copy and a
// gradient and are what params() lists (the optimiser, gradient reduction and checkpoints see only
// them); frozen ones stay as the file stores them (quantised and memory-mapped included) and are
// listed by frozen().
//
// Thread safety: one training thread; inference() may be used between steps, not during one.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/tape.h"

namespace llmforge::train {
struct ExpertLora;  // train/moe_ops.h
}

namespace llmforge::train {

class TrainModel {
public:
    // Which tensors (by GGUF name) get trained; nullptr: all.
    using TrainableFn = std::function<bool(const std::string& name)>;

    // From any model the engine loads: trainable tensors become f32 masters (quantised weights
    // are dequantised); frozen ones keep the file's bytes (views share the mapping).
    static std::unique_ptr<TrainModel> from_files(const ModelFiles& files, const TrainableFn& trainable = nullptr);
    // Random weights (seeded, reproducible), by the arch table's init rule (model/arch/arch.h).
    // Rotate-half RoPE (the Hugging Face convention, so saved folders need no permutation).
    static std::unique_ptr<TrainModel> init_random(ModelConfig cfg, uint64_t seed);

    const ModelConfig& config() const { return cfg_; }
    const Arch& arch() const { return *arch_; }
    // Switches attention (Model::set_attention's rule and errors): later steps, evaluation and the
    // saved config use the choice.
    void set_attention(const AttentionChoice& choice);
    // Trainable parameters (the optimiser's, in table order).
    std::vector<std::unique_ptr<Param>>& params() { return params_; }
    const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
    // Frozen parameters.
    const std::vector<std::unique_ptr<Param>>& frozen() const { return frozen_; }
    Param* find(const std::string& name) const;  // trainable or frozen; nullptr when absent
    // The parameter bound to a weight slot (nullptr: an absent optional tensor).
    Param* param(Weight w) const;
    int64_t n_params() const;            // trainable + frozen values
    int64_t n_trainable() const;
    // Calls fn for every tensor in table order with its f32 values (frozen ones dequantised into
    // a temporary), for saving.
    void for_each_tensor(const std::function<void(const Param&, const float*)>& fn) const;
    // The inference twin over the weights (no copy); carries `vocab` when one was set.
    // MLA models: the engine keeps f32 per-head copies of attn_kv_b (Model::mla), recomputed here
    // from the current weights: take inference() again after the weights changed.
    const Model& inference() const {
        infer_->refresh_mla();
        return *infer_;
    }
    void set_vocab(const Vocab& v);

    // Optional observer of activations during forward: "embed", "layers.<l>.out", "final_norm",
    // each (B·T, C), and "logits" (B·T, V).
    using Hook = std::function<void(const std::string& name, Var v)>;

    // Builds the graph of one micro-batch (B sequences of T tokens) and returns the logits node
    // (B·T, V); the loss is the caller's (cross_entropy, distillation, masks). Token ids must be
    // < V and T <= n_ctx() (checked by the caller: the data reader validates ids). dropout p is
    // applied to the attention and feed-forward outputs before each residual add; dropout_seed
    // makes its masks.
    // doc_start (B·T, optional): packed rows (SFT data, train/data.h): for each row the index in
    // its sequence where its document starts; positions restart there and attention stays inside
    // the document. Must stay valid until backward.
    Var logits(Tape& t, const int32_t* inputs, int64_t B, int64_t T, float dropout = 0.0f,
               uint64_t dropout_seed = 0, const Hook& hook = nullptr, const int32_t* doc_start = nullptr);
    // logits() followed by the mean cross-entropy against targets (the inputs shifted by one).
    // Targets < 0 count no loss (masked tokens, padding).
    Var forward(Tape& t, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T, float dropout = 0.0f,
                uint64_t dropout_seed = 0, const Hook& hook = nullptr, const int32_t* doc_start = nullptr);
    // Encoder architectures (vision towers): the graph of B inputs of T rows each, input
    // (B·T, input width) floats (Model::encode's rows: image_patch_rows per image). Returns the last
    // hidden state (B·T, C); *pooled (optional) gets the pooled output (B, ·) or null when the arch
    // has none. input_grad: the input rows get a gradient (last_input, read after backward);
    // lengths (B, optional): each input's valid rows (text encoders' padding). Throws Error for a
    // decoder. A vision tower with a projector (EncoderConfig::projector, LLaVA) returns the
    // projected rows instead, (B·n_image_tokens(), proj_out), from the layers up to its feature
    // layer (model/arch/vit.cpp), *pooled null; T must be the tower's rows per image.
    Var encode(Tape& t, const float* input, int64_t B, int64_t T, Var* pooled = nullptr, bool input_grad = false,
               const int32_t* lengths = nullptr, const Hook& hook = nullptr, int64_t grid_h = 0, int64_t grid_w = 0);
    // Text encoders (RoBERTa): B sequences of token ids right-padded to T, lengths[b] real tokens
    // each (ids < vocab: the caller's check, as for logits()). Returns the last hidden state
    // (B·T, C); padded rows' values mean nothing (leave them out of the loss).
    Var encode_tokens(Tape& t, const int32_t* ids, const int32_t* lengths, int64_t B, int64_t T, Var* pooled = nullptr,
                      const Hook& hook = nullptr);
    // A fusion model (arch "fusion"): the answer logits (B, answers) from a text encoder's output
    // rows (B·T_text, ·) and an image encoder's (B·T_image, ·), nodes of the same tape (their
    // models get the gradients through them). The hook sees "gate" for gated fusion.
    Var fuse(Tape& t, Var text, Var image, int64_t B, const Hook& hook = nullptr);
    // The input rows node of the last encode().
    Var last_input = nullptr;
    // DeepSeek-V3's multi-token prediction: with mtp_lambda > 0 (and an MTP module in the model),
    // forward() returns CE + mtp_lambda · CE_mtp (mtp_loss: the module's prediction of token t+2 from
    // row t's hidden state and token t+1); last_mtp_loss holds the MTP term (for the log).
    float mtp_lambda = 0;
    Var last_mtp_loss;
    Var mtp_loss(Tape& t, const int32_t* targets, int64_t B, int64_t T, float dropout, uint64_t dropout_seed,
                 const int32_t* doc_start);
    // Weights in the interleaved-pair RoPE convention (GGUF llama, llama2.c) become rotate-half
    // ones: rows of every table tensor marked rope_rows permuted within each head (the inverse of
    // llama.cpp's converter permutation). The model computes the same function; saved Hugging Face
    // folders then need no permutation, and a resumed run continues in the same convention.
    // No-op when already rotate-half, and for an architecture whose rotary convention is fixed
    // (no rope_rows tensors: DeepSeek rotates adjacent pairs of its rope part in every format, so
    // its weights stay as they are and saved folders keep that convention).
    void to_rotate_half();
    // The arch has Q/K rows in RoPE pair order (to_rotate_half can convert them).
    static bool rope_rows_convertible(const Arch& a);
    // Mixture-of-experts statistics of the forwards run with gradients since the caller last
    // cleared them (a training step's micro-batches; evaluation and activation recomputation do
    // not count): tokens routed to each expert per MoE layer, and the sum of the balance losses.
    struct MoeStats {
        std::map<int64_t, std::vector<int64_t>> load;  // layer -> (E) tokens per expert
        double aux = 0;
        void clear() { load.clear(), aux = 0; }
    };
    MoeStats moe_stats;
    // LSH attention: a fingerprint of every bucket the last logits() chose (its layers' queries
    // and keys); a finite-difference check skips perturbations that moved one (a jump, not a
    // derivative), as it does for MoE routing.
    uint64_t lsh_fingerprint = 0;
    // DeepSeek-V3's auxiliary-loss-free balancing (§2.1.2) from moe_stats' loads: each MoE layer's
    // selection bias (exp_probs_b, when trainable) moves by +gamma for experts that got fewer tokens
    // than the layer's mean and by -gamma for those that got more. The bias only chooses experts
    // (model/moe.h) and gets no gradient: this rule is all that changes it.
    void balance_experts(float gamma);
    // DeepSeek-V3's sequence-wise balance loss weight α (train/moe_ops.h, moe_route); 0: none.
    float moe_aux_alpha = 0.0f;
    // When set, forward() records markers so that backward calls this for every trainable
    // parameter as soon as its gradient for the micro-batch is complete (layers finish last to
    // first; the token embedding last). Distributed training starts reducing buckets from it.
    std::function<void(const Param*)> on_grad_ready;
    // Adapter seams (LoRA, prompt tuning and image inputs plug in here, for every architecture):
    // after_linear is called after each linear with its weight, input and output and returns the
    // output to use (y + a low-rank delta of x); input_rows is called with the (B·T, C) input
    // rows after the embedding and returns the rows to use: (B·T', C) with T' >= T, the T' - T
    // added rows of each sequence placed before its tokens (virtual-token or image rows). The
    // added rows take positions 0..T'-T-1, the tokens follow; logits() returns all B·T' rows
    // and forward() counts no loss on the added ones.
    std::function<Var(Tape&, Weight, Var x, Var y)> after_linear;
    // The same for routed experts, whose products run inside one op (moe_experts) that
    // after_linear does not see: called with each MoE layer's expert stack (gate, up, down) and
    // returns that stack's per-expert LoRA terms (train/moe_ops.h ExpertLora), or null.
    std::function<std::shared_ptr<const ExpertLora>(Tape&, Weight)> expert_lora;
    std::function<Var(Tape&, Var rows, int64_t batch)> input_rows;
    // Quantisation-aware training seams (train/qat.h): weight_values gives, for a trainable
    // weight, the values its products and lookups read instead of the master (its fake-quantised
    // copy; null: the master) while the gradient still goes to the master (straight-through);
    // linear_input, when set, replaces each linear's input before the product (per-token int8
    // fake quantisation; after_linear still sees the original input).
    std::function<const float*(const Param&)> weight_values;
    std::function<Var(Tape&, Var x)> linear_input;
    // PEFT's prompt-tuning loss: the last added row predicts each sequence's first token (its
    // labels are the token ids with -100 over the virtual rows, shifted by one). SFT data, whose
    // first token is template text, turns this off.
    bool added_rows_predict_first = true;
    // FGM adversarial training: when non-empty ((B·T, C) floats), added to the token embedding
    // rows of the next forward (before input_rows); the caller sets and clears it.
    std::vector<float> embed_offset;
    // The token-embedding rows of the last forward (B·T, C), before input_rows: their gradient
    // after backward is what FGM perturbs along.
    Var last_embed = nullptr;
    // Keep a gradient for last_embed even when the embedding is frozen (FGM needs it).
    bool need_embed_grad = false;
    // Recompute each layer's activations in backward instead of keeping them (less memory, about
    // one more forward pass of compute).
    bool checkpoint_activations = false;
    // Keep what each finished layer saved for backward in bf16 (Tape::store_bf16): its input and
    // every value it made but its output. Forward is unchanged; backward reads those values
    // rounded to bf16 (weight gradients in bf16 precision are unchanged: they round their input
    // anyway). Ignored with checkpoint_activations (a layer then keeps only its input, and
    // recomputing from a rounded input would change the recomputed forward).
    bool store_activations_bf16 = false;
    // Positions the RoPE tables cover.
    int64_t n_ctx() const { return n_ctx_; }
    // Grows the RoPE tables to at least n positions.
    void ensure_ctx(int64_t n);
    // Positions of B sequences of T rows (pos_, and doc_ for packed rows), the RoPE tables grown
    // to T; `added` rows (input_rows) precede each sequence's doc_start-described tokens.
    void set_positions(int64_t B, int64_t T, const int32_t* doc_start, int64_t added);

private:
    friend class TapeOps;
    TrainModel() = default;
    void bind();  // builds infer_ and the slot table from the params

    ModelConfig cfg_;
    const Arch* arch_ = nullptr;
    std::vector<std::unique_ptr<Param>> params_, frozen_;
    std::vector<Param*> slots_;  // (n_layer + 1) x arch slots, as Model's
    Vocab vocab_;
    std::unique_ptr<Model> infer_;
    int64_t n_ctx_ = 0;
    std::vector<float> cos_, sin_;  // (n_ctx, D/2)
    std::vector<int32_t> pos_;      // (B·T) positions of the current micro-batch
    std::vector<int32_t> targets_;  // forward(): targets with the input_rows rows masked (kept for backward)
    Var last_hidden_ = nullptr;     // logits(): the last layer's output rows (MTP's input)
    std::vector<int32_t> mtp_ids_, mtp_targets_;  // mtp_loss(): kept for backward
    std::vector<int32_t> doc_;      // (B·T) document starts of packed rows (kept for backward)
};

}  // namespace llmforge::train
