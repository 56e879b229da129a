// The hostile-input suite for llmforge serve: what an attacker (or a broken client) sends, over
// raw sockets to the real binary with the TinyStories 260K model. Each case is one finding of
// the adversarial probe (issue "Hardening"): deep nesting in every request field that reaches
// the chat template, chunked and oversized bodies with and without a key, bad Content-Length
// values, slowloris, special files for reload, SIGTERM with streams running, curl-style form
// bodies, header and path oddities. After each, the server must still answer and its memory
// must be back near where it started. Every wait is bounded.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "serve_process.h"
#include "test_util.h"

namespace llmforge {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using test::ServerProcess;
using test::stories_args;
using test::stream_completion;
using test::StreamResult;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A raw TCP connection to the server.
class Raw {
public:
    explicit Raw(int port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~Raw() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }
    bool send(const std::string& s) {
        size_t done = 0;
        while (done < s.size()) {
            const ssize_t k = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
            if (k <= 0) return false;
            done += static_cast<size_t>(k);
        }
        return true;
    }
    // Bytes available within `timeout_s` (appended to in_); false on timeout, EOF or error.
    bool read_some(double timeout_s) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout_s * 1000)) != 1) return false;
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        in_.append(buf, static_cast<size_t>(n));
        return true;
    }
    bool readable_now() {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) == 1;
    }
    struct Reply {
        int status = 0;  // 0: none within the time
        std::string head, body;
    };
    // One response (1xx interim responses skipped unless keep_interim), waiting at most timeout_s.
    // no_body: the answer to a HEAD request (headers only, whatever Content-Length says).
    Reply response(double timeout_s, bool keep_interim = false, bool no_body = false) {
        const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
        Reply r;
        while (true) {
            const size_t he = in_.find("\r\n\r\n");
            if (he != std::string::npos) {
                r.head = in_.substr(0, he + 2);
                r.status = std::atoi(r.head.c_str() + 9);
                if (r.status >= 100 && r.status < 200 && !keep_interim) {
                    in_.erase(0, he + 4);
                    r = Reply{};
                    continue;
                }
                std::string lower = r.head;
                for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                const size_t cl = lower.find("content-length:");
                if (r.status < 200 || no_body) {
                    in_.erase(0, he + 4);
                    return r;
                }
                if (cl != std::string::npos) {
                    const size_t n = std::stoul(r.head.substr(cl + 15));
                    if (in_.size() >= he + 4 + n) {
                        r.body = in_.substr(he + 4, n);
                        in_.erase(0, he + 4 + n);
                        return r;
                    }
                } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
                    // De-chunk what is complete.
                    std::string body;
                    size_t p = he + 4;
                    bool complete = false;
                    while (true) {
                        const size_t le = in_.find("\r\n", p);
                        if (le == std::string::npos) break;
                        const size_t n = std::stoul(in_.substr(p, le - p), nullptr, 16);
                        if (n == 0) {
                            if (in_.size() >= le + 4) {
                                complete = true;
                                p = le + 4;
                            }
                            break;
                        }
                        if (in_.size() < le + 2 + n + 2) break;
                        body += in_.substr(le + 2, n);
                        p = le + 2 + n + 2;
                    }
                    if (complete) {
                        r.body = body;
                        in_.erase(0, p);
                        return r;
                    }
                    r.body = body;
                } else if (eof_) {
                    r.body = in_.substr(he + 4);
                    in_.clear();
                    return r;
                }
            }
            const double left = std::chrono::duration<double>(until - Clock::now()).count();
            if (left <= 0 || eof_) return r.status ? r : Reply{};
            read_some(left);
        }
    }
    // True when the server closed the connection within timeout_s.
    bool closed_within(double timeout_s) {
        const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
        while (!eof_) {
            const double left = std::chrono::duration<double>(until - Clock::now()).count();
            if (left <= 0) return false;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left * 1000) + 1) != 1) continue;
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) eof_ = true;
        }
        return true;
    }

private:
    int fd_ = -1;
    std::string in_;
    bool eof_ = false;
};

std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "",
                 const std::string& key = "test-key") {
    std::string h = "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    if (!key.empty()) h += "Authorization: Bearer " + key + "\r\n";
    return h + extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

json error_of(const Raw::Reply& r) {
    try {
        return json::parse(r.body).at("error");
    } catch (...) {
        return json();
    }
}

long rss_kb(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// The server answers /health at once and holds no more than `slack_mb` over its baseline.
void expect_healthy(const ServerProcess& srv, long baseline_kb, const char* after, long slack_mb = 48) {
    Raw c(srv.port());
    ASSERT_TRUE(c.ok()) << after;
    const auto t0 = Clock::now();
    ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")) << after;
    const Raw::Reply r = c.response(5);
    EXPECT_EQ(r.status, 200) << "after " << after << ": " << r.body;
    EXPECT_LT(seconds_since(t0), 2.0) << "after " << after;
    // Memory comes back: glibc may keep freed pages a moment; give it a few tries.
    long rss = rss_kb(srv.pid());
    for (int i = 0; i < 20 && rss > baseline_kb + slack_mb * 1024; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        rss = rss_kb(srv.pid());
    }
    EXPECT_LE(rss, baseline_kb + slack_mb * 1024) << "after " << after << ": RSS " << rss / 1024 << " MiB, started at "
                                                 << baseline_kb / 1024 << " MiB";
}

std::string nested(const std::string& open, const std::string& inner, const std::string& close, int depth) {
    std::string s;
    s.reserve((open.size() + close.size()) * depth + inner.size());
    for (int i = 0; i < depth; ++i) s += open;
    s += inner;
    for (int i = 0; i < depth; ++i) s += close;
    return s;
}

TEST(ServeHostile, DeepNestingInEveryTemplateFieldIsA400) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const long base = rss_kb(srv.pid());
    const std::string msg = R"({"role":"user","content":"hi")";
    const std::string deep_list = nested("[", "", "]", 20000), deep_obj = nested("{\"a\":", "1", "}", 20000);
    struct Case {
        const char* what;
        std::string path, body;
    };
    const std::vector<Case> cases = {
        {"tools", "/v1/chat/completions", R"({"messages":[)" + msg + R"(}],"tools":)" + deep_list + "}"},
        {"tools (objects)", "/v1/chat/completions", R"({"messages":[)" + msg + R"(}],"tools":)" + deep_obj + "}"},
        {"extra key in a message", "/v1/chat/completions", R"({"messages":[)" + msg + R"(,"x":)" + deep_list + "}]}"},
        {"message content", "/v1/chat/completions", R"({"messages":[{"role":"user","content":)" + deep_list + "}]}"},
        {"tool_calls of an assistant message", "/v1/chat/completions",
         R"({"messages":[)" + msg + R"(},{"role":"assistant","content":"","tool_calls":)" + deep_list + "}]}"},
        {"completion prompt", "/v1/completions", R"({"prompt":)" + deep_list + "}"},
        {"unknown top-level field", "/v1/completions", R"({"prompt":"a","x":)" + deep_obj + "}"},
        {"whole body", "/v1/completions", deep_list},
    };
    for (const Case& k : cases) {
        Raw c(srv.port());
        ASSERT_TRUE(c.send(post(k.path, k.body))) << k.what;
        const Raw::Reply r = c.response(10);
        EXPECT_EQ(r.status, 400) << k.what << ": " << r.body.substr(0, 300);
        const json e = error_of(r);
        EXPECT_TRUE(e.is_object() && e["message"].get<std::string>().find("deep") != std::string::npos)
            << k.what << ": " << r.body.substr(0, 300);
        expect_healthy(srv, base, k.what);
    }
    // Nesting a real tool schema needs is fine.
    Raw c(srv.port());
    const std::string tools = R"([{"type":"function","function":{"name":"f","parameters":)" +
                              nested(R"({"type":"object","properties":{"x":)", R"({"type":"string"})", "}}", 8) + "}}]";
    ASSERT_TRUE(c.send(post("/v1/chat/completions", R"({"max_tokens":2,"messages":[)" + msg + R"(}],"tools":)" + tools + "}")));
    const Raw::Reply r = c.response(20);
    EXPECT_EQ(r.status, 200) << r.body;
}

TEST(ServeHostile, BodiesAreCheckedAndCappedWhileTheyArrive) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir));  // --max-body: 1 MiB (the default)
    ASSERT_GT(srv.port(), 0) << srv.log();
    const long base = rss_kb(srv.pid());
    const std::string chunk = "10000\r\n" + std::string(65536, 'a') + "\r\n";  // 64 KiB chunks
    auto chunked_head = [](const std::string& key) {
        std::string h = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
        if (!key.empty()) h += "Authorization: Bearer " + key + "\r\n";
        return h + "\r\n";
    };
    // Sends up to `mb` MiB of chunks, stopping as soon as an answer arrives; the MiB sent.
    auto stream_chunks = [&](Raw& c, int mb) {
        int sent = 0;
        for (; sent < mb * 16; ++sent) {
            if (c.readable_now() || !c.send(chunk)) break;
        }
        return sent / 16.0;
    };
    {
        // 150 MiB chunked without a key: 401 on the headers, the body is never read.
        Raw c(srv.port());
        const auto t0 = Clock::now();
        ASSERT_TRUE(c.send(chunked_head("")));
        const double mib = stream_chunks(c, 150);
        const Raw::Reply r = c.response(5);
        EXPECT_EQ(r.status, 401) << r.body;
        EXPECT_LT(seconds_since(t0), 5.0);
        EXPECT_LT(mib, 150) << "the server read the whole body of an unauthorised request";
        expect_healthy(srv, base, "150 MiB chunked without a key");
    }
    {
        // 30 MiB chunked with a key: 413 once the first MiB is passed.
        Raw c(srv.port());
        ASSERT_TRUE(c.send(chunked_head("test-key")));
        const double mib = stream_chunks(c, 30);
        const Raw::Reply r = c.response(5);
        EXPECT_EQ(r.status, 413) << r.body;
        EXPECT_LT(mib, 8) << "refused only after " << mib << " MiB";
        EXPECT_NE(error_of(r).value("message", "").find("--max-body"), std::string::npos) << r.body;
        expect_healthy(srv, base, "30 MiB chunked with a key");
    }
    struct Case {
        const char* what;
        std::string request;
        int status;
    };
    const std::string body = R"({"prompt":"a","max_tokens":1})";
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n";
    const std::vector<Case> cases = {
        {"Content-Length over --max-body, body never sent", head + "Content-Length: 5000000\r\n\r\n", 413},
        {"negative Content-Length", head + "Content-Length: -1\r\n\r\n", 400},
        {"Content-Length 2^63", head + "Content-Length: 9223372036854775808\r\n\r\n", 400},
        {"Content-Length not a number", head + "Content-Length: 12abc\r\n\r\n", 400},
        {"two different Content-Lengths", head + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
        {"Content-Length and chunked", head + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"unknown transfer coding", head + "Transfer-Encoding: gzip\r\n\r\n", 501},
        {"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"compressed body", head + "Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 415},
        {"multipart body", head + "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body, 415},
    };
    for (const Case& k : cases) {
        Raw c(srv.port());
        const auto t0 = Clock::now();
        ASSERT_TRUE(c.send(k.request)) << k.what;
        const Raw::Reply r = c.response(5);
        EXPECT_EQ(r.status, k.status) << k.what << ": " << r.body;
        EXPECT_LT(seconds_since(t0), 2.0) << k.what << ": answered late";
        EXPECT_TRUE(error_of(r).is_object()) << k.what << ": " << r.body;
        expect_healthy(srv, base, k.what);
    }
    {
        // curl -d: a 20 KB JSON body sent as application/x-www-form-urlencoded is read as JSON.
        Raw c(srv.port());
        const std::string big = R"({"max_tokens":2,"prompt":")" + std::string(20000, 'a') + "\"}";
        ASSERT_TRUE(c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
                           "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                           std::to_string(big.size()) + "\r\n\r\n" + big));
        const Raw::Reply r = c.response(30);
        EXPECT_NE(r.status, 413) << r.body;
        EXPECT_TRUE(r.status == 200 || error_of(r).value("code", "") == "context_length_exceeded") << r.status << r.body;
    }
    {
        // Expect: 100-continue gets its interim answer, then the real one; a chunked body within
        // the limit is read whole.
        Raw c(srv.port());
        ASSERT_TRUE(c.send(head + "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"));
        const Raw::Reply interim = c.response(5, true);
        EXPECT_EQ(interim.status, 100);
        char size[16];
        std::snprintf(size, sizeof size, "%zx", body.size());
        ASSERT_TRUE(c.send(std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n"));
        const Raw::Reply r = c.response(20);
        EXPECT_EQ(r.status, 200) << r.body;
    }
    expect_healthy(srv, base, "all body cases");
}

TEST(ServeHostile, SlowClientsDoNotStarveOthers) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir, {"--header-timeout", "3", "--body-timeout", "2", "--max-connections", "64",
                                         "--http-threads", "8"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const long base = rss_kb(srv.pid());
    // 96 connections (more than --max-connections) each send one header line every 0.5 s.
    std::vector<std::unique_ptr<Raw>> slow;
    for (int i = 0; i < 96; ++i) {
        slow.push_back(std::make_unique<Raw>(srv.port()));
        slow.back()->send("POST /v1/completions HTTP/1.1\r\n");
    }
    const auto t0 = Clock::now();
    int health_ok = 0, probes = 0, completions_ok = 0;
    while (seconds_since(t0) < 4.0) {
        for (auto& s : slow) s->send("X-Slow: 1\r\n");
        const auto p0 = Clock::now();
        Raw h(srv.port());
        h.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        const Raw::Reply r = h.response(2);
        ++probes;
        health_ok += r.status == 200 && seconds_since(p0) < 1.0;
        Raw g(srv.port());
        g.send(post("/v1/completions", R"({"prompt":"Once","max_tokens":2})"));
        completions_ok += g.response(5).status == 200;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    EXPECT_EQ(health_ok, probes) << "/health missed while slow clients held connections";
    EXPECT_EQ(completions_ok, probes) << "completions failed while slow clients held connections";
    // None of them is ever served: each got 408 at the header deadline or was dropped at the
    // connection limit.
    for (auto& s : slow) {
        EXPECT_TRUE(s->closed_within(3.0)) << "a slow client kept its connection past --header-timeout";
    }
    {
        // A body that trickles: 408 at --body-timeout.
        Raw c(srv.port());
        const auto b0 = Clock::now();
        c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\nContent-Length: 1000\r\n\r\n{");
        Raw::Reply r;
        while (seconds_since(b0) < 6 && r.status == 0) {
            c.send(" ");
            r = c.response(0.3);
        }
        EXPECT_EQ(r.status, 408) << r.body;
        EXPECT_LT(seconds_since(b0), 4.0);
    }
    {
        // Idle connections that never send a byte are closed too.
        Raw idle(srv.port());
        EXPECT_TRUE(idle.closed_within(6.0));
    }
    expect_healthy(srv, base, "slowloris");
}

TEST(ServeHostile, HeadsPathsAndKeysAreHandledStrictly) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir, {"--metrics-key", "metrics-key"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const long base = rss_kb(srv.pid());
    std::string many;
    for (int i = 0; i < 150; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    struct Case {
        const char* what;
        std::string request;
        int status;
    };
    const std::vector<Case> cases = {
        {"150 header fields", "GET /v1/models HTTP/1.1\r\n" + many + "\r\n", 431},
        {"a 40 KB header", "GET /v1/models HTTP/1.1\r\nX-Big: " + std::string(40000, 'a') + "\r\n\r\n", 431},
        {"malformed request line", "GET\r\n\r\n", 400},
        {"HTTP/2.0 request line", "GET /health HTTP/2.0\r\n\r\n", 505},
        {"control byte in the path", std::string("GET /v1/\x01 HTTP/1.1\r\n\r\n"), 400},
        {"header without colon", "GET /health HTTP/1.1\r\nnocolon\r\n\r\n", 400},
        {"lower-case bearer", "GET /v1/models HTTP/1.1\r\nAuthorization: bearer test-key\r\n\r\n", 200},
        {"BEARER and extra spaces", "GET /v1/models HTTP/1.1\r\nAuthorization: BEARER   test-key \r\n\r\n", 200},
        {"key with a wrong last byte", "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer test-kez\r\n\r\n", 401},
        {"key prefix", "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer test\r\n\r\n", 401},
        {"metrics without its key", "GET /metrics HTTP/1.1\r\n\r\n", 401},
        {"metrics with the API key", "GET /metrics HTTP/1.1\r\nAuthorization: Bearer test-key\r\n\r\n", 401},
        {"metrics with its key", "GET /metrics HTTP/1.1\r\nAuthorization: Bearer metrics-key\r\n\r\n", 200},
        {"admin with the API key", "GET /admin/drift HTTP/1.1\r\nAuthorization: Bearer test-key\r\n\r\n", 401},
        {"admin via percent-encoding", "GET /%61dmin/drift HTTP/1.1\r\nAuthorization: Bearer test-key\r\n\r\n", 401},
    };
    for (const Case& k : cases) {
        Raw c(srv.port());
        ASSERT_TRUE(c.send(k.request)) << k.what;
        const Raw::Reply r = c.response(5);
        EXPECT_EQ(r.status, k.status) << k.what << ": " << r.body.substr(0, 300);
        expect_healthy(srv, base, k.what);
    }
    {
        // A NUL in the path (percent-encoded) is shown in the error, not cut off at it.
        Raw c(srv.port());
        c.send("GET /v1/a%00after HTTP/1.1\r\nAuthorization: Bearer test-key\r\n\r\n");
        const Raw::Reply r = c.response(5);
        EXPECT_EQ(r.status, 404);
        const std::string m = error_of(r).value("message", "");
        EXPECT_NE(m.find("\\x00after"), std::string::npos) << m;
    }
    {
        // Two pipelined requests on one connection: two answers, in order.
        Raw c(srv.port());
        c.send("GET /v1/models HTTP/1.1\r\nAuthorization: Bearer test-key\r\n\r\n"
               "GET /health HTTP/1.1\r\n\r\n");
        const Raw::Reply a = c.response(5), b = c.response(5);
        EXPECT_EQ(a.status, 200);
        EXPECT_NE(a.body.find("\"list\""), std::string::npos) << a.body;
        EXPECT_EQ(b.status, 200);
        EXPECT_NE(b.body.find("\"ok\""), std::string::npos) << b.body;
    }
    {
        // HEAD /health gets headers only: the next answer on the connection starts right after.
        Raw c(srv.port());
        c.send("HEAD /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n");
        const Raw::Reply a = c.response(5, false, true), b = c.response(5);
        EXPECT_EQ(a.status, 200);
        EXPECT_EQ(b.status, 200);
        EXPECT_NE(b.body.find("\"ok\""), std::string::npos) << b.body;
    }
    {
        // logit_bias is honoured or refused, never ignored: an invalid key is a 400.
        Raw c(srv.port());
        c.send(post("/v1/completions", R"({"prompt":"a","max_tokens":1,"logit_bias":{"not-a-token":5}})"));
        const Raw::Reply r = c.response(10);
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_EQ(error_of(r).value("param", ""), "logit_bias") << r.body;
    }
}

TEST(ServeHostile, ReloadRefusesSpecialFilesAndStaysUsable) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const long base = rss_kb(srv.pid());
    const std::string tmp = test::temp_dir();
    const std::string fifo = tmp + "/model.fifo", sock = tmp + "/model.sock", folder = tmp + "/empty-folder";
    ::unlink(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::filesystem::create_directories(folder);
    const int sfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un ua{};
    ua.sun_family = AF_UNIX;
    std::snprintf(ua.sun_path, sizeof ua.sun_path, "%s", sock.c_str());
    ::unlink(sock.c_str());
    ASSERT_EQ(::bind(sfd, reinterpret_cast<sockaddr*>(&ua), sizeof ua), 0);
    auto reload = [&](const std::string& path) {
        Raw c(srv.port());
        c.send(post("/admin/reload", json{{"model", path}}.dump(), "", "admin-key"));
        return c.response(20);
    };
    for (const std::string& p : {fifo, fifo, std::string("/dev/zero"), std::string("/dev/urandom"), sock, folder}) {
        const auto t0 = Clock::now();
        const Raw::Reply r = reload(p);
        EXPECT_EQ(r.status, 400) << p << ": " << r.body;
        EXPECT_LT(seconds_since(t0), 5.0) << p;
        EXPECT_EQ(error_of(r).value("code", ""), "model_load_failed") << r.body;
        expect_healthy(srv, base, p.c_str());
    }
    ::close(sfd);
    // The reload path is not wedged: a real reload works.
    const Raw::Reply ok = reload(dir + "/stories260K.bin");
    EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST(ServeHostile, SigtermCutsAreReportedAsErrorsAndEveryStreamEnds) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir, {"--parallel", "2", "--shutdown-grace", "0", "--max-queue", "64"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const int kStreams = 8, kPlain = 4, kMax = 400;
    std::vector<StreamResult> streams(kStreams);
    std::vector<Raw::Reply> plain(kPlain);
    std::vector<std::thread> clients;
    std::atomic<int> started{0};
    for (int i = 0; i < kStreams; ++i) {
        clients.emplace_back([&, i] {
            ++started;
            streams[i] = stream_completion(srv.port(), json{{"prompt", "Once"}, {"max_tokens", kMax}, {"temperature", 1.0},
                                                            {"stream", true}, {"stream_options", {{"include_usage", true}}}});
        });
    }
    for (int i = 0; i < kPlain; ++i) {
        clients.emplace_back([&, i] {
            ++started;
            Raw c(srv.port());
            c.send(post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", kMax}, {"temperature", 1.0}}.dump()));
            plain[i] = c.response(60);
        });
    }
    // SIGTERM once every request has reached the engine and two are generating.
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until) {
        const double busy = test::metric(srv, "llmforge_slots_busy"), queued = test::metric(srv, "llmforge_queue_depth"),
                     done = test::metric(srv, "llmforge_sequences_total");
        if (busy == 2 && busy + queued + done >= kStreams + kPlain) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(srv.terminate(30), 0) << srv.log();
    for (auto& t : clients) t.join();
    int cut = 0;
    for (const StreamResult& r : streams) {
        EXPECT_EQ(r.status, 200) << r.body;
        EXPECT_TRUE(r.done) << "a stream ended without [DONE]: text '" << r.text << "', body " << r.body;
        if (!r.body.empty()) {
            const json e = json::parse(r.body).at("error");
            EXPECT_EQ(e.value("code", ""), "shutting_down") << r.body;
            ++cut;
        } else {
            // Finished before the signal: a real finish.
            EXPECT_TRUE(r.finish_reason == "stop" || r.finish_reason == "length") << r.finish_reason;
        }
    }
    for (const Raw::Reply& r : plain) {
        if (r.status == 503) {
            EXPECT_EQ(error_of(r).value("code", ""), "shutting_down") << r.body;
            ++cut;
        } else {
            ASSERT_EQ(r.status, 200) << r.body;
            const json j = json::parse(r.body);
            const std::string reason = j["choices"][0]["finish_reason"];
            EXPECT_TRUE(reason == "stop" || (reason == "length" && j["usage"]["completion_tokens"] == kMax))
                << "a cut request reported as a normal finish: " << r.body.substr(0, 300);
        }
    }
    EXPECT_GT(cut, 0) << "no request was running at SIGTERM; the test did not test anything";
}

}  // namespace
}  // namespace llmforge
