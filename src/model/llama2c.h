// llama2.c (Karpathy) checkpoints and tok*.bin tokenizers — the "legacy" (version 0) export.
//
// Checkpoint: 7 x int32 LE header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len}; a negative vocab_size means a separate classifier (wcls) follows the weights,
// otherwise the classifier is the token embedding. Then f32 weights, each matrix [out][in]:
// token_embedding[V][C], rms_att[L][C], wq[L][C][C], wk[L][KV][C], wv[L][KV][C], wo[L][C][C],
// rms_ffn[L][C], w1[L][F][C], w2[L][C][F], w3[L][F][C], rms_final[C], two unused RoPE tables
// (seq_len x head_size/2 each), then wcls[V][C] if separate. (KV = C * n_kv_heads / n_heads.)
//
// Llama2cCheckpoint maps the file and exposes every weight as a Tensor view under its GGUF name:
//   token_embd.weight [V, C]         blk.{l}.attn_norm.weight [C]   blk.{l}.attn_q.weight [C, C]
//   blk.{l}.attn_k.weight [KV, C]    blk.{l}.attn_v.weight [KV, C]  blk.{l}.attn_output.weight [C, C]
//   blk.{l}.ffn_norm.weight [C]      blk.{l}.ffn_gate.weight (w1) [F, C]
//   blk.{l}.ffn_down.weight (w2) [C, F]   blk.{l}.ffn_up.weight (w3) [F, C]
//   output_norm.weight [C]           output.weight [V, C] (only with a separate classifier)
// and a ModelConfig: arch llama, rope_interleaved = true, rms_eps 1e-5, rope_theta 10000,
// n_ctx_train = seq_len, tied_embeddings = !separate classifier.
//
// The header is validated (every field > 0 except vocab_size's sign, sane upper bounds, heads
// dividing dim and each other) and the file size must equal exactly what the header implies;
// otherwise an Error gives the expected and the found size. The newer "ak42" export versions
// are rejected with a hint.
//
// Tokenizer (tok*.bin): int32 max_token_length, then per token: f32 score, int32 length, bytes.
// The Vocab: model "llama", tokens, scores; types: id 0 kUnknown, ids 1 and 2 kControl, "<0xHH>"
// kByte, else kNormal; bos 1, eos 2, unk 0, add_bos, add_space_prefix. llama2.c's exporter wrote
// SentencePiece's U+2581 as ' '; in kNormal pieces it is restored to U+2581, so the vocabulary
// matches the SentencePiece model (and llama.cpp). Other pieces are kept byte for byte (ids 1
// and 2 are "\n<s>\n" and "\n</s>\n" in llama2.c files).
//
// Thread safety: a Llama2cCheckpoint is immutable after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"
#include "model/config.h"
#include "tokenizer/vocab.h"

namespace llmforge {

class Llama2cCheckpoint {
public:
    // Maps and validates `path`. Throws Error on malformed input.
    explicit Llama2cCheckpoint(const std::string& path);
    // Same from an already opened file (the descriptor may be closed afterwards).
    explicit Llama2cCheckpoint(const RegularFile& file);
    // Caller-owned bytes; `owner` (may be null) keeps them alive for the tensors' lifetime. The
    // bytes must be 4-byte aligned.
    static Llama2cCheckpoint from_memory(const void* data, size_t size, std::string name,
                                         std::shared_ptr<const void> owner = nullptr);

    const std::string& path() const { return name_; }
    const ModelConfig& config() const { return config_; }
    bool shared_classifier() const { return config_.tied_embeddings; }
    // Every weight, in file order, named as above.
    const std::vector<Tensor>& tensors() const { return tensors_; }
    const Tensor* find_tensor(std::string_view name) const;  // nullptr if absent
    bool has_tensor(std::string_view name) const { return find_tensor(name) != nullptr; }
    Tensor tensor(std::string_view name) const;  // throws naming the file if absent

private:
    Llama2cCheckpoint() = default;
    void parse(const uint8_t* data, size_t size);

    std::string name_;
    std::shared_ptr<const void> owner_;
    ModelConfig config_;
    std::vector<Tensor> tensors_;
    std::map<std::string, size_t, std::less<>> index_;
};

// Reads a tok*.bin. n_vocab >= 0 (the checkpoint's vocab size) requires exactly that many tokens;
// -1 reads tokens until the end of the file.
Vocab llama2c_read_vocab(const std::string& path, int64_t n_vocab = -1);
Vocab llama2c_read_vocab(const RegularFile& file, int64_t n_vocab = -1);
// Same from bytes in memory; `name` is used in messages.
Vocab llama2c_parse_vocab(const void* data, size_t size, const std::string& name,
                          int64_t n_vocab = -1);

}  // namespace llmforge
