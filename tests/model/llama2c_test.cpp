// llama2.c checkpoints and tokenizers: the stories260K reference files, synthetic separate-
// classifier checkpoints, and malformed input.
#include "model/llama2c.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_helpers.h"
#include "test_util.h"

namespace llmforge {
namespace {

using test::Bytes;
using test::write_bytes;

TEST(Llama2c, ReadsStories260K) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    Llama2cCheckpoint ck(path);
    const ModelConfig& c = ck.config();
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_EQ(c.n_ff, 172);
    EXPECT_EQ(c.n_layer, 5);
    EXPECT_EQ(c.n_head, 8);
    EXPECT_EQ(c.n_head_kv, 4);
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_EQ(c.n_ctx_train, 512);
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_TRUE(c.rope_interleaved);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
    EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
    EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);

    EXPECT_EQ(ck.tensors().size(), 2u + 9u * 5u);
    struct Want {
        const char* name;
        std::vector<int64_t> shape;
    };
    const Want want[] = {{"token_embd.weight", {512, 64}},      {"blk.0.attn_norm.weight", {64}},
                         {"blk.0.attn_q.weight", {64, 64}},     {"blk.4.attn_k.weight", {32, 64}},
                         {"blk.2.attn_v.weight", {32, 64}},     {"blk.1.attn_output.weight", {64, 64}},
                         {"blk.3.ffn_norm.weight", {64}},       {"blk.0.ffn_gate.weight", {172, 64}},
                         {"blk.4.ffn_down.weight", {64, 172}},  {"blk.4.ffn_up.weight", {172, 64}},
                         {"output_norm.weight", {64}}};
    for (const Want& w : want) {
        SCOPED_TRACE(w.name);
        Tensor t = ck.tensor(w.name);
        EXPECT_EQ(t.dtype(), DType::F32);
        EXPECT_EQ(t.shape(), w.shape);
        EXPECT_EQ(t.name(), w.name);
    }
    EXPECT_FALSE(ck.has_tensor("output.weight"));
    EXPECT_LF_ERROR(ck.tensor("output.weight"), {path, "'output.weight'", "shares the classifier"});

    // Views sit where the format says.
    const std::string bytes = test::read_file(path);
    const int64_t C = 64, F = 172, L = 5, V = 512, KV = 32;
    EXPECT_EQ(std::memcmp(ck.tensor("token_embd.weight").data(), bytes.data() + 28, V * C * 4), 0);
    const int64_t wk = V * C + L * C + L * C * C;  // floats before wk
    EXPECT_EQ(std::memcmp(ck.tensor("blk.2.attn_k.weight").data(),
                          bytes.data() + 28 + 4 * (wk + 2 * KV * C), KV * C * 4),
              0);
    const int64_t final_norm = V * C + L * (C + C * C + 2 * KV * C + C * C + C + 3 * F * C);
    EXPECT_EQ(std::memcmp(ck.tensor("output_norm.weight").data(),
                          bytes.data() + 28 + 4 * final_norm, C * 4),
              0);
}

TEST(Llama2c, ReadsTok512) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/tok512.bin");
    Vocab v = llama2c_read_vocab(path);
    EXPECT_EQ(v.model, "llama");
    ASSERT_EQ(v.tokens.size(), 512u);
    ASSERT_EQ(v.scores.size(), 512u);
    ASSERT_EQ(v.types.size(), 512u);
    EXPECT_EQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.tokens[1], "\n<s>\n");  // control pieces are kept as in the file
    EXPECT_EQ(v.tokens[3], "<0x00>");
    EXPECT_EQ(v.tokens[258], "<0xFF>");
    EXPECT_EQ(v.tokens[259], "\xE2\x96\x81t");  // ' ' restored to SentencePiece's U+2581
    EXPECT_EQ(v.types[0], TokenType::kUnknown);
    EXPECT_EQ(v.types[1], TokenType::kControl);
    EXPECT_EQ(v.types[2], TokenType::kControl);
    EXPECT_EQ(v.types[3], TokenType::kByte);
    EXPECT_EQ(v.types[258], TokenType::kByte);
    EXPECT_EQ(v.types[259], TokenType::kNormal);
    EXPECT_FLOAT_EQ(v.scores[260], -1.0f);
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_TRUE(v.add_bos);
    EXPECT_FALSE(v.add_eos);
    EXPECT_TRUE(v.add_space_prefix);

    EXPECT_EQ(llama2c_read_vocab(path, 512).tokens.size(), 512u);
    EXPECT_LF_ERROR(llama2c_read_vocab(path, 511), {path, "remain after 511 tokens"});
    EXPECT_LF_ERROR(llama2c_read_vocab(path, 513), {path, "truncated"});
    EXPECT_LF_ERROR(llama2c_read_vocab(path, 32000), {path, "32000 tokens"});
}

TEST(Llama2c, RejectsTruncatedAndOversizedCheckpoints) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    const std::string bytes = test::read_file(path);
    const std::string dir = test::temp_dir();
    const std::string cut = dir + "/stories260K.bin";
    write_bytes(cut, bytes.substr(0, 1000000));
    EXPECT_LF_ERROR(Llama2cCheckpoint(cut), {cut, "implies 1056540 bytes", "file has 1000000",
                                             "truncated"});
    write_bytes(cut, bytes + std::string(4, '\0'));
    EXPECT_LF_ERROR(Llama2cCheckpoint(cut), {cut, "implies 1056540 bytes", "file has 1056544"});
    write_bytes(cut, bytes.substr(0, 20));
    EXPECT_LF_ERROR(Llama2cCheckpoint(cut), {cut, "expected at least 28 bytes", "file has 20"});
    // With a separate classifier appended, the header's positive vocab_size is the likely error.
    write_bytes(cut, bytes + std::string(512 * 64 * 4, '\0'));
    EXPECT_LF_ERROR(Llama2cCheckpoint(cut), {cut, "separate classifier", "sign"});
    // Cut everywhere in the header and a few places after.
    for (size_t c : {0, 1, 4, 27, 28, 29, 1024, 1056539}) {
        SCOPED_TRACE(c);
        write_bytes(cut, bytes.substr(0, c));
        EXPECT_LF_ERROR(Llama2cCheckpoint(cut), {cut});
    }
}

// A tiny synthetic checkpoint: dim 8, hidden 16, 2 layers, 2 heads, 1 kv head, vocab 10, seq 4.
std::string tiny_checkpoint(bool separate) {
    const int C = 8, F = 16, L = 2, H = 2, KVH = 1, V = 10, T = 4;
    const int KV = C * KVH / H;
    Bytes b;
    b.i32(C).i32(F).i32(L).i32(H).i32(KVH).i32(separate ? -V : V).i32(T);
    const int64_t n = V * C + L * C + L * C * C + 2 * L * KV * C + L * C * C + L * C +
                      3 * L * F * C + C + T * (C / H) + (separate ? V * C : 0);
    for (int64_t i = 0; i < n; ++i) b.f32(static_cast<float>(i));
    return b.b;
}

TEST(Llama2c, SeparateClassifier) {
    const std::string bytes = tiny_checkpoint(true);
    Llama2cCheckpoint ck = Llama2cCheckpoint::from_memory(bytes.data(), bytes.size(), "tiny.bin");
    EXPECT_FALSE(ck.config().tied_embeddings);
    EXPECT_EQ(ck.config().n_vocab, 10);
    EXPECT_EQ(ck.config().n_head_kv, 1);
    ASSERT_TRUE(ck.has_tensor("output.weight"));
    Tensor out = ck.tensor("output.weight");
    EXPECT_EQ(out.shape(), (std::vector<int64_t>{10, 8}));
    // wcls is the last V*C floats.
    const float* last = out.ptr<float>() + 10 * 8 - 1;
    const int64_t n_total = static_cast<int64_t>((bytes.size() - 28) / 4);
    EXPECT_EQ(*last, static_cast<float>(n_total - 1));
    EXPECT_EQ(ck.tensor("blk.1.attn_k.weight").shape(), (std::vector<int64_t>{4, 8}));
    // Layer 1's attn_q follows layer 0's: values continue.
    EXPECT_EQ(ck.tensor("blk.1.attn_q.weight").ptr<float>()[0],
              ck.tensor("blk.0.attn_q.weight").ptr<float>()[0] + 64);

    const std::string shared = tiny_checkpoint(false);
    Llama2cCheckpoint ck2 = Llama2cCheckpoint::from_memory(shared.data(), shared.size(), "t2.bin");
    EXPECT_TRUE(ck2.config().tied_embeddings);
    EXPECT_FALSE(ck2.has_tensor("output.weight"));
}

TEST(Llama2c, RejectsBadHeaders) {
    auto with_header = [](std::initializer_list<int32_t> h) {
        Bytes b;
        for (int32_t x : h) b.i32(x);
        b.zeros(64);
        return b.b;
    };
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {with_header({0, 16, 2, 2, 1, 10, 4}), {"dim is 0"}},
        {with_header({8, -16, 2, 2, 1, 10, 4}), {"hidden_dim is -16"}},
        {with_header({8, 16, 2, 2, 1, 0, 4}), {"vocab_size is 0"}},
        {with_header({8, 16, 100000, 2, 1, 10, 4}), {"n_layers is 100000"}},
        {with_header({8, 16, 2, 3, 1, 10, 4}), {"not a multiple of n_heads 3"}},
        {with_header({8, 16, 2, 2, 3, 10, 4}), {"n_kv_heads 3"}},
        {with_header({8, 16, 2, 8, 1, 10, 4}), {"head size 1 is odd"}},
        {with_header({8, 16, 2, 2, 1, INT32_MIN, 4}), {"vocab_size"}},
    };
    for (const auto& [bytes, subs] : cases) {
        SCOPED_TRACE(subs[0]);
        const std::string m = EXPECT_LF_ERROR(
            Llama2cCheckpoint::from_memory(bytes.data(), bytes.size(), "bad.bin"), {"bad.bin"});
        for (const auto& s : subs) EXPECT_NE(m.find(s), std::string::npos) << m;
    }
    Bytes ak;
    ak.raw("24ka").u32(1).zeros(256);  // "ak42" magic as a LE u32
    EXPECT_LF_ERROR(Llama2cCheckpoint::from_memory(ak.b.data(), ak.b.size(), "v1.bin"),
                    {"v1.bin", "ak42", "--version 0"});
}

TEST(Llama2c, RejectsBadTokenizers) {
    Bytes ok;
    ok.i32(6);  // max_token_length
    for (const char* t : {"<unk>", "<s>", "</s>", "<0x41>", "ab"}) {
        ok.f32(0.5f).i32(static_cast<int32_t>(std::strlen(t))).raw(t);
    }
    Vocab v = llama2c_parse_vocab(ok.b.data(), ok.b.size(), "tok.bin");
    EXPECT_EQ(v.tokens.size(), 5u);
    EXPECT_EQ(v.types[3], TokenType::kByte);
    EXPECT_EQ(v.types[4], TokenType::kNormal);
    for (size_t c = 0; c < ok.b.size(); ++c) {
        SCOPED_TRACE(c);
        // Cut inside a token -> truncated; cut at a token boundary -> fewer tokens (fine when
        // >= 3 and no n_vocab is given).
        try {
            Vocab x = llama2c_parse_vocab(ok.b.data(), c, "tok.bin");
            EXPECT_GE(x.tokens.size(), 3u);
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("tok.bin"), std::string::npos);
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        }
        if (c < ok.b.size()) {
            EXPECT_LF_ERROR(llama2c_parse_vocab(ok.b.data(), c, "tok.bin", 5), {"tok.bin"});
        }
    }
    Bytes neg;
    neg.i32(5).f32(0).i32(-1);
    EXPECT_LF_ERROR(llama2c_parse_vocab(neg.b.data(), neg.b.size(), "neg.bin"),
                    {"neg.bin", "length -1"});
    Bytes big;
    big.i32(5).f32(0).i32(6).raw("abcdef");
    EXPECT_LF_ERROR(llama2c_parse_vocab(big.b.data(), big.b.size(), "big.bin"),
                    {"big.bin", "length 6", "0..5"});
    Bytes hdr;
    hdr.i32(-3);
    EXPECT_LF_ERROR(llama2c_parse_vocab(hdr.b.data(), hdr.b.size(), "hdr.bin"),
                    {"hdr.bin", "max_token_length is -3"});
}

}  // namespace
}  // namespace llmforge
