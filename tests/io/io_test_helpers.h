// Helpers shared by the io tests: asserting on llmforge::Error messages, writing byte strings to
// files, and building GGUF bytes by hand (for malformed-input tests).
#pragma once

#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace llmforge::test {

// Runs f, expects an llmforge::Error whose message is one line and contains every substring.
// Returns the message ("" if none was thrown). Other exception types propagate (test fails).
template <class F>
std::string expect_error(F&& f, std::initializer_list<std::string> subs, const char* file,
                         int line) {
    ::testing::ScopedTrace trace(file, line, "expect_error");
    try {
        f();
    } catch (const llmforge::Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(m.find('\n'), std::string::npos) << "message is not one line: " << m;
        EXPECT_FALSE(m.empty());
        for (const std::string& s : subs) {
            EXPECT_NE(m.find(s), std::string::npos) << "missing '" << s << "' in: " << m;
        }
        return m;
    }
    ADD_FAILURE() << "expected llmforge::Error, nothing was thrown";
    return "";
}
#define EXPECT_LF_ERROR(stmt, ...) \
    ::llmforge::test::expect_error([&] { (void)(stmt); }, __VA_ARGS__, __FILE__, __LINE__)

// n pseudo-random bytes from a seed (reproducible test payloads).
inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(f.good()) << path;
}

// Little-endian byte builder.
struct Bytes {
    std::string b;
    template <class T>
    Bytes& pod(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof(T));
        return *this;
    }
    Bytes& u8(uint8_t v) { return pod(v); }
    Bytes& u32(uint32_t v) { return pod(v); }
    Bytes& i32(int32_t v) { return pod(v); }
    Bytes& u64(uint64_t v) { return pod(v); }
    Bytes& f32(float v) { return pod(v); }
    Bytes& raw(const std::string& s) {
        b += s;
        return *this;
    }
    // GGUF string: u64 length + bytes.
    Bytes& str(const std::string& s) {
        u64(s.size());
        return raw(s);
    }
    Bytes& zeros(size_t n) {
        b.append(n, '\0');
        return *this;
    }
    Bytes& pad_to(size_t align) {
        while (b.size() % align) b += '\0';
        return *this;
    }
    // GGUF fixed header.
    static Bytes gguf(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        Bytes x;
        x.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
        return x;
    }
    // GGUF kv with a u32 value / string value.
    Bytes& kv_u32(const std::string& k, uint32_t v) { return str(k).u32(4).u32(v); }
    Bytes& kv_str(const std::string& k, const std::string& v) { return str(k).u32(8).str(v); }
    // GGUF tensor info; dims fastest-first as on disk.
    Bytes& tensor(const std::string& name, std::initializer_list<uint64_t> dims, uint32_t type,
                  uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(dims.size()));
        for (uint64_t d : dims) u64(d);
        return u32(type).u64(offset);
    }
};

}  // namespace llmforge::test
