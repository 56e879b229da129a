// SentencePiece BPE: llama.cpp's vectors for llama-spm and phi-3, llama2.c's tok512 vocabulary,
// merge order, byte and unknown fallback.
#include "tokenizer/spm_tokenizer.h"

#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer_vectors.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

const char* const kVocabDir = "llama.cpp-vocab/";

void run_named(const std::string& name) {
    LF_REQUIRE_ASSET(gguf, kVocabDir + name + ".gguf");
    LF_REQUIRE_ASSET(inp, kVocabDir + name + ".gguf.inp");
    LF_REQUIRE_ASSET(out, kVocabDir + name + ".gguf.out");
    auto tok = Tokenizer::create(test::load_gguf_vocab(gguf));
    ASSERT_NE(dynamic_cast<const SpmTokenizer*>(tok.get()), nullptr);
    const size_t n = test::read_vocab_test_inputs(inp).size();
    EXPECT_EQ(test::run_vocab_vectors(*tok, inp, out, name), n);
}

TEST(SpmTokenizer, LlamaSpmVectors) {
    run_named("ggml-vocab-llama-spm");
}
TEST(SpmTokenizer, Phi3Vectors) {
    run_named("ggml-vocab-phi-3");
}

TEST(SpmTokenizer, LlamaSpmBasics) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    auto tok = Tokenizer::create(test::load_gguf_vocab(gguf));
    EXPECT_EQ(tok->encode("Hello world", false, false), (std::vector<int32_t>{15043, 3186}));
    EXPECT_EQ(tok->encode("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
    EXPECT_TRUE(tok->encode("", false, false).empty());
    EXPECT_EQ(tok->encode("", true, false), (std::vector<int32_t>{1}));
    EXPECT_EQ(tok->bos(), 1);
    EXPECT_EQ(tok->eos(), 2);
    EXPECT_TRUE(tok->is_eog(2));
    EXPECT_FALSE(tok->is_eog(1));
    EXPECT_TRUE(tok->add_bos_default());
    EXPECT_EQ(tok->token_to_piece(15043), " Hello");
    EXPECT_EQ(tok->token_to_piece(1), "");
    EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
    EXPECT_EQ(tok->token_to_piece(0), "");          // <unk>
    EXPECT_EQ(tok->token_to_piece(3 + 0x41), "A");  // <0x41>
    EXPECT_EQ(tok->decode({1, 15043, 3186, 2}), "Hello world");
    EXPECT_EQ(tok->decode({1, 15043, 3186, 2}, true), "<s> Hello world</s>");

    // Control tokens are text unless parse_special; then the dummy prefix follows them.
    const auto plain = tok->encode("<s>Hi", false, false);
    EXPECT_NE(plain.front(), 1);
    const auto parsed = tok->encode("<s>Hi", false, true);
    EXPECT_EQ(parsed, (std::vector<int32_t>{1, tok->token_id("\xE2\x96\x81Hi")}));
    EXPECT_EQ(tok->encode("Hi</s>", false, true).back(), 2);

    // Unknown characters fall back to bytes: U+10348 is no token.
    const auto ids = tok->encode("\xF0\x90\x8D\x88", false, false);
    ASSERT_EQ(ids.size(), 5u);
    EXPECT_EQ(ids[1], 3 + 0xF0);
    EXPECT_EQ(ids[4], 3 + 0x88);
    // Ill-formed UTF-8 survives a round trip byte by byte.
    const std::string bad = "a\xFF\xC3(b\xE4\xBD";
    EXPECT_EQ(tok->decode(tok->encode(bad, false, false)), bad);
}

TEST(SpmTokenizer, DummyPrefixCanBeDisabled) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    Vocab v = test::load_gguf_vocab(gguf);
    v.add_space_prefix = false;
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("Hello", false, false), (std::vector<int32_t>{tok->token_id("Hello")}));
    EXPECT_FALSE(tok->strips_dummy_prefix());
    EXPECT_EQ(tok->decode(tok->encode(" Hello", false, false)), " Hello");
}

// A reference copy of llama2.c's encode(): greedy best-score merges, O(n^2), over codepoint
// tokens with the +3 byte fallback; the dummy prefix is a token of its own.
std::vector<int32_t> llama2c_encode(const Vocab& v, const std::string& text) {
    std::map<std::string, int32_t> ids;
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        std::string t;  // back to llama2.c's spelling: ' ' instead of "▁"
        for (size_t k = 0; k < v.tokens[i].size(); ++k) {
            if (v.tokens[i].compare(k, 3, "\xE2\x96\x81") == 0) {
                t += ' ';
                k += 2;
            } else {
                t += v.tokens[i][k];
            }
        }
        ids.emplace(t, static_cast<int32_t>(i));
    }
    std::vector<int32_t> tokens;
    std::vector<std::string> texts;
    if (!text.empty()) {
        tokens.push_back(ids.at(" "));
        texts.push_back(" ");
    }
    for (size_t i = 0; i < text.size();) {
        size_t len = 1;
        while (i + len < text.size() &&
               (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80 && len < 4) {
            ++len;
        }
        const std::string cp = text.substr(i, len);
        auto it = ids.find(cp);
        if (it != ids.end()) {
            tokens.push_back(it->second);
            texts.push_back(cp);
        } else {
            for (char c : cp) {
                tokens.push_back(static_cast<unsigned char>(c) + 3);
                texts.push_back("\x01");  // byte tokens never merge
            }
        }
        i += len;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_idx = -1;
        for (size_t i = 0; i + 1 < tokens.size(); ++i) {
            auto it = ids.find(texts[i] + texts[i + 1]);
            if (it != ids.end() && v.scores[it->second] > best) {
                best = v.scores[it->second];
                best_id = it->second;
                best_idx = static_cast<int>(i);
            }
        }
        if (best_idx < 0) break;
        tokens[best_idx] = best_id;
        texts[best_idx] += texts[best_idx + 1];
        tokens.erase(tokens.begin() + best_idx + 1);
        texts.erase(texts.begin() + best_idx + 1);
    }
    return tokens;
}

TEST(SpmTokenizer, Llama2cTok512) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/tok512.bin");
    LF_REQUIRE_ASSET(story, "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt");
    const Vocab v = test::load_llama2c_vocab(path);
    ASSERT_EQ(v.tokens.size(), 512u);
    auto tok = Tokenizer::create(v);
    std::vector<std::string> texts = {
        "Once upon a time, there was a little girl named Lily.",
        "She loved to play outside in the park!",
        "  two leading spaces, trailing  ",
        "Lily's mom said, \"Don't worry.\"\nNew line\ttab",
        "Caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\xA6\x99 \xE2\x82\xAC\xE2\x84\xA2",
        test::read_file(story),
    };
    for (const std::string& t : texts) {
        const auto ids = tok->encode(t, true, false);
        ASSERT_FALSE(ids.empty());
        EXPECT_EQ(ids.front(), 1);
        EXPECT_EQ(tok->decode(ids), t);
        EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end()), llama2c_encode(v, t))
            << "differs from llama2.c's encoder on '" << t << "'";
    }
    // "<0x0A>" is the newline byte token (id 3 + 10).
    EXPECT_EQ(tok->token_to_piece(13), "\n");
    EXPECT_EQ(tok->token_to_piece(1), "");
}

// A hand-made vocabulary to pin down the merge rules.
Vocab tiny_vocab(bool with_bytes) {
    Vocab v;
    v.model = "llama";
    auto add = [&](const std::string& t, float score, TokenType type) {
        v.tokens.push_back(t);
        v.scores.push_back(score);
        v.types.push_back(type);
    };
    add("<unk>", 0, TokenType::kUnknown);
    add("<s>", 0, TokenType::kControl);
    add("</s>", 0, TokenType::kControl);
    if (with_bytes) {
        for (int b = 0; b < 256; ++b) add(strfmt("<0x%02X>", b), 0, TokenType::kByte);
    }
    for (const char* c : {"\xE2\x96\x81", "a", "b", "c"}) add(c, -100, TokenType::kNormal);
    add("ab", -1, TokenType::kNormal);
    add("bc", -2, TokenType::kNormal);
    add("\xE2\x96\x81"
        "a",
        -3, TokenType::kNormal);
    add("cc", -1, TokenType::kUnused);
    add("cca", -0.5f, TokenType::kNormal);
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

TEST(SpmTokenizer, HighestScoreMergesFirst) {
    auto tok = Tokenizer::create(tiny_vocab(true));
    auto ids = [&](std::initializer_list<const char*> ts) {
        std::vector<int32_t> r;
        for (const char* t : ts) r.push_back(tok->token_id(t));
        return r;
    };
    // "▁abc": "ab" (-1) beats "bc" (-2) and "▁a" (-3).
    EXPECT_EQ(tok->encode("abc", false, false), ids({"\xE2\x96\x81", "ab", "c"}));
    // "▁bc": only "bc" applies.
    EXPECT_EQ(tok->encode("bc", false, false), ids({"\xE2\x96\x81", "bc"}));
    // "▁cca": "cc" (unused) merges, then "cca"; "▁ccb": "cc" is unused, so split back.
    EXPECT_EQ(tok->encode("cca", false, false), ids({"\xE2\x96\x81", "cca"}));
    EXPECT_EQ(tok->encode("ccb", false, false), ids({"\xE2\x96\x81", "c", "c", "b"}));
    // Equal scores: leftmost first ("abab" -> "ab", "ab").
    EXPECT_EQ(tok->encode("abab", false, false), ids({"\xE2\x96\x81", "ab", "ab"}));
    // Byte fallback for characters that are no token.
    EXPECT_EQ(tok->encode("\xC3\xA9", false, false),
              (std::vector<int32_t>{tok->token_id("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9}));
}

TEST(SpmTokenizer, UnknownWithoutByteTokens) {
    auto tok = Tokenizer::create(tiny_vocab(false));
    const int32_t sp = tok->token_id("\xE2\x96\x81");
    // One <unk> per unknown character, whatever its length in bytes.
    EXPECT_EQ(tok->encode("a\xE2\x82\xAC\xC3\xA9"
                          "b",
                          false, false),
              (std::vector<int32_t>{tok->token_id("\xE2\x96\x81"
                                                  "a"),
                                    0, 0, tok->token_id("b")}));
    EXPECT_EQ(tok->encode("\xE2\x82\xAC", false, false), (std::vector<int32_t>{sp, 0}));
    Vocab no_unk = tiny_vocab(false);
    no_unk.unk_id = -1;
    no_unk.types[0] = TokenType::kNormal;
    auto tok2 = Tokenizer::create(no_unk);
    EXPECT_THROW(tok2->encode("\xE2\x82\xAC", false, false), Error);
}

}  // namespace
}  // namespace llmforge
