// Shared test helpers: where the reference assets live, skipping when they are absent.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace llmforge::test {

// ../shared/assets relative to the source root, or $LLMFORGE_ASSETS. Empty if not found.
std::string assets_dir();
// Path of an asset, or "" (LF_REQUIRE_ASSET skips the test then).
std::string asset(const std::string& rel);
// A fresh temporary directory for this test (removed at process exit is not guaranteed).
std::string temp_dir();
// Path of the built CLI ($LLMFORGE_BIN).
std::string cli_path();
// `rel` under the source root ($LLMFORGE_SRC, else ".").
std::string src_path(const std::string& rel);
// Runs a shell command, returns exit status; stdout captured into *out if non-null.
int run_command(const std::string& cmd, std::string* out = nullptr);
std::string read_file(const std::string& path);
// Runs `fn` on a thread with a `stack_bytes` stack, so a test proves its recursion is bounded
// (the default 8 MiB would hide a few thousand levels); an exception escaping `fn` is a failure.
void on_small_stack(size_t stack_bytes, const std::function<void()>& fn);
void write_file(const std::string& path, const std::string& data);
// A fresh folder holding hf-tokenizers/<name>/tokenizer.json (decompressed) and its
// tokenizer_config.json, or "" when the asset is missing (use LF_REQUIRE_HF_TOKENIZER).
std::string hf_tokenizer_folder(const std::string& name);

// n values ~ N(0, sd²), a pure function of the seed.
inline std::vector<float> randn(size_t n, uint64_t seed, float sd) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (float& x : v) x = d(g);
    return v;
}

// max |a - b| / max |b| (the relative error of a against a reference b).
template <class Ref>
double rel_err(const float* a, const Ref* b, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; ++i) {
        md = std::max(md, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
        mr = std::max(mr, std::abs(static_cast<double>(b[i])));
    }
    return mr > 0 ? md / mr : md;
}

// The message of what fn throws; "" when it returns.
inline std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace llmforge::test

// Skips (reported as skipped, never passed) when an asset is missing.
#define LF_REQUIRE_ASSET(var, rel)                                                      \
    std::string var = ::llmforge::test::asset(rel);                                     \
    if (var.empty()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << (rel)                 \
                                  << " (set LLMFORGE_ASSETS to the shared assets folder)"

// Skips like LF_REQUIRE_ASSET; `var` is the folder of hf_tokenizer_folder(name).
#define LF_REQUIRE_HF_TOKENIZER(var, name)                                              \
    std::string var = ::llmforge::test::hf_tokenizer_folder(name);                      \
    if (var.empty()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: hf-tokenizers/" << (name)  \
                                  << " (set LLMFORGE_ASSETS to the shared assets folder)"
