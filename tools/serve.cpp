// llmforge serve: the OpenAI-compatible server (src/serve/). SIGHUP reloads the model file,
// SIGTERM / SIGINT shut down gracefully (running requests finish within --shutdown-grace).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "apps/shop/assistant.h"
#include "apps/shop/retriever.h"
#include "apps/shop/safety.h"
#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "serve/server.h"

namespace llmforge::cli {

namespace {

// The shop assistant's safety filter (rules + classifier) as the server's content filter.
class SafetyContentFilter : public serve::ContentFilter {
public:
    explicit SafetyContentFilter(const std::string& dir) : f_(dir) {}
    // Fails closed: a text the filter cannot judge (a regular expression giving up on it) is
    // treated as blocked.
    std::optional<std::string> check(const std::string& text) const override {
        try {
            return f_.check(text).category;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "llmforge serve: safety filter failed on a text (%s): blocked\n", e.what());
            return std::string("unchecked");
        }
    }
    apps::SafetyFilter& filter() { return f_; }

private:
    apps::SafetyFilter f_;
};

// The shop's retriever as the server's embedder: "shop-retriever" embeds passages (documents),
// "shop-retriever-query" queries; a "query: " prefix also selects the query encoder.
class RetrieverEmbedder : public serve::Embedder {
public:
    explicit RetrieverEmbedder(const std::string& dir) : enc_(dir) {}
    std::vector<std::string> models() const override { return {"shop-retriever", "shop-retriever-query"}; }
    int dims() const override { return apps::DualEncoder::kDims; }
    std::vector<float> embed(const std::string& model, const std::string& text) const override {
        return enc_.encode(text, model == "shop-retriever-query");
    }

private:
    apps::DualEncoder enc_;
};

// The shop assistant as the server's chat app: a chat request names its session ("session_id")
// and sends the customer's new message (the last user message; earlier ones are the session's,
// kept in the database); the model answers from the assistant's context with nucleus sampling at
// temperature 0.7 unless the request says otherwise. Endpoints: GET /v1/app/info, POST
// /v1/app/sessions {"customer_id"}, GET /v1/app/sessions?customer_id=…, GET /v1/app/sessions/ID.
// The shop model's slot references ({eta}, {tracking}, …) filled as the reply streams.
class SlotFiller : public serve::ReplyRewriter {
public:
    explicit SlotFiller(train::SlotValues v) : lex_(std::move(v)) {}
    std::string push(const std::string& piece) override { return lex_.push(piece); }
    std::string finish() override { return lex_.finish(); }

private:
    train::Lexicalizer lex_;
};

class ShopChatApp : public serve::ChatApp {
public:
    explicit ShopChatApp(apps::AssistantOptions o) : a_(std::move(o)) {}

    Turn begin(const nlohmann::json& request, const Limits& limits) override {
        if (!request.is_object()) fail("the request body must be a JSON object");
        if (!request.contains("session_id") || !request["session_id"].is_string())
            fail("this server runs the shop assistant: a chat request needs \"session_id\" (a string; hint: "
                 "POST /v1/app/sessions {\"customer_id\": \"U00001\"} starts one)");
        std::string text;
        if (request.contains("messages") && request["messages"].is_array())
            for (const auto& m : request["messages"])
                if (string_field(m, "role") == "user") text = content_text(m.contains("content") ? m["content"] : nlohmann::json());
        if (text.find_first_not_of(" \t\r\n") == std::string::npos)
            fail("the shop assistant answers the last user message, and this request has none with text (hint: "
                 "\"messages\": [{\"role\": \"user\", \"content\": \"Where is my order?\"}])");
        Turn t;
        t.body = request;
        t.body.erase("session_id");
        if (!t.body.contains("temperature")) t.body["temperature"] = 0.7;
        if (!t.body.contains("top_p")) t.body["top_p"] = 0.9;
        if (!t.body.contains("max_tokens") && !t.body.contains("max_completion_tokens")) t.body["max_tokens"] = kMaxTokens;
        // The context holds the prompt and the reply: the window shrinks to leave the reply its room.
        int64_t reply = kMaxTokens;
        for (const char* k : {"max_tokens", "max_completion_tokens"})
            if (t.body.contains(k) && t.body[k].is_number_integer()) reply = t.body[k].get<int64_t>();
        apps::PlanLimits pl;
        pl.count_tokens = limits.count_tokens;
        pl.context_budget_tokens = static_cast<size_t>(std::max<int64_t>(64, limits.n_ctx - std::min(reply, limits.n_ctx / 2) - 16));
        auto plan = std::make_shared<apps::TurnPlan>(a_.plan(request["session_id"].get<std::string>(), text, &pl));
        t.body["messages"] = plan->messages;
        t.reply = plan->fixed_reply;
        t.rewriter = [slots = plan->slots] { return std::make_unique<SlotFiller>(slots); };
        t.info = plan->info();
        t.user_text = text;
        t.state = plan;
        return t;
    }

    void finish(const Turn& t, const std::string& shown, const std::string& generated) override {
        a_.commit(*std::static_pointer_cast<const apps::TurnPlan>(t.state), shown, generated);
    }

    nlohmann::json route(const std::string& method, const std::string& path, const nlohmann::json& body) override {
        if (path == "info" && method == "GET")
            return {{"app", "shop"},
                    {"window", a_.options().window},
                    {"default_temperature", 0.7},
                    {"default_top_p", 0.9},
                    {"default_max_tokens", kMaxTokens}};
        if (path == "sessions" && method == "POST") {
            const std::string customer = string_field(body, "customer_id");
            if (customer.empty())
                fail("POST /v1/app/sessions: expected {\"customer_id\": \"U00001\"} (a string), found %.80s", body.dump().c_str());
            return a_.session_json(a_.create_session(customer));
        }
        if (path == "sessions" && method == "GET") {
            const std::string customer = string_field(body, "customer_id");
            if (customer.empty()) fail("GET /v1/app/sessions: expected ?customer_id=U00001");
            nlohmann::json data = nlohmann::json::array();
            for (const auto& s : a_.sessions(customer))
                data.push_back({{"id", s.id}, {"customer_id", s.customer_id}, {"created", s.created}, {"turns", s.turns}});
            return {{"object", "list"}, {"data", data}};
        }
        if (path.rfind("sessions/", 0) == 0 && method == "GET") return a_.session_json(path.substr(9));
        fail_kind(ErrorKind::kNotFound, "%s /v1/app/%.80s: no such endpoint of the shop assistant (it has GET /v1/app/info, "
                  "POST and GET /v1/app/sessions, GET /v1/app/sessions/ID)", method.c_str(), path.c_str());
    }

private:
    // j[key] when j is an object holding a string there, else "" (clients send anything).
    static std::string string_field(const nlohmann::json& j, const char* key) {
        if (!j.is_object()) return "";
        const auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : "";
    }

    // A message's text: a string, or OpenAI's content parts (the text parts joined).
    static std::string content_text(const nlohmann::json& c) {
        if (c.is_string()) return c.get<std::string>();
        std::string t;
        if (c.is_array())
            for (const auto& part : c)
                if (string_field(part, "type") == "text" && part["text"].is_string())
                    t += (t.empty() ? "" : "\n") + part["text"].get<std::string>();
        return t;
    }

    static constexpr int64_t kMaxTokens = 160;  // a reply's default
    apps::ShopAssistant a_;
};

}  // namespace

void add_serve(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
    static serve::ServerConfig cfg;
    static int parallel = 4, threads = 0, mmap = 1;
    static int64_t ctx = 2048, max_queue = 64, prefix_mb = 256, step_tokens = 128;
    static double drift_threshold = 0.2, kv_budget_mb = 0;
    static int drift_reference = 200, drift_window = 200;
    static bool no_batch_invariant = false;
    static std::string cache_k = "f32", cache_v = "f32";
    static std::string safety_dir, embeddings_dir, app_name, shop_db, dst_dir, retriever_dir;
    static int window = 5;
    sub->add_option("-m,--model", cfg.model_path, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
    add_attention_flags(sub, cfg.model_options.attention);
    sub->add_option("--tokenizer", cfg.model_options.tokenizer_path, "vocabulary override (llama2.c tok*.bin, GGUF)");
    sub->add_option("--chat-template", cfg.model_options.chat_template_path,
                    "Jinja chat template file, or 'chatml' for the built-in ChatML (default: the model's own; "
                    "without one, chat requests get 400)");
    sub->add_option("--alias", cfg.model_options.alias, "model id clients use (default: the file name)");
    sub->add_option("--mmproj", cfg.model_options.mmproj_path,
                    "image encoder: llama.cpp mmproj GGUF, for image_url content parts in chat requests (default: "
                    "the model folder's mmproj.gguf when it has one)");
    static std::string encode_type = "f32";
    add_image_encode_type(sub, encode_type);
    static std::vector<std::string> adapter_specs;
    sub->add_option("--adapter", adapter_specs,
                    "NAME=DIR: serve a PEFT LoRA adapter under the model id NAME (repeatable; requests pick it with "
                    "\"model\": NAME; more can be loaded at run time with POST /admin/adapters)");
    sub->add_option("--host", cfg.host, "address to bind")->capture_default_str();
    sub->add_option("--port", cfg.port, "port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
    sub->add_option("--parallel", parallel, "slots: sequences generated at once")->capture_default_str()->check(CLI::Range(1, 256));
    sub->add_option("--ctx-size", ctx, "context per slot, tokens")->capture_default_str()->check(CLI::Range(16, 1 << 20));
    sub->add_option("--api-key", cfg.api_key, "require Authorization: Bearer KEY on /v1/*");
    sub->add_option("--admin-key", cfg.admin_key, "key for /admin/* (reload, drift); without it they are off");
    sub->add_option("--metrics-key", cfg.metrics_key, "require Authorization: Bearer KEY on /metrics (default: public)");
    sub->add_option("--max-queue", max_queue, "sequences waiting for a slot before 503")->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--safety", safety_dir,
                    "content filter on prompts and streamed replies: a safety model folder (models/safety); SIGHUP "
                    "reloads its rules");
    sub->add_option("--embeddings", embeddings_dir,
                    "serve POST /v1/embeddings with a retriever folder (models/retriever: shop-retriever, "
                    "shop-retriever-query)");
    sub->add_option("--app", app_name,
                    "run a chat application between clients and the model: 'shop' (the shop assistant: sessions, "
                    "dialogue state, database lookups, memory; needs --db)")
        ->check(CLI::IsMember({"shop"}));
    sub->add_option("--db", shop_db, "--app shop: the shop database (llmforge shop init --db FILE)");
    sub->add_option("--dst", dst_dir, "--app shop: dialogue-state tracker folder (default: the shipped models/dst)");
    sub->add_option("--retriever", retriever_dir,
                    "--app shop: retriever folder for passages and memory (default: --embeddings, else the shipped "
                    "models/retriever)");
    sub->add_option("--window", window, "--app shop: earlier messages kept verbatim in the context")
        ->capture_default_str()->check(CLI::Range(0, 64));
    sub->add_option("--timeout", cfg.timeout_s, "seconds a request may run")->capture_default_str()->check(CLI::Range(1.0, 86400.0));
    sub->add_option("--shutdown-grace", cfg.shutdown_grace_s, "SIGTERM: seconds running requests get to finish")->capture_default_str();
    sub->add_option("-t,--threads", threads, "compute threads (0: all cores)");
    sub->add_option("--max-tokens-cap", cfg.max_tokens_cap, "largest max_tokens accepted")->capture_default_str()->check(CLI::Range(1, 1 << 24));
    sub->add_option("--max-body", cfg.max_body_bytes, "largest request body, bytes")->capture_default_str();
    sub->add_option("--kv-budget-mb", kv_budget_mb,
                    "KV cache running sequences may reserve (prompt + max_tokens rows); 0: slots x ctx")
        ->capture_default_str()->check(CLI::Range(0.0, 1e9));
    sub->add_option("--cache-type-k", cache_k, "KV cache type of keys: f32, f16, q8_0, q4_0 (the KV budget counts its bytes)")
        ->capture_default_str();
    sub->add_option("--cache-type-v", cache_v, "KV cache type of values: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("--prefix-cache-mb", prefix_mb, "memory for reusable prompt-prefix K/V blocks")->capture_default_str();
    sub->add_option("--step-prompt-tokens", step_tokens, "prompt tokens per engine step (chunked prefill)")->capture_default_str()->check(CLI::Range(1, 65536));
    sub->add_option("--http-threads", cfg.http_threads, "requests handled at once (each stream holds one)")->capture_default_str()->check(CLI::Range(4, 4096));
    sub->add_option("--max-connections", cfg.gate.max_connections,
                    "open connections at once; at the limit the one waiting longest for its request is dropped")
        ->capture_default_str()->check(CLI::Range(8, 1 << 20));
    sub->add_option("--header-timeout", cfg.gate.head_timeout_s, "seconds a client has to send a request's headers (then 408)")
        ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
    sub->add_option("--body-timeout", cfg.gate.body_timeout_s, "seconds a client has to send a request's body (then 408)")
        ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
    sub->add_option("--mmap", mmap, "1: weights memory-mapped; 0: loaded into huge-page memory")->capture_default_str();
    sub->add_flag("--no-batch-invariant", no_batch_invariant,
                  "allow results to depend on the batch (faster single-stream decode; greedy output may "
                  "then differ between a request run alone and in a batch)");
    sub->add_option("--drift-threshold", drift_threshold, "PSI above which a feature counts as drifted")->capture_default_str();
    sub->add_option("--drift-reference", drift_reference, "requests in the drift reference window")->capture_default_str();
    sub->add_option("--drift-window", drift_window, "requests in the current drift window")->capture_default_str();
    run = [] {
        for (const auto& spec : adapter_specs) cfg.adapters.push_back(serve::parse_adapter_option(spec));
        cfg.model_options.kv_types = {parse_kv_type(cache_k, "--cache-type-k"), parse_kv_type(cache_v, "--cache-type-v")};
        cfg.model_options.image_encode_type = image_encode_type(encode_type);
        cfg.engine.slots = parallel;
        cfg.engine.n_ctx = ctx;
        cfg.engine.threads = threads;
        cfg.model_options.threads = threads;
        cfg.engine.max_queue = static_cast<size_t>(max_queue);
        cfg.engine.prefix_cache_bytes = static_cast<size_t>(prefix_mb) << 20;
        cfg.engine.step_prompt_tokens = step_tokens;
        cfg.engine.kv_budget_bytes = static_cast<size_t>(kv_budget_mb * 1048576.0);
        cfg.engine.batch_invariant = !no_batch_invariant;
        cfg.model_options.use_mmap = mmap != 0;
        cfg.drift.psi_threshold = drift_threshold;
        cfg.drift.reference_size = static_cast<size_t>(drift_reference);
        cfg.drift.window_size = static_cast<size_t>(drift_window);
        cfg.drift.min_window = std::min<size_t>(cfg.drift.min_window, cfg.drift.window_size);
        static std::shared_ptr<SafetyContentFilter> safety;
        if (!safety_dir.empty()) cfg.content_filter = safety = std::make_shared<SafetyContentFilter>(safety_dir);
        if (!embeddings_dir.empty()) cfg.embedder = std::make_shared<RetrieverEmbedder>(embeddings_dir);
        if (!app_name.empty()) {
            if (shop_db.empty()) fail("serve --app shop: --db FILE is required (hint: llmforge shop init --db shop.db)");
            apps::AssistantOptions ao;
            ao.db_path = shop_db;
            ao.dst_dir = dst_dir.empty() ? shipped_model("dst") : dst_dir;
            ao.retriever_dir = !retriever_dir.empty() ? retriever_dir : !embeddings_dir.empty() ? embeddings_dir : shipped_model("retriever");
            ao.window = window;
            cfg.app = std::make_shared<ShopChatApp>(ao);
        } else if (!shop_db.empty() || !dst_dir.empty() || !retriever_dir.empty()) {
            fail("serve: --db, --dst and --retriever belong to --app shop (hint: add --app shop)");
        }

        // Signals land on whatever thread the kernel picks (libraries start threads before
        // main), so the handler only writes the signal number to a pipe; one thread reads it.
        static int pipe_fd[2] = {-1, -1};
        if (pipe(pipe_fd) != 0) fail("serve: cannot create the signal pipe");
        struct sigaction sa {};
        sa.sa_handler = [](int sig) {
            const unsigned char b = static_cast<unsigned char>(sig);
            [[maybe_unused]] ssize_t n = write(pipe_fd[1], &b, 1);
        };
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
        signal(SIGPIPE, SIG_IGN);
        serve::Server server(cfg);
        std::thread watcher([&server] {
            unsigned char b = 0;
            while (read(pipe_fd[0], &b, 1) == 1) {
                if (b == SIGHUP) {
                    if (safety) {
                        try {
                            safety->filter().reload_rules();
                        } catch (const std::exception& e) {
                            std::fprintf(stderr, "llmforge serve: SIGHUP: safety rules not reloaded, the previous ones stay: %s\n",
                                         e.what());
                        }
                    }
                    try {
                        server.reload("");
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "llmforge serve: SIGHUP reload failed, the previous model keeps serving: %s\n",
                                     e.what());
                    }
                } else if (b == 0) {
                    return;  // run() returned
                } else {
                    server.shutdown();
                }
            }
        });
        auto release = [&] {
            const unsigned char zero = 0;
            [[maybe_unused]] ssize_t n = write(pipe_fd[1], &zero, 1);
            watcher.join();
        };
        try {
            server.run();
        } catch (...) {
            release();
            throw;
        }
        release();
        std::fprintf(stderr, "llmforge serve: stopped\n");
        return 0;
    };
}

}  // namespace llmforge::cli
