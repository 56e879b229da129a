#include "tokenizer/detokenizer.h"

#include "tokenizer/utf8.h"

namespace llmforge {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, StreamDecoderOptions options)
    : tokenizer_(tokenizer), options_(options) {}

std::string StreamDecoder::feed(int32_t id) {
    std::string piece = tokenizer_.token_to_piece(id, options_.render_special);
    const bool is_bos = id == tokenizer_.bos();
    if (options_.strip_leading_space_after_bos && after_bos_ && !piece.empty() && piece[0] == ' ') {
        piece.erase(0, 1);
    }
    // The rule applies to the next token that has text; a hidden token keeps the state.
    if (is_bos) {
        after_bos_ = true;
    } else if (!piece.empty()) {
        after_bos_ = false;
    }
    if (piece.empty()) return {};

    pending_ += piece;
    std::string out;
    out.reserve(pending_.size());
    size_t i = 0;
    while (i < pending_.size()) {
        const Utf8Char c = utf8_decode(std::string_view(pending_).substr(i));
        if (c.status == Utf8Status::kIncomplete) break;  // wait for the next token
        if (c.status == Utf8Status::kOk) {
            out.append(pending_, i, c.len);
        } else {
            out += kUtf8Replacement;
        }
        i += c.len;
    }
    pending_.erase(0, i);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = utf8_sanitize(pending_);
    reset();
    return out;
}

void StreamDecoder::reset() {
    pending_.clear();
    after_bos_ = false;
}

}  // namespace llmforge
