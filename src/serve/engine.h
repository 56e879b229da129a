// The server's inference engine: the runtime's continuous-batching Scheduler (runtime/scheduler.h:
// slots, admission, batched steps, prefix cache, per-request sampler chains) over the served
// model, with what only the server needs on top: models as the server loads and names them (chat
// template, alias), and the drift monitor fed by every finished sequence.
//
// Hot reload: swap_model() makes new requests use the new model; running sequences finish on the
// model they started with, then the old model is released.
//
// Adapters (LoRA, `serve --adapter NAME=DIR`, POST /admin/adapters): each is a name clients put
// in "model", checked against the served model when loaded. serving() hands out the model and
// the adapter map together, so a request never pairs a model with an adapter made for another.
// Sequences hold their adapter's delta (shared_ptr): one unloaded or replaced meanwhile finishes
// its running sequences on the weights it started with.
//
// Images (docs/MULTIMODAL.md "Server"): a served model whose folder has an image encoder (an
// mmproj GGUF: ImageEncoder::find_for_model, or ModelOptions::mmproj_path) loads it with the
// decoder, checked against it (a hot reload too); requests' images become rows through it
// (ServedModel::embed_image) and their sequences carry a MultimodalPrompt.
//
// Thread safety: submit(), swap_model(), model(), stats(), idle() and shutdown() may be called
// from any thread. A RequestStream is shared by the engine (producer) and one HTTP handler.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "runtime/fim.h"
#include "runtime/grammar.h"
#include "runtime/multimodal.h"
#include "runtime/scheduler.h"
#include "runtime/tool_calls.h"
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
    // The image encoder (null: requests with images get 400); when the folder's mmproj did not fit
    // the decoder, null and `no_images_reason` says why (the 400 repeats it).
    std::shared_ptr<const ImageEncoder> image_encoder;
    std::string no_images_reason;
    int image_threads = 0;  // the image encoder's pool (0: all cores)

    // Built on first use, once per model (a hot reload makes a new ServedModel, so new ones);
    // thread-safe. The vocabulary as grammar masks need it (shared by every constrained request).
    std::shared_ptr<const GrammarVocab> grammar_vocab() const;
    // How the chat template writes tool calls (runtime/tool_calls.h); the generic fallback when
    // there is no template or it does not render tools.
    const ToolSyntax& tool_syntax() const;
    // The vocabulary's fill-in-the-middle format (/v1/completions "suffix"), if any.
    const std::optional<FimFormat>& fim() const;
    // One image's rows and content hash through image_encoder (which must be set): prompt_image
    // on a pool of image_threads made on first use, one image at a time per model; thread-safe.
    PromptImage embed_image(const Image& image) const;

private:
    mutable std::mutex image_mu_;
    mutable std::unique_ptr<ThreadPool> image_pool_;
    mutable std::once_flag grammar_once_, tools_once_, fim_once_;
    mutable std::shared_ptr<const GrammarVocab> grammar_vocab_;
    mutable ToolSyntax tool_syntax_;
    mutable std::optional<FimFormat> fim_;
};

struct ModelOptions {
    std::string tokenizer_path;      // optional vocabulary override
    std::string chat_template_path;  // optional: a Jinja file, or "chatml" for the built-in ChatML
    std::string alias;               // optional id; default: the file name without extension
    // Optional: the image encoder (an mmproj GGUF, --mmproj); default: the model folder's
    // mmproj.gguf when it has one (ImageEncoder::find_for_model).
    std::string mmproj_path;
    DType image_encode_type = DType::F32;  // --encode-type: its products (ImageEncoder::load)
    int threads = 0;  // the image encoder's threads (0: all cores)
    bool use_mmap = true;
    KvTypes kv_types;  // --cache-type-k / --cache-type-v: how every slot's KV memory stores K and V
    AttentionChoice attention;  // --attention / --lsh-*: dense or LSH attention at run time
};

// Loads everything a request needs; throws Error (one line) when anything is wrong (kNotFound when
// the model path or --mmproj does not exist; an --mmproj that is not an image encoder or does not
// fit the decoder). An image encoder found beside the model that does not load or fit is left out
// with a warning on stderr (the model serves text; no_images_reason says why).
std::shared_ptr<const ServedModel> load_served_model(const std::string& path, const ModelOptions& opt);

// A LoRA adapter as the server serves it: read from DIR and checked against one base model.
struct ServedAdapter {
    std::string name;  // the "model" value that selects it
    std::string path;  // the folder it was read from
    double scale = 1;  // the user's multiplier (the adapter's alpha / r comes on top)
    AdapterConfig cfg;
    std::shared_ptr<const LinearDelta> delta;  // a LowRankDelta (model/low_rank.h)
    // Unique per load ("NAME#serial"): the scheduler's adapter key (prefix cache, slot reuse), so
    // K/V computed with one load are never reused by a later load under the same name.
    std::string key;
    uint64_t base_serial = 0;  // the ModelHandle::serial of the base it was checked against
};
using AdapterMap = std::map<std::string, std::shared_ptr<const ServedAdapter>>;

// Reads the PEFT folder `dir` and checks it against `base` (read_adapter: every tensor must name a
// module the base has, with the shapes it implies). Throws Error, one line naming NAME and DIR:
// kNotFound for a missing folder; bad input for a folder that is not an adapter, an adapter made
// for another base, a prompt-tuning adapter (serve runs LoRA only), a bad name or scale.
std::shared_ptr<const ServedAdapter> load_served_adapter(const std::string& name, const std::string& dir, double scale,
                                                         const ServedModel& base);
// Throws Error (one line) unless `name` may name an adapter: 1..128 printable ASCII characters,
// no spaces, and not the base model's id.
void check_adapter_name(const std::string& name, const std::string& base_id);

// The served model and its adapters, consistent with each other.
struct Serving {
    std::shared_ptr<const ServedModel> model;
    std::shared_ptr<const AdapterMap> adapters;  // never null
};

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
    // The model and the adapters new requests may name.
    Serving serving() const;
    // Makes new requests use `m` with `adapters` (checked against m), together.
    void swap_model(std::shared_ptr<const ServedModel> m, AdapterMap adapters = {});
    // Adds (or replaces, by name) an adapter checked against the current model; false when the
    // model was swapped since it was checked (the caller checks it again).
    bool put_adapter(std::shared_ptr<const ServedAdapter> a);
    // Removes an adapter; false when none has that name. Its running sequences finish with it.
    bool remove_adapter(const std::string& name);
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
    mutable std::mutex mu_;  // guards serving_ (copy-on-write: readers get a snapshot)
    Serving serving_;
    Scheduler sched_;  // last: its loop thread may call into drift_ until it is destroyed
};

}  // namespace llmforge::serve
