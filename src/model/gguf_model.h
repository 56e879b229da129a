// GGUF metadata <-> ModelConfig and Vocab, with the key names and value types llama.cpp uses
// (gguf-py/gguf/constants.py, src/llama-arch.cpp, src/llama-vocab.cpp), so files written here
// load in llama.cpp and llama.cpp's files load here.
//
// Config keys ({arch} = general.architecture, a registered architecture: model/arch/registry.cpp):
//   {arch}.embedding_length, .block_count, .feed_forward_length, .attention.head_count,
//   .context_length, .attention.layer_norm_rms_epsilon       required
//   .attention.head_count_kv (default head_count), .rope.freq_base (default 10000),
//   .attention.key_length (default embedding_length / head_count), .value_length (default key_length),
//   .rope.dimension_count (must equal the head dim: partial RoPE is not supported),
//   .vocab_size (else the length of tokenizer.ggml.tokens, else token_embd.weight's rows),
//   .rope.scaling.type (none | linear | yarn), .factor, .original_context_length, .attn_factor.
//   Integer keys accept any integer width; float keys f32 or f64.
// Derived: rope_interleaved = the arch's GGUF convention (llama: true, GGUF llama Q/K rows are permuted by the
// converter; the others rotate-half); tied_embeddings = no output.weight tensor; qkv_bias =
// blk.0.attn_q.bias present.
//
// Llama-3 RoPE scaling has no llama.cpp metadata: llama.cpp's converter stores it as a
// rope_freqs.weight tensor (head_dim/2 f32 frequency divisors), which the model should apply
// when present. To round-trip ModelConfig::kLlama3 we write llmforge.rope.scaling.{type =
// "llama3", factor, low_freq_factor, high_freq_factor, original_context_length}, keys llama.cpp
// ignores; yarn's beta_fast/beta_slow likewise go to llmforge.rope.scaling.yarn_beta_{fast,slow}.
//
// Vocab keys: tokenizer.ggml.model (required), .pre, .tokens (required), .scores, .token_type,
// .merges (required for "gpt2"), .bos_token_id, .eos_token_id, .unknown_token_id,
// .padding_token_id, .add_bos_token, .add_eos_token, .add_space_prefix, tokenizer.chat_template.
// Defaults when a key is absent follow llama.cpp: "llama" (SentencePiece): bos 1, eos 2, unk 0,
// add_bos, add_space_prefix; "gpt2": no special ids, no space prefix, add_bos only for the
// llama3/llama-bpe/falcon3/tekken/chameleon pre-tokenizers; "bert": bos 101, unk 100, pad 0,
// add_bos. Like llama.cpp, a special-token id outside the vocabulary is ignored (the default is
// kept if valid, else -1). Token type values outside 0..6 read as kUndefined.
//
// Errors: llmforge::Error naming the file and key, expected vs found.
// Thread safety: pure functions of their arguments.
#pragma once

#include "io/gguf.h"
#include "model/config.h"
#include "tokenizer/vocab.h"

namespace llmforge {

// Throws if general.architecture is not registered (the message lists the supported ones); then
// reads the architecture's own keys (Arch::configure, e.g. mistral.attention.sliding_window).
ModelConfig gguf_read_config(const GgufFile& f);
// Works for any architecture, including llama.cpp's vocab-only files.
Vocab gguf_read_vocab(const GgufFile& f);

// Writes general.architecture, general.name (if set), general.quantization_version and the
// {arch}.* keys above. Throws if arch is unsupported, or if rope_interleaved does not match the
// arch's GGUF convention (llama: true, after permuting attn_q/attn_k rows as
// convert_hf_to_gguf.py does; qwen2: false).
void gguf_write_config(GgufWriter& w, const ModelConfig& c);
// Writes the tokenizer.ggml.* keys (scores / token_type / merges / pre / chat_template only when
// non-empty, special ids only when >= 0). Throws if tokens is empty, model is empty, scores or
// types have another length than tokens, or a special id is outside the vocabulary.
void gguf_write_vocab(GgufWriter& w, const Vocab& v);

}  // namespace llmforge
