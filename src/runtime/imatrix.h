// Importance matrices: statistics of the activations each weight matrix multiplies, collected
// over a calibration text (llmforge imatrix) and read back by the quantisers (llmforge quantize
// --imatrix) and Wanda pruning (llmforge prune --method wanda). The files are llama.cpp's, so
// either tool reads the other's: GGUF (`<tensor>.in_sum2` / `<tensor>.counts`, llama.cpp's
// current format) and the legacy binary `.dat`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/model.h"

namespace llmforge {

struct ImatrixTensor {
    std::vector<float> sum_sq;  // per input column j: sum over every row read of x_j^2
    int64_t rows = 0;           // rows (tokens) accumulated
    // Products observed (llama-imatrix's `ncall`, the legacy .dat's per-entry count). A .dat
    // stores mean·ncall per column and no row count, so reading one gives sum_sq = the stored
    // values and rows = ncall: the same mean, divided exactly as llama-quantize divides it.
    int64_t ncall = 0;
    // Routed experts (a 3-D (E, rows, cols) weight, llama.cpp's MUL_MAT_ID statistics): the rows
    // each expert saw; sum_sq then holds E x cols values, expert after expert. Empty: one matrix.
    // (A legacy .dat keeps no per-expert counts: its E x cols values come with rows = ncall.)
    std::vector<int64_t> expert_rows;
};

struct Imatrix {
    std::map<std::string, ImatrixTensor> tensors;  // by GGUF weight name ("blk.0.attn_q.weight")
    std::vector<std::string> datasets;             // calibration file names
    int64_t chunk_size = 0;                        // tokens per chunk of the collection
    int64_t chunks = 0;                            // chunks processed

    // The quantisers' importance of each column: mean of x_j^2 over the rows (sum_sq / rows, in
    // float, as llama-quantize computes it; all 1 for an entry that saw no rows, as llama.cpp).
    // An expert entry gives E x n_per_row values, each expert's columns divided by its own rows.
    // Throws Error when the tensor has no entry or its width is not (a multiple of) `n_per_row`.
    std::vector<float> importance(const std::string& tensor, int64_t n_per_row) const;
};

struct ImatrixOptions {
    int64_t chunk = 512;       // tokens per chunk (each chunk starts a fresh context)
    int64_t max_chunks = 0;    // 0: all the text's whole chunks
    int n_threads = 0;         // 0: hardware concurrency
    bool progress = true;      // a progress line (rate, ETA) on stderr (the CLI, through on_chunk)
    bool process_output = false;  // also collect output.weight (llama-imatrix --process-output)
    // Called after each chunk with (chunks done, chunks in all).
    std::function<void(int64_t, int64_t)> on_chunk;
};

// Runs the model over `tokens` in chunks and accumulates every weight product's input
// (ForwardScratch::matmul_hook), as llama-imatrix does: chunk i is tokens [i·chunk, (i+1)·chunk)
// from an empty cache, its first token replaced by BOS when the vocabulary adds one; the chunk
// goes through in pieces of at most 512 tokens (llama.cpp's default micro-batch, one `ncall`
// each); only blk.* weights (and output.weight with process_output) and only products of at
// least 16 rows count; routed experts (reported per expert as "<name>[e]") are collected whatever
// the batch, as llama-imatrix collects MUL_MAT_ID, into one expert entry per 3-D weight. Sums are
// kept in double. Throws Error when the text is shorter than one chunk.
Imatrix collect_imatrix(const Model& model, const std::vector<int32_t>& tokens, const ImatrixOptions& opt);

// Reads either format (by content); throws Error with the file and what is wrong.
Imatrix read_imatrix(const std::string& path);
// Writes GGUF when `path` ends in .gguf, else the legacy .dat; atomically.
void write_imatrix(const Imatrix& m, const std::string& path);

// Checks that every entry of `m` names a weight matrix of the model (`shapes`: GGUF name ->
// row-major shape) with the same input width: an imatrix made for another model is one clear
// error naming the first entry that does not fit. `where` prefixes the message
// ("quantize: imatrix.dat").
void check_imatrix_matches(const Imatrix& m, const std::map<std::string, std::vector<int64_t>>& shapes,
                           const std::string& where);
// The lead's first form (the config is not needed): the same check.
inline void check_imatrix_matches(const Imatrix& m, const ModelConfig&,
                                  const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& where) {
    check_imatrix_matches(m, shapes, where);
}

}  // namespace llmforge
