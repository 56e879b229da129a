#include "serve/server.h"

#include <httplib.h>

#include <cctype>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "serve/openai_api.h"

namespace llmforge::serve {

using nlohmann::json;

extern const unsigned char kWebPage[];
extern const size_t kWebPageSize;

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
    static std::mutex mu;
    static std::mt19937_64 rng{std::random_device{}()};
    std::lock_guard<std::mutex> lk(mu);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(rng()));
    return buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(dump(e.body()), "application/json");
}

// Prometheus label value escaping (backslash, quote, newline).
std::string label(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '\\' || c == '"') o += '\\';
        if (c == '\n') {
            o += "\\n";
            continue;
        }
        o += c;
    }
    return o;
}


// A cumulative histogram in Prometheus' shape.
struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bound, plus +Inf
    double sum = 0;
    uint64_t n = 0;
    explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1) {}
    void add(double v) {
        size_t i = 0;
        while (i < bounds.size() && v > bounds[i]) ++i;
        counts[i]++;
        sum += v;
        n++;
    }
    void write(std::ostringstream& o, const char* name, const char* help) const {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
        uint64_t cum = 0;
        for (size_t i = 0; i < bounds.size(); ++i) {
            cum += counts[i];
            o << name << "_bucket{le=\"" << prometheus_number(bounds[i]) << "\"} " << cum << '\n';
        }
        o << name << "_bucket{le=\"+Inf\"} " << n << '\n' << name << "_sum " << prometheus_number(sum) << '\n' << name << "_count " << n << '\n';
    }
};

const std::vector<double> kLatencyBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

thread_local double t_request_start = 0;
thread_local size_t t_bytes_in = 0;

// Percent-decoding of a path, for deciding which key a request needs before it is routed.
std::string decode_path(const std::string& p) {
    std::string o;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '%' && i + 2 < p.size() && std::isxdigit(static_cast<unsigned char>(p[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(p[i + 2]))) {
            o += static_cast<char>(std::stoi(p.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            o += p[i];
        }
    }
    return o;
}

bool is_generation_path(const std::string& p) {
    return p == "/v1/chat/completions" || p == "/v1/completions" || p == "/chat/completions" || p == "/completions";
}

// The endpoint label of a path in metrics and logs (bounded set: "other" for anything else).
std::string endpoint_of(const std::string& path) {
    static const char* known[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
                                  "/metrics", "/", "/admin/reload", "/admin/drift", "/admin/adapters"};
    for (const char* k : known)
        if (path == k) return k;
    if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
    return "other";
}

// Authorization: Bearer KEY against `key` (empty: no key needed), in constant time.
bool authorized(const std::string* header, const std::string& key) {
    return key.empty() || (header && equal_secret(key, bearer_token(*header)));
}

ApiError key_error(bool header_present) {
    return ApiError(401,
                    header_present ? "Incorrect API key provided (hint: Authorization: Bearer KEY with the server's --api-key)"
                                   : "You didn't provide an API key (hint: Authorization: Bearer KEY)",
                    "authentication_error", "", "invalid_api_key");
}

// Why an admin request is refused: 403 while the admin endpoints are off, 401 for a missing or
// wrong admin key; nullopt lets it through. Shared by the gate's head check and the handlers.
std::optional<ApiError> admin_refusal(const std::string& admin_key, const std::string* auth) {
    if (admin_key.empty())
        return ApiError(403, "admin endpoints are off (hint: start the server with --admin-key KEY)", "permission_error");
    if (!authorized(auth, admin_key))
        return ApiError(401, "admin key missing or wrong (hint: Authorization: Bearer ADMIN_KEY)", "authentication_error",
                        "", "invalid_api_key");
    return std::nullopt;
}

// The 503 a generation request gets once shutdown() has begun (sent with Retry-After: 5).
ApiError shutting_down_error() {
    return ApiError(503, "the server is shutting down", "server_error", "", "shutting_down");
}

EarlyResponse early(const ApiError& e, std::vector<std::pair<std::string, std::string>> headers = {}) {
    return EarlyResponse{e.status, dump(e.body()), std::move(headers), false};
}

}  // namespace

// cpp-httplib's request handling (routing, handlers, response writing) over the requests
// HttpGate has read. cpp-httplib ends a streamed response early once its own listening socket
// is gone; this server never gives it one (HttpGate owns the sockets), so it is marked as
// listening for good and the gate decides when the server stops.
class Server::Router final : public httplib::Server {
public:
    Router() { svr_sock_ = INT_MAX; }
    // Answers the request `s` holds; true when the connection may carry another.
    bool handle(httplib::Stream& s, bool close) {
        bool closed = false;
        const bool ok = process_request(s, close, closed, nullptr);
        return ok && !closed && !close;
    }
};

struct Server::Metrics {
    std::mutex mu;
    std::map<std::pair<std::string, int>, uint64_t> requests;  // (endpoint, status)
    Histogram duration{kLatencyBuckets}, ttft{kLatencyBuckets};
    uint64_t reloads_ok = 0, reloads_failed = 0, rejected_queue_full = 0;
    std::map<std::string, uint64_t> by_model;  // requests queued, by the "model" they named
    uint64_t adapter_loads = 0, adapter_loads_failed = 0, adapter_unloads = 0, adapters_dropped = 0;
};

Server::Server(ServerConfig cfg) : cfg_(std::move(cfg)), metrics_(std::make_unique<Metrics>()) {}

Server::~Server() {
    if (engine_) engine_->shutdown();
}

AdapterOption parse_adapter_option(const std::string& spec) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
        fail("--adapter '%s': expected NAME=DIR (the name requests put in \"model\", and a PEFT LoRA folder)",
             spec.c_str());
    }
    return AdapterOption{spec.substr(0, eq), spec.substr(eq + 1), 1.0};
}

bool Server::load_adapter(const std::string& name, const std::string& dir, double scale) {
    if (!engine_) fail("adapter load: the server has no model yet");
    std::lock_guard<std::mutex> lk(adapters_mu_);
    const Serving sv = engine_->serving();
    std::shared_ptr<const ServedAdapter> a;
    try {
        a = load_served_adapter(name, dir, scale, *sv.model);
    } catch (const Error&) {
        std::lock_guard<std::mutex> g(metrics_->mu);
        metrics_->adapter_loads_failed++;
        throw;
    }
    const bool replaced = sv.adapters->count(name) != 0;
    // The model changes only under adapters_mu_ (reload), so it is still the one checked against.
    if (!engine_->put_adapter(a)) fail_kind(ErrorKind::kInternal, "adapter '%s': the model changed while loading", name.c_str());
    {
        std::lock_guard<std::mutex> g(metrics_->mu);
        metrics_->adapter_loads++;
    }
    std::fprintf(stderr, "llmforge serve: %s adapter '%s' from %s (LoRA r %lld, alpha %g, scale %g) on model '%s'\n",
                 replaced ? "replaced" : "loaded", name.c_str(), dir.c_str(), (long long)a->cfg.r, a->cfg.alpha, scale,
                 sv.model->id.c_str());
    return replaced;
}

bool Server::unload_adapter(const std::string& name) {
    if (!engine_) return false;
    std::lock_guard<std::mutex> lk(adapters_mu_);
    if (!engine_->remove_adapter(name)) return false;
    {
        std::lock_guard<std::mutex> g(metrics_->mu);
        metrics_->adapter_unloads++;
    }
    std::fprintf(stderr, "llmforge serve: unloaded adapter '%s' (its running requests finish with it)\n", name.c_str());
    return true;
}

std::vector<std::string> Server::reload(const std::string& path_in) {
    // One reload at a time; a second one is refused rather than queued behind a slow load.
    std::unique_lock<std::mutex> lk(reload_mu_, std::try_to_lock);
    if (!lk.owns_lock()) fail("reload: another reload is in progress (hint: retry when it has finished)");
    if (!engine_) fail("reload: the server has no model yet");
    auto old = engine_->model();
    const std::string path = path_in.empty() ? old->path : path_in;
    ModelOptions opt = cfg_.model_options;
    opt.alias = old->id;  // clients keep using the same name across reloads
    if (path != cfg_.model_path) {  // the overrides belonged to the first model
        opt.tokenizer_path.clear();
        opt.mmproj_path.clear();
    }
    std::shared_ptr<const ServedModel> m;
    try {
        m = load_served_model(path, opt);
    } catch (const Error&) {
        std::lock_guard<std::mutex> g(metrics_->mu);
        metrics_->reloads_failed++;
        throw;
    }
    // Every adapter is read again against the new model (Q/K rows and shapes follow the base);
    // one that no longer fits is dropped rather than failing the reload.
    std::vector<std::string> dropped;
    std::lock_guard<std::mutex> al(adapters_mu_);
    AdapterMap kept;
    for (const auto& [name, a] : *engine_->serving().adapters) {
        try {
            kept[name] = load_served_adapter(name, a->path, a->scale, *m);
        } catch (const Error& e) {
            dropped.push_back(name);
            std::fprintf(stderr, "llmforge serve: adapter '%s' dropped: it does not fit the reloaded model: %s\n",
                         name.c_str(), e.what());
        }
    }
    engine_->swap_model(m, std::move(kept));
    {
        std::lock_guard<std::mutex> g(id_mu_);
        model_id_ = m->id;
    }
    drift_->reset();
    std::lock_guard<std::mutex> g(metrics_->mu);
    metrics_->reloads_ok++;
    metrics_->adapters_dropped += dropped.size();
    std::fprintf(stderr, "llmforge serve: reloaded model '%s' from %s%s%s\n", m->id.c_str(), path.c_str(),
                 m->image_encoder ? ", image encoder " : "", m->image_encoder ? m->image_encoder->path().c_str() : "");
    return dropped;
}

void Server::shutdown() {
    if (draining_.exchange(true)) return;
    std::fprintf(stderr, "llmforge serve: shutting down (waiting up to %.0f s for running requests)\n",
                 cfg_.shutdown_grace_s);
    const double deadline = now_s() + cfg_.shutdown_grace_s;
    while (engine_ && !engine_->idle() && now_s() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // What is still running ends with "shutdown": each handler answers 503 or ends its stream
    // with an error event and [DONE]; the gate returns from run() once every one has.
    if (engine_) engine_->shutdown();
    if (gate_) gate_->stop();
}

void Server::start(std::shared_ptr<const ServedModel> model, AdapterMap adapters) {
    drift_ = std::make_unique<DriftMonitor>(cfg_.drift);
    {
        std::lock_guard<std::mutex> g(id_mu_);
        model_id_ = model->id;
    }
    engine_ = std::make_unique<Engine>(model, cfg_.engine, drift_.get());
    if (!adapters.empty()) engine_->swap_model(model, std::move(adapters));
    router_ = std::make_unique<Router>();
    routes();
    GateConfig g = cfg_.gate;
    g.request.max_body = cfg_.max_body_bytes;
    g.workers = cfg_.http_threads;
    gate_ = std::make_unique<HttpGate>(
        g, [this](const RequestHead& h) { return check_head(h); },
        [this](httplib::Stream& s, const std::string&, bool close) { return router_->handle(s, close); },
        [this](const RequestHead* h, int status, const std::string& remote) {
            log_request(h ? h->method : "-", h ? decode_path(h->path()) : "-", remote, status, 0, 0);
        });
    ready_ = true;
}

std::string Server::process(const std::string& bytes) { return gate_->process(bytes); }

void Server::run() {
    auto model = load_served_model(cfg_.model_path, cfg_.model_options);
    AdapterMap adapters;
    for (const AdapterOption& o : cfg_.adapters) {
        if (adapters.count(o.name)) fail("--adapter %s=%s: the name '%s' is given twice", o.name.c_str(), o.path.c_str(), o.name.c_str());
        adapters[o.name] = load_served_adapter(o.name, o.path, o.scale, *model);
    }
    start(model, adapters);
    const int port = gate_->bind(cfg_.host, cfg_.port);
    if (draining_) return;  // a signal came while loading
    std::fprintf(stderr, "llmforge serve: model '%s' (%s), %d slots x %lld tokens, %d threads\n", model->id.c_str(),
                 model->path.c_str(), cfg_.engine.slots, (long long)cfg_.engine.n_ctx, cfg_.engine.threads);
    if (model->chat_template) {
        std::fprintf(stderr, "llmforge serve: chat template: %s\n", model->chat_template_name.c_str());
    } else {
        std::fprintf(stderr, "llmforge serve: the model has no chat template: chat requests get 400 (hint: "
                     "--chat-template FILE.jinja, or --chat-template chatml)\n");
    }
    if (model->image_encoder) {
        std::fprintf(stderr, "llmforge serve: image encoder: %s (%lld positions per image; chat messages may carry "
                     "image_url content parts)\n", model->image_encoder->path().c_str(),
                     (long long)model->image_encoder->n_tokens());
    }
    for (const auto& [name, a] : adapters) {
        std::fprintf(stderr, "llmforge serve: adapter '%s' from %s (LoRA r %lld, alpha %g, scale %g)\n", name.c_str(),
                     a->path.c_str(), (long long)a->cfg.r, a->cfg.alpha, a->scale);
    }
    std::fprintf(stderr, "llmforge serve: listening on http://%s:%d\n", cfg_.host.c_str(), port);
    std::fflush(stderr);
    gate_->run();
    engine_->shutdown();
}

EarlyResponse Server::health() const {
    EarlyResponse r;
    if (draining_) {
        r.status = 503;
        r.body = R"({"status":"shutting down"})";
    } else if (!ready_) {
        r.status = 503;
        r.body = R"({"status":"loading"})";
    } else {
        std::lock_guard<std::mutex> g(id_mu_);
        r.body = dump({{"status", "ok"}, {"model", model_id_}});
    }
    return r;
}

// Decides what can be decided from the head alone, before any body byte is kept: keys, the
// shutdown, compressed bodies, and /health (answered here, so that a server whose workers are
// all busy streaming still answers its probes).
std::optional<EarlyResponse> Server::check_head(const RequestHead& h) {
    if (h.method == "OPTIONS") return std::nullopt;
    const std::string path = decode_path(h.path());
    if (const std::string* enc = h.find("Content-Encoding"); enc && !enc->empty() && *enc != "identity") {
        return early(ApiError(415, "Content-Encoding '" + printable(*enc, 40) +
                                       "' is not accepted (hint: send the JSON body uncompressed)",
                              "invalid_request_error", "", "unsupported_content_encoding"));
    }
    const std::string* auth = h.find("Authorization");
    if (path == "/health" && (h.method == "GET" || h.method == "HEAD") && !h.has_body()) {
        EarlyResponse r = health();
        r.keep_alive = true;
        return r;
    }
    if (path == "/" || path == "/health") return std::nullopt;
    if (path == "/metrics") {
        if (authorized(auth, cfg_.metrics_key)) return std::nullopt;
        return early(ApiError(401, "/metrics needs the metrics key (hint: Authorization: Bearer KEY with the server's --metrics-key)",
                              "authentication_error", "", "invalid_api_key"));
    }
    if (path.rfind("/admin", 0) == 0) {
        if (auto refusal = admin_refusal(cfg_.admin_key, auth)) return early(*refusal);
        return std::nullopt;
    }
    if (!authorized(auth, cfg_.api_key)) return early(key_error(auth != nullptr));
    if (draining_ && is_generation_path(path)) return early(shutting_down_error(), {{"Retry-After", "5"}});
    return std::nullopt;
}

void Server::log_request(const std::string& method, const std::string& path, const std::string& remote, int status,
                         size_t bytes_in, double dt) {
    const std::string endpoint = endpoint_of(path);
    {
        std::lock_guard<std::mutex> lk(metrics_->mu);
        metrics_->requests[{endpoint, status}]++;
        metrics_->duration.add(dt);
    }
    if (endpoint == "/metrics" || endpoint == "/health") return;  // scrapes and probes: no log line
    char ts[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    const json line = {{"ts", ts},     {"remote", remote},   {"method", method},
                       {"path", path}, {"status", status},   {"ms", std::round(dt * 1e4) / 10},
                       {"bytes_in", bytes_in}};
    std::fprintf(stderr, "%s\n", dump(line).c_str());
}

std::string Server::metrics() {
    const EngineStats es = engine_->stats();
    std::ostringstream o;
    std::lock_guard<std::mutex> lk(metrics_->mu);
    Metrics& m = *metrics_;
    for (double t : es.ttft_seconds) m.ttft.add(t);
    o << "# HELP llmforge_requests_total HTTP requests by endpoint and status code.\n"
         "# TYPE llmforge_requests_total counter\n";
    for (const auto& [k, v] : m.requests)
        o << "llmforge_requests_total{endpoint=\"" << label(k.first) << "\",status=\"" << k.second << "\"} " << v << '\n';
    auto counter = [&](const char* name, const char* help, double v) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n" << name << ' ' << prometheus_number(v) << '\n';
    };
    auto gauge = [&](const char* name, const char* help, double v) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n" << name << ' ' << prometheus_number(v) << '\n';
    };
    counter("llmforge_prompt_tokens_total", "Prompt tokens run through the model (cache hits excluded).",
            static_cast<double>(es.prompt_tokens));
    counter("llmforge_generated_tokens_total", "Tokens generated.", static_cast<double>(es.generated_tokens));
    counter("llmforge_prefix_cache_lookup_tokens_total", "Prompt tokens looked up in the prefix cache.",
            static_cast<double>(es.prefix_lookup_tokens));
    counter("llmforge_prefix_cache_hit_tokens_total", "Prompt tokens whose K/V came from the prefix cache.",
            static_cast<double>(es.prefix_hit_tokens));
    gauge("llmforge_prefix_cache_hit_ratio", "Share of prompt tokens served from the prefix cache since start.",
          es.prefix_lookup_tokens ? static_cast<double>(es.prefix_hit_tokens) / es.prefix_lookup_tokens : 0.0);
    gauge("llmforge_prefix_cache_bytes", "Bytes held by the prefix cache's K/V blocks.",
          static_cast<double>(es.prefix_cache_bytes));
    gauge("llmforge_kv_cache_bytes", "Bytes of the slots' KV caches (allocated; rows become resident when used).",
          static_cast<double>(es.kv_cache_bytes));
    gauge("llmforge_kv_reserved_bytes", "KV-cache bytes reserved by running sequences (prompt + max_tokens rows).",
          static_cast<double>(es.kv_reserved_bytes));
    gauge("llmforge_slots_total", "Sequences the engine runs at once.", es.slots);
    gauge("llmforge_slots_busy", "Slots running a sequence.", es.slots_busy);
    gauge("llmforge_queue_depth", "Sequences waiting for a slot.", static_cast<double>(es.queue_depth));
    counter("llmforge_engine_steps_total", "Batched forward steps.", static_cast<double>(es.steps));
    counter("llmforge_engine_busy_seconds_total", "Time the engine spent in forward steps.", es.busy_seconds);
    counter("llmforge_sequences_total", "Sequences finished (choices).", static_cast<double>(es.sequences_done));
    counter("llmforge_sequences_failed_total", "Sequences ended by an error (the others in their step went on).",
            static_cast<double>(es.sequences_failed));
    counter("llmforge_rejected_queue_full_total", "Requests refused with 503 because the queue was full.",
            static_cast<double>(m.rejected_queue_full));
    o << "# HELP llmforge_model_requests_total Generation requests queued, by the model they named (base or adapter).\n"
         "# TYPE llmforge_model_requests_total counter\n";
    for (const auto& [k, v] : m.by_model) o << "llmforge_model_requests_total{model=\"" << label(k) << "\"} " << v << '\n';
    {
        const Serving sv = engine_->serving();
        gauge("llmforge_adapters_loaded", "LoRA adapters requests may name.", static_cast<double>(sv.adapters->size()));
    }
    o << "# HELP llmforge_adapter_operations_total Adapter loads, unloads and drops (a reload's model no longer fits).\n"
         "# TYPE llmforge_adapter_operations_total counter\n"
      << "llmforge_adapter_operations_total{op=\"load\"} " << m.adapter_loads << '\n'
      << "llmforge_adapter_operations_total{op=\"load_failed\"} " << m.adapter_loads_failed << '\n'
      << "llmforge_adapter_operations_total{op=\"unload\"} " << m.adapter_unloads << '\n'
      << "llmforge_adapter_operations_total{op=\"dropped\"} " << m.adapters_dropped << '\n';
    o << "# HELP llmforge_model_reloads_total Model reloads by result.\n# TYPE llmforge_model_reloads_total counter\n"
      << "llmforge_model_reloads_total{result=\"ok\"} " << m.reloads_ok << '\n'
      << "llmforge_model_reloads_total{result=\"failed\"} " << m.reloads_failed << '\n';
    if (gate_) {
        const HttpGate::Stats gs = gate_->stats();
        gauge("llmforge_http_connections_open", "Open client connections.", static_cast<double>(gs.open));
        gauge("llmforge_http_requests_waiting", "Complete requests waiting for a worker.", static_cast<double>(gs.waiting));
        counter("llmforge_http_connections_accepted_total", "Connections accepted.", static_cast<double>(gs.accepted));
        counter("llmforge_http_requests_timed_out_total", "Requests whose head or body did not arrive in time (408).",
                static_cast<double>(gs.timed_out));
        counter("llmforge_http_connections_dropped_total",
                "Connections closed at the connection limit (waiting longest for their request) or refused.",
                static_cast<double>(gs.evicted + gs.refused));
    }
    m.ttft.write(o, "llmforge_time_to_first_token_seconds", "From request queued to its first token.");
    m.duration.write(o, "llmforge_request_duration_seconds", "HTTP request duration.");
    o << drift_->prometheus();
    return o.str();
}

namespace {

// Marks the request's start for the logger and lets any origin read the answer (the chat page
// may be opened from elsewhere); routing then goes on.
httplib::Server::HandlerResponse start_request(const httplib::Request&, httplib::Response& res) {
    t_request_start = now_s();
    t_bytes_in = 0;
    res.set_header("Access-Control-Allow-Origin", "*");
    return httplib::Server::HandlerResponse::Unhandled;
}

// Gives the errors httplib raises itself (404 no route, 400 bad request) OpenAI's JSON shape too.
void answer_httplib_error(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
        send_error(res, ApiError(404, "no route for " + printable(req.method, 16) + " " + printable(req.path) +
                                          " (endpoints: /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)",
                                 "invalid_request_error", "", "not_found"));
    } else {
        send_error(res, ApiError(res.status, "HTTP error " + std::to_string(res.status)));
    }
}

// Answers a CORS preflight (OPTIONS, any path), so that browsers may POST with a key from any page.
void answer_preflight(const httplib::Request&, httplib::Response& res) {
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.status = 204;
}

// The request's Authorization header copied into `store`, or nullptr without one: the shape
// authorized() and admin_refusal() take, as the gate hands them the head's.
const std::string* auth_header(const httplib::Request& req, std::string& store) {
    if (!req.has_header("Authorization")) return nullptr;
    store = req.get_header_value("Authorization");
    return &store;
}

// Checks the Bearer `key` in the handler (the gate checked the head already, but no route should
// depend on the gate's reading of the path); false after sending 401.
bool need_key(const httplib::Request& req, httplib::Response& res, const std::string& key) {
    std::string store;
    const std::string* auth = auth_header(req, store);
    if (authorized(auth, key)) return true;
    send_error(res, key_error(auth != nullptr));
    return false;
}

// need_key for the admin endpoints: false after sending 403 (admin off) or 401 (key wrong).
bool need_admin(const httplib::Request& req, httplib::Response& res, const std::string& admin_key) {
    std::string store;
    const std::optional<ApiError> refusal = admin_refusal(admin_key, auth_header(req, store));
    if (refusal) send_error(res, *refusal);
    return !refusal;
}

// Reads a POST body whole, taken as JSON whatever the Content-Type says (curl -d sends
// application/x-www-form-urlencoded, which cpp-httplib would otherwise parse as a form and cap at
// 8 KB), as OpenAI-compatible servers do; false after sending 415 (multipart) or 413 (too large).
bool read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
               size_t max_body, std::string& body) {
    if (req.is_multipart_form_data()) {
        send_error(res, ApiError(415, "a multipart/form-data body is not accepted (hint: send JSON, Content-Type: application/json)",
                                 "invalid_request_error", "", "unsupported_media_type"));
        return false;
    }
    const bool ok = reader([&](const char* d, size_t n) {
        if (body.size() + n > max_body) return false;
        body.append(d, n);
        return true;
    });
    t_bytes_in = body.size();
    if (!ok) {
        send_error(res, ApiError(413, "the request body is over the server's --max-body", "invalid_request_error", "",
                                 "request_too_large"));
        return false;
    }
    return true;
}

// A model as /v1/models lists it.
json model_json(const ServedModel& m) {
    return json{{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", "llmforge"}};
}

// An adapter as /v1/models lists it: vLLM's LoRA entry shape ("root": its folder, "parent": the
// base model's id).
json adapter_json(const ServedAdapter& a, const std::string& base_id) {
    return json{{"id", a.name},         {"object", "model"}, {"created", 0},       {"owned_by", "llmforge"},
                {"root", a.path},       {"parent", base_id}, {"adapter_type", "lora"},
                {"lora_rank", a.cfg.r}, {"lora_alpha", a.cfg.alpha}, {"scale", a.scale}};
}

// Parses and checks a generation body against the served model; nullptr after sending the error
// (an ApiError as it is, another Error by its kind).
std::shared_ptr<ParsedRequest> parse_or_refuse(const std::string& body, bool chat, const Serving& sv,
                                               const ApiLimits& lim, httplib::Response& res) {
    auto pr = std::make_shared<ParsedRequest>();
    try {
        *pr = parse_request(body, chat, sv.model, lim, sv.adapters.get());
    } catch (const ApiError& e) {
        send_error(res, e);
        return nullptr;
    } catch (const Error& e) {
        send_error(res, api_error(e));
        return nullptr;
    }
    return pr;
}

// A queued generation request: what answering it, whole or streamed, needs.
struct Generation {
    std::shared_ptr<const ParsedRequest> pr;
    std::shared_ptr<RequestStream> stream;
    std::shared_ptr<const ServedModel> model;
    size_t n_seqs = 0;
    std::string id;
    int64_t created = 0;
    double deadline = 0;  // past it the request is cancelled (its choices end with "length")
    std::shared_ptr<const ContentFilter> filter;  // null: none (ServerConfig::content_filter)
    json app_info;  // ChatApp::Turn::info, sent as "app" (null: no app)
    // Called once with choice 0's reply as the client got it and as the model wrote it, when the
    // request completed.
    std::function<void(const std::string& shown, const std::string& generated)> on_reply;
    std::function<std::unique_ptr<ReplyRewriter>()> rewriter;  // ChatApp::Turn::rewriter
};

// A choice the shutdown cut short: said as an error, never as a normal finish.
ApiError cut_error(int64_t tokens) {
    return ApiError(503, "the server shut down before the request finished (" + std::to_string(tokens) +
                             " tokens were generated; hint: retry on a running server)",
                    "server_error", "", "shutting_down");
}

// Waits up to 100 ms for the request's next event; cancels the request once past its deadline,
// so that a slow one still ends.
bool next_event(const Generation& g, Event& e) {
    if (g.stream->pop(e, 100)) return true;
    if (now_s() > g.deadline) g.stream->cancel();
    return false;
}

// The events of a non-streamed request, gathered until every choice has ended.
struct Gathered {
    std::vector<ChoiceResult> choices;
    std::string error;  // the first failed choice's message; empty: none failed
    ErrorKind error_kind = ErrorKind::kInternal;
    bool cut = false;  // a choice was ended by the shutdown
    int64_t generated = 0;
};

// Collects every choice's text, tokens and finish, for the one JSON body of a non-streamed answer.
Gathered gather(const Generation& g) {
    Gathered r;
    r.choices.resize(g.n_seqs);
    size_t done = 0;
    Event e;
    while (done < g.n_seqs) {
        if (!next_event(g, e)) continue;
        ChoiceResult& c = r.choices[e.index];
        if (e.kind == Event::kToken) {
            c.text += e.text;
            if (e.token.id >= 0) c.tokens.push_back(std::move(e));
        } else if (e.kind == Event::kDone) {
            c.finish_reason = e.finish_reason;
            c.completion_tokens = e.completion_tokens;
            c.cached_tokens = e.cached_tokens;
            r.cut |= e.finish_reason == "shutdown";
            r.generated += e.completion_tokens;
            ++done;
        } else {
            if (r.error.empty()) {  // the first failed choice speaks for the request
                r.error = e.text;
                r.error_kind = e.error_kind;
            }
            ++done;
        }
    }
    return r;
}

// Answers a non-streamed request once all its choices are done: the response JSON, or the error
// of a failed choice, or 503 when the shutdown cut it.
void answer_whole(const Generation& g, httplib::Response& res) {
    const Gathered r = gather(g);
    if (!r.error.empty()) {
        send_error(res, api_error(Error(r.error_kind, r.error), "generation failed: "));
        return;
    }
    if (r.cut) {
        res.set_header("Retry-After", "5");
        send_error(res, cut_error(r.generated));
        return;
    }
    std::vector<ChoiceResult> choices = r.choices;
    const std::string generated0 = choices.empty() ? "" : choices[0].text;
    if (g.rewriter)
        for (ChoiceResult& c : choices) {
            auto rw = g.rewriter();
            c.text = rw->push(c.text);
            c.text += rw->finish();
        }
    if (g.filter)  // a reply that turned unsafe is replaced whole
        for (ChoiceResult& c : choices)
            if (g.filter->check(c.text)) c.text = g.filter->refusal, c.finish_reason = "content_filter", c.tokens.clear();
    json body = response_json(*g.pr, g.id, g.created, choices, *g.model->tokenizer);
    if (!g.app_info.is_null()) body["app"] = g.app_info;
    res.set_content(dump(body), "application/json");
    if (g.on_reply && !choices.empty()) g.on_reply(choices[0].text, generated0);
}

// A request answered without generating: `text` as every choice's reply with `finish_reason` —
// the content filter's refusal of a blocked user text ("content_filter"), or a chat app's own
// answer ("stop") — streamed as the role, content and finish chunks of each choice, usage when
// asked for, [DONE].
void answer_fixed(const Generation& g, const std::string& text, const std::string& finish_reason, httplib::Response& res) {
    const ParsedRequest& pr = *g.pr;
    const Tokenizer& tok = *g.model->tokenizer;
    if (g.on_reply) g.on_reply(text, text);
    if (!pr.stream) {
        ChoiceResult c;
        c.text = text;
        c.finish_reason = finish_reason;
        json body = response_json(pr, g.id, g.created, std::vector<ChoiceResult>(g.n_seqs, c), tok);
        if (!g.app_info.is_null()) body["app"] = g.app_info;
        res.set_content(dump(body), "application/json");
        return;
    }
    std::string body;
    auto add = [&body](const json& j) { body += "data: " + dump(j) + "\n\n"; };
    for (size_t i = 0; i < g.n_seqs; ++i) {
        Event e;
        e.index = static_cast<int>(i);
        if (pr.chat) {
            json role = chunk_json(pr, g.id, g.created, &e, tok, true);
            if (i == 0 && !g.app_info.is_null()) role["app"] = g.app_info;
            add(role);
        }
        add(content_chunk_json(pr, g.id, g.created, e.index, text));
        e.kind = Event::kDone;
        e.finish_reason = finish_reason;
        add(chunk_json(pr, g.id, g.created, &e, tok, false));
    }
    if (pr.include_usage) {
        json u = chunk_json(pr, g.id, g.created, nullptr, tok, false);
        u["usage"] = usage_json(pr.prompt_tokens, 0, 0);
        add(u);
    }
    body += "data: [DONE]\n\n";
    res.set_header("Cache-Control", "no-cache");
    res.set_content(body, "text/event-stream");
}

// Relays a streamed request's events to its client as Server-Sent Events: one chunk per token
// event, a final chunk per choice, usage, [DONE]. httplib calls pump() until it returns false or
// the stream is done, and release() when the response ends either way.
class SseRelay {
public:
    explicit SseRelay(Generation g)
        : g_(std::move(g)), opened_(g_.n_seqs, false), filtered_(g_.n_seqs, false), text_(g_.n_seqs), last_write_(now_s()) {}

    // Relays the next event (or keeps an idle connection alive); false ends the response.
    bool pump(httplib::DataSink& sink) {
        Event e;
        if (!next_event(g_, e)) return keep_alive(sink);
        const bool ok = relay(e, sink);
        if (ok && done_ == g_.n_seqs) return finish(sink);
        if (!ok) g_.stream->cancel();  // the client is gone: free its slots
        return ok;
    }

    // Frees the slots of a stream that did not finish (client gone, server stopping).
    void release() {
        if (!finished_) g_.stream->cancel();
    }

private:
    // Writes one "data:" event; false when the client is gone.
    bool send(httplib::DataSink& sink, const json& j) {
        const std::string line = "data: " + dump(j) + "\n\n";
        last_write_ = now_s();
        return sink.write(line.data(), line.size());
    }

    // A comment now and then: keeps proxies from timing out and lets a write to a closed
    // connection show the client is gone.
    bool keep_alive(httplib::DataSink& sink) {
        if (now_s() - last_write_ > 1.0) {
            last_write_ = now_s();
            if (!sink.write(": keep-alive\n\n", 14)) {
                g_.stream->cancel();
                return false;
            }
        }
        return true;
    }

    // Sends what one event says: a generation error, the shutdown's one error event, or the
    // choice's role chunk (chat, first event), token chunk or finish chunk.
    bool relay(const Event& e, httplib::DataSink& sink) {
        const ParsedRequest& pr = *g_.pr;
        const Tokenizer& tok = *g_.model->tokenizer;
        bool ok = true;
        if (e.kind == Event::kError) {
            ok = send(sink, api_error(Error(e.error_kind, e.text), "generation failed: ").body());
            done_++;
        } else if (e.kind == Event::kDone && e.finish_reason == "shutdown") {
            // One error event for the request, then [DONE] once every choice has ended.
            if (!cut_) ok = send(sink, cut_error(completion_ + e.completion_tokens).body());
            cut_ = true;
            completion_ += e.completion_tokens;
            done_++;
        } else if (filtered_[e.index]) {
            // The filter ended this choice: its later tokens are dropped, its end only counted.
            if (e.kind != Event::kToken) done_++, completion_ += e.completion_tokens;
        } else {
            if (pr.chat && !opened_[e.index]) {
                opened_[e.index] = true;
                json role = chunk_json(pr, g_.id, g_.created, &e, tok, true);
                if (e.index == 0 && !g_.app_info.is_null()) role["app"] = g_.app_info;
                ok = send(sink, role);
            }
            if (pr.tools_active) {
                // Tool calls: the text goes through the choice's streamer, which releases content
                // that cannot start a call at once and each call whole (never its markup).
                ToolCallStreamer& ts = streamer(e.index);
                const ToolCallStreamer::Delta d = e.kind == Event::kToken ? ts.push(e.text) : ts.finish();
                if (ok) ok = send_delta(sink, e.index, d, ts);
                if (e.kind != Event::kToken) {
                    done_++;
                    completion_ += e.completion_tokens;
                    if (e.index % pr.n == 0) cached_ += e.cached_tokens;
                    Event fin = e;
                    if (ts.calls_released() > 0) fin.finish_reason = "tool_calls";
                    if (ok) ok = send(sink, chunk_json(pr, g_.id, g_.created, &fin, tok, false));
                }
            } else if (e.kind == Event::kToken) {
                if (e.index == 0) generated0_ += e.text;
                Event out = e;
                if (g_.rewriter) out.text = rewriter(e.index).push(e.text);
                if (ok && g_.filter && !out.text.empty() && blocked(e.index, out.text)) return ok && cut(sink, e.index);
                if (ok && (!out.text.empty() || (pr.logprobs && e.token.id >= 0)))
                    ok = send(sink, chunk_json(pr, g_.id, g_.created, &out, tok, false));
                if (e.index == 0) reply0_ += out.text;
            } else {
                if (g_.rewriter) {  // what the rewriter held back goes out before the end
                    const std::string rest = rewriter(e.index).finish();
                    if (!rest.empty()) {
                        if (ok && g_.filter && blocked(e.index, rest)) return ok && cut(sink, e.index) && count_end(e);
                        if (ok) ok = send(sink, content_chunk_json(pr, g_.id, g_.created, e.index, rest));
                        if (e.index == 0) reply0_ += rest;
                    }
                }
                count_end(e);
                if (ok) ok = send(sink, chunk_json(pr, g_.id, g_.created, &e, tok, false));
            }
        }
        return ok;
    }

    // Counts a choice's end; true.
    bool count_end(const Event& e) {
        done_++;
        completion_ += e.completion_tokens;
        if (e.index % g_.pr->n == 0) cached_ += e.cached_tokens;
        return true;
    }

    ReplyRewriter& rewriter(int index) {
        if (rewriters_.empty()) rewriters_.resize(g_.n_seqs);
        auto& rw = rewriters_[static_cast<size_t>(index)];
        if (!rw) rw = g_.rewriter();
        return *rw;
    }

    // Whether choice `index`'s text with `more` appended must not pass. The filter reads the
    // last kFilterWindow bytes (a violation is local; each check stays cheap on long replies).
    bool blocked(int index, const std::string& more) {
        static constexpr size_t kFilterWindow = 600;
        std::string& t = text_[static_cast<size_t>(index)];
        t += more;
        return g_.filter->check(t.size() > kFilterWindow ? t.substr(t.size() - kFilterWindow) : t).has_value();
    }

    // Ends choice `index` where its text turned unsafe: the replacement, the finish chunk
    // ("content_filter"); its sequence stops (the request's, once no other choice runs).
    bool cut(httplib::DataSink& sink, int index) {
        filtered_[static_cast<size_t>(index)] = true;
        if (index == 0) reply0_ += g_.filter->replacement;
        bool ok = send(sink, content_chunk_json(*g_.pr, g_.id, g_.created, index, g_.filter->replacement));
        Event fin;
        fin.kind = Event::kDone;
        fin.index = index;
        fin.finish_reason = "content_filter";
        if (ok) ok = send(sink, chunk_json(*g_.pr, g_.id, g_.created, &fin, *g_.model->tokenizer, false));
        if (std::count(filtered_.begin(), filtered_.end(), true) + static_cast<std::ptrdiff_t>(done_) >=
            static_cast<std::ptrdiff_t>(g_.n_seqs))
            g_.stream->cancel();  // every choice has ended or been cut: stop generating
        return ok;
    }

    ToolCallStreamer& streamer(int index) {
        if (streamers_.empty()) {
            for (size_t i = 0; i < g_.n_seqs; ++i) streamers_.emplace_back(g_.pr->tool_syntax, g_.pr->tools);
        }
        return streamers_[static_cast<size_t>(index)];
    }

    // The chunks of what a tool-call streamer released: content, then each call (its head, then
    // its arguments), numbered per choice.
    bool send_delta(httplib::DataSink& sink, int index, const ToolCallStreamer::Delta& d, const ToolCallStreamer& ts) {
        bool ok = true;
        if (!d.content.empty()) ok = send(sink, content_chunk_json(*g_.pr, g_.id, g_.created, index, d.content));
        const size_t first = ts.calls_released() - d.calls.size();
        for (size_t k = 0; ok && k < d.calls.size(); ++k) {
            for (const json& c : tool_call_chunks_json(*g_.pr, g_.id, g_.created, index, static_cast<int>(first + k), d.calls[k]))
                if (ok) ok = send(sink, c);
        }
        return ok;
    }

    // Ends the stream once every choice has ended: the usage chunk (asked for, not cut), [DONE].
    bool finish(httplib::DataSink& sink) {
        bool ok = true;
        if (g_.pr->include_usage && !cut_) {
            json u = chunk_json(*g_.pr, g_.id, g_.created, nullptr, *g_.model->tokenizer, false);
            u["usage"] = usage_json(g_.pr->prompt_tokens, completion_, cached_);
            ok = send(sink, u);
        }
        // The app keeps the reply before the client sees the end: a client that reads the session
        // right after [DONE] finds it.
        if (ok && !cut_ && g_.on_reply) g_.on_reply(reply0_, generated0_);
        const char* end = "data: [DONE]\n\n";
        if (ok) ok = sink.write(end, std::strlen(end));
        if (ok) sink.done();
        finished_ = true;
        return ok;
    }

    Generation g_;
    std::vector<ToolCallStreamer> streamers_;  // tools: one per choice, made on first use
    size_t done_ = 0;  // choices ended
    std::vector<bool> opened_;  // chat: the choice's role chunk was sent
    std::vector<bool> filtered_;        // the content filter cut the choice
    std::vector<std::string> text_;     // each choice's text so far (content filter)
    int64_t completion_ = 0, cached_ = 0;
    std::string reply0_, generated0_;  // choice 0's text as sent and as generated (on_reply)
    std::vector<std::unique_ptr<ReplyRewriter>> rewriters_;  // one per choice, made on first use
    bool finished_ = false, cut_ = false;
    double last_write_ = 0;
};

// Answers a streamed request: the SSE headers, then an SseRelay as httplib's content provider.
void answer_stream(Generation g, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto relay = std::make_shared<SseRelay>(std::move(g));
    res.set_chunked_content_provider(
        "text/event-stream", [relay](size_t, httplib::DataSink& sink) { return relay->pump(sink); },
        [relay](bool) { relay->release(); });
}

// Parses a request body (nesting checked first); false after sending 400 for one that is not JSON.
bool parse_body(const std::string& text, json& body, httplib::Response& res) {
    try {
        check_json_depth(text);
        body = json::parse(text);
        return true;
    } catch (const ApiError& e) {
        send_error(res, e);
    } catch (const json::exception& e) {
        send_error(res, ApiError(400, std::string("the request body is not valid JSON: ") + e.what()));
    }
    return false;
}

// The model path a reload body names ("" for an empty body or no "model": the current file);
// false after sending 400 for a body that is not JSON {"model": STRING}.
bool reload_path(const std::string& body_text, std::string& path, httplib::Response& res) {
    if (body_text.empty()) return true;
    json body;
    if (!parse_body(body_text, body, res)) return false;
    if (!body.is_object() || (body.contains("model") && !body["model"].is_string())) {
        send_error(res, ApiError(400, "expected {\"model\": PATH} (PATH a string; omit it to reload the current file)",
                                 "invalid_request_error", "model"));
        return false;
    }
    path = body.value("model", "");
    return true;
}

// The answer to a failed reload: 409 while another reload runs, else the loader's error by its kind.
ApiError reload_error(const Error& e) {
    const bool busy = std::string(e.what()).find("another reload is in progress") != std::string::npos;
    const char* prefix = "reload failed, the previous model keeps serving: ";
    if (busy) return ApiError(409, prefix + std::string(e.what()), "invalid_request_error", "model", "reload_in_progress");
    return api_error(e, prefix, "model", e.kind() == ErrorKind::kNotFound ? "model_not_found" : "model_load_failed");
}

}  // namespace

// Registers httplib's hooks and every route, each bound to its handler below.
void Server::routes() {
    httplib::Server& s = *router_;
    using GetHandler = void (Server::*)(const httplib::Request&, httplib::Response&);
    using PostHandler = void (Server::*)(const httplib::Request&, const std::string&, httplib::Response&);
    auto get = [this](GetHandler f) {
        return [this, f](const httplib::Request& req, httplib::Response& res) { (this->*f)(req, res); };
    };
    auto post = [this](PostHandler f) {  // the handler gets the body read whole (read_body)
        return [this, f](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
            std::string body;
            if (read_body(req, res, reader, cfg_.max_body_bytes, body)) (this->*f)(req, body, res);
        };
    };
    s.set_pre_routing_handler(start_request);
    s.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_routed(req, res); });
    s.set_error_handler(httplib::Server::Handler(answer_httplib_error));
    s.Options(".*", answer_preflight);
    s.Get("/", get(&Server::handle_page));
    s.Get("/health", get(&Server::handle_health));
    s.Get("/metrics", get(&Server::handle_metrics));
    s.Get("/v1/models", get(&Server::handle_models));
    s.Get(R"(/v1/models/(.+))", get(&Server::handle_model));
    s.Post("/v1/chat/completions", post(&Server::handle_chat_completions));
    s.Post("/v1/completions", post(&Server::handle_completions));
    s.Post("/chat/completions", post(&Server::handle_chat_completions));  // clients configured without the /v1 prefix
    s.Post("/completions", post(&Server::handle_completions));
    s.Post("/admin/reload", post(&Server::handle_reload));
    s.Get("/admin/drift", get(&Server::handle_drift));
    s.Post("/admin/adapters", post(&Server::handle_adapters));
    s.Post("/v1/embeddings", post(&Server::handle_embeddings));
    s.Post("/embeddings", post(&Server::handle_embeddings));
    s.Get(R"(/v1/app/(.+))", [this](const httplib::Request& req, httplib::Response& res) { handle_app(req, "", res); });
    s.Post(R"(/v1/app/(.+))", post(&Server::handle_app));
}

// GET or POST /v1/app/...: the chat app's own endpoints (404 without an app).
void Server::handle_app(const httplib::Request& req, const std::string& text, httplib::Response& res) {
    if (!need_key(req, res, cfg_.api_key)) return;
    if (!cfg_.app) {
        send_error(res, ApiError(404, "this server runs no chat app (hint: llmforge serve --app shop --db FILE)",
                                 "invalid_request_error", "", "not_found"));
        return;
    }
    json body = json::object();
    if (!text.empty() && !parse_body(text, body, res)) return;
    if (!body.is_object()) {
        send_error(res, ApiError(400, "the request body must be a JSON object, found " + std::string(body.type_name())));
        return;
    }
    std::string path = req.matches[1];
    json answer;
    try {
        // The query string's parameters join the body's ("?customer_id=U00001").
        for (const auto& [k, v] : req.params) body[k] = v;
        answer = cfg_.app->route(req.method, path, body);
    } catch (const Error& e) {
        send_error(res, api_error(e, ""));
        return;
    } catch (const std::exception& e) {  // as in generate(): one line, 400
        send_error(res, ApiError(400, std::string("the chat app could not read this request: ") + e.what()));
        return;
    }
    res.set_content(dump(answer), "application/json");
}

// Logs a routed request and counts it in the metrics (the gate logs the ones it answers itself).
void Server::log_routed(const httplib::Request& req, const httplib::Response& res) {
    log_request(req.method, req.path, req.remote_addr, res.status, std::max(t_bytes_in, req.body.size()),
                now_s() - t_request_start);
}

// GET /: the built-in chat page.
void Server::handle_page(const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kWebPage), kWebPageSize, "text/html; charset=utf-8");
}

// GET /health with a body (the gate answers the others from the head): as health() says.
void Server::handle_health(const httplib::Request&, httplib::Response& res) {
    const EarlyResponse h = health();
    res.status = h.status;
    res.set_content(h.body, "application/json");
}

// GET /metrics: the Prometheus text, behind the metrics key when there is one.
void Server::handle_metrics(const httplib::Request& req, httplib::Response& res) {
    if (!need_key(req, res, cfg_.metrics_key)) return;
    res.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
}

// GET /v1/models: the list of the one served model.
void Server::handle_models(const httplib::Request& req, httplib::Response& res) {
    if (!need_key(req, res, cfg_.api_key)) return;
    const Serving sv = engine_->serving();
    json data = json::array({model_json(*sv.model)});
    for (const auto& [name, a] : *sv.adapters) data.push_back(adapter_json(*a, sv.model->id));
    res.set_content(dump({{"object", "list"}, {"data", data}}), "application/json");
}

// GET /v1/models/ID: the served model, or 404 for any other id.
void Server::handle_model(const httplib::Request& req, httplib::Response& res) {
    if (!need_key(req, res, cfg_.api_key)) return;
    const Serving sv = engine_->serving();
    const std::string id = req.matches[1];
    if (id == sv.model->id) {
        res.set_content(dump(model_json(*sv.model)), "application/json");
    } else if (auto it = sv.adapters->find(id); it != sv.adapters->end()) {
        res.set_content(dump(adapter_json(*it->second, sv.model->id)), "application/json");
    } else {
        send_error(res, unknown_model_error(printable(id), sv.model->id, sv.adapters.get()));
    }
}

// POST /v1/chat/completions (and /chat/completions): a generation from chat messages.
void Server::handle_chat_completions(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    generate(true, req, body, res);
}

// POST /v1/completions (and /completions): a generation from a plain prompt.
void Server::handle_completions(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    generate(false, req, body, res);
}

// The steps both generation endpoints share: key, shutdown, parse, queue, then the answer, whole
// or streamed.
void Server::generate(bool chat, const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (!need_key(req, res, cfg_.api_key)) return;
    if (draining_) {
        res.set_header("Retry-After", "5");
        send_error(res, shutting_down_error());
        return;
    }
    const Serving sv = engine_->serving();
    const auto& model = sv.model;
    // A chat app rewrites the request (or answers it) first.
    std::shared_ptr<ChatApp::Turn> turn;
    std::string app_body;
    if (chat && cfg_.app) {
        json request;
        if (!parse_body(body, request, res)) return;
        try {
            const ChatApp::Limits limits{[m = model](const std::string& text) {
                                             return m->tokenizer->encode(text, false, false).size();
                                         },
                                         cfg_.engine.n_ctx};
            turn = std::make_shared<ChatApp::Turn>(cfg_.app->begin(request, limits));
        } catch (const Error& e) {
            send_error(res, api_error(e, ""));
            return;
        } catch (const std::exception& e) {  // an app that did not check a field's type: still one line, 400
            send_error(res, ApiError(400, std::string("the chat app could not read this request: ") + e.what()));
            return;
        }
        app_body = turn->body.dump();
    }
    auto pr = parse_or_refuse(turn ? app_body : body, chat, sv, ApiLimits{cfg_.max_tokens_cap, cfg_.max_n, cfg_.engine.n_ctx}, res);
    if (!pr) return;
    json app_info = turn ? turn->info : json();
    std::function<void(const std::string&, const std::string&)> on_reply;
    if (turn) {
        on_reply = [app = cfg_.app, turn](const std::string& shown, const std::string& generated) {
            try {
                app->finish(*turn, shown, generated);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "llmforge serve: the app could not keep a reply: %s\n", e.what());
            }
        };
    }
    const std::string& user_text = turn ? turn->user_text : pr->user_text;
    const bool blocked = cfg_.content_filter && cfg_.content_filter->check(user_text);
    if (blocked || (turn && turn->reply)) {
        {
            std::lock_guard<std::mutex> lk(metrics_->mu);
            metrics_->by_model[pr->model_id]++;
        }
        const Generation g{pr,      nullptr,  model, pr->seqs.size(), random_id(chat ? "chatcmpl-" : "cmpl-"),
                           static_cast<int64_t>(std::time(nullptr)), 0, cfg_.content_filter, app_info, on_reply, nullptr};
        if (blocked) answer_fixed(g, cfg_.content_filter->refusal, "content_filter", res);
        else answer_fixed(g, *turn->reply, "stop", res);
        return;
    }
    auto stream = std::make_shared<RequestStream>();
    const size_t n_seqs = pr->seqs.size();
    for (auto& sq : pr->seqs) sq.stream = stream;
    if (!enqueue(std::move(pr->seqs), res)) return;
    {
        std::lock_guard<std::mutex> lk(metrics_->mu);
        metrics_->by_model[pr->model_id]++;
    }
    Generation g{pr,
                 stream,
                 model,
                 n_seqs,
                 random_id(chat ? "chatcmpl-" : "cmpl-"),
                 static_cast<int64_t>(std::time(nullptr)),
                 now_s() + cfg_.timeout_s,
                 cfg_.content_filter,
                 app_info,
                 on_reply,
                 turn ? turn->rewriter : nullptr};
    if (pr->stream) {
        answer_stream(std::move(g), res);
    } else {
        answer_whole(g, res);
    }
}

// Hands a request's sequences to the engine; false after refusing it: 400 when it needs more KV
// cache than the budget, 503 (counted in the metrics) when the queue is full.
bool Server::enqueue(std::vector<SeqRequest> seqs, httplib::Response& res) {
    const Engine::Submit sub = engine_->submit(std::move(seqs));
    if (sub == Engine::Submit::kOverBudget) {
        send_error(res, ApiError(400, "the request needs more KV cache than this server's budget (--kv-budget-mb) allows; "
                                      "hint: lower max_tokens or shorten the prompt",
                                 "invalid_request_error", "max_tokens", "kv_budget_exceeded"));
        return false;
    }
    if (sub == Engine::Submit::kQueueFull) {
        {
            std::lock_guard<std::mutex> lk(metrics_->mu);
            metrics_->rejected_queue_full++;
        }
        res.set_header("Retry-After", "1");
        send_error(res, ApiError(503, "the server is busy: the request queue is full (hint: retry after a second)",
                                 "server_error", "", "server_overloaded"));
        return false;
    }
    return true;
}

// POST /admin/reload {"model": PATH}: swaps in a model file (PATH omitted: the current one) and
// says which model serves now; when the load fails the old one keeps serving.
void Server::handle_reload(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (!need_admin(req, res, cfg_.admin_key)) return;
    std::string path;
    if (!reload_path(body, path, res)) return;
    std::vector<std::string> dropped;
    try {
        dropped = reload(path);
    } catch (const Error& e) {
        send_error(res, reload_error(e));
        return;
    }
    const Serving sv = engine_->serving();
    json kept = json::array();
    for (const auto& [name, a] : *sv.adapters) kept.push_back(name);
    res.set_content(dump({{"status", "ok"}, {"model", sv.model->id}, {"path", sv.model->path}, {"adapters", kept},
                          {"adapters_dropped", dropped}}),
                    "application/json");
}

// POST /admin/adapters: {"action": "load", "name": NAME, "path": DIR[, "scale": S]} reads and checks
// the adapter on this worker thread (the engine keeps generating meanwhile), then requests may name
// it; {"action": "unload", "name": NAME} makes the name unknown (404) to new requests while its
// running ones finish.
void Server::handle_adapters(const httplib::Request& req, const std::string& text, httplib::Response& res) {
    if (!need_admin(req, res, cfg_.admin_key)) return;
    json body;
    if (!parse_body(text, body, res)) return;
    const char* shape =
        "expected {\"action\": \"load\", \"name\": NAME, \"path\": DIR[, \"scale\": NUMBER]} or "
        "{\"action\": \"unload\", \"name\": NAME}";
    auto str = [&](const char* k) -> const std::string* {
        return body.is_object() && body.contains(k) && body[k].is_string() ? &body[k].get_ref<const std::string&>() : nullptr;
    };
    const std::string* action = str("action");
    const std::string* name = str("name");
    if (!action || !name || (*action != "load" && *action != "unload")) {
        send_error(res, ApiError(400, shape, "invalid_request_error", !action ? "action" : "name"));
        return;
    }
    if (*action == "unload") {
        if (!unload_adapter(*name)) {
            send_error(res, ApiError(404, "no adapter named '" + printable(*name) + "' is loaded", "invalid_request_error",
                                     "name", "adapter_not_found"));
            return;
        }
        res.set_content(dump({{"status", "ok"}, {"action", "unload"}, {"name", *name}}), "application/json");
        return;
    }
    const std::string* path = str("path");
    double scale = 1;
    if (body.contains("scale")) {
        if (!body["scale"].is_number()) {
            send_error(res, ApiError(400, shape, "invalid_request_error", "scale"));
            return;
        }
        scale = body["scale"].get<double>();
    }
    if (!path) {
        send_error(res, ApiError(400, shape, "invalid_request_error", "path"));
        return;
    }
    bool replaced = false;
    try {
        replaced = load_adapter(*name, *path, scale);
    } catch (const Error& e) {
        send_error(res, api_error(e, "adapter load failed: ", "path",
                                  e.kind() == ErrorKind::kNotFound ? "adapter_not_found" : "adapter_load_failed"));
        return;
    }
    res.set_content(dump({{"status", "ok"}, {"action", "load"}, {"name", *name}, {"path", *path}, {"replaced", replaced},
                          {"parent", engine_->model()->id}}),
                    "application/json");
}

namespace {

// Standard base64 of bytes (the embeddings' encoding_format "base64": little-endian float32s).
// Written here: 15 lines, and no Debian library the server links has a public encoder.
std::string base64(const void* data, size_t n) {
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* p = static_cast<const unsigned char*>(data);
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out += k[(v >> 18) & 63];
        out += k[(v >> 12) & 63];
        out += i + 1 < n ? k[(v >> 6) & 63] : '=';
        out += i + 2 < n ? k[v & 63] : '=';
    }
    return out;
}

}  // namespace

// POST /v1/embeddings: OpenAI's embeddings API over the configured Embedder: "input" a string or
// an array of strings (token arrays are refused: there is no tokenizer of the client's to undo),
// "model" one of the embedder's ids (omitted: its first), "encoding_format" "float" (default) or
// "base64", "dimensions" (if given) the embedder's size.
void Server::handle_embeddings(const httplib::Request& req, const std::string& text, httplib::Response& res) {
    if (!need_key(req, res, cfg_.api_key)) return;
    if (!cfg_.embedder) {
        send_error(res, ApiError(404, "this server has no embedding model (hint: start it with --embeddings models/retriever)",
                                 "invalid_request_error", "model", "model_not_found"));
        return;
    }
    const Embedder& em = *cfg_.embedder;
    json body;
    if (!parse_body(text, body, res)) return;
    if (!body.is_object()) {
        send_error(res, ApiError(400, "expected a JSON object {\"input\": …, \"model\": …}", "invalid_request_error", "input"));
        return;
    }
    std::vector<std::string> inputs;
    const json* in = body.contains("input") ? &body["input"] : nullptr;
    const char* token_hint =
        "'input' must be text: this server does not take token ids (hint: LangChain's OpenAIEmbeddings needs "
        "check_embedding_ctx_length=False)";
    if (in && in->is_string()) {
        inputs.push_back(in->get<std::string>());
    } else if (in && in->is_array() && !in->empty() && in->size() <= 2048) {
        for (const auto& v : *in) {
            if (!v.is_string()) {
                send_error(res, ApiError(400, v.is_number() || v.is_array() ? token_hint : "'input' must be a string or an array of strings",
                                         "invalid_request_error", "input"));
                return;
            }
            inputs.push_back(v.get<std::string>());
        }
    } else {
        send_error(res, ApiError(400, "'input' must be a string or an array of 1 to 2048 strings", "invalid_request_error", "input"));
        return;
    }
    const std::vector<std::string> ids = em.models();
    std::string model = ids.empty() ? "" : ids.front();
    if (body.contains("model") && !body["model"].is_null()) {
        if (!body["model"].is_string()) {
            send_error(res, ApiError(400, "'model' must be a string", "invalid_request_error", "model"));
            return;
        }
        model = body["model"].get<std::string>();
        if (std::find(ids.begin(), ids.end(), model) == ids.end()) {
            std::string known;
            for (const auto& m : ids) known += (known.empty() ? "" : ", ") + m;
            send_error(res, ApiError(404, "the embedding model '" + printable(model) + "' does not exist (this server has " +
                                              known + ")",
                                     "invalid_request_error", "model", "model_not_found"));
            return;
        }
    }
    const std::string format = body.contains("encoding_format") && body["encoding_format"].is_string()
                                   ? body["encoding_format"].get<std::string>()
                                   : "float";
    if (format != "float" && format != "base64") {
        send_error(res, ApiError(400, "'encoding_format' is '" + printable(format) + "', expected float or base64",
                                 "invalid_request_error", "encoding_format"));
        return;
    }
    if (body.contains("dimensions") && !(body["dimensions"].is_number_integer() && body["dimensions"].get<int64_t>() == em.dims())) {
        send_error(res, ApiError(400, "'dimensions' must be " + std::to_string(em.dims()) + " for this model",
                                 "invalid_request_error", "dimensions"));
        return;
    }
    json data = json::array();
    int64_t words = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const std::vector<float> e = em.embed(model, inputs[i]);
        json item = {{"object", "embedding"}, {"index", i}};
        if (format == "base64") {
            item["embedding"] = base64(e.data(), e.size() * sizeof(float));  // x86-64: little-endian
        } else {
            item["embedding"] = e;
        }
        data.push_back(std::move(item));
        bool in_word = false;
        for (unsigned char c : inputs[i]) {
            const bool w = std::isalnum(c) != 0;
            words += w && !in_word;
            in_word = w;
        }
    }
    res.set_content(dump({{"object", "list"}, {"data", data}, {"model", model},
                          {"usage", {{"prompt_tokens", words}, {"total_tokens", words}}}}),
                    "application/json");
}

// GET /admin/drift: the drift monitor's report.
void Server::handle_drift(const httplib::Request& req, httplib::Response& res) {
    if (!need_admin(req, res, cfg_.admin_key)) return;
    res.set_content(drift_->json(), "application/json");
}

}  // namespace llmforge::serve
