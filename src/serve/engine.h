// The server's inference engine: one loop thread runs continuous batching over a fixed set of
// slots (one KV cache each). Between decode steps, queued requests join free slots; every step
// runs the next token of each generating slot and a bounded chunk of prompt tokens (so a long
// prompt never stalls the other streams) through Model::forward_batch together.
//
// Prefix cache: a finished prompt's full 64-token blocks stay in a bounded LRU store of K/V
// blocks keyed by their token prefix; a new prompt starting with the same tokens copies them
// instead of recomputing. A free slot also keeps its last sequence, and a prompt that continues
// it (chat history) reuses it in place.
//
// Hot reload: swap_model() makes new requests use the new model; running sequences finish on the
// model they started with, then the old model is released.
//
// Thread safety: submit(), swap_model(), stats() and shutdown() may be called from any thread.
// A RequestStream is shared by the engine (producer) and one HTTP handler (consumer).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "serve/drift.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::serve {

// A model as the server serves it: weights, tokenizer, chat template and its name.
struct ServedModel {
    std::string id;    // the name clients pass as "model"
    std::string path;  // what it was loaded from
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::optional<ChatTemplate> chat_template;
    bool template_is_fallback = false;    // no template in the model: ChatML is used
    std::vector<std::string> extra_stops;  // added to every chat request (fallback template)
    bool stop_on_bos = false;              // llama2.c checkpoints: sampling BOS ends the text
};

struct ModelOptions {
    std::string tokenizer_path;  // optional vocabulary override
    std::string chat_template_path;  // optional Jinja file
    std::string alias;           // optional id; default: the file name without extension
    bool use_mmap = true;
};

// Loads everything a request needs; throws Error (one line) when anything is wrong.
std::shared_ptr<const ServedModel> load_served_model(const std::string& path, const ModelOptions& opt);

struct TokenLogprob {
    int32_t id = -1;
    float logprob = 0;
};

// What the engine sends back to a request's handler.
struct Event {
    enum Kind { kToken, kDone, kError } kind = kToken;
    int index = 0;             // the choice
    std::string text;          // kToken: newly final text (may be empty); kError: the message
    TokenLogprob token;        // kToken: the sampled token
    std::vector<TokenLogprob> top;  // kToken: top_logprobs alternatives, best first
    std::string finish_reason;      // kDone: "stop", "length", "cancelled" (client gone), "shutdown"
    int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;  // kDone
};

// One HTTP request's choices: the engine pushes events, the handler pops them.
class RequestStream {
public:
    void push(Event e);
    // Waits up to timeout_ms for an event; false on timeout.
    bool pop(Event& e, int timeout_ms);
    // The client went away (or the request timed out): its sequences stop within one step.
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Event> events_;
    std::atomic<bool> cancelled_{false};
};

// One sequence to generate (one choice of a request).
struct SeqRequest {
    std::shared_ptr<const ServedModel> model;  // the model it was tokenised for
    std::shared_ptr<RequestStream> stream;
    int index = 0;
    std::vector<int32_t> prompt;
    SamplerParams sampling;
    int64_t max_tokens = 16;
    std::vector<std::string> stop;
    int top_logprobs = -1;  // -1: no logprobs; else 0..20 alternatives per token
    double enqueued_at = 0;  // seconds (steady clock), set by submit()
};

struct EngineConfig {
    int slots = 4;
    int64_t n_ctx = 2048;         // per slot
    int threads = 0;              // 0: hardware concurrency
    int64_t step_prompt_tokens = 128;  // prompt tokens per step, shared by prefilling slots
    size_t max_queue = 64;
    size_t prefix_cache_bytes = 256u << 20;
    // KV-cache admission budget: a sequence reserves (prompt + max_tokens) cache rows while it
    // runs, and one is admitted only if the running ones' reservations plus its own fit (the
    // slot caches are allocated lazily, so only rows in use become resident). 0: no budget
    // beyond slots x n_ctx.
    size_t kv_budget_bytes = 0;
    bool batch_invariant = true;  // see ForwardScratch::batch_invariant
};

// Counters for /metrics (monotonic unless noted).
struct EngineStats {
    int slots = 0, slots_busy = 0;  // gauges
    size_t queue_depth = 0;         // gauge
    uint64_t prompt_tokens = 0, generated_tokens = 0, prefix_lookup_tokens = 0, prefix_hit_tokens = 0;
    uint64_t steps = 0, sequences_done = 0;
    size_t prefix_cache_bytes = 0, kv_cache_bytes = 0, kv_reserved_bytes = 0;  // gauges
    double busy_seconds = 0;
    std::vector<double> ttft_seconds;  // since the last stats() call (for the histogram)
};

class Engine {
public:
    Engine(std::shared_ptr<const ServedModel> model, EngineConfig cfg, DriftMonitor* drift);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // The model new requests are tokenised for.
    std::shared_ptr<const ServedModel> model() const;
    void swap_model(std::shared_ptr<const ServedModel> m);
    enum class Submit { kAccepted, kQueueFull, kOverBudget };
    // Queues the sequences of one request (all or none). kQueueFull: the queue has no room;
    // kOverBudget: one sequence alone needs more KV cache than kv_budget_bytes.
    Submit submit(std::vector<SeqRequest> seqs);
    // Cache bytes a sequence reserves: (prompt + max_tokens) rows of its model.
    static size_t reservation(const SeqRequest& r);
    EngineStats stats();
    const EngineConfig& config() const { return cfg_; }
    // True when nothing is queued or running.
    bool idle();
    // Cancels everything and stops the loop (the destructor does this too).
    void shutdown();

private:
    struct Slot;
    struct PrefixStore;
    void loop();
    void admit();
    void next_token(Slot& s);
    void finish(Slot& s, const char* reason);

    EngineConfig cfg_;
    DriftMonitor* drift_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::shared_ptr<const ServedModel> model_;
    std::deque<SeqRequest> queue_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::unique_ptr<PrefixStore> prefix_;
    EngineStats stats_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace llmforge::serve
