// The server's connection layer: one event-loop thread (epoll) accepts connections and reads
// every request whole — head and body — under total deadlines and size limits, and only then
// hands it to a bounded pool of worker threads that route and answer it (cpp-httplib's request
// handling, through Handler). A connection that is idle, or still sending its head or body,
// holds no thread: a few hundred slow clients (slowloris) cannot starve /health or new
// requests, and a body over the limit is refused as soon as its size is known.
//
//   accept ──▶ [loop thread] read head ──head_check──▶ read body ──▶ queue ──▶ [worker] handle
//                 ▲      (early answer: 401, 413, 503, /health …, then close)            │
//                 └──────────────── keep-alive: the connection comes back ◀──────────────┘
//
// Limits (see docs): head_timeout_s from a request's first byte to the end of its head,
// body_timeout_s for the body after that, idle_timeout_s between keep-alive requests,
// max_connections open at once (at the limit the connection that has waited longest for its
// request is dropped first), buffered_bytes_cap for all bodies being received together.
//
// Thread safety: run() blocks in one thread; stop() may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "serve/http_request.h"

namespace httplib {
class Stream;
}

namespace llmforge::serve {

struct GateConfig {
    RequestLimits request;
    double head_timeout_s = 10;
    double body_timeout_s = 30;
    double idle_timeout_s = 5;
    double write_timeout_s = 30;
    size_t max_connections = 1024;       // lowered to what RLIMIT_NOFILE allows
    int workers = 64;                    // requests handled at once (a stream holds one)
    size_t max_waiting = 256;            // complete requests waiting for a worker; more: 503
    size_t buffered_bytes_cap = 256u << 20;  // bodies being received, all connections together
};

// An answer the loop thread sends itself, without a worker.
struct EarlyResponse {
    int status = 200;
    std::string body;  // JSON
    std::vector<std::pair<std::string, std::string>> headers;
    bool keep_alive = false;  // the connection may stay open (only when no body is pending)
};

class HttpGate {
public:
    // Looks at a head before its body is read; an EarlyResponse answers the request at once.
    using HeadCheck = std::function<std::optional<EarlyResponse>(const RequestHead&)>;
    // Answers a complete request (raw: re-framed bytes, see RequestParser::request_bytes) on
    // `stream`. Returns true when the connection may carry another request.
    using Handler = std::function<bool(httplib::Stream& stream, const std::string& raw, bool close)>;
    // Called (loop thread) for every request answered without a worker: the head when one was
    // read, the status, and the message.
    using EarlyLog = std::function<void(const RequestHead*, int status, const std::string& remote)>;

    HttpGate(GateConfig cfg, HeadCheck check, Handler handler, EarlyLog log);
    ~HttpGate();
    HttpGate(const HttpGate&) = delete;
    HttpGate& operator=(const HttpGate&) = delete;

    // Binds host:port (0: any free port) and returns the port. Throws Error.
    int bind(const std::string& host, int port);
    // Serves until stop(): returns after the listening socket is closed and every request
    // being handled has been answered.
    void run();
    // Stops accepting and closes idle connections; requests being handled finish first.
    void stop();

    struct Stats {
        size_t open = 0, working = 0, waiting = 0;
        uint64_t accepted = 0, timed_out = 0, evicted = 0, refused = 0;
    };
    Stats stats() const;

    // Answers one request given as raw bytes (as a client would send them on a connection,
    // possibly several pipelined, possibly malformed) the way run() would, without sockets:
    // the response bytes. For the fuzz target and tests.
    std::string process(const std::string& bytes);

    // The status line's reason phrase.
    static const char* reason(int status);
    // An early response's bytes (status line, JSON headers, body).
    static std::string early_bytes(const EarlyResponse& r, bool close, bool head_only = false);

private:
    struct Conn;
    void loop();
    void worker();
    void on_readable(Conn& c, double now);
    bool advance(Conn& c, double now);  // parses buffered bytes; false: the connection was closed
    void answer_early(Conn& c, const EarlyResponse& r, const RequestHead* head, double now);
    void close_conn(Conn& c);
    void accept_all(double now);
    bool evict_one();  // false: every open connection is being handled
    void wake();

    GateConfig cfg_;
    HeadCheck check_;
    Handler handler_;
    EarlyLog log_;
    int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1, spare_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::vector<std::thread> workers_;

    // Shared with workers.
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Conn*> jobs_;      // complete requests for workers
    std::deque<Conn*> returned_;  // handled: back to the loop (keep-alive or close)
    bool workers_stop_ = false;

    // Loop thread only.
    std::vector<std::unique_ptr<Conn>> conns_;
    size_t buffered_ = 0;
    mutable std::mutex stats_mu_;
    Stats stats_;
};

}  // namespace llmforge::serve
