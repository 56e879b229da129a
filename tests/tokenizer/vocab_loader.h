// Test-only readers that fill a llmforge::Vocab: the tokenizer.ggml.* keys of a (vocab-only)
// GGUF file, and llama2.c tok*.bin files; plus the llama.cpp test-vector files (.inp/.out).
// Deliberately minimal and header-only (the CMake glob only builds *_test.cpp); the engine's
// real GGUF reader lives in src/io/.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer/vocab.h"

namespace llmforge::test {

inline std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Little-endian cursor over a byte buffer; throws on reading past the end.
class ByteReader {
  public:
    explicit ByteReader(const std::string& data) : data_(data.begin(), data.end()) {}
    template <typename T>
    T get() {
        T v;
        need(sizeof(T));
        std::memcpy(&v, data_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string bytes(uint64_t n) {
        need(n);
        std::string s(data_.data() + pos_, n);
        pos_ += n;
        return s;
    }
    void skip(uint64_t n) {
        need(n);
        pos_ += n;
    }
    bool at_end() const { return pos_ >= data_.size(); }

  private:
    void need(uint64_t n) const {
        if (n > data_.size() - pos_) throw std::runtime_error("unexpected end of file");
    }
    std::vector<char> data_;  // not std::string: GCC 12 misreports its SSO buffer as unset
    size_t pos_ = 0;
};

// GGUF v2/v3 metadata -> Vocab. Reads strings, bool/u32/i32 scalars and arrays of
// strings/f32/i32; skips every other value.
inline Vocab load_gguf_vocab(const std::string& path) {
    enum : uint32_t {
        kU8 = 0,
        kI8,
        kU16,
        kI16,
        kU32,
        kI32,
        kF32,
        kBool,
        kString,
        kArray,
        kU64,
        kI64,
        kF64
    };
    auto scalar_size = [](uint32_t t) -> uint64_t {
        switch (t) {
            case kU8:
            case kI8:
            case kBool:
                return 1;
            case kU16:
            case kI16:
                return 2;
            case kU32:
            case kI32:
            case kF32:
                return 4;
            case kU64:
            case kI64:
            case kF64:
                return 8;
            default:
                throw std::runtime_error("gguf: unknown value type " + std::to_string(t));
        }
    };
    ByteReader r(slurp(path));
    if (r.bytes(4) != "GGUF") throw std::runtime_error(path + ": not a GGUF file");
    const auto version = r.get<uint32_t>();
    if (version < 2) throw std::runtime_error(path + ": GGUF v1 is not supported");
    r.get<uint64_t>();  // n_tensors
    const auto n_kv = r.get<uint64_t>();
    auto str = [&] { return r.bytes(r.get<uint64_t>()); };

    Vocab v;
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string key = str();
        const auto type = r.get<uint32_t>();
        if (type == kString) {
            std::string s = str();
            if (key == "tokenizer.ggml.model")
                v.model = s;
            else if (key == "tokenizer.ggml.pre")
                v.pre = s;
            else if (key == "tokenizer.chat_template")
                v.chat_template = s;
        } else if (type == kArray) {
            const auto et = r.get<uint32_t>();
            const auto n = r.get<uint64_t>();
            if (et == kString) {
                std::vector<std::string> a;
                a.reserve(n);
                for (uint64_t k = 0; k < n; ++k) a.push_back(str());
                if (key == "tokenizer.ggml.tokens")
                    v.tokens = std::move(a);
                else if (key == "tokenizer.ggml.merges")
                    v.merges = std::move(a);
            } else if (et == kF32 && key == "tokenizer.ggml.scores") {
                v.scores.resize(n);
                for (uint64_t k = 0; k < n; ++k) v.scores[k] = r.get<float>();
            } else if (et == kI32 && key == "tokenizer.ggml.token_type") {
                v.types.resize(n);
                for (uint64_t k = 0; k < n; ++k)
                    v.types[k] = static_cast<TokenType>(r.get<int32_t>());
            } else if (et == kArray) {
                throw std::runtime_error("gguf: nested arrays are not supported (key " + key + ")");
            } else {
                r.skip(scalar_size(et) * n);
            }
        } else if (type == kU32 || type == kI32) {
            const auto x = r.get<int32_t>();
            if (key == "tokenizer.ggml.bos_token_id")
                v.bos_id = x;
            else if (key == "tokenizer.ggml.eos_token_id")
                v.eos_id = x;
            else if (key == "tokenizer.ggml.unknown_token_id")
                v.unk_id = x;
            else if (key == "tokenizer.ggml.padding_token_id")
                v.pad_id = x;
        } else if (type == kBool) {
            const bool b = r.get<uint8_t>() != 0;
            if (key == "tokenizer.ggml.add_bos_token")
                v.add_bos = b;
            else if (key == "tokenizer.ggml.add_eos_token")
                v.add_eos = b;
            else if (key == "tokenizer.ggml.add_space_prefix")
                v.add_space_prefix = b;
        } else {
            r.skip(scalar_size(type));
        }
    }
    return v;
}

// llama2.c tok*.bin -> Vocab (n_vocab < 0: every entry in the file) ("llama" model): int32
// max_token_length, then per token f32 score, int32 length, bytes. llama2.c stores SentencePiece
// pieces with ' ' for "▁" and BOS/EOS as
// "\n<s>\n" / "\n</s>\n"; ids 0, 1, 2 are unk, BOS, EOS; "<0xHH>" pieces are byte tokens.
inline Vocab load_llama2c_vocab(const std::string& path, int32_t n_vocab = -1) {
    ByteReader r(slurp(path));
    r.get<int32_t>();  // max_token_length
    Vocab v;
    v.model = "llama";
    for (int32_t i = 0; n_vocab < 0 ? !r.at_end() : i < n_vocab; ++i) {
        v.scores.push_back(r.get<float>());
        const auto len = r.get<int32_t>();
        std::string t = r.bytes(static_cast<uint64_t>(len));
        std::string piece;
        for (char c : t) {
            if (c == ' ')
                piece += "\xE2\x96\x81";
            else
                piece += c;
        }
        TokenType type = TokenType::kNormal;
        if (i == 0) {
            type = TokenType::kUnknown;
        } else if (i == 1 || i == 2) {
            type = TokenType::kControl;
            piece = i == 1 ? "<s>" : "</s>";
        } else if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>') {
            type = TokenType::kByte;
        }
        v.tokens.push_back(piece);
        v.types.push_back(type);
    }
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

// llama.cpp vocab test vectors: NAME.gguf.inp strings and NAME.gguf.out id lines.
inline std::vector<std::string> read_vocab_test_inputs(const std::string& path) {
    const std::string data = slurp(path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    for (size_t k; (k = data.find(sep, pos)) != std::string::npos; pos = k + sep.size()) {
        out.push_back(data.substr(pos, k - pos));
    }
    return out;  // the piece after the last separator is empty and dropped
}

inline std::vector<std::vector<int32_t>> read_vocab_test_outputs(const std::string& path) {
    std::istringstream in(slurp(path));
    std::vector<std::vector<int32_t>> out;
    for (std::string line; std::getline(in, line);) {
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        out.push_back(std::move(ids));
    }
    return out;
}

}  // namespace llmforge::test
