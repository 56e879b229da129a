// GGUF reader/writer: the shared fixture, llama.cpp's vocab files, write -> read round trips, and
// malformed input (every failure must be a one-line llmforge::Error naming the file and the thing).
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "io_test_helpers.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;
using test::Bytes;
using test::random_bytes;
using test::write_bytes;


// ---- the shared fixture ------------------------------------------------------------------------

TEST(Gguf, ReadsTinyLlamaFixture) {
    LF_REQUIRE_ASSET(path, "gguf-fixtures/llama-2-tiny-random.gguf");
    GgufFile f(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.file_size(), 1750560u);
    EXPECT_EQ(f.data_offset() % 32, 0u);
    EXPECT_EQ(f.metadata().size(), 18u);
    EXPECT_EQ(f.metadata()[0].key, "general.architecture");  // file order is kept
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_string("general.name"), "LLaMA v2");
    EXPECT_EQ(f.get_u32("llama.context_length"), 4096u);
    EXPECT_EQ(f.get_u32("llama.embedding_length"), 8u);
    EXPECT_EQ(f.get_u32("llama.block_count"), 1u);
    EXPECT_EQ(f.get_u32("llama.feed_forward_length"), 32u);
    EXPECT_EQ(f.get_u32("llama.rope.dimension_count"), 4u);
    EXPECT_EQ(f.get_u32("llama.attention.head_count"), 2u);
    EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
    EXPECT_NEAR(f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f, 1e-12f);
    EXPECT_EQ(f.get_u32("general.file_type"), 1u);
    EXPECT_FALSE(f.get_opt<float>("llama.rope.freq_base").has_value());
    const auto& tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 32000u);
    EXPECT_EQ(tokens[0], "<unk>");
    EXPECT_EQ(tokens[1], "<s>");
    EXPECT_EQ(tokens[2], "</s>");
    EXPECT_EQ(f.get_array<float>("tokenizer.ggml.scores").size(), 32000u);
    EXPECT_EQ(f.get_array<int32_t>("tokenizer.ggml.token_type")[0], 2);
    EXPECT_EQ(f.find("tokenizer.ggml.tokens")->type_str(), "array of string");

    ASSERT_EQ(f.tensor_infos().size(), 12u);
    struct Want {
        const char* name;
        DType dtype;
        std::vector<int64_t> shape;
    };
    const Want want[] = {
        {"token_embd.weight", DType::F16, {32000, 8}},
        {"blk.0.attn_q.weight", DType::F16, {8, 8}},
        {"blk.0.ffn_gate.weight", DType::F16, {32, 8}},  // GGUF dims {8, 32}: reversed
        {"blk.0.ffn_up.weight", DType::F16, {32, 8}},
        {"blk.0.ffn_down.weight", DType::F16, {8, 32}},
        {"blk.0.attn_norm.weight", DType::F32, {8}},
        {"output_norm.weight", DType::F32, {8}},
        {"output.weight", DType::F16, {32000, 8}},
    };
    for (const Want& w : want) {
        SCOPED_TRACE(w.name);
        const GgufTensorInfo* info = f.find_tensor(w.name);
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->dtype, w.dtype);
        EXPECT_EQ(info->shape, w.shape);
        Tensor t = f.tensor(w.name);
        EXPECT_EQ(t.dtype(), w.dtype);
        EXPECT_EQ(t.shape(), w.shape);
        EXPECT_EQ(t.name(), w.name);
        EXPECT_EQ(t.nbytes(), info->nbytes);
    }
    // Views point into the file at data_offset + offset.
    const std::string bytes = test::read_file(path);
    const GgufTensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
    EXPECT_EQ(q->offset, 512000u);
    Tensor tq = f.tensor(*q);
    EXPECT_EQ(std::memcmp(tq.data(), bytes.data() + f.data_offset() + q->offset, tq.nbytes()), 0);
    // A tensor outlives the GgufFile (it holds the map).
    Tensor keep;
    {
        GgufFile g(path);
        keep = g.tensor("output_norm.weight");
    }
    const GgufTensorInfo* on = f.find_tensor("output_norm.weight");
    EXPECT_EQ(std::memcmp(keep.data(), bytes.data() + f.data_offset() + on->offset, 32), 0);
}

TEST(Gguf, TypedGettersRejectMismatchesAndMissingKeys) {
    LF_REQUIRE_ASSET(path, "gguf-fixtures/llama-2-tiny-random.gguf");
    GgufFile f(path);
    EXPECT_LF_ERROR(f.get_u32("general.architecture"),
                    {path, "general.architecture", "string", "u32"});
    EXPECT_LF_ERROR(f.get_f32("llama.block_count"), {path, "llama.block_count", "u32", "f32"});
    EXPECT_LF_ERROR(f.get_array<float>("tokenizer.ggml.tokens"),
                    {"tokenizer.ggml.tokens", "array of string", "array of f32"});
    EXPECT_LF_ERROR(f.get_u32("llama.no_such_key"), {path, "llama.no_such_key", "not found"});
    EXPECT_LF_ERROR(f.get_int("general.name"), {"general.name", "integer"});
    EXPECT_LF_ERROR(f.tensor("blk.7.attn_q.weight"), {path, "blk.7.attn_q.weight", "not found"});
    EXPECT_FALSE(f.get_opt<uint32_t>("nope").has_value());
    EXPECT_LF_ERROR(f.get_opt<uint32_t>("general.name"), {"general.name", "string"});
}

TEST(Gguf, ParsesEveryLlamaCppVocabFile) {
    const std::string dir = test::asset("llama.cpp-vocab");
    if (dir.empty()) GTEST_SKIP() << "asset missing: llama.cpp-vocab";
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string p = e.path().string();
        if (e.path().extension() != ".gguf") continue;
        SCOPED_TRACE(p);
        GgufFile f(p);
        EXPECT_EQ(f.version(), 3u);
        EXPECT_TRUE(f.tensor_infos().empty());
        EXPECT_GT(f.get_array<std::string>("tokenizer.ggml.tokens").size(), 1000u);
        EXPECT_FALSE(f.get_string("tokenizer.ggml.model").empty());
        ++n;
    }
    EXPECT_GE(n, 9);  // 9 .gguf files in the assets today
}

// ---- round trips ------------------------------------------------------------------------------

TEST(Gguf, RoundTripsEveryMetadataTypeAndTensors) {
    const std::string dir = test::temp_dir();
    const std::string path = dir + "/rt.gguf";
    GgufWriter w;
    w.set("general.architecture", "llama");
    w.set("t.u8", uint8_t{200});
    w.set("t.i8", int8_t{-100});
    w.set("t.u16", uint16_t{60000});
    w.set("t.i16", int16_t{-30000});
    w.set("t.u32", uint32_t{4000000000u});
    w.set("t.i32", int32_t{-2000000000});
    w.set("t.f32", 1.5f);
    w.set("t.bool", true);
    w.set("t.string", std::string("h\xc3\xa9llo\n\0x", 9));
    w.set("t.u64", uint64_t{1} << 63);
    w.set("t.i64", int64_t{-(int64_t{1} << 62)});
    w.set("t.f64", 2.25);
    w.set("t.arr.u8", std::vector<uint8_t>{1, 2, 255});
    w.set("t.arr.i8", std::vector<int8_t>{-1, 2});
    w.set("t.arr.u16", std::vector<uint16_t>{65535});
    w.set("t.arr.i16", std::vector<int16_t>{-5, 5});
    w.set("t.arr.u32", std::vector<uint32_t>{7, 8, 9});
    w.set("t.arr.i32", std::vector<int32_t>{-7, 8});
    w.set("t.arr.f32", std::vector<float>{0.5f, -1e30f});
    w.set("t.arr.bool", std::vector<bool>{true, false, true});
    w.set("t.arr.string", std::vector<std::string>{"a", "", "\xe2\x96\x81the"});
    w.set("t.arr.u64", std::vector<uint64_t>{UINT64_MAX});
    w.set("t.arr.i64", std::vector<int64_t>{INT64_MIN, 3});
    w.set("t.arr.f64", std::vector<double>{1e300});
    w.set("t.arr.empty", std::vector<int32_t>{});
    w.set("t.u32", uint32_t{42});  // replacing keeps the first position

    const auto f32 = random_bytes(3 * 5 * 4, 1);
    const auto f16 = random_bytes(2 * 7 * 2, 2);
    const auto q8 = random_bytes(2 * 2 * 34, 3);  // 2 rows of 64 = 2 blocks each
    const auto q4k = random_bytes(144, 4);
    const auto bf16 = random_bytes(4 * 2, 5);
    const auto f3d = random_bytes(2 * 3 * 4 * 4, 6);
    const auto q60 = random_bytes(210 * 2, 7);
    const auto q40 = random_bytes(18, 8);
    w.add_tensor("f32", DType::F32, {3, 5}, f32.data(), f32.size());
    w.add_tensor("f16", DType::F16, {2, 7}, f16.data(), f16.size());
    w.add_tensor("q8_0", DType::Q8_0, {2, 64}, q8.data(), q8.size());
    w.add_tensor("q4_k", DType::Q4_K, {256}, q4k.data(), q4k.size());
    w.add_tensor("bf16", DType::BF16, {4}, bf16.data(), bf16.size());
    w.add_tensor("f32.3d", DType::F32, {2, 3, 4}, f3d.data(), f3d.size());
    w.add_tensor("q6_k.fill", DType::Q6_K, {2, 256},
                 GgufWriter::Fill([&](uint8_t* dst, size_t n) {
                     ASSERT_EQ(n, q60.size());
                     std::memcpy(dst, q60.data(), n);
                 }));
    {
        Tensor t = Tensor::empty(DType::Q4_0, {32}, "q4_0.tensor");
        std::memcpy(t.data(), q40.data(), q40.size());
        w.add_tensor(t);  // shares the tensor's storage; `t` may go away
    }
    EXPECT_EQ(w.n_tensors(), 8u);
    w.write(path);

    GgufFile f(path);
    EXPECT_EQ(f.version(), 3u);
    ASSERT_EQ(f.metadata().size(), 26u);
    EXPECT_EQ(f.metadata()[5].key, "t.u32");
    EXPECT_EQ(f.get<uint8_t>("t.u8"), 200);
    EXPECT_EQ(f.get<int8_t>("t.i8"), -100);
    EXPECT_EQ(f.get<uint16_t>("t.u16"), 60000);
    EXPECT_EQ(f.get<int16_t>("t.i16"), -30000);
    EXPECT_EQ(f.get_u32("t.u32"), 42u);
    EXPECT_EQ(f.get_i32("t.i32"), -2000000000);
    EXPECT_EQ(f.get_f32("t.f32"), 1.5f);
    EXPECT_TRUE(f.get_bool("t.bool"));
    EXPECT_EQ(f.get_string("t.string"), std::string("h\xc3\xa9llo\n\0x", 9));
    EXPECT_EQ(f.get_u64("t.u64"), uint64_t{1} << 63);
    EXPECT_EQ(f.get_i64("t.i64"), -(int64_t{1} << 62));
    EXPECT_EQ(f.get_f64("t.f64"), 2.25);
    EXPECT_EQ(f.get_array<uint8_t>("t.arr.u8"), (std::vector<uint8_t>{1, 2, 255}));
    EXPECT_EQ(f.get_array<int8_t>("t.arr.i8"), (std::vector<int8_t>{-1, 2}));
    EXPECT_EQ(f.get_array<uint16_t>("t.arr.u16"), (std::vector<uint16_t>{65535}));
    EXPECT_EQ(f.get_array<int16_t>("t.arr.i16"), (std::vector<int16_t>{-5, 5}));
    EXPECT_EQ(f.get_array<uint32_t>("t.arr.u32"), (std::vector<uint32_t>{7, 8, 9}));
    EXPECT_EQ(f.get_array<int32_t>("t.arr.i32"), (std::vector<int32_t>{-7, 8}));
    EXPECT_EQ(f.get_array<float>("t.arr.f32"), (std::vector<float>{0.5f, -1e30f}));
    EXPECT_EQ(f.get_array<bool>("t.arr.bool"), (std::vector<bool>{true, false, true}));
    EXPECT_EQ(f.get_array<std::string>("t.arr.string"),
              (std::vector<std::string>{"a", "", "\xe2\x96\x81the"}));
    EXPECT_EQ(f.get_array<uint64_t>("t.arr.u64"), (std::vector<uint64_t>{UINT64_MAX}));
    EXPECT_EQ(f.get_array<int64_t>("t.arr.i64"), (std::vector<int64_t>{INT64_MIN, 3}));
    EXPECT_EQ(f.get_array<double>("t.arr.f64"), (std::vector<double>{1e300}));
    EXPECT_TRUE(f.get_array<int32_t>("t.arr.empty").empty());
    // Lenient getters.
    EXPECT_EQ(f.get_int("t.u8"), 200);
    EXPECT_EQ(f.get_int("t.i16"), -30000);
    EXPECT_LF_ERROR(f.get_int("t.u64"), {"t.u64", "at most"});
    EXPECT_EQ(f.get_float("t.f32"), 1.5);
    EXPECT_EQ(f.get_float("t.u32"), 42.0);
    EXPECT_EQ(f.find("t.arr.i16")->to_int_array("x"), (std::vector<int64_t>{-5, 5}));
    EXPECT_EQ(f.find("t.arr.f32")->to_float_array("x"), (std::vector<float>{0.5f, -1e30f}));
    EXPECT_LF_ERROR(f.find("t.arr.string")->to_float_array("ctx"), {"ctx", "array of string"});

    struct Want {
        const char* name;
        DType dtype;
        std::vector<int64_t> shape;
        const std::vector<uint8_t>* bytes;
    };
    const Want want[] = {{"f32", DType::F32, {3, 5}, &f32},
                         {"f16", DType::F16, {2, 7}, &f16},
                         {"q8_0", DType::Q8_0, {2, 64}, &q8},
                         {"q4_k", DType::Q4_K, {256}, &q4k},
                         {"bf16", DType::BF16, {4}, &bf16},
                         {"f32.3d", DType::F32, {2, 3, 4}, &f3d},
                         {"q6_k.fill", DType::Q6_K, {2, 256}, &q60},
                         {"q4_0.tensor", DType::Q4_0, {32}, &q40}};
    ASSERT_EQ(f.tensor_infos().size(), 8u);
    for (size_t i = 0; i < 8; ++i) {
        const Want& wt = want[i];
        SCOPED_TRACE(wt.name);
        const GgufTensorInfo& info = f.tensor_infos()[i];  // written in order
        EXPECT_EQ(info.name, wt.name);
        EXPECT_EQ(info.dtype, wt.dtype);
        EXPECT_EQ(info.shape, wt.shape);
        EXPECT_EQ(info.offset % 32, 0u);
        Tensor t = f.tensor(wt.name);
        ASSERT_EQ(t.nbytes(), wt.bytes->size());
        EXPECT_EQ(std::memcmp(t.data(), wt.bytes->data(), t.nbytes()), 0);
        EXPECT_EQ((f.data_offset() + info.offset) % 32, 0u);
    }
    // The layout is the one llama.cpp requires: each offset = previous offset + padded size.
    uint64_t expect_off = 0;
    for (const auto& info : f.tensor_infos()) {
        EXPECT_EQ(info.offset, expect_off) << info.name;
        expect_off += (info.nbytes + 31) / 32 * 32;
    }
    EXPECT_EQ(f.data_offset() + expect_off, f.file_size());
    // No temporary file is left behind.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    EXPECT_EQ(files, 1);
}

TEST(Gguf, HonoursCustomAlignment) {
    const std::string path = test::temp_dir() + "/a64.gguf";
    GgufWriter w(64);
    const auto a = random_bytes(12, 1), b = random_bytes(20, 2);
    w.add_tensor("a", DType::F32, {3}, a.data(), a.size());
    w.add_tensor("b", DType::F32, {5}, b.data(), b.size());
    w.write(path);
    GgufFile f(path);
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.get_u32("general.alignment"), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    EXPECT_EQ(f.find_tensor("b")->offset, 64u);
    Tensor tb = f.tensor("b");
    EXPECT_EQ(std::memcmp(tb.data(), b.data(), 20), 0);
    EXPECT_LF_ERROR(GgufWriter(48), {"48", "power of two"});
    EXPECT_LF_ERROR(w.set("general.alignment", uint32_t{16}), {"general.alignment"});
}

TEST(Gguf, FromMemoryParsesTheSameBytes) {
    const std::string path = test::temp_dir() + "/m.gguf";
    GgufWriter w;
    w.set("k", "v");
    const auto a = random_bytes(64, 9);
    w.add_tensor("a", DType::F16, {2, 16}, a.data(), a.size());
    w.write(path);
    auto bytes = std::make_shared<std::string>(test::read_file(path));
    GgufFile f = GgufFile::from_memory(bytes->data(), bytes->size(), "mem.gguf", bytes);
    EXPECT_EQ(f.path(), "mem.gguf");
    EXPECT_EQ(f.get_string("k"), "v");
    Tensor t = f.tensor("a");
    bytes.reset();  // the tensor keeps the bytes alive through `owner`
    EXPECT_EQ(std::memcmp(t.data(), a.data(), 64), 0);
}

TEST(Gguf, WriterRejectsBadTensors) {
    GgufWriter w;
    float x[64] = {};
    w.add_tensor("ok", DType::F32, {4}, x, 16);
    EXPECT_LF_ERROR(w.add_tensor("ok", DType::F32, {4}, x, 16), {"'ok'", "twice"});
    EXPECT_LF_ERROR(w.add_tensor("b", DType::F32, {4}, x, 12), {"'b'", "12 bytes", "16"});
    EXPECT_LF_ERROR(w.add_tensor("c", DType::F32, {}, x, 4), {"'c'", "0 dimensions"});
    EXPECT_LF_ERROR(w.add_tensor("d", DType::F32, {1, 1, 1, 1, 1}, x, 4), {"'d'", "5 dimensions"});
    EXPECT_LF_ERROR(w.add_tensor("e", DType::F32, {0}, x, 0), {"'e'", ">= 1"});
    EXPECT_LF_ERROR(w.add_tensor("f", DType::Q8_0, {2, 33}, x, 68), {"'f'", "multiple of 32"});
    EXPECT_LF_ERROR(w.add_tensor(std::string(64, 'n'), DType::F32, {4}, x, 16), {"64 bytes", "1..63"});
    EXPECT_LF_ERROR(w.add_tensor("", DType::F32, {4}, x, 16), {"0 bytes"});
}

TEST(Gguf, FailedWriteLeavesTargetUntouched) {
    const std::string dir = test::temp_dir();
    const std::string path = dir + "/keep.gguf";
    {
        GgufWriter w;
        w.set("version", uint32_t{1});
        w.write(path);
    }
    GgufWriter w;
    w.set("version", uint32_t{2});
    w.add_tensor("boom", DType::F32, {4}, GgufWriter::Fill([](uint8_t*, size_t) {
                     throw Error("fill failed");
                 }));
    EXPECT_LF_ERROR(w.write(path), {"fill failed"});
    GgufFile f(path);
    EXPECT_EQ(f.get_u32("version"), 1u);
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    EXPECT_EQ(files, 1) << "temporary file left behind";
    EXPECT_LF_ERROR(w.write(dir + "/no/such/folder/x.gguf"), {"no/such/folder", "cannot create"});
}

// ---- malformed input ----------------------------------------------------------------------------

class GgufBad : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::temp_dir(); }
    // Writes `b` to <dir>/<name> and returns the path.
    std::string put(const std::string& name, const Bytes& b) {
        const std::string p = dir_ + "/" + name;
        write_bytes(p, b.b);
        return p;
    }
    std::string dir_;
};

TEST_F(GgufBad, TruncatedAtEveryOffset) {
    // A file with metadata of several kinds and tensors, cut at every header offset and at
    // many data offsets.
    const std::string full = dir_ + "/full.gguf";
    GgufWriter w;
    w.set("general.architecture", "llama");
    w.set("a.strings", std::vector<std::string>{"x", "yy", "zzz"});
    w.set("a.floats", std::vector<float>{1, 2, 3});
    w.set("a.u64", uint64_t{7});
    const auto t1 = random_bytes(4 * 8 * 4, 1), t2 = random_bytes(2 * 32 * 2, 2);
    w.add_tensor("t1", DType::F32, {4, 8}, t1.data(), t1.size());  // 128 bytes: no end padding
    w.add_tensor("t2", DType::F16, {2, 32}, t2.data(), t2.size());  // 128 bytes
    w.write(full);
    const std::string bytes = test::read_file(full);
    GgufFile ok(full);
    const size_t header_end = static_cast<size_t>(ok.data_offset());
    ASSERT_EQ(ok.data_offset() + 256, bytes.size());

    std::vector<size_t> cuts;
    for (size_t c = 0; c < header_end; ++c) cuts.push_back(c);
    for (size_t c = header_end; c < bytes.size(); c += 7) cuts.push_back(c);
    cuts.push_back(bytes.size() - 1);
    const std::string cut_path = dir_ + "/cut.gguf";
    for (size_t c : cuts) {
        SCOPED_TRACE("cut at " + std::to_string(c));
        write_bytes(cut_path, bytes.substr(0, c));
        const std::string m = EXPECT_LF_ERROR(GgufFile(cut_path), {cut_path});
        EXPECT_NE(m.find("truncated"), std::string::npos) << m;
        // And the same from memory (no file).
        const std::string part = bytes.substr(0, c);
        EXPECT_LF_ERROR(GgufFile::from_memory(part.data(), part.size(), "mem"), {"mem"});
    }
    // Inside the data: the message names the tensor and both sizes.
    write_bytes(cut_path, bytes.substr(0, bytes.size() - 10));
    EXPECT_LF_ERROR(GgufFile(cut_path),
                    {cut_path, "'t2'", "expected at least " + std::to_string(bytes.size()),
                     "file has " + std::to_string(bytes.size() - 10), "truncated"});
}

TEST_F(GgufBad, WrongMagic) {
    Bytes b;
    b.raw("GGUX").u32(3).u64(0).u64(0);
    const std::string p = put("magic.gguf", b);
    EXPECT_LF_ERROR(GgufFile(p), {p, "bad magic", "GGUX", "expected 'GGUF'"});
    Bytes st;  // safetensors bytes get a hint
    st.u64(2).raw("{}");
    const std::string q = put("st.gguf", st);
    EXPECT_LF_ERROR(GgufFile(q), {q, "safetensors"});
    Bytes tiny;
    tiny.raw("GG");
    const std::string r = put("tiny.gguf", tiny);
    EXPECT_LF_ERROR(GgufFile(r), {r, "file has 2", "truncated"});
    const std::string e = put("empty.gguf", Bytes{});
    EXPECT_LF_ERROR(GgufFile(e), {e, "file has 0"});
}

TEST_F(GgufBad, Version1And4) {
    const std::string p1 = put("v1.gguf", Bytes::gguf(1, 0, 0));
    EXPECT_LF_ERROR(GgufFile(p1), {p1, "version 1", "expected version 2 or 3", "hint"});
    const std::string p4 = put("v4.gguf", Bytes::gguf(4, 0, 0));
    EXPECT_LF_ERROR(GgufFile(p4), {p4, "version 4", "2 or 3"});
    const std::string pbe = put("be.gguf", Bytes::gguf(0x03000000, 0, 0));
    EXPECT_LF_ERROR(GgufFile(pbe), {pbe, "big-endian"});
    // Version 2 reads like 3.
    Bytes v2 = Bytes::gguf(2, 0, 1);
    v2.kv_u32("x", 5);
    const std::string p2 = put("v2.gguf", v2);
    EXPECT_EQ(GgufFile(p2).get_u32("x"), 5u);
}

TEST_F(GgufBad, TensorDataPastEndOfFile) {
    Bytes b = Bytes::gguf(3, 1, 0);
    b.tensor("blk.3.attn_q.weight", {64, 64}, 0, 0).pad_to(32).zeros(1000);
    const std::string p = put("short.gguf", b);
    EXPECT_LF_ERROR(GgufFile(p), {p, "'blk.3.attn_q.weight'", "64x64", "file has", "truncated"});
    // Offset near 2^64: no overflow, still an error.
    Bytes c = Bytes::gguf(3, 1, 0);
    c.tensor("w", {8}, 0, UINT64_MAX - 31).pad_to(32).zeros(32);
    const std::string q = put("huge_offset.gguf", c);
    EXPECT_LF_ERROR(GgufFile(q), {q, "'w'"});
}

TEST_F(GgufBad, UnknownTensorType) {
    Bytes b = Bytes::gguf(3, 1, 0);
    b.tensor("blk.0.ffn_up.weight", {256, 2}, 16, 0).pad_to(32).zeros(256);
    const std::string p = put("iq2_xxs.gguf", b);
    EXPECT_LF_ERROR(GgufFile(p), {p, "'blk.0.ffn_up.weight'", "type 16", "iq2_xxs", "supported"});
    Bytes c = Bytes::gguf(3, 1, 0);
    c.tensor("w", {32}, 9999, 0).pad_to(32).zeros(64);
    const std::string q = put("t9999.gguf", c);
    EXPECT_LF_ERROR(GgufFile(q), {q, "'w'", "9999"});
}

TEST_F(GgufBad, BadDimensions) {
    Bytes five = Bytes::gguf(3, 1, 0);
    five.tensor("w5", {1, 1, 1, 1, 1}, 0, 0).pad_to(32).zeros(32);
    const std::string p = put("dims5.gguf", five);
    EXPECT_LF_ERROR(GgufFile(p), {p, "'w5'", "5 dimensions", "1..4"});
    Bytes zero = Bytes::gguf(3, 1, 0);
    zero.tensor("w0", {4, 0}, 0, 0).pad_to(32).zeros(32);
    const std::string q = put("dim0.gguf", zero);
    EXPECT_LF_ERROR(GgufFile(q), {q, "'w0'", "dimension 1 is 0"});
    Bytes ovf = Bytes::gguf(3, 1, 0);
    ovf.tensor("big", {uint64_t{1} << 32, uint64_t{1} << 32, 4}, 0, 0).pad_to(32);
    const std::string r = put("overflow.gguf", ovf);
    EXPECT_LF_ERROR(GgufFile(r), {r, "'big'", "too many elements"});
    Bytes blk = Bytes::gguf(3, 1, 0);
    blk.tensor("q", {33, 2}, 8, 0).pad_to(32).zeros(128);
    const std::string s = put("block.gguf", blk);
    EXPECT_LF_ERROR(GgufFile(s), {s, "'q'", "q8_0", "33", "multiple of the block size 32"});
    Bytes nd0 = Bytes::gguf(3, 1, 0);
    nd0.tensor("s", {}, 0, 0).pad_to(32).zeros(32);
    const std::string t = put("ndims0.gguf", nd0);
    EXPECT_LF_ERROR(GgufFile(t), {t, "'s'", "0 dimensions"});
}

TEST_F(GgufBad, HugeLengthsAndCounts) {
    Bytes key = Bytes::gguf(3, 0, 1);
    key.u64(uint64_t{1} << 62).raw("abc").zeros(32);
    const std::string p = put("keylen.gguf", key);
    EXPECT_LF_ERROR(GgufFile(p), {p, "metadata key", "length 4611686018427387904", "truncated"});
    Bytes val = Bytes::gguf(3, 0, 1);
    val.str("s").u32(8).u64(UINT64_MAX).raw("x");
    const std::string q = put("vallen.gguf", val);
    EXPECT_LF_ERROR(GgufFile(q), {q, "string value", "truncated"});
    Bytes arr = Bytes::gguf(3, 0, 1);
    arr.str("a").u32(9).u32(8).u64(uint64_t{1} << 60).zeros(64);
    const std::string r = put("arrlen.gguf", arr);
    EXPECT_LF_ERROR(GgufFile(r), {r, "'a'", "strings", "truncated"});
    Bytes arr2 = Bytes::gguf(3, 0, 1);
    arr2.str("f").u32(9).u32(6).u64(uint64_t{1} << 62).zeros(64);  // 2^62 * 4 overflows
    const std::string s = put("arrlen2.gguf", arr2);
    EXPECT_LF_ERROR(GgufFile(s), {s, "array", "truncated"});
    const std::string t = put("ntensors.gguf", Bytes::gguf(3, uint64_t{1} << 40, 0));
    EXPECT_LF_ERROR(GgufFile(t), {t, "1099511627776 tensors"});
    const std::string u = put("nkv.gguf", Bytes::gguf(3, 0, UINT64_MAX));
    EXPECT_LF_ERROR(GgufFile(u), {u, "metadata entries"});
}

TEST_F(GgufBad, DuplicateNamesAndKeys) {
    Bytes b = Bytes::gguf(3, 2, 0);
    b.tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_to(32).zeros(64);
    const std::string p = put("dup.gguf", b);
    EXPECT_LF_ERROR(GgufFile(p), {p, "tensor 'w' appears twice"});
    Bytes k = Bytes::gguf(3, 0, 2);
    k.kv_u32("k", 1).kv_u32("k", 2);
    const std::string q = put("dupkey.gguf", k);
    EXPECT_LF_ERROR(GgufFile(q), {q, "key 'k' appears twice"});
    // Names with control characters stay on one line.
    Bytes n = Bytes::gguf(3, 2, 0);
    n.tensor("a\nb", {8}, 0, 0).tensor("a\nb", {8}, 0, 32).pad_to(32).zeros(64);
    const std::string r = put("dupnl.gguf", n);
    EXPECT_LF_ERROR(GgufFile(r), {r, "'a\\x0ab'"});
}

TEST_F(GgufBad, BadValueTypesAndAlignment) {
    Bytes t = Bytes::gguf(3, 0, 1);
    t.str("odd").u32(13).u32(0);
    const std::string p = put("type13.gguf", t);
    EXPECT_LF_ERROR(GgufFile(p), {p, "'odd'", "unknown value type 13"});
    Bytes n = Bytes::gguf(3, 0, 1);
    n.str("nest").u32(9).u32(9).u64(1).u32(4).u64(1).u32(1);
    const std::string q = put("nested.gguf", n);
    EXPECT_LF_ERROR(GgufFile(q), {q, "'nest'", "array of arrays"});
    Bytes e = Bytes::gguf(3, 0, 1);
    e.str("e").u32(9).u32(77).u64(0);
    const std::string r = put("elemtype.gguf", e);
    EXPECT_LF_ERROR(GgufFile(r), {r, "'e'", "unknown value type 77"});
    Bytes bo = Bytes::gguf(3, 0, 1);
    bo.str("b").u32(7).u8(2);
    const std::string s = put("bool2.gguf", bo);
    EXPECT_LF_ERROR(GgufFile(s), {s, "'b'", "bool value 2"});
    Bytes al = Bytes::gguf(3, 0, 1);
    al.kv_u32("general.alignment", 48);
    const std::string u = put("align48.gguf", al);
    EXPECT_LF_ERROR(GgufFile(u), {u, "general.alignment is 48", "power of two"});
    Bytes als = Bytes::gguf(3, 0, 1);
    als.kv_str("general.alignment", "32");
    const std::string v = put("alignstr.gguf", als);
    EXPECT_LF_ERROR(GgufFile(v), {v, "general.alignment", "string", "u32"});
    Bytes off = Bytes::gguf(3, 1, 0);
    off.tensor("w", {4}, 0, 4).pad_to(32).zeros(64);
    const std::string x = put("offset.gguf", off);
    EXPECT_LF_ERROR(GgufFile(x), {x, "'w'", "offset 4", "alignment 32"});
    Bytes ov = Bytes::gguf(3, 2, 0);
    ov.tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32).zeros(128);
    const std::string y = put("overlap.gguf", ov);
    EXPECT_LF_ERROR(GgufFile(y), {y, "'a'", "overlaps", "'b'"});
}

TEST_F(GgufBad, NotAFile) {
    EXPECT_LF_ERROR(GgufFile(dir_ + "/missing.gguf"), {"missing.gguf", "cannot open"});
    EXPECT_LF_ERROR(GgufFile(dir_), {dir_, "not a regular file"});
}

}  // namespace
}  // namespace llmforge
