// Two tiers of errors (see docs/ARCHITECTURE.md):
//  * llmforge::Error — a failure the user can act on. The message is one line: what, where,
//    expected vs found, and a hint. Front ends print e.what() and exit non-zero. Each Error has a
//    kind, so that a boundary can answer rightly (the server: 400, 404, 503 or 500):
//      kBadInput  the input is wrong (files, shapes, token ids, flags, request JSON) — the default,
//                 and what fail() throws;
//      kNotFound  a named thing does not exist (a model path, a file, a model id);
//      kResource  a limit was reached (out of memory, context full, over a budget): the same input
//                 may succeed later or with more room;
//      kInternal  a bug or broken invariant that surfaced as an exception rather than an abort.
//  * LF_ASSERT — internal invariants; aborts with file:line. Never used for user input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace llmforge {

enum class ErrorKind { kBadInput, kNotFound, kResource, kInternal };

// "bad input", "not found", "resource", "internal".
const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
    Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_ = ErrorKind::kBadInput;
};

// Formats like printf and throws Error of kind kBadInput.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Formats like printf and throws Error of the given kind.
[[noreturn]] void fail_kind(ErrorKind kind, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The kind of any exception: an Error's own, kResource for std::bad_alloc, kInternal otherwise.
ErrorKind error_kind_of(const std::exception& e);

// printf-style formatting into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace llmforge

#define LF_ASSERT(cond)                                                                   \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "llmforge: internal error at %s:%d: assertion '%s' failed\n", \
                         __FILE__, __LINE__, #cond);                                      \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)
