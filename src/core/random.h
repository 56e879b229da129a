// The project's one source of reproducible randomness: splitmix64 (Steele, Lea & Flood 2014) and
// Box-Muller normals over it. std:: distributions are implementation-defined, so weights, data
// order, dropout masks and synthetic corpora built from these are the same on every machine.
//
// Thread safety: the functions are pure; a Gaussian belongs to one thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>

namespace llmforge {

// splitmix64's golden-ratio increment (2^64 / phi, odd).
inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

// splitmix64's finaliser: a bijective 64-bit mix (counter-based hashing: mix64(seed + k·gamma)).
inline constexpr uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// One splitmix64 step: advances state by the golden gamma and returns the mixed value.
inline uint64_t splitmix64(uint64_t& state) { return mix64(state += kGoldenGamma); }

// The start of a named stream: FNV-1a of the name mixed with the seed, so that every tensor (or
// adapter matrix) draws its own numbers whatever else is initialised.
inline uint64_t name_seed(std::string_view name, uint64_t seed) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
    return h ^ (seed * kGoldenGamma);
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform53(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// Counter-based uniform in [0, 1) with 24 bits: splitmix64 of (seed, index). The same (seed,
// index) gives the same number on every machine and thread split (dropout masks, recomputed in
// backward rather than stored).
inline float uniform01(uint64_t seed, uint64_t i) {
    return static_cast<float>(mix64(seed + kGoldenGamma * (i + 1)) >> 40) * (1.0f / 16777216.0f);
}

// Bounded draws over splitmix64 written out (std:: distributions are implementation-defined), for
// synthetic corpora and data generators: range is next() mod the span (its tiny bias is part of
// the corpora's definition).
class Draws {
public:
    explicit Draws(uint64_t seed) : s_(seed) {}
    uint64_t next() { return splitmix64(s_); }
    int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
    bool chance(int percent) { return range(0, 99) < percent; }
    template <class V>
    const auto& pick(const V& v) {
        return v[next() % v.size()];
    }

private:
    uint64_t s_;
};

// Deterministic N(0, 1) draws: Box-Muller over splitmix64, two normals per pair of draws.
class Gaussian {
public:
    explicit Gaussian(uint64_t seed) : s_(seed) {}
    double next() {
        if (have_) {
            have_ = false;
            return spare_;
        }
        const double u1 = (static_cast<double>(splitmix64(s_) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = uniform53(splitmix64(s_));
        const double r = std::sqrt(-2.0 * std::log(u1));
        spare_ = r * std::sin(2 * std::numbers::pi * u2);
        have_ = true;
        return r * std::cos(2 * std::numbers::pi * u2);
    }

private:
    uint64_t s_;
    bool have_ = false;
    double spare_ = 0;
};

}  // namespace llmforge
