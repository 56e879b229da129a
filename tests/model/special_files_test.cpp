// Special files given where a file reader expects a regular file: a FIFO (no writer: a blocking
// open would wait forever), a symlink to a FIFO, /dev/zero and /dev/urandom (endless), a folder, a
// socket, an empty file, a file that shrinks while it is opened. Every reader in src/io (and
// core's read_file) must answer each with one clear Error line, never hang or crash; the calls
// run under a watchdog (run_bounded) so that a regression fails instead of hanging the test.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "model/llama2c.h"
#include "io/safetensors.h"
#include "io/special_files.h"
#include "io/io_test_helpers.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

struct Reader {
    const char* name;
    std::function<void(const std::string&)> read;
};

// Every path-taking reader of src/io and core.
std::vector<Reader> readers() {
    return {
        {"RegularFile", [](const std::string& p) { RegularFile f(p, "a test file"); }},
        {"read_file", [](const std::string& p) { (void)read_file(p, "a test file"); }},
        {"GgufFile", [](const std::string& p) { GgufFile f(p); }},
        {"SafetensorsFile", [](const std::string& p) { SafetensorsFile f(p); }},
        {"SafetensorsSet", [](const std::string& p) { SafetensorsSet s(p); }},
        {"Llama2cCheckpoint", [](const std::string& p) { Llama2cCheckpoint c(p); }},
        {"llama2c_read_vocab", [](const std::string& p) { (void)llama2c_read_vocab(p); }},
        {"hf_config_read", [](const std::string& p) { (void)hf_config_read(p); }},
    };
}

class SpecialFiles : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::temp_dir(); }
    void TearDown() override { file_testing::set_after_open_hook(nullptr); }
    std::string dir_;
};

TEST_F(SpecialFiles, FifoIsRefusedWithoutBlocking) {
    const std::string fifo = test::make_fifo(dir_ + "/model.fifo");
    for (const Reader& r : readers()) {
        SCOPED_TRACE(r.name);
        const std::string m = test::run_bounded([&] { r.read(fifo); }, {fifo});
        test::expect_message(m, {fifo, "is a FIFO (named pipe), not a regular file", "hint:", "FIFO blocks"});
    }
    EXPECT_FALSE(has_gguf_magic(fifo));
    // Folders whose config.json / model.safetensors is a FIFO.
    const std::string hf = dir_ + "/hf";
    fs::create_directory(hf);
    const std::string cfg = test::make_fifo(hf + "/config.json");
    const std::string st = test::make_fifo(hf + "/model.safetensors");
    test::expect_message(test::run_bounded([&] { hf_config_read(hf); }, {cfg}), {cfg, "is a FIFO", "config.json"});
    test::expect_message(test::run_bounded([&] { SafetensorsSet s(hf); }, {st}), {st, "is a FIFO", ".safetensors"});
}

TEST_F(SpecialFiles, SymlinkToAFifoIsRefused) {
    const std::string fifo = test::make_fifo(dir_ + "/real.fifo");
    const std::string link = test::make_symlink(fifo, dir_ + "/model.gguf");
    for (const Reader& r : readers()) {
        SCOPED_TRACE(r.name);
        test::expect_message(test::run_bounded([&] { r.read(link); }, {fifo}), {link, "is a FIFO"});
    }
}

TEST_F(SpecialFiles, EndlessCharacterDevicesAreRefused) {
    for (const char* dev : {"/dev/zero", "/dev/urandom", "/dev/null"}) {
        if (::access(dev, R_OK) != 0) continue;
        for (const Reader& r : readers()) {
            SCOPED_TRACE(std::string(r.name) + " " + dev);
            test::expect_message(test::run_bounded([&] { r.read(dev); }),
                                 {dev, "is a character device, not a regular file", "/dev/zero"});
        }
        // A symlink to one too.
        const std::string link = test::make_symlink(dev, dir_ + "/dev.gguf");
        test::expect_message(test::run_bounded([&] { GgufFile f(link); }), {link, "character device"});
    }
}

TEST_F(SpecialFiles, SocketIsRefused) {
    const std::string sock = test::make_socket(dir_ + "/s.sock");
    for (const Reader& r : readers()) {
        SCOPED_TRACE(r.name);
        test::expect_message(test::run_bounded([&] { r.read(sock); }), {sock, "is a socket, not a regular file"});
    }
}

TEST_F(SpecialFiles, FolderWhereAFileBelongsIsRefused) {
    for (const char* name : {"RegularFile", "read_file", "GgufFile", "SafetensorsFile", "Llama2cCheckpoint",
                             "llama2c_read_vocab"}) {
        for (const Reader& r : readers()) {
            if (std::strcmp(r.name, name) != 0) continue;
            SCOPED_TRACE(name);
            test::expect_message(test::run_bounded([&] { r.read(dir_); }), {dir_, "is a folder, not a regular file"});
        }
    }
    // A config.json that is a folder inside a model folder, a model.safetensors that is a folder.
    const std::string hf = dir_ + "/hf";
    fs::create_directories(hf + "/model.safetensors");
    test::expect_message(test::run_bounded([&] { SafetensorsSet s(hf); }),
                         {hf + "/model.safetensors", "is a folder", "expected a .safetensors file"});
    fs::create_directories(hf + "/config.json");
    test::expect_message(test::run_bounded([&] { hf_config_read(hf); }), {"config.json", "is a folder"});
}

TEST_F(SpecialFiles, MissingFileSaysCannotOpen) {
    for (const Reader& r : readers()) {
        SCOPED_TRACE(r.name);
        test::expect_message(test::run_bounded([&] { r.read(dir_ + "/missing.gguf"); }), {"missing.gguf"});
    }
    test::expect_message(test::run_bounded([&] { GgufFile f(dir_ + "/missing.gguf"); }),
                         {"missing.gguf", "cannot open a GGUF file", "No such file", "hint: check the path"});
    test::expect_message(test::run_bounded([&] { (void)read_file(dir_ + "/t.jinja", "chat template", "check --chat-template"); }),
                         {"t.jinja: cannot open chat template", "hint: check --chat-template"});
}

TEST_F(SpecialFiles, EmptyFileGivesOneClearError) {
    const std::string empty = dir_ + "/empty.bin";
    test::write_bytes(empty, "");
    test::expect_message(test::run_bounded([&] { GgufFile f(empty); }), {empty, "truncated"});
    test::expect_message(test::run_bounded([&] { SafetensorsFile f(empty); }), {empty, "too small", "truncated"});
    test::expect_message(test::run_bounded([&] { Llama2cCheckpoint c(empty); }), {empty, "too small", "truncated"});
    test::expect_message(test::run_bounded([&] { llama2c_read_vocab(empty); }), {empty});
    const std::string cfg = dir_ + "/config.json";
    test::write_bytes(cfg, "");
    test::expect_message(test::run_bounded([&] { hf_config_read(cfg); }), {cfg, "is empty (0 bytes)", "JSON object"});
    // read_file gives the (empty) contents: empty templates or texts are for the caller to judge.
    EXPECT_EQ(read_file(empty, "a test file"), "");
    EXPECT_FALSE(has_gguf_magic(empty));
}

// The file is cut to nothing right after it was opened and checked: mapping or reading it must
// say so instead of faulting (SIGBUS) on the lost pages or returning a short read as the file.
std::string g_truncate;
void truncate_hook(const std::string& path) {
    if (path == g_truncate) {
        EXPECT_EQ(::truncate(path.c_str(), 0), 0);
    }
}

TEST_F(SpecialFiles, FileThatShrinksWhileOpeningIsRefused) {
    const std::string gguf = dir_ + "/shrink.gguf";
    GgufWriter w;
    w.set("general.architecture", "llama");
    const std::vector<float> x(1024, 1.0f);
    w.add_tensor("t", DType::F32, {1024}, x.data(), x.size() * 4);
    w.write(gguf);
    const uint64_t size = fs::file_size(gguf);
    g_truncate = gguf;
    file_testing::set_after_open_hook(truncate_hook);
    test::expect_message(test::run_bounded([&] { GgufFile f(gguf); }),
                         {gguf, "shrank from " + std::to_string(size) + " to 0 bytes while being mapped", "hint:"});

    const std::string cfg = dir_ + "/config.json";
    test::write_bytes(cfg, "{\"model_type\": \"llama\"}");
    g_truncate = cfg;
    test::expect_message(test::run_bounded([&] { (void)read_file(cfg, "config.json"); }),
                         {cfg, "shrank from 23 to 0 bytes while being read"});
    test::write_bytes(cfg, "{\"model_type\": \"llama\"}");
    test::expect_message(test::run_bounded([&] { hf_config_read(cfg); }), {cfg, "shrank"});
    file_testing::set_after_open_hook(nullptr);
}

TEST_F(SpecialFiles, RegularFileReadsAndMapsTheOneDescriptor) {
    const std::string p = dir_ + "/f.bin";
    test::write_bytes(p, "GGUF and more");
    const uint64_t before = RegularFile::open_count();
    RegularFile f(p, "a test file");
    EXPECT_EQ(RegularFile::open_count(), before + 1);
    EXPECT_EQ(f.size(), 13u);
    EXPECT_TRUE(f.starts_with("GGUF"));
    EXPECT_FALSE(f.starts_with("GGUX"));
    EXPECT_FALSE(f.starts_with(std::string(20, 'G')));  // longer than the file
    char buf[8] = {};
    EXPECT_EQ(f.read_at(buf, 3, 10), 3u);
    EXPECT_EQ(std::string(buf, 3), "ore");
    EXPECT_EQ(f.read_at(buf, 8, 12), 1u);  // short only at the end
    EXPECT_EQ(f.read_all(), "GGUF and more");
    const FileMap m(f);
    ASSERT_EQ(m.size(), 13u);
    EXPECT_EQ(std::memcmp(m.data(), "GGUF and more", 13), 0);
    // O_NONBLOCK was cleared on the descriptor.
    EXPECT_EQ(::fcntl(f.fd(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(f.fd(), F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_EQ(RegularFile::open_count(), before + 1);  // probing, reading and mapping: one open
    // Moving keeps the one descriptor.
    RegularFile g(std::move(f));
    EXPECT_EQ(f.fd(), -1);
    EXPECT_EQ(g.read_all(), "GGUF and more");
    test::expect_message(test::run_bounded([&] { (void)g.read_all(4); }),
                         {p, "is 13 bytes, expected a test file of at most 4 bytes"});
}

TEST_F(SpecialFiles, EachReaderOpensItsFileOnce) {
    const std::string gguf = dir_ + "/once.gguf";
    GgufWriter w;
    w.set("general.architecture", "llama");
    const std::vector<float> x(64, 1.0f);
    w.add_tensor("t", DType::F32, {64}, x.data(), x.size() * 4);
    w.write(gguf);
    test::OpenCounter c;
    c.watch(gguf);
    const uint64_t before = RegularFile::open_count();
    {
        GgufFile f(gguf);
        EXPECT_EQ(f.tensor_infos().size(), 1u);
    }
    EXPECT_EQ(c.opens(gguf), 1);
    EXPECT_EQ(RegularFile::open_count(), before + 1);
}

}  // namespace
}  // namespace llmforge
