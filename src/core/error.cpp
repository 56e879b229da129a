#include "core/error.h"

#include <cstdarg>
#include <new>
#include <vector>

namespace llmforge {

static std::string vstrfmt(const char* fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = std::vsnprintf(nullptr, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return fmt;
    std::string s(static_cast<size_t>(n), '\0');
    std::vsnprintf(s.data(), s.size() + 1, fmt, ap);
    return s;
}

std::string strfmt(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vstrfmt(fmt, ap);
    va_end(ap);
    return s;
}

void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vstrfmt(fmt, ap);
    va_end(ap);
    throw Error(s);
}

void fail_kind(ErrorKind kind, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vstrfmt(fmt, ap);
    va_end(ap);
    throw Error(kind, s);
}

const char* error_kind_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::kBadInput: return "bad input";
        case ErrorKind::kNotFound: return "not found";
        case ErrorKind::kResource: return "resource";
        case ErrorKind::kInternal: return "internal";
    }
    return "internal";
}

ErrorKind error_kind_of(const std::exception& e) {
    if (const auto* err = dynamic_cast<const Error*>(&e)) return err->kind();
    if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return ErrorKind::kResource;
    return ErrorKind::kInternal;
}

}  // namespace llmforge
