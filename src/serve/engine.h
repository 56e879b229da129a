// The server's inference engine: the runtime's continuous-batching Scheduler (runtime/scheduler.h:
// slots, admission, batched steps, prefix cache, per-request sampler chains) over the served
// model, with what only the server needs on top: models as the server loads and names them (chat
// template, alias), and the drift monitor fed by every finished sequence.
//
// Hot reload: swap_model() makes new requests use the new model; running sequences finish on the
// model they started with, then the old model is released.
//
// Thread safety: submit(), swap_model(), model(), stats(), idle() and shutdown() may be called
// from any thread. A RequestStream is shared by the engine (producer) and one HTTP handler.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "serve/drift.h"
#include "tokenizer/chat_template.h"

namespace llmforge::serve {

// A model as the server serves it: the scheduler's handle (weights, tokenizer, id) plus where it
// came from and how chat requests are formatted.
struct ServedModel : ModelHandle {
    std::string path;  // what it was loaded from
    // The chat format (runtime/chat.h): the --chat-template choice or the model's own; none means
    // chat requests are refused (as the CLI refuses --chat), completions still work.
    std::optional<ChatTemplate> chat_template;
    std::string chat_template_name;        // where it came from, for the startup log
    std::vector<std::string> extra_stops;  // added to every chat request (built-in ChatML: <|im_end|>)
};

struct ModelOptions {
    std::string tokenizer_path;      // optional vocabulary override
    std::string chat_template_path;  // optional: a Jinja file, or "chatml" for the built-in ChatML
    std::string alias;               // optional id; default: the file name without extension
    bool use_mmap = true;
};

// Loads everything a request needs; throws Error (one line) when anything is wrong (kNotFound when
// the model path does not exist).
std::shared_ptr<const ServedModel> load_served_model(const std::string& path, const ModelOptions& opt);

using TokenLogprob = llmforge::TokenLogprob;
using Event = llmforge::SeqEvent;
using RequestStream = llmforge::RequestStream;
using SeqRequest = llmforge::SeqRequest;
using EngineConfig = SchedulerConfig;
using EngineStats = SchedulerStats;

class Engine {
public:
    Engine(std::shared_ptr<const ServedModel> model, EngineConfig cfg, DriftMonitor* drift);
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // The model new requests are tokenised for.
    std::shared_ptr<const ServedModel> model() const;
    void swap_model(std::shared_ptr<const ServedModel> m) { sched_.set_model(std::move(m)); }
    using Submit = Scheduler::Submit;
    // Queues the sequences of one request (all or none); see Scheduler::submit.
    Submit submit(std::vector<SeqRequest> seqs) { return sched_.submit(std::move(seqs)); }
    EngineStats stats() { return sched_.stats(); }
    const EngineConfig& config() const { return sched_.config(); }
    // True when nothing is queued or running.
    bool idle() { return sched_.idle(); }
    // Cancels everything and stops the loop (the destructor does this too).
    void shutdown() { sched_.shutdown(); }

private:
    DriftMonitor* drift_;
    Scheduler sched_;  // last: its loop thread may call into drift_ until it is destroyed
};

}  // namespace llmforge::serve
