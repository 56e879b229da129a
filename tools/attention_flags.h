// The run-time attention flags every command that runs a model shares: --attention dense|lsh and
// the LSH settings (model/lsh.h), applied with Model::set_attention right after loading.
#pragma once

#include <CLI/CLI.hpp>

#include "model/lsh.h"

namespace llmforge::cli {

inline void add_attention_flags(CLI::App* sub, AttentionChoice& a) {
    sub->add_option("--attention", a.kind,
                    "dense or lsh (LSH-bucketed sparse attention, also for a model trained dense); default: the model's own");
    sub->add_option("--lsh-buckets", a.n_buckets, "LSH buckets per hash round (1 or even; default 16, or the model's)");
    sub->add_option("--lsh-hashes", a.n_hashes, "LSH hash rounds (default 2, or the model's)");
    sub->add_option("--lsh-window", a.window, "per round, the latest same-bucket keys a query scores (default 128)");
    sub->add_option("--lsh-local", a.local, "every query also scores its latest N positions (default 0: itself)");
    sub->add_option("--lsh-dense-below", a.dense_below, "positions below this attend densely (default 0)");
    sub->add_option("--lsh-seed", a.seed, "seed of the LSH rotations");
}

}  // namespace llmforge::cli
