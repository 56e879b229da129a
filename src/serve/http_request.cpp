#include "serve/http_request.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

namespace llmforge::serve {

namespace {

bool is_tchar(unsigned char c) {
    // RFC 9110 token characters.
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (!c || !is_tchar(c)) return false;
    return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Calls f(item) for each comma-separated, trimmed, non-empty item of a header value.
template <class F>
void for_each_item(std::string_view v, F f) {
    while (true) {
        const size_t c = v.find(',');
        const std::string_view item = trim(v.substr(0, c));
        if (!item.empty()) f(item);
        if (c == std::string_view::npos) return;
        v.remove_prefix(c + 1);
    }
}

}  // namespace

const std::string* RequestHead::find(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return &v;
    return nullptr;
}

std::string RequestHead::path() const { return target.substr(0, target.find('?')); }

RequestParser::Result RequestParser::fail(int status, std::string msg) {
    state_ = State::kError;
    err_status_ = status;
    err_msg_ = std::move(msg);
    return Result::kError;
}

bool RequestParser::take_line(std::string_view& line, size_t max_len, bool& too_long) {
    too_long = false;
    const size_t nl = in_.find('\n', pos_);
    if (nl == std::string::npos) {
        too_long = in_.size() - pos_ > max_len;
        return false;
    }
    size_t end = nl;
    if (end > pos_ && in_[end - 1] == '\r') --end;
    line = std::string_view(in_).substr(pos_, end - pos_);
    too_long = line.size() > max_len;
    pos_ = nl + 1;
    return true;
}

RequestParser::Result RequestParser::parse_head(size_t begin, size_t end) {
    // [begin, end): the request line and header lines, each ending in LF.
    const std::string_view block = std::string_view(in_).substr(begin, end - begin);
    std::vector<std::string_view> lines;
    for (size_t p = 0; p < block.size();) {
        size_t nl = block.find('\n', p);
        std::string_view l = block.substr(p, nl - p);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (l.find('\r') != std::string_view::npos)
            return fail(400, "a bare CR inside a header line (expected CRLF line ends)");
        lines.push_back(l);
        p = nl + 1;
    }
    // Request line: METHOD SP target SP HTTP/x.y
    const std::string_view rl = lines.at(0);
    const size_t s1 = rl.find(' '), s2 = s1 == std::string_view::npos ? s1 : rl.find(' ', s1 + 1);
    if (s1 == std::string_view::npos || s2 == std::string_view::npos || rl.find(' ', s2 + 1) != std::string_view::npos)
        return fail(400, "malformed request line '" + printable(rl, 80) + "' (expected METHOD SP /path SP HTTP/1.1)");
    const std::string_view method = rl.substr(0, s1), target = rl.substr(s1 + 1, s2 - s1 - 1),
                           version = rl.substr(s2 + 1);
    if (!is_token(method) || method.size() > 32)
        return fail(400, "malformed method '" + printable(method, 40) + "' (expected GET, POST or OPTIONS)");
    if (target.size() > lim_.max_target)
        return fail(414, "the request target is " + std::to_string(target.size()) + " bytes; the limit is " +
                             std::to_string(lim_.max_target));
    for (unsigned char c : target)
        if (c <= 0x20 || c == 0x7f)
            return fail(400, "the request target '" + printable(target, 80) +
                                 "' holds a control character or space (hint: percent-encode it)");
    if (target.empty() || (target[0] != '/' && target != "*"))
        return fail(400, "the request target '" + printable(target, 80) + "' does not start with '/'");
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
        if (version.size() == 8 && version.substr(0, 5) == "HTTP/")
            return fail(505, "HTTP version '" + printable(version, 20) + "' is not supported (expected HTTP/1.1)");
        return fail(400, "malformed HTTP version '" + printable(version, 20) + "' (expected HTTP/1.1)");
    }
    head_.method = method;
    head_.target = target;
    head_.version = version;

    std::string te, connection;
    bool has_te = false, has_cl = false;
    for (size_t i = 1; i < lines.size(); ++i) {
        const std::string_view l = lines[i];
        if (l.empty()) return fail(400, "an empty header line (expected Name: value)");
        if (l.front() == ' ' || l.front() == '\t')
            return fail(400, "a folded header line (obsolete line folding is not accepted)");
        const size_t colon = l.find(':');
        if (colon == std::string_view::npos || !is_token(l.substr(0, colon)))
            return fail(400, "malformed header line '" + printable(l, 80) + "' (expected Name: value)");
        if (head_.headers.size() >= lim_.max_headers)
            return fail(431, "more than " + std::to_string(lim_.max_headers) + " header fields");
        const std::string_view name = l.substr(0, colon), value = trim(l.substr(colon + 1));
        for (unsigned char c : value)
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(400, "header '" + std::string(name) + "' holds a control character");
        head_.headers.emplace_back(name, value);
        if (iequals(name, "Transfer-Encoding")) {
            has_te = true;
            te += te.empty() ? "" : ",";
            te += value;
        } else if (iequals(name, "Content-Length")) {
            bool bad = false;
            int items = 0;
            for_each_item(value, [&](std::string_view item) {
                ++items;
                uint64_t n = 0;
                bad |= item.size() > 18;
                for (char c : item) {
                    if (c < '0' || c > '9') bad = true;
                    n = n * 10 + static_cast<uint64_t>(c - '0');
                }
                if (!bad && has_cl && n != head_.content_length) bad = true;
                head_.content_length = n;
                has_cl = true;
            });
            if (bad || items == 0)
                return fail(400, "Content-Length '" + printable(value, 40) +
                                     "' is not one non-negative number of bytes (up to 18 digits)");
        } else if (iequals(name, "Connection")) {
            connection += connection.empty() ? "" : ",";
            connection += value;
        } else if (iequals(name, "Expect")) {
            if (!iequals(value, "100-continue"))
                return fail(417, "Expect '" + printable(value, 40) + "' is not supported (only 100-continue)");
            head_.expect_continue = true;
        }
    }
    if (has_te) {
        int n = 0;
        bool ok = true;
        for_each_item(te, [&](std::string_view item) {
            ++n;
            ok &= iequals(item, "chunked");
        });
        if (!ok || n != 1)
            return fail(501, "Transfer-Encoding '" + printable(te, 40) + "' is not supported (only chunked)");
        if (has_cl)
            return fail(400, "both Transfer-Encoding and Content-Length are set (expected one of them)");
        head_.chunked = true;
        head_.content_length = 0;
    }
    if (!head_.chunked && head_.content_length > lim_.max_body)
        return fail(413, "the request body is " + std::to_string(head_.content_length) + " bytes; this server takes at most " +
                             std::to_string(lim_.max_body) + " (hint: shorten it, or start the server with a larger --max-body)");
    bool close = false, keep = false;
    for_each_item(connection, [&](std::string_view item) {
        close |= iequals(item, "close");
        keep |= iequals(item, "keep-alive");
    });
    head_.keep_alive = !close && (head_.version == "HTTP/1.1" || keep);
    return Result::kHeadReady;
}

RequestParser::Result RequestParser::step() {
    Result r = Result::kNeedMore;
    bool too_long = false;
    std::string_view line;
    while (r == Result::kNeedMore) {
        const size_t avail = in_.size() - pos_;
        switch (state_) {
        case State::kHead: {
            // Empty lines before a request line are skipped (RFC 9112 2.2).
            while (pos_ < in_.size() && (in_[pos_] == '\r' || in_[pos_] == '\n')) ++pos_;
            if (pos_ > 0) {  // dropped at once: a client sending only blank lines holds no memory
                in_.erase(0, pos_);
                pos_ = scan_ = 0;
            }
            size_t end = std::string::npos, next = 0;
            for (size_t i = scan_; i < in_.size(); ++i) {
                if (in_[i] != '\n') continue;
                if (i + 1 < in_.size() && in_[i + 1] == '\n') {
                    end = i + 1, next = i + 2;
                    break;
                }
                if (i + 2 < in_.size() && in_[i + 1] == '\r' && in_[i + 2] == '\n') {
                    end = i + 1, next = i + 3;
                    break;
                }
            }
            if (end == std::string::npos) {
                if (in_.size() - pos_ > lim_.max_head)
                    return fail(431, "the request head is over " + std::to_string(lim_.max_head) + " bytes");
                scan_ = in_.size() >= 2 ? in_.size() - 2 : 0;
                scan_ = std::max(scan_, pos_);
                goto out;
            }
            if (next - pos_ > lim_.max_head)
                return fail(431, "the request head is over " + std::to_string(lim_.max_head) + " bytes");
            head_bytes_ = next - pos_;
            r = parse_head(pos_, end);
            if (r == Result::kError) return r;
            pos_ = next;
            state_ = State::kHeadChecked;
            goto out;
        }
        case State::kHeadChecked:
            if (head_.chunked) {
                state_ = State::kChunkSize;
            } else if (head_.content_length > 0) {
                body_.reserve(head_.content_length);
                state_ = State::kBodyLength;
            } else {
                state_ = State::kDone;
            }
            break;
        case State::kBodyLength: {
            const size_t take = static_cast<size_t>(std::min<uint64_t>(avail, head_.content_length - body_.size()));
            body_.append(in_, pos_, take);
            pos_ += take;
            if (body_.size() == head_.content_length) {
                state_ = State::kDone;
                break;
            }
            goto out;
        }
        case State::kChunkSize: {
            if (!take_line(line, 1024, too_long)) {
                if (too_long) return fail(400, "a chunk-size line is over 1024 bytes");
                goto out;
            }
            if (too_long) return fail(400, "a chunk-size line is over 1024 bytes");
            size_t i = 0;
            uint64_t n = 0;
            while (i < line.size() && std::isxdigit(static_cast<unsigned char>(line[i]))) {
                if (i >= 15) return fail(400, "a chunk size has more than 15 hex digits");
                const char c = lower(line[i]);
                n = n * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
                ++i;
            }
            const std::string_view rest = trim(line.substr(i));
            if (i == 0 || (!rest.empty() && rest.front() != ';'))
                return fail(400, "malformed chunk size '" + printable(line, 40) + "' (expected hex digits)");
            if (n == 0) {
                state_ = State::kTrailer;
                break;
            }
            if (n > lim_.max_body - body_.size())
                return fail(413, "the chunked request body is over " + std::to_string(lim_.max_body) +
                                     " bytes, this server's limit (hint: shorten it, or start the server with a larger --max-body)");
            chunk_left_ = n;
            state_ = State::kChunkData;
            break;
        }
        case State::kChunkData: {
            const size_t take = static_cast<size_t>(std::min<uint64_t>(avail, chunk_left_));
            body_.append(in_, pos_, take);
            pos_ += take;
            chunk_left_ -= take;
            if (chunk_left_ == 0) {
                state_ = State::kChunkDataEnd;
                break;
            }
            goto out;
        }
        case State::kChunkDataEnd:
            if (!take_line(line, 1, too_long)) {
                if (too_long) return fail(400, "chunk data is longer than its chunk size");
                goto out;
            }
            if (!line.empty()) return fail(400, "chunk data is longer than its chunk size");
            state_ = State::kChunkSize;
            break;
        case State::kTrailer:
            if (!take_line(line, lim_.max_head, too_long)) {
                if (too_long || head_bytes_ + trailer_bytes_ + avail > lim_.max_head)
                    return fail(431, "the request head and trailers are over " + std::to_string(lim_.max_head) + " bytes");
                goto out;
            }
            if (line.empty()) {
                state_ = State::kDone;
                break;
            }
            trailer_bytes_ += line.size() + 2;
            if (head_bytes_ + trailer_bytes_ > lim_.max_head)
                return fail(431, "the request head and trailers are over " + std::to_string(lim_.max_head) + " bytes");
            break;
        case State::kDone:
            r = Result::kComplete;
            goto out;
        case State::kError:
            return Result::kError;
        }
    }
out:
    if (state_ != State::kHead && pos_ > 0) {
        // Consumed bytes are dropped (kHead keeps them: they are the head being searched).
        in_.erase(0, pos_);
        pos_ = 0;
        scan_ = 0;
    }
    return r;
}

std::string RequestParser::request_bytes() const {
    std::string o;
    o.reserve(head_bytes_ + body_.size() + 32);
    o += head_.method + ' ' + head_.target + ' ' + head_.version + "\r\n";
    for (const auto& [k, v] : head_.headers) {
        if (iequals(k, "Transfer-Encoding") || iequals(k, "Content-Length") || iequals(k, "Expect")) continue;
        o += k + ": " + v + "\r\n";
    }
    o += "Content-Length: " + std::to_string(body_.size()) + "\r\n\r\n";
    o += body_;
    return o;
}

void RequestParser::reset_for_next() {
    in_.erase(0, pos_);
    pos_ = 0;
    scan_ = 0;
    head_ = RequestHead{};
    if (body_.capacity() > (64u << 10)) body_ = std::string();
    body_.clear();
    state_ = State::kHead;
    chunk_left_ = 0;
    trailer_bytes_ = 0;
    head_bytes_ = 0;
    err_status_ = 0;
    err_msg_.clear();
}

std::string printable(std::string_view s, size_t max) {
    std::string o;
    for (size_t i = 0; i < s.size(); ++i) {
        if (o.size() >= max) {
            o += "...";
            break;
        }
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02X", c);
            o += b;
        } else {
            o += static_cast<char>(c);
        }
    }
    return o;
}

bool equal_secret(std::string_view secret, std::string_view candidate) {
    // Every byte of the candidate is looked at whatever matches, so the time says nothing about
    // how much of the key a guess got right.
    unsigned char diff = secret.size() == candidate.size() ? 0 : 1;
    for (size_t i = 0; i < candidate.size(); ++i)
        diff |= static_cast<unsigned char>(candidate[i] ^ (secret.empty() ? 0 : secret[i % secret.size()]));
    return diff == 0;
}

std::string_view bearer_token(std::string_view v) {
    v = trim(v);
    if (v.size() < 7 || !iequals(v.substr(0, 6), "bearer") || (v[6] != ' ' && v[6] != '\t')) return {};
    return trim(v.substr(7));
}

}  // namespace llmforge::serve
