// Reading one HTTP/1.1 request off the wire, strictly and within limits: the request line and
// headers (the head), then the body framed by Content-Length or chunked transfer coding.
//
// Why by hand: cpp-httplib (Debian 12 ships 0.11) reads a request inside a worker thread with a
// per-read timeout that restarts on every byte, buffers a chunked body with no size limit,
// waits for a declared Content-Length it has already refused, and parses the body before a
// route can look at the headers. The server therefore reads each request whole in its own
// event loop (serve/http_gate.h) with this parser, checks the head (key, size, route) before a
// single body byte is kept, and hands cpp-httplib only complete, re-framed requests
// (Content-Length, never chunked) to route and answer. No Debian library offers an incremental
// request parser with these limits that fits beside cpp-httplib's routing.
//
// The parser never throws and never allocates beyond its limits: max_head bytes of head
// (request line, headers, chunked trailers) plus max_body bytes of decoded body.
//
// Thread safety: none; one parser per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmforge::serve {

struct RequestHead {
    std::string method;   // "POST"
    std::string target;   // "/v1/completions?x=1" as sent
    std::string version;  // "HTTP/1.1" or "HTTP/1.0"
    std::vector<std::pair<std::string, std::string>> headers;  // in order; names as sent, values trimmed

    // The first header with this name (ASCII case-insensitive), or nullptr.
    const std::string* find(std::string_view name) const;
    std::string path() const;  // the target up to '?' (not percent-decoded)

    // Framing and connection semantics, derived from the headers.
    bool chunked = false;
    uint64_t content_length = 0;  // when not chunked
    bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
    bool expect_continue = false;
    bool has_body() const { return chunked || content_length > 0; }
};

struct RequestLimits {
    size_t max_head = 16384;    // request line + headers (+ chunked trailers), bytes
    size_t max_headers = 100;   // header fields
    size_t max_target = 8192;   // request-target, bytes
    size_t max_body = 1u << 20;  // decoded body, bytes
};

class RequestParser {
public:
    enum class Result {
        kNeedMore,   // feed more bytes
        kHeadReady,  // head() is complete and checked; call step() again to read the body
        kComplete,   // the whole request is here: request_bytes(), then reset_for_next()
        kError,      // error_status() / error_message(); the connection must be closed
    };

    explicit RequestParser(RequestLimits limits = {}) : lim_(limits) {}

    // Appends received bytes (they are parsed by step()).
    void append(const char* data, size_t n) { in_.append(data, n); }
    // Parses what has arrived. kHeadReady is returned once per request, before any body byte
    // is taken, so the caller can refuse it (key, route, size) without reading the body.
    Result step();

    const RequestHead& head() const { return head_; }
    bool started() const { return !in_.empty() || state_ != State::kHead; }  // a byte of this request seen
    bool reading_body() const { return state_ != State::kHead && state_ != State::kDone; }
    size_t buffered() const { return in_.size() + body_.size(); }  // bytes held for this connection

    // kComplete: the request re-framed for cpp-httplib: request line, the headers without
    // Transfer-Encoding / Content-Length / Expect, "Content-Length: N", blank line, body.
    std::string request_bytes() const;
    const std::string& body() const { return body_; }
    // Starts the next request on this connection; bytes that came after this one (pipelining)
    // are kept.
    void reset_for_next();

    int error_status() const { return err_status_; }
    const std::string& error_message() const { return err_msg_; }

private:
    enum class State { kHead, kHeadChecked, kBodyLength, kChunkSize, kChunkData, kChunkDataEnd, kTrailer, kDone, kError };
    Result fail(int status, std::string msg);
    Result parse_head(size_t end, size_t next);
    // Takes one line ending in LF from in_ at pos_ (CR before it stripped); false: not yet.
    bool take_line(std::string_view& line, size_t max_len, bool& too_long);

    RequestLimits lim_;
    State state_ = State::kHead;
    std::string in_;   // received, not yet consumed
    size_t pos_ = 0;   // consumed prefix of in_
    size_t scan_ = 0;  // kHead: where the search for the blank line resumes
    RequestHead head_;
    std::string body_;
    uint64_t chunk_left_ = 0;
    size_t trailer_bytes_ = 0;
    size_t head_bytes_ = 0;
    int err_status_ = 0;
    std::string err_msg_;
};

// For messages: bytes shown as text, control and non-ASCII bytes as \xNN, cut at `max` bytes.
std::string printable(std::string_view s, size_t max = 200);

// Constant-time comparison of a secret with a candidate (the time depends only on their lengths).
bool equal_secret(std::string_view secret, std::string_view candidate);

// The key of an "Authorization: Bearer KEY" header value (scheme case-insensitive, any number of
// spaces); empty when the value is not a bearer credential.
std::string_view bearer_token(std::string_view header_value);

}  // namespace llmforge::serve
