// Reading a whole (small) file into memory: chat templates, JSON configs, tokenizer.json.
// Model weights are not read this way; they are memory-mapped (MappedFile, core/tensor.h).
#pragma once

#include <string>

namespace llmforge {

// The file's bytes. Throws Error "cannot open WHAT 'PATH' (hint: HINT)" when it cannot be read.
std::string read_file(const std::string& path, const char* what, const char* hint = "check the path");

}  // namespace llmforge
