// Byte-level BPE: llama.cpp's vectors for gpt-2, starcoder, falcon and deepseek-llm; added
// tokens; ill-formed UTF-8; bad vocabularies.
#include "tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer_vectors.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

void run_named(const std::string& name, const std::string& expected_pre) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/" + name + ".gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/" + name + ".gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/" + name + ".gguf.out");
    auto tok = Tokenizer::create(test::load_gguf_vocab(gguf));
    auto* bpe = dynamic_cast<const BpeTokenizer*>(tok.get());
    ASSERT_NE(bpe, nullptr);
    EXPECT_EQ(bpe->pre_name(), expected_pre);
    const size_t n = test::read_vocab_test_inputs(inp).size();
    EXPECT_EQ(test::run_vocab_vectors(*tok, inp, out, name), n);
}

TEST(BpeTokenizer, Gpt2Vectors) {
    run_named("ggml-vocab-gpt-2", "gpt-2");
}
TEST(BpeTokenizer, StarcoderVectors) {
    run_named("ggml-vocab-starcoder", "starcoder");
}
TEST(BpeTokenizer, FalconVectors) {
    run_named("ggml-vocab-falcon", "falcon");
}
TEST(BpeTokenizer, DeepseekLlmVectors) {
    run_named("ggml-vocab-deepseek-llm", "deepseek-llm");
}

TEST(BpeTokenizer, ByteLevelMap) {
    EXPECT_EQ(byte_to_byte_level(' '), "\xC4\xA0");   // "Ġ"
    EXPECT_EQ(byte_to_byte_level('\n'), "\xC4\x8A");  // "Ċ"
    EXPECT_EQ(byte_to_byte_level('A'), "A");
    for (int b = 0; b < 256; ++b) {
        const std::string& s = byte_to_byte_level(static_cast<uint8_t>(b));
        const uint32_t cp = s.size() == 1 ? static_cast<unsigned char>(s[0])
                                          : ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        EXPECT_EQ(byte_level_to_byte(cp), b);
    }
    EXPECT_EQ(byte_level_to_byte(0x20), -1);
    EXPECT_EQ(byte_level_to_byte(0x4E00), -1);
}

TEST(BpeTokenizer, Gpt2PiecesAndSpecialTokens) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    auto tok = Tokenizer::create(test::load_gguf_vocab(gguf));
    EXPECT_EQ(tok->encode("Hello world", false, false), (std::vector<int32_t>{15496, 995}));
    EXPECT_EQ(tok->token_to_piece(995), " world");
    EXPECT_FALSE(tok->strips_dummy_prefix());
    EXPECT_EQ(tok->decode({15496, 995}), "Hello world");
    const int32_t eot = tok->token_id("<|endoftext|>");
    ASSERT_EQ(eot, 50256);
    EXPECT_TRUE(tok->is_eog(eot));
    EXPECT_EQ(tok->token_to_piece(eot), "");
    EXPECT_EQ(tok->token_to_piece(eot, true), "<|endoftext|>");
    // Control tokens only with parse_special.
    EXPECT_EQ(tok->encode("a<|endoftext|>b", false, true),
              (std::vector<int32_t>{tok->token_id("a"), eot, tok->token_id("b")}));
    const auto plain = tok->encode("a<|endoftext|>b", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
    EXPECT_EQ(tok->decode(plain), "a<|endoftext|>b");
    EXPECT_EQ(tok->decode(tok->encode("a<|endoftext|>b", false, true), true), "a<|endoftext|>b");
    // Any bytes round-trip: ill-formed UTF-8 is encoded byte by byte.
    const std::string bad = "x\xFF\xFE y\xE4\xBD z\xC0\xAF\xED\xA0\x80";
    EXPECT_EQ(tok->decode(tok->encode(bad, false, false)), bad);
    EXPECT_THROW(tok->token_to_piece(50257), Error);
    EXPECT_THROW(tok->decode({1, -1}), Error);
}

TEST(BpeTokenizer, UserDefinedTokensAlwaysMatch) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-starcoder.gguf");
    Vocab v = test::load_gguf_vocab(gguf);
    const int32_t fim = 1;  // <fim_prefix>, a control token
    v.types[fim] = TokenType::kUserDefined;
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("x<fim_prefix>y", false, false),
              (std::vector<int32_t>{tok->token_id("x"), fim, tok->token_id("y")}));
    EXPECT_EQ(tok->token_to_piece(fim), "<fim_prefix>");
}

TEST(BpeTokenizer, LongestAddedTokenWins) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    Vocab v = test::load_gguf_vocab(gguf);
    v.tokens.push_back("<|a|>");
    v.types.push_back(TokenType::kControl);
    v.tokens.push_back("<|a|><|b|>");
    v.types.push_back(TokenType::kControl);
    auto tok = Tokenizer::create(v);
    const int32_t a = tok->token_id("<|a|>"), ab = tok->token_id("<|a|><|b|>");
    EXPECT_EQ(tok->encode("<|a|><|b|><|a|>", false, true), (std::vector<int32_t>{ab, a}));
}

TEST(BpeTokenizer, RejectsBadVocabularies) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    const Vocab good = test::load_gguf_vocab(gguf);
    Vocab v = good;
    v.pre = "no-such-pre";
    try {
        Tokenizer::create(v);
        FAIL() << "expected Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("'no-such-pre'"), std::string::npos) << m;
        EXPECT_NE(m.find("gpt-2"), std::string::npos) << m;
        EXPECT_NE(m.find("llama-bpe"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    v = good;
    v.merges[7] = "nospace";
    EXPECT_THROW(Tokenizer::create(v), Error);
    v = good;
    v.merges[9] = "Ġt zzqx";
    try {
        Tokenizer::create(v);
        FAIL() << "expected Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("merge 9 'Ġt zzqx'"), std::string::npos) << m;
        EXPECT_NE(m.find("'zzqx'"), std::string::npos) << m;
    }
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeWords) {
    // A vocabulary where merges alone cannot build "abc" but the token exists.
    Vocab v;
    v.model = "gpt2";
    v.pre = "llama-bpe";
    for (const char* t : {"a", "b", "c", "ab", "abc"}) v.tokens.push_back(t);
    v.merges = {"a b"};
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{4}));
    v.pre = "gpt-2";
    tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{3, 2}));
}

TEST(BpeTokenizer, LowestRankMergesFirst) {
    Vocab v;
    v.model = "gpt2";
    v.pre = "gpt-2";
    for (const char* t : {"a", "b", "c", "ab", "bc", "abc"}) v.tokens.push_back(t);
    v.merges = {"b c", "a b", "a bc"};
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{5}));
    v.merges = {"a b", "b c"};
    tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{3, 2}));
    // Same pair twice: leftmost first ("aaa" with "a a" -> "aa", "a").
    v.tokens = {"a", "aa"};
    v.merges = {"a a"};
    tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("aaa", false, false), (std::vector<int32_t>{1, 0}));
}

}  // namespace
}  // namespace llmforge
