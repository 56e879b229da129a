// Shared by the kernel tests (kernels_test, quants_legacy_test, quants_kextra_test): the tables
// to compare, random inputs, and minimal readers for the llama.cpp-written fixtures in
// tests/data/quant/ (GGUF files, the legacy imatrix.dat, dequant_ref.bin). The readers are
// minimal on purpose: the kernels layer's tests link nothing above it (no io, no runtime), and
// the fixtures are trusted files, so a malformed one only has to fail loudly, not gracefully.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/kernels.h"
#include "test_util.h"

#if defined(LLMFORGE_HAVE_AVX512_EMU)
#include "kernels/avx512_emu.h"
#endif

namespace llmforge::kernels::qfix {

inline int at(DType t) { return static_cast<int>(t); }
inline const KernelTable& ref() { return *kernels_for(Isa::kScalar); }

// The SIMD tables this CPU runs. AVX2 must be among them whenever CPUID reports it.
inline std::vector<const KernelTable*> simd_tables() {
    std::vector<const KernelTable*> out;
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
        if (const KernelTable* t = kernels_for(isa)) out.push_back(t);
    }
#if defined(LLMFORGE_HAVE_AVX512_EMU)
    // The AVX-512 table's code under SIMDe (traces name it "avx512" too).
    if (const KernelTable* e = avx512_emulated_table()) out.push_back(e);
#endif
    return out;
}

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

inline std::string fixture(const std::string& name) { return test::src_path("tests/data/quant/" + name); }

inline std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f.good()) throw std::runtime_error("cannot open " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Little-endian fields in order, with bounds checks.
struct Reader {
    const std::vector<uint8_t>& b;
    size_t p = 0;
    template <class T>
    T get() {
        if (p + sizeof(T) > b.size()) throw std::runtime_error("truncated");
        T v;
        std::memcpy(&v, b.data() + p, sizeof(T));
        p += sizeof(T);
        return v;
    }
    std::string bytes(size_t n) {
        if (p + n > b.size()) throw std::runtime_error("truncated string");
        std::string s(reinterpret_cast<const char*>(b.data() + p), n);
        p += n;
        return s;
    }
    std::string str() { return bytes(get<uint64_t>()); }
    void skip_value(uint32_t type) {
        static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        if (type == 8) {
            str();
        } else if (type == 9) {
            const auto et = get<uint32_t>();
            const auto n = get<uint64_t>();
            for (uint64_t i = 0; i < n; ++i) skip_value(et);
        } else if (type < 13) {
            p += kSize[type];
        } else {
            throw std::runtime_error("bad gguf value type");
        }
    }
};

// ---------------------------------------------------------------- GGUF

struct GgufTensor {
    uint32_t type = 0;
    std::vector<int64_t> ne;  // fastest first: ne[0] is the row length
    const uint8_t* data = nullptr;
};

struct Gguf {
    std::vector<uint8_t> bytes;
    std::map<std::string, GgufTensor> tensors;
};

inline Gguf read_gguf(const std::string& path) {
    Gguf g;
    g.bytes = slurp(path);
    Reader r{g.bytes};
    if (g.bytes.size() < 4 || std::memcmp(g.bytes.data(), "GGUF", 4) != 0) throw std::runtime_error("not gguf: " + path);
    r.p = 4;
    r.get<uint32_t>();  // version
    const auto n_tensors = r.get<int64_t>();
    const auto n_kv = r.get<int64_t>();
    uint64_t alignment = 32;
    for (int64_t i = 0; i < n_kv; ++i) {
        const std::string key = r.str();
        const auto type = r.get<uint32_t>();
        if (key == "general.alignment" && type == 4) {
            alignment = r.get<uint32_t>();
        } else {
            r.skip_value(type);
        }
    }
    std::vector<std::pair<std::string, uint64_t>> offsets;
    for (int64_t i = 0; i < n_tensors; ++i) {
        const std::string name = r.str();
        GgufTensor t;
        const auto nd = r.get<uint32_t>();
        for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(r.get<int64_t>());
        t.type = r.get<uint32_t>();
        offsets.emplace_back(name, r.get<uint64_t>());
        g.tensors[name] = t;
    }
    const size_t data0 = (r.p + alignment - 1) / alignment * alignment;
    for (auto& [name, off] : offsets) g.tensors[name].data = g.bytes.data() + data0 + off;
    return g;
}

// ---------------------------------------------------------------- legacy imatrix

// llama.cpp's legacy imatrix.dat (examples/imatrix): int32 n_entries, then per entry int32 name
// length, the name, int32 ncall, int32 nval, nval floats; llama-quantize divides the values by
// ncall (examples/quantize/quantize.cpp, load_imatrix) before handing them to the quantiser.
inline std::map<std::string, std::vector<float>> read_imatrix(const std::string& path) {
    const auto bytes = slurp(path);
    Reader r{bytes};
    std::map<std::string, std::vector<float>> out;
    const auto n = r.get<int32_t>();
    for (int32_t i = 0; i < n; ++i) {
        const auto len = r.get<int32_t>();
        std::string name = r.bytes(static_cast<size_t>(len));
        const auto ncall = r.get<int32_t>();
        const auto nval = r.get<int32_t>();
        std::vector<float> v(static_cast<size_t>(nval));
        for (auto& x : v) x = r.get<float>();
        if (ncall > 0) {
            for (auto& x : v) x /= ncall;
        }
        out[name] = std::move(v);
    }
    return out;
}

// ---------------------------------------------------------------- dequant_ref.bin

// Rows of llama.cpp-written fixtures and ggml's to_float of them (make_dequant_ref.c): "LFDQ",
// u32 version 1, u32 count, then per record tag[16], tensor[48], u32 type, n_per_row, row0,
// n_rows, row_bytes, the rows' bytes and n_rows * n_per_row floats.
struct DeqRecord {
    std::string tag, tensor;
    uint32_t type = 0, n_per_row = 0, row0 = 0, n_rows = 0, row_bytes = 0;
    std::vector<uint8_t> data;
    std::vector<float> deq;
};

inline std::vector<DeqRecord> read_dequant_ref() {
    const auto bytes = slurp(fixture("dequant_ref.bin"));
    Reader r{bytes};
    if (bytes.size() < 12 || std::memcmp(bytes.data(), "LFDQ", 4) != 0) throw std::runtime_error("bad dequant_ref.bin");
    r.p = 4;
    if (r.get<uint32_t>() != 1u) throw std::runtime_error("dequant_ref.bin: version is not 1");
    const auto n = r.get<uint32_t>();
    std::vector<DeqRecord> out(n);
    for (auto& d : out) {
        auto fixed = [&](size_t w) {
            const std::string s = r.bytes(w);
            return s.substr(0, s.find('\0'));
        };
        d.tag = fixed(16);
        d.tensor = fixed(48);
        d.type = r.get<uint32_t>();
        d.n_per_row = r.get<uint32_t>();
        d.row0 = r.get<uint32_t>();
        d.n_rows = r.get<uint32_t>();
        d.row_bytes = r.get<uint32_t>();
        const size_t data_bytes = size_t{d.n_rows} * d.row_bytes;
        if (r.p + data_bytes > bytes.size()) throw std::runtime_error("dequant_ref.bin: truncated");
        d.data.assign(bytes.begin() + static_cast<long>(r.p), bytes.begin() + static_cast<long>(r.p + data_bytes));
        r.p += data_bytes;
        d.deq.resize(size_t{d.n_rows} * d.n_per_row);
        for (auto& v : d.deq) v = r.get<float>();
    }
    return out;
}

}  // namespace llmforge::kernels::qfix
