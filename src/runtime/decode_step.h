// The decode step of one sequence, written once for generate() / chat (the CLI) and the
// scheduler (the server): sample the next token from the logits -> an end-of-generation token
// ends the text -> every sampler stage accepts the token -> its text is streamed -> a stop
// string, max tokens or a full context ends the text.
//
// Streaming is UTF-8 safe (never half a character) and stop-string safe: text that could still
// become the start of a stop string is held back until it is decided. Stop strings are not part
// of the output.
//
// Thread safety: a SeqDecoder (and its TextStreamer) belongs to one sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

// Generated ids -> final text, one token at a time: UTF-8 safe, and holding back text that may
// still turn into a stop string.
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

// What a step decided.
enum class StepEnd {
    kContinue,  // feed the token and step again
    kStop,      // an end-of-generation token or a stop string: finish_reason "stop"
    kLength,    // max tokens reached or no room left in the context: finish_reason "length"
};

struct StepResult {
    int32_t token = -1;  // the sampled id
    // False when the token ended the text (EOG, or BOS for llama2.c checkpoints): it is not part
    // of the output, was not accepted, and end is kStop.
    bool kept = false;
    std::string text;  // text that became final with this token (may be empty)
    StepEnd end = StepEnd::kContinue;
};

struct DecodeOptions {
    std::vector<std::string> stop;  // stop strings
    int64_t max_tokens = 128;       // tokens to generate; a step that reaches it ends with kLength
    bool stop_on_bos = false;       // llama2.c convention: sampling BOS ends the text
};

class SeqDecoder {
public:
    // prev: the last prompt token (-1 if none). `tok` and `sampler` must outlive the decoder; the
    // sampler has already accepted the prompt.
    SeqDecoder(const Tokenizer& tok, Sampler& sampler, const DecodeOptions& opt, int32_t prev);
    // One step from the logits (V values) of the last fed token; `room`: positions the sequence
    // still has free in its KV memory (<= 0 ends with kLength after this token).
    StepResult step(const float* logits, int64_t V, int64_t room);
    // The rest of the held-back text once the sequence ends without a stop string (empty after
    // one); not to be called for a cancelled sequence, whose held-back text is dropped.
    std::string finish() { return text_.finish(); }
    int64_t n_generated() const { return n_gen_; }
    const std::string& text() const { return text_.text(); }

private:
    const Tokenizer& tok_;
    Sampler& sampler_;
    int64_t max_tokens_;
    bool stop_on_bos_;
    TextStreamer text_;
    int64_t n_gen_ = 0;
};

}  // namespace llmforge
