// llmforge serve: the OpenAI-compatible HTTP front of the Engine.
//
//   POST /v1/chat/completions, POST /v1/completions   (stream: Server-Sent Events)
//   GET  /v1/models, GET /health, GET /metrics (Prometheus text), GET / (the chat page)
//   POST /admin/reload {"model": PATH}, GET /admin/drift   (admin key)
//   POST /admin/adapters {"action": "load", "name": NAME, "path": DIR[, "scale": S]}
//                        {"action": "unload", "name": NAME}       (admin key)
//
// LoRA adapters (`--adapter NAME=DIR`, or loaded at run time): /v1/models lists the base model
// and each adapter (with "parent": the base's id, as vLLM lists LoRA modules); a request's
// "model" picks one (the base's id: no adapter). Requests with different adapters share one
// batch (the base product once for every row, then each adapter group's low-rank delta). A
// hot reload of the base checks every adapter against the new model and drops (with a log line)
// the ones that no longer fit; the reload itself goes on.
//
// Images (docs/MULTIMODAL.md "Server"): user messages' image_url content parts (data: URIs;
// remote URLs are refused) for a model served with an image encoder (its folder's mmproj.gguf,
// or --mmproj); the prefix cache keys image positions by the image's content.
//
// Structured output and tools (docs/SERVER.md): response_format / grammar / json_schema and
// tools + tool_choice constrain each sequence with a grammar stage; with tools the text is parsed
// into tool_calls, and streamed through a ToolCallStreamer per choice (content released at once,
// each call released whole, no call markup in delta.content). /v1/completions "suffix" builds the
// model's fill-in-the-middle prompt.
//
// Connections are read by HttpGate (serve/http_gate.h): each request arrives whole, its head
// checked (API key, admin key, size, shutdown) before its body is read. Complete requests are
// routed and answered by Debian's cpp-httplib on the gate's worker threads. The handlers check
// and tokenise requests, hand sequences to the Engine and relay its events. Errors use OpenAI's
// JSON shape and status codes; a request cut by shutdown gets 503 (or, streaming, an error event
// and [DONE]), never a normal finish.
//
// Thread safety: run() blocks in the caller's thread; reload() and shutdown() may be called
// from any thread (the CLI calls them from its signal thread).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "serve/drift.h"
#include "serve/engine.h"
#include "serve/http_gate.h"

#include <nlohmann/json.hpp>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace llmforge::serve {

// One `--adapter NAME=DIR` (scale: the user's multiplier).
struct AdapterOption {
    std::string name, path;
    double scale = 1;
};
// "NAME=DIR" -> option; throws Error (one line) for a spec without '=' or an empty part.
AdapterOption parse_adapter_option(const std::string& spec);

// A content filter the server consults (llmforge serve --safety DIR plugs in the shop
// assistant's, apps/shop/safety.h): on the request's user text before generating, and on each
// choice's text as it is produced. A request it blocks is answered with `refusal` and
// finish_reason "content_filter" without generating; a reply that turns unsafe is cut before the
// unsafe text is sent, `replacement` is sent in its place, and the choice ends with
// finish_reason "content_filter" (streams: then usage and [DONE] as usual). Tool-call output is
// not filtered. check() must be thread-safe.
class ContentFilter {
public:
    virtual ~ContentFilter() = default;
    // The category when `text` must not pass; nullopt when it may.
    virtual std::optional<std::string> check(const std::string& text) const = 0;
    std::string refusal = "I'm sorry, I can't help with that. I can help with orders, deliveries, returns and our products.";
    std::string replacement = "[The rest of this reply was withheld by the safety filter.]";
};

// Text embeddings for POST /v1/embeddings (llmforge serve --embeddings DIR plugs in the shop
// assistant's retriever, apps/shop/retriever.h). embed() must be thread-safe.
class Embedder {
public:
    virtual ~Embedder() = default;
    // The model ids clients may name; the first is used when a request names none.
    virtual std::vector<std::string> models() const = 0;
    virtual int dims() const = 0;
    // The embedding (dims() floats) of `text` by `model`, one of models().
    virtual std::vector<float> embed(const std::string& model, const std::string& text) const = 0;
};

// A chat application between the clients and the model (llmforge serve --app shop plugs in the
// shop assistant, apps/shop/assistant.h). With one, every chat completion goes through it: begin()
// turns the client's request (its last user message and the app's own fields, such as
// "session_id") into the request the model answers — or answers it without the model —, the
// response carries the app's account of the turn as "app" (the JSON body, or the first chunk of a
// stream), and finish() gets the reply the client was shown (choice 0, after the content filter)
// once it is complete. Its own endpoints are under /v1/app/. Errors are core Errors (kNotFound:
// 404, kBadInput: 400). All methods must be thread-safe.
// Rewrites one choice's text on its way to the client (a chat app's slot filler): push() returns
// what may be sent now, finish() what it held back. The content filter sees the rewritten text.
class ReplyRewriter {
public:
    virtual ~ReplyRewriter() = default;
    virtual std::string push(const std::string& piece) = 0;
    virtual std::string finish() = 0;
};

class ChatApp {
public:
    virtual ~ChatApp() = default;
    struct Turn {
        nlohmann::json body;                // the chat request to generate from
        std::optional<std::string> reply;   // set: the answer, without generating
        nlohmann::json info;                // sent to the client as "app"
        std::shared_ptr<const void> state;  // the app's, for finish()
        std::string user_text;              // what the content filter checks
        // Makes each choice's rewriter (null: the model's text goes out as it is).
        std::function<std::unique_ptr<ReplyRewriter>()> rewriter;
    };
    // What the served model allows: its tokenizer's count of a text, the context per sequence.
    struct Limits {
        std::function<size_t(const std::string&)> count_tokens;
        int64_t n_ctx = 0;
    };
    virtual Turn begin(const nlohmann::json& request, const Limits& limits) = 0;
    // shown: choice 0's reply as the client got it; generated: as the model wrote it (before the
    // rewriter; the same as shown for an answer given without the model).
    virtual void finish(const Turn& turn, const std::string& shown, const std::string& generated) = 0;
    // GET or POST /v1/app/<path>: the JSON answer; throws Error (kNotFound for an unknown path).
    virtual nlohmann::json route(const std::string& method, const std::string& path, const nlohmann::json& body) = 0;
};

struct ServerConfig {
    std::string model_path;
    std::vector<AdapterOption> adapters;  // loaded at start, after the model
    ModelOptions model_options;
    std::string host = "127.0.0.1";
    int port = 8080;  // 0: any free port (the "listening on" line says which)
    std::string api_key, admin_key;  // empty: no key needed / admin endpoints off
    std::string metrics_key;         // empty: GET /metrics is public
    size_t max_body_bytes = 1u << 20;
    int64_t max_tokens_cap = 4096;
    int max_n = 16;
    double timeout_s = 600;        // a request running longer is ended (finish_reason "length")
    double shutdown_grace_s = 30;  // SIGTERM: time in-flight requests get to finish
    int http_threads = 64;         // requests handled at once (streams hold one each)
    GateConfig gate;               // connection limits and timeouts (max_body and workers set from above)
    EngineConfig engine;
    DriftConfig drift;
    std::shared_ptr<const ContentFilter> content_filter;  // null: none
    std::shared_ptr<const Embedder> embedder;             // null: /v1/embeddings answers 404
    std::shared_ptr<ChatApp> app;                         // null: chat completions go straight to the model
};

class Server {
public:
    explicit Server(ServerConfig cfg);
    ~Server();
    // Loads the model, binds, prints "llmforge serve: listening on http://HOST:PORT" to stderr
    // and serves until shutdown(). Throws Error when the model cannot be loaded or the port bound.
    void run();
    // Loads `path` (empty: the current model's path) beside the serving model and swaps it in,
    // with every adapter that still fits it (read again from its folder; the others are dropped
    // with a log line). Throws Error with the loader's message; the old model keeps serving then.
    // Returns the names of the dropped adapters.
    std::vector<std::string> reload(const std::string& path);
    // Loads (or replaces) adapter `name` from `dir`, checked against the serving model, off the
    // engine's loop (the caller's thread); requests may name it once this returns. Throws Error.
    // Returns true when it replaced an adapter of that name.
    bool load_adapter(const std::string& name, const std::string& dir, double scale);
    // Makes `name` unknown to new requests; its running sequences finish. False: no such adapter.
    bool unload_adapter(const std::string& name);
    // Stops accepting requests (503), waits up to shutdown_grace_s for running ones, then
    // cancels the rest and returns from run().
    void shutdown();

    // Without a socket (the HTTP fuzz target, tests): serves `model` and answers raw request
    // bytes exactly as run() would answer them on a connection.
    void start(std::shared_ptr<const ServedModel> model, AdapterMap adapters = {});
    std::string process(const std::string& request_bytes);

private:
    class Router;
    void routes();  // registers httplib's hooks and binds each route to its handle_* below
    void log_routed(const httplib::Request& req, const httplib::Response& res);

    // The route handlers, one per endpoint (server.cpp says what each answers). Each checks its
    // key again, as the gate's reading of the path should not decide who gets in.
    void handle_page(const httplib::Request& req, httplib::Response& res);
    void handle_health(const httplib::Request& req, httplib::Response& res);
    void handle_metrics(const httplib::Request& req, httplib::Response& res);
    void handle_models(const httplib::Request& req, httplib::Response& res);
    void handle_model(const httplib::Request& req, httplib::Response& res);
    void handle_chat_completions(const httplib::Request& req, const std::string& body, httplib::Response& res);
    void handle_completions(const httplib::Request& req, const std::string& body, httplib::Response& res);
    void handle_reload(const httplib::Request& req, const std::string& body, httplib::Response& res);
    void handle_drift(const httplib::Request& req, httplib::Response& res);
    void handle_adapters(const httplib::Request& req, const std::string& body, httplib::Response& res);
    void handle_embeddings(const httplib::Request& req, const std::string& body, httplib::Response& res);
    void handle_app(const httplib::Request& req, const std::string& body, httplib::Response& res);
    // The steps both completion endpoints share: key, shutdown, parse, enqueue, answer or stream.
    void generate(bool chat, const httplib::Request& req, const std::string& body, httplib::Response& res);
    // Hands the sequences to the engine; false after answering 400 (KV budget) or 503 (queue full).
    bool enqueue(std::vector<SeqRequest> seqs, httplib::Response& res);

    std::optional<EarlyResponse> check_head(const RequestHead& head);
    EarlyResponse health() const;  // GET /health: 200 with the model id, 503 loading / shutting down
    void log_request(const std::string& method, const std::string& path, const std::string& remote, int status,
                     size_t bytes_in, double seconds);
    std::string metrics();

    ServerConfig cfg_;
    std::unique_ptr<Router> router_;
    std::unique_ptr<HttpGate> gate_;
    std::unique_ptr<DriftMonitor> drift_;
    std::unique_ptr<Engine> engine_;
    std::mutex reload_mu_;
    // Serialises changes of the adapter set (loads, unloads, a reload's re-check of them).
    std::mutex adapters_mu_;
    // The served model's id for /health, answered by the connection loop without waiting for the
    // engine's lock.
    mutable std::mutex id_mu_;
    std::string model_id_;
    std::atomic<bool> ready_{false}, draining_{false};
    struct Metrics;
    std::unique_ptr<Metrics> metrics_;
};

}  // namespace llmforge::serve
