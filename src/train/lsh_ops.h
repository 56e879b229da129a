// LSH-bucketed causal attention on the tape (issue 18): model/lsh.h's rule, forward and backward,
// for B sequences of T positions with grouped-query heads.
//
// The buckets are a discrete function of q and k: they are computed first (lsh_buckets) and then
// held fixed, so they are not differentiated and a finite-difference check of the op holds them
// fixed too. Memory: the candidate lists only (at most n_hashes · window + 1 per query and head,
// O(n · window)); the probabilities are recomputed in backward.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/lsh.h"
#include "train/tape.h"

namespace llmforge::train {

// Each row's buckets: q (N, H, n_hashes), each query head hashed with its kv head's rotations;
// k (N, H_kv, n_hashes).
struct LshBuckets {
    int64_t n_hashes = 0;
    std::vector<int32_t> q, k;
};
// hashes: H_kv consecutive entries (this layer's kv heads). q (N, H·D), k (N, H_kv·D) row-major.
std::shared_ptr<LshBuckets> lsh_buckets(const float* q, const float* k, int64_t n_rows, int64_t n_head,
                                        int64_t n_head_kv, int64_t head_dim, const LshHash* hashes, ThreadPool& pool);

// q (B·T, H·D), k (B·T, H_kv·D), v (B·T, H_kv·Dv) -> (B·T, H·Dv): each query attends to its LSH
// candidates within its sequence (model/lsh.h), the same values lsh_attend_row gives. doc_start as
// in attention(): candidates before the row's document start are dropped (the same set a
// per-document index gives, as every earlier document's keys come first). scale 0: 1/sqrt(D).
// sliding_window W > 0: candidates older than p - W + 1 are dropped too (as the engine does).
Var lsh_attention(Tape& t, Var q, Var k, Var v, int64_t batch, int64_t seq, int64_t n_head, int64_t n_head_kv,
                  const LshSpec& spec, std::shared_ptr<const LshBuckets> buckets, float scale = 0.0f,
                  const int32_t* doc_start = nullptr, int64_t sliding_window = 0);

}  // namespace llmforge::train
