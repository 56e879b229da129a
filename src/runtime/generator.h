// The generation loop shared by the CLI and (later) the server: prefill the prompt, then sample,
// decode and stream text until max tokens, an end-of-generation token or a stop string.
//
// Streaming is UTF-8 safe (never half a character) and stop-string safe: text that could still
// become the start of a stop string is held back until it is decided. Stop strings are not part
// of the output.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/context.h"
#include "runtime/sampler.h"
#include "tokenizer/detokenizer.h"
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

// Generated ids -> final text, one token at a time: UTF-8 safe, and holding back text that may
// still turn into a stop string. Shared by generate() and the server's batched loop.
class TextStreamer {
public:
    // prev: the last prompt token (-1 if none); SentencePiece drops the dummy-prefix space of the
    // piece right after BOS.
    TextStreamer(const Tokenizer& tok, const std::vector<std::string>& stops, int32_t prev);
    // Appends id's text; returns the text that became final (possibly empty). After a stop string
    // matched, stopped() is true and the text ends before it.
    std::string feed(int32_t id);
    // The end of generation without a stop string: the rest of the held-back text.
    std::string finish();
    bool stopped() const { return stopped_; }
    const std::string& text() const { return text_; }

private:
    std::vector<std::string> stops_;
    StreamDecoder dec_;
    std::string text_;
    size_t emitted_ = 0;
    bool stopped_ = false;
};

// on_text receives each piece of text as it becomes final; returning false cancels.
using TextCallback = std::function<bool(std::string_view)>;

// Continues from ctx.n_past(): prompt tokens are appended (the caller adds BOS if wanted).
GenerateResult generate(Context& ctx, const Tokenizer& tok, Sampler& sampler,
                        const std::vector<int32_t>& prompt, const GenerateParams& params,
                        const TextCallback& on_text = nullptr);

}  // namespace llmforge
