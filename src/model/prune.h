// Pruning (llmforge prune): zeros in the weight matrices (unstructured, N:M semi-structured) and
// a smaller dense model (structured: whole attention heads, FFN channels).
//
// Unstructured and N:M pruning compare weights within one output row of a matrix (each row loses
// the same share), by a score:
// Each row loses round(S · cols) weights (at most cols - 1), so a row of 64 at S = 0.2 loses 13.
//   * magnitude: |W_ij|;
//   * Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"):
//     |W_ij| · ||X_j||₂, where ||X_j|| is the norm of input column j over calibration tokens —
//     from an importance matrix (mean x_j², whose square root orders the columns the same way).
// The matrices pruned are every per-layer weight matrix (attention Q/K/V/output, FFN gate/up/down);
// the token embedding, the output head and the 1-D parameters stay dense (as in the Wanda paper).
// Pruning is one shot: scores come from the dense model; no weight is updated.
//
// Structured pruning writes a dense model with smaller shapes (the config changes; every command
// loads it):
//   * heads K: K query heads removed in every layer (the count is uniform because n_head is one
//     number in every format). Grouped-query attention: the g = n_head / n_head_kv query heads that
//     share a KV head are removed together with it, so K must be a multiple of g (and less than
//     n_head). A group's importance is the expected squared size of what it writes into the
//     residual stream: sum over its columns j of attn_output of ||W_o[:, j]||² · E[x_j²], with
//     E[x_j²] from calibration when given (the attention output's per-column energy), else 1.
//   * ffn_fraction F: round(F · n_ff) channels removed in every layer (rows of gate/up, columns of
//     down). A channel's importance is ||W_down[:, c]||² · E[h_c²] with calibration (h = the SwiGLU
//     output that ffn_down reads: exactly the channel's activation), else the weight-only proxy
//     ||W_down[:, c]|| · ||W_gate[c, :]|| · ||W_up[c, :]||.
// Structured pruning runs first; unstructured pruning then scores the smaller matrices (the
// calibration columns of the removed heads / channels are dropped with them).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/model.h"

namespace llmforge {

enum class PruneMethod { kMagnitude, kWanda };

// Per-tensor calibration statistics: GGUF weight name -> per input column, mean of x_j² over the
// calibration tokens (Imatrix::importance()).
using ActivationEnergy = std::map<std::string, std::vector<float>>;

struct PruneOptions {
    PruneMethod method = PruneMethod::kMagnitude;
    double sparsity = 0;        // unstructured: share of each row zeroed, in [0, 1)
    int keep_n = 0, group_m = 0;  // N:M: keep N of every M consecutive inputs (0: not used)
    int64_t heads = 0;          // query heads removed per layer
    double ffn_fraction = 0;    // share of each layer's FFN channels removed, in [0, 1)
    const ActivationEnergy* act = nullptr;  // calibration (required by Wanda; optional otherwise)
    int n_threads = 0;          // 0: hardware concurrency
};

struct PruneStats {
    int64_t matrices = 0;       // matrices unstructured pruning applied to
    int64_t pruned_params = 0;  // elements of those matrices
    int64_t pruned_zeros = 0;   // exact zeros among them after pruning (counted, not computed)
    int64_t params = 0;         // every parameter of the result
    int64_t zeros = 0;          // exact zeros among them
    int64_t params_before = 0;  // every parameter of the input
    double sparsity() const { return pruned_params > 0 ? double(pruned_zeros) / double(pruned_params) : 0.0; }
};

struct PrunedModel {
    ModelConfig config;                     // n_head / n_head_kv / n_ff changed by structured pruning
    std::map<std::string, Tensor> tensors;  // GGUF names; changed ones are owned f32, others `files`' own
    PruneStats stats;
    std::vector<std::string> pruned_matrices;  // names of the matrices unstructured pruning applied to
    // Per layer: the query heads / FFN channels kept (source indices), empty when not pruned.
    std::vector<std::vector<int64_t>> kept_heads, kept_channels;
};

// Checks the options against the model (one-line errors naming the flag) and prunes.
// The result's untouched tensors are views of `files`' storage: keep `files` alive.
PrunedModel prune_model(const ModelFiles& files, const PruneOptions& opt);

// Exact zeros among a tensor's values (dequantised row by row).
int64_t count_zeros(const Tensor& t);

// Parses "N:M" (1 <= N < M, M <= 256); throws Error naming `flag` otherwise.
void parse_nm_pattern(const std::string& s, int* n, int* m, const char* flag = "--pattern");

// One matrix (rows, cols) f32 in place: zeros the lowest-scoring round(sparsity · cols) weights of
// each row (at most cols - 1) (or, with group_m > 0, all but the keep_n highest of every group_m consecutive columns).
// col_energy: per column E[x_j²] (Wanda) or null (magnitude). Ties go to the lower column index
// being pruned first, so the count of zeros written is exact. Returns the zeros in the result.
int64_t prune_matrix(float* w, int64_t rows, int64_t cols, const float* col_energy, double sparsity, int keep_n,
                     int group_m, int n_threads);

}  // namespace llmforge
