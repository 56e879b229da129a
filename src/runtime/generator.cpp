#include "runtime/generator.h"

#include <chrono>

namespace llmforge {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateResult generate(Context& ctx, const Tokenizer& tok, Sampler& sampler,
                        const std::vector<int32_t>& prompt, const GenerateParams& params,
                        const TextCallback& on_text) {
    GenerateResult res;
    res.n_prompt = static_cast<int64_t>(prompt.size());

    auto t0 = std::chrono::steady_clock::now();
    for (int32_t t : prompt) sampler.accept(t);
    // An empty prompt still runs a prompt adapter's virtual rows (their last one gives the logits).
    if (!prompt.empty() || ctx.n_past() < ctx.n_virtual()) ctx.decode(prompt);
    res.prefill_seconds = seconds_since(t0);
    res.finish_reason = "length";
    if (ctx.n_past() == 0) return res;

    DecodeOptions opt;
    opt.stop = params.stop;
    opt.max_tokens = params.max_tokens;
    opt.stop_on_bos = params.stop_on_bos;
    SeqDecoder dec(tok, sampler, opt, prompt.empty() ? -1 : prompt.back());
    auto t1 = std::chrono::steady_clock::now();
    bool cancelled = false, stopped = false;
    while (params.max_tokens > 0) {
        const StepResult r = dec.step(ctx.logits().data(), static_cast<int64_t>(ctx.logits().size()),
                                      ctx.n_ctx() - ctx.n_past());
        if (!r.kept) {
            stopped = true;
            break;
        }
        res.tokens.push_back(r.token);
        if (!r.text.empty() && on_text && !on_text(r.text)) cancelled = true;
        if (r.end == StepEnd::kStop) {
            stopped = true;
            break;
        }
        if (cancelled || r.end == StepEnd::kLength) break;
        ctx.decode({r.token});
    }
    if (stopped) {
        res.finish_reason = "stop";
    } else if (cancelled) {
        res.finish_reason = "cancelled";
    }
    if (!cancelled) {
        const std::string rest = dec.finish();  // empty after a stop string
        if (on_text && !rest.empty()) on_text(rest);
    }
    res.text = dec.text();
    res.decode_seconds = seconds_since(t1);
    return res;
}

}  // namespace llmforge
