// Internal helpers for the file readers in src/io: a bounds-checked little-endian cursor over
// untrusted bytes, overflow-checked size arithmetic, and quoting of untrusted text for one-line
// error messages. Not part of the public io API.
//
// Invariant: ByteReader never reads outside [data, data + size); every failed bound check throws
// llmforge::Error naming the source, what was being read, the offset, and the sizes involved.
// Thread safety: a ByteReader is a cursor; use one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.h"

namespace llmforge::io_detail {

// `s` made safe for a one-line message: printable ASCII kept, everything else as \xHH, and cut
// to `max` bytes of input with "..." appended.
inline std::string printable(std::string_view s, size_t max = 80) {
    static const char* kHex = "0123456789abcdef";
    std::string out;
    const size_t n = s.size() < max ? s.size() : max;
    out.reserve(n + 8);
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

// 'name' made printable, in single quotes (for tensor names and keys in messages).
inline std::string quote_name(std::string_view s) {
    std::string q(1, '\'');  // appended piecewise: GCC 12 -Wrestrict false positive on "x" + str
    q += printable(s);
    q += '\'';
    return q;
}

// a + b and a * b on sizes; false on overflow.
inline bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
inline bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
// Rounds x up to a multiple of `align` (a power of two); false on overflow.
inline bool align_up_ok(uint64_t x, uint64_t align, uint64_t* out) {
    uint64_t t;
    if (!add_ok(x, align - 1, &t)) return false;
    *out = t & ~(align - 1);
    return true;
}

class ByteReader {
public:
    ByteReader(const uint8_t* data, size_t size, const std::string& name)
        : data_(data), size_(size), name_(name) {}

    size_t pos() const { return pos_; }
    size_t size() const { return size_; }
    size_t remaining() const { return size_ - pos_; }
    const std::string& name() const { return name_; }

    // Throws the "truncated" error unless n more bytes are available.
    void need(uint64_t n, const char* what) const {
        if (n > remaining()) {
            fail("%s: file ends inside %s at offset %zu: expected at least %llu bytes, file has %zu "
                 "(truncated?)",
                 name_.c_str(), what, pos_,
                 static_cast<unsigned long long>(n > UINT64_MAX - pos_ ? UINT64_MAX : pos_ + n),
                 size_);
        }
    }

    template <class T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));  // host is little-endian (x86-64 / aarch64)
        pos_ += sizeof(T);
        return v;
    }

    std::string_view read_bytes(uint64_t n, const char* what) {
        need(n, what);
        std::string_view v(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        return v;
    }

    const uint8_t* here() const { return data_ + pos_; }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& name_;
};

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "llmforge io assumes a little-endian host");

}  // namespace llmforge::io_detail
