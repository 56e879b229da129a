// Continuous batching: one loop thread runs a fixed set of slots (one KV memory each). Between
// steps, queued sequences join free slots; every step runs the next token of each generating slot
// and a bounded chunk of prompt tokens (so a long prompt never stalls the other streams) through
// Model::forward_batch together, then runs each slot's decode step (runtime/decode_step.h).
//
// Each sequence carries its own state: its sampler chain (built from its SamplerParams, plus an
// optional constraint stage made for it), its adapter id, its stop strings and limits.
//
// Adapters: each sequence may carry its own LinearDelta (a LoRA). A step's rows are ordered so
// that sequences with the same delta sit side by side; the forward pass then applies one delta
// call per group (Model::forward_batch, EagerOps) after the base product shared by all rows.
//
// Prefix reuse: a finished prompt's whole 64-token blocks go to the PrefixCache (keyed by model,
// adapter, KV layout and tokens; shared by every model within one byte budget); a new prompt
// starting with the same tokens copies them instead of recomputing. A free slot also keeps its
// last sequence, and a prompt that continues it (chat history) reuses it in place.
//
// Images (runtime/multimodal.h): a sequence may carry a MultimodalPrompt. Its prompt is then the
// prompt's position keys (token ids, and a negative stand-in id per image row, derived from the
// image's content), so reservations, the step's prompt budget, the prefix cache and slot reuse
// count and compare positions, images by content; an image's rows go through the forward pass as
// embeddings (SeqBatch::embd), and a prefill chunk never straddles a token/image boundary. The
// sampler's penalty history sees the text tokens only.
//
// Models: set_model() makes new requests use another model (hot reload); running sequences finish
// on the model they started with, then the old one is let go.
//
// Failures: a step that throws is retried one sequence at a time, so that only the sequences that
// fail on their own get an error event (with the Error's kind); the others go on. A sampler or
// constraint that throws fails its own sequence only.
//
// Thread safety: submit(), set_model(), model(), stats(), idle() and shutdown() may be called from
// any thread. The lock guards the queue, the slots' assignment and the counters only: the forward
// pass, sampling and text streaming run outside it, on the loop thread. A RequestStream is shared
// by the loop (producer) and one consumer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "runtime/prefix_cache.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

struct MultimodalPrompt;  // runtime/multimodal.h

// A model as the scheduler runs it: weights, tokenizer, and how its text ends. Shared: a model
// replaced by set_model() lives on until its last sequence has finished.
struct ModelHandle {
    ModelHandle();
    ModelHandle(const ModelHandle&) = delete;
    ModelHandle& operator=(const ModelHandle&) = delete;

    std::string id;  // the name clients use
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    bool stop_on_bos = false;  // llama2.c checkpoints: sampling BOS ends the text
    // How its sequences' KV memories store keys and values (--cache-type-k / -v). Set before the
    // handle is shared; the KV budget and the prefix cache's layout key follow from it.
    KvTypes kv_types;
    // Unique within the process (an address could be reused after a model is freed): the prefix
    // cache keys blocks by it.
    const uint64_t serial;

    // Bytes one position takes in this model's KV memory, in kv_types (from the memory itself,
    // so the scheduler needs no knowledge of its layout: a q8_0 cache reserves its real bytes).
    size_t kv_bytes_per_position() const;

private:
    mutable std::once_flag kv_once_;
    mutable size_t kv_bytes_ = 0;
};

struct TokenLogprob {
    int32_t id = -1;
    float logprob = 0;
};

// What the scheduler sends back for a sequence.
struct SeqEvent {
    enum Kind { kToken, kDone, kError } kind = kToken;
    int index = 0;                  // the sequence's index within its request
    std::string text;               // kToken: newly final text (may be empty); kError: the message
    TokenLogprob token;             // kToken: the sampled token
    std::vector<TokenLogprob> top;  // kToken: top_logprobs alternatives, best first
    std::string finish_reason;      // kDone: "stop", "length", "cancelled" (consumer gone), "shutdown"
    int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;  // kDone
    ErrorKind error_kind = ErrorKind::kInternal;                          // kError
};

// The events of one request's sequences: the scheduler pushes, one consumer pops.
class RequestStream {
public:
    void push(SeqEvent e);
    // Waits up to timeout_ms for an event; false on timeout.
    bool pop(SeqEvent& e, int timeout_ms);
    // The consumer went away (or the request timed out): its sequences stop within one step.
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<SeqEvent> events_;
    std::atomic<bool> cancelled_{false};
};

// One sequence to generate, with everything that is its own.
struct SeqRequest {
    std::shared_ptr<const ModelHandle> model;  // the model it was tokenised for
    std::shared_ptr<RequestStream> stream;
    int index = 0;
    // The prompt's positions: token ids, or with `images` its position_keys().
    std::vector<int32_t> prompt;
    // Optional: a prompt with images (shared by a request's choices). `prompt` must then be
    // images->position_keys() (checked when the sequence starts) and the image rows the model's
    // width.
    std::shared_ptr<const MultimodalPrompt> images;
    SamplerParams sampling;
    int64_t max_tokens = 16;
    std::vector<std::string> stop;
    int top_logprobs = -1;  // -1: no logprobs; else 0..20 alternatives per token
    // The adapter (e.g. a LoRA) the sequence runs with: `adapter` is its key ("" for none), part
    // of the prefix-cache key and of slot reuse, so it must name one set of weights for good (the
    // server appends a load serial); `delta` is what the forward pass applies to the sequence's
    // rows (SeqBatch::delta). The shared_ptr keeps an adapter that is unloaded meanwhile alive
    // until the sequence has finished.
    std::string adapter;
    std::shared_ptr<const LinearDelta> delta;
    // Optional: makes this sequence's constraint (a grammar, a banned-word rule), a stage put
    // first in its sampler chain. Called once per sequence, on the loop thread.
    std::function<std::unique_ptr<SamplerStage>()> constraint;
    double enqueued_at = 0;  // seconds (steady clock), set by submit()
};

struct SchedulerConfig {
    int slots = 4;
    int64_t n_ctx = 2048;              // per slot
    int threads = 0;                   // 0: hardware concurrency
    int64_t step_prompt_tokens = 128;  // prompt tokens per step, shared by prefilling slots
    size_t max_queue = 64;
    size_t prefix_cache_bytes = 256u << 20;
    // KV admission budget: a sequence reserves (prompt + max_tokens) positions while it runs,
    // and one is admitted only if the running ones' reservations plus its own fit (the slots'
    // memories are allocated lazily, so only positions in use become resident). 0: no budget
    // beyond slots x n_ctx.
    size_t kv_budget_bytes = 0;
    bool batch_invariant = true;  // see ForwardScratch::batch_invariant
};

// Counters (monotonic unless noted).
struct SchedulerStats {
    int slots = 0, slots_busy = 0;  // gauges
    size_t queue_depth = 0;         // gauge
    uint64_t prompt_tokens = 0, generated_tokens = 0, prefix_lookup_tokens = 0, prefix_hit_tokens = 0;
    uint64_t steps = 0, sequences_done = 0, sequences_failed = 0;
    size_t prefix_cache_bytes = 0, kv_cache_bytes = 0, kv_reserved_bytes = 0;  // gauges
    double busy_seconds = 0;
    std::vector<double> ttft_seconds;  // since the last stats() call
};

// A sequence that ended normally (not failed), for observers such as a drift monitor. The
// references are valid during the call only.
struct SeqSummary {
    const ModelHandle& model;
    const std::vector<int32_t>& prompt;  // SeqRequest::prompt: image rows are negative keys
    int64_t completion_tokens;
    double sum_logprob, sum_entropy;  // over the generated tokens (nats)
    const char* finish_reason;
};

class Scheduler {
public:
    // on_finish runs on the loop thread, outside the lock, after each sequence that ended.
    using FinishHook = std::function<void(const SeqSummary&)>;
    Scheduler(std::shared_ptr<const ModelHandle> model, SchedulerConfig cfg, FinishHook on_finish = nullptr);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // The model new requests are tokenised for.
    std::shared_ptr<const ModelHandle> model() const;
    void set_model(std::shared_ptr<const ModelHandle> m);
    enum class Submit { kAccepted, kQueueFull, kOverBudget };
    // Queues the sequences of one request (all or none). kQueueFull: the queue has no room (or
    // the scheduler stopped); kOverBudget: one sequence alone needs more than kv_budget_bytes.
    Submit submit(std::vector<SeqRequest> seqs);
    // KV bytes a sequence reserves: (prompt + max_tokens) positions of its model.
    static size_t reservation(const SeqRequest& r);
    SchedulerStats stats();
    const SchedulerConfig& config() const { return cfg_; }
    // True when nothing is queued or running.
    bool idle();
    // Ends everything ("shutdown") and stops the loop (the destructor does this too).
    void shutdown();

private:
    struct Slot;
    struct StepStats;
    void loop();
    std::vector<Slot*> admit();
    void start(Slot& s, StepStats& st);
    void step(ThreadPool& pool, ForwardScratch& scratch, StepStats& st);
    void next_token(Slot& s, StepStats& st);
    void end(Slot& s, const char* reason, StepStats& st);
    void fail_seq(Slot& s, const std::exception& e, StepStats& st);
    void release(StepStats& st, double busy_seconds);

    SchedulerConfig cfg_;
    FinishHook on_finish_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::shared_ptr<const ModelHandle> model_;
    std::deque<SeqRequest> queue_;
    std::vector<std::unique_ptr<Slot>> slots_;
    PrefixCache prefix_;  // loop thread only
    std::vector<std::weak_ptr<const ModelHandle>> models_seen_;  // loop thread only: whose blocks prefix_ may hold
    SchedulerStats stats_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace llmforge
