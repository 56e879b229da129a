// decode(encode(x)) == x on a few megabytes of varied text, for every reversible vocabulary we
// have (SentencePiece and byte-level BPE, from GGUF and from tokenizer.json): English, code, CJK,
// emoji, combining marks, runs of every kind of whitespace, digits, and ill-formed UTF-8 (lone
// continuation bytes, cut-off sequences, overlong forms, surrogates, 0xFF), which must be
// carried through byte for byte, never crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/tokenizer.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

// Pieces of text to mix: well-formed ones first, then ill-formed UTF-8 (kFirstIllFormed on).
const std::vector<std::string>& pieces() {
    static const std::vector<std::string> kPieces = {
        // English prose
        "The quick brown fox jumps over the lazy dog. ", "It's a test, isn't it? ",
        "Once upon a time, there was a little girl named Lily.", "HELLO World!!! ", "e.g. 3.14159",
        "\"quoted\" and 'single' (paren) [bracket] {brace} ", "state-of-the-art; re-enter: ",
        // code
        "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }\n",
        "#include <vector>\n", "if x != None and y >= 10:\n\tpass\n", "a->b::c<<=1 && d||e",
        "console.log(`${name}`);\r\n", "SELECT * FROM t WHERE id=42;", "0x1F 1e-5 1_000_000 ",
        // CJK, Korean, Arabic, Hindi, Cyrillic, Greek
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xE3\x80\x82",
        "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF",
        "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7",
        "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",
        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "\xCE\x93\xCE\xB5\xCE\xB9\xCE\xAC",
        // emoji (4-byte, ZWJ sequences, skin tones, flags)
        "\xF0\x9F\x98\x80", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
        "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",
        // combining marks, NFD vs NFC
        "e\xCC\x81", "\xC3\xA9", "A\xCC\x8A\xCC\xA3",
        // whitespace runs: spaces, tabs, newlines, CR LF, NBSP, ideographic space, line separator
        " ", "  ", "     ", "\t", "\t\t", "\n", "\n\n\n", "\r\n", " \n ", "\xC2\xA0", "\xE3\x80\x80",
        "\xE2\x80\xA8", "\xE2\x80\x8B",
        // digits
        "0", "12", "123456789", "3,000,000", std::string("\0", 1),
        // ill-formed UTF-8
        "\x80", "\xBF\xBF", "\xC3", "\xE4\xBD", "\xF0\x9F\x98", "\xC0\xAF", "\xE0\x80\xAF",
        "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF", "\xFE\xFF",
    };
    return kPieces;
}
constexpr size_t kIllFormedPieces = 11;

// Deterministic mixed text of about `bytes` bytes (std::mt19937 is specified exactly by the
// standard; only its raw output is used, no distributions, so the text is the same everywhere).
std::string varied_text(size_t bytes, uint32_t seed, bool ill_formed) {
    const auto& p = pieces();
    const size_t n = ill_formed ? p.size() : p.size() - kIllFormedPieces;
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(bytes + 64);
    while (s.size() < bytes) s += p[rng() % n];
    return s;
}

// The bytes the vocabulary cannot stand for on their own (no byte token, no byte-level BPE
// character).
std::vector<bool> unrepresentable_bytes(const Tokenizer& tok) {
    std::vector<bool> u(256);
    for (int b = 0; b < 256; ++b) {
        const std::string s(1, static_cast<char>(b));
        u[b] = tok.decode(tok.encode(s, false, false)) != s;
    }
    return u;
}

std::string without_bytes(const std::string& s, const std::vector<bool>& drop) {
    std::string out;
    for (char c : s)
        if (!drop[static_cast<unsigned char>(c)]) out += c;
    return out;
}

void expect_same(const std::string& back, const std::string& text, const char* what) {
    ASSERT_EQ(back.size(), text.size()) << what;
    EXPECT_TRUE(back == text) << what << ": first difference at byte "
                              << std::mismatch(back.begin(), back.end(), text.begin()).first -
                                     back.begin();
}

struct Source {
    const char* name;
    const char* gguf;       // llama.cpp-vocab/<gguf>, or nullptr
    const char* hf_folder;  // hf-tokenizers/<folder>/, or nullptr
};

const Source kSources[] = {
    {"llama-spm", "ggml-vocab-llama-spm.gguf", nullptr},
    {"phi-3", "ggml-vocab-phi-3.gguf", nullptr},
    {"gpt-2", "ggml-vocab-gpt-2.gguf", nullptr},
    {"starcoder", "ggml-vocab-starcoder.gguf", nullptr},
    {"falcon", "ggml-vocab-falcon.gguf", nullptr},
    {"deepseek-llm", "ggml-vocab-deepseek-llm.gguf", nullptr},
    {"gpt-neox", "ggml-vocab-gpt-neox.gguf", nullptr},
    {"baichuan", "ggml-vocab-baichuan.gguf", nullptr},
    {"llama3", nullptr, "llama3"},
    {"qwen3", nullptr, "qwen3"},
    {"deepseek-v3", nullptr, "deepseek-v3"},
};

class RoundTrip : public ::testing::TestWithParam<Source> {};

TEST_P(RoundTrip, DecodeEncodeIsIdentityOnMegabytes) {
    const Source& src = GetParam();
    Vocab vocab;
    if (src.gguf) {
        LF_REQUIRE_ASSET(path, std::string("llama.cpp-vocab/") + src.gguf);
        vocab = test::load_gguf_vocab(path);
    } else {
        LF_REQUIRE_HF_TOKENIZER(dir, src.hf_folder);
        vocab = hf_tokenizer_json_load(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
    }
    auto tok = Tokenizer::create(vocab);
    // Well-formed UTF-8 comes back exactly.
    const std::string text = varied_text(size_t{2} << 20, 12345, false);
    const std::vector<int32_t> ids = tok->encode(text, false, false);
    EXPECT_GT(ids.size(), text.size() / 16) << src.name;
    expect_same(tok->decode(ids), text, src.name);
    // With ill-formed bytes mixed in: every byte comes back except those the vocabulary has no
    // way to stand for (falcon has no token for some control bytes, several byte-level
    // vocabularies none for 0xC0, 0xC1, 0xF5..0xFF); those drop out, as in Hugging Face.
    const std::vector<bool> unrep = unrepresentable_bytes(*tok);
    const std::string mixed = varied_text(size_t{2} << 20, 777, true);
    expect_same(tok->decode(tok->encode(mixed, false, false)), without_bytes(mixed, unrep),
                src.name);
    // Small pieces too: the start and the end of the text are where prefix rules bite.
    for (size_t len : {1, 2, 3, 7, 100}) {
        for (uint32_t seed = 1; seed <= 50; ++seed) {
            const std::string t = varied_text(len, seed, false).substr(0, len);
            EXPECT_EQ(tok->decode(tok->encode(t, false, false)), t) << src.name << " seed " << seed;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, RoundTrip, ::testing::ValuesIn(kSources),
                         [](const auto& info) {
                             std::string n = info.param.name;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
}  // namespace llmforge
