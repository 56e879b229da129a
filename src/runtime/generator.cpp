#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "tokenizer/detokenizer.h"

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

GenerateResult generate(Context& ctx, const Tokenizer& tok, Sampler& sampler,
                        const std::vector<int32_t>& prompt, const GenerateParams& params,
                        const TextCallback& on_text) {
    GenerateResult res;
    res.n_prompt = static_cast<int64_t>(prompt.size());
    std::vector<std::string> stops;
    for (const auto& s : params.stop)
        if (!s.empty()) stops.push_back(s);

    auto t0 = std::chrono::steady_clock::now();
    for (int32_t t : prompt) sampler.accept(t);
    if (!prompt.empty()) ctx.decode(prompt);
    res.prefill_seconds = seconds_since(t0);
    if (ctx.n_past() == 0) {
        res.finish_reason = "length";
        return res;
    }

    // SentencePiece: the piece right after BOS loses its leading (dummy-prefix) space.
    StreamDecoderOptions dopt;
    dopt.strip_leading_space_after_bos = tok.strips_dummy_prefix();
    StreamDecoder dec(tok, dopt);
    if (!prompt.empty() && prompt.back() == tok.bos()) dec.feed(prompt.back());
    size_t emitted = 0;   // bytes of res.text already handed out

    auto t1 = std::chrono::steady_clock::now();
    res.finish_reason = "length";
    bool cancelled = false;
    bool stop_string = false;
    for (int64_t i = 0; i < params.max_tokens; ++i) {
        const int32_t id = sampler.sample(ctx.logits().data(), static_cast<int64_t>(ctx.logits().size()));
        if ((params.stop_on_bos && id == tok.bos()) || tok.is_eog(id)) {
            res.finish_reason = "stop";
            break;
        }
        sampler.accept(id);
        res.tokens.push_back(id);
        res.text += dec.feed(id);
        // Stop strings: search the text not yet emitted (plus overlap with what was).
        bool stopped = false;
        if (!stops.empty()) {
            size_t cut = std::string::npos;
            for (const auto& s : stops) {
                const size_t from = emitted >= s.size() ? emitted - s.size() + 1 : 0;
                const size_t p = res.text.find(s, from);
                if (p != std::string::npos) cut = std::min(cut, p);
            }
            if (cut != std::string::npos) {
                res.text.resize(std::max(cut, emitted));
                stopped = true;
            }
        }
        const size_t hold = stopped ? 0 : held_back(res.text, stops);
        if (res.text.size() - hold > emitted) {
            if (on_text && !on_text(std::string_view(res.text).substr(emitted, res.text.size() - hold - emitted))) {
                cancelled = true;
            }
            emitted = res.text.size() - hold;
        }
        if (stopped) {
            res.finish_reason = "stop";
            stop_string = true;
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
    if (!stop_string && !cancelled) {
        res.text += dec.flush();
        if (on_text && res.text.size() > emitted) on_text(std::string_view(res.text).substr(emitted));
    }
    res.decode_seconds = seconds_since(t1);
    return res;
}

}  // namespace llmforge
