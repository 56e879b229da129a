// TrainModel: a Llama-family decoder (arch "llama" or "qwen2", the same ModelConfig as inference)
// whose weights are f32 master copies with gradients, and whose forward pass is built from the
// differentiable ops in ops.h on a Tape.
//
// One definition with inference: the weights are validated by Model::from_files (same tensor
// names, shapes and config rules), the RoPE frequencies come from that Model, and inference()
// is an ordinary Model whose tensors are views of the master weights, so generate, perplexity and
// the server run the trained weights with no copy. Tests check that the training forward and
// Model::forward give the same logits.
//
// Layout (GGUF names): token_embd.weight (V, C), output_norm.weight (C), output.weight (V, C)
// unless tied, blk.<l>.{attn_norm (C), attn_q (H·D, C), attn_k / attn_v (H_kv·D, C),
// attn_output (C, H·D), ffn_norm (C), ffn_gate / ffn_up (F, C), ffn_down (C, F)}.weight and, for
// qwen2, attn_{q,k,v}.bias.
//
// Thread safety: one training thread; inference() may be used between steps, not during one.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/tape.h"

namespace llmforge::train {

class TrainModel {
public:
    // f32 masters from any model the engine loads (quantised weights are dequantised).
    static std::unique_ptr<TrainModel> from_files(const ModelFiles& files);
    // Random weights (seeded, reproducible): embeddings and matrices N(0, 0.02²), the two residual
    // output matrices (attn_output, ffn_down) N(0, (0.02 / sqrt(2·layers))²), norms 1, biases 0.
    // Rotate-half RoPE (the Hugging Face convention, so saved folders need no permutation).
    static std::unique_ptr<TrainModel> init_random(ModelConfig cfg, uint64_t seed);

    const ModelConfig& config() const { return cfg_; }
    std::vector<std::unique_ptr<Param>>& params() { return params_; }
    const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
    Param* find(const std::string& name) const;  // nullptr when absent
    int64_t n_params() const;
    // The inference twin over the master weights (no copy); carries `vocab` when one was set.
    const Model& inference() const { return *infer_; }
    void set_vocab(const Vocab& v);

    // Optional observer of activations during forward: "embed", "layers.<l>.out", "final_norm",
    // each (B·T, C), and "logits" (B·T, V).
    using Hook = std::function<void(const std::string& name, Var v)>;

    // Builds the graph of one micro-batch (B sequences of T tokens; targets are the inputs shifted
    // by one) and returns the mean cross-entropy node. Token ids must be < V and T <= n_ctx()
    // (checked by the caller: the data reader validates ids). dropout p is applied to the
    // attention and feed-forward outputs before each residual add; dropout_seed makes its masks.
    Var forward(Tape& t, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T, float dropout = 0.0f,
                uint64_t dropout_seed = 0, const Hook& hook = nullptr);
    // Llama weights in the interleaved-pair RoPE convention (GGUF, llama2.c) become rotate-half
    // ones: Q/K rows permuted within each head (the inverse of llama.cpp's converter permutation).
    // The model computes the same function; saved Hugging Face folders then need no permutation,
    // and a resumed run continues in the same convention. No-op when already rotate-half.
    void to_rotate_half();
    // When set, forward() records markers so that backward calls this for every parameter as soon
    // as its gradient for the micro-batch is complete (layers finish last to first; the token
    // embedding last). Distributed training starts reducing gradient buckets from it.
    std::function<void(const Param*)> on_grad_ready;
    // Recompute each layer's activations in backward instead of keeping them (less memory, about
    // one more forward pass of compute).
    bool checkpoint_activations = false;
    // Positions the RoPE tables cover.
    int64_t n_ctx() const { return n_ctx_; }
    // Grows the RoPE tables to at least n positions.
    void ensure_ctx(int64_t n);

private:
    TrainModel() = default;
    void bind();  // builds infer_ and the per-layer pointers from params_

    struct Layer {
        Param *attn_norm, *wq, *wk, *wv, *wo, *bq = nullptr, *bk = nullptr, *bv = nullptr;
        Param *ffn_norm, *w_gate, *w_up, *w_down;
    };
    ModelConfig cfg_;
    std::vector<std::unique_ptr<Param>> params_;
    Param *tok_embd_ = nullptr, *output_norm_ = nullptr, *output_ = nullptr;
    std::vector<Layer> layers_;
    Vocab vocab_;
    std::unique_ptr<Model> infer_;
    int64_t n_ctx_ = 0;
    std::vector<float> cos_, sin_;  // (n_ctx, D/2)
    std::vector<int32_t> pos_;      // (B·T) positions of the current micro-batch
};

}  // namespace llmforge::train
