// Two tiers of errors (see docs/ARCHITECTURE.md):
//  * llmforge::Error — bad user input (files, shapes, token ids, flags). The message is one line:
//    what, where, expected vs found, and a hint. Front ends print e.what() and exit non-zero.
//  * LF_ASSERT — internal invariants; aborts with file:line. Never used for user input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace llmforge {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Formats like printf and throws Error.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

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
