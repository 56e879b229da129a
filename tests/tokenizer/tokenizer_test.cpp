// Tokenizer: the factory, vocabulary validation, id checks, and megabyte inputs (which must
// not go quadratic; no time is asserted: see bench/ for numbers).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "test_util.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

// Expects an Error whose message contains every one of `parts` and is one line.
template <typename F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
    try {
        f();
        ADD_FAILURE() << "expected llmforge::Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        for (const char* p : parts) EXPECT_NE(m.find(p), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
}

Vocab small_spm() {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>",
                "<s>",
                "</s>",
                "\xE2\x96\x81",
                "a",
                "\xE2\x96\x81"
                "a"};
    v.scores = {0, 0, 0, -1, -1, -0.5f};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl,
               TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal};
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

TEST(Tokenizer, FactoryRejectsUnsupportedModels) {
    Vocab v = small_spm();
    v.model = "t5";
    expect_error([&] { Tokenizer::create(v); }, {"'t5'", "'llama'", "'gpt2'", "'bert'"});
    v.model = "";
    expect_error([&] { Tokenizer::create(v); }, {"unsupported tokenizer model ''"});
}

TEST(Tokenizer, RejectsInconsistentVocabularies) {
    Vocab v = small_spm();
    v.scores.pop_back();
    expect_error([&] { Tokenizer::create(v); }, {"tokenizer.ggml.scores", "5", "6"});
    v = small_spm();
    v.types.push_back(TokenType::kNormal);
    expect_error([&] { Tokenizer::create(v); }, {"tokenizer.ggml.token_type", "7", "6"});
    v = small_spm();
    v.eos_id = 6;
    expect_error([&] { Tokenizer::create(v); }, {"tokenizer.ggml.eos_token_id", "6"});
    v = small_spm();
    v.tokens.clear();
    v.scores.clear();
    v.types.clear();
    expect_error([&] { Tokenizer::create(v); }, {"no tokens"});
}

TEST(Tokenizer, OutOfRangeIds) {
    auto tok = Tokenizer::create(small_spm());
    EXPECT_EQ(tok->n_vocab(), 6);
    expect_error([&] { tok->token_to_piece(6); }, {"token id 6", "6 tokens"});
    expect_error([&] { tok->token_to_piece(-3); }, {"token id -3"});
    expect_error([&] { tok->decode({5, 99}); }, {"decode", "token id 99", "6 tokens"});
    expect_error([&] { tok->is_eog(1000); }, {"is_eog", "1000"});
    expect_error([&] { tok->token_text(6); }, {"token_text", "6"});
}

TEST(Tokenizer, BosHandling) {
    Vocab v = small_spm();
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("a", true, false), (std::vector<int32_t>{1, 5}));
    EXPECT_EQ(tok->encode("a", false, false), (std::vector<int32_t>{5}));
    v.bos_id = -1;
    v.add_bos = true;
    tok = Tokenizer::create(v);
    EXPECT_FALSE(tok->add_bos_default());
    expect_error([&] { tok->encode("a", true, false); }, {"add_bos", "no BOS"});
}

TEST(Tokenizer, TypesDerivedWhenTheFileHasNone) {
    Vocab v = small_spm();
    v.types.clear();
    v.tokens.push_back("<0x41>");
    v.scores.push_back(0);
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->token_type(1), TokenType::kControl);
    EXPECT_EQ(tok->token_type(0), TokenType::kUnknown);
    EXPECT_EQ(tok->token_type(6), TokenType::kByte);
    EXPECT_EQ(tok->token_to_piece(6), "A");
    EXPECT_EQ(tok->token_to_piece(1), "");
    EXPECT_TRUE(tok->is_eog(2));
}

// ~1 MiB of mixed text: English, digits, CJK, emoji, code, whitespace runs.
std::string megabyte_text() {
    const std::string chunk =
        "Once upon a time, 1234567 little girls named Lily\xE2\x80\x99s went to the park.\n"
        "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\xA6\x99\xF0\x9F\x98\x81 "
        "def f(x):\n\treturn x ** 2  # comment\n\n    \n";
    std::string s;
    while (s.size() < (1u << 20)) s += chunk;
    return s;
}

void encode_megabytes(const std::string& rel) {
    LF_REQUIRE_ASSET(path, rel);
    auto tok = Tokenizer::create(test::load_gguf_vocab(path));
    for (const std::string& text : {megabyte_text(), std::string(1 << 20, 'a'),
                                    std::string(1 << 20, ' '), std::string(1 << 18, '7'), [] {
                                        std::string s;
                                        while (s.size() < (1u << 20))
                                            s += "\xE9\xBE\x98\xF0\x9F\xA6\x99";
                                        return s;
                                    }()}) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto ids = tok->encode(text, false, false);
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        std::printf("[info] %s: %zu bytes -> %zu tokens in %.0f ms\n", rel.c_str(), text.size(),
                    ids.size(), ms);
        EXPECT_FALSE(ids.empty());
        EXPECT_EQ(tok->decode(ids), text);
    }
}

TEST(Tokenizer, MegabyteInputSpm) {
    encode_megabytes("llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
}
TEST(Tokenizer, MegabyteInputByteLevel) {
    encode_megabytes("llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
}
TEST(Tokenizer, MegabyteInputDeepseek) {
    encode_megabytes("llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf");
}

TEST(Tokenizer, ConcurrentEncodeAgrees) {
    LF_REQUIRE_ASSET(path, "llama.cpp-vocab/ggml-vocab-starcoder.gguf");
    auto tok = Tokenizer::create(test::load_gguf_vocab(path));
    const std::string text = megabyte_text().substr(0, 1 << 16);
    const auto want = tok->encode(text, false, true);
    std::vector<std::vector<int32_t>> got(4);
    std::vector<std::thread> threads;
    for (auto& g : got) threads.emplace_back([&] { g = tok->encode(text, false, true); });
    for (auto& t : threads) t.join();
    for (const auto& g : got) EXPECT_EQ(g, want);
}

}  // namespace
}  // namespace llmforge
