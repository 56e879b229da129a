#include "serve/http_gate.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "serve/openai_api.h"

namespace llmforge::serve {

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Tags for the epoll entries that are not connections.
char kListenTag, kWakeTag;

void addr_string(const sockaddr_storage& ss, std::string& ip, int& port) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    }
    ip = buf;
}

// Writes what the socket takes now, without waiting; true when all of it went.
bool send_now(int fd, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t k = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            done += static_cast<size_t>(k);
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

std::string error_json(int status, const std::string& message, const char* code) {
    return dump(ApiError(status, message, status >= 500 ? "server_error" : "invalid_request_error", "", code).body());
}

}  // namespace

struct HttpGate::Conn {
    enum Phase { kIdle, kReading, kWorking, kLinger };
    int fd = -1;  // -1: closed, removed at the end of the loop iteration
    std::string remote_ip, local_ip;
    int remote_port = 0, local_port = 0;
    RequestParser parser;
    Phase phase = kIdle;
    double since = 0;     // when the current phase began
    double deadline = 0;  // kIdle / kReading / kLinger: closed (408 while reading) after this
    size_t counted = 0;   // parser bytes counted in buffered_
    size_t lingered = 0;  // kLinger: bytes discarded
    std::string raw;      // kWorking: the request
    bool close_after = false;
    bool keep = false;    // set by the worker
    explicit Conn(const RequestLimits& l) : parser(l) {}
};

// The worker's view of a connection: reads come from the request already received, writes go
// to the socket, each waiting at most write_timeout for the client to take the bytes.
class ConnStream final : public httplib::Stream {
public:
    ConnStream(int fd, const std::string& raw, const std::string& rip, int rport, const std::string& lip, int lport,
               double write_timeout)
        : fd_(fd), raw_(raw), rip_(rip), lip_(lip), rport_(rport), lport_(lport), wt_ms_(static_cast<int>(write_timeout * 1000)) {}
    bool is_readable() const override { return pos_ < raw_.size(); }
    bool is_writable() const override {
        if (fd_ < 0) return true;
        pollfd p{fd_, POLLOUT, 0};
        return ::poll(&p, 1, wt_ms_) == 1 && !(p.revents & (POLLERR | POLLHUP | POLLNVAL));
    }
    ssize_t read(char* ptr, size_t size) override {
        const size_t n = std::min(size, raw_.size() - pos_);
        std::memcpy(ptr, raw_.data() + pos_, n);
        pos_ += n;
        return static_cast<ssize_t>(n);
    }
    ssize_t write(const char* ptr, size_t size) override {
        if (fd_ < 0) {  // in memory (HttpGate::process)
            out_.append(ptr, size);
            return static_cast<ssize_t>(size);
        }
        size_t done = 0;
        const double deadline = now_s() + wt_ms_ / 1000.0;
        while (done < size) {
            const ssize_t k = ::send(fd_, ptr + done, size - done, MSG_NOSIGNAL);
            if (k > 0) {
                done += static_cast<size_t>(k);
                continue;
            }
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                const int left = static_cast<int>((deadline - now_s()) * 1000);
                pollfd p{fd_, POLLOUT, 0};
                if (left > 0 && ::poll(&p, 1, left) == 1 && !(p.revents & (POLLERR | POLLNVAL))) continue;
            }
            failed_ = true;
            return -1;
        }
        return static_cast<ssize_t>(size);
    }
    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        ip = rip_;
        port = rport_;
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        ip = lip_;
        port = lport_;
    }
    socket_t socket() const override { return fd_; }
    bool failed() const { return failed_; }
    std::string& out() { return out_; }

private:
    int fd_;
    const std::string& raw_;
    const std::string &rip_, &lip_;
    int rport_, lport_, wt_ms_;
    size_t pos_ = 0;
    bool failed_ = false;
    std::string out_;
};

HttpGate::HttpGate(GateConfig cfg, HeadCheck check, Handler handler, EarlyLog log)
    : cfg_(std::move(cfg)), check_(std::move(check)), handler_(std::move(handler)), log_(std::move(log)) {}

HttpGate::~HttpGate() {
    for (auto& c : conns_)
        if (c->fd >= 0) ::close(c->fd);
    for (int fd : {listen_fd_, epoll_fd_, wake_fd_, spare_fd_})
        if (fd >= 0) ::close(fd);
}

const char* HttpGate::reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

std::string HttpGate::early_bytes(const EarlyResponse& r, bool close, bool head_only) {
    std::string o = "HTTP/1.1 " + std::to_string(r.status) + ' ' + reason(r.status) + "\r\n";
    o += "Content-Type: application/json\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
    o += "Access-Control-Allow-Origin: *\r\n";
    for (const auto& [k, v] : r.headers) o += k + ": " + v + "\r\n";
    o += close ? "Connection: close\r\n\r\n" : "\r\n";
    return head_only ? o : o + r.body;  // HEAD: the headers a GET would get, no body
}

int HttpGate::bind(const std::string& host, int port) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const std::string service = std::to_string(port);
    if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || !res)
        fail("serve: cannot resolve host '%s' (hint: --host takes an address such as 127.0.0.1 or 0.0.0.0)", host.c_str());
    int fd = -1;
    int err = 0;
    for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
            err = errno;
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(res);
    if (fd < 0) {
        fail("serve: cannot bind %s:%d (%s; in use, or not an address of this machine?); hint: --port 0 picks a free one",
             host.c_str(), port, std::strerror(err));
    }
    listen_fd_ = fd;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    std::string ip;
    int bound = port;
    addr_string(ss, ip, bound);

    // Every open connection is a file descriptor: take what the hard limit allows and keep
    // max_connections under it, with room for model files and the like.
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 1u << 16);
            ::setrlimit(RLIMIT_NOFILE, &rl);
            ::getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
            cfg_.max_connections = std::min<size_t>(cfg_.max_connections, rl.rlim_cur - 96);
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) fail("serve: cannot create the event loop (%s)", std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &kListenTag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.ptr = &kWakeTag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    return bound;
}

void HttpGate::wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void HttpGate::stop() {
    stopping_ = true;
    if (wake_fd_ >= 0) wake();
}

HttpGate::Stats HttpGate::stats() const {
    std::lock_guard<std::mutex> lk(stats_mu_);
    return stats_;
}

void HttpGate::close_conn(Conn& c) {
    if (c.fd < 0) return;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
    buffered_ -= c.counted;
    c.counted = 0;
}

void HttpGate::answer_early(Conn& c, const EarlyResponse& r, const RequestHead* head, double now) {
    const bool keep = r.keep_alive && head && head->keep_alive && !head->has_body() && !stopping_;
    const bool sent = send_now(c.fd, early_bytes(r, !keep, head && head->method == "HEAD"));
    if (log_) log_(head, r.status, c.remote_ip);
    if (keep && sent) {
        c.parser.reset_for_next();
        c.phase = Conn::kIdle;
        c.since = now;
        c.deadline = now + cfg_.idle_timeout_s;
        return;
    }
    // Closing with unread input would reset the connection and could destroy the answer before
    // the client reads it: stop writing, then read and drop what still comes for a moment.
    ::shutdown(c.fd, SHUT_WR);
    buffered_ -= c.counted;
    c.counted = 0;
    c.parser = RequestParser(cfg_.request);
    c.phase = Conn::kLinger;
    c.since = now;
    c.deadline = now + 2.0;
    c.lingered = 0;
}

bool HttpGate::advance(Conn& c, double now) {
    while (true) {
        const RequestParser::Result r = c.parser.step();
        const size_t held = c.parser.buffered();
        buffered_ += held - c.counted;
        c.counted = held;
        switch (r) {
        case RequestParser::Result::kNeedMore:
            if (c.parser.reading_body() && buffered_ > cfg_.buffered_bytes_cap) {
                EarlyResponse busy{503, error_json(503, "the server is busy receiving other request bodies (hint: retry in a second)",
                                                   "server_overloaded"), {{"Retry-After", "1"}}};
                answer_early(c, busy, &c.parser.head(), now);
                return false;
            }
            return true;
        case RequestParser::Result::kHeadReady: {
            const RequestHead& h = c.parser.head();
            std::optional<EarlyResponse> early;
            if (stopping_) {
                early = EarlyResponse{503, error_json(503, "the server is shutting down", "shutting_down"), {{"Retry-After", "5"}}};
            } else {
                early = check_(h);
            }
            if (early) {
                answer_early(c, *early, &h, now);
                if (c.phase == Conn::kLinger) return false;
                continue;  // kept alive: a pipelined request may follow
            }
            if (h.has_body()) {
                c.since = now;
                c.deadline = now + cfg_.body_timeout_s;
                if (h.expect_continue && c.parser.buffered() == 0) send_now(c.fd, "HTTP/1.1 100 Continue\r\n\r\n");
            }
            continue;
        }
        case RequestParser::Result::kComplete: {
            c.raw = c.parser.request_bytes();
            c.close_after = !c.parser.head().keep_alive;
            {
                std::unique_lock<std::mutex> lk(mu_);
                if (jobs_.size() >= cfg_.max_waiting) {
                    lk.unlock();
                    c.raw.clear();
                    EarlyResponse busy{503, error_json(503, "the server is busy: too many requests are waiting (hint: retry in a second)",
                                                       "server_overloaded"), {{"Retry-After", "1"}}};
                    answer_early(c, busy, &c.parser.head(), now);
                    return false;
                }
                c.parser.reset_for_next();
                c.phase = Conn::kWorking;
                c.since = now;
                ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
                jobs_.push_back(&c);
            }
            cv_.notify_one();
            const size_t left = c.parser.buffered();
            buffered_ += left - c.counted;
            c.counted = left;
            return false;
        }
        case RequestParser::Result::kError: {
            const int st = c.parser.error_status();
            const char* code = st == 413 ? "request_too_large" : st == 431 ? "headers_too_large" : "bad_request";
            std::string msg = c.parser.error_message();
            if (st == 431) msg += " (hint: send fewer or shorter headers)";
            EarlyResponse e{st, error_json(st, msg, code), {}};
            const RequestHead* h = c.parser.head().method.empty() ? nullptr : &c.parser.head();
            RequestHead copy = h ? *h : RequestHead{};
            answer_early(c, e, h ? &copy : nullptr, now);
            return false;
        }
        }
    }
}

void HttpGate::on_readable(Conn& c, double now) {
    char buf[16384];
    if (c.phase == Conn::kLinger) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) c.lingered += static_cast<size_t>(n);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || c.lingered > (4u << 20)) close_conn(c);
        return;
    }
    for (int i = 0; i < 4; ++i) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (c.phase == Conn::kIdle) {
                c.phase = Conn::kReading;
                c.since = now;
                c.deadline = now + cfg_.head_timeout_s;
            }
            c.parser.append(buf, static_cast<size_t>(n));
            if (!advance(c, now)) return;  // handed to a worker, or answered and closing
            if (static_cast<size_t>(n) < sizeof buf) return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        close_conn(c);  // the client closed (or reset) the connection
        return;
    }
}

bool HttpGate::evict_one() {
    // The connection that has waited longest for its request: slow or idle clients go first,
    // never one whose request is being handled.
    Conn* victim = nullptr;
    auto rank = [](const Conn& c) { return c.phase == Conn::kLinger ? 0 : c.phase == Conn::kIdle ? 1 : 2; };
    for (auto& c : conns_) {
        if (c->fd < 0 || c->phase == Conn::kWorking) continue;
        if (!victim || rank(*c) < rank(*victim) || (rank(*c) == rank(*victim) && c->since < victim->since)) victim = c.get();
    }
    if (!victim) return false;
    close_conn(*victim);
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.evicted++;
    return true;
}

void HttpGate::accept_all(double now) {
    for (int i = 0; i < 64; ++i) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
                // Out of descriptors: use the spare one to take the connection off the queue
                // and close it, rather than leave it to spin the loop.
                ::close(spare_fd_);
                const int f = ::accept(listen_fd_, nullptr, nullptr);
                if (f >= 0) ::close(f);
                spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                std::lock_guard<std::mutex> lk(stats_mu_);
                stats_.refused++;
                continue;
            }
            return;  // EAGAIN: nothing more to accept
        }
        size_t open = 0;
        for (auto& c : conns_) open += c->fd >= 0;
        if (open >= cfg_.max_connections && !evict_one()) {
            send_now(fd, early_bytes({503, error_json(503, "too many open connections (hint: retry in a second)", "server_overloaded"),
                                      {{"Retry-After", "1"}}},
                                     true));
            ::close(fd);
            std::lock_guard<std::mutex> lk(stats_mu_);
            stats_.refused++;
            continue;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Conn>(cfg_.request);
        c->fd = fd;
        addr_string(ss, c->remote_ip, c->remote_port);
        sockaddr_storage ls{};
        socklen_t llen = sizeof ls;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ls), &llen) == 0) addr_string(ls, c->local_ip, c->local_port);
        c->phase = Conn::kIdle;
        c->since = now;
        c->deadline = now + cfg_.head_timeout_s;  // a new connection sends its first request promptly
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c.get();
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        conns_.push_back(std::move(c));
        std::lock_guard<std::mutex> lk(stats_mu_);
        stats_.accepted++;
    }
}

void HttpGate::worker() {
    while (true) {
        Conn* c = nullptr;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return workers_stop_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            c = jobs_.front();
            jobs_.pop_front();
        }
        ConnStream s(c->fd, c->raw, c->remote_ip, c->remote_port, c->local_ip, c->local_port, cfg_.write_timeout_s);
        bool keep = false;
        try {
            keep = handler_(s, c->raw, c->close_after || stopping_);
        } catch (...) {
            keep = false;  // the handler answers its own errors; anything else ends the connection
        }
        c->keep = keep && !s.failed() && !c->close_after;
        if (c->raw.capacity() > (64u << 10)) c->raw = std::string();
        c->raw.clear();
        {
            std::lock_guard<std::mutex> lk(mu_);
            returned_.push_back(c);
        }
        wake();
    }
}

void HttpGate::run() {
    LF_ASSERT(listen_fd_ >= 0);
    const int n_workers = std::max(1, cfg_.workers);
    for (int i = 0; i < n_workers; ++i) workers_.emplace_back([this] { worker(); });
    double last_scan = 0;
    epoll_event evs[64];
    while (true) {
        const int n = ::epoll_wait(epoll_fd_, evs, 64, 100);
        const double now = now_s();
        for (int i = 0; i < n; ++i) {
            void* tag = evs[i].data.ptr;
            if (tag == &kListenTag) {
                if (!stopping_) accept_all(now);
            } else if (tag == &kWakeTag) {
                uint64_t v;
                [[maybe_unused]] ssize_t r = ::read(wake_fd_, &v, sizeof v);
            } else {
                Conn& c = *static_cast<Conn*>(tag);
                if (c.fd >= 0 && c.phase != Conn::kWorking) on_readable(c, now);
            }
        }
        // Connections whose request has been answered.
        std::deque<Conn*> back;
        {
            std::lock_guard<std::mutex> lk(mu_);
            back.swap(returned_);
        }
        for (Conn* c : back) {
            if (!c->keep || stopping_) {
                close_conn(*c);
                continue;
            }
            c->phase = Conn::kIdle;
            c->since = now;
            c->deadline = now + cfg_.idle_timeout_s;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.ptr = c;
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev);
            if (c->parser.buffered() > 0) {
                c->phase = Conn::kReading;
                c->deadline = now + cfg_.head_timeout_s;
                advance(*c, now);  // a pipelined request already here
            }
        }
        if (now - last_scan >= 0.1 || stopping_) {
            last_scan = now;
            for (auto& c : conns_) {
                if (c->fd < 0 || c->phase == Conn::kWorking) continue;
                if (stopping_) {
                    close_conn(*c);
                } else if (now > c->deadline) {
                    if (c->phase == Conn::kReading) {
                        const bool body = c->parser.reading_body();
                        EarlyResponse t{408, error_json(408, body ? "the request body did not arrive in time" :
                                                                    "the request head did not arrive in time",
                                                        "request_timeout"), {}};
                        RequestHead h = c->parser.head();
                        answer_early(*c, t, body ? &h : nullptr, now);
                        std::lock_guard<std::mutex> lk(stats_mu_);
                        stats_.timed_out++;
                    } else {
                        close_conn(*c);
                    }
                }
            }
        }
        conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](const auto& c) { return c->fd < 0; }), conns_.end());
        size_t working = 0;
        for (auto& c : conns_) working += c->phase == Conn::kWorking;
        {
            std::lock_guard<std::mutex> lk(mu_);
            std::lock_guard<std::mutex> lk2(stats_mu_);
            stats_.open = conns_.size();
            stats_.working = working;
            stats_.waiting = jobs_.size();
        }
        if (stopping_) {
            if (listen_fd_ >= 0) {
                ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
                ::close(listen_fd_);
                listen_fd_ = -1;
            }
            if (working == 0) break;
        }
    }
    {
        std::lock_guard<std::mutex> lk(mu_);
        workers_stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
}

std::string HttpGate::process(const std::string& bytes) {
    RequestParser p(cfg_.request);
    p.append(bytes.data(), bytes.size());
    std::string out;
    static const std::string kNone;
    while (true) {
        const RequestParser::Result r = p.step();
        if (r == RequestParser::Result::kNeedMore) return out;  // a real client would time out (408)
        if (r == RequestParser::Result::kError) {
            const int st = p.error_status();
            out += early_bytes({st, error_json(st, p.error_message(), "bad_request"), {}}, true);
            return out;
        }
        if (r == RequestParser::Result::kHeadReady) {
            if (auto early = check_(p.head())) {
                const bool keep = early->keep_alive && p.head().keep_alive && !p.head().has_body();
                out += early_bytes(*early, !keep, p.head().method == "HEAD");
                if (!keep) return out;
                p.reset_for_next();
            }
            continue;
        }
        const std::string raw = p.request_bytes();
        const bool close = !p.head().keep_alive;
        p.reset_for_next();
        ConnStream s(-1, raw, kNone, 0, kNone, 0, cfg_.write_timeout_s);
        bool keep = false;
        try {
            keep = handler_(s, raw, close);
        } catch (...) {
            keep = false;
        }
        out += s.out();
        if (!keep || close) return out;
    }
}

}  // namespace llmforge::serve
