#include "apps/codegen/sampling.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "runtime/chat.h"
#include "runtime/scheduler.h"

namespace llmforge::codegen {

std::string cut_at_first_stop(std::string_view text, const std::vector<std::string>& stops) {
    size_t cut = text.size();
    for (const std::string& s : stops) {
        if (s.empty()) continue;
        const size_t at = text.find(s);
        if (at != std::string_view::npos) cut = std::min(cut, at);
    }
    return std::string(text.substr(0, cut));
}

std::vector<std::vector<std::string>> sample_completions(const SampleOptions& o,
                                                         const std::vector<std::string>& prompts,
                                                         const std::vector<std::vector<std::string>>& stops) {
    if (o.n_samples < 1) fail("sample: n_samples is %d (expected at least 1)", o.n_samples);
    if (o.max_tokens < 1)
        fail("sample: max_tokens is %lld (expected at least 1)", static_cast<long long>(o.max_tokens));
    if (o.slots < 1 || o.slots > 256) fail("sample: slots is %d (expected 1 to 256)", o.slots);
    if (o.threads < 0) fail("sample: threads is %d (expected 0 for all cores, or more)", o.threads);
    if (!stops.empty() && stops.size() != prompts.size()) {
        fail("sample: %zu stop lists for %zu prompts (expected one list per prompt, or none)", stops.size(),
             prompts.size());
    }
    Sampler::validate(o.sampling);
    std::vector<std::vector<std::string>> out(prompts.size(),
                                              std::vector<std::string>(static_cast<size_t>(o.n_samples)));
    if (prompts.empty()) return out;

    std::error_code ec;
    if (!std::filesystem::exists(o.model, ec)) {
        fail_kind(ErrorKind::kNotFound,
                  "sample: %s: no such model file or folder (hint: a GGUF file, a Hugging Face "
                  "folder or a llama2.c checkpoint)",
                  o.model.c_str());
    }
    auto handle = std::make_shared<ModelHandle>();
    handle->id = o.model;
    handle->model = Model::load(o.model, o.tokenizer, true);
    if (handle->model->vocab().empty()) {
        fail("sample: %s has no tokenizer (hint: pass a tokenizer file, such as llama2.c's tok512.bin)",
             o.model.c_str());
    }
    handle->tokenizer = Tokenizer::create(handle->model->vocab());
    handle->stop_on_bos = handle->model->files().format == "llama2c";
    const int64_t n_train = handle->model->config().n_ctx_train;
    SchedulerConfig cfg;
    cfg.slots = o.slots;
    cfg.threads = o.threads;
    cfg.n_ctx = n_train > 0 ? std::min<int64_t>(n_train, 8192) : 2048;
    cfg.max_queue = std::max<size_t>(64, prompts.size() * static_cast<size_t>(o.n_samples));
    cfg.batch_invariant = true;  // reproducible whatever shares the batch

    std::vector<std::vector<int32_t>> ids(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
        ids[i] = encode_prompt(*handle->tokenizer, prompts[i], true, false);
        if (static_cast<int64_t>(ids[i].size()) >= cfg.n_ctx) {
            fail_kind(ErrorKind::kResource,
                      "sample: prompt %zu has %zu tokens but the context holds %lld (hint: a "
                      "shorter prompt or a model with a longer context)",
                      i, ids[i].size(), static_cast<long long>(cfg.n_ctx));
        }
    }

    std::shared_ptr<const ModelHandle> model = handle;
    Scheduler sched(model, cfg);
    auto stream = std::make_shared<RequestStream>();
    const size_t n = static_cast<size_t>(o.n_samples);
    const size_t total = prompts.size() * n;
    for (size_t i = 0; i < prompts.size(); ++i) {
        std::vector<SeqRequest> seqs;
        for (size_t j = 0; j < n; ++j) {
            SeqRequest r;
            r.model = model;
            r.stream = stream;
            r.index = static_cast<int>(i * n + j);
            r.prompt = ids[i];
            r.sampling = o.sampling;
            r.sampling.seed = o.sampling.seed + j;
            r.max_tokens = std::min<int64_t>(o.max_tokens, cfg.n_ctx - static_cast<int64_t>(ids[i].size()));
            if (!stops.empty()) r.stop = stops[i];
            seqs.push_back(std::move(r));
        }
        const Scheduler::Submit s = sched.submit(std::move(seqs));
        if (s != Scheduler::Submit::kAccepted) {
            fail_kind(ErrorKind::kResource, "sample: the scheduler refused prompt %zu (%s)", i,
                      s == Scheduler::Submit::kQueueFull ? "queue full" : "over the KV budget");
        }
    }
    std::vector<std::string> text(total);
    size_t done = 0;
    SeqEvent e;
    while (done < total) {
        if (!stream->pop(e, 200)) continue;
        const size_t k = static_cast<size_t>(e.index);
        if (e.kind == SeqEvent::kToken) {
            text[k] += e.text;
            continue;
        }
        if (e.kind == SeqEvent::kError) {
            stream->cancel();
            fail_kind(e.error_kind, "sample: prompt %zu, sample %zu failed: %s", k / n, k % n, e.text.c_str());
        }
        ++done;
        if (o.progress) o.progress(done, total);
    }
    for (size_t k = 0; k < total; ++k) {
        out[k / n][k % n] = stops.empty() ? std::move(text[k]) : cut_at_first_stop(text[k], stops[k / n]);
    }
    return out;
}

}  // namespace llmforge::codegen
