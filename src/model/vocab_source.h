// Loads a tokenizer vocabulary on its own, from whatever file a user points at: a GGUF file
// (a full model or a vocabulary-only one), a Hugging Face tokenizer.json (its sibling
// tokenizer_config.json is read when present), a folder holding tokenizer.json, or a llama2.c
// tok*.bin. Used by `llmforge tokenize/detokenize/chat-template` and by --tokenizer options.
//
// Errors: a missing path, a GGUF without vocabulary and unreadable files throw llmforge::Error
// naming the path and what was expected.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/vocab.h"

namespace llmforge {

// `n_vocab` only matters for llama2.c tok*.bin files, which do not record their size (-1: every
// entry in the file).
Vocab load_vocab(const std::string& path, int64_t n_vocab = -1);

}  // namespace llmforge
