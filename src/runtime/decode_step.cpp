#include "runtime/decode_step.h"

#include <algorithm>

namespace llmforge {

namespace {

// Length of the longest suffix of `text` that is a proper prefix of some stop string: that much
// must be held back because the next token may complete a stop string.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
    size_t keep = 0;
    for (const auto& s : stops) {
        const size_t max_k = std::min(s.size() - 1, text.size());
        for (size_t k = max_k; k > keep; --k) {
            if (text.compare(text.size() - k, k, s, 0, k) == 0) {
                keep = k;
                break;
            }
        }
    }
    return keep;
}

}  // namespace

TextStreamer::TextStreamer(const Tokenizer& tok, const std::vector<std::string>& stops, int32_t prev)
    : dec_(tok, [&] {
          StreamDecoderOptions o;
          o.strip_leading_space_after_bos = tok.strips_dummy_prefix();
          return o;
      }()) {
    for (const auto& s : stops)
        if (!s.empty()) stops_.push_back(s);
    if (prev >= 0 && prev == tok.bos()) dec_.feed(prev);
}

std::string TextStreamer::feed(int32_t id) {
    if (stopped_) return {};
    text_ += dec_.feed(id);
    // Stop strings: search the text not yet emitted (plus overlap with what was).
    size_t cut = std::string::npos;
    for (const auto& s : stops_) {
        const size_t from = emitted_ >= s.size() ? emitted_ - s.size() + 1 : 0;
        const size_t p = text_.find(s, from);
        if (p != std::string::npos) cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
        text_.resize(std::max(cut, emitted_));
        stopped_ = true;
    }
    const size_t hold = stopped_ ? 0 : held_back(text_, stops_);
    std::string out;
    if (text_.size() - hold > emitted_) {
        out = text_.substr(emitted_, text_.size() - hold - emitted_);
        emitted_ = text_.size() - hold;
    }
    return out;
}

std::string TextStreamer::finish() {
    if (stopped_) return {};
    text_ += dec_.flush();
    std::string out = text_.substr(emitted_);
    emitted_ = text_.size();
    return out;
}

SeqDecoder::SeqDecoder(const Tokenizer& tok, Sampler& sampler, const DecodeOptions& opt, int32_t prev)
    : tok_(tok), sampler_(sampler), max_tokens_(opt.max_tokens), stop_on_bos_(opt.stop_on_bos),
      text_(tok, opt.stop, prev) {}

StepResult SeqDecoder::step(const float* logits, int64_t V, int64_t room) {
    StepResult r;
    r.token = sampler_.sample(logits, V);
    if ((stop_on_bos_ && r.token == tok_.bos()) || tok_.is_eog(r.token)) {
        r.end = StepEnd::kStop;
        return r;
    }
    r.kept = true;
    sampler_.accept(r.token);
    n_gen_++;
    r.text = text_.feed(r.token);
    if (text_.stopped()) {
        r.end = StepEnd::kStop;
    } else if (n_gen_ >= max_tokens_ || room <= 0) {
        r.end = StepEnd::kLength;
    }
    return r;
}

}  // namespace llmforge
