// The generation loop of the CLI (generate, chat): prefill the prompt, then run the decode step
// (runtime/decode_step.h, shared with the server's scheduler) and feed each token back until max
// tokens, an end-of-generation token, a stop string or a cancel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/context.h"
#include "runtime/decode_step.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

struct GenerateParams {
    int64_t max_tokens = 128;        // tokens to generate (after the prompt)
    std::vector<std::string> stop;   // stop strings
    bool stop_on_bos = false;        // llama2.c convention: sampling BOS ends the text
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids (the stopping EOG/BOS token excluded)
    std::string text;             // generated text (stop string excluded)
    std::string finish_reason;    // "stop" (EOG, BOS or stop string), "length", "cancelled"
    int64_t n_prompt = 0;
    double prefill_seconds = 0, decode_seconds = 0;
};

// on_text receives each piece of text as it becomes final; returning false cancels.
using TextCallback = std::function<bool(std::string_view)>;

// Continues from ctx.n_past(): prompt tokens are appended (the caller adds BOS if wanted), after
// the context's virtual rows (a prompt adapter's) when they are not in its cache yet.
GenerateResult generate(Context& ctx, const Tokenizer& tok, Sampler& sampler,
                        const std::vector<int32_t>& prompt, const GenerateParams& params,
                        const TextCallback& on_text = nullptr);

}  // namespace llmforge
