#include "runtime/generator.h"

#include <algorithm>
#include <chrono>


namespace llmforge {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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

GenerateResult generate(Context& ctx, const Tokenizer& tok, Sampler& sampler,
                        const std::vector<int32_t>& prompt, const GenerateParams& params,
                        const TextCallback& on_text) {
    GenerateResult res;
    res.n_prompt = static_cast<int64_t>(prompt.size());

    auto t0 = std::chrono::steady_clock::now();
    for (int32_t t : prompt) sampler.accept(t);
    if (!prompt.empty()) ctx.decode(prompt);
    res.prefill_seconds = seconds_since(t0);
    if (ctx.n_past() == 0) {
        res.finish_reason = "length";
        return res;
    }

    TextStreamer stream(tok, params.stop, prompt.empty() ? -1 : prompt.back());
    auto t1 = std::chrono::steady_clock::now();
    res.finish_reason = "length";
    bool cancelled = false;
    for (int64_t i = 0; i < params.max_tokens; ++i) {
        const int32_t id = sampler.sample(ctx.logits().data(), static_cast<int64_t>(ctx.logits().size()));
        if ((params.stop_on_bos && id == tok.bos()) || tok.is_eog(id)) {
            res.finish_reason = "stop";
            break;
        }
        sampler.accept(id);
        res.tokens.push_back(id);
        const std::string piece = stream.feed(id);
        if (!piece.empty() && on_text && !on_text(piece)) cancelled = true;
        if (stream.stopped()) {
            res.finish_reason = "stop";
            break;
        }
        if (cancelled) {
            res.finish_reason = "cancelled";
            break;
        }
        if (i + 1 < params.max_tokens) {
            if (ctx.n_past() >= ctx.n_ctx()) {
                res.finish_reason = "length";
                break;
            }
            ctx.decode({id});
        }
    }
    if (!stream.stopped() && !cancelled) {
        const std::string rest = stream.finish();
        if (on_text && !rest.empty()) on_text(rest);
    }
    res.text = stream.text();
    res.decode_seconds = seconds_since(t1);
    return res;
}

}  // namespace llmforge
