// Pre-tokenizer presets: splitting semantics, names, errors.
#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace llmforge {
namespace {

std::vector<std::string> split(const std::string& pre, const std::string& text) {
    PreTokenizer p(pre_tokenizer_preset(pre).regexes);
    std::vector<std::string_view> v;
    p.split(text, v);
    std::string joined;
    std::vector<std::string> out;
    for (auto s : v) {
        EXPECT_FALSE(s.empty());
        joined += s;
        out.emplace_back(s);
    }
    EXPECT_EQ(joined, text);
    return out;
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
    EXPECT_EQ(split("gpt-2", "Hello world's  end!!\n"),
              (V{"Hello", " world", "'s", " ", " end", "!!", "\n"}));
    EXPECT_EQ(split("gpt-2", "x 12345"), (V{"x", " 12345"}));
    EXPECT_TRUE(split("gpt-2", "").empty());
}

TEST(PreTokenizer, Llama3AndQwen2Digits) {
    EXPECT_EQ(split("llama-bpe", "1234567"), (V{"123", "456", "7"}));
    EXPECT_EQ(split("qwen2", "123"), (V{"1", "2", "3"}));
    EXPECT_EQ(split("llama3", "I'M here\n\n  x"), (V{"I", "'M", " here", "\n\n", " ", " x"}));
    EXPECT_TRUE(pre_tokenizer_preset("llama3").ignore_merges);
    EXPECT_FALSE(pre_tokenizer_preset("qwen2").ignore_merges);
}

TEST(PreTokenizer, ListsApplyInTurn) {
    // starcoder: digits split first, then the GPT-2 regex inside the pieces.
    EXPECT_EQ(split("starcoder", "a 42"), (V{"a", " ", "4", "2"}));
    // deepseek-llm: "\s+$" only at the very end of a piece, even before a final newline.
    EXPECT_EQ(split("deepseek-llm", "ab  \n"), (V{"ab", "  ", "\n"}));
}

TEST(PreTokenizer, UnicodeCategories) {
    // \p{L} covers Cyrillic and CJK; an emoji is neither letter nor number.
    EXPECT_EQ(split("gpt-2", "\xD0\xBD\xD0\xB0 \xF0\x9F\xA6\x99x"),
              (V{"\xD0\xBD\xD0\xB0", " \xF0\x9F\xA6\x99", "x"}));
}

TEST(PreTokenizer, BloomTekkenChameleon) {
    EXPECT_EQ(split("bloom", "Hello, world! ok."), (V{"Hello", ",", " world", "!", " ok", "."}));
    EXPECT_EQ(split("viking", "ab12 c"), (V{"ab", "1", "2", " c"}));
    // tekken splits camel case: an upper-case run may start a word, lower case ends it.
    EXPECT_EQ(split("tekken", "HelloWorld XMLHttp"), (V{"Hello", "World", " XMLHttp"}));
    EXPECT_TRUE(pre_tokenizer_preset("tekken").ignore_merges);
    // Later regexes split the pieces of earlier ones (as in llama.cpp); sentinel tokens are
    // added tokens, matched before pre-tokenization ever sees them.
    EXPECT_EQ(split("chameleon", "<sentinel:3>a 1"), (V{"<", "sentinel", ":", "3", ">", "a", " ", "1"}));
}

TEST(PreTokenizer, NamesAndErrors) {
    const auto names = pre_tokenizer_names();
    // Every tokenizer.ggml.pre value llama.cpp (c392e5094) knows, so every GGUF it reads.
    for (const char* n :
         {"bloom", "chameleon", "chatglm-bpe", "codeshell", "command-r", "dbrx", "deepseek-coder",
          "deepseek-llm", "deepseek-r1-qwen", "deepseek-v3", "default", "exaone", "falcon",
          "falcon3", "gigachat", "gpt-2", "gpt3-finnish", "jais", "jina-de", "jina-es",
          "jina-v1-en", "jina-v2-code", "jina-v2-de", "jina-v2-es", "llama-bpe", "llama-v3",
          "llama3", "megrez", "minerva-7b", "mpt", "olmo", "phi-2", "poro-chat", "qwen2",
          "refact", "roberta-bpe", "smaug-bpe", "smollm", "stablelm2", "starcoder", "tekken",
          "viking"}) {
        EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
        EXPECT_NO_THROW(PreTokenizer(pre_tokenizer_preset(n).regexes)) << n;
    }
    EXPECT_EQ(pre_tokenizer_preset("").name, "default");
    try {
        pre_tokenizer_preset("tekken9");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("'tekken9'"), std::string::npos) << m;
        EXPECT_NE(m.find("qwen2"), std::string::npos) << m;
    }
    EXPECT_THROW(PreTokenizer({"(unclosed"}), Error);
}

TEST(PreTokenizer, LongRunsDoNotBlowTheStack) {
    const std::string spaces(1 << 20, ' ');
    auto v = split("gpt-2", spaces + "x");
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1], " x");
}

}  // namespace
}  // namespace llmforge
