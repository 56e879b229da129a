// StreamDecoder: characters split across byte tokens come out whole, ill-formed bytes become
// U+FFFD, the space after BOS is dropped on request, and llama2.c's printed story is reproduced.
#include "tokenizer/detokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/utf8.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

// Chinese (3-byte) and emoji (4-byte, a ZWJ sequence) text; llama-spm lacks most of it.
const std::string kMixed =
    "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C "  // 你好，世界
    "\xF0\x9F\xA6\x99 llama \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F end";
const std::string kFffd = "\xEF\xBF\xBD";

std::unique_ptr<Tokenizer> load(const std::string& rel) {
    const std::string p = test::asset(rel);
    return p.empty() ? nullptr : Tokenizer::create(test::load_gguf_vocab(p));
}

#define LF_REQUIRE_TOKENIZER(var, rel) \
    auto var = load(rel);              \
    if (!var) GTEST_SKIP() << "asset missing: " << (rel)

// Feeds ids one by one (every output must be well-formed UTF-8), then flushes.
std::string stream(StreamDecoder& d, const std::vector<int32_t>& ids, size_t* max_held = nullptr) {
    std::string out;
    size_t held = 0;
    for (int32_t id : ids) {
        const std::string s = d.feed(id);
        EXPECT_TRUE(utf8_is_valid(s)) << "id " << id;
        out += s;
        held = std::max(held, d.pending_bytes());
    }
    out += d.flush();
    EXPECT_EQ(d.pending_bytes(), 0u);
    if (max_held) *max_held = held;
    return out;
}

TEST(StreamDecoder, SpmByteTokensJoinIntoCharacters) {
    LF_REQUIRE_TOKENIZER(tok, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    const auto ids = tok->encode(kMixed, true, false);
    EXPECT_NE(std::find(ids.begin(), ids.end(), 3 + 0xF0), ids.end());  // emoji as byte tokens
    StreamDecoder d(*tok, {.strip_leading_space_after_bos = true});
    size_t held = 0;
    EXPECT_EQ(stream(d, ids, &held), kMixed);
    EXPECT_GE(held, 1u);  // some character did arrive in pieces
    EXPECT_LE(held, 3u);
    // Without the option the dummy-prefix space shows.
    StreamDecoder raw(*tok);
    EXPECT_EQ(stream(raw, ids), " " + kMixed);
}

TEST(StreamDecoder, EmitsACharacterWhenItCompletes) {
    LF_REQUIRE_TOKENIZER(tok, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    StreamDecoder d(*tok);
    EXPECT_EQ(d.feed(3 + 0xF0), "");  // 🦙 = F0 9F A6 99
    EXPECT_EQ(d.feed(3 + 0x9F), "");
    EXPECT_EQ(d.feed(3 + 0xA6), "");
    EXPECT_EQ(d.pending_bytes(), 3u);
    EXPECT_EQ(d.feed(3 + 0x99), "\xF0\x9F\xA6\x99");
    EXPECT_EQ(d.feed(3 + 0xE4), "");  // 你 = E4 BD A0, then a normal token
    EXPECT_EQ(d.feed(3 + 0xBD), "");
    EXPECT_EQ(d.feed(3 + 0xA0), "\xE4\xBD\xA0");
    EXPECT_EQ(d.feed(tok->token_id("\xE2\x96\x81world")), " world");
    EXPECT_EQ(d.flush(), "");
}

TEST(StreamDecoder, IllFormedBytesBecomeReplacementCharacters) {
    LF_REQUIRE_TOKENIZER(tok, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    StreamDecoder d(*tok);
    EXPECT_EQ(d.feed(3 + 0xFF), kFffd);       // can never start a character
    EXPECT_EQ(d.feed(3 + 0xE4), "");          // could
    EXPECT_EQ(d.feed(3 + 'A'), kFffd + "A");  // ... but did not
    EXPECT_EQ(d.feed(3 + 0xE4), "");
    EXPECT_EQ(d.feed(3 + 0xBD), "");
    EXPECT_EQ(d.flush(), kFffd);  // a cut-off character is one U+FFFD
    EXPECT_EQ(d.feed(3 + 0xED), "");
    EXPECT_EQ(d.feed(3 + 0xA0), kFffd + kFffd);  // a surrogate: ED, then A0 on its own
    EXPECT_THROW(d.feed(tok->n_vocab()), Error);
    EXPECT_THROW(d.feed(-1), Error);
}

TEST(StreamDecoder, LeadingSpaceAfterBos) {
    LF_REQUIRE_TOKENIZER(tok, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    const int32_t once = tok->token_id("\xE2\x96\x81Once"),
                  upon = tok->token_id("\xE2\x96\x81upon");
    ASSERT_GE(once, 0);
    ASSERT_GE(upon, 0);
    StreamDecoder d(*tok, {.strip_leading_space_after_bos = true});
    std::string s;
    for (int32_t id : {tok->bos(), once, upon, tok->eos(), tok->bos(), once}) s += d.feed(id);
    EXPECT_EQ(s, "Once uponOnce");
    StreamDecoder special(*tok, {.strip_leading_space_after_bos = true, .render_special = true});
    s.clear();
    for (int32_t id : {tok->bos(), once, tok->eos()}) s += special.feed(id);
    EXPECT_EQ(s, "<s>Once</s>");
}

TEST(StreamDecoder, Llama2cStory) {
    LF_REQUIRE_ASSET(tok_path, "llama2c-stories260K/tok512.bin");
    LF_REQUIRE_ASSET(ids_path,
                     "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.tokens");
    LF_REQUIRE_ASSET(txt_path, "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt");
    auto tok = Tokenizer::create(test::load_llama2c_vocab(tok_path));
    std::istringstream in(test::read_file(ids_path));
    std::vector<int32_t> ids;
    for (int32_t id; in >> id;) ids.push_back(id);
    ASSERT_EQ(ids.size(), 257u);
    ASSERT_EQ(ids.front(), 1);
    StreamDecoder d(*tok, {.strip_leading_space_after_bos = true});
    // llama2.c prints a final newline after the last step.
    EXPECT_EQ(stream(d, ids) + "\n", test::read_file(txt_path));
    EXPECT_EQ(tok->decode(ids) + "\n", test::read_file(txt_path));
}

TEST(StreamDecoder, ByteLevelTokensSplitCharacters) {
    LF_REQUIRE_TOKENIZER(tok, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    const auto ids = tok->encode(kMixed, false, false);
    bool partial = false;  // some token holds part of a character
    for (int32_t id : ids) partial = partial || !utf8_is_valid(tok->token_to_piece(id));
    EXPECT_TRUE(partial);
    StreamDecoder d(*tok);
    size_t held = 0;
    EXPECT_EQ(stream(d, ids, &held), kMixed);
    EXPECT_GE(held, 1u);
}

TEST(Utf8, DecodeAndSanitize) {
    EXPECT_EQ(utf8_decode("A").status, Utf8Status::kOk);
    const Utf8Char c = utf8_decode("\xF0\x9F\xA6\x99");
    EXPECT_EQ(c.status, Utf8Status::kOk);
    EXPECT_EQ(c.len, 4u);
    EXPECT_EQ(c.cp, 0x1F999u);
    EXPECT_EQ(utf8_decode("\xF0\x9F").status, Utf8Status::kIncomplete);
    EXPECT_EQ(utf8_decode("\xC0\xAF").status, Utf8Status::kInvalid);          // overlong
    EXPECT_EQ(utf8_decode("\xF4\x90\x80\x80").status, Utf8Status::kInvalid);  // > U+10FFFF
    EXPECT_EQ(utf8_decode("\xE0\x80\x80").len, 1u);
    EXPECT_EQ(utf8_decode("\xE4\xBD"
                          "A")
                  .len,
              2u);
    EXPECT_EQ(utf8_sanitize("a\xFF"
                            "b\xE4\xBD"),
              "a" + kFffd + "b" + kFffd);
    std::string s;
    for (uint32_t cp : {0x41u, 0xE9u, 0x4F60u, 0x1F999u}) utf8_append(s, cp);
    EXPECT_EQ(s, "A\xC3\xA9\xE4\xBD\xA0\xF0\x9F\xA6\x99");
    EXPECT_TRUE(utf8_is_valid(s));
    EXPECT_FALSE(utf8_is_valid("\xED\xA0\x80"));  // surrogate
}

}  // namespace
}  // namespace llmforge
