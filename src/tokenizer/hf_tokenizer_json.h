// Maps a Hugging Face tokenizer.json (plus, optionally, its tokenizer_config.json) into a Vocab,
// the same shape GGUF files carry, so Tokenizer::create() can use it.
//
// Supported models:
//  * "BPE" with a ByteLevel pre-tokenizer or decoder (byte-level BPE -> vocab.model "gpt2").
//    vocab.pre is recognised from the pre-tokenizer's Split regexes: the Llama 3 regex ->
//    "llama-bpe", Qwen 2 -> "qwen2", DeepSeek V3 -> "deepseek-v3", a bare ByteLevel(use_regex)
//    -> "gpt-2"; anything else throws Error unless `pre` names it. Normalizer: none or NFC (the
//    text is taken as already NFC).
//  * "BPE" over SentencePiece pieces (byte_fallback, "▁" via Prepend+Replace normalizers or a
//    Metaspace pre-tokenizer: Llama 2, Mistral, TinyLlama) -> vocab.model "llama"; each merged
//    piece gets score -rank of the first merge building it, so SpmTokenizer merges in rank
//    order.
//  * "WordPiece" with BertNormalizer(lowercase) + BertPreTokenizer (uncased BERT, BGE ->
//    vocab.model "bert"); tokens are stored in llama.cpp's phantom-space form.
// Mapping (as llama.cpp's convert_hf_to_gguf.py does it): model.vocab -> tokens (normal);
// added_tokens -> control when "special", else user-defined; ids missing from both ->
// "[PAD<id>]" unused; merges given as "a b" strings or ["a", "b"] pairs -> "a b".
// Special tokens: tokenizer_config.json (bos/eos/unk/pad as string or {"content": ...},
// add_bos_token, add_eos_token), else the TemplateProcessing post-processor ("[CLS] $A [SEP]"
// -> BOS [CLS], EOS [SEP], both added), else model.unk_token; with neither config nor
// template, BOS is added when one is named. The chat template: chat_template_from_config().
//
// Errors: unreadable files, malformed JSON, unsupported models throw Error naming the file.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/vocab.h"

namespace llmforge {

// Reads tokenizer.json (and tokenizer_config.json when the path is not empty). Files must be
// decompressed already. `pre` overrides the detected pre-tokenizer name when not empty.
Vocab hf_tokenizer_json_load(const std::string& tokenizer_json_path,
                             const std::string& tokenizer_config_path = "",
                             std::string_view pre = "");

// The same from the files' contents; `source` names them in error messages.
Vocab hf_tokenizer_json_parse(std::string_view tokenizer_json, std::string_view tokenizer_config,
                              std::string_view pre = "",
                              std::string_view source = "tokenizer.json");

}  // namespace llmforge
