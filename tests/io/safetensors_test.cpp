// Safetensors reader/writer: round trips (single file and a 2-shard folder) and malformed input.
#include "io/safetensors.h"

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


// Safetensors bytes from a JSON header and a data section.
std::string st_bytes(const std::string& header, const std::string& data) {
    Bytes b;
    b.u64(header.size()).raw(header).raw(data);
    return b.b;
}

TEST(Safetensors, RoundTripsSingleFile) {
    const std::string dir = test::temp_dir();
    const std::string path = dir + "/model.safetensors";
    const auto a = random_bytes(3 * 4 * 4, 1), b = random_bytes(5 * 2, 2), c = random_bytes(2 * 2, 3),
               s = random_bytes(4, 4);
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    w.add_tensor("model.layers.0.self_attn.q_proj.weight", DType::F32, {3, 4}, a.data(), a.size());
    w.add_tensor("b.f16", DType::F16, {5}, b.data(), b.size());
    w.add_tensor("c.bf16", DType::BF16, {1, 2}, c.data(), c.size());
    w.add_tensor("scalar", DType::F32, {}, s.data(), s.size());
    w.add_tensor("empty", DType::F32, {0, 3}, nullptr, 0);
    Tensor t = Tensor::empty(DType::F32, {2}, "from_tensor");
    t.ptr<float>()[1] = 3.5f;
    w.add_tensor(t);
    EXPECT_EQ(w.n_tensors(), 6u);
    w.write(path);

    SafetensorsFile f(path);
    EXPECT_EQ(f.data_offset() % 8, 0u);  // the writer pads the header
    EXPECT_EQ(f.metadata().at("format"), "pt");
    ASSERT_EQ(f.tensor_infos().size(), 6u);
    EXPECT_TRUE(std::is_sorted(f.tensor_infos().begin(), f.tensor_infos().end(),
                               [](const auto& x, const auto& y) { return x.name < y.name; }));
    Tensor ta = f.tensor("model.layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(ta.dtype(), DType::F32);
    EXPECT_EQ(ta.shape(), (std::vector<int64_t>{3, 4}));  // row-major, not reversed
    EXPECT_EQ(std::memcmp(ta.data(), a.data(), a.size()), 0);
    Tensor tb = f.tensor("b.f16");
    EXPECT_EQ(tb.dtype(), DType::F16);
    EXPECT_EQ(std::memcmp(tb.data(), b.data(), b.size()), 0);
    Tensor tc = f.tensor("c.bf16");
    EXPECT_EQ(tc.dtype(), DType::BF16);
    EXPECT_EQ(std::memcmp(tc.data(), c.data(), c.size()), 0);
    Tensor ts = f.tensor("scalar");
    EXPECT_TRUE(ts.shape().empty());
    EXPECT_EQ(std::memcmp(ts.data(), s.data(), 4), 0);
    EXPECT_EQ(f.find_tensor("empty")->shape, (std::vector<int64_t>{0, 3}));
    EXPECT_EQ(f.tensor("from_tensor").ptr<float>()[1], 3.5f);
    EXPECT_EQ(f.find_tensor("scalar")->shape_str(), "scalar");
    EXPECT_LF_ERROR(f.tensor("nope"), {path, "'nope'", "not found"});

    // A folder holding model.safetensors opens as a set too.
    SafetensorsSet set(dir);
    EXPECT_EQ(set.n_shards(), 1u);
    EXPECT_EQ(set.tensor_names().size(), 6u);
    EXPECT_EQ(std::memcmp(set.tensor("b.f16").data(), b.data(), b.size()), 0);
    // No temporary file is left behind.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    EXPECT_EQ(files, 1);
}

TEST(Safetensors, RoundTripsShardedFolder) {
    const std::string dir = test::temp_dir();
    const auto a = random_bytes(16, 1), b = random_bytes(8, 2), c = random_bytes(12, 3);
    {
        SafetensorsWriter w1;
        w1.add_tensor("model.embed_tokens.weight", DType::F32, {2, 2}, a.data(), a.size());
        w1.add_tensor("model.norm.weight", DType::BF16, {4}, b.data(), b.size());
        w1.write(dir + "/model-00001-of-00002.safetensors");
        SafetensorsWriter w2;
        w2.add_tensor("lm_head.weight", DType::F16, {2, 3}, c.data(), c.size());
        w2.write(dir + "/model-00002-of-00002.safetensors");
    }
    write_bytes(dir + "/model.safetensors.index.json", R"({
      "metadata": {"total_size": 36},
      "weight_map": {
        "lm_head.weight": "model-00002-of-00002.safetensors",
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00001-of-00002.safetensors"
      }})");
    SafetensorsSet set(dir);
    EXPECT_EQ(set.n_shards(), 2u);
    EXPECT_EQ(set.tensor_names(), (std::vector<std::string>{"lm_head.weight",
                                                            "model.embed_tokens.weight",
                                                            "model.norm.weight"}));
    Tensor tc = set.tensor("lm_head.weight");
    EXPECT_EQ(tc.dtype(), DType::F16);
    EXPECT_EQ(tc.shape(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(std::memcmp(tc.data(), c.data(), c.size()), 0);
    EXPECT_EQ(std::memcmp(set.tensor("model.embed_tokens.weight").data(), a.data(), a.size()), 0);
    EXPECT_EQ(std::memcmp(set.tensor("model.norm.weight").data(), b.data(), b.size()), 0);
    EXPECT_NE(set.shard_of("lm_head.weight").path().find("model-00002-of-00002"),
              std::string::npos);
    EXPECT_EQ(set.find_tensor("model.norm.weight")->dtype_name, "BF16");
    EXPECT_LF_ERROR(set.tensor("model.layers.0.mlp.up_proj.weight"),
                    {dir, "'model.layers.0.mlp.up_proj.weight'", "not found"});

    // Missing shard file.
    fs::remove(dir + "/model-00002-of-00002.safetensors");
    EXPECT_LF_ERROR(SafetensorsSet(dir), {"model.safetensors.index.json",
                                          "model-00002-of-00002.safetensors", "'lm_head.weight'",
                                          "missing", "incomplete download"});
    // Index placing a tensor in a shard that lacks it.
    write_bytes(dir + "/model.safetensors.index.json",
                R"({"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}})");
    EXPECT_LF_ERROR(SafetensorsSet(dir), {"'lm_head.weight'", "model-00001-of-00002.safetensors",
                                          "does not contain"});
    // Bad index JSON and shard names escaping the folder.
    write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map": )");
    EXPECT_LF_ERROR(SafetensorsSet(dir), {"model.safetensors.index.json", "not valid JSON"});
    write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map": {"x": "../x.safetensors"}})");
    EXPECT_LF_ERROR(SafetensorsSet(dir), {"'x'", "../x.safetensors"});
    write_bytes(dir + "/model.safetensors.index.json", R"({"no_map": 1})");
    EXPECT_LF_ERROR(SafetensorsSet(dir), {"weight_map"});
}

TEST(Safetensors, EmptyOrMissingFolder) {
    const std::string dir = test::temp_dir();
    EXPECT_LF_ERROR(SafetensorsSet(dir), {dir, "model.safetensors"});
    EXPECT_LF_ERROR(SafetensorsSet(dir + "/nope"), {"nope", "no such file"});
}

TEST(Safetensors, WriterRejectsBadInput) {
    SafetensorsWriter w;
    uint8_t x[64] = {};
    w.add_tensor("a", DType::F32, {2}, x, 8);
    EXPECT_LF_ERROR(w.add_tensor("a", DType::F32, {2}, x, 8), {"'a'", "twice"});
    EXPECT_LF_ERROR(w.add_tensor("q", DType::Q8_0, {32}, x, 34), {"'q'", "q8_0", "f32, f16 or bf16"});
    EXPECT_LF_ERROR(w.add_tensor("b", DType::F16, {3}, x, 8), {"'b'", "8 bytes", "expected 6"});
    EXPECT_LF_ERROR(w.add_tensor("__metadata__", DType::F16, {3}, x, 6), {"__metadata__"});
}

class SafetensorsBad : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::temp_dir(); }
    std::string put(const std::string& name, const std::string& bytes) {
        const std::string p = dir_ + "/" + name;
        write_bytes(p, bytes);
        return p;
    }
    std::string dir_;
};

TEST_F(SafetensorsBad, HeaderLength) {
    Bytes b;
    b.u64(1000).raw("{}");
    const std::string p = put("len.safetensors", b.b);
    EXPECT_LF_ERROR(SafetensorsFile(p), {p, "header length is 1000", "truncated"});
    Bytes h;
    h.u64(UINT64_MAX).raw("{}");
    const std::string q = put("len2.safetensors", h.b);
    EXPECT_LF_ERROR(SafetensorsFile(q), {q, "header length"});
    const std::string r = put("short.safetensors", "abc");
    EXPECT_LF_ERROR(SafetensorsFile(r), {r, "file has 3", "truncated"});
    Bytes z;
    z.u64(0);
    const std::string s = put("zero.safetensors", z.b);
    EXPECT_LF_ERROR(SafetensorsFile(s), {s, "'{'"});
}

TEST_F(SafetensorsBad, BadJson) {
    const std::string p = put("json.safetensors", st_bytes("{\"a\": [1,\n", ""));
    EXPECT_LF_ERROR(SafetensorsFile(p), {p, "not valid JSON"});
    const std::string q = put("utf8.safetensors", st_bytes("{\"\xff\": 1}", ""));
    EXPECT_LF_ERROR(SafetensorsFile(q), {q, "not valid JSON"});
    const std::string r = put("notobj.safetensors", st_bytes("{\"a\": 5}", ""));
    EXPECT_LF_ERROR(SafetensorsFile(r), {r, "'a'", "expected an object"});
    const std::string s =
        put("nodtype.safetensors", st_bytes(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", "abcd"));
    EXPECT_LF_ERROR(SafetensorsFile(s), {s, "'a'", "dtype"});
    const std::string t = put("badshape.safetensors",
                              st_bytes(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "abcd"));
    EXPECT_LF_ERROR(SafetensorsFile(t), {t, "'a'", "shape entry -1"});
    const std::string u = put("badoffs.safetensors",
                              st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", "abcd"));
    EXPECT_LF_ERROR(SafetensorsFile(u), {u, "'a'", "data_offsets"});
}

TEST_F(SafetensorsBad, OffsetsOutOfRange) {
    const std::string p = put("range.safetensors",
                              st_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                                       std::string(8, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(p), {p, "'w'", "[0, 16]", "8 bytes", "truncated"});
    const std::string q = put("rev.safetensors",
                              st_bytes(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
                                       std::string(8, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(q), {q, "'w'", "[8, 4]"});
    const std::string r = put("huge.safetensors",
                              st_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551615]}})",
                                       std::string(8, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(r), {r, "'w'"});
}

TEST_F(SafetensorsBad, ShapeDtypeMismatch) {
    const std::string p = put("size.safetensors",
                              st_bytes(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}})",
                                       std::string(16, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(p), {p, "'w'", "2x3", "16 bytes", "expected 24"});
    const std::string q = put("ovf.safetensors",
                              st_bytes(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}})",
                                       std::string(16, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(q), {q, "'w'", "too many elements"});
    const std::string r = put("ovf2.safetensors",
                              st_bytes(R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 16]}})",
                                       std::string(16, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(r), {r, "'w'", "expected"});
}

TEST_F(SafetensorsBad, Overlap) {
    const std::string p = put(
        "overlap.safetensors",
        st_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                 std::string(16, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(p), {p, "'a'", "overlaps", "'b'"});
}

TEST_F(SafetensorsBad, UnsupportedDtype) {
    // I64 is a real safetensors dtype: the file opens, loading that tensor fails.
    const std::string p = put(
        "i64.safetensors",
        st_bytes(R"({"position_ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
                     "w": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})",
                 std::string(24, 'x')));
    SafetensorsFile f(p);
    EXPECT_FALSE(f.find_tensor("position_ids")->loadable);
    EXPECT_LF_ERROR(f.tensor("position_ids"), {p, "'position_ids'", "dtype I64", "F32, F16, BF16"});
    EXPECT_EQ(f.tensor("w").dtype(), DType::F32);
    const std::string q = put("i8.safetensors",
                              st_bytes(R"({"q": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
                                       std::string(4, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(q).tensor("q"), {q, "'q'", "I8"});
    // A dtype name the format does not define fails at open.
    const std::string r = put("q4.safetensors",
                              st_bytes(R"({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 4]}})",
                                       std::string(4, 'x')));
    EXPECT_LF_ERROR(SafetensorsFile(r), {r, "'w'", "'Q4'", "not a safetensors dtype"});
}

TEST_F(SafetensorsBad, MisalignedDataIsCopied) {
    // Header of odd length: F32 data starts at an odd address; tensor() copies instead of viewing.
    const std::string header = R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}} )";
    ASSERT_NE((8 + header.size()) % 4, 0u);
    std::string data(8, '\0');
    const float v[2] = {1.25f, -2.0f};
    std::memcpy(data.data(), v, 8);
    const std::string p = put("odd.safetensors", st_bytes(header, data));
    SafetensorsFile f(p);
    Tensor t = f.tensor("w");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 4, 0u);
    EXPECT_EQ(t.ptr<float>()[0], 1.25f);
    EXPECT_EQ(t.ptr<float>()[1], -2.0f);
}

TEST_F(SafetensorsBad, TruncatedAtEveryOffset) {
    const std::string full = dir_ + "/full.safetensors";
    SafetensorsWriter w;
    const auto a = random_bytes(64, 1);
    w.add_tensor("a", DType::F32, {4, 4}, a.data(), a.size());
    w.write(full);
    const std::string bytes = test::read_file(full);
    for (size_t c = 0; c < bytes.size(); ++c) {
        SCOPED_TRACE("cut at " + std::to_string(c));
        const std::string part = bytes.substr(0, c);
        EXPECT_LF_ERROR(SafetensorsFile::from_memory(part.data(), part.size(), "cut.safetensors"),
                        {"cut.safetensors"});
    }
}

}  // namespace
}  // namespace llmforge
