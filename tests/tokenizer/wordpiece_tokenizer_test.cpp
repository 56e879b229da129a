// WordPiece (BERT / BGE): llama.cpp's bert-bge vectors (ids from Hugging Face), the
// BertNormalizer steps one by one, the phantom-space vocabulary form, and bad vocabularies.
#include "tokenizer/wordpiece_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer_vectors.h"
#include "vocab_loader.h"

namespace llmforge {
namespace {

TEST(WordPieceTokenizer, BertBgeVectors) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf.out");
    const Vocab v = test::load_gguf_vocab(gguf);
    EXPECT_EQ(v.model, "bert");
    auto tok = Tokenizer::create(v);
    ASSERT_NE(dynamic_cast<const WordPieceTokenizer*>(tok.get()), nullptr);
    const size_t n = test::read_vocab_test_inputs(inp).size();
    EXPECT_EQ(n, 46u);
    EXPECT_EQ(test::run_vocab_vectors(*tok, inp, out, "ggml-vocab-bert-bge", false), n);
    // Decoding joins word pieces: lowercased, one space between words and around punctuation.
    EXPECT_EQ(tok->decode(tok->encode("Hello, World! Lied", false, false)), "hello , world ! lied");
}

TEST(WordPieceTokenizer, Normalizer) {
    // clean_text: NUL, U+FFFD, controls and format characters dropped; White_Space -> ' '.
    EXPECT_EQ(WordPieceTokenizer::normalize(std::string("a\0b\x01" "c", 5)), "abc");
    EXPECT_EQ(WordPieceTokenizer::normalize("a\tb\nc\rd\xC2\xA0" "e\xE3\x80\x80" "f"), "a b c d e f");
    EXPECT_EQ(WordPieceTokenizer::normalize("x\xE2\x80\x8By"), "xy");  // U+200B is Cf
    // Ill-formed bytes become U+FFFD and are dropped, never a crash.
    EXPECT_EQ(WordPieceTokenizer::normalize("a\xFF\xC3"), "a");
    // CJK ideographs padded; accents stripped (NFD, Mn removed); lowercased.
    EXPECT_EQ(WordPieceTokenizer::normalize("\xE6\x88\x91\xE6\x98\xAF"), " \xE6\x88\x91  \xE6\x98\xAF ");
    EXPECT_EQ(WordPieceTokenizer::normalize("\xC3\x84pfel Cr\xC3\xA8me"), "apfel creme");
    EXPECT_EQ(WordPieceTokenizer::normalize("\xC4\xB0stanbul \xCE\x91\xCE\x8A"), "istanbul \xCE\xB1\xCE\xB9");
}

TEST(WordPieceTokenizer, PhantomForm) {
    EXPECT_EQ(wordpiece_phantom_form("##ing"), "ing");
    EXPECT_EQ(wordpiece_phantom_form("[CLS]"), "[CLS]");
    EXPECT_EQ(wordpiece_phantom_form("word"), "\xE2\x96\x81word");
    EXPECT_EQ(wordpiece_phantom_form("#"), "\xE2\x96\x81#");
}

Vocab tiny_bert() {
    Vocab v;
    v.model = "bert";
    v.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xE2\x96\x81un", "aff", "able",
                "\xE2\x96\x81" "a", "\xE2\x96\x81,", "\xE2\x96\x81" "affable"};
    v.types = {TokenType::kControl, TokenType::kUnknown, TokenType::kControl, TokenType::kControl,
               TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal,
               TokenType::kNormal,  TokenType::kNormal};
    v.unk_id = 1;
    v.bos_id = 2;
    v.eos_id = 3;
    return v;
}

TEST(WordPieceTokenizer, GreedyLongestMatchAndUnknownWords) {
    auto tok = Tokenizer::create(tiny_bert());
    EXPECT_EQ(tok->encode("unaffable", false, false), (std::vector<int32_t>{4, 5, 6}));
    EXPECT_EQ(tok->encode("Affable,a", false, false), (std::vector<int32_t>{9, 8, 7}));
    // "unaffablex": the tail "x" matches nothing, so the whole word is one [UNK].
    EXPECT_EQ(tok->encode("a unaffablex a", false, false), (std::vector<int32_t>{7, 1, 7}));
    // Longer than 100 characters: [UNK] without trying.
    EXPECT_EQ(tok->encode(std::string(101, 'a'), false, false), (std::vector<int32_t>{1}));
    EXPECT_EQ(tok->encode("[CLS]a", false, true), (std::vector<int32_t>{2, 7}));
    EXPECT_EQ(tok->encode("", false, false), (std::vector<int32_t>{}));
    EXPECT_EQ(tok->decode({4, 5, 6, 8, 7}), "unaffable , a");
}

TEST(WordPieceTokenizer, NeedsAnUnknownToken) {
    Vocab v = tiny_bert();
    v.unk_id = -1;
    EXPECT_EQ(Tokenizer::create(v)->unk(), 1);  // found by its text "[UNK]"
    v.tokens[1] = "[NOPE]";
    try {
        Tokenizer::create(v);
        ADD_FAILURE() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown token"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace llmforge
