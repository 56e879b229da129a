// Writing a model as GGUF or as a Hugging Face folder: the part shared by `convert`,
// `init-model` and `merge-adapter`.
// Each tensor comes from a row source (produces f32 rows on demand), so GGUF conversion streams
// tensor by tensor and quantises in parallel without holding the model twice in memory.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/gguf.h"
#include "model/adapter.h"
#include "model/config.h"
#include "model/model.h"
#include "tokenizer/vocab.h"

namespace llmforge::cli {

struct ExportTensor {
    std::string name;             // GGUF name
    std::vector<int64_t> shape;   // row-major
    // Writes row r (shape.back() floats) into dst. Called concurrently for different rows.
    std::function<void(int64_t r, float* dst)> row;
    DType dtype;                  // chosen output type
    // Per-column importance for the quantiser (an importance matrix's entry), or null.
    std::shared_ptr<const std::vector<float>> importance;
    // The file's own tensor when `row` gives its rows unchanged (not permuted or replaced): if it
    // is already in `dtype`, its bytes are written as they are (no requantisation, as llama.cpp).
    Tensor source;
};

// The output type of a tensor for a requested storage type (convert, init-model, merge-adapter:
// `--type` names the type of the weights): 1-D tensors stay f32; output.weight gets q6_k for
// every quantised type but q8_0 (llama.cpp's rule for all its file types; q8_0 when its rows do
// not fit q6_k's block); rows whose length is not a multiple of the block fall back as
// llama.cpp's quantiser does (fallback_dtype in quantize_model.h). `note` receives the reason
// when the requested type was not used. `llmforge quantize` has the full per-tensor mixes.
DType export_dtype(const std::string& name, const std::vector<int64_t>& shape, DType requested,
                   std::string* note);

// GGUF general.file_type (llama_ftype) for a requested storage type: the file type llama-quantize
// gives the same name (q4_k -> Q4_K_M, q3_k -> Q3_K_M, q5_k -> Q5_K_M).
uint32_t gguf_file_type(DType requested);

// Writes config, vocabulary (if any) and tensors; shows a progress line on stderr.
void export_gguf(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                 DType requested, std::vector<ExportTensor> tensors, int n_threads,
                 const char* label);  // "convert" / "init-model": prefix of the progress line

// What export_gguf_file writes besides config, vocabulary and tensors.
struct GgufFileInfo {
    uint32_t file_type = 0;        // general.file_type
    bool quantized = false;        // general.quantization_version 2 is written
    std::vector<GgufKV> extra;     // more keys (quantize.imatrix.*)
    bool progress = true;
};
struct GgufExportStats {
    size_t bytes_out = 0;          // tensor data written
    int64_t n_params = 0;
};
// The general writer: tensors in the order given, each quantised in parallel over n_threads
// (kernels::quantize_weights with the tensor's importance, blocks of rows of at least 16K values
// per task) and streamed to the file one tensor at a time.
GgufExportStats export_gguf_file(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                                 const GgufFileInfo& info, std::vector<ExportTensor> tensors, int n_threads,
                                 const char* label);

// Replacement values of some tensors (GGUF name -> numel f32 values, in the source's row order):
// merge-adapter's merged matrices.
using ReplacedTensors = std::map<std::string, std::shared_ptr<const std::vector<float>>>;

// Every tensor of `files` as export rows (dequantised to f32), with Q/K rows (and Q/K biases)
// moved to the RoPE order `to_interleaved` when cfg.rope_interleaved differs (the permutation of
// llama.cpp's converter; cfg.rope_interleaved is set to the new order). Output dtypes follow
// export_dtype(); notes go to stderr prefixed with `label`.
std::vector<ExportTensor> model_export_tensors(const ModelFiles& files, ModelConfig& cfg, bool to_interleaved,
                                               DType requested, const ReplacedTensors& replaced, const char* label);
// The same rows with dtype left as the source's (the caller chooses): `quantize`.
std::vector<ExportTensor> model_export_rows(const ModelFiles& files, ModelConfig& cfg, bool to_interleaved,
                                            const ReplacedTensors& replaced);

// Writes a Hugging Face model folder: config.json (hf_config_write; cfg must be in the rotate-half
// order) and model.safetensors (every tensor under its HF name, as f32, or f16 / bf16 when
// requested), each replaced atomically; then copies `extra_files` (tokenizer.json, ...) into it.
// DIR is created when missing. Tensors without a HF name (rope_freqs: config.json carries the
// scaling) are left out, with a note.
void export_hf_folder(const std::string& dir, const ModelConfig& cfg, DType requested,
                      std::vector<ExportTensor> tensors, const std::vector<std::string>& extra_files,
                      int n_threads, const char* label);

// A PEFT LoRA adapter as a GGUF LoRA adapter, the file llama.cpp's `--lora` loads (the layout of
// its convert_lora_to_gguf.py and src/llama-adapter.cpp): general.type "adapter",
// general.architecture (the base's), adapter.type "lora", adapter.lora.alpha (f32; llama.cpp
// scales by alpha / r, so an rsLoRA adapter's alpha is written as alpha·sqrt(r)), and per covered
// module "<gguf weight name>.lora_a" (r, in) and ".lora_b" (out, r) in row-major terms (GGUF
// dims {in, r} and {r, out}). For an architecture whose GGUF files keep Q/K rows interleaved
// (llama) B's Q/K rows are permuted like the base's weights. `type`: f32, f16 or bf16.
void export_lora_gguf(const std::string& path, const Adapter& ad, const ModelConfig& base, DType type,
                      const char* label);

// The GGUF name of a LoRA site's weight ("blk.3.attn_q.weight").
std::string lora_site_gguf_name(const Arch& arch, const LoraSite& s);

}  // namespace llmforge::cli
