// Quantising a whole model to a GGUF file: the core of `llmforge quantize`, shared with
// `compress-report` (and the QAT / pruning experiments). Type choice per tensor follows
// llama.cpp's llama_tensor_get_type for the mixes (q4_k_m, q3_k_s, ...).
//
// Type names are llama-quantize's (case-insensitive), so the same name gives the same file:
// f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q2_k (llama.cpp's Q2_K mix), q2_k_s,
// q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, and q3_k / q4_k / q5_k, which llama.cpp
// makes aliases of the _m mixes. `pure` puts every quantisable tensor in the name's base type
// (llama-quantize --pure), e.g. q4_k with pure is q4_k everywhere.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "runtime/imatrix.h"

namespace llmforge::cli {

struct QuantizeOptions {
    std::string type;               // "q4_k_m", "q8_0", "f16", ... (a storage type or a mix)
    const Imatrix* imatrix = nullptr;
    std::string imatrix_path;       // for the quantize.imatrix.* keys (optional)
    bool keep_output_f16 = false;   // output.weight (and a tied embedding used as it) stays f16
    bool allow_fallback = false;    // rows the type cannot take fall back instead of failing
    bool pure = false;              // every quantisable tensor in the type's base type
    int n_threads = 0;              // 0: all cores
    bool progress = true;
    std::string tokenizer;          // tokenizer file for inputs without one (llama2.c), optional
};

struct QuantizeResult {
    size_t bytes_in = 0, bytes_out = 0;  // tensor data
    int64_t n_params = 0;
    double bits_per_weight = 0;          // of the written tensors, bytes_out * 8 / n_params
    double seconds = 0;
    std::map<std::string, DType> types;  // the type each tensor was written in
};

// Reads any model the engine loads (`in`: GGUF of any type, HF folder, llama2.c), writes `out`.
QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& opt);

// ---- the type choice, exposed for tests and tools ----

// A name `--type` takes: llama.cpp's file type (general.file_type) and the base storage type.
struct QuantFileType {
    const char* name;  // lower case, as the CLI takes it
    uint32_t ftype;    // llama_ftype
    DType base;
    const char* about;
};
// Every accepted name, in llama-quantize's order.
const std::vector<QuantFileType>& quant_file_types();
// Throws Error (one line listing the names) for an unknown one.
const QuantFileType& find_quant_file_type(const std::string& name);

// What llama_tensor_get_type reads besides a tensor's name and shape.
struct TypeChoiceContext {
    std::string arch = "llama";
    int64_t n_layer = 0, n_head = 0, n_head_kv = 0, n_expert = 1;
    bool pure = false;
    bool has_imatrix = false;     // an importance matrix was given (changes q4_0 / q5_0's ffn_down)
    bool keep_output_f16 = false;
    bool allow_fallback = false;  // false: a row the chosen type cannot take is an Error
};
struct TensorTypeChoice {
    DType type;
    std::string note;  // set when a fallback was taken (the reason, with the tensor's name)
};
// The type of every tensor (GGUF name -> row-major shape) for the file type `ft`, decided in
// llama.cpp's tensor order (by layer, then name). 1-D tensors and norms stay f32. Throws Error
// naming the tensor, its row length and the block when a row does not fit the chosen type and
// allow_fallback is false.
std::map<std::string, TensorTypeChoice> choose_tensor_types(const QuantFileType& ft,
                                                           const std::map<std::string, std::vector<int64_t>>& shapes,
                                                           const TypeChoiceContext& ctx);
// llama.cpp's fallback for a row of `row_length` values that type `t` cannot take (q6_k -> q8_0,
// q5_k -> q5_1, q4_k -> q5_0, q2_k / q3_k -> q4_0 where llama.cpp takes iq4_nl, which llmforge does
// not have; then f16 when even that block does not fit; the legacy types and q8_0 go to f16).
DType fallback_dtype(DType t, int64_t row_length);
// The context of a model config (layers, heads, architecture).
TypeChoiceContext type_choice_context(const ModelConfig& cfg);

}  // namespace llmforge::cli
