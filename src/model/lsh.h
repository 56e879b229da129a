// LSH-bucketed sparse attention (Reformer's idea: angular locality-sensitive hashing groups the
// positions of a sequence, and a query scores only the keys of its own groups).
//
// Semantics (one definition for prompt, decode and training, so a cached decode equals the
// recomputation of the whole sequence): per (layer, kv head) and hash round r, a random rotation
// R_r (D, n_buckets / 2) buckets a vector x as argmax over [x·R_r, -x·R_r] (angular LSH: the
// direction of x decides). A query at position p (its own buckets b_r(q_p), with the rotation of
// its kv head) attends, causally, to the union over rounds of
//   the `window` latest keys at positions <= p whose bucket in round r is b_r(q_p)
// plus position p itself (a query whose key hashes elsewhere still sees something) and, with
// `local` L > 0, the positions p - L + 1 .. p (what trained models' previous-token and other
// local heads need, and what Reformer's "previous chunk" gives in part). Below `dense_below`
// a query sees every position 0 .. p. That union,
// in ascending position order, is one softmax: the result equals dense attention under that mask
// (multi-round combination exact, no duplicate counting), and with one bucket and window >= n it
// is dense attention. `window` plays the part of Reformer's "own chunk and the previous one": it
// bounds the keys a query scores per round whatever the bucket sizes, so the work is
// O(n · n_hashes · window) instead of O(n²). Reformer's chunking over a sorted sequence needs no
// per-query candidate list on an accelerator, but its chunk boundaries depend on the whole
// sequence, which a KV cache cannot reproduce one token at a time; this rule can.
//
// Thread safety: LshHash is immutable after construction; LshIndex is one sequence's (its KV
// cache's) and is used by one thread at a time; lsh_attend_row is a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmforge {

struct LshSpec {
    int64_t n_buckets = 16;   // buckets per round: 1, or an even number
    int64_t n_hashes = 2;     // hash rounds
    int64_t window = 128;     // per round, the latest same-bucket keys a query scores
    int64_t local = 0;        // every query also scores its `local` latest positions (0: itself only)
    int64_t dense_below = 0;  // positions below this attend densely (0: never)
    uint64_t seed = 0x5eed;   // rotations: a function of (seed, layer, kv head, round)
    // Throws Error naming `where` for an invalid setting (one line: value, expected, hint).
    void validate(const std::string& where) const;
    // The scores one query at position p can compute at most:
    // min(p + 1, n_hashes · window + max(local, 1)), and p + 1 below dense_below.
    int64_t max_candidates(int64_t p) const;
    // A one-line summary: "lsh 64 buckets x 2 rounds, window 128, dense below 0, seed 24301".
    std::string describe() const;
};

// A run-time choice of attention (the CLI's --attention / --lsh-* flags, the server's model
// options): kind "" keeps the model's own; settings >= 0 override the model's (or the defaults,
// for a dense model run with kind "lsh"). Model::set_attention applies it.
struct AttentionChoice {
    std::string kind;  // "", "dense" or "lsh"
    int64_t n_buckets = -1, n_hashes = -1, window = -1, local = -1, dense_below = -1, seed = -1;
    bool any_setting() const {
        return n_buckets >= 0 || n_hashes >= 0 || window >= 0 || local >= 0 || dense_below >= 0 || seed >= 0;
    }
    // The settings for a model whose own are `base`.
    LshSpec spec(const LshSpec& base) const;
};

// What LSH attention did over some forward passes (ForwardScratch::lsh_stats): the query-key
// scores computed per (layer, query head), and the online error probe: on every
// `probe_every`-th position (0: no probe) dense attention is computed beside LSH for that row,
// and the largest output difference (relative to the largest value entry the row sees) and the
// share of the dense softmax mass held by LSH's candidates are accumulated.
struct LshStats {
    int64_t n_layer = 0, n_head = 0;
    int64_t probe_every = 0;
    std::vector<int64_t> scores;  // (n_layer, n_head)
    std::vector<int64_t> dense;   // (n_layer, n_head): what dense attention would have scored
    int64_t probes = 0;
    double mass_sum = 0, mass_min = 1, err_sum = 0, err_max = 0;
    void reset(int64_t layers, int64_t heads);
    // Adds another run's figures (per-thread partial stats).
    void merge(const LshStats& o);
    // A short report: totals, per-layer score counts against dense, probe figures.
    std::string report() const;
};

// The rotations of one (layer, kv head), one set per round. Up to 64 buckets: one matrix
// (D, n_buckets / 2) of N(0, 1) entries and the argmax over [x·R, -x·R] (cross-polytope LSH).
// More buckets are factorised as Reformer does for large counts: n_buckets = f1 · f2 (both even,
// as equal as can be), two independent rotations, bucket = b1 · f2 + b2; hashing then costs
// D · (f1 + f2) / 2 products per vector instead of D · n_buckets / 2, so it stays small beside
// the attention even at 64k positions with n / 64 buckets.
// The products run through the kernel table's f32 dot, one per rotation column, whatever the
// caller batches: a vector gets the same buckets in a prompt, in decode and in the trainer's
// bucketing pass (a bucket is a discrete choice; it must not hinge on summation order).
class LshHash {
public:
    LshHash(const LshSpec& spec, int64_t layer, int64_t kv_head, int64_t head_dim);
    int64_t n_hashes() const { return n_hashes_; }
    int64_t n_buckets() const { return n_buckets_; }
    // Buckets of x (head_dim floats), one per round, into out[0 .. n_hashes).
    void buckets(const float* x, int32_t* out) const;
    // The factors of n_buckets (one or two even numbers; {1} for a single bucket).
    const std::vector<int64_t>& factors() const { return factors_; }

private:
    int64_t n_hashes_, n_buckets_, dim_, cols_;  // cols_: rotation columns per round, Σ factor / 2
    std::vector<int64_t> factors_;
    std::vector<float> rot_;  // (n_hashes, cols, dim) row-major: one column per row, for dot
};

// Every (layer, kv head)'s rotations, layer-major: [l · n_head_kv + g].
std::vector<LshHash> lsh_hashes(const LshSpec& spec, int64_t n_layer, int64_t n_head_kv, int64_t head_dim);

// Per round, bucket -> the positions of the keys in it, ascending (keys are added in position
// order): the index a KV cache keeps per (layer, kv head), and the prompt path builds.
class LshIndex {
public:
    LshIndex() = default;
    LshIndex(int64_t n_hashes, int64_t n_buckets);
    // The key at position pos (== positions() so far) with its buckets, one per round.
    void add(int64_t pos, const int32_t* buckets);
    // Drops every key at a position >= pos (a cache truncated to pos positions).
    void truncate(int64_t pos);
    int64_t positions() const { return n_; }
    // The candidates of a query at position p (<= positions() - 1) with buckets qb: p, and per
    // round the `spec.window` latest keys <= p in bucket qb[r], and the spec.local latest
    // positions; the union, ascending, into out. Below spec.dense_below every position 0 .. p.
    void candidates(int64_t p, const int32_t* qb, const LshSpec& spec, std::vector<int32_t>& out) const;

private:
    int64_t n_hashes_ = 0, n_buckets_ = 0, n_ = 0;
    std::vector<std::vector<int32_t>> lists_;  // (round · n_buckets + bucket) -> positions
};

class ConfigSource;  // model/arch/arch.h
class ConfigSink;
struct ModelConfig;  // model/config.h

// The model's attention kind in its files (ModelConfig::attention_lsh / lsh): Hugging Face
// config.json keys "llmforge_attention" ("dense" | "lsh"), "lsh_n_buckets", "lsh_n_hashes",
// "lsh_window", "lsh_local", "lsh_dense_below", "lsh_seed"; GGUF "<arch>.attention.kind" and
// "<arch>.attention.lsh.{n_buckets,n_hashes,window,local,dense_below,seed}". Absent: dense. Throws
// Error (one line, naming the file) for an unknown type, invalid settings, or LSH on an
// architecture whose attention cannot run it (DeepSeek's MLA).
void lsh_configure(ModelConfig& c, const ConfigSource& src);
void lsh_write_keys(const ModelConfig& c, ConfigSink& sink);

// One query head's attention over its candidates (ascending positions): softmax of
// scale · q·k_j, output Σ p_j v_j. k / v: position j's row starts at k + j · ldk (floats).
// The kernel table's one-position attention runs on the candidates' rows (gathered into scratch,
// or in place when they are one contiguous run, as in dense attention): a row's result depends on
// its candidates only, and with every position a candidate it is dense decode's result bit for
// bit. scratch: at least n_cand · (1 + 2 · max(head_dim, head_dim_v)) floats.
void lsh_attend_row(const float* q, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t head_dim,
                    int64_t head_dim_v, const int32_t* cand, int64_t n_cand, float scale, float* out, float* scratch);

}  // namespace llmforge
