// Writing a model as GGUF: the part shared by `convert` and `init-model`.
// Each tensor comes from a row source (produces f32 rows on demand), so conversion streams tensor
// by tensor and quantises in parallel without holding the model twice in memory.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "tokenizer/vocab.h"

namespace llmforge::cli {

struct ExportTensor {
    std::string name;             // GGUF name
    std::vector<int64_t> shape;   // row-major
    // Writes row r (shape.back() floats) into dst. Called concurrently for different rows.
    std::function<void(int64_t r, float* dst)> row;
    DType dtype;                  // chosen output type
};

// The output type of a tensor for a requested file type, as llama.cpp's quantiser chooses it:
// 1-D tensors stay f32; rows whose length is not a multiple of the block size fall back
// (k-quants -> q8_0 -> f16); for q4_0 / q4_k / q6_k files output.weight gets q6_k.
// `note` receives a reason when the requested type was not used.
DType export_dtype(const std::string& name, const std::vector<int64_t>& shape, DType requested,
                   std::string* note);

// GGUF general.file_type (llama_ftype) for a requested type.
uint32_t gguf_file_type(DType requested);

// Writes config, vocabulary (if any) and tensors; shows a progress line on stderr.
void export_gguf(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                 DType requested, std::vector<ExportTensor> tensors, int n_threads,
                 const char* label);  // "convert" / "init-model": prefix of the progress line

}  // namespace llmforge::cli
