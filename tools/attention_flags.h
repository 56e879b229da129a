// Run-time flags shared by the commands that run a model: --attention dense|lsh and the LSH
// settings (model/lsh.h), applied with Model::set_attention right after loading; and the image
// encoder's --encode-type (generate, chat, serve).
#pragma once

#include <CLI/CLI.hpp>

#include "core/dtype.h"
#include "model/lsh.h"

namespace llmforge::cli {

// --encode-type f32|bf16 of the commands that read images through an image encoder (generate,
// chat, serve; ImageEncoder::load's encode_type).
inline void add_image_encode_type(CLI::App* sub, std::string& type) {
    sub->add_option("--encode-type", type,
                    "image encoder's products in f32 or bf16 (AMX tiles where the CPU has them: several times "
                    "faster, rows within ~1e-2; docs/PERFORMANCE.md)")
        ->check(CLI::IsMember({"f32", "bf16"}))
        ->capture_default_str();
}
inline DType image_encode_type(const std::string& type) { return type == "bf16" ? DType::BF16 : DType::F32; }

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
