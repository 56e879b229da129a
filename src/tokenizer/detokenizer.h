// Streaming detokenization: turns token ids, fed one at a time as they are generated, into text
// that is always well-formed UTF-8.
//
// A character may be split across tokens (SentencePiece "<0xE4>" "<0xBD>" "<0xA0>", or byte-level
// BPE tokens that end mid-character). feed() returns only complete characters and holds back an
// incomplete trailing sequence until a later token completes it; bytes that can never form a
// character are replaced by U+FFFD (one per maximal ill-formed subpart) as soon as that is
// certain. flush() ends the stream: what is still held back becomes U+FFFD.
//
// Options: strip_leading_space_after_bos drops one leading ' ' from the piece that follows a BOS
// token (llama2.c and SentencePiece print "Once" for BOS "▁Once"); render_special prints the text
// of control tokens instead of nothing.
//
// Thread safety: one decoder per stream; not thread-safe. The Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace llmforge {

struct StreamDecoderOptions {
    bool strip_leading_space_after_bos = false;
    bool render_special = false;
};

class StreamDecoder {
  public:
    explicit StreamDecoder(const Tokenizer& tokenizer, StreamDecoderOptions options = {});

    // Text completed by token `id` (possibly empty). Throws Error for an out-of-range id.
    std::string feed(int32_t id);
    // Ends the stream: the held-back bytes, as U+FFFD. The decoder is then fresh again.
    std::string flush();
    // Forgets held-back bytes and the BOS state.
    void reset();

    // Bytes held back waiting for the rest of a character.
    size_t pending_bytes() const { return pending_.size(); }

  private:
    const Tokenizer& tokenizer_;
    StreamDecoderOptions options_;
    std::string pending_;  // at most 3 bytes: the start of a well-formed character
    bool after_bos_ = false;
};

}  // namespace llmforge
