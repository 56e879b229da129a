// Importance matrices: llama.cpp's files read as llama-quantize reads them, our collection equal to
// llama-imatrix's on the same model, text and chunking, both formats written and read back, and
// an importance matrix of another model refused in one line.
#include "runtime/imatrix.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {
namespace {

std::string fixture(const std::string& name) { return test::src_path("tests/data/quant/" + name); }

// The legacy .dat parsed independently: name -> (ncall, values).
std::map<std::string, std::pair<int, std::vector<float>>> raw_dat(const std::string& path) {
    const std::string b = test::read_file(path);
    size_t p = 0;
    auto i32 = [&] {
        int32_t v;
        std::memcpy(&v, b.data() + p, 4);
        p += 4;
        return v;
    };
    std::map<std::string, std::pair<int, std::vector<float>>> m;
    const int n = i32();
    for (int i = 0; i < n; ++i) {
        const int len = i32();
        std::string name = b.substr(p, len);
        p += len;
        const int ncall = i32(), nval = i32();
        std::vector<float> v(nval);
        std::memcpy(v.data(), b.data() + p, 4 * nval);
        p += 4 * nval;
        m[name] = {ncall, v};
    }
    return m;
}

// Our collection over calib.txt as llama-imatrix -c 128 --chunks 8 ran it (make_fixtures.sh).
Imatrix collect_tiny() {
    auto m = Model::load(fixture("tiny-f32.gguf"));
    std::string text = read_file(fixture("calib.txt"), "text");
    if (!text.empty() && text.back() == '\n') text.pop_back();  // llama.cpp's -f drops it
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> ids = tok->encode(text, tok->add_bos_default(), false);
    ImatrixOptions o;
    o.chunk = 128;
    o.max_chunks = 8;
    o.n_threads = 2;
    return collect_imatrix(*m, ids, o);
}

TEST(Imatrix, ReadsLlamaCppDatAsLlamaQuantizeDoes) {
    const std::string path = fixture("tiny.imatrix.dat");
    const Imatrix im = read_imatrix(path);
    const auto raw = raw_dat(path);
    ASSERT_EQ(im.tensors.size(), 7u);
    ASSERT_EQ(raw.size(), 7u);
    EXPECT_EQ(im.chunks, 8);
    ASSERT_EQ(im.datasets.size(), 1u);
    EXPECT_EQ(im.datasets[0], "calib.txt");
    for (const auto& [name, e] : raw) {
        ASSERT_TRUE(im.tensors.count(name)) << name;
        EXPECT_EQ(e.first, 8) << name;
        const std::vector<float> imp = im.importance(name, 256);
        ASSERT_EQ(imp.size(), e.second.size());
        // llama-quantize: v /= ncall, in float.
        for (size_t j = 0; j < imp.size(); ++j) EXPECT_EQ(imp[j], e.second[j] / static_cast<float>(e.first)) << name;
        EXPECT_GT(*std::max_element(imp.begin(), imp.end()), 0.0f);
    }
    EXPECT_THROW(im.importance("blk.0.attn_q.weight", 512), Error);
    EXPECT_THROW(im.importance("blk.9.attn_q.weight", 256), Error);
}

TEST(Imatrix, CollectionEqualsLlamaImatrix) {
    const Imatrix ours = collect_tiny();
    EXPECT_EQ(ours.chunks, 8);
    EXPECT_EQ(ours.chunk_size, 128);
    // With an f32 KV cache llama.cpp computes what we compute: equal to float rounding.
    const Imatrix f32kv = read_imatrix(fixture("tiny.imatrix-f32kv.dat"));
    // Its default f16 cache rounds K and V: 1e-3 relative downstream of attention.
    const Imatrix f16kv = read_imatrix(fixture("tiny.imatrix.dat"));
    ASSERT_EQ(ours.tensors.size(), f32kv.tensors.size());
    for (const auto& [name, t] : f32kv.tensors) {
        ASSERT_TRUE(ours.tensors.count(name)) << name;
        EXPECT_EQ(ours.tensors.at(name).ncall, t.ncall) << name;
        EXPECT_EQ(ours.tensors.at(name).rows, 8 * 128) << name;
        const std::vector<float> a = ours.importance(name, 256), b = f32kv.importance(name, 256),
                                 c = f16kv.importance(name, 256);
        for (size_t j = 0; j < a.size(); ++j) {
            EXPECT_NEAR(a[j], b[j], 2e-5 * std::abs(b[j]) + 1e-12) << name << " column " << j;
            EXPECT_NEAR(a[j], c[j], 5e-3 * std::abs(c[j]) + 1e-12) << name << " column " << j;
        }
    }
}

TEST(Imatrix, BothFormatsRoundTrip) {
    const Imatrix a = collect_tiny();
    const std::string dir = test::temp_dir();
    Imatrix named = a;
    named.datasets = {"calib.txt"};
    write_imatrix(named, dir + "/m.gguf");
    write_imatrix(named, dir + "/m.dat");
    const Imatrix g = read_imatrix(dir + "/m.gguf");
    const Imatrix d = read_imatrix(dir + "/m.dat");
    EXPECT_EQ(g.chunks, 8);
    EXPECT_EQ(g.chunk_size, 128);
    EXPECT_EQ(g.datasets, named.datasets);
    EXPECT_EQ(d.chunks, 8);
    EXPECT_EQ(d.datasets, named.datasets);
    ASSERT_EQ(g.tensors.size(), a.tensors.size());
    ASSERT_EQ(d.tensors.size(), a.tensors.size());
    for (const auto& [name, t] : a.tensors) {
        // GGUF keeps the raw sums and row counts exactly.
        EXPECT_EQ(g.tensors.at(name).sum_sq, t.sum_sq) << name;
        EXPECT_EQ(g.tensors.at(name).rows, t.rows) << name;
        const std::vector<float> ia = a.importance(name, 256), ig = g.importance(name, 256), id = d.importance(name, 256);
        EXPECT_EQ(ia, ig) << name;
        // .dat stores mean·ncall: one rounding each way.
        for (size_t j = 0; j < ia.size(); ++j) EXPECT_NEAR(id[j], ia[j], 1e-6 * std::abs(ia[j])) << name;
    }
    // llama.cpp's .dat read and written again holds the same entries, bit for bit (the order of
    // entries is ours: sorted by name), and the same trailer.
    write_imatrix(read_imatrix(fixture("tiny.imatrix.dat")), dir + "/again.dat");
    const auto again = raw_dat(dir + "/again.dat"), orig = raw_dat(fixture("tiny.imatrix.dat"));
    EXPECT_TRUE(again == orig);
    EXPECT_EQ(test::read_file(dir + "/again.dat").size(), test::read_file(fixture("tiny.imatrix.dat")).size());
    const Imatrix again_m = read_imatrix(dir + "/again.dat");
    EXPECT_EQ(again_m.chunks, 8);
    EXPECT_EQ(again_m.datasets, std::vector<std::string>{"calib.txt"});
    // GGUF -> .dat -> GGUF keeps the importance.
    write_imatrix(d, dir + "/d.gguf");
    const Imatrix dg = read_imatrix(dir + "/d.gguf");
    for (const auto& [name, t] : a.tensors) EXPECT_EQ(dg.importance(name, 256), d.importance(name, 256)) << name;
}

TEST(Imatrix, AnotherModelsMatrixIsOneClearError) {
    const Imatrix im = read_imatrix(fixture("tiny.imatrix.dat"));
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"})
        shapes[std::string("blk.0.") + n + ".weight"] = {288, 288};
    shapes["blk.0.ffn_down.weight"] = {288, 768};
    try {
        check_imatrix_matches(im, shapes, "quantize: other.dat");
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("quantize: other.dat"), std::string::npos) << msg;
        EXPECT_NE(msg.find("blk.0."), std::string::npos) << msg;
        EXPECT_NE(msg.find("256 columns"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    shapes.clear();
    shapes["blk.0.attn_q.weight"] = {256, 256};
    EXPECT_THROW(check_imatrix_matches(im, shapes, "x"), Error);  // entries the model does not have
    // The right model passes.
    for (const auto& [name, t] : im.tensors) shapes[name] = {256, 256};
    EXPECT_NO_THROW(check_imatrix_matches(im, shapes, "x"));
}

TEST(Imatrix, BadFilesAreErrors) {
    const std::string dir = test::temp_dir();
    EXPECT_THROW(read_imatrix(dir + "/missing.dat"), Error);
    test::write_file(dir + "/garbage.dat", "this is not an importance matrix at all");
    EXPECT_THROW(read_imatrix(dir + "/garbage.dat"), Error);
    const std::string good = test::read_file(fixture("tiny.imatrix.dat"));
    for (size_t cut : {size_t{3}, size_t{30}, good.size() / 2, good.size() - 20}) {
        test::write_file(dir + "/cut.dat", good.substr(0, cut));
        EXPECT_THROW(read_imatrix(dir + "/cut.dat"), Error) << cut;
    }
    // A model is not an importance matrix.
    EXPECT_THROW(read_imatrix(fixture("tiny-Q8_0.gguf")), Error);
}

}  // namespace
}  // namespace llmforge
