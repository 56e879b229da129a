// open_model_files / load_vocab (what `serve`'s /admin/reload, -m and --tokenizer reach) on
// special files: a FIFO (a blocking open would wedge the server's reload lock forever), a symlink
// to one, /dev/zero and /dev/urandom, a socket, a folder where a file belongs, an empty file — as
// the model, as a file inside a Hugging Face folder, beside a llama2.c checkpoint and as the
// tokenizer. Each must be one clear Error line, under a watchdog so that a regression fails
// instead of hanging. And every file a load reads is opened exactly once (counted with inotify,
// which sees opens from any API, and by core/file.h's counter).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "io/safetensors.h"
#include "io/special_files.h"
#include "io/io_test_helpers.h"
#include "model/model.h"
#include "model/vocab_source.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTokenizerJson = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
    "merges": [["a", "b"]]},
    "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
    "added_tokens": [{"id": 5, "content": "<eos>", "special": true},
                     {"id": 4, "content": "<tool>", "special": false}]})";  // 6 tokens

ModelConfig tiny_config(int64_t n_vocab) {
    ModelConfig c;
    c.arch = "llama";
    c.name = "tiny";
    c.n_vocab = n_vocab;
    c.n_embd = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 4;
    c.n_ff = 16;
    c.n_ctx_train = 64;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    return c;
}

Vocab tiny_vocab() {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>", "a", "b", "\xE2\x96\x81"};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
               TokenType::kNormal, TokenType::kNormal};
    v.scores = {0, 0, 0, -1, -2, -3};
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

// A GGUF with config, vocabulary (6 tokens) and the embedding.
void write_gguf(const std::string& path) {
    const ModelConfig c = tiny_config(6);
    GgufWriter w;
    gguf_write_config(w, c);
    gguf_write_vocab(w, tiny_vocab());
    const std::vector<float> e(static_cast<size_t>(c.n_vocab * c.n_embd), 0.5f);
    w.add_tensor("token_embd.weight", DType::F32, {c.n_vocab, c.n_embd}, e.data(), e.size() * 4);
    w.write(path);
}

// A Hugging Face folder: config.json (6 tokens), model.safetensors and, when asked,
// tokenizer.json + tokenizer_config.json.
void write_hf_folder(const std::string& dir, bool tokenizer) {
    fs::create_directories(dir);
    const ModelConfig c = tiny_config(6);
    test::write_bytes(dir + "/config.json", hf_config_write(c));
    SafetensorsWriter w;
    const std::vector<float> e(static_cast<size_t>(c.n_vocab * c.n_embd), 0.5f);
    w.add_tensor("model.embed_tokens.weight", DType::F32, {c.n_vocab, c.n_embd}, e.data(), e.size() * 4);
    w.write(dir + "/model.safetensors");
    if (tokenizer) {
        test::write_bytes(dir + "/tokenizer.json", kTokenizerJson);
        test::write_bytes(dir + "/tokenizer_config.json", R"({"eos_token": {"content": "<eos>"}})");
    }
}

// A llama2.c checkpoint (dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab 4 shared, seq 4) and
// its tokenizer.bin beside it (4 tokens).
void write_llama2c(const std::string& dir) {
    fs::create_directories(dir);
    const int32_t C = 8, F = 16, L = 1, H = 2, KVH = 1, V = 4, T = 4;
    const int32_t kv = C * KVH / H, head = C / H;
    const int64_t n = V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C + 3 * L * F * C + C + T * head;
    test::Bytes b;
    for (int32_t x : {C, F, L, H, KVH, V, T}) b.i32(x);
    for (int64_t i = 0; i < n; ++i) b.f32(0.01f * static_cast<float>(i % 7));
    test::write_bytes(dir + "/model.bin", b.b);
    test::Bytes t;
    t.i32(8);
    for (const char* piece : {"<unk>", "\n<s>\n", "\n</s>\n", " a"}) {
        t.f32(0).i32(static_cast<int32_t>(std::strlen(piece))).raw(piece);
    }
    test::write_bytes(dir + "/tokenizer.bin", t.b);
}

class LoaderSpecialFiles : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::temp_dir(); }
    // open_model_files under the watchdog; FIFOs in `fifos` are unblocked if it hangs.
    std::string open_msg(const std::string& path, const std::vector<std::string>& fifos = {},
                         const std::string& tokenizer = "") {
        return test::run_bounded([&] { (void)open_model_files(path, tokenizer); }, fifos);
    }
    std::string vocab_msg(const std::string& path, const std::vector<std::string>& fifos = {}) {
        return test::run_bounded([&] { (void)load_vocab(path); }, fifos);
    }
    std::string dir_;
};

TEST_F(LoaderSpecialFiles, ModelPathThatIsNotARegularFileIsRefused) {
    const std::string fifo = test::make_fifo(dir_ + "/model.gguf");
    test::expect_message(open_msg(fifo, {fifo}),
                         {fifo, "is a FIFO (named pipe), not a regular file",
                          "expected a model file (.gguf or llama2.c .bin) or a Hugging Face model folder",
                          "hint: reading a FIFO blocks"});
    const std::string link = test::make_symlink(fifo, dir_ + "/link.gguf");
    test::expect_message(open_msg(link, {fifo}), {link, "is a FIFO"});
    for (const char* dev : {"/dev/zero", "/dev/urandom"}) {
        if (::access(dev, R_OK) != 0) continue;
        test::expect_message(open_msg(dev), {dev, "is a character device, not a regular file", "never end"});
    }
    const std::string sock = test::make_socket(dir_ + "/model.sock");
    test::expect_message(open_msg(sock), {sock, "is a socket, not a regular file"});
    const std::string empty = dir_ + "/empty.gguf";
    test::write_bytes(empty, "");
    test::expect_message(open_msg(empty), {empty, "is empty (0 bytes)", "truncated"});
    test::expect_message(open_msg(dir_ + "/missing.gguf"), {"missing.gguf", "no such file or folder"});
    fs::create_directories(dir_ + "/folder");
    test::expect_message(open_msg(dir_ + "/folder"), {"folder has no config.json"});
}

TEST_F(LoaderSpecialFiles, SpecialFilesInsideAHuggingFaceFolderAreRefused) {
    struct Case {
        const char* file;
        const char* expect;
    };
    for (const Case& c : {Case{"config.json", "config.json"}, Case{"model.safetensors", ".safetensors"},
                          Case{"tokenizer.json", "tokenizer.json"},
                          Case{"tokenizer_config.json", "tokenizer_config.json"}}) {
        SCOPED_TRACE(c.file);
        const std::string hf = dir_ + "/hf-" + c.file;
        write_hf_folder(hf, true);
        const std::string p = hf + "/" + c.file;
        fs::remove(p);
        test::make_fifo(p);
        test::expect_message(open_msg(hf, {p}), {p, "is a FIFO", c.expect});
        fs::remove(p);
        fs::create_directories(p);
        test::expect_message(open_msg(hf), {p, "is a folder, not a regular file"});
        fs::remove(p);
        test::make_socket(p);
        test::expect_message(open_msg(hf), {p, "is a socket"});
        fs::remove(p);
        test::make_symlink("/dev/zero", p);
        test::expect_message(open_msg(hf), {p, "is a character device"});
    }
    // A shard named by the index that is a FIFO.
    const std::string sh = dir_ + "/sharded";
    write_hf_folder(sh, false);
    fs::rename(sh + "/model.safetensors", sh + "/model-00001-of-00002.safetensors");
    test::make_fifo(sh + "/model-00002-of-00002.safetensors");
    test::write_bytes(sh + "/model.safetensors.index.json",
                      R"({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                                         "lm_head.weight": "model-00002-of-00002.safetensors"}})");
    test::expect_message(open_msg(sh, {sh + "/model-00002-of-00002.safetensors"}),
                         {"model-00002-of-00002.safetensors", "is a FIFO"});
    fs::remove(sh + "/model.safetensors.index.json");
    test::make_fifo(sh + "/model.safetensors.index.json");
    test::expect_message(open_msg(sh, {sh + "/model.safetensors.index.json"}),
                         {"model.safetensors.index.json", "is a FIFO"});
    // Empty config.json / tokenizer.json.
    const std::string e = dir_ + "/hf-empty";
    write_hf_folder(e, true);
    test::write_bytes(e + "/tokenizer.json", "");
    test::expect_message(open_msg(e), {e + "/tokenizer.json", "is empty (0 bytes)"});
    test::write_bytes(e + "/config.json", "");
    test::expect_message(open_msg(e), {e + "/config.json", "is empty (0 bytes)"});
}

TEST_F(LoaderSpecialFiles, FifoTokenizerBesideALlama2cCheckpointIsRefused) {
    const std::string d = dir_ + "/l2c";
    write_llama2c(d);
    ASSERT_EQ(test::run_bounded([&] { (void)open_model_files(d + "/model.bin"); }), "");
    fs::remove(d + "/tokenizer.bin");
    test::make_fifo(d + "/tokenizer.bin");
    test::expect_message(open_msg(d + "/model.bin", {d + "/tokenizer.bin"}), {d + "/tokenizer.bin", "is a FIFO"});
}

TEST_F(LoaderSpecialFiles, TokenizerOptionThatIsNotARegularFileIsRefused) {
    const std::string model = dir_ + "/m.gguf";
    write_gguf(model);
    const std::string fifo = test::make_fifo(dir_ + "/tok.gguf");
    const std::string fifo_json = test::make_fifo(dir_ + "/tokenizer.json");
    test::expect_message(open_msg(model, {fifo}, fifo), {fifo, "is a FIFO", "expected a tokenizer"});
    test::expect_message(open_msg(model, {fifo_json}, fifo_json), {fifo_json, "is a FIFO"});
    test::expect_message(open_msg(model, {}, "/dev/urandom"), {"/dev/urandom", "is a character device"});
    test::expect_message(vocab_msg(fifo, {fifo}), {fifo, "is a FIFO"});
    test::expect_message(vocab_msg(fifo_json, {fifo_json}), {fifo_json, "is a FIFO"});
    test::expect_message(vocab_msg(dir_, {fifo_json}), {fifo_json, "is a FIFO"});  // folder holding tokenizer.json
    test::expect_message(vocab_msg("/dev/zero"), {"/dev/zero", "is a character device"});
    const std::string sock = test::make_socket(dir_ + "/tok.sock");
    test::expect_message(vocab_msg(sock), {sock, "is a socket"});
    const std::string empty = dir_ + "/empty.bin";
    test::write_bytes(empty, "");
    test::expect_message(vocab_msg(empty), {empty, "is empty (0 bytes)"});
    const std::string empty_json = dir_ + "/sub/tokenizer.json";
    fs::create_directories(dir_ + "/sub");
    test::write_bytes(empty_json, "");
    test::expect_message(vocab_msg(empty_json), {empty_json, "is empty (0 bytes)"});
}

TEST_F(LoaderSpecialFiles, AfterRefusalsAGoodModelStillLoads) {
    // What /admin/reload needs: a refused FIFO leaves nothing blocked or held.
    const std::string fifo = test::make_fifo(dir_ + "/bad.gguf");
    for (int i = 0; i < 3; ++i) test::expect_message(open_msg(fifo, {fifo}), {"is a FIFO"});
    const std::string model = dir_ + "/good.gguf";
    write_gguf(model);
    ModelFiles m;
    ASSERT_EQ(test::run_bounded([&] { m = open_model_files(model); }), "");
    EXPECT_EQ(m.format, "gguf");
    EXPECT_EQ(m.vocab.tokens.size(), 6u);
}

TEST_F(LoaderSpecialFiles, EveryFileIsOpenedOnce) {
    // GGUF: the magic probe, config, vocabulary and tensors all come from one open.
    const std::string gguf = dir_ + "/once.gguf";
    write_gguf(gguf);
    const std::string tok = dir_ + "/tok.gguf";
    fs::copy_file(gguf, tok);
    {
        test::OpenCounter c;
        c.watch(gguf);
        const uint64_t before = RegularFile::open_count();
        const ModelFiles m = open_model_files(gguf);
        EXPECT_EQ(m.format, "gguf");
        EXPECT_EQ(m.vocab.tokens.size(), 6u);
        EXPECT_EQ(c.opens(gguf), 1);
        EXPECT_EQ(RegularFile::open_count(), before + 1);
        // As --tokenizer (a second file: inotify would merge two back-to-back opens of one file
        // whose first descriptor is still referenced by its mapping) and through load_vocab.
        c.watch(tok);
        (void)open_model_files(gguf, tok);
        EXPECT_EQ(c.opens(gguf), 2);
        EXPECT_EQ(c.opens(tok), 1);
        (void)load_vocab(tok);
        EXPECT_EQ(c.opens(tok), 2);
    }
    // llama2.c: the checkpoint and its tokenizer.bin.
    const std::string l2c = dir_ + "/l2c";
    write_llama2c(l2c);
    {
        test::OpenCounter c;
        c.watch(l2c + "/model.bin");
        c.watch(l2c + "/tokenizer.bin");
        const ModelFiles m = open_model_files(l2c + "/model.bin");
        EXPECT_EQ(m.format, "llama2c");
        EXPECT_EQ(m.vocab.tokens.size(), 4u);
        EXPECT_EQ(c.opens(l2c + "/model.bin"), 1);
        EXPECT_EQ(c.opens(l2c + "/tokenizer.bin"), 1);
    }
    // Hugging Face folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
    const std::string hf = dir_ + "/hf";
    write_hf_folder(hf, true);
    {
        test::OpenCounter c;
        const std::vector<std::string> files = {"config.json", "model.safetensors", "tokenizer.json",
                                                "tokenizer_config.json"};
        for (const auto& f : files) c.watch(hf + "/" + f);
        const uint64_t before = RegularFile::open_count();
        const ModelFiles m = open_model_files(hf);
        EXPECT_EQ(m.format, "safetensors");
        EXPECT_EQ(m.vocab.tokens.size(), 6u);
        for (const auto& f : files) EXPECT_EQ(c.opens(hf + "/" + f), 1) << f;
        EXPECT_EQ(RegularFile::open_count(), before + files.size());
        (void)load_vocab(hf + "/tokenizer.json");
        EXPECT_EQ(c.opens(hf + "/tokenizer.json"), 2);
        EXPECT_EQ(c.opens(hf + "/tokenizer_config.json"), 2);
    }
}

// load_into_memory (--mmap 0) copies in page-aligned slices and releases each slice's source
// pages as it goes: every byte must arrive, for a mapped tensor larger than a slice that starts off
// a page boundary, a tiny one sharing its pages, and two heap tensors that alias the same bytes
// (releasing is non-destructive, so the second still reads what the first did).
TEST(LoadIntoMemory, CopiesEveryByteOfMappedAndAliasedTensors) {
    const std::string path = test::temp_dir() + "/weights.bin";
    std::vector<uint8_t> bytes(size_t{11} << 20);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (auto& b : bytes) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b = static_cast<uint8_t>(x);
    }
    test::write_file(path, std::string(bytes.begin(), bytes.end()));
    auto map = std::make_shared<const FileMap>(RegularFile(path, "test weights"));
    ModelFiles f;
    // F16 views (2 bytes an element) of raw bytes: the sizes are in bytes.
    auto view = [](const uint8_t* p, size_t n, std::shared_ptr<const void> owner, const char* name) {
        return Tensor::view(DType::F16, {static_cast<int64_t>(n / 2)}, p, std::move(owner), name);
    };
    const size_t big_off = 1000, big_n = (size_t{9} << 20) + 122, small_off = big_off + big_n, small_n = 76;
    f.tensors["big"] = view(map->data() + big_off, big_n, map, "big");
    f.tensors["small"] = view(map->data() + small_off, small_n, map, "small");
    auto heap = std::shared_ptr<uint8_t>(new uint8_t[size_t{5} << 20], std::default_delete<uint8_t[]>());
    std::memcpy(heap.get(), bytes.data() + 4096, size_t{5} << 20);
    f.tensors["alias_a"] = view(heap.get(), size_t{5} << 20, heap, "alias_a");
    f.tensors["alias_b"] = view(heap.get(), size_t{5} << 20, heap, "alias_b");
    load_into_memory(f);
    map.reset();
    heap.reset();
    auto same = [&](const char* name, size_t off, size_t n) {
        const Tensor& t = f.tensors.at(name);
        ASSERT_EQ(t.nbytes(), n) << name;
        EXPECT_EQ(std::memcmp(t.data(), bytes.data() + off, n), 0) << name;
    };
    same("big", big_off, big_n);
    same("small", small_off, small_n);
    same("alias_a", 4096, size_t{5} << 20);
    same("alias_b", 4096, size_t{5} << 20);
}

}  // namespace
}  // namespace llmforge
