// libFuzzer target: whole HTTP requests — request line, headers and body, possibly several
// pipelined, possibly chunked or malformed — into the server's request handling exactly as a
// connection delivers them (Server::process: the gate's request parser and head checks, then
// cpp-httplib's routing and the OpenAI handlers), against a running engine with a tiny in-memory
// Llama model (zero weights; generation runs for real). The API key is "k"; admin endpoints are
// off (a fuzz input must not load files). Every response must be well-formed HTTP with a known
// status; a crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "serve/server.h"
#include "serve/tiny_served_model.h"

using namespace llmforge;
using namespace llmforge::serve;

namespace {

Server& server() {
    static Server* s = [] {
        ServerConfig cfg;
        cfg.api_key = "k";
        cfg.max_body_bytes = 64 << 10;
        cfg.max_tokens_cap = 4;
        cfg.max_n = 2;
        cfg.timeout_s = 5;
        cfg.engine.slots = 2;
        cfg.engine.n_ctx = 64;
        cfg.engine.threads = 1;
        cfg.engine.max_queue = 8;
        auto* srv = new Server(cfg);  // lives for the process: the engine thread keeps running
        srv->start(test::tiny_served_model(true));
        return srv;
    }();
    return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    const std::string out = server().process(in);
    // The output is a sequence of well-formed responses: status line with a status this server
    // sends, headers, and a body framed by Content-Length or chunked coding.
    auto bad = [&](const char* what, size_t at) {
        std::fprintf(stderr, "%s at byte %zu of the output: %.80s\n", what, at, out.c_str() + std::min(at, out.size()));
        std::abort();
    };
    size_t p = 0;
    while (p < out.size()) {
        if (out.compare(p, 9, "HTTP/1.1 ") != 0) bad("no status line", p);
        const int status = std::atoi(out.c_str() + p + 9);
        if (status < 100 || status > 599) bad("bad status", p);
        const size_t he = out.find("\r\n\r\n", p);
        if (he == std::string::npos) bad("unterminated head", p);
        const std::string head = out.substr(p, he - p);
        p = he + 4;
        const size_t cl = head.find("Content-Length: ");
        if (head.find("Transfer-Encoding: chunked") != std::string::npos) {
            while (true) {
                const size_t le = out.find("\r\n", p);
                if (le == std::string::npos) bad("unterminated chunk size", p);
                const size_t n = std::strtoul(out.c_str() + p, nullptr, 16);
                p = le + 2 + n + 2;
                if (p > out.size()) bad("truncated chunk", le);
                if (n == 0) break;
            }
        } else if (cl != std::string::npos) {
            // The answer to a HEAD request has no body: the output ends or the next answer starts.
            if (p == out.size() || out.compare(p, 9, "HTTP/1.1 ") == 0) continue;
            p += std::strtoul(head.c_str() + cl + 16, nullptr, 10);
            if (p > out.size()) bad("truncated body", p);
        } else if (status >= 200 && status != 204) {
            bad("a response without framing", p);
        }
    }
    return 0;
}
