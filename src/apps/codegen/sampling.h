// Sampling completions for code-generation problems: N samples per prompt, generated with the
// runtime's continuous-batching Scheduler (`slots` sequences share each batched forward step),
// each cut at the first of its prompt's stop sequences (the HumanEval protocol: the returned text
// is what follows the prompt, up to and excluding the earliest stop sequence).
//
// Reproducibility: sample j of every prompt uses seed `sampling.seed + j`, whatever the batch it
// runs in: the scheduler's forward pass is batch-invariant (a row's logits do not depend on the
// other rows), and each sequence has its own sampler chain. So sample 0 with seed S is what
// `llmforge generate --seed S` gives for the same prompt, and temperature 0 gives the greedy text.
//
// Prompts are encoded with BOS first (as `llmforge generate`); llama2.c checkpoints end a text
// when BOS is sampled. A prompt that leaves no room in the context is an Error (kResource);
// max_tokens is cut to the room left.
//
// Thread safety: one call runs one Scheduler; `progress` is called on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"

namespace llmforge::codegen {

struct SampleOptions {
    std::string model;      // a GGUF file, Hugging Face folder or llama2.c checkpoint
    std::string tokenizer;  // optional tokenizer file (llama2.c tok*.bin)
    SamplerParams sampling;
    int n_samples = 1;
    int64_t max_tokens = 300;
    int threads = 0;  // 0: all cores
    int slots = 4;    // sequences decoded together
    // After each finished sequence: done so far, total (= prompts x n_samples).
    std::function<void(size_t done, size_t total)> progress;
};

// result[i][j]: sample j of prompts[i]. stops[i] are the stop sequences of prompts[i]; `stops`
// may also be empty (no stops for any prompt). Throws Error for bad options or a model that does
// not load, and when a sequence fails.
std::vector<std::vector<std::string>> sample_completions(const SampleOptions& o,
                                                         const std::vector<std::string>& prompts,
                                                         const std::vector<std::vector<std::string>>& stops);

// `text` up to (excluding) the earliest occurrence of any stop sequence; empty stops are ignored.
std::string cut_at_first_stop(std::string_view text, const std::vector<std::string>& stops);

}  // namespace llmforge::codegen
